-- tests/spec/db_spec.lua: the todohost.db API (docs/lua-api.md) against a
-- real database: TEST_DATABASE_URL is a SQLite file in one pass and the test
-- PostgreSQL server in the other.
local db = require "todohost.db"
local util = require "todohost.util"
local helper = require "spec_helper"

local url = helper.database_url()
local is_pg = url:match("^postgres") ~= nil

local function fresh_table(conn)
  conn:exec("DROP TABLE IF EXISTS spec_items")
  if conn.kind == "postgresql" then
    conn:exec([[CREATE TABLE spec_items (id SERIAL PRIMARY KEY, title VARCHAR(200) NOT NULL,
      done BOOLEAN, n BIGINT, f DOUBLE PRECISION, at TIMESTAMP WITH TIME ZONE, note TEXT)]])
  else
    conn:exec([[CREATE TABLE spec_items (id INTEGER NOT NULL PRIMARY KEY, title VARCHAR(200) NOT NULL,
      done BOOLEAN, n BIGINT, f FLOAT, at DATETIME, note TEXT)]])
  end
end

describe("todohost.db on " .. (is_pg and "PostgreSQL" or "SQLite"), function()
  local conn

  before_each(function()
    conn = db.connect(url)
    fresh_table(conn)
  end)

  after_each(function()
    if conn then conn:close() end
  end)

  describe("connect", function()
    it("reports its kind", function()
      assert.equal(is_pg and "postgresql" or "sqlite", conn.kind)
    end)

    it("defaults to DATABASE_URL", function()
      local saved = os.getenv("DATABASE_URL")
      assert.is_string(saved)  -- the host sets the default when nothing else does
      local c = db.connect()
      assert.is_truthy(c.kind == "sqlite" or c.kind == "postgresql")
      c:close()
    end)

    it("never shows the password", function()
      if not is_pg then return end
      local text = tostring(conn)
      assert.is_nil(text:find(helper.pg_password(), 1, true))
      assert.truthy(text:find("***", 1, true))
    end)

    it("accepts every documented URL form", function()
      if is_pg then
        for _, scheme in ipairs { "postgres", "postgresql", "postgresql+psycopg2" } do
          local c = db.connect((url:gsub("^[%w+]+://", scheme .. "://")))
          assert.equal(1, c:first("SELECT 1 AS one").one)
          c:close()
        end
      else
        local dir = helper.tmpdir()
        local abs = db.connect("sqlite:////" .. dir:gsub("^/", "") .. "/abs.db")
        abs:exec("CREATE TABLE t (x INTEGER)")
        abs:close()
        assert.is_truthy(io.open(dir .. "/abs.db"))
        local mem = db.connect("sqlite:///:memory:")
        assert.equal(2, mem:first("SELECT 1 + 1 AS two").two)
        mem:close()
      end
    end)

    it("refuses an unknown scheme, listing the supported forms", function()
      local ok, err = pcall(db.connect, "mysql://u:secret@h/db")
      assert.is_false(ok)
      assert.truthy(tostring(err):find("unsupported database URL scheme 'mysql'", 1, true))
      assert.truthy(tostring(err):find("postgresql+psycopg2://", 1, true))
      assert.is_nil(tostring(err):find("secret", 1, true))
    end)

    it("says PostgreSQL is not running when the connection is refused", function()
      local port = helper.free_port()
      local ok, err = pcall(db.connect, ("postgresql://todo_user:hunter2@127.0.0.1:%d/todo_db"):format(port))
      assert.is_false(ok)
      assert.equal("08001", err.sqlstate)
      assert.truthy(err.message:find("connection refused", 1, true))
      assert.truthy(err.hint:find("make db-start", 1, true))
      assert.is_nil(tostring(err):find("hunter2", 1, true))
    end)

    it("says how to create a database that does not exist", function()
      if not is_pg then return end
      local ok, err = pcall(db.connect, (url:gsub("/[^/?]+$", "/no_such_db_here")))
      assert.is_false(ok)
      assert.equal("3D000", err.sqlstate)
      assert.truthy(err.hint:find("createdb", 1, true))
      assert.is_nil(tostring(err):find(helper.pg_password(), 1, true))
    end)

    it("configures SQLite files: WAL and foreign keys", function()
      if is_pg then return end
      assert.equal("wal", conn:first("PRAGMA journal_mode").journal_mode)
      assert.equal(1, conn:first("PRAGMA foreign_keys").foreign_keys)
      assert.equal(1, conn:first("PRAGMA synchronous").synchronous)  -- NORMAL, safe with WAL
    end)

    -- SQLite checkpoints its log only when a statement steps to its end: a
    -- writer that first() stopped after one row (INSERT ... RETURNING, the
    -- API's POST) committed at its reset and never checkpointed, so the
    -- -wal file of a server taking only POSTs grew without bound (636 MB in
    -- 5 s of bench-http) and every reader slowed down.
    it("keeps the SQLite log bounded when first() runs INSERT ... RETURNING", function()
      if is_pg then return end
      local path = url:gsub("^sqlite:///", "")
      conn:exec("PRAGMA wal_checkpoint(TRUNCATE)")
      for i = 1, 3000 do
        local row = conn:first("INSERT INTO spec_items (title, note) VALUES ($1, $2) RETURNING id",
          "item " .. i, string.rep("x", 200))
        assert.is_number(row.id)
      end
      local f = assert(io.open(path .. "-wal", "rb"))
      local size = f:seek("end")
      f:close()
      -- the automatic checkpoint runs every 1,000 pages: the log stays
      -- near 4 MB at most (without checkpoints, 3,000 commits: 25 MB)
      assert.is_true(size < 8 * 1024 * 1024, "the -wal file grew to " .. size .. " bytes")
      assert.equal(3000, conn:first("SELECT count(*) AS n FROM spec_items").n)
    end)

    -- Two writers taking turns (two server workers) each found the other
    -- inside a transaction at every passive checkpoint: the log never
    -- started over (130 MB after 16,000 inserts, growing on).
    it("keeps the SQLite log bounded while two processes write at once", function()
      if is_pg then return end
      local path = url:gsub("^sqlite:///", "")
      local dir = helper.tmpdir()
      local script = dir .. "/writer.lua"
      helper.write(script, [[
local conn = require("todohost.db").connect(arg[1])
local log = arg[1]:gsub("^sqlite:///", "") .. "-wal"
local peak = 0
for i = 1, 6000 do
  conn:exec("INSERT INTO spec_items (title, note) VALUES ($1, $2)", "item " .. i, string.rep("x", 200))
  if i % 100 == 0 then
    local f = io.open(log, "rb")
    if f then peak = math.max(peak, f:seek("end")); f:close() end
  end
end
print(peak)
]])
      local one = ("%s run %s %s"):format(helper.quote(helper.todohost()), helper.quote(script), helper.quote(url))
      local code, out = helper.run(("%s & %s & wait"):format(one, one))
      assert.equal(0, code)
      local peaks = {}
      for n in out:gmatch("%d+") do peaks[#peaks + 1] = tonumber(n) end
      assert.equal(2, #peaks, out)
      for _, peak in ipairs(peaks) do
        assert.is_true(peak < 32 * 1024 * 1024, "the -wal file of " .. path .. " grew to " .. peak .. " bytes")
      end
      assert.equal(12000, conn:first("SELECT count(*) AS n FROM spec_items").n)
    end)

    it("reports a failed commit of a writer that first() stopped early", function()
      local key = is_pg and "SERIAL PRIMARY KEY" or "INTEGER PRIMARY KEY"
      conn:exec("DROP TABLE IF EXISTS spec_child")
      conn:exec("DROP TABLE IF EXISTS spec_parent")
      conn:exec("CREATE TABLE spec_parent (id " .. key .. ")")
      conn:exec("CREATE TABLE spec_child (id " .. key .. [[,
        parent INTEGER REFERENCES spec_parent (id) DEFERRABLE INITIALLY DEFERRED)]])
      -- a deferred foreign key is checked at the commit, after the row came back
      local ok, err = pcall(conn.first, conn, "INSERT INTO spec_child (parent) VALUES (42) RETURNING id")
      assert.is_false(ok)
      assert.equal("23503", err.sqlstate)
      assert.equal(0, conn:first("SELECT count(*) AS n FROM spec_child").n)
      -- SQLite: the same from a rows() loop left at its first row (on
      -- PostgreSQL the server ends a statement cut short on its own: the
      -- rollback happens, nothing is reported to the loop that left)
      ok, err = pcall(function()
        for _ in conn:rows("INSERT INTO spec_child (parent) VALUES (42), (43) RETURNING id") do break end
      end)
      if not is_pg then
        assert.is_false(ok)
        assert.equal("23503", err.sqlstate)
      end
      assert.equal(0, conn:first("SELECT count(*) AS n FROM spec_child").n)
      conn:exec("DROP TABLE spec_child")
      conn:exec("DROP TABLE spec_parent")
    end)

    it("makes a SQLite writer wait for the lock up to its busy timeout", function()
      if is_pg then return end
      local holder = db.connect(url)
      local waiter = db.connect(url, { busy_timeout = 300 })
      holder:exec("BEGIN IMMEDIATE")
      holder:exec("INSERT INTO spec_items (title) VALUES ('held')")
      local t0 = util.clock()
      local ok, err = pcall(waiter.exec, waiter, "INSERT INTO spec_items (title) VALUES ('blocked')")
      local waited = util.clock() - t0
      assert.is_false(ok)
      assert.equal("55P03", err.sqlstate)
      assert.is_true(waited >= 0.25 and waited < 2, "waited " .. waited .. " s")
      holder:exec("COMMIT")
      assert.equal(1, waiter:exec("INSERT INTO spec_items (title) VALUES ('after')"))
      holder:close()
      waiter:close()
    end)
  end)

  describe("exec, query, first, rows", function()
    it("exec returns the number of rows affected", function()
      assert.equal(1, conn:exec("INSERT INTO spec_items (title) VALUES ($1)", "a"))
      assert.equal(1, conn:exec("INSERT INTO spec_items (title) VALUES ($1)", "b"))
      assert.equal(2, conn:exec("UPDATE spec_items SET note = $1", "x"))
      assert.equal(1, conn:exec("DELETE FROM spec_items WHERE title = $1", "a"))
      assert.equal(0, conn:exec("DELETE FROM spec_items WHERE title = $1", "zzz"))
    end)

    it("query returns every row keyed by column name, in order", function()
      for i = 1, 5 do conn:exec("INSERT INTO spec_items (title, n) VALUES ($1, $2)", "t" .. i, i * 10) end
      local rows = conn:query("SELECT title, n FROM spec_items WHERE n > $1 ORDER BY n", 20)
      assert.equal(3, #rows)
      assert.same({ title = "t3", n = 30 }, rows[1])
      assert.same({ title = "t5", n = 50 }, rows[3])
      assert.same({}, conn:query("SELECT title FROM spec_items WHERE n < 0"))
    end)

    it("first returns the first row or nil", function()
      conn:exec("INSERT INTO spec_items (title) VALUES ('only')")
      assert.equal("only", conn:first("SELECT title FROM spec_items").title)
      assert.is_nil(conn:first("SELECT title FROM spec_items WHERE title = $1", "none"))
    end)

    it("rows streams every row", function()
      conn:transaction(function()
        for i = 1, 300 do conn:exec("INSERT INTO spec_items (title, n) VALUES ($1, $2)", "r", i) end
      end)
      local sum, count = 0, 0
      for row in conn:rows("SELECT n FROM spec_items ORDER BY n") do
        sum, count = sum + row.n, count + 1
      end
      assert.equal(300, count)
      assert.equal(300 * 301 // 2, sum)
    end)

    it("rows closes its cursor on break, leaving the connection usable", function()
      for i = 1, 50 do conn:exec("INSERT INTO spec_items (title, n) VALUES ('r', $1)", i) end
      for row in conn:rows("SELECT n FROM spec_items ORDER BY n") do
        if row.n == 3 then break end
      end
      assert.equal(50, conn:first("SELECT count(*) AS c FROM spec_items").c)
    end)

    it("binds parameters by number, in any order, never splicing them", function()
      local evil = "x'); DROP TABLE spec_items; --"
      conn:exec("INSERT INTO spec_items (note, title) VALUES ($2, $1)", evil, "second")
      local row = conn:first("SELECT title, note FROM spec_items")
      assert.same({ title = evil, note = "second" }, row)
      assert.equal(1, conn:first("SELECT count(*) AS c FROM spec_items WHERE title = $1", evil).c)
    end)

    it("refuses a wrong number of parameters", function()
      local ok, err = pcall(function() return conn:query("SELECT CAST($1 AS INTEGER) AS a, CAST($2 AS INTEGER) AS b", 1) end)
      assert.is_false(ok)
      assert.is_string(err.message)
      assert.equal("07001", err.sqlstate)
    end)

    it("refuses two statements in one call", function()
      local ok = pcall(function() return conn:exec("SELECT 1; SELECT 2", 1) end)
      assert.is_false(ok)
    end)

    it("reuses one prepared statement for the same SQL", function()
      if not is_pg then return end
      for i = 1, 20 do conn:first("SELECT $1::int + 1 AS v /* cache probe */", i) end
      local n = conn:first([[SELECT count(*) AS n FROM pg_prepared_statements
        WHERE statement LIKE '%cache probe%' AND statement NOT LIKE '%pg_prepared%']]).n
      assert.equal(1, n)
    end)
  end)

  describe("values", function()
    it("keeps 64-bit integers exact both ways", function()
      for _, v in ipairs { math.maxinteger, math.mininteger, 0, -1, 9007199254740993 } do
        conn:exec("DELETE FROM spec_items")
        conn:exec("INSERT INTO spec_items (title, n) VALUES ('i', $1)", v)
        local got = conn:first("SELECT n FROM spec_items").n
        assert.equal("integer", math.type(got))
        assert.equal(v, got)
      end
    end)

    it("keeps floats bit-exact", function()
      for _, v in ipairs { 0.1, 1 / 3, 1e308, -2.5e-300, 123456789.125 } do
        conn:exec("DELETE FROM spec_items")
        conn:exec("INSERT INTO spec_items (title, f) VALUES ('f', $1)", v)
        local got = conn:first("SELECT f FROM spec_items").f
        assert.equal("float", math.type(got))
        assert.equal(v, got)
      end
    end)

    it("maps booleans both ways (SQLite BOOLEAN columns too)", function()
      conn:exec("INSERT INTO spec_items (title, done) VALUES ('t', $1)", true)
      conn:exec("INSERT INTO spec_items (title, done) VALUES ('f', $1)", false)
      local rows = conn:query("SELECT title, done FROM spec_items ORDER BY title")
      assert.is_false(rows[1].done)
      assert.is_true(rows[2].done)
      assert.equal(1, #conn:query("SELECT id FROM spec_items WHERE done = $1", true))
    end)

    it("maps NULL to nil: the key is absent, and nil binds NULL", function()
      conn:exec("INSERT INTO spec_items (title, note, n) VALUES ($1, $2, $3)", "t", nil, nil)
      local row = conn:first("SELECT title, note, n FROM spec_items")
      assert.same({ title = "t" }, row)
      assert.equal(1, conn:first("SELECT count(*) AS c FROM spec_items WHERE note IS NULL").c)
    end)

    it("returns timestamps as ISO 8601 with a UTC offset", function()
      conn:exec("INSERT INTO spec_items (title, at) VALUES ('t', $1)", "2026-02-21 10:11:12.345678")
      local at = conn:first("SELECT at FROM spec_items").at
      assert.equal("2026-02-21T10:11:12.345678+00:00", at)
    end)

    it("gives timestamp fractions six digits", function()
      conn:exec("INSERT INTO spec_items (title, at) VALUES ('t', $1)", "2026-02-21 10:11:12.5")
      assert.equal("2026-02-21T10:11:12.500000+00:00", conn:first("SELECT at FROM spec_items").at)
    end)

    it("keeps text byte-exact", function()
      local text = "tab\there \"quotes\" \\ back 'single' \n newline ✓ 😀"
      conn:exec("INSERT INTO spec_items (title, note) VALUES ('t', $1)", text)
      assert.equal(text, conn:first("SELECT note FROM spec_items").note)
    end)

    it("rejects values that are not SQL values with bad argument", function()
      local ok, err = pcall(function() return conn:exec("SELECT $1", {}) end)
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #2 to 'exec'", 1, true))
      assert.truthy(err:find("got table", 1, true))
    end)

    it("rejects a SQL text that is not a string", function()
      local ok, err = pcall(function() return conn:query(42 == 42 and {} or "") end)
      assert.is_false(ok)
      assert.truthy(err:find("bad argument #1 to 'query'", 1, true))
    end)
  end)

  describe("transactions", function()
    it("never reports committed a transaction PostgreSQL rolled back (an error in it caught by pcall)", function()
      local ok, err = pcall(conn.transaction, conn, function(c)
        c:exec("INSERT INTO spec_items (title) VALUES ('lost')")
        pcall(c.exec, c, "SELECT no_such_column FROM spec_items")
      end)
      local n = conn:first("SELECT count(*) AS n FROM spec_items").n
      if is_pg then   -- (SQLite's transaction goes on after a failed statement)
        assert.is_false(ok, "transaction() returned as if it had committed")
        assert.equal("25P02", err.sqlstate)
        assert.equal(0, n)
      else
        assert.is_true(ok, tostring(err))
        assert.equal(1, n)
      end
      assert.equal(1, conn:first("SELECT 1 AS one").one, "the connection works on")
    end)

    it("commits when the function returns, passing its results through", function()
      local a, b = conn:transaction(function(c)
        c:exec("INSERT INTO spec_items (title) VALUES ('in')")
        return 1, "two"
      end)
      assert.equal(1, a)
      assert.equal("two", b)
      assert.equal(1, conn:first("SELECT count(*) AS c FROM spec_items").c)
    end)

    it("rolls back on error and re-raises the original error", function()
      local marker = { "mine" }
      local ok, err = pcall(function()
        conn:transaction(function()
          conn:exec("INSERT INTO spec_items (title) VALUES ('gone')")
          error(marker)
        end)
      end)
      assert.is_false(ok)
      assert.equal(marker, err)
      assert.equal(0, conn:first("SELECT count(*) AS c FROM spec_items").c)
    end)

    it("nests with savepoints: an inner failure keeps the outer work", function()
      conn:transaction(function()
        conn:exec("INSERT INTO spec_items (title) VALUES ('outer')")
        local ok = pcall(conn.transaction, conn, function()
          conn:exec("INSERT INTO spec_items (title) VALUES ('inner')")
          error("inner fails")
        end)
        assert.is_false(ok)
        conn:transaction(function()
          conn:exec("INSERT INTO spec_items (title) VALUES ('inner2')")
        end)
      end)
      local titles = {}
      for _, r in ipairs(conn:query("SELECT title FROM spec_items ORDER BY title")) do
        titles[#titles + 1] = r.title
      end
      assert.same({ "inner2", "outer" }, titles)
    end)

    it("a failed statement never leaves the connection in an aborted transaction", function()
      assert.is_false(pcall(conn.exec, conn, "INSERT INTO no_such_table VALUES (1)"))
      assert.equal(1, conn:exec("INSERT INTO spec_items (title) VALUES ('after')"))
      conn:exec("BEGIN")
      assert.is_false(pcall(conn.exec, conn, "INSERT INTO no_such_table VALUES (1)"))
      if is_pg then
        -- outside transaction(), the aborted manual transaction was rolled back
        assert.equal(1, conn:first("SELECT count(*) AS c FROM spec_items").c)
      else
        conn:exec("COMMIT")
      end
    end)
  end)

  describe("errors", function()
    it("are tables with message, sqlstate and a one-line tostring", function()
      conn:exec("INSERT INTO spec_items (id, title) VALUES (1, 'a')")
      local ok, err = pcall(conn.exec, conn, "INSERT INTO spec_items (id, title) VALUES (1, 'b')")
      assert.is_false(ok)
      assert.is_true(db.is_error(err))
      assert.equal("23505", err.sqlstate)
      assert.is_string(err.message)
      assert.is_nil(tostring(err):find("\n"))
    end)

    it("use the PostgreSQL code for a missing table on both databases", function()
      local ok, err = pcall(conn.query, conn, "SELECT * FROM no_such_table")
      assert.is_false(ok)
      assert.equal("42P01", err.sqlstate)
    end)

    it("a NOT NULL violation is 23502", function()
      local ok, err = pcall(conn.exec, conn, "INSERT INTO spec_items (title) VALUES ($1)", nil)
      assert.is_false(ok)
      assert.equal("23502", err.sqlstate)
    end)
  end)

  describe("closing", function()
    it("is idempotent and later calls say the connection is closed", function()
      local c = db.connect(url)
      c:close()
      c:close()
      local ok, err = pcall(c.query, c, "SELECT 1")
      assert.is_false(ok)
      assert.truthy(err:find("connection is closed", 1, true))
      assert.equal("todohost.db connection (closed)", tostring(c))
    end)

    it("happens at the end of a <close> scope", function()
      local kept
      do
        local c <close> = db.connect(url)
        kept = c
        assert.equal(1, c:first("SELECT 1 AS one").one)
      end
      assert.is_false(pcall(kept.exec, kept, "SELECT 1"))
    end)

    it("a rows() loop keeps its connection alive and ends when it is closed", function()
      local c = db.connect(url)
      c:exec("INSERT INTO spec_items (title) VALUES ('a')")
      local iter, state, init, closer = c:rows("SELECT title FROM spec_items")
      c = nil
      collectgarbage()
      assert.equal("a", iter(state, init).title)
      closer:close()
      assert.is_nil(iter(state, init))
    end)

    it("closing the connection ends its open loops", function()
      local c = db.connect(url)
      c:exec("INSERT INTO spec_items (title) VALUES ('a')")
      c:exec("INSERT INTO spec_items (title) VALUES ('b')")
      local ok, err = pcall(function()
        for _ in c:rows("SELECT title FROM spec_items") do c:close() end
      end)
      assert.is_false(ok)
      assert.truthy(err:find("connection is closed", 1, true))
    end)
  end)

  describe("PostgreSQL values", function()
    -- Statements with parameters are prepared and, when every column type
    -- allows it, read in binary; statements without parameters run
    -- unprepared and are read as text. Both must give the very same values.
    local SELECT = [[SELECT
        '2026-02-21 10:11:12.345678+00'::timestamptz AS tz_frac,
        '2026-02-21 10:11:12+00'::timestamptz AS tz_whole,
        '1969-07-20 20:17:40.5+00'::timestamptz AS tz_before_1970,
        '1999-12-31 23:59:59.999999'::timestamp AS ts_naive,
        '9999-12-31 23:59:59'::timestamp AS ts_far,
        'infinity'::timestamptz AS tz_inf,
        '-infinity'::timestamp AS ts_neginf,
        '2024-02-29'::date AS leap_day,
        '1900-03-01'::date AS old_day,
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id_uuid,
        '\x00ff10'::bytea AS raw,
        (-32768)::int2 AS i2, (-2147483648)::int4 AS i4, (-9223372036854775807 - 1)::int8 AS i8,
        4294967295::oid AS an_oid,
        0.1::float8 AS f8, (-0.0)::float8 AS negzero, 1e308::float8 AS big,
        true AS yes, false AS no, 'naïve ✓'::text AS txt, 'ab'::char(4) AS padded,
        '{"a": [1, 2]}'::json AS doc, 'pg_class'::name AS nm, NULL::timestamptz AS nothing]]

    it("are the same read in binary (prepared) and in text (unprepared)", function()
      if not is_pg then return end
      local as_text = conn:first(SELECT)
      -- the first run of a statement is unprepared (text); the second is prepared
      assert.same(as_text, conn:first(SELECT .. " WHERE $1::int = 1", 1))
      local as_binary = conn:first(SELECT .. " WHERE $1::int = 1", 1)
      for k, v in pairs(as_text) do
        assert.equal(v, as_binary[k], k)
        assert.equal(math.type(v), math.type(as_binary[k]), k)
      end
      for k in pairs(as_binary) do assert.is_not_nil(as_text[k], k) end
      assert.equal("2026-02-21T10:11:12.345678+00:00", as_binary.tz_frac)
      assert.equal("2026-02-21T10:11:12+00:00", as_binary.tz_whole)
      assert.equal("1969-07-20T20:17:40.500000+00:00", as_binary.tz_before_1970)
      assert.equal("1999-12-31T23:59:59.999999", as_binary.ts_naive)
      assert.equal("infinity", as_binary.tz_inf)
      assert.equal("2024-02-29", as_binary.leap_day)
      assert.equal("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", as_binary.id_uuid)
      assert.equal("\0\255\16", as_binary.raw)
      assert.equal(math.mininteger, as_binary.i8)
      assert.equal(0.1, as_binary.f8)
      assert.equal("ab  ", as_binary.padded)
      assert.is_nil(as_binary.nothing)
    end)

    it("read columns without a binary decoder (numeric, float4) as text", function()
      if not is_pg then return end
      local row = conn:first("SELECT 12.50::numeric(6, 2) AS money, 0.1::float4 AS f4, $1::timestamptz AS at",
        "2026-02-21 10:11:12.5")
      assert.equal("12.50", row.money)
      assert.equal(0.1, row.f4)
      assert.equal("2026-02-21T10:11:12.500000+00:00", row.at)
    end)
  end)

  describe("PostgreSQL connections", function()
    it("refuse other statements while a rows() loop reads", function()
      if not is_pg then return end
      conn:exec("INSERT INTO spec_items (title) VALUES ('a')")
      local ok, err = pcall(function()
        for _ in conn:rows("SELECT title FROM spec_items") do conn:exec("SELECT 1") end
      end)
      assert.is_false(ok)
      assert.equal("55000", err.sqlstate)
      assert.equal(1, conn:first("SELECT 1 AS one").one)
    end)

    it("reconnect once when the connection was lost between calls", function()
      if not is_pg then return end
      local pid = conn:first("SELECT pg_backend_pid() AS pid").pid
      local killer = db.connect(url)
      killer:first("SELECT pg_terminate_backend($1) AS ok", pid)
      -- gone, so its last words are on conn's socket before the next call:
      -- only a connection found closed before sending is replaced and the
      -- statement sent again (one that may have reached the server is not)
      for _ = 1, 500 do
        if killer:first("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1", pid).n == 0 then break end
        util.sleep(0.01)
      end
      killer:close()
      local row = conn:first("SELECT pg_backend_pid() AS pid")
      assert.are_not.equal(pid, row.pid)
    end)

    it("raise a clear error when the connection is lost inside a transaction", function()
      if not is_pg then return end
      local ok, err = pcall(conn.transaction, conn, function(c)
        local pid = c:first("SELECT pg_backend_pid() AS pid").pid
        local killer = db.connect(url)
        killer:first("SELECT pg_terminate_backend($1) AS ok", pid)
        killer:close()
        c:exec("INSERT INTO spec_items (title) VALUES ('lost')")
      end)
      assert.is_false(ok)
      assert.equal("08006", err.sqlstate)
      assert.truthy(err.message:find("inside a transaction", 1, true))
      -- outside the transaction it comes back by itself
      assert.equal(0, conn:first("SELECT count(*) AS c FROM spec_items").c)
    end)
  end)
end)
