-- tests/stress/load.lua: the wrk script of tests/stress/stress.sh.
--
--   wrk ... -s tests/stress/load.lua URL [-- close]
--
-- Sends a mix of the Todo API's requests (per ten: one POST /todos, one
-- GET /todos?limit=10, eight GET /todos/1); with "close", every request asks
-- for its connection to be closed, so connections open and close in a loop.
-- At the end it prints one line per status code ("status 200 12345") and one
-- with wrk's socket errors, for stress.sh to judge.
--
-- wrk's API is made of globals (setup, init, request, response, done), and a
-- thread's counters must be globals for thread:get to read them.

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

local close = false
local sent = 0

function init(args)
  close = args[1] == "close"
  statuses = {}
end

local body = '{"title":"a todo from the stress test","description":"tests/stress"}'

function request()
  sent = sent + 1
  local headers = { ["Content-Type"] = "application/json" }
  if close then headers["Connection"] = "close" end
  local k = sent % 10
  if k == 0 then return wrk.format("POST", "/todos", headers, body) end
  if k == 1 then return wrk.format("GET", "/todos?limit=10", headers) end
  return wrk.format("GET", "/todos/1", headers)
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d %d\n", status, n))
  end
  local e = summary.errors
  io.write(string.format("socket errors connect %d read %d write %d timeout %d\n",
    e.connect, e.read, e.write, e.timeout))
end
