-- tests/spec/metrics_spec.lua: metrics.lua and todohost.metrics over real
-- HTTP: `todohost run serve.lua` with two workers on the database of this
-- pass; /metrics sums every worker's counts exactly, its histograms are
-- consistent, the pool gauges are there; ACCESS_LOG=json writes one JSON
-- object a line, one per request.
local cjson = require "cjson"
local helper = require "spec_helper"
local api_helper = require "api_helper"

local kind = helper.database_url():match("^postgres") and "postgresql" or "sqlite"
local quote = helper.quote

-- The samples of a Prometheus text body: name{labels} -> value.
local function samples(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then
      local key, value = line:match("^(%S+) (%S+)$")
      assert(key, "not a sample line: " .. line)
      out[key] = tonumber(value)
    end
  end
  return out
end

describe("/metrics and the JSON access log on " .. kind, function()
  local url, tmp, pid, base, log

  setup(function()
    tmp = helper.tmpdir()
    url = helper.database_url()
    api_helper.migrate(url)
    log = tmp .. "/server.log"
    local env = { DATABASE_URL = url, WORKERS = "2", ACCESS_LOG = "json" }
    env.MIGRATIONS_DIR = api_helper.fake_migrations_dir(tmp .. "/migrations")
    pid, base = helper.serve(env, log)
  end)

  teardown(function()
    if pid then helper.stop(pid) end
  end)

  -- runs n requests with curl, 8 at a time (so both workers answer some)
  local function hit(n, path, extra)
    local code = helper.run(("seq %d | xargs -P 8 -I{} curl -s -o /dev/null %s %s"):format(n, extra or "",
      quote(base .. path)))
    assert.equal(0, code)
  end

  it("counts every request of every worker by route, method and status", function()
    hit(120, "/todos/1")
    hit(30, "/todos/0")          -- 404 from the handler
    hit(20, "/no/such/path", "-X DELETE")
    hit(10, "/todos", "-X POST -H 'content-type: application/json' --data '{}'")   -- 422
    local code, body = helper.run("curl -s -D " .. quote(tmp .. "/h") .. " " .. quote(base .. "/metrics"))
    assert.equal(0, code)
    assert.matches("content%-type: text/plain; version=0%.0%.4", helper.read(tmp .. "/h"):lower())
    local s = samples(body)
    assert.equal(120, s['todohost_http_requests_total{route="read_todo",method="GET",status="200"}'])
    assert.equal(30, s['todohost_http_requests_total{route="read_todo",method="GET",status="404"}'])
    assert.equal(20, s['todohost_http_requests_total{route="none",method="DELETE",status="404"}'])
    assert.equal(10, s['todohost_http_requests_total{route="create_todo",method="POST",status="422"}'])
    -- the histogram of a route: cumulative, ending in its count (both statuses)
    local prev = 0
    for le in ("0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf"):gmatch("%S+") do
      local n = s[('todohost_http_request_duration_seconds_bucket{route="read_todo",method="GET",le="%s"}')
        :format(le)]
      assert.is_true(n >= prev, le)
      prev = n
    end
    assert.equal(150, prev)
    assert.equal(150, s['todohost_http_request_duration_seconds_count{route="read_todo",method="GET"}'])
    assert.is_true(s['todohost_http_request_duration_seconds_sum{route="read_todo",method="GET"}'] > 0)
    assert.equal(0, s['todohost_http_errors_total{kind="handler"}'])
    assert.equal(0, s['todohost_http_errors_total{kind="database"}'])
    assert.is_number(s['todohost_db_pool_connections{state="in_use"}'])
    assert.is_number(s["todohost_db_pool_waiting"])
    if kind == "postgresql" then
      assert.is_true(s['todohost_db_pool_connections{state="open"}'] >= 1)
    end
    -- a second scrape sees the first, and counters only grow
    local _, again = helper.run("curl -s " .. quote(base .. "/metrics"))
    assert.equal(1, samples(again)['todohost_http_requests_total{route="metrics",method="GET",status="200"}'])
  end)

  it("writes one JSON object a line per request with ACCESS_LOG=json", function()
    hit(5, "/todos/1?x=%22quoted%22", "-H 'Authorization: Bearer not-logged'")
    -- paths that JSON must escape: quotes, backslashes, bytes that are not UTF-8,
    -- and one longer than the line's room for it (every line must still parse)
    hit(1, "/q%22uote%5Cback%FF%C3%01")
    hit(1, "/" .. ("%22%5C"):rep(1200))
    os.execute("sleep 0.5")   -- (the server writes its buffered lines every 200 ms)
    local n = 0
    for line in (helper.read(log) or ""):gmatch("[^\n]+") do
      if line:sub(1, 1) == "{" then
        local entry = cjson.decode(line)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", entry.time)
        assert.is_number(entry.status)
        assert.is_number(entry.ms)
        if entry.path == "/todos/1" and entry.method == "GET" and entry.status == 200 then n = n + 1 end
      else
        assert.matches("^todohost: ", line)
      end
    end
    assert.equal(125, n)   -- 120 from the first test, 5 here
    assert.is_nil((helper.read(log) or ""):find("not-logged", 1, true))
  end)
end)
