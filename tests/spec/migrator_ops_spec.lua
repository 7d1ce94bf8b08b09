-- tests/spec/migrator_ops_spec.lua (migrator/ops.lua): the `op` API of migrations on the
-- database of this pass: every operation runs through `migrate.lua upgrade`
-- and `downgrade` as a user's revision would, and the result is read back
-- from the database. On SQLite the table rebuilds must keep every row,
-- default, constraint, index and trigger.
local h = require "spec_helper"
local db = require "todohost.db"

local bin = h.todohost()
local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"
local function fresh_database() return h.fresh_database("migrator_ops_spec") end

local revisions = h.revisions

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

-- ---- each operation, read back from the database's catalog ------------------

-- The tables of the database (set), without the migrator's own.
local function tables(url)
  local sql = kind == "sqlite"
    and "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
    or "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
  local set = {}
  for _, r in ipairs(query(url, sql)) do
    if r.name ~= "alembic_version" and r.name ~= "todohost_migration_checksums" then set[r.name] = true end
  end
  return set
end

-- The columns of a table, in order: { {name=, type= (declared, upper
-- case), nullable=} }.
local function columns(url, table_name)
  local out = {}
  if kind == "sqlite" then
    for _, c in ipairs(query(url, "SELECT name, type, \"notnull\" FROM pragma_table_info($1) ORDER BY cid", table_name)) do
      out[#out + 1] = { name = c.name, type = c.type:upper(), nullable = c.notnull == 0 }
    end
  else
    for _, c in ipairs(query(url, "SELECT attname AS name, upper(format_type(atttypid, atttypmod)) AS type, "
        .. "attnotnull AS notnull FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
        .. "AND NOT attisdropped ORDER BY attnum", table_name)) do
      out[#out + 1] = { name = c.name, type = c.type, nullable = not c.notnull }
    end
  end
  return out
end

-- The column named name of a table, or nil.
local function column(url, table_name, name)
  for _, c in ipairs(columns(url, table_name)) do
    if c.name == name then return c end
  end
end

local function column_names(url, table_name)
  local names = {}
  for _, c in ipairs(columns(url, table_name)) do names[#names + 1] = c.name end
  return table.concat(names, ",")
end

-- The indexes created on a table (not those behind a constraint):
-- name -> { unique = bool, columns = "a,b", partial = bool }.
local function indexes(url, table_name)
  local out = {}
  if kind == "sqlite" then
    for _, ix in ipairs(query(url, "SELECT name, \"unique\", partial FROM pragma_index_list($1) WHERE origin = 'c'", table_name)) do
      local cols = {}
      for _, c in ipairs(query(url, "SELECT name FROM pragma_index_info($1) ORDER BY seqno", ix.name)) do cols[#cols + 1] = c.name end
      out[ix.name] = { unique = ix.unique == 1, columns = table.concat(cols, ","), partial = ix.partial == 1 }
    end
  else
    for _, ix in ipairs(query(url, "SELECT i.relname AS name, x.indisunique AS uniq, x.indpred IS NOT NULL AS partial, "
        .. "x.indexrelid::bigint AS oid, x.indrelid::bigint AS rel FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        .. "WHERE x.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        table_name)) do
      local cols = {}
      for _, c in ipairs(query(url, "SELECT a.attname AS name FROM pg_index x, unnest(x.indkey::int2[]) WITH ORDINALITY k(n, ord) "
          .. "JOIN pg_attribute a ON a.attnum = k.n WHERE x.indexrelid = $1::bigint::oid AND a.attrelid = $2::bigint::oid ORDER BY k.ord",
          ix.oid, ix.rel)) do
        cols[#cols + 1] = c.name
      end
      out[ix.name] = { unique = ix.uniq, columns = table.concat(cols, ","), partial = ix.partial }
    end
  end
  return out
end

-- Runs the revisions' upgrade to head and checks it succeeded.
local function upgrade(url, list)
  local dir = revisions(list)
  local code, _, err = migrate(url, dir, "upgrade head")
  assert.equal(0, code, err)
  return dir
end

local function downgrade(url, dir, target)
  local code, _, err = migrate(url, dir, "downgrade " .. target)
  assert.equal(0, code, err)
end

-- The type names each dialect declares.
local T = kind == "sqlite"
  and { int = "INTEGER", varchar10 = "VARCHAR(10)", varchar40 = "VARCHAR(40)", text = "TEXT", bigint = "BIGINT", bool = "BOOLEAN" }
  or { int = "INTEGER", varchar10 = "CHARACTER VARYING(10)", varchar40 = "CHARACTER VARYING(40)", text = "TEXT",
       bigint = "BIGINT", bool = "BOOLEAN" }

local BASE = [[
  op.create_table("t", op.column("id", op.types.integer, { primary_key = true }),
    op.column("a", op.types.string(10)), op.column("b", op.types.integer, { nullable = false, server_default = op.text("5") }))
  op.bulk_insert("t", { { id = 1, a = "x", b = 1 }, { id = 2, a = "y", b = 2 } })
]]

describe("each op (" .. kind .. ")", function()
  local url, drop

  before_each(function() url, drop = fresh_database() end)
  after_each(function() drop() end)

  it("create_table: columns, types, nullability, defaults, primary key; drop_table undoes it", function()
    local dir = upgrade(url, { { "r1", [[
      op.create_table("t", op.column("id", op.types.integer, { primary_key = true }),
        op.column("name", op.types.string(40), { nullable = false }),
        op.column("n", op.types.big_integer, { server_default = op.text("7") }),
        op.column("flag", op.types.boolean, { server_default = false }),
        op.column("note", op.types.text, { server_default = "none" }))
    ]], [[ op.drop_table("t") ]] } })
    assert.same({
      { name = "id", type = T.int, nullable = false }, { name = "name", type = T.varchar40, nullable = false },
      { name = "n", type = T.bigint, nullable = true }, { name = "flag", type = T.bool, nullable = true },
      { name = "note", type = T.text, nullable = true },
    }, columns(url, "t"))
    exec(url, "INSERT INTO t (id, name) VALUES (1, 'a')")
    assert.same({ { n = 7, flag = false, note = "none" } }, query(url, "SELECT n, flag, note FROM t"))
    assert.is_true(fails(url, "INSERT INTO t (id, name) VALUES (1, 'dup')"))    -- primary key
    assert.is_true(fails(url, "INSERT INTO t (id, name) VALUES (2, NULL)"))     -- NOT NULL
    downgrade(url, dir, "base")
    assert.same({}, tables(url))
  end)

  it("an array of an enum: create_table and add_column make the enum type on PostgreSQL (its only use); JSON without CHECK on SQLite", function()
    upgrade(url, { { "r1", [[
      local t = op.types
      op.create_table("tagged", op.column("id", t.integer, { primary_key = true }),
        op.column("tags", t.array(t.enum("tag_kind", { "red", "it's" }))))
      op.add_column("tagged", op.column("moods", t.array(t.enum("mood", { "calm" }))))
      op.add_column("tagged", op.column("bins", t.array(t.large_binary)))
    ]] } })
    if kind == "postgresql" then
      local types = {}
      for _, r in ipairs(query(url, "SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute"
          .. " WHERE attrelid = 'tagged'::regclass AND attnum > 1 ORDER BY attnum")) do types[#types + 1] = r.t end
      assert.same({ "tag_kind[]", "mood[]", "bytea[]" }, types)
      exec(url, "INSERT INTO tagged (id, tags, moods) VALUES (1, ARRAY['red', 'it''s']::tag_kind[], '{calm}')")
      assert.is_true(fails(url, "INSERT INTO tagged (id, tags) VALUES (2, '{blue}')"))
    else
      local sql = query(url, "SELECT sql FROM sqlite_master WHERE name = 'tagged'")[1].sql
      assert.matches("tags JSON", sql, 1, true)
      assert.is_nil(sql:find("CHECK", 1, true))
      exec(url, [=[INSERT INTO tagged (id, tags) VALUES (1, '["red", "blue"]')]=])   -- the copy refuses "blue"
    end
  end)

  it("constraints: composite primary key, named unique, foreign key with ON DELETE, named check", function()
    upgrade(url, { { "r1", [[
      op.create_table("p", op.column("id", op.types.integer, { primary_key = true }))
      op.create_table("c",
        op.column("a", op.types.integer), op.column("b", op.types.integer),
        op.column("p_id", op.types.integer), op.column("code", op.types.string(10)), op.column("qty", op.types.integer),
        op.primary_key("a", "b"),
        op.unique("code", { name = "uq_c_code" }),
        op.foreign_key("p_id", "p", "id", { ondelete = "SET NULL" }),
        op.check("qty >= 0", { name = "ck_c_qty" }))
      op.bulk_insert("p", { { id = 1 } })
    ]] } })
    assert.same({ false, false }, { column(url, "c", "a").nullable, column(url, "c", "b").nullable })
    exec(url, "INSERT INTO c (a, b, p_id, code, qty) VALUES (1, 1, 1, 'x', 0)")
    exec(url, "INSERT INTO c (a, b, p_id, code, qty) VALUES (1, 2, NULL, 'y', 1)")   -- (a, b) is the key, not a
    assert.is_true(fails(url, "INSERT INTO c (a, b, code) VALUES (1, 1, 'z')"))
    assert.is_true(fails(url, "INSERT INTO c (a, b, code) VALUES (2, 1, 'x')"))        -- unique code
    assert.is_true(fails(url, "INSERT INTO c (a, b, p_id) VALUES (3, 1, 99)"))         -- foreign key
    assert.is_true(fails(url, "INSERT INTO c (a, b, qty) VALUES (4, 1, -1)"))          -- check
    exec(url, "DELETE FROM p WHERE id = 1")
    assert.same({ { p_id = nil } }, query(url, "SELECT p_id FROM c WHERE a = 1 AND b = 1"))
    local names = kind == "sqlite"
      and query(url, "SELECT sql FROM sqlite_master WHERE name = 'c'")[1].sql
      or table.concat((function()
        local n = {}
        for _, r in ipairs(query(url, "SELECT conname FROM pg_constraint WHERE conrelid = 'c'::regclass ORDER BY conname")) do n[#n + 1] = r.conname end
        return n
      end)(), " ")
    assert.matches("uq_c_code", names, 1, true)
    assert.matches("ck_c_qty", names, 1, true)
  end)

  it("add_column: plain, with a literal default, with an expression default (SQLite rebuilds), unique, index; drop_column undoes each", function()
    local dir = upgrade(url, { { "r1", BASE }, { "r2", [[
      op.add_column("t", op.column("c1", op.types.text))
      op.add_column("t", op.column("c2", op.types.string(10), { nullable = false, server_default = "dflt" }))
      op.add_column("t", op.column("c3", op.types.integer, { server_default = op.text("40 + 2") }))
      op.add_column("t", op.column("c4", op.types.integer, { unique = true }))
      op.add_column("t", op.column("c5", op.types.integer, { index = true }))
    ]], [[
      op.drop_column("t", "c5")
      op.drop_column("t", "c4")
      op.drop_column("t", "c3")
      op.drop_column("t", "c2")
      op.drop_column("t", "c1")
    ]] } })
    assert.equal("id,a,b,c1,c2,c3,c4,c5", column_names(url, "t"))
    assert.is_false(column(url, "t", "c2").nullable)
    -- existing rows took the defaults
    assert.same({ { id = 1, a = "x", c2 = "dflt", c3 = 42 }, { id = 2, a = "y", c2 = "dflt", c3 = 42 } },
      query(url, "SELECT id, a, c1, c2, c3 FROM t ORDER BY id"))
    exec(url, "INSERT INTO t (id, c4) VALUES (3, 1)")
    assert.is_true(fails(url, "INSERT INTO t (id, c4) VALUES (4, 1)"))   -- unique = true
    assert.same({ unique = false, columns = "c5", partial = false }, indexes(url, "t").ix_t_c5)
    downgrade(url, dir, "r1")
    assert.equal("id,a,b", column_names(url, "t"))
    assert.same({}, indexes(url, "t"))
    assert.same({ { n = 3 } }, query(url, "SELECT count(*) AS n FROM t"))
  end)

  it("alter_column nullable: SET NOT NULL and back", function()
    local dir = upgrade(url, { { "r1", BASE }, { "r2",
      [[ op.alter_column("t", "a", { nullable = false }) ]], [[ op.alter_column("t", "a", { nullable = true }) ]] } })
    assert.is_false(column(url, "t", "a").nullable)
    assert.is_true(fails(url, "INSERT INTO t (id, a) VALUES (3, NULL)"))
    downgrade(url, dir, "r1")
    assert.is_true(column(url, "t", "a").nullable)
    exec(url, "INSERT INTO t (id, a) VALUES (3, NULL)")
  end)

  it("alter_column type: widens a string, converts text to integer (with using on PostgreSQL), keeps the rows", function()
    upgrade(url, { { "r1", BASE .. [[ op.add_column("t", op.column("num", op.types.text))
      op.execute("UPDATE t SET num = CAST(id * 10 AS TEXT)") ]] }, { "r2", [[
      op.alter_column("t", "a", { type = op.types.string(40) })
      op.alter_column("t", "num", { type = op.types.integer, using = "num::integer" })
    ]] } })
    assert.equal(T.varchar40, column(url, "t", "a").type)
    assert.equal(T.int, column(url, "t", "num").type)
    assert.same({ { id = 1, a = "x", num = 10 }, { id = 2, a = "y", num = 20 } }, query(url, "SELECT id, a, num FROM t ORDER BY id"))
    exec(url, "INSERT INTO t (id, a) VALUES (3, '" .. ("z"):rep(40) .. "')")
  end)

  it("alter_column server_default: sets one, and op.no_default drops it", function()
    upgrade(url, { { "r1", BASE }, { "r2", [[
      op.alter_column("t", "a", { server_default = "set" })
      op.alter_column("t", "b", { server_default = op.no_default })
    ]] } })
    exec(url, "INSERT INTO t (id, b) VALUES (3, 0)")
    assert.same({ { a = "set" } }, query(url, "SELECT a FROM t WHERE id = 3"))
    assert.is_true(fails(url, "INSERT INTO t (id) VALUES (4)"))   -- b is NOT NULL and has no default now
  end)

  it("alter_column new_column_name renames, keeping rows and the index on it", function()
    local dir = upgrade(url, { { "r1", BASE .. [[ op.create_index("ix_t_a", "t", { "a" }) ]] }, { "r2",
      [[ op.alter_column("t", "a", { new_column_name = "label" }) ]],
      [[ op.alter_column("t", "label", { new_column_name = "a" }) ]] } })
    assert.equal("id,label,b", column_names(url, "t"))
    assert.same({ { label = "x" }, { label = "y" } }, query(url, "SELECT label FROM t ORDER BY id"))
    assert.equal("label", indexes(url, "t").ix_t_a.columns)
    downgrade(url, dir, "r1")
    assert.equal("id,a,b", column_names(url, "t"))
  end)

  it("alter_column rejects an unknown option, naming it", function()
    local dir = revisions({ { "r1", BASE .. [[ op.alter_column("t", "a", { nulable = false }) ]] } })
    local code, _, err = migrate(url, dir, "upgrade head")
    assert.equal(1, code)
    assert.matches('unknown option "nulable"', err, 1, true)
    assert.same({}, tables(url))   -- rolled back
  end)

  it("create_index: plain, unique, multi-column, partial (where), one column as a string; drop_index", function()
    local dir = upgrade(url, { { "r1", BASE }, { "r2", [[
      op.create_index("ix_a", "t", { "a" })
      op.create_index("ux_b", "t", { "b" }, { unique = true })
      op.create_index("ix_ab", "t", { "a", "b" })
      op.create_index("ix_part", "t", "a", { where = "b > 1" })
    ]], [[
      op.drop_index("ix_part", "t")
      op.drop_index("ix_ab", "t")
      op.drop_index("ux_b", "t")
      op.drop_index("ix_a", "t")
    ]] } })
    assert.same({
      ix_a = { unique = false, columns = "a", partial = false },
      ux_b = { unique = true, columns = "b", partial = false },
      ix_ab = { unique = false, columns = "a,b", partial = false },
      ix_part = { unique = false, columns = "a", partial = true },
    }, indexes(url, "t"))
    assert.is_true(fails(url, "INSERT INTO t (id, a, b) VALUES (3, 'z', 1)"))
    downgrade(url, dir, "r1")
    assert.same({}, indexes(url, "t"))
  end)

  it("rename_table moves the rows; renaming back restores it", function()
    local dir = upgrade(url, { { "r1", BASE }, { "r2", [[ op.rename_table("t", "u") ]], [[ op.rename_table("u", "t") ]] } })
    assert.same({ u = true }, tables(url))
    assert.same({ { n = 2 } }, query(url, "SELECT count(*) AS n FROM u"))
    downgrade(url, dir, "r1")
    assert.same({ t = true }, tables(url))
  end)

  it("execute binds $n parameters and returns the rows affected; query reads rows inside the migration", function()
    upgrade(url, { { "r1", BASE }, { "r2", [[
      local n = op.execute("UPDATE t SET a = $1 WHERE b >= $2", "it's", 1)
      local rows = op.query("SELECT count(*) AS c FROM t WHERE a = $1", "it's")
      op.execute("INSERT INTO t (id, a, b) VALUES ($1, $2, $3)", 10, "n=" .. n .. ",c=" .. rows[1].c, 0)
    ]] } })
    assert.same({ { a = "n=2,c=2" } }, query(url, "SELECT a FROM t WHERE id = 10"))
  end)

  it("bulk_insert: server defaults fill missing keys; with columns, a missing key is NULL", function()
    upgrade(url, { { "r1", BASE .. [[
      op.bulk_insert("t", { { id = 3, a = "d" } })
      op.bulk_insert("t", { { id = 4, b = 9 }, { id = 5, a = "e", b = 8 } }, { columns = { "id", "a", "b" } })
    ]] } })
    assert.same({ { id = 3, a = "d", b = 5 }, { id = 4, b = 9 }, { id = 5, a = "e", b = 8 } },
      query(url, "SELECT id, a, b FROM t WHERE id >= 3 ORDER BY id"))
  end)

  it("op:method(...) works as op.method(...)", function()
    upgrade(url, { { "r1", BASE .. [[ op:add_column("t", op.column("c", op.types.integer)) op:create_index("ix_c", "t", { "c" }) ]] } })
    assert.equal("id,a,b,c", column_names(url, "t"))
    assert.is_not_nil(indexes(url, "t").ix_c)
  end)

  it("batch_alter_table: add, alter, rename, drop, create_index and drop_index in one batch", function()
    local dir = upgrade(url, { { "r1", BASE .. [[ op.create_index("ix_t_b", "t", { "b" }) ]] }, { "r2", [[
      op.batch_alter_table("t", function(batch)
        batch.add_column(op.column("c", op.types.integer, { server_default = op.text("3") }))
        batch.alter_column("a", { nullable = false, type = op.types.string(40), new_column_name = "label" })
        batch.drop_index("ix_t_b")
        batch.drop_column("b")
        batch.create_index("ix_t_label", { "label" }, { unique = true })
      end)
    ]] } })
    assert.equal("id,label,c", column_names(url, "t"))
    assert.same({ name = "label", type = T.varchar40, nullable = false }, column(url, "t", "label"))
    assert.same({ ix_t_label = { unique = true, columns = "label", partial = false } }, indexes(url, "t"))
    assert.same({ { id = 1, label = "x", c = 3 }, { id = 2, label = "y", c = 3 } }, query(url, "SELECT * FROM t ORDER BY id"))
    assert.is_true(fails(url, "INSERT INTO t (id, label) VALUES (3, 'x')"))
    if kind == "sqlite" then
      -- one rebuild: the temporary table is gone and the table is whole
      assert.same({ t = true }, tables(url))
      assert.same({}, query(url, "PRAGMA foreign_key_check"))
    end
    local _ = dir
  end)

  it("batch_alter_table of adds only: no rebuild on SQLite, the table's SQL keeps its text", function()
    upgrade(url, { { "r1", BASE }, { "r2", [[
      op.batch_alter_table("t", function(batch)
        batch.add_column(op.column("c", op.types.text, { server_default = "q" }))
      end)
    ]] } })
    assert.equal("id,a,b,c", column_names(url, "t"))
    if kind == "sqlite" then
      -- ADD COLUMN appends to the original statement; a rebuild would write CREATE TABLE "t"
      assert.matches("^CREATE TABLE t ", query(url, "SELECT sql FROM sqlite_master WHERE name = 't'")[1].sql)
    end
    assert.same({ { c = "q" } }, query(url, "SELECT c FROM t WHERE id = 1"))
  end)
end)
