-- tests/spec/input_limits_spec.lua: every reader of outside input in
-- scripts/web works in time linear in the input's size (issue 10).
--
-- For each entry point the largest allowed input built from the worst
-- characters (Unicode spaces, escapes, nesting to the limit, separators)
-- is timed against a plain input of the same size, in the same run, and
-- the ratio must stay under BOUND. CPU time of this process (os.clock),
-- the best of a few runs, with a floor under the reference, so other work
-- on the machine does not count.
--
-- Measured on the 2-core machine (plain and ASan+UBSan builds alike): the
-- worst cases are at most 6.5x their plain reference (a title of every
-- kind of Unicode space; a query of a million empty values: 6x); the
-- quadratic strip() this replaces took 4.7 s for a 64 KiB title of U+00A0
-- where a plain one took 0.6 ms, and minutes at 1 MiB (62x here as soon as
-- the deadline stops it). BOUND = 25 keeps a wide margin both ways.
--
-- Over HTTP the same bodies go through a real server: a 1 MiB body of
-- U+00A0 is answered in about the time of a 1 MiB plain body.
local db = require "todohost.db"
local helper = require "spec_helper"
local api_helper = require "api_helper"
local api = require "api"
local router = require "web.router"
local schema = require "web.schema"
local json = require "web.json"

local BOUND = 25
local FLOOR = 0.005           -- seconds: a reference faster than this counts as this
local MAX_BODY = 1024 * 1024  -- the server's default body limit
local RUNS = 3

local rep, format = string.rep, string.format

-- The best CPU time of RUNS calls of f(input). With a deadline (seconds),
-- a call still running Lua code past it is stopped (an error raised from a
-- count hook; what catches it does not matter) and its time is returned:
-- a quadratic pass fails the test in seconds, not minutes.
local function cpu_time(f, input, deadline)
  local best = math.huge
  for _ = 1, RUNS do
    local t0, over = os.clock(), false
    if deadline then
      debug.sethook(function()
        if os.clock() - t0 > deadline then over = true; error("past the deadline", 0) end
      end, "", 1000)
    end
    pcall(f, input)
    debug.sethook()
    local t = os.clock() - t0
    if over then return t end
    best = math.min(best, t)
  end
  return best
end

-- Asserts that f takes at most BOUND times as long on worst as on plain.
local function assert_linear(what, f, worst, plain)
  assert.equal(#plain, #worst, what .. ": the inputs should have the same size")
  local t_plain = cpu_time(f, plain)
  local t_worst = cpu_time(f, worst, 2 * BOUND * math.max(t_plain, FLOOR))
  local ratio = t_worst / math.max(t_plain, FLOOR)
  io.stderr:write(format("# %s: %d bytes, %.1f ms against %.1f ms plain: %.1fx\n",
    what, #worst, t_worst * 1000, t_plain * 1000, ratio))
  assert(ratio <= BOUND, format("%s: %.3f s against %.3f s for a plain input of %d bytes (%.0fx, bound %dx)",
    what, t_worst, t_plain, #worst, ratio, BOUND))
end

-- text repeated, then padded with filler to exactly size bytes (after
-- prefix and suffix).
local function fill(prefix, unit, suffix, size, filler)
  local room = size - #prefix - #suffix
  local body = rep(unit, room // #unit)
  return prefix .. body .. rep(filler or " ", room - #body) .. suffix
end

-- A JSON body of exactly MAX_BODY bytes: prefix, unit repeated, suffix.
local function body(prefix, unit, suffix, filler)
  return fill(prefix, unit, suffix, MAX_BODY, filler)
end

local PLAIN_BODY = body('{"title":"x","description":"', "a", '"}', "a")

-- The Todo models, as the routes declare them.
local TodoCreate, TodoUpdate
for _, route in ipairs(require "todos") do
  if route.method == "POST" then TodoCreate = route.body end
  if route.method == "PATCH" then TodoUpdate = route.body end
end

local function create_body(text) return schema.parse_body(TodoCreate, text, "application/json") end
local function update_body(text) return schema.parse_body(TodoUpdate, text, "application/json") end

describe("reading outside input takes time linear in its size", function()
  it("validates a 1 MiB body of spaces and escapes like a plain one (POST and PATCH)", function()
    local cases = {
      ["title of U+00A0"] = body('{"title":"', "\u{a0}", 'x"}'),
      ["title of U+00A0 after the text"] = body('{"title":"x', "\u{a0}", '"}'),
      ["title of \\u00a0"] = body('{"title":"', "\\u00a0", 'x"}'),
      ["title of U+2028 and \\u3000"] = body('{"title":"', "\u{2028}\\u3000", 'x"}'),
      ["title of 1 MiB (too long)"] = body('{"title":"', "\u{e9}", '"}', "a"),
      ["title of spaces only"] = body('{"title":"', " \u{a0}", '"}'),
      ["title of every kind of space"] = body('{"title":"',
        " \u{85}\u{2028}\\t\u{1680}\u{205f}\u{a0}\u{2000}\u{3000}\\u001c", 'x"}'),
      ["description of \\u escapes"] = body('{"title":"x","description":"', "\\ud83d\\ude00", '"}'),
      ["description of \\n"] = body('{"title":"x","description":"', "\\n", '"}'),
    }
    for name, worst in pairs(cases) do
      assert_linear("POST body, " .. name, create_body, worst, PLAIN_BODY)
      assert_linear("PATCH body, " .. name, update_body, worst, PLAIN_BODY)
    end
    assert.equal("x", create_body(cases["title of U+00A0"]).title)
    assert.equal("x", create_body(cases["title of every kind of space"]).title)
    assert.equal("x", update_body(cases["title of U+00A0 after the text"]).title)
  end)

  it("decodes 1 MiB of JSON nesting, numbers and white space like a plain body", function()
    -- nesting to the decoder's limit (64 with the object), again and again,
    -- against as many empty arrays side by side
    local deep = rep("[", 62) .. rep("]", 62)
    assert.is_table(json.decode('{"x":[' .. deep .. "]}"))
    local cases = {
      ["nesting to the limit"] = { body('{"title":"x","x":[', deep .. ",", "0]}"),
        body('{"title":"x","x":[', "[],", "0]}") },
      ["nesting over the limit"] = { body("", "[", "", "["), PLAIN_BODY },
      ["a number of a million digits"] = { body('{"title":', "1", "}", "1"), PLAIN_BODY },
      ["a fraction of a million digits"] = { body('{"title":0.', "0", "1}", "0"), PLAIN_BODY },
      ["white space between tokens"] = { body('{"title":"x"', " \t\r\n", "}"), PLAIN_BODY },
      ["one key again and again"] = { body("{", '"title":"x",', '"t":1}'), PLAIN_BODY },
    }
    for name, pair in pairs(cases) do
      assert_linear("JSON, " .. name, create_body, pair[1], pair[2])
    end
    local _, errors = create_body(cases["a number of a million digits"][1])
    assert.equal("type_error.str", errors[1].type)
  end)

  it("parses a 1 MiB query string of escapes and separators like a plain one", function()
    local size = MAX_BODY   -- far beyond what the server accepts in a request line
    local plain = fill("q=", "a", "", size, "a")
    local cases = {
      ["percent escapes"] = fill("q=", "%C2%A0", "", size, "a"),
      ["NUL escapes"] = fill("q=", "%00", "", size, "a"),
      ["plus signs"] = fill("q=", "+", "", size, "a"),
      ["ampersands"] = fill("", "&", "", size, "&"),
      ["equals signs"] = fill("q", "=", "", size, "="),
      ["one pair again and again"] = fill("", "skip=1&", "", size, "&"),
      ["empty values"] = fill("", "a=&", "", size, "&"),
      ["bad percent escapes"] = fill("q=", "%%zz%", "", size, "a"),
    }
    for name, worst in pairs(cases) do
      assert_linear("query, " .. name, router.parse_query, worst, plain)
    end
    assert.equal(" ", router.parse_query(cases["plus signs"]).q:sub(1, 1))
  end)
  it("reads a long Content-Type like a plain one", function()
    local size = 64 * 1024
    local function with_type(ct)
      return schema.parse_body(TodoCreate, '{"title":"x"}', ct)
    end
    assert_linear("content type of spaces", with_type, fill("", " ", "application/json", size),
      fill("application/json;x=", "a", "", size, "a"))
    assert_linear("content type of +json", with_type, fill("application/", "+json", "", size, "+"),
      fill("application/json;x=", "a", "", size, "a"))
  end)
end)

describe("routing and parameters take time linear in their size", function()
  it("validates a long path parameter and query like a plain one", function()
    local url = helper.database_url()
    api_helper.migrate(url)
    local conn <close> = db.connect(url)
    local handle = api.handler(conn)
    -- the router's answer to a GET of target (path?query)
    local function get(target)
      local path, query = target:match("^([^?]*)%??(.*)$")
      return handle(api_helper.request("GET", path, { query = query }))
    end
    local size = 64 * 1024
    local plain = fill("/todos/", "a", "", size, "a")
    local cases = {
      ["todo_id of digits"] = fill("/todos/", "0", "1", size, "0"),
      ["todo_id of spaces around"] = fill("/todos/", " ", "1", size),
      ["todo_id of signs"] = fill("/todos/", "+-", "1", size, "+"),
      ["an unknown path with a trailing slash"] = fill("/", "x", "/", size, "x"),
      ["query values to validate"] = fill("/todos?skip=", "0", "1&limit= 5 &completed=yes", size, "0"),
    }
    for name, worst in pairs(cases) do
      assert_linear("request, " .. name, get, worst, plain)
    end
    assert.equal(404, (get(cases["todo_id of digits"])))
    assert.equal(200, (get(cases["query values to validate"])))
  end)

end)

describe("over HTTP, a 1 MiB body of Unicode spaces", function()
  local tmp, pid, base, log, url

  setup(function()
    tmp = helper.tmpdir()
    url = helper.database_url()
    api_helper.migrate(url)
    log = tmp .. "/server.log"
    local env = { "DATABASE_URL=" .. helper.quote(url), "PORT=0", "WORKERS=1", "HTTP_TIMEOUT=120",
      "ACCESS_LOG=false" }
    local fake = api_helper.fake_migrations_dir(tmp .. "/migrations")
    if fake then env[#env + 1] = "MIGRATIONS_DIR=" .. helper.quote(fake) end
    pid = io.popen(("env %s %s run serve.lua >%s 2>&1 & echo $!"):format(table.concat(env, " "),
      helper.quote(helper.todohost()), helper.quote(log))):read("l")
    for _ = 1, 300 do
      local port = (helper.read(log) or ""):match("serving on http://[^ ]*:(%d+) ")
      if port then base = "http://127.0.0.1:" .. port; return end
      os.execute("sleep 0.1")
    end
    error("serve.lua did not start:\n" .. (helper.read(log) or ""))
  end)

  teardown(function()
    if pid then os.execute("kill -TERM " .. pid .. " 2>/dev/null; sleep 0.5; kill -KILL " .. pid .. " 2>/dev/null") end
  end)

  -- Sends text as the JSON body of method path; returns the status and the
  -- wall time curl measured (the best of RUNS).
  local function send(method, path, text)
    local file = tmp .. "/body"
    helper.write(file, text)
    local status, best = nil, math.huge
    for _ = 1, RUNS do
      local code, out = helper.run(("curl -s -o /dev/null --max-time 30 -X %s -H 'content-type: application/json' "
        .. "--data-binary @%s -w '%%{http_code} %%{time_total}' %s"):format(method, helper.quote(file),
        helper.quote(base .. path)))
      assert.equal(0, code, "curl failed or timed out: " .. out)
      local s, t = out:match("^(%d+) ([%d.]+)$")
      status, best = tonumber(s), math.min(best, tonumber(t))
    end
    return status, best
  end

  it("is answered in about the time of a 1 MiB plain body (POST and PATCH)", function()
    local worst = body('{"title":"', "\u{a0}", 'x"}')
    local status, t_plain = send("POST", "/todos", PLAIN_BODY)
    assert.equal(201, status)
    local t_worst
    status, t_worst = send("POST", "/todos", worst)
    assert.equal(201, status)
    io.stderr:write(format("# POST over HTTP: %.1f ms against %.1f ms plain\n", t_worst * 1000, t_plain * 1000))
    assert(t_worst <= BOUND * math.max(t_plain, FLOOR), format("POST: %.3f s against %.3f s", t_worst, t_plain))

    local conn <close> = db.connect(url)
    local id = conn:first("SELECT max(id) AS id FROM todos").id
    assert.equal("x", conn:first("SELECT title FROM todos WHERE id = $1", id).title)
    status, t_plain = send("PATCH", "/todos/" .. id, PLAIN_BODY)
    assert.equal(200, status)
    status, t_worst = send("PATCH", "/todos/" .. id, worst)
    assert.equal(200, status)
    io.stderr:write(format("# PATCH over HTTP: %.1f ms against %.1f ms plain\n", t_worst * 1000, t_plain * 1000))
    assert(t_worst <= BOUND * math.max(t_plain, FLOOR), format("PATCH: %.3f s against %.3f s", t_worst, t_plain))
  end)
end)
