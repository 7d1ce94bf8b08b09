-- tests/spec/doctor_spec.lua: `todohost run doctor.lua` (make doctor) as a
-- user meets it: run as a process in a scratch project folder against the
-- database of this pass (TEST_DATABASE_URL), checking its verdict line by
-- line, its fixes and its exit status (the facts it gathers, one by one:
-- doctor_probe_spec.lua).
local h = require "spec_helper"

local url = h.database_url()
local bin = h.todohost()
local root = io.popen("pwd"):read("l")
local is_pg = url:match("^postgres") ~= nil

-- Runs doctor.lua in dir with the extra environment env (a table); .env and
-- the project's DATABASE_URL/PORT do not leak in unless given.
local function doctor(dir, env)
  local prefix = "env -u DATABASE_URL -u PORT -u DB_PORT -u DB_DATA_DIR NO_COLOR=1 MIGRATIONS_DIR="
    .. h.quote(root .. "/migrations")
  for k, v in pairs(env or {}) do prefix = prefix .. " " .. k .. "=" .. h.quote(v) end
  return h.run(prefix .. " " .. h.quote(bin) .. " run " .. h.quote(root .. "/scripts/doctor.lua"), dir)
end

-- Runs a Lua snippet with todohost in dir against database_url.
local function lua(dir, database_url, code)
  h.write(dir .. "/snippet.lua", code)
  local rc, out, err = h.run("DATABASE_URL=" .. h.quote(database_url) .. " " .. h.quote(bin) .. " run snippet.lua", dir)
  assert(rc == 0, "snippet failed: " .. out .. err)
  return out
end

local function migrate(dir, database_url)
  local rc, out, err = h.run("DATABASE_URL=" .. h.quote(database_url) .. " " .. h.quote(bin)
    .. " run " .. h.quote(root .. "/scripts/migrate.lua") .. " -q --dir " .. h.quote(root .. "/migrations")
    .. " upgrade head", dir)
  assert(rc == 0, "migrate failed: " .. out .. err)
end

-- The line of out that starts with mark and contains text (plain), or nil.
local function line(out, mark, text)
  for l in out:gmatch("[^\n]+") do
    if l:sub(1, #mark) == mark and l:find(text, 1, true) then return l end
  end
  return nil
end

-- The "fix:" line right after the line containing text.
local function fix_after(out, text)
  local seen = false
  for l in out:gmatch("[^\n]+") do
    if seen then return l:match("^%s+fix: (.*)$") end
    if l:find(text, 1, true) then seen = true end
  end
  return nil
end

local function reset_database()
  -- an empty database for each test: drop what the migrations made
  if is_pg then
    lua(h.tmpdir(), url, [[
      local c <close> = require("todohost.db").connect()
      c:exec("DROP TABLE IF EXISTS todos, alembic_version, todohost_migration_checksums CASCADE")
    ]])
  end
end

describe("doctor.lua", function()
  local dir, db_url

  before_each(function()
    dir = h.tmpdir()
    reset_database()
    -- on the SQLite pass each test gets its own file in its own folder
    db_url = is_pg and url or ("sqlite:///" .. dir .. "/app.db")
  end)

  it("passes every check on a migrated database and exits 0", function()
    migrate(dir, db_url)
    local code, out, err = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port() })
    assert.equal("", err)
    assert.truthy(line(out, "✓", "migrations: at head 2026_02_21_004"), out)
    assert.truthy(line(out, "✓", "the database answers"), out)
    assert.truthy(line(out, "✓", "rows: todos has 0 rows"), out)
    assert.truthy(out:find("all %d+ checks passed\n$"), out)
    assert.equal(0, code, out)
  end)

  it("takes a checksum of the first form (the file's bytes) as unedited", function()
    migrate(dir, db_url)
    lua(dir, db_url, ([[
      local util = require "todohost.util"
      local f = assert(io.open(%q, "rb"))
      local sum = util.sha256(f:read("a"))
      f:close()
      local c <close> = require("todohost.db").connect()
      c:exec("UPDATE todohost_migration_checksums SET checksum = $1 WHERE revision = '2026_02_21_002'", sum)
    ]]):format(root .. "/migrations/2026_02_21_002_add_updated_at_to_todos.lua"))
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port() })
    assert.is_nil(out:find("was edited", 1, true), out)
    assert.equal(0, code, out)
  end)

  it("fails on a database that was never migrated, with make migrate as the fix", function()
    if not is_pg then lua(dir, db_url, "require('todohost.db').connect():close()") end -- create the file
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port() })
    assert.equal(1, code, out)
    assert.truthy(line(out, "✗", "the database has no revision"), out)
    assert.equal("make migrate", fix_after(out, "has no revision"))
    assert.truthy(out:find("1 of %d+ checks failed\n$"), out)
  end)

  it("counts the revisions still to apply", function()
    migrate(dir, db_url)
    lua(dir, db_url, [[
      local c <close> = require("todohost.db").connect()
      c:exec("UPDATE alembic_version SET version_num = '2026_02_21_002'")
    ]])
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port() })
    assert.equal(1, code, out)
    assert.truthy(line(out, "✗", "at 2026_02_21_002, head is 2026_02_21_004 (2 revisions to apply)"), out)
    assert.equal("make migrate", fix_after(out, "revisions to apply"))
  end)

  it("names a revision that migrations/ does not have", function()
    migrate(dir, db_url)
    lua(dir, db_url, [[
      local c <close> = require("todohost.db").connect()
      c:exec("UPDATE alembic_version SET version_num = 'ffff_from_elsewhere'")
    ]])
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port() })
    assert.equal(1, code, out)
    local l = line(out, "✗", "the database is at ffff_from_elsewhere, which")
    assert.truthy(l and l:find("does not have (head is 2026_02_21_004)", 1, true), out)
    assert.truthy(fix_after(out, "ffff_from_elsewhere, which"):find("git pull", 1, true))
  end)

  it("reports todohost already serving on the port, with the pid to stop", function()
    migrate(dir, db_url)
    local log, pidfile = dir .. "/serve.log", dir .. "/serve.pid"
    os.execute("cd " .. h.quote(root) .. "; LUA_PATH=" .. h.quote(root .. "/tests/fixtures/?.lua;;")
      .. " PORT=0 " .. h.quote(bin) .. " run tests/fixtures/serve_hello.lua >" .. h.quote(log)
      .. " 2>&1 & echo $! >" .. h.quote(pidfile))
    local pid = tonumber(io.open(pidfile):read("l"))
    local port
    for _ = 1, 100 do
      local f = io.open(log)
      port = f and f:read("a"):match("serving on http://[^ ]*:(%d+)")
      if f then f:close() end
      if port then break end
      os.execute("sleep 0.1")
    end
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = port or "1" })
    os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.2")
    assert.truthy(port, "the fixture server did not start")
    assert.equal(1, code, out)
    assert.truthy(line(out, "✗", "todohost is already running on port " .. port .. " (pid " .. pid), out)
    assert.equal("kill " .. pid, fix_after(out, "already running on port"))
  end)

  it("with `port`, checks only the port: silent when free, one stderr line when taken", function()
    local port = h.free_port()
    local code, out, err = h.run("env -u DATABASE_URL PORT=" .. port .. " " .. h.quote(bin) .. " run "
      .. h.quote(root .. "/scripts/doctor.lua") .. " port", dir)
    assert.equal(0, code)
    assert.equal("", out .. err)
    -- this very test's PostgreSQL server (or, on SQLite, nothing) on its port
    local pg = h.pg_url()
    local pg_port = pg and pg:match(":(%d+)/[^/]*$")
    if pg_port then
      code, out, err = h.run("PORT=" .. pg_port .. " " .. h.quote(bin) .. " run "
        .. h.quote(root .. "/scripts/doctor.lua") .. " port", dir)
      assert.equal(1, code)
      assert.equal("", out)
      assert.truthy(err:find("^todohost: port " .. pg_port .. " is taken by pid %d+ %(.*postgres.*%); stop it.*; fix: kill %d+\n$"), err)
    end
    code, out, err = h.run(h.quote(bin) .. " run " .. h.quote(root .. "/scripts/doctor.lua") .. " ports", dir)
    assert.equal(2, code)
    assert.equal('doctor: unknown check "ports"; run it without arguments (or: port)\n', err)
  end)

  it("reports a free port as free", function()
    local port = h.free_port()
    local _, out = doctor(dir, { DATABASE_URL = db_url, PORT = port })
    assert.truthy(line(out, "✓", "nothing listens on port " .. port), out)
  end)

  it("rejects a PORT that is no port in one line, exit 2", function()
    local code, out, err = doctor(dir, { DATABASE_URL = db_url, PORT = "80a" })
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal('doctor: PORT must be a whole number from 0 to 65535, got "80a" (from the environment); unset it or fix it\n', err)
  end)

  it("explains a mistyped URL scheme without a traceback and masks its password", function()
    local code, out, err = doctor(dir, { DATABASE_URL = "postgressql://todo_user:Sup3rSecret@localhost/todo_db",
      PORT = h.free_port() })
    assert.equal(1, code, out)
    assert.equal("", err)
    assert.truthy(line(out, "✗", "DATABASE_URL=postgressql://todo_user:***@localhost/todo_db (from the environment) "
      .. "is not a database URL"), out)
    assert.equal("export DATABASE_URL=postgresql://todo_user:todo_pass@localhost:5432/todo_db",
      fix_after(out, "is not a database URL"))
    assert.falsy(out:find("Sup3rSecret", 1, true))
    assert.falsy(out:find("traceback", 1, true))
  end)

  it("reports each setting it cannot read, with where to fix it, and the ones not at their default", function()
    h.write(dir .. "/.env", "MAX_BODY=12\n")
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port(), RELOAD = "maybe", WORKERS = "3" })
    assert.equal(1, code, out)
    assert.truthy(line(out, "✗", 'MAX_BODY must be a whole number from 1024 to 1073741824, got "12" (from .env)'), out)
    assert.equal("edit .env: fix or remove MAX_BODY", fix_after(out, "MAX_BODY must be"))
    assert.truthy(line(out, "✗", 'RELOAD must be true or false'), out)
    assert.equal("unset RELOAD   (or set it to a valid value)", fix_after(out, "RELOAD must be"))
    assert.truthy(line(out, "-", "settings: ") and line(out, "-", "WORKERS=3 (environment)"), out)
  end)

  it("reports a bad DB_PORT once, as a setting, not as a failed check", function()
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port(), DB_PORT = "abc" })
    assert.equal(1, code, out)
    assert.truthy(line(out, "✗", "DB_PORT must be a whole number"), out)
    assert.falsy(out:find("the check itself failed", 1, true), out)
    local _, count = out:gsub("DB_PORT must be", "")
    assert.equal(1, count, out)
  end)

  it("says a PostgreSQL server that is down needs make db-start, never showing the password", function()
    local port = h.free_port()
    h.write(dir .. "/.env", "DATABASE_URL=postgresql://todo_user:Sup3rSecret@localhost:" .. port .. "/todo_db\n")
    local code, out, err = doctor(dir, { PORT = h.free_port() })
    assert.equal(1, code, out)
    assert.equal("", err)
    assert.truthy(line(out, "✓", "DATABASE_URL=postgresql://todo_user:***@localhost:" .. port .. "/todo_db (from .env)"), out)
    assert.truthy(line(out, "✗", "the database does not answer"), out)
    assert.equal("make db-start", fix_after(out, "the database does not answer"))
    assert.falsy((out .. err):find("Sup3rSecret", 1, true))
  end)

  it("does not create a missing SQLite file, and says make run does", function()
    local code, out = doctor(dir, { DATABASE_URL = "sqlite:///gone.db", PORT = h.free_port() })
    assert.equal(1, code, out)
    assert.truthy(line(out, "✗", "gone.db does not exist yet"), out)
    assert.equal("make run", fix_after(out, "gone.db does not exist yet"))
    assert.is_nil(io.open(dir .. "/gone.db"))
  end)

  it("says when the SQLite data was not copied into PostgreSQL yet, and when database.db is kept", function()
    -- database.db with 2 todos, as the SQLite app left it
    migrate(dir, "sqlite:///database.db")
    lua(dir, "sqlite:///database.db", [[
      local c <close> = require("todohost.db").connect()
      c:exec("INSERT INTO todos (title) VALUES ('one'), ('two')")
    ]])
    migrate(dir, db_url)
    local code, out = doctor(dir, { DATABASE_URL = db_url, PORT = h.free_port() })
    if is_pg then
      assert.equal(1, code, out)
      assert.truthy(line(out, "✗", "rows: todos has 0 rows but database.db has 2 todos"), out)
      assert.equal("make copy", fix_after(out, "but database.db has 2 todos"))
      assert.truthy(line(out, "✓", "database.db is still there (2 todos)"), out)
    else
      assert.equal(0, code, out)
      assert.truthy(line(out, "✓", "database.db is still there (2 todos)"), out)
    end
  end)

  it("checks that git ignores .env (or says there is no git checkout)", function()
    h.write(dir .. "/.env", "DATABASE_URL=" .. db_url .. "\n")
    migrate(dir, db_url)
    local has_git = os.execute("command -v git >/dev/null 2>&1")
    if not has_git then
      local _, out = doctor(dir, { PORT = h.free_port() })
      assert.truthy(line(out, "✓", ".env exists (not a git checkout"), out)
      return
    end
    assert(os.execute("cd " .. h.quote(dir) .. " && git init -q ."))
    local code, out = doctor(dir, { PORT = h.free_port() })
    assert.equal(1, code, out)
    assert.truthy(line(out, "✗", ".env exists but git does not ignore it"), out)
    assert.equal("echo .env >> .gitignore", fix_after(out, "git does not ignore it"))
    h.write(dir .. "/.gitignore", ".env\n")
    code, out = doctor(dir, { PORT = h.free_port() })
    assert.truthy(line(out, "✓", ".env exists and git ignores it"), out)
    assert.equal(0, code, out)
  end)
end)
