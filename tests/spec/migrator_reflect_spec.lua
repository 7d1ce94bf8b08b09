-- tests/spec/migrator_reflect_spec.lua (migrator/reflect.lua): a database
-- built by real migrations, read back on this pass's database into the model
-- the declared schema also gives: columns with canonical types, nullability
-- and defaults by meaning, primary key, indexes, unique and check
-- constraints, foreign keys with ON DELETE, enum values; alembic_version and
-- the checksum table left out.
local h = require "spec_helper"
local sh = require "schema_helper"
local db = require "todohost.db"
local reflect = require "migrator.reflect"
local normal = require "migrator.normal"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"

describe("migrator.reflect (" .. kind .. ")", function()
  local url, drop, model

  setup(function()
    url, drop = h.fresh_database("reflect_spec")
    local code, _, err = sh.migrate(url, sh.revisions({ { "r1", sh.REVISION } }), "upgrade head")
    assert.equal(0, code, err)
    local conn <close> = db.connect(url)
    model = reflect.database(conn)
  end)
  teardown(function() drop() end)

  it("lists the app's tables only, not alembic_version nor the checksum table", function()
    assert.same({ "posts", "users" }, model.order)
    assert.equal(kind, model.dialect)
  end)

  it("reads columns: canonical type, nullability, default by meaning", function()
    local users, posts = model.tables.users, model.tables.posts
    local names = {}
    for i, c in ipairs(users.columns) do names[i] = c.name end
    assert.same({ "id", "email", "status", "score" }, names)
    assert.equal("integer", users.column.id.type)
    assert.is_false(users.column.id.nullable)
    assert.equal("varchar(100)", users.column.email.type)
    assert.is_false(users.column.email.nullable)
    assert.equal("numeric(6,2)", users.column.score.type)
    assert.is_true(users.column.score.nullable)
    assert.equal("0", users.column.score.default)
    assert.equal("'active'", users.column.status.default)
    assert.equal("false", posts.column.published.default)
    assert.equal("now()", posts.column.created_at.default)
    assert.equal(kind == "postgresql" and "timestamptz" or "datetime", posts.column.created_at.type)
    assert.is_nil(posts.column.body.default)
  end)

  it("reads an enum: a PostgreSQL type, or SQLite's VARCHAR with its CHECK", function()
    local status = model.tables.users.column.status
    assert.same({ "active", "blocked" }, status.enum.values)
    assert.equal("user_status", status.enum.name)
    assert.equal(kind == "postgresql" and "enum user_status" or "varchar(7)", status.type)
    -- the enum's CHECK is not listed again as a check constraint
    assert.equal(1, #model.tables.users.checks)
  end)

  it("reads the primary key, indexes, unique and check constraints, foreign keys", function()
    local users, posts = model.tables.users, model.tables.posts
    assert.same({ "id" }, users.pk)
    assert.same({ { "email" } }, { users.uniques[1].columns })
    assert.equal("score_positive", users.checks[1].name)
    assert.equal(normal.check("score >= 0"), normal.check(users.checks[1].sql))
    assert.same({ name = "ix_posts_user_id", columns = { "user_id" }, unique = false }, posts.indexes.ix_posts_user_id)
    assert.same({ name = "ix_posts_user_published", columns = { "user_id", "published" }, unique = true },
      posts.indexes.ix_posts_user_published)
    local n = 0
    for _ in pairs(posts.indexes) do n = n + 1 end
    assert.equal(2, n)   -- the primary key's index is not one of them
    assert.equal(1, #posts.fks)
    local fk = posts.fks[1]
    assert.same({ { "user_id" }, "users", { "id" }, "CASCADE" }, { fk.columns, fk.ref_table, fk.ref_columns, fk.ondelete })
  end)

  it("reads key and index columns whose names hold a comma as one column each", function()
    sh.exec(url, 'CREATE TABLE "odd, table" ("a,b" INTEGER NOT NULL, "c d" INTEGER NOT NULL, PRIMARY KEY ("a,b", "c d"))')
    sh.exec(url, 'CREATE INDEX ix_odd ON "odd, table" ("c d", "a,b")')
    local conn <close> = db.connect(url)
    local odd = reflect.database(conn).tables["odd, table"]
    sh.exec(url, 'DROP TABLE "odd, table"')
    assert.same({ "a,b", "c d" }, odd.pk)
    assert.same({ "c d", "a,b" }, odd.indexes.ix_odd.columns)
  end)

  it("reads a change made by hand", function()
    sh.exec(url, kind == "postgresql" and "ALTER TABLE posts ALTER COLUMN published SET DEFAULT true"
      or "ALTER TABLE posts ADD COLUMN extra INTEGER DEFAULT 7")
    local conn <close> = db.connect(url)
    local again = reflect.database(conn)
    if kind == "postgresql" then
      assert.equal("true", again.tables.posts.column.published.default)
    else
      assert.equal("7", again.tables.posts.column.extra.default)
    end
  end)
end)
