-- tests/spec/migrator_version_spec.lua (migrator/version.lua): the only
-- reader and writer of alembic_version, on the database of this pass: the
-- readers on a plain connection (server, /health, copy), the migrator's
-- context readers and writers, checksums, and the statements --sql prints.
local h = require "spec_helper"
local db = require "todohost.db"
local executor = require "migrator.executor"
local version = require "migrator.version"

local url = h.database_url()
local sqlite = url:match("^sqlite") ~= nil
-- A database of its own: a scratch SQLite file, or a schema of its own on
-- PostgreSQL (first on the search path), so that the shared test
-- database's alembic_version is never touched.
local SCHEMA = "migrator_version_spec"
local function connect()
  if sqlite then return db.connect("sqlite:///" .. h.tmpdir() .. "/version.db") end
  local c = db.connect(url)
  c:exec("CREATE SCHEMA IF NOT EXISTS " .. SCHEMA)
  c:exec("SET search_path TO " .. SCHEMA)
  return c
end

describe("migrator.version (" .. (sqlite and "sqlite" or "postgresql") .. ")", function()
  local conn, ctx

  before_each(function()
    conn = connect()
    ctx = executor.new({ dialect = conn.kind, conn = conn })
  end)
  after_each(function()
    if not sqlite then conn:exec("DROP SCHEMA " .. SCHEMA .. " CASCADE") end
    conn:close()
  end)

  it("reads a never-migrated database as such: no table", function()
    assert.is_nil(version.ids(conn))
    assert.is_nil(version.revision_if_migrated(conn))
    assert.has_error(function() version.revision(conn) end)   -- /health: the database's own error
    assert.same({}, version.current(ctx))
    assert.is_false(version.has_table(ctx, version.TABLE))
  end)

  it("creates the table as Alembic does and records steps: insert, update, delete", function()
    conn:transaction(function()
      version.ensure_table(ctx)
      version.step(ctx, {}, { "a" })
    end)
    assert.same({ "a" }, version.ids(conn))
    assert.equal("a", version.revision(conn))
    assert.equal("a", version.revision_if_migrated(conn))
    version.step(ctx, { "a" }, { "c", "b" })          -- a -> c (UPDATE), b inserted
    assert.same({ "b", "c" }, version.ids(conn))
    assert.same({ "b", "c" }, version.current(ctx))
    version.step(ctx, { "b", "c" }, {})
    assert.same({}, version.ids(conn))
    assert.is_nil(version.revision(conn))
    -- the key: one row per id
    assert.is_false(pcall(conn.exec, conn, "INSERT INTO alembic_version (version_num) VALUES ('x'), ('x')"))
  end)

  it("refuses a step when another migrator moved the database meanwhile", function()
    version.ensure_table(ctx)
    version.step(ctx, {}, { "a" })
    local ok, err = pcall(version.step, ctx, { "zz" }, { "b" })
    assert.is_false(ok)
    assert.matches("the version table changed while migrating", err.migrate_error, 1, true)
    assert.same({ "a" }, version.ids(conn))
  end)

  it("records and forgets checksums in todohost's side table", function()
    assert.same({}, version.checksums(ctx))
    version.set_checksum(ctx, "a", "11")
    version.set_checksum(ctx, "b", "22")
    version.set_checksum(ctx, "a", "33")
    assert.same({ a = "33", b = "22" }, version.checksums(ctx))
    version.set_checksum(ctx, "b", nil)
    assert.same({ a = "33" }, version.checksums(ctx))
  end)

  it("reads where a database stands (ids and checksums) in at most two queries, whichever tables exist", function()
    local queries = 0
    local counted = setmetatable({ query = function(self, ...)
      queries = queries + 1
      return ctx.query(self, ...)
    end }, { __index = ctx })
    local function state()
      queries = 0
      local s = version.state(counted)
      assert.is_true(queries <= 2, queries .. " queries")
      return s
    end
    assert.same({ ids = {}, checksums = {} }, state())                      -- neither table
    version.set_checksum(ctx, "a", "11")
    assert.same({ ids = {}, checksums = { a = "11" } }, state())            -- checksums only
    version.ensure_table(ctx)
    assert.same({ ids = {}, checksums = { a = "11" } }, state())            -- an empty alembic_version
    version.step(ctx, {}, { "c", "b" })
    version.set_checksum(ctx, "b", "started:upgrade")
    assert.same({ ids = { "b", "c" }, checksums = { a = "11", b = "started:upgrade" } }, state())
    assert.same(version.current(ctx), state().ids)
    assert.same(version.checksums(ctx), state().checksums)
    assert.same({ { id = "b", direction = "upgrade" } }, version.unfinished(ctx, state().checksums))
    conn:exec("DROP TABLE todohost_migration_checksums")
    assert.same({ ids = { "b", "c" }, checksums = {} }, state())            -- alembic_version only
  end)

  it("prints Alembic's statements offline, without the side table", function()
    local out = {}
    local offline = executor.new({ dialect = conn.kind, offline = true, write = function(s) out[#out + 1] = s end })
    version.ensure_table(offline)
    version.step(offline, { "a" }, { "b" })
    version.set_checksum(offline, "b", "x")
    version.drop_table(offline)
    assert.same({
      "CREATE TABLE alembic_version (\n    version_num VARCHAR(32) NOT NULL, \n    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n);\n\n",
      "UPDATE alembic_version SET version_num='b' WHERE alembic_version.version_num = 'a';\n\n",
      "DROP TABLE alembic_version;\n\n",
    }, out)
    assert.is_nil(version.ids(conn))   -- nothing ran
  end)

  it("takes the migration lock on PostgreSQL (a second session waits for it)", function()
    version.lock(conn)
    if conn.kind ~= "postgresql" then return end
    local other <close> = db.connect(url)
    assert.same({ { got = false } }, other:query("SELECT pg_try_advisory_lock($1) AS got", version.LOCK_KEY))
  end)
end)
