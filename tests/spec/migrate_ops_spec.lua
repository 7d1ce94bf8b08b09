-- tests/spec/migrate_ops_spec.lua: the `op` API of migrations on the
-- database of this pass: every operation runs through `migrate.lua upgrade`
-- and `downgrade` as a user's revision would, and the result is read back
-- from the database. On SQLite the table rebuilds must keep every row,
-- default, constraint, index and trigger.
local h = require "spec_helper"
local db = require "todohost.db"

local bin = h.todohost()
local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"
local admin_url = h.pg_url()
local counter = 0

local function fresh_database()
  if kind == "sqlite" then
    return "sqlite:///" .. h.tmpdir() .. "/ops.db", function() end
  end
  counter = counter + 1
  local name = ("migrate_ops_spec_%d_%d"):format(os.time() % 100000, counter)
  local admin = db.connect(admin_url)
  admin:exec("DROP DATABASE IF EXISTS " .. name)
  admin:exec("CREATE DATABASE " .. name)
  admin:close()
  return admin_url:gsub("/[^/?]*(%??[^/]*)$", "/" .. name .. "%1"), function()
    local a = db.connect(admin_url)
    a:exec("DROP DATABASE IF EXISTS " .. name .. " WITH (FORCE)")
    a:close()
  end
end

-- Writes the revisions (list of {id, upgrade_body, downgrade_body}) into a
-- fresh directory, chained in order.
local function revisions(list)
  local dir = h.tmpdir()
  local prev = "nil"
  for _, r in ipairs(list) do
    h.write(dir .. "/" .. r[1] .. "_rev.lua", ("return { revision = %q, down_revision = %s, message = %q,\n"
      .. "upgrade = function(op)\n%s\nend,\ndowngrade = function(op)\n%s\nend }\n"):format(r[1], prev, r[1], r[2], r[3] or ""))
    prev = ("%q"):format(r[1])
  end
  return dir
end

local function migrate(url, dir, args)
  return h.run("env -u DEBUG DATABASE_URL=" .. h.quote(url) .. " " .. h.quote(bin)
    .. " run migrate.lua -q --dir " .. h.quote(dir) .. " " .. args)
end

local function query(url, sql, ...)
  local conn = db.connect(url)
  local ok, rows = pcall(conn.query, conn, sql, ...)
  conn:close()
  if not ok then error(rows, 0) end
  return rows
end

local function exec(url, sql, ...)
  local conn = db.connect(url)
  local ok, err = pcall(conn.exec, conn, sql, ...)
  conn:close()
  if not ok then error(err, 0) end
end

-- true when running sql raises an error
local function fails(url, sql, ...)
  return not pcall(exec, url, sql, ...)
end

describe("migration operations (" .. kind .. ")", function()
  local url, drop

  before_each(function() url, drop = fresh_database() end)
  after_each(function() drop() end)

  it("keeps rows, defaults, constraints, indexes and triggers through alter/drop column", function()
    local dir = revisions({
      { "r1", [[
        local t = op.types
        op.create_table("users", op.column("id", t.integer, { primary_key = true }),
          op.column("email", t.string(100), { nullable = false, unique = true }))
        op.create_table("items",
          op.column("id", t.integer, { primary_key = true }),
          op.column("user_id", t.integer),
          op.column("name", t.string(50), { nullable = true }),
          op.column("qty", t.integer, { server_default = op.text("1"), nullable = false }),
          op.column("note", t.text),
          op.column("label", t.string(20), { server_default = "none" }),
          op.foreign_key({ "user_id" }, "users", { "id" }, { ondelete = "CASCADE" }),
          op.check("qty > 0", { name = "ck_items_qty" }))
        op.create_index("ix_items_name", "items", { "name" }, { unique = true })
        op.create_index("ix_items_note", "items", { "note" })
        op.bulk_insert("users", { { id = 1, email = "a@x" }, { id = 2, email = "b@x" } })
        op.bulk_insert("items", {
          { id = 1, user_id = 1, name = "one", qty = 3, note = "n1" },
          { id = 2, user_id = 2, name = "two", qty = 1, label = "it's" },
        })
        if op.dialect == "sqlite" then
          op.execute("CREATE TRIGGER tr_items AFTER INSERT ON items BEGIN UPDATE users SET email = email || '+' WHERE id = new.user_id; END")
        end
      ]] },
      { "r2", [[
        op.alter_column("items", "name", { nullable = false, type = op.types.string(80) })
        op.drop_column("items", "note")
        op.alter_column("items", "label", { new_column_name = "tag", server_default = op.no_default })
      ]], [[
        op.alter_column("items", "tag", { new_column_name = "label", server_default = "none" })
        op.add_column("items", op.column("note", op.types.text))
        op.alter_column("items", "name", { nullable = true })
      ]] },
    })
    local code, _, err = migrate(url, dir, "upgrade head")
    assert.equal(0, code, err)
    local rows = query(url, "SELECT id, user_id, name, qty, tag FROM items ORDER BY id")
    assert.same({ { id = 1, user_id = 1, name = "one", qty = 3, tag = "none" },
      { id = 2, user_id = 2, name = "two", qty = 1, tag = "it's" } }, rows)
    -- defaults: qty keeps its default, tag lost its default
    exec(url, "INSERT INTO items (id, user_id, name) VALUES (3, 1, 'three')")
    assert.same({ { qty = 1 } }, query(url, "SELECT qty, tag FROM items WHERE id = 3"))
    -- constraints: NOT NULL name, CHECK, UNIQUE index on name, FK, unique email
    assert.is_true(fails(url, "INSERT INTO items (id, user_id, name) VALUES (4, 1, NULL)"))
    assert.is_true(fails(url, "INSERT INTO items (id, user_id, name, qty) VALUES (4, 1, 'four', 0)"))
    assert.is_true(fails(url, "INSERT INTO items (id, user_id, name) VALUES (4, 1, 'one')"))
    assert.is_true(fails(url, "INSERT INTO items (id, user_id, name) VALUES (4, 99, 'four')"))
    assert.is_true(fails(url, "INSERT INTO users (id, email) VALUES (3, 'b@x')"))
    -- ON DELETE CASCADE still there
    exec(url, "DELETE FROM users WHERE id = 2")
    assert.same({ { n = 2 } }, query(url, "SELECT count(*) AS n FROM items"))
    -- the note column is gone with its index; the unique index on name stays
    assert.is_true(fails(url, "SELECT note FROM items"))
    if kind == "sqlite" then
      local names = {}
      for _, r in ipairs(query(url, "SELECT name FROM sqlite_master WHERE tbl_name = 'items' AND sql IS NOT NULL ORDER BY name")) do
        names[#names + 1] = r.name
      end
      assert.same({ "items", "ix_items_name", "tr_items" }, names)
      assert.matches("CONSTRAINT ck_items_qty CHECK (qty > 0)",
        query(url, "SELECT sql FROM sqlite_master WHERE name = 'items'")[1].sql, 1, true)
      assert.same({}, query(url, "PRAGMA foreign_key_check"))
      assert.same({ { email = "a@x+" } }, query(url, "SELECT email FROM users WHERE id = 1")) -- the trigger fired
    else
      assert.same({ { n = 1 } }, query(url, "SELECT count(*) AS n FROM pg_indexes WHERE indexname = 'ix_items_name'"))
      assert.same({ { t = "character varying(80)" } }, query(url,
        "SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'name'"))
    end
    -- and back down
    code, _, err = migrate(url, dir, "downgrade r1")
    assert.equal(0, code, err)
    exec(url, "INSERT INTO items (id, user_id, name, note) VALUES (5, 1, NULL, 'n')")
    assert.same({ { id = 5, label = "none", note = "n" } }, query(url, "SELECT id, label, note FROM items WHERE id = 5"))
  end)

  it("batch_alter_table rebuilds once and applies every change", function()
    local dir = revisions({
      { "r1", [[
        op.create_table("t", op.column("id", op.types.integer, { primary_key = true }),
          op.column("a", op.types.integer), op.column("b", op.types.text))
        op.bulk_insert("t", { { id = 1, a = 10, b = "x" } })
      ]] },
      { "r2", [[
        op.batch_alter_table("t", function(batch)
          batch.add_column(op.column("c", op.types.boolean, { server_default = false, nullable = false }))
          batch.alter_column("a", { nullable = false })
          batch.drop_column("b")
          batch.create_index("ix_t_c", { "c" })
        end)
      ]] },
    })
    local code, out, err = migrate(url, dir, "upgrade head")
    assert.equal(0, code, err)
    assert.equal("", out)
    assert.same({ { id = 1, a = 10, c = false } }, query(url, "SELECT * FROM t"))
    assert.is_true(fails(url, "INSERT INTO t (id, a) VALUES (2, NULL)"))
    if kind == "sqlite" then
      assert.equal("CREATE TABLE \"t\" (\n\tid INTEGER NOT NULL, \n\ta INTEGER NOT NULL, \n\tc BOOLEAN DEFAULT 0 NOT NULL, \n\tPRIMARY KEY (id)\n)",
        query(url, "SELECT sql FROM sqlite_master WHERE name = 't'")[1].sql)
    end
    assert.equal(1, #query(url, kind == "sqlite" and "SELECT 1 FROM sqlite_master WHERE name = 'ix_t_c'"
      or "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_t_c'"))
  end)

  it("renders op.execute parameters, rename_table and drop_table, also in --sql", function()
    local _
    local dir = revisions({
      { "r1", [[
        op.create_table("a", op.column("id", op.types.integer, { primary_key = true }), op.column("s", op.types.text))
        op.execute("INSERT INTO a (id, s) VALUES ($1, $2)", 7, "it's")
        op.rename_table("a", "b")
      ]], [[ op.drop_table("b") ]] },
    })
    local code, out, err = migrate(url, dir, "upgrade --sql head")
    assert.equal(0, code, err)
    assert.matches("INSERT INTO a (id, s) VALUES (7, 'it''s');", out, 1, true)
    assert.matches("ALTER TABLE a RENAME TO b;", out, 1, true)
    code, _, err = migrate(url, dir, "upgrade head")
    assert.equal(0, code, err)
    assert.same({ { id = 7, s = "it's" } }, query(url, "SELECT * FROM b"))
    code, _, err = migrate(url, dir, "downgrade base")
    assert.equal(0, code, err)
    assert.matches("drops table b (1 row holds data)", err, 1, true)
    assert.is_true(fails(url, "SELECT * FROM b"))
  end)

  it("rejects a bad op call with the revision named", function()
    local dir = revisions({ { "r1", [[ op.add_column("t", "not a column") ]] } })
    local code, _, err = migrate(url, dir, "upgrade head")
    assert.equal(1, code)
    assert.matches("Upgrade to r1", err, 1, true)
    assert.matches("must be op.column", err, 1, true)
  end)
end)
