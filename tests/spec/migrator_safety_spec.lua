-- tests/spec/migrator_safety_spec.lua (migrator/lint.lua and the engine's
-- lock_timeout and transactional = false): on the database of this pass,
-- `migrate.lua lint` lists what loses data or blocks a table with a way
-- round; on PostgreSQL a migration waiting for a lock fails after
-- lock_timeout naming the session in the way; a transactional = false
-- revision builds an index CONCURRENTLY, and one that fails half-way is
-- reported by every later run until it is stamped.
local h = require "spec_helper"
local sh = require "schema_helper"
local db = require "todohost.db"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"

-- The lines of out (lint prints one per finding).
local function lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local BASE = [[
    op.create_table("items",
      op.column("id", op.types.integer, { primary_key = true }),
      op.column("name", op.types.string(100)),
      op.column("note", op.types.text),
      op.column("old", op.types.text))
    op.create_index("ix_items_name", "items", { "name" })
]]

describe("migration safety (" .. kind .. ")", function()
  local url, drop

  before_each(function() url, drop = h.fresh_database("safety_spec") end)
  after_each(function() drop() end)

  it("lint lists each operation that loses data or blocks a table, with the revision and a way round", function()
    local dir = sh.revisions({
      { "r1", BASE },
      { "r2", [[
        op.drop_column("items", "old")
        op.alter_column("items", "name", { type = op.types.string(50), existing_type = op.types.string(100) })
        op.alter_column("items", "note", { type = op.types.text, existing_type = op.types.string(10) })
        op.alter_column("items", "note", { nullable = false })
        op.add_column("items", op.column("qty", op.types.integer, { nullable = false }))
        op.add_column("items", op.column("price", op.types.integer, { nullable = false, server_default = 0 }))
        op.create_index("ix_items_note", "items", { "note" })
        op.drop_table("items")
      ]] },
      { "r3", [[
        op.create_table("logs", op.column("id", op.types.integer, { primary_key = true }))
        op.create_index("ix_logs_id", "logs", { "id" })
      ]] },
    })
    assert.equal(0, (sh.migrate(url, dir, "upgrade r1")))
    sh.exec(url, "INSERT INTO items (name, note) VALUES ('a', NULL), ('b', NULL)")
    local code, out = sh.migrate(url, dir, "lint")
    assert.equal(1, code)
    local expected = {
      "r2: drops column items.old and its values (a downgrade cannot bring them back); way round: stop reading it first, drop it in a later revision",
      "r2: changes the type of items.name from varchar(100) to varchar(50): values that do not fit fail the revision"
        .. (kind == "postgresql" and ", and the table is rewritten under an exclusive lock" or "")
        .. "; way round: add a new column, copy the values in batches, switch the app, drop the old column",
      "r2: sets NOT NULL on items.note (2 rows hold NULL now): fails while a row holds NULL (a server default does not fill them); "
        .. "way round: op.execute(\"UPDATE items SET note = ... WHERE note IS NULL\") first in the same revision",
      "r2: adds NOT NULL column items.qty without a server default: fails when items has rows; way round: give it a server_default, "
        .. "or add it nullable, fill it, then set NOT NULL",
    }
    if kind == "postgresql" then
      expected[#expected + 1] = "r2: builds index ix_items_note on items without CONCURRENTLY: writes to items wait until it is built; "
        .. "way round: op.create_index(..., { concurrently = true }) in a revision with transactional = false"
    end
    expected[#expected + 1] = "r2: drops table items and its rows; way round: stop using it, rename it (op.rename_table) and drop it "
      .. "in a later revision once nothing reads it"
    assert.same(expected, lines(out))
    -- one revision, and one that is clean (a new table's index blocks nobody)
    code, out = sh.migrate(url, dir, "lint r3")
    assert.equal(0, code)
    assert.equal("", out)
    -- an UPDATE before SET NOT NULL fills the NULLs: not reported
    local filled = sh.revisions({ { "f1", BASE }, { "f2", [[
        op.execute("UPDATE items SET note = '' WHERE note IS NULL")
        op.alter_column("items", "note", { nullable = false })
      ]] } })
    code, out = sh.migrate(url, filled, "lint f2")
    assert.equal(0, code, out)
  end)

  it("lint finds nothing in the app's own migrations", function()
    local code, out, err = sh.migrate(url, "migrations", "lint")
    assert.equal(0, code, out .. err)
  end)

  it("autogenerate comments an index built on an existing table (PostgreSQL)", function()
    local dir = sh.revisions({ { "r1", sh.REVISION } })
    h.write(dir .. "/script.lua.tmpl", assert(h.read("migrations/script.lua.tmpl")))
    assert.equal(0, (sh.migrate(url, dir, "upgrade head")))
    local schema_path = sh.schema_file((sh.SCHEMA:gsub('s.column%("body", t.text%)', 's.column("body", t.text, { index = true })')))
    assert.equal(0, (sh.migrate(url, dir, "revision --autogenerate -m ix --rev-id r2 --schema " .. h.quote(schema_path))))
    local text = assert(h.read(dir .. "/r2_ix.lua"))
    local comment = "-- blocks writes to posts while it builds: on a big table use { concurrently = true } in a transactional = false revision"
    if kind == "postgresql" then
      assert.matches(comment .. '\n    op.create_index("ix_posts_body", "posts", { "body" })', text, 1, true)
    else
      assert.is_nil(text:find(comment, 1, true))
    end
  end)

  it("runs a transactional = false revision outside a transaction (CREATE INDEX CONCURRENTLY on PostgreSQL)", function()
    local dir = sh.revisions({ { "r1", BASE } })
    h.write(dir .. "/r2_rev.lua", [[return { revision = "r2", down_revision = "r1", message = "ix", transactional = false,
      upgrade = function(op) op.create_index("ix_items_note", "items", { "note" }, { concurrently = true }) end,
      downgrade = function(op) op.drop_index("ix_items_note", "items") end }]])
    local code, _, err = sh.migrate(url, dir, "upgrade head")
    assert.equal(0, code, err)
    local conn <close> = db.connect(url)
    local sql = kind == "postgresql" and "SELECT 1 AS found FROM pg_indexes WHERE indexname = 'ix_items_note'"
      or "SELECT 1 AS found FROM sqlite_master WHERE name = 'ix_items_note'"
    assert.is_table(conn:first(sql))
    assert.equal("r2", conn:first("SELECT version_num FROM alembic_version").version_num)
    code, _, err = sh.migrate(url, dir, "downgrade r1")
    assert.equal(0, code, err)
    assert.is_nil(conn:first(sql))
  end)

  it("refuses concurrently = true inside a transaction, saying what to declare (PostgreSQL)", function()
    if kind ~= "postgresql" then return end
    local dir = sh.revisions({ { "r1", BASE }, { "r2", 'op.create_index("ix_items_note", "items", { "note" }, { concurrently = true })' } })
    local code, _, err = sh.migrate(url, dir, "upgrade head")
    assert.equal(1, code)
    assert.matches("concurrently = true cannot run inside a transaction; declare transactional = false in the revision", err, 1, true)
    assert.matches("failed and was rolled back; the database is still at r1", err, 1, true)
  end)

  it("reports a transactional = false revision that failed half-way until it is stamped", function()
    local dir = sh.revisions({ { "r1", BASE } })
    h.write(dir .. "/r2_rev.lua", [[return { revision = "r2", down_revision = "r1", message = "half", transactional = false,
      upgrade = function(op)
        op.add_column("items", op.column("extra", op.types.integer))
        op.execute("INSERT INTO missing_table VALUES (1)")
      end,
      downgrade = function(op) op.drop_column("items", "extra") end }]])
    local code, _, err = sh.migrate(url, dir, "upgrade head")
    assert.equal(1, code)
    local conn <close> = db.connect(url)
    local function has_extra()
      for _, c in ipairs(conn:query(kind == "postgresql"
          and "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'items'"
          or "PRAGMA table_info(items)")) do
        if c.name == "extra" then return true end
      end
      return false
    end
    if kind == "sqlite" then
      -- SQLite has no statement that needs it: the revision ran in a transaction, all of it undone
      assert.matches("failed and was rolled back; the database is still at r1", err, 1, true)
      assert.is_false(has_extra())
      return
    end
    assert.matches("Upgrade to r2 (" .. dir .. "/r2_rev.lua, transactional = false) failed part-way: what ran before the error "
      .. "stays in the database, the rest did not run; alembic_version still says r1.", err, 1, true)
    assert.matches("record it: todohost run migrate.lua stamp r2 (finished) or stamp r1 (undone)", err, 1, true)
    assert.is_true(has_extra())   -- the part that ran
    local refusal = "r2 (" .. dir .. "/r2_rev.lua, transactional = false) started its upgrade and did not finish"
    for _, command in ipairs({ "upgrade head", "check --schema " .. h.quote(sh.schema_file(sh.SCHEMA)) }) do
      code, _, err = sh.migrate(url, dir, command)
      assert.equal(1, code, command)
      assert.matches(refusal, err, 1, true)
    end
    -- undone by hand, then stamped where it is: upgrade goes on
    sh.exec(url, "ALTER TABLE items DROP COLUMN extra")
    assert.equal(0, (sh.migrate(url, dir, "stamp r1")))
    h.write(dir .. "/r2_rev.lua", (h.read(dir .. "/r2_rev.lua"):gsub('op.execute%b()', "")))
    code, _, err = sh.migrate(url, dir, "upgrade head")
    assert.equal(0, code, err)
    assert.is_true(has_extra())
  end)

  it("gives up waiting for a table lock after lock_timeout, naming the session in the way (PostgreSQL)", function()
    if kind ~= "postgresql" then return end
    local dir = sh.revisions({ { "r1", BASE }, { "r2", 'op.add_column("items", op.column("x", op.types.integer))' } })
    assert.equal(0, (sh.migrate(url, dir, "upgrade r1")))
    local holder = db.connect(url)
    local started = require("todohost.util").clock()
    local code, err
    local ok, e = pcall(holder.transaction, holder, function()
      holder:query("SELECT * FROM items")   -- holds ACCESS SHARE until the transaction ends
      code, _, err = sh.migrate(url, dir, "upgrade head")
    end)
    local waited = require("todohost.util").clock() - started
    local pid = holder:first("SELECT pg_backend_pid() AS pid").pid
    holder:close()
    assert.is_true(ok, tostring(e))
    assert.equal(1, code)
    assert.matches("Upgrade to r2 (" .. dir .. "/r2_rev.lua) failed and was rolled back; the database is still at r1.", err, 1, true)
    assert.matches("it waited 5000 ms for a table lock (MIGRATE_LOCK_TIMEOUT)", err, 1, true)
    assert.matches(("blocked by: session %d (user "):format(pid), err, 1, true)
    assert.matches(("holding a lock on items\n  end that session's transaction (or SELECT pg_terminate_backend(%d))"):format(pid), err, 1, true)
    assert.is_true(waited >= 4.5 and waited < 60, "waited " .. waited .. " s")
    -- and once the session is gone, the same upgrade goes through
    code, _, err = sh.migrate(url, dir, "upgrade head")
    assert.equal(0, code, err)
  end)
end)
