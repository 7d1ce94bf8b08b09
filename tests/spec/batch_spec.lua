-- tests/spec/batch_spec.lua: many requests at once on one server, whose
-- handlers read the database in every way a handler may (the fixture
-- tests/fixtures/batch_app.lua). On PostgreSQL the server defers plain
-- reads and runs those of requests that arrived together in one round
-- trip; every answer must still be the request's own, in any mix with
-- synchronous statements, transactions, errors and the handler's own
-- coroutines. On SQLite the same requests run one by one.
local db = require "todohost.db"
local helper = require "spec_helper"

local kind = helper.database_url():match("^postgres") and "postgresql" or "sqlite"
local quote = helper.quote
local ITEMS = 300

describe("concurrent requests reading the " .. kind .. " database", function()
  local tmp, pid, log, base

  local function slurp(path) return helper.read(path) or "" end

  setup(function()
    tmp = helper.tmpdir()
    local conn <close> = db.connect(helper.database_url())
    conn:exec("DROP TABLE IF EXISTS batch_items")
    conn:exec("DROP TABLE IF EXISTS batch_log")
    conn:exec("CREATE TABLE batch_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn:exec("CREATE TABLE batch_log (id INTEGER NOT NULL)")
    conn:exec("DROP TABLE IF EXISTS batch_serial")
    conn:exec("DROP TABLE IF EXISTS batch_counter")
    conn:exec(kind == "postgresql" and "CREATE TABLE batch_serial (id SERIAL PRIMARY KEY, v INTEGER)"
      or "CREATE TABLE batch_serial (id INTEGER PRIMARY KEY AUTOINCREMENT, v INTEGER)")
    conn:exec("CREATE TABLE batch_counter (n INTEGER NOT NULL)")
    conn:exec("INSERT INTO batch_counter VALUES (0)")
    if kind == "postgresql" then
      conn:exec("CREATE OR REPLACE FUNCTION batch_login(u text) RETURNS text LANGUAGE sql"
        .. " AS $$ SELECT set_config('app.user', u, false) $$")
    end
    conn:transaction(function()
      for i = 1, ITEMS do conn:exec("INSERT INTO batch_items VALUES ($1, $2)", i, "item " .. i) end
    end)
    log = tmp .. "/server.log"
    local cmd = ("env DATABASE_URL=%s DEBUG=true APP=batch_app WORKERS=2 ACCESS_LOG=false "
      .. "LUA_PATH='tests/fixtures/?.lua;;' %s run tests/fixtures/serve_hello.lua >%s 2>&1 & echo $!")
      :format(quote(helper.database_url()), quote(helper.todohost()), quote(log))
    pid = io.popen(cmd):read("l")
    for _ = 1, 300 do
      local port = slurp(log):match("serving on http://[^ ]*:(%d+) ")
      if port then base = "http://127.0.0.1:" .. port return end
      os.execute("sleep 0.1")
    end
    error("the server did not start:\n" .. slurp(log))
  end)

  teardown(function()
    if pid then os.execute("kill -TERM " .. pid .. "; while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.1; done") end
    local conn <close> = db.connect(helper.database_url())
    conn:exec("DROP TABLE IF EXISTS batch_items")
    conn:exec("DROP TABLE IF EXISTS batch_log")
    conn:exec("DROP TABLE IF EXISTS batch_serial")
    conn:exec("DROP TABLE IF EXISTS batch_counter")
    if kind == "postgresql" then conn:exec("DROP FUNCTION IF EXISTS batch_login(text)") end
  end)

  -- Fetches every path at once (up to 32 connections in parallel); returns
  -- the bodies and HTTP statuses, in the order of paths.
  local function fetch_all(paths)
    local args = { "curl -s --parallel --parallel-immediate --parallel-max 32 --max-time 60",
      "-w '%{http_code} %{filename_effective}\\n'" }
    for i, path in ipairs(paths) do
      args[#args + 1] = ("-o %s/body.%d %s"):format(tmp, i, quote(base .. path))
    end
    local _, out = helper.run(table.concat(args, " "))
    local statuses = {}
    for code, i in out:gmatch("(%d+) [^\n]*/body%.(%d+)") do statuses[tonumber(i)] = tonumber(code) end
    local bodies = {}
    for i = 1, #paths do bodies[i] = slurp(("%s/body.%d"):format(tmp, i)) end
    return bodies, statuses
  end

  -- Runs the mix of requests, checking every answer.
  local function mixed_round()
    local paths, want = {}, {}
    for i = 1, ITEMS do
      local id = (i * 7) % ITEMS + 1
      local which = i % 6
      if which == 0 then
        paths[i], want[i] = "/two?id=" .. id, "item " .. id .. "/" .. id
      elseif which == 1 then
        paths[i], want[i] = "/own-coroutine?id=" .. id, "item " .. id
      elseif which == 2 then
        paths[i], want[i] = "/transaction?id=" .. id, "item " .. id
      elseif which == 3 then
        paths[i], want[i] = "/pcall?id=" .. id, "42703/item " .. id   -- undefined column
      else
        paths[i], want[i] = "/get?id=" .. id, "item " .. id
      end
    end
    local bodies, statuses = fetch_all(paths)
    local wrong = {}
    for i = 1, #paths do
      if statuses[i] ~= 200 or bodies[i] ~= want[i] then
        wrong[#wrong + 1] = ("%s -> %s %q (want %q)"):format(paths[i], tostring(statuses[i]), bodies[i], want[i])
      end
    end
    return wrong
  end

  it("gives every request its own answer", function()
    for _ = 1, 3 do
      local wrong = mixed_round()
      assert.are.same({}, wrong)
    end
  end)

  if kind == "postgresql" then
    it("runs the statements of requests that came in together in one round trip", function()
      local batches = 0
      for _ = 1, 5 do
        for n in slurp(log):gmatch("%] (%d+) statements in one round trip") do
          if tonumber(n) >= 2 then batches = batches + 1 end
        end
        if batches > 0 then break end
        mixed_round()
      end
      assert.is_true(batches > 0, "no batch of two or more statements in the log")
    end)
  else
    it("never defers on SQLite", function()
      assert.is_nil(slurp(log):find("batch of", 1, true))
    end)
  end

  it("never lets a request's write land in another's open transaction", function()
    local paths, logged = {}, {}
    for i = 1, 120 do
      if i % 2 == 0 then
        paths[i] = "/manual-tx?id=" .. i
      else
        paths[i] = "/log?id=" .. i
        logged[#logged + 1] = i
      end
    end
    local bodies, statuses = fetch_all(paths)
    for i = 1, #paths do assert.are.equal(200, statuses[i], paths[i] .. ": " .. bodies[i]) end
    local conn <close> = db.connect(helper.database_url())
    local ids = {}
    for _, row in ipairs(conn:query("SELECT id FROM batch_log ORDER BY id")) do ids[#ids + 1] = row.id end
    -- every /log insert committed; every /manual-tx insert (negative) rolled back
    assert.are.same(logged, ids)
  end)

  it("keeps each request's session state its own between its statements", function()
    -- the seeds' random numbers, one request at a time
    local seeded = {}
    for s = 0, 9 do seeded[s] = fetch_all({ "/seed?id=" .. s })[1] end
    local routes = { "/lastval", "/setting", "/get", "/nested-setting", "/login", "/seed" }
    local paths = {}
    for i = 1, 300 do
      paths[i] = routes[i % #routes + 1] .. "?id=" .. (i % ITEMS + 1)
    end
    local bodies, statuses = fetch_all(paths)
    local wrong = {}
    for i = 1, #paths do
      local id = i % ITEMS + 1
      local want = "same"
      if paths[i]:match("^/get") then want = "item " .. id
      elseif paths[i]:match("^/seed") then want = seeded[id % 10] end
      if statuses[i] ~= 200 or bodies[i] ~= want then wrong[#wrong + 1] = paths[i] .. " -> " .. bodies[i] end
    end
    assert.are.same({}, wrong)

    paths = {}
    for i = 1, 60 do paths[i] = "/counter?id=" .. i end
    bodies, statuses = fetch_all(paths)
    for i = 1, #paths do assert.are.equal(200, statuses[i], bodies[i]) end
    local conn <close> = db.connect(helper.database_url())
    assert.are.equal(60, conn:first("SELECT n FROM batch_counter").n,
      "a read-modify-write under an advisory lock lost updates")
  end)

  it("answers 500 to a handler that yields by itself, and keeps serving", function()
    local bodies, statuses = fetch_all({ "/yield", "/get?id=5" })
    assert.are.equal(500, statuses[1])
    assert.are.equal('{"detail":"Internal Server Error"}', bodies[1])
    assert.are.equal(200, statuses[2])
    assert.are.equal("item 5", bodies[2])
    assert.truthy(slurp(log):find("coroutine.yield outside a coroutine of its own", 1, true))
  end)
end)
