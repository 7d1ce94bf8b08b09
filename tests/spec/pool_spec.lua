-- tests/spec/pool_spec.lua: many requests at once on one server, whose
-- handlers use the database in every way a handler may (the fixture
-- tests/fixtures/pool_app.lua). On PostgreSQL each request has a
-- connection of its own from the worker's pool, and its statements are
-- sent without holding up the worker: every answer must be the request's
-- own, whatever session state it relies on, in any mix with transactions,
-- errors and the handler's own coroutines; a failed handler's transaction
-- never reaches another request. On SQLite the same requests run one by
-- one. Then, on a PostgreSQL of the spec's own: the pool's bounds and
-- deadlines, and recovery from terminated sessions, a restart, a server
-- that accepts and never answers, and one that is down.
local db = require "todohost.db"
local util = require "todohost.util"
local helper = require "spec_helper"

local kind = helper.database_url():match("^postgres") and "postgresql" or "sqlite"
local quote = helper.quote
local ITEMS = 300

local function slurp(path) return helper.read(path) or "" end

-- Starts the fixture app with env (a string of NAME=value words) on url;
-- returns its pid, base URL and log path.
local function start_server(tmp, url, env)
  local log = tmp .. "/server.log"
  local cmd = ("env DATABASE_URL=%s DEBUG=false APP=pool_app ACCESS_LOG=false %s "
    .. "LUA_PATH='tests/fixtures/?.lua;;' %s run tests/fixtures/serve_hello.lua >%s 2>&1 & echo $!")
    :format(quote(url), env, quote(helper.todohost()), quote(log))
  local pid = io.popen(cmd):read("l")
  for _ = 1, 300 do
    local port = slurp(log):match("serving on http://[^ ]*:(%d+) ")
    if port then return pid, "http://127.0.0.1:" .. port, log end
    os.execute("sleep 0.1")
  end
  error("the server did not start:\n" .. slurp(log))
end

local function stop_server(pid)
  if pid then os.execute("kill -TERM " .. pid .. "; while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.1; done") end
end

-- Fetches every path at once (up to 64 connections in parallel); returns
-- the bodies, the HTTP statuses and each one's time in seconds, in the
-- order of paths.
local function fetch_all(tmp, base, paths)
  local args = { "curl -s --parallel --parallel-immediate --parallel-max 64 --max-time 60",
    "-w '%{http_code} %{time_total} %{filename_effective}\\n'" }
  for i, path in ipairs(paths) do
    args[#args + 1] = ("-o %s/body.%d %s"):format(tmp, i, quote(base .. path))
  end
  local _, out = helper.run(table.concat(args, " "))
  local statuses, times = {}, {}
  for code, t, i in out:gmatch("(%d+) ([%d.]+) [^\n]*/body%.(%d+)") do
    statuses[tonumber(i)], times[tonumber(i)] = tonumber(code), tonumber(t)
  end
  local bodies = {}
  for i = 1, #paths do bodies[i] = slurp(("%s/body.%d"):format(tmp, i)) end
  return bodies, statuses, times
end

local function make_tables(conn)
  conn:exec("DROP TABLE IF EXISTS pool_items")
  conn:exec("DROP TABLE IF EXISTS pool_log")
  conn:exec("DROP TABLE IF EXISTS pool_serial")
  conn:exec("DROP TABLE IF EXISTS pool_counter")
  conn:exec("CREATE TABLE pool_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
  conn:exec("CREATE TABLE pool_log (id INTEGER NOT NULL)")
  conn:exec(conn.kind == "postgresql" and "CREATE TABLE pool_serial (id SERIAL PRIMARY KEY, v INTEGER)"
    or "CREATE TABLE pool_serial (id INTEGER PRIMARY KEY AUTOINCREMENT, v INTEGER)")
  conn:exec("CREATE TABLE pool_counter (n INTEGER NOT NULL)")
  conn:exec("INSERT INTO pool_counter VALUES (0)")
  if conn.kind == "postgresql" then
    conn:exec("CREATE OR REPLACE FUNCTION pool_login(u text) RETURNS text LANGUAGE sql"
      .. " AS $$ SELECT set_config('app.user', u, false) $$")
  end
  conn:transaction(function()
    for i = 1, ITEMS do conn:exec("INSERT INTO pool_items VALUES ($1, $2)", i, "item " .. i) end
  end)
end

local function drop_tables(conn)
  for _, t in ipairs({ "pool_items", "pool_log", "pool_serial", "pool_counter" }) do
    conn:exec("DROP TABLE IF EXISTS " .. t)
  end
  if conn.kind == "postgresql" then conn:exec("DROP FUNCTION IF EXISTS pool_login(text)") end
end

describe("concurrent requests on the " .. kind .. " database", function()
  local tmp, pid, log, base

  local function fetch(paths) return fetch_all(tmp, base, paths) end

  setup(function()
    tmp = helper.tmpdir()
    local conn <close> = db.connect(helper.database_url())
    make_tables(conn)
    pid, base, log = start_server(tmp, helper.database_url(), "WORKERS=2")
  end)

  teardown(function()
    stop_server(pid)
    local conn <close> = db.connect(helper.database_url())
    drop_tables(conn)
  end)

  -- Runs the mix of requests, checking every answer.
  local function mixed_round()
    local paths, want = {}, {}
    for i = 1, ITEMS do
      local id = (i * 7) % ITEMS + 1
      local which = i % 7
      if which == 0 then
        paths[i], want[i] = "/two?id=" .. id, "item " .. id .. "/" .. id
      elseif which == 1 then
        paths[i], want[i] = "/own-coroutine?id=" .. id, "item " .. id
      elseif which == 2 then
        paths[i], want[i] = "/transaction?id=" .. id, "item " .. id
      elseif which == 3 then
        paths[i], want[i] = "/pcall?id=" .. id, "42703/item " .. id   -- undefined column
      elseif which == 4 then
        local names = {}
        for k = id, math.min(id + 2, ITEMS) do names[#names + 1] = "item " .. k end
        paths[i], want[i] = "/rows?id=" .. id, table.concat(names, ",")
      else
        paths[i], want[i] = "/get?id=" .. id, "item " .. id
      end
    end
    local bodies, statuses = fetch(paths)
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
      assert.are.same({}, mixed_round())
    end
  end)

  if kind == "postgresql" then
    it("answers a lone request as soon as its statement is done", function()
      -- (the worker's loop once slept its full 100 ms before sending the
      -- answer of a request woken by the database)
      local times = {}
      for i = 1, 5 do
        local bodies, statuses, took = fetch({ "/get?id=" .. i })
        assert.are.equal(200, statuses[1], bodies[1])
        times[i] = took[1]
      end
      table.sort(times)
      assert.is_true(times[3] < 0.05, ("a lone request took %.3f s (median of 5)"):format(times[3]))
    end)
  end

  if kind == "postgresql" then
    it("runs the statements of requests in flight at the same time", function()
      -- 32 statements of 0.4 s: one after another per worker they take
      -- 6.4 s on 2 workers; sent at once, about 0.4 s
      local paths = {}
      for i = 1, 32 do paths[i] = "/sleep?id=400" end
      local t0 = util.clock()
      local bodies, statuses = fetch(paths)
      local took = util.clock() - t0
      for i = 1, #paths do assert.are.equal(200, statuses[i], bodies[i]) end
      assert.is_true(took < 3.2, ("32 requests sleeping 0.4 s took %.2f s: they did not run at once"):format(took))
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
    local bodies, statuses = fetch(paths)
    for i = 1, #paths do assert.are.equal(200, statuses[i], paths[i] .. ": " .. bodies[i]) end
    local conn <close> = db.connect(helper.database_url())
    local ids = {}
    for _, row in ipairs(conn:query("SELECT id FROM pool_log WHERE id > -100000 ORDER BY id")) do
      ids[#ids + 1] = row.id
    end
    -- every /log insert committed; every /manual-tx insert (negative) rolled back
    assert.are.same(logged, ids)
  end)

  it("keeps each request's session state its own between its statements", function()
    local seeded = {}   -- the seeds' random numbers, one request at a time
    for s = 0, 9 do seeded[s] = fetch({ "/seed?id=" .. s })[1] end
    local routes = { "/lastval", "/setting", "/get", "/nested-setting", "/login", "/seed" }
    local paths = {}
    for i = 1, 300 do
      paths[i] = routes[i % #routes + 1] .. "?id=" .. (i % ITEMS + 1)
    end
    local bodies, statuses = fetch(paths)
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
    bodies, statuses = fetch(paths)
    for i = 1, #paths do assert.are.equal(200, statuses[i], bodies[i]) end
    local conn <close> = db.connect(helper.database_url())
    assert.are.equal(60, conn:first("SELECT n FROM pool_counter").n,
      "a read-modify-write under an advisory lock lost updates")
  end)

  it("rolls back what a failed handler left open before anyone else gets its connection", function()
    local paths = {}
    for i = 1, 64 do paths[i] = (i % 2 == 0 and "/leave-open?id=" or "/fresh?id=") .. i end
    local bodies, statuses = fetch(paths)
    for i = 1, #paths do
      if i % 2 == 0 then
        assert.are.equal(500, statuses[i], bodies[i])
      else
        assert.are.equal(200, statuses[i], bodies[i])
        assert.are.equal("fresh", bodies[i])
      end
    end
    local conn <close> = db.connect(helper.database_url())
    assert.are.equal(0, conn:first("SELECT count(*) AS n FROM pool_log WHERE id <= -100000").n,
      "a failed handler's open transaction was committed")
  end)

  it("gives a handler coroutine.resume's own error messages", function()
    local _, want = pcall(coroutine.resume, 42)
    assert.are.equal(want, fetch({ "/coroutine-error" })[1])
  end)

  it("never reports committed a transaction PostgreSQL rolled back", function()
    local want = kind == "postgresql" and "25P02" or "committed"
    for i = 1, 2 do
      local bodies, statuses = fetch({ "/tx-caught?id=" .. i })
      assert.are.equal(200, statuses[1], bodies[1])
      assert.are.equal(want, bodies[1])
    end
  end)

  it("answers 500 to a handler that yields by itself, and keeps serving", function()
    local bodies, statuses = fetch({ "/yield", "/get?id=5" })
    assert.are.equal(500, statuses[1])
    assert.are.equal('{"detail":"Internal Server Error"}', bodies[1])
    assert.are.equal(200, statuses[2])
    assert.are.equal("item 5", bodies[2])
    assert.truthy(slurp(log):find("coroutine.yield outside a coroutine of its own", 1, true))
  end)
end)

if kind ~= "postgresql" then return end

describe("a worker's connection pool", function()
  local tmp, pg_dir, pg_url, pid, base, log

  local function fetch(paths) return fetch_all(tmp, base, paths) end
  local function ctl(...) return helper.run("tests/pg.sh ctl " .. quote(pg_dir) .. " " .. table.concat({ ... }, " ")) end
  local function postmaster() return slurp(pg_dir .. "/data/postmaster.pid"):match("^(%d+)") end

  setup(function()
    tmp = helper.tmpdir()
    local _, env = helper.run("tests/pg.sh start")
    pg_dir, pg_url = env:match("TEST_PG_DIR='([^']+)'"), env:match("TEST_PG_URL='([^']+)'")
    assert(pg_dir and pg_url, "no PostgreSQL for the pool's tests: " .. env)
    local conn <close> = db.connect(pg_url)
    make_tables(conn)
    pid, base, log = start_server(tmp, pg_url, "WORKERS=1 DB_POOL_SIZE=2 DB_POOL_TIMEOUT=600 DB_POOL_RESET=full")
  end)

  teardown(function()
    stop_server(pid)
    if pg_dir then
      local p = postmaster()
      if p then os.execute("kill -CONT " .. p .. " 2>/dev/null") end
      helper.run("tests/pg.sh stop " .. quote(pg_dir))
    end
  end)

  it("lends at most DB_POOL_SIZE connections; a request that waits longer than DB_POOL_TIMEOUT gets 503", function()
    local paths = { "/sleep?id=1500", "/sleep?id=1500", "/sleep?id=1500", "/sleep?id=1500" }
    local bodies, statuses, times = fetch(paths)
    table.sort(statuses)
    assert.are.same({ 200, 200, 503, 503 }, statuses, table.concat(bodies, " | "))
    local fast = 0
    for i = 1, 4 do if times[i] < 1.2 then fast = fast + 1 end end
    assert.are.equal(2, fast, "the two 503s come after DB_POOL_TIMEOUT (0.6 s), not after the sleeps")
    assert.truthy(slurp(log):find("all 2 database connections of this worker were busy for 600 ms", 1, true))
    assert.are.equal("2 open, 0 lent, 0 waiting", fetch({ "/pool" })[1])
  end)

  it("with DB_POOL_RESET=full, resets the session state a request leaves behind", function()
    for i = 1, 12 do
      local bodies, statuses = fetch({ "/leave-state?id=" .. i })
      assert.are.equal(200, statuses[1], bodies[1])
      assert.are.equal("clean", bodies[1])
    end
  end)

  it("serves requests that need no database while every connection is busy", function()
    local paths = { "/sleep?id=1500", "/sleep?id=1500", "/nodb", "/nodb", "/nodb" }
    local bodies, statuses, times = fetch(paths)
    for i = 3, 5 do
      assert.are.equal(200, statuses[i], bodies[i])
      assert.is_true(times[i] < 1.0, ("/nodb took %.2f s behind busy database requests"):format(times[i]))
    end
  end)

  it("reads the rest of a rows() loop left early without holding up the worker", function()
    local alone = fetch({ "/nodb" })   -- (a reference: the same request with nothing else going on)
    local _, _, ref = fetch({ "/nodb" })
    assert.are.equal("no database", alone[1])
    -- the loop leaves after its first row; the server sends 19 more over 2.85 s
    local bg = io.popen(("curl -s --max-time 30 %s"):format(quote(base .. "/rows-break?id=150")))
    os.execute("sleep 0.8")
    local bodies, statuses, times = fetch({ "/nodb" })
    assert.are.equal(200, statuses[1], bodies[1])
    assert.is_true(times[1] < ref[1] + 1.0,
      ("/nodb took %.2f s (alone: %.2f s) while a left rows() loop was read"):format(times[1], ref[1]))
    assert.are.equal("item 1", bg:read("a"), "the statement after the loop on the same connection")
    bg:close()
  end)

  it("never lets a request read from a rows() loop on another request's connection", function()
    local bg = io.popen(("curl -s --max-time 30 %s"):format(quote(base .. "/cursor-keep?id=800")))
    os.execute("sleep 0.3")
    local bodies, statuses = fetch({ "/cursor-steal" })
    assert.are.equal(200, statuses[1], bodies[1])
    local kept = bg:read("a")
    bg:close()
    assert.are.equal("refused", bodies[1])
    assert.are.equal("40", kept, "the request that opened the loop read every row itself")
  end)

  it("never lets a request resume a coroutine that waits for the database for another", function()
    local bg = io.popen(("curl -s --max-time 30 %s"):format(quote(base .. "/coroutine-keep?id=800")))
    os.execute("sleep 0.3")
    local bodies, statuses = fetch({ "/coroutine-steal" })
    local kept = bg:read("a")
    bg:close()
    assert.are.equal(200, statuses[1], bodies[1])
    assert.are.equal("refused", bodies[1])
    assert.are.equal("item 1", kept, "the request that paused in its coroutine gets its own answer")
    assert.are.equal("item 2", fetch({ "/get?id=2" })[1])
  end)

  it("ends a transaction whose function left a rows() loop unfinished, and nothing after it stays in it", function()
    local bodies, statuses = fetch({ "/tx-left-loop?id=700000" })
    assert.are.equal(200, statuses[1], bodies[1])
    assert.are.equal("committed", bodies[1])
    local conn <close> = db.connect(pg_url)
    local ids = {}
    for _, row in ipairs(conn:query("SELECT id FROM pool_log WHERE id >= 700000 ORDER BY id")) do
      ids[#ids + 1] = row.id
    end
    assert.are.same({ 700000, 700001 }, ids)
  end)

  -- A pool thread takes a reloaded worker only when none of its requests
  -- is pending: under a steady load of requests waiting on the database,
  -- new requests are held back meanwhile, or the new code never serves.
  it("takes up reloaded code while requests keep waiting on the database", function()
    local dir = tmp .. "/reload"
    os.execute("mkdir -p " .. quote(dir .. "/scripts"))
    local function version(v) helper.write(dir .. "/scripts/pool_version.lua", "return " .. v .. "\n") end
    version(1)
    local root = io.popen("pwd"):read("l")
    local rlog = dir .. "/server.log"
    local rpid = io.popen(("cd %s && env DATABASE_URL=%s DEBUG=false APP=pool_app ACCESS_LOG=false WORKERS=1 "
      .. "RELOAD=true LUA_PATH=%s %s run %s >%s 2>&1 & echo $!"):format(quote(dir), quote(pg_url),
      quote(dir .. "/scripts/?.lua;" .. root .. "/tests/fixtures/?.lua;;"), quote(helper.todohost()),
      quote(root .. "/tests/fixtures/serve_hello.lua"), quote(rlog))):read("l")
    local port
    for _ = 1, 300 do
      port = slurp(rlog):match("serving on http://[^ ]*:(%d+) ")
      if port then break end
      os.execute("sleep 0.1")
    end
    local rbase = "http://127.0.0.1:" .. assert(port, slurp(rlog))
    local function get(path) return io.popen("curl -s --max-time 10 " .. quote(rbase .. path)):read("a") end
    assert.are.equal("1", get("/version"))
    -- a request waiting 0.3 s on PostgreSQL every 0.1 s for 4 s
    local load = io.popen(("for i in $(seq 1 40); do curl -s -o /dev/null %s & sleep 0.1; done; wait")
      :format(quote(rbase .. "/sleep?id=300")))
    os.execute("sleep 0.5")
    version(2)
    os.execute("sleep 2.5")   -- (the server looks at its files every 0.4 s)
    local seen = get("/version")
    load:close()
    stop_server(rpid)
    assert.truthy(slurp(rlog):find("reloaded", 1, true), slurp(rlog))
    assert.are.equal("2", seen, "2.5 s after the change, under load")
  end)

  it("replaces connections whose sessions were terminated", function()
    local admin <close> = db.connect(pg_url)
    local n = admin:first([[SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
      WHERE application_name = 'todohost' AND pid <> pg_backend_pid()]]).n
    assert.is_true(n >= 2, "terminated " .. n .. " sessions")
    os.execute("sleep 0.2")
    local paths = {}
    for i = 1, 20 do paths[i] = "/get?id=" .. i end
    local bodies, statuses = fetch(paths)
    for i = 1, #paths do
      assert.are.equal(200, statuses[i], bodies[i])
      assert.are.equal("item " .. i, bodies[i])
    end
  end)

  it("recovers after PostgreSQL restarts", function()
    ctl("restart", "-m", "fast", "-w", "-l", quote(pg_dir .. "/log"))
    local paths = {}
    for i = 1, 20 do paths[i] = "/get?id=" .. i end
    local bodies, statuses = fetch(paths)
    for i = 1, #paths do assert.are.equal(200, statuses[i], bodies[i]) end
  end)

  it("answers 503 soon when PostgreSQL accepts connections and never answers, and recovers", function()
    fetch({ "/get?id=1", "/get?id=2" })   -- (the pool has connections)
    local admin <close> = db.connect(pg_url)
    local pids = {}
    for _, row in ipairs(admin:query([[SELECT pid FROM pg_stat_activity
        WHERE application_name = 'todohost' AND pid <> pg_backend_pid()]])) do
      pids[#pids + 1] = row.pid
    end
    admin:close()
    assert.is_true(#pids >= 1, "no connection of the pool's to end")
    -- the postmaster stopped: the kernel still accepts connections for it,
    -- and nothing answers them; then the pool's sessions end
    local p = assert(postmaster(), "no postmaster.pid")
    os.execute("kill -STOP " .. p .. "; kill -TERM " .. table.concat(pids, " "))
    os.execute("sleep 0.3")
    local bodies, statuses, times = fetch({ "/get?id=1", "/get?id=2", "/nodb" })
    os.execute("kill -CONT " .. p)
    assert.are.equal(503, statuses[1], bodies[1])
    assert.are.equal(503, statuses[2], bodies[2])
    assert.is_true(times[1] < 2.5 and times[2] < 2.5, ("503 after %.2f s and %.2f s"):format(times[1], times[2]))
    assert.are.equal(200, statuses[3])
    assert.is_true(times[3] < 0.5, ("/nodb took %.2f s"):format(times[3]))
    assert.truthy(slurp(log):find("no connection to PostgreSQL within 600 ms", 1, true))
    local ok = false
    for _ = 1, 50 do   -- (the attempts under way end first)
      if fetch({ "/get?id=3" })[1] == "item 3" then ok = true break end
      os.execute("sleep 0.2")
    end
    assert.is_true(ok, "no answer from the database after it came back")
  end)

  it("stops within its time-out while a statement never ends: the request gets 503", function()
    -- a server of its own, with a 1 s time-out (its graceful stop waits that long)
    local own_tmp = helper.tmpdir()
    local own, own_base, own_log = start_server(own_tmp, pg_url, "WORKERS=1 HTTP_TIMEOUT=1")
    local out = own_tmp .. "/never.out"
    os.execute(("curl -s -o /dev/null -w '%%{http_code}' --max-time 120 %s >%s 2>&1 &")
      :format(quote(own_base .. "/sleep?id=600000"), quote(out)))
    local admin <close> = db.connect(pg_url)
    local running = false
    for _ = 1, 100 do   -- (until PostgreSQL runs the statement)
      running = admin:first([[SELECT count(*) AS n FROM pg_stat_activity
        WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active']]).n > 0
      if running then break end
      os.execute("sleep 0.05")
    end
    assert.is_true(running, "the statement never started")
    local t0 = util.clock()
    os.execute("kill -TERM " .. own)
    local gone = false
    for _ = 1, 150 do
      if not os.execute("kill -0 " .. own .. " 2>/dev/null") then gone = true break end
      os.execute("sleep 0.1")
    end
    local took = util.clock() - t0
    if not gone then os.execute("kill -KILL " .. own) end
    admin:exec([[SELECT pg_cancel_backend(pid) FROM pg_stat_activity
      WHERE query LIKE 'SELECT pg_sleep%' AND pid <> pg_backend_pid()]])
    assert.is_true(gone, "the server did not stop in 15 s:\n" .. slurp(own_log))
    assert.is_true(took < 6, ("the stop took %.1f s"):format(took))
    for _ = 1, 50 do   -- (curl writes its code as it ends)
      if slurp(out) ~= "" then break end
      os.execute("sleep 0.1")
    end
    assert.are.equal("503", slurp(out), slurp(own_log))
    assert.truthy(slurp(own_log):find("stopped", 1, true), slurp(own_log))
  end)

  it("answers 503 at once when PostgreSQL is down", function()
    ctl("stop", "-m", "fast", "-w")
    local bodies, statuses, times = fetch({ "/get?id=1", "/get?id=2", "/get?id=3" })
    ctl("restart", "-w", "-l", quote(pg_dir .. "/log"))   -- (restart: with its options)
    for i = 1, 3 do
      assert.are.equal(503, statuses[i], bodies[i])
      assert.is_true(times[i] < 0.5, ("503 after %.2f s"):format(times[i]))
    end
  end)
end)
