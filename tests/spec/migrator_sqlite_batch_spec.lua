-- tests/spec/migrator_sqlite_batch_spec.lua (migrator/sqlite_batch.lua): the
-- table rebuild of SQLite changes ALTER TABLE cannot make, on a real SQLite
-- file in both passes (the module is SQLite's only): every row kept,
-- columns altered, added and dropped, constraints added and dropped,
-- indexes and triggers made again, and refusals that change nothing; and
-- the readers of constraint texts and enum CHECKs.
local h = require "spec_helper"
local db = require "todohost.db"
local batch = require "migrator.sqlite_batch"
local ddl = require "migrator.ddl"
local executor = require "migrator.executor"

describe("migrator.sqlite_batch", function()
  it("reads the parts of a table constraint's text", function()
    assert.same({ name = "ck_pos", kind = "CHECK", expr = "n > 0" }, batch.constraint_parts("CONSTRAINT ck_pos CHECK ( n > 0 )"))
    assert.same({ kind = "UNIQUE", columns = { "a", "b c" } }, batch.constraint_parts('UNIQUE (a, "b c")'))
    assert.same({ kind = "FOREIGN", columns = { "owner_id" } },
      batch.constraint_parts("FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE"))
    assert.same({ name = "pk", kind = "PRIMARY", columns = { "id" } }, batch.constraint_parts("CONSTRAINT [pk] PRIMARY KEY (id)"))
  end)

  it("reads an enum's CHECK, and nothing else as one", function()
    local col, values = batch.enum_of("status IN ('new', 'it''s done')")
    assert.equal("status", col)
    assert.same({ "new", "it's done" }, values)
    assert.is_nil(batch.enum_of("status IN ('a', 1)"))
    assert.is_nil(batch.enum_of("length(status) > 0"))
    assert.is_nil(batch.enum_of(nil))
  end)

  describe("rebuild", function()
    local conn, ctx, warnings

    before_each(function()
      conn = db.connect("sqlite:///" .. h.tmpdir() .. "/batch.db")
      conn:exec("CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY)")
      conn:exec([[CREATE TABLE items (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        name VARCHAR(20) NOT NULL DEFAULT 'x' COLLATE NOCASE,
        qty VARCHAR(10),
        owner_id INTEGER REFERENCES users (id),
        CONSTRAINT ck_qty CHECK (qty <> ''),
        UNIQUE (name, owner_id))]])
      conn:exec("CREATE INDEX ix_items_owner ON items (owner_id)")
      conn:exec("CREATE INDEX ix_items_lower ON items (lower(name)) WHERE qty IS NOT NULL")
      conn:exec("CREATE TABLE audit (n INTEGER)")
      conn:exec("CREATE TRIGGER tr_items AFTER INSERT ON items BEGIN INSERT INTO audit VALUES (NEW.id); END")
      conn:exec("INSERT INTO users (id) VALUES (1)")
      conn:exec("INSERT INTO items (name, qty, owner_id) VALUES ('a', '5', 1), ('b', NULL, NULL), ('c''s', '12', 1)")
      warnings = {}
      ctx = executor.new({ dialect = "sqlite", conn = conn })
      ctx.warn = function(_, text) warnings[#warnings + 1] = text end
    end)
    after_each(function() conn:close() end)

    local function rows()
      return conn:query("SELECT * FROM items ORDER BY id")
    end
    local function sql_of(name)
      local row = conn:first("SELECT sql FROM sqlite_master WHERE name = $1", name)
      return row and row.sql
    end

    it("changes a column's type, casting the values, and keeps rows, constraints, indexes and triggers", function()
      batch.rebuild(ctx, "items", { { op = "alter", column = "qty", type = ddl.types.integer } })
      local got = rows()
      assert.equal(3, #got)
      assert.equal(5, got[1].qty)
      assert.equal(12, got[3].qty)
      assert.equal("integer", conn:first("SELECT typeof(qty) AS t FROM items WHERE id = 1").t)
      assert.equal("c's", got[3].name)
      local create = sql_of("items")
      assert.matches("AUTOINCREMENT", create, 1, true)
      assert.matches("COLLATE NOCASE", create, 1, true)
      assert.matches("REFERENCES users (id)", create, 1, true)
      assert.matches("CONSTRAINT ck_qty CHECK (qty <> '')", create, 1, true)
      assert.matches("UNIQUE (name, owner_id)", create, 1, true)
      assert.equal("CREATE INDEX ix_items_lower ON items (lower(name)) WHERE qty IS NOT NULL", sql_of("ix_items_lower"))
      assert.is_string(sql_of("ix_items_owner"))
      assert.is_string(sql_of("tr_items"))
      assert.is_nil(sql_of("_alembic_tmp_items"))
      conn:exec("INSERT INTO items (name) VALUES ('d')")
      assert.equal(4, conn:first("SELECT max(id) AS id FROM items").id)
      assert.equal(4, conn:first("SELECT max(n) AS n FROM audit").n)
      assert.same({ {} }, { conn:first("PRAGMA foreign_key_check") or {} })
    end)

    it("adds a column with its default and a constraint; sets NOT NULL", function()
      batch.rebuild(ctx, "items", {
        { op = "add", column = ddl.column("done", ddl.types.boolean, { nullable = false, server_default = false }) },
        { op = "add_constraint", constraint = ddl.check("length(name) < 10", { name = "ck_name" }) },
        { op = "alter", column = "name", nullable = true },
      })
      for _, r in ipairs(rows()) do assert.is_false(r.done) end
      assert.matches("CONSTRAINT ck_name CHECK (length(name) < 10)", sql_of("items"), 1, true)
      local ok = pcall(conn.exec, conn, "INSERT INTO items (name) VALUES ('much too long')")
      assert.is_false(ok)
      conn:exec("INSERT INTO items (name, qty) VALUES (NULL, '1')")
    end)

    it("drops a column with the constraints and indexes that name it, saying so", function()
      batch.rebuild(ctx, "items", { { op = "drop", column = "owner_id" } })
      assert.is_nil(rows()[1].owner_id)
      assert.is_nil(sql_of("ix_items_owner"))
      assert.not_matches("UNIQUE", sql_of("items"), 1, true)
      assert.same({ "dropping column items.owner_id also drops the table constraint UNIQUE (name, owner_id)",
        "dropping column items.owner_id also drops index ix_items_owner" }, warnings)
      assert.equal(3, #rows())
    end)

    it("drops a named constraint", function()
      batch.rebuild(ctx, "items", { { op = "drop_constraint", name = "ck_qty", type_ = "check" } })
      assert.not_matches("ck_qty", sql_of("items"), 1, true)
      conn:exec("INSERT INTO items (name, qty) VALUES ('e', '')")
    end)

    it("refuses impossible changes in one line, leaving the table as it was", function()
      local before = sql_of("items")
      local function refused(changes)
        local ok, err = pcall(batch.rebuild, ctx, "items", changes)
        assert.is_false(ok)
        return err.migrate_error
      end
      assert.equal("table items has no column nope", refused({ { op = "drop", column = "nope" } }))
      assert.equal("cannot drop column items.id: it is part of the primary key", refused({ { op = "drop", column = "id" } }))
      assert.equal("cannot add column items.name: it already exists",
        refused({ { op = "add", column = ddl.column("name", ddl.types.text) } }))
      assert.equal("table items has no check constraint ck_none",
        refused({ { op = "drop_constraint", name = "ck_none", type_ = "check" } }))
      assert.equal(before, sql_of("items"))
      assert.equal(3, #rows())
    end)
  end)
end)
