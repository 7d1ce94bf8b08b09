-- tests/spec/doctor_checks_spec.lua (doctor/checks.lua): each check of
-- `make doctor` called on its own with a report that records the verdicts:
-- the URL's reading (passwords masked), a database that does not exist or
-- answers, migrations before and after an upgrade, the row counts, and
-- database.db. On this pass's database (SQLite or PostgreSQL).
local h = require "spec_helper"
local checks = require "doctor.checks"
local probe = require "doctor.probe"

-- A report that keeps { kind, text, fix } for each verdict.
local function recorder()
  local got = {}
  local report = {}
  for _, kind in ipairs({ "ok", "fail", "warn", "info" }) do
    report[kind] = function(text, fix) got[#got + 1] = { kind = kind, text = text, fix = fix } end
  end
  return report, got
end

local function context(url)
  return { cwd = io.popen("pwd"):read("l"), port = 0, url = url, target = probe.parse_url(url),
    sqlite_file = h.tmpdir() .. "/database.db" }
end

local function migrate(url)
  local rc, out, err = h.run("DATABASE_URL=" .. h.quote(url) .. " " .. h.quote(h.todohost())
    .. " run scripts/migrate.lua -q --dir migrations upgrade head")
  assert(rc == 0, out .. err)
end

describe("doctor.checks", function()
  it("url: names what a URL points at, with its password masked", function()
    local report, got = recorder()
    assert.is_true(checks.url(context("postgresql://ann:s3cret@db.example:6543/app"), report))
    assert.equal("ok", got[1].kind)
    assert.matches("DATABASE_URL=postgresql://ann:***@db.example:6543/app (from ", got[1].text, 1, true)
    assert.matches("%): PostgreSQL database app on db%.example:6543 as ann$", got[1].text)
    assert.is_nil(got[1].text:find("s3cret", 1, true))
    report, got = recorder()
    assert.is_true(checks.url(context("sqlite:///x/todo.db"), report))
    assert.matches(": the SQLite file x/todo.db$", got[1].text)
  end)

  it("url: fails on a scheme it does not know, with a URL to set as the fix", function()
    local report, got = recorder()
    assert.is_false(checks.url(context("mysql://u:pw@h/d"), report))
    assert.equal("fail", got[1].kind)
    assert.matches("is not a database URL: it must start with sqlite:/// or postgresql://", got[1].text, 1, true)
    assert.is_nil(got[1].text:find("pw@", 1, true))
    assert.matches("DATABASE_URL=postgresql://todo_user:todo_pass@localhost:5432/todo_db", got[1].fix, 1, true)
  end)

  it("database: a SQLite file that does not exist fails with make run as the fix, and is not created", function()
    local path = h.tmpdir() .. "/none.db"
    local report, got = recorder()
    assert.is_false(checks.database(context("sqlite:///" .. path), report))
    assert.same({ { kind = "fail", text = path .. " does not exist yet (make run creates, migrates and seeds it)",
      fix = "make run" } }, got)
    assert.is_nil(h.read(path))
  end)

  it("database, migrations, rows: a database before and after make migrate", function()
    local url, drop = h.fresh_database("doctor_checks")
    if url:match("^sqlite") then
      local path = url:gsub("^sqlite:///", "")
      h.write(path, "")   -- an empty file is an empty SQLite database
    end
    local ctx = context(url)
    local report, got = recorder()
    assert.is_true(checks.database(ctx, report))
    assert.matches("^the database answers %((%a+) [%d.]+", got[1].text)
    assert.truthy(ctx.conn)

    report, got = recorder()
    checks.migrations(ctx, report)
    assert.equal("fail", got[1].kind)
    assert.matches("^migrations: the database has no revision %(never migrated%); head is ", got[1].text)
    assert.equal("make migrate", got[1].fix)
    report, got = recorder()
    checks.rows(ctx, report)
    assert.same({}, got)   -- no todos table: migrations said why

    migrate(url)
    report, got = recorder()
    checks.migrations(ctx, report)
    assert.equal("ok", got[1].kind)
    assert.matches("^migrations: at head [%w_]+ %(%d+ revisions in migrations/%)$", got[1].text)
    local writer = require("todohost.db").connect(url)   -- doctor reads SQLite read-only
    writer:exec("INSERT INTO todos (title, deleted_at) VALUES ('a', NULL), ('b', CURRENT_TIMESTAMP)")
    writer:close()
    report, got = recorder()
    checks.rows(ctx, report)
    assert.same({ { kind = "ok", text = "rows: todos has 2 rows (1 soft-deleted)" } }, got)
    ctx.conn:close()
    drop()
  end)

  it("sqlite_file: missing, in use, or kept beside PostgreSQL with its todo count", function()
    local ctx = context("postgresql://u@localhost/d")
    local report, got = recorder()
    checks.sqlite_file(ctx, report)
    assert.same({ { kind = "info", text = ctx.sqlite_file
      .. " is not here: there is no SQLite data to copy (make copy needs it)" } }, got)

    local db = require "todohost.db"
    local conn = db.connect("sqlite:///" .. ctx.sqlite_file)
    conn:exec("CREATE TABLE todos (id INTEGER PRIMARY KEY, deleted_at TIMESTAMP)")
    conn:exec("INSERT INTO todos (id) VALUES (1), (2), (3)")
    conn:close()
    report, got = recorder()
    checks.sqlite_file(ctx, report)
    assert.same({ { kind = "ok", text = ctx.sqlite_file .. " is still there (3 todos): the SQLite data, kept as it was" } }, got)

    ctx = context("sqlite:///" .. ctx.sqlite_file)
    ctx.sqlite_file = ctx.target.path
    report, got = recorder()
    checks.sqlite_file(ctx, report)
    assert.same({ { kind = "ok", text = ctx.sqlite_file .. " is the database in use (DATABASE_URL)" } }, got)
  end)
end)
