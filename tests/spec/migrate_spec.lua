-- tests/spec/migrate_spec.lua: `todohost run migrate.lua` as a user runs it,
-- against the database of this pass (TEST_DATABASE_URL: a SQLite file or
-- the PostgreSQL test server; on PostgreSQL each test gets a database of
-- its own, created through TEST_PG_URL and dropped after). Every command,
-- the four original revisions against the schema Alembic makes, a database
-- built by Alembic picked up as it is, rollback of a failing revision, the
-- checksum and data-loss warnings, --sql, and concurrent migrators.
local h = require "spec_helper"
local db = require "todohost.db"

local bin = h.todohost()
local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"
local REVS = { "2026_02_21_001", "2026_02_21_002", "2026_02_21_003", "2026_02_21_004" }
local MESSAGES = { "initial", "add_updated_at_to_todos", "add_deleted_at_to_todos", "make_is_completed_not_nullable" }

-- ---- a fresh database per test ---------------------------------------------

local admin_url = h.pg_url()
local counter = 0

local function fresh_database()
  if kind == "sqlite" then
    return "sqlite:///" .. h.tmpdir() .. "/migrate.db", function() end
  end
  counter = counter + 1
  local name = ("migrate_spec_%d_%d"):format(os.time() % 100000, counter)
  local admin = db.connect(admin_url)
  admin:exec("DROP DATABASE IF EXISTS " .. name)
  admin:exec("CREATE DATABASE " .. name)
  admin:close()
  local url = admin_url:gsub("/[^/?]*(%??[^/]*)$", "/" .. name .. "%1")
  return url, function()
    local a = db.connect(admin_url)
    a:exec("DROP DATABASE IF EXISTS " .. name .. " WITH (FORCE)")
    a:close()
  end
end

-- Runs migrate.lua with args (a string) on url; returns code, stdout, stderr.
local function migrate(url, args, extra_env)
  local env = "env -u DEBUG DATABASE_URL=" .. h.quote(url)
  for k, v in pairs(extra_env or {}) do env = env .. " " .. k .. "=" .. h.quote(v) end
  return h.run(env .. " " .. h.quote(bin) .. " run migrate.lua " .. args)
end

-- A copy of migrations/ to add or edit revisions in.
local function copy_migrations()
  local dir = h.tmpdir() .. "/migrations"
  assert(os.execute("cp -r migrations " .. h.quote(dir)))
  return dir
end

local function with_conn(url, fn)
  local conn = db.connect(url)
  local ok, res = pcall(fn, conn)
  conn:close()
  if not ok then error(res, 0) end
  return res
end

local function has_table(conn, name)
  if conn.kind == "sqlite" then
    return conn:first("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = $1", name) ~= nil
  end
  return conn:first("SELECT 1 AS x FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1", name) ~= nil
end

local function versions(url)
  return with_conn(url, function(conn)
    if not has_table(conn, "alembic_version") then return nil end
    local ids = {}
    for _, r in ipairs(conn:query("SELECT version_num FROM alembic_version ORDER BY version_num")) do
      ids[#ids + 1] = r.version_num
    end
    return table.concat(ids, ",")
  end)
end

-- The whole schema as text (minus todohost's checksum table): sqlite_master
-- on SQLite; columns, defaults, indexes and constraints on PostgreSQL.
local function schema(url)
  return with_conn(url, function(conn)
    local lines = {}
    if conn.kind == "sqlite" then
      for _, r in ipairs(conn:query([[SELECT type, name, tbl_name, sql FROM sqlite_master
          WHERE tbl_name <> 'todohost_migration_checksums' ORDER BY type, name]])) do
        lines[#lines + 1] = ("%s %s %s %s"):format(r.type, r.name, r.tbl_name, r.sql or "-")
      end
    else
      for _, r in ipairs(conn:query([[SELECT table_name::text AS t, column_name::text AS c, data_type::text AS d,
          is_nullable::text AS n, coalesce(column_default::text, '-') AS def,
          coalesce(character_maximum_length::int, 0) AS len
          FROM information_schema.columns WHERE table_schema = current_schema()
          AND table_name <> 'todohost_migration_checksums' ORDER BY table_name, ordinal_position]])) do
        lines[#lines + 1] = ("column %s.%s %s(%d) nullable=%s default=%s"):format(r.t, r.c, r.d, r.len, r.n, r.def)
      end
      for _, r in ipairs(conn:query([[SELECT indexname::text AS i, indexdef AS d FROM pg_indexes
          WHERE schemaname = current_schema() AND tablename <> 'todohost_migration_checksums' ORDER BY indexname]])) do
        lines[#lines + 1] = "index " .. r.d
      end
      for _, r in ipairs(conn:query([[SELECT conname::text AS n, contype::text AS t, conrelid::regclass::text AS r
          FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
          AND conrelid::regclass::text <> 'todohost_migration_checksums' ORDER BY conname]])) do
        lines[#lines + 1] = ("constraint %s %s on %s"):format(r.n, r.t, r.r)
      end
      for _, r in ipairs(conn:query([[SELECT sequencename::text AS s FROM pg_sequences
          WHERE schemaname = current_schema() ORDER BY 1]])) do
        lines[#lines + 1] = "sequence " .. r.s
      end
    end
    return table.concat(lines, "\n")
  end)
end

local function todos(url)
  return with_conn(url, function(conn)
    return conn:query("SELECT * FROM todos ORDER BY id")
  end)
end

-- The schema Alembic leaves at head, written out by hand.
local EXPECTED_HEAD = {
  sqlite = table.concat({
    "index ix_todos_id todos CREATE INDEX ix_todos_id ON todos (id)",
    "index sqlite_autoindex_alembic_version_1 alembic_version -",
    "table alembic_version alembic_version CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\t"
      .. "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)",
    'table todos todos CREATE TABLE "todos" (\n\tid INTEGER NOT NULL, \n\ttitle VARCHAR(200) NOT NULL, \n\t'
      .. "description TEXT, \n\tis_completed BOOLEAN DEFAULT 0 NOT NULL, \n\t"
      .. "created_at DATETIME DEFAULT (CURRENT_TIMESTAMP) NOT NULL, \n\tupdated_at DATETIME, \n\t"
      .. "deleted_at DATETIME, \n\tPRIMARY KEY (id)\n)",
  }, "\n"),
  postgresql = table.concat({
    "column alembic_version.version_num character varying(32) nullable=NO default=-",
    "column todos.id integer(0) nullable=NO default=nextval('todos_id_seq'::regclass)",
    "column todos.title character varying(200) nullable=NO default=-",
    "column todos.description text(0) nullable=YES default=-",
    "column todos.is_completed boolean(0) nullable=NO default=false",
    "column todos.created_at timestamp with time zone(0) nullable=NO default=CURRENT_TIMESTAMP",
    "column todos.updated_at timestamp with time zone(0) nullable=YES default=-",
    "column todos.deleted_at timestamp with time zone(0) nullable=YES default=-",
    "index CREATE UNIQUE INDEX alembic_version_pkc ON public.alembic_version USING btree (version_num)",
    "index CREATE INDEX ix_todos_id ON public.todos USING btree (id)",
    "index CREATE UNIQUE INDEX todos_pkey ON public.todos USING btree (id)",
    "constraint alembic_version_pkc p on alembic_version",
    "constraint todos_pkey p on todos",
    "sequence todos_id_seq",
  }, "\n"),
}

-- The statements Alembic ran to bring a database to 2026_02_21_002, with
-- some rows (two with is_completed NULL), exactly as Alembic issued them.
local function build_like_alembic_at_002(url)
  with_conn(url, function(conn)
    local stmts
    if conn.kind == "sqlite" then
      stmts = {
        "CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)",
        "CREATE TABLE todos (\n\tid INTEGER NOT NULL, \n\ttitle VARCHAR(200) NOT NULL, \n\tdescription TEXT, \n\t"
          .. "is_completed BOOLEAN, \n\tcreated_at DATETIME DEFAULT (CURRENT_TIMESTAMP) NOT NULL, \n\tPRIMARY KEY (id)\n)",
        "CREATE INDEX ix_todos_id ON todos (id)",
        "INSERT INTO alembic_version (version_num) VALUES ('2026_02_21_001')",
        "ALTER TABLE todos ADD COLUMN updated_at DATETIME",
        "UPDATE alembic_version SET version_num='2026_02_21_002' WHERE alembic_version.version_num = '2026_02_21_001'",
      }
    else
      stmts = {
        "CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)",
        "CREATE TABLE todos (\n\tid SERIAL NOT NULL, \n\ttitle VARCHAR(200) NOT NULL, \n\tdescription TEXT, \n\t"
          .. "is_completed BOOLEAN, \n\tcreated_at TIMESTAMP WITH TIME ZONE DEFAULT (CURRENT_TIMESTAMP) NOT NULL, \n\tPRIMARY KEY (id)\n)",
        "CREATE INDEX ix_todos_id ON todos (id)",
        "INSERT INTO alembic_version (version_num) VALUES ('2026_02_21_001')",
        "ALTER TABLE todos ADD COLUMN updated_at TIMESTAMP WITH TIME ZONE",
        "UPDATE alembic_version SET version_num='2026_02_21_002' WHERE alembic_version.version_num = '2026_02_21_001'",
      }
    end
    for _, s in ipairs(stmts) do conn:exec(s) end
    conn:exec("INSERT INTO todos (title, description, is_completed, updated_at) VALUES ($1, $2, $3, $4)",
      "done", "kept", true, "2026-02-20 10:00:00")
    conn:exec("INSERT INTO todos (title, is_completed) VALUES ($1, NULL)", "never set")
    conn:exec("INSERT INTO todos (title, description, is_completed) VALUES ($1, $2, $3)", "open", "with 'quotes'", false)
    conn:exec("INSERT INTO todos (title) VALUES ($1)", "also never set")
  end)
end

local function lines_of(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local function running_lines(stderr)
  local out = {}
  for _, l in ipairs(lines_of(stderr)) do
    if l:find("Running ", 1, true) then out[#out + 1] = l end
  end
  return out
end

local function write_revision(dir, file, text)
  h.write(dir .. "/" .. file, text)
end

describe("migrate.lua (" .. kind .. ")", function()
  local url, drop

  before_each(function()
    url, drop = fresh_database()
  end)

  after_each(function()
    drop()
  end)

  -- ---- upgrade ---------------------------------------------------------------

  it("upgrades an empty database to head with Alembic's log lines and schema", function()
    local code, out, err = migrate(url, "upgrade head")
    assert.equal(0, code, err)
    assert.equal("", out)
    assert.same({
      "INFO  [migrate] Running upgrade  -> 2026_02_21_001, initial",
      "INFO  [migrate] Running upgrade 2026_02_21_001 -> 2026_02_21_002, add_updated_at_to_todos",
      "INFO  [migrate] Running upgrade 2026_02_21_002 -> 2026_02_21_003, add_deleted_at_to_todos",
      "INFO  [migrate] Running upgrade 2026_02_21_003 -> 2026_02_21_004, make_is_completed_not_nullable",
    }, running_lines(err))
    assert.equal(EXPECTED_HEAD[kind], schema(url))
    assert.equal("2026_02_21_004", versions(url))
  end)

  it("creates the tables Alembic's first revision creates", function()
    assert.equal(0, (migrate(url, "-q upgrade 2026_02_21_001")))
    local expected = kind == "sqlite"
      and "CREATE TABLE todos (\n\tid INTEGER NOT NULL, \n\ttitle VARCHAR(200) NOT NULL, \n\tdescription TEXT, \n\t"
        .. "is_completed BOOLEAN, \n\tcreated_at DATETIME DEFAULT (CURRENT_TIMESTAMP) NOT NULL, \n\tPRIMARY KEY (id)\n)"
    with_conn(url, function(conn)
      if expected then
        assert.equal(expected, conn:first("SELECT sql FROM sqlite_master WHERE name = 'todos'").sql)
      else
        assert.equal("public.todos_id_seq", conn:first("SELECT pg_get_serial_sequence('todos', 'id') AS s").s)
        local r = conn:first([[SELECT is_nullable::text AS n, column_default AS d FROM information_schema.columns
          WHERE table_name = 'todos' AND column_name = 'is_completed']])
        assert.same({ n = "YES" }, r)
      end
    end)
    assert.equal("2026_02_21_001", versions(url))
  end)

  it("picks up a database built by Alembic at 2026_02_21_002 and upgrades it keeping every row", function()
    build_like_alembic_at_002(url)
    local code, out, err = migrate(url, "current")
    assert.equal(0, code, err)
    assert.equal("2026_02_21_002\n", out)
    local before = todos(url)
    code, out, err = migrate(url, "upgrade head")
    assert.equal(0, code, err)
    assert.same({
      "INFO  [migrate] Running upgrade 2026_02_21_002 -> 2026_02_21_003, add_deleted_at_to_todos",
      "INFO  [migrate] Running upgrade 2026_02_21_003 -> 2026_02_21_004, make_is_completed_not_nullable",
    }, running_lines(err))
    assert.equal(EXPECTED_HEAD[kind], schema(url))
    local after = todos(url)
    assert.equal(4, #after)
    for i, row in ipairs(before) do
      assert.equal(row.id, after[i].id)
      assert.equal(row.title, after[i].title)
      assert.equal(row.description, after[i].description)
      assert.equal(row.created_at, after[i].created_at)
      assert.equal(row.updated_at, after[i].updated_at)
      assert.equal(row.is_completed == true, after[i].is_completed)
    end
    assert.is_nil(before[2].is_completed)
    assert.equal(false, after[2].is_completed)
    -- and the server default now applies to new rows
    with_conn(url, function(conn)
      conn:exec("INSERT INTO todos (title) VALUES ('new')")
      assert.equal(false, conn:first("SELECT is_completed FROM todos WHERE title = 'new'").is_completed)
    end)
  end)

  it("round-trips upgrade -> downgrade base -> upgrade to the same schema", function()
    assert.equal(0, (migrate(url, "-q upgrade head")))
    local first = schema(url)
    local code, _, err = migrate(url, "downgrade base")
    assert.equal(0, code, err)
    assert.same({
      "INFO  [migrate] Running downgrade 2026_02_21_004 -> 2026_02_21_003, make_is_completed_not_nullable",
      "INFO  [migrate] Running downgrade 2026_02_21_003 -> 2026_02_21_002, add_deleted_at_to_todos",
      "INFO  [migrate] Running downgrade 2026_02_21_002 -> 2026_02_21_001, add_updated_at_to_todos",
      "INFO  [migrate] Running downgrade 2026_02_21_001 -> , initial",
    }, running_lines(err))
    assert.equal("", versions(url))
    with_conn(url, function(conn) assert.is_false(has_table(conn, "todos")) end)
    assert.equal(0, (migrate(url, "-q upgrade head")))
    assert.equal(first, schema(url))
  end)

  it("moves by relative steps and refuses to upgrade backwards", function()
    assert.equal(0, (migrate(url, "-q upgrade +2")))
    assert.equal("2026_02_21_002", versions(url))
    assert.equal(0, (migrate(url, "-q downgrade -1")))
    assert.equal("2026_02_21_001", versions(url))
    assert.equal(0, (migrate(url, "-q upgrade 2026_02_21_003")))
    assert.equal("2026_02_21_003", versions(url))
    local code, _, err = migrate(url, "-q upgrade 2026_02_21_001")
    assert.equal(1, code)
    assert.matches("FAILED: Destination 2026_02_21_001 is not a valid upgrade target", err, 1, true)
    code, _, err = migrate(url, "-q upgrade +5")
    assert.equal(1, code)
    assert.matches("cannot upgrade +5", err, 1, true)
    code, _, err = migrate(url, "-q downgrade")
    assert.equal(1, code)
    assert.matches("downgrade needs a target", err, 1, true)
    assert.equal("2026_02_21_003", versions(url))
  end)

  it("accepts a unique prefix of a revision id", function()
    local dir = copy_migrations()
    write_revision(dir, "abc123_x.lua", [[return { revision = "abc123", down_revision = "2026_02_21_004",
      message = "x", upgrade = function(op) end, downgrade = function(op) end }]])
    local code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade abc")
    assert.equal(0, code, err)
    assert.equal("abc123", versions(url))
  end)

  -- ---- reading commands ------------------------------------------------------

  it("shows current, heads, history and show as Alembic does", function()
    local code, out = migrate(url, "current")
    assert.equal(0, code)
    assert.equal("", out) -- nothing applied yet
    migrate(url, "-q upgrade 2026_02_21_003")
    code, out = migrate(url, "current")
    assert.equal("2026_02_21_003\n", out)
    migrate(url, "-q upgrade head")
    code, out = migrate(url, "current")
    assert.equal("2026_02_21_004 (head)\n", out)
    code, out = migrate(url, "heads")
    assert.equal(0, code)
    assert.equal("2026_02_21_004 (head)\n", out)
    code, out = migrate(url, "history")
    assert.equal(0, code)
    assert.equal(table.concat({
      "2026_02_21_003 -> 2026_02_21_004 (head), make_is_completed_not_nullable",
      "2026_02_21_002 -> 2026_02_21_003, add_deleted_at_to_todos",
      "2026_02_21_001 -> 2026_02_21_002, add_updated_at_to_todos",
      "<base> -> 2026_02_21_001, initial",
    }, "\n") .. "\n", out)
    code, out = migrate(url, "history -i -r 2026_02_21_002:head")
    assert.equal(0, code)
    assert.equal("2026_02_21_003 -> 2026_02_21_004 (head) (current), make_is_completed_not_nullable\n"
      .. "2026_02_21_002 -> 2026_02_21_003, add_deleted_at_to_todos\n"
      .. "2026_02_21_001 -> 2026_02_21_002, add_updated_at_to_todos\n", out)
    code, out = migrate(url, "show 2026_02_21_002")
    assert.equal(0, code)
    assert.equal("Rev: 2026_02_21_002\nParent: 2026_02_21_001\n"
      .. "Path: migrations/2026_02_21_002_add_updated_at_to_todos.lua\n\n"
      .. "    add_updated_at_to_todos\n    \n    Revision ID: 2026_02_21_002\n    Revises: 2026_02_21_001\n"
      .. "    Create Date: 2026-02-21\n\n", out)
    code, out = migrate(url, "current -v")
    assert.matches("^Rev: 2026_02_21_004 %(head%)\nParent: 2026_02_21_003\n", out)
  end)

  it("check fails until the database is at head", function()
    local code, _, err = migrate(url, "check")
    assert.equal(1, code)
    assert.matches("FAILED: Target database is not up to date: it is at base, head is 2026_02_21_004 (4 revisions to apply)", err, 1, true)
    migrate(url, "-q upgrade +3")
    code, _, err = migrate(url, "check")
    assert.equal(1, code)
    assert.matches("it is at 2026_02_21_003", err, 1, true)
    migrate(url, "-q upgrade head")
    code, _, err = migrate(url, "check")
    assert.equal(0, code, err)
    assert.matches("No new upgrade operations detected", err, 1, true)
  end)

  -- ---- stamp and revision ----------------------------------------------------

  it("stamps a revision without running anything", function()
    local code, _, err = migrate(url, "stamp head")
    assert.equal(0, code, err)
    assert.matches("Running stamp_revision  -> 2026_02_21_004", err, 1, true)
    assert.equal("2026_02_21_004", versions(url))
    with_conn(url, function(conn) assert.is_false(has_table(conn, "todos")) end)
    assert.equal(0, (migrate(url, "-q stamp 2026_02_21_001")))
    assert.equal("2026_02_21_001", versions(url))
    assert.equal(0, (migrate(url, "-q stamp base")))
    assert.equal("", versions(url))
    local out
    code, out = migrate(url, "-q stamp --sql 2026_02_21_002")
    assert.equal(0, code)
    assert.matches("INSERT INTO alembic_version (version_num) VALUES ('2026_02_21_002');", out, 1, true)
    assert.equal("", versions(url))
  end)

  it("writes a new revision from the template and runs it", function()
    local _
    local dir = copy_migrations()
    local code, out, err = migrate(url, "-q --dir " .. h.quote(dir) .. ' revision -m "Add priority to todos!"')
    assert.equal(0, code, err)
    local id = os.date("%Y_%m_%d") .. "_001"
    local path = dir .. "/" .. id .. "_add_priority_to_todos.lua"
    assert.matches(path, out, 1, true)
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    assert.matches('down_revision = "2026_02_21_004"', text, 1, true)
    assert.matches('message = "Add priority to todos!"', text, 1, true)
    -- a second one follows it
    code = migrate(url, "-q --dir " .. h.quote(dir) .. " revision -m second")
    assert.equal(0, code)
    local id2 = os.date("%Y_%m_%d") .. "_002"
    code, out = migrate(url, "--dir " .. h.quote(dir) .. " heads")
    assert.equal(id2 .. " (head)\n", out)
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(0, code, err)
    assert.equal(id2, versions(url))
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " revision")
    assert.equal(1, code)
    assert.matches("revision needs a message", err, 1, true)
  end)

  -- ---- failures leave everything as it was -----------------------------------

  it("rolls back a failing revision: schema, data and version stay as before", function()
    local dir = copy_migrations()
    write_revision(dir, "2026_03_01_001_broken.lua", [[return {
      revision = "2026_03_01_001", down_revision = "2026_02_21_004", message = "broken",
      upgrade = function(op)
        op.add_column("todos", op.column("priority", op.types.integer, { nullable = true }))
        op.alter_column("todos", "title", { nullable = true })
        op.execute("UPDATE todos SET priority = 1")
        op.execute("INSERT INTO todos (title, no_such_column) VALUES ('x', 1)")
      end,
      downgrade = function(op) end }]])
    assert.equal(0, (migrate(url, "-q upgrade head")))
    with_conn(url, function(conn) conn:exec("INSERT INTO todos (title) VALUES ('keep me')") end)
    local before_schema, before_rows = schema(url), todos(url)
    local code, _, err = migrate(url, "--dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(1, code)
    assert.matches("FAILED: Upgrade to 2026_03_01_001 (" .. dir .. "/2026_03_01_001_broken.lua) failed and was rolled back; "
      .. "the database is still at 2026_02_21_004.", err, 1, true)
    assert.matches("statement: INSERT INTO todos (title, no_such_column) VALUES ('x', 1)", err, 1, true)
    assert.matches("no_such_column", err, 1, true)
    assert.equal(before_schema, schema(url))
    assert.same(before_rows, todos(url))
    assert.equal("2026_02_21_004", versions(url))
  end)

  it("leaves an empty database empty when the first revision fails", function()
    local dir = h.tmpdir()
    write_revision(dir, "r1_bad.lua", [[return { revision = "r1", message = "bad",
      upgrade = function(op)
        op.create_table("t", op.column("id", op.types.integer, { primary_key = true }))
        op.execute("this is not sql")
      end,
      downgrade = function(op) end }]])
    local code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(1, code)
    assert.matches("statement: this is not sql", err, 1, true)
    with_conn(url, function(conn)
      assert.is_false(has_table(conn, "alembic_version"))
      assert.is_false(has_table(conn, "t"))
    end)
  end)

  it("reports a Lua error in a revision with the revision's name", function()
    local dir = copy_migrations()
    write_revision(dir, "2026_03_01_001_typo.lua", [[return { revision = "2026_03_01_001",
      down_revision = "2026_02_21_004", message = "typo",
      upgrade = function(op) op.add_colum("todos") end, downgrade = function(op) end }]])
    migrate(url, "-q upgrade head")
    local code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(1, code)
    assert.matches("Upgrade to 2026_03_01_001", err, 1, true)
    assert.matches("add_colum", err, 1, true)
    assert.equal("2026_02_21_004", versions(url))
  end)

  -- ---- clear errors ------------------------------------------------------------

  it("names an unknown revision and the known heads", function()
    local _
    local code, out, err = migrate(url, "upgrade nosuchrev")
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("FAILED: Can't locate revision nosuchrev (known heads: 2026_02_21_004)", err, 1, true)
    code, _, err = migrate(url, "show nosuchrev")
    assert.equal(1, code)
    assert.matches("Can't locate revision nosuchrev", err, 1, true)
  end)

  it("refuses a database at a revision missing from migrations/", function()
    migrate(url, "-q upgrade head")
    with_conn(url, function(conn) conn:exec("UPDATE alembic_version SET version_num = 'deadbeef'") end)
    for _, cmd in ipairs({ "current", "upgrade head", "downgrade -1", "check" }) do
      local code, _, err = migrate(url, "-q " .. cmd)
      assert.equal(1, code, cmd)
      assert.matches("Can't locate revision deadbeef: the database's alembic_version says deadbeef", err, 1, true)
    end
    -- stamp is the way out
    assert.equal(0, (migrate(url, "-q stamp head")))
    assert.equal("2026_02_21_004", versions(url))
  end)

  it("refuses two heads and a cycle", function()
    local dir = copy_migrations()
    write_revision(dir, "2026_03_01_001_a.lua", [[return { revision = "2026_03_01_001",
      down_revision = "2026_02_21_003", message = "a", upgrade = function(op) end, downgrade = function(op) end }]])
    local code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(1, code)
    assert.matches("Multiple head revisions are present: 2026_02_21_004, 2026_03_01_001", err, 1, true)
    assert.is_nil(versions(url))
    -- a merge revision makes one head again
    write_revision(dir, "2026_03_01_002_merge.lua", [[return { revision = "2026_03_01_002",
      down_revision = { "2026_02_21_004", "2026_03_01_001" }, message = "merge",
      upgrade = function(op) end, downgrade = function(op) end }]])
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(0, code, err)
    assert.equal("2026_03_01_002", versions(url))
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " downgrade 2026_02_21_004")
    assert.equal(0, code, err)
    assert.equal("2026_02_21_004", versions(url))
    -- a cycle
    write_revision(dir, "2026_02_21_001_initial.lua", [[return { revision = "2026_02_21_001",
      down_revision = "2026_03_01_002", message = "initial", upgrade = function(op) end, downgrade = function(op) end }]])
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " heads")
    assert.equal(1, code)
    assert.matches("the revisions form a cycle: ", err, 1, true)
  end)

  it("explains a missing migrations directory and bad arguments", function()
    local code, _, err = migrate(url, "--dir /nonexistent/dir upgrade head")
    assert.equal(1, code)
    assert.matches("no migrations directory at /nonexistent/dir", err, 1, true)
    code, _, err = migrate(url, "frobnicate")
    assert.equal(2, code)
    assert.matches('unknown command "frobnicate"', err, 1, true)
    code, _, err = migrate(url, "current --bogus")
    assert.equal(2, code)
    assert.matches("unknown option --bogus", err, 1, true)
    code, _, err = migrate(url, "", { MIGRATIONS_DIR = "/also/missing" })
    assert.equal(2, code)
  end)

  -- ---- safety ----------------------------------------------------------------

  it("warns when an applied revision's code was edited, and fails under --strict", function()
    local dir = copy_migrations()
    assert.equal(0, (migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade 2026_02_21_003")))
    local code, _, err = migrate(url, "--dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(0, code)
    assert.is_nil(err:find("WARN", 1, true))
    local path = dir .. "/2026_02_21_002_add_updated_at_to_todos.lua"
    h.write(path, (assert(h.read(path)):gsub("{ nullable = true }", "{ nullable = false }")))
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " check")
    assert.equal(0, code)
    assert.matches("WARN  [migrate] " .. path .. " was edited after it was applied", err, 1, true)
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head")
    assert.equal(0, code)
    assert.matches(path .. " was edited after it was applied", err, 1, true)
    -- unedited files raise no warning
    assert.is_nil(err:find("2026_02_21_003_", 1, true))
    -- --strict (for CI): the same edit fails check and upgrade
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " check --strict")
    assert.equal(1, code)
    assert.matches("FAILED: --strict: 1 applied revision(s) edited since they ran", err, 1, true)
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head --strict")
    assert.equal(1, code)
    assert.matches("FAILED: --strict: 1 applied revision(s) edited since they ran", err, 1, true)
  end)

  it("does not count comments, blank lines or spacing as edits, even under --strict", function()
    local dir = copy_migrations()
    assert.equal(0, (migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head")))
    local path = dir .. "/2026_02_21_004_make_is_completed_not_nullable.lua"
    local text = assert(h.read(path))
    text = "-- a note added later\n" .. text:gsub("\n  upgrade = function%(op%)\n", "\n\n  upgrade = function (op)  --[[ reviewed ]]\n")
      :gsub('op.alter_column%("todos", "is_completed"', 'op.alter_column( "todos",\n      "is_completed"')
    h.write(path, text)
    local code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " check --strict")
    assert.equal(0, code, err)
    assert.equal("", err)
    -- a change inside a string is a change
    h.write(path, (text:gsub("is_completed IS NULL", "is_completed  IS NULL")))
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " check")
    assert.matches(path .. " was edited after it was applied", err, 1, true)
  end)

  it("accepts checksums stored in the first form (the file's bytes) and rewrites them", function()
    local dir = copy_migrations()
    assert.equal(0, (migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade 2026_02_21_003")))
    local util = require "todohost.util"
    local path = dir .. "/2026_02_21_002_add_updated_at_to_todos.lua"
    local old_form = util.sha256(assert(h.read(path)))
    with_conn(url, function(conn)
      conn:exec("UPDATE todohost_migration_checksums SET checksum = $1 WHERE revision = '2026_02_21_002'", old_form)
    end)
    local code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " check --strict")
    assert.equal(1, code)   -- behind head, but no edit reported
    assert.is_nil(err:find("edited", 1, true))
    code, _, err = migrate(url, "-q --dir " .. h.quote(dir) .. " upgrade head --strict")
    assert.equal(0, code, err)
    assert.equal("", err)
    local stored = with_conn(url, function(conn)
      return conn:first("SELECT checksum FROM todohost_migration_checksums WHERE revision = '2026_02_21_002'").checksum
    end)
    assert.not_equal(old_form, stored)
    assert.equal(64, #stored)
  end)

  it("says a downgrade drops data before running it", function()
    migrate(url, "-q upgrade head")
    with_conn(url, function(conn)
      conn:exec("INSERT INTO todos (title, deleted_at) VALUES ('gone', '2026-01-01 00:00:00+00')")
      conn:exec("INSERT INTO todos (title) VALUES ('kept')")
    end)
    local code, _, err = migrate(url, "downgrade 2026_02_21_002")
    assert.equal(0, code, err)
    local warn = err:find("WARN  [migrate] Downgrade of 2026_02_21_003 (add_deleted_at_to_todos) drops column "
      .. "todos.deleted_at (1 row holds data): that data will be lost", 1, true)
    local running = err:find("Running downgrade", 1, true)
    assert.truthy(warn, err)
    assert.truthy(running)
    assert.truthy(warn < running)
    assert.equal(2, #todos(url))
  end)

  it("lets two migrators start at once on a fresh database", function()
    local script = ("env -u DEBUG DATABASE_URL=%s %s run migrate.lua upgrade head >%s 2>&1 & a=$!; "
      .. "env -u DEBUG DATABASE_URL=%s %s run migrate.lua upgrade head >%s 2>&1 & b=$!; "
      .. "wait $a; ra=$?; wait $b; rb=$?; echo $ra $rb")
    local tmp = h.tmpdir()
    local code, out = h.run(script:format(h.quote(url), h.quote(bin), tmp .. "/a.log", h.quote(url), h.quote(bin), tmp .. "/b.log"))
    assert.equal(0, code)
    local all = h.read(tmp .. "/a.log") .. h.read(tmp .. "/b.log")
    assert.equal("0 0\n", out, all)
    -- each revision ran exactly once between the two
    for i, rev in ipairs(REVS) do
      local _, n = all:gsub("Running upgrade [^\n]*-> " .. rev .. ", " .. MESSAGES[i], "")
      assert.equal(1, n, all)
    end
    assert.equal("2026_02_21_004", versions(url))
    assert.equal(EXPECTED_HEAD[kind], schema(url))
  end)

  -- ---- --sql ---------------------------------------------------------------------

  it("prints the SQL of an upgrade for the database's dialect and touches nothing", function()
    local code, out, err = migrate(url, "-q upgrade --sql head")
    assert.equal(0, code, err)
    assert.is_nil(versions(url))
    local expect_create = kind == "sqlite"
      and "CREATE TABLE todos (\n    id INTEGER NOT NULL, \n    title VARCHAR(200) NOT NULL, \n    description TEXT, \n"
        .. "    is_completed BOOLEAN, \n    created_at DATETIME DEFAULT (CURRENT_TIMESTAMP) NOT NULL, \n    PRIMARY KEY (id)\n);"
      or "CREATE TABLE todos (\n    id SERIAL NOT NULL, \n    title VARCHAR(200) NOT NULL, \n    description TEXT, \n"
        .. "    is_completed BOOLEAN, \n    created_at TIMESTAMP WITH TIME ZONE DEFAULT (CURRENT_TIMESTAMP) NOT NULL, \n    PRIMARY KEY (id)\n);"
    assert.matches("BEGIN;\n\nCREATE TABLE alembic_version (\n    version_num VARCHAR(32) NOT NULL, \n"
      .. "    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n);\n\n-- Running upgrade  -> 2026_02_21_001\n\n"
      .. expect_create, out, 1, true)
    assert.matches("INSERT INTO alembic_version (version_num) VALUES ('2026_02_21_001');", out, 1, true)
    assert.matches("UPDATE alembic_version SET version_num='2026_02_21_004' WHERE alembic_version.version_num = '2026_02_21_003';", out, 1, true)
    if kind == "sqlite" then
      assert.matches("CREATE TABLE _alembic_tmp_todos (", out, 1, true)
      assert.matches("ALTER TABLE _alembic_tmp_todos RENAME TO todos;", out, 1, true)
    else
      assert.matches("ALTER TABLE todos ALTER COLUMN is_completed SET NOT NULL;\n\n"
        .. "ALTER TABLE todos ALTER COLUMN is_completed SET DEFAULT false;", out, 1, true)
    end
    with_conn(url, function(conn) assert.is_false(has_table(conn, "todos")) end)
  end)

  -- Issue 14: the host always sets DEBUG (false by default), so testing
  -- os.getenv("DEBUG") gave every string error a traceback.
  it("adds a traceback to a script error only when DEBUG is true", function()
    local dir = h.tmpdir() .. "/tracebacks"
    assert(os.execute("mkdir -p " .. h.quote(dir)))
    write_revision(dir, "a1_boom.lua", 'return { revision = "a1", down_revision = nil, '
      .. 'upgrade = function(op) error("boom") end, downgrade = function(op) end }\n')
    -- offline SQL on SQLite mirrors the upgrades in memory: the error is a plain string
    local args = "--dir " .. h.quote(dir) .. " --url sqlite:///:memory: downgrade --sql a1:base"
    local code, _, err = migrate(url, args)
    assert.equal(1, code)
    assert.truthy(err:match("^FAILED: [^\n]*a1_boom%.lua:1: boom\n$"), err)
    for _, debug in ipairs { "true", "1", "yes", "on", "t", "y" } do
      code, _, err = migrate(url, args, { DEBUG = debug })
      assert.equal(1, code)
      assert.truthy(err:find("stack traceback:", 1, true), debug .. ": " .. err)
    end
    code, _, err = migrate(url, args, { DEBUG = "off" })
    assert.is_nil(err:find("stack traceback:", 1, true), err)
  end)

  it("prints the SQL of a downgrade range and requires one", function()
    local _
    local code, out, err = migrate(url, "-q downgrade --sql 2026_02_21_003:2026_02_21_001")
    assert.equal(0, code, err)
    assert.matches("-- Running downgrade 2026_02_21_003 -> 2026_02_21_002", out, 1, true)
    assert.matches("UPDATE alembic_version SET version_num='2026_02_21_001' WHERE alembic_version.version_num = '2026_02_21_002';", out, 1, true)
    if kind == "postgresql" then
      assert.matches("ALTER TABLE todos DROP COLUMN deleted_at;", out, 1, true)
    end
    code, _, err = migrate(url, "-q downgrade --sql base")
    assert.equal(1, code)
    assert.matches("downgrade with --sql needs a range START:END", err, 1, true)
    assert.is_nil(versions(url))
  end)
end)
