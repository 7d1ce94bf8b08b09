-- tests/spec/migrator_schema_spec.lua (migrator/schema.lua): the declaration
-- functions and their refusals, finding and loading a schema file, and the
-- model a declaration gives, set against a table made from the same
-- declaration on the database of this pass and read back (no differences;
-- one column left out is one difference).
local h = require "spec_helper"
local s = require "migrator.schema"
local ddl = require "migrator.ddl"
local reflect = require "migrator.reflect"
local compare = require "migrator.compare"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"
local t = s.types

-- A declaration with a column of each common shape, an index and constraints.
local function projects(...)
  return s.table("projects",
    s.column("id", t.integer, { primary_key = true }),
    s.column("name", t.string(80), { nullable = false, index = true }),
    s.column("done", t.boolean, { nullable = false, server_default = false }),
    s.column("created_at", t.datetime { timezone = true }, { nullable = false, server_default = s.now }),
    s.column("note", t.text),
    s.index("ix_projects_done_name", { "done", "name" }),
    s.check("length(name) > 0", { name = "ck_projects_name" }),
    ...)
end

describe("migrator.schema", function()
  it("refuses declarations it cannot use, naming what is wrong", function()
    assert.error_matches(function() s.table("") end, "the table needs a name", 1, true)
    assert.error_matches(function() s.table("x", "id") end, 'schema.table("x"): element 1 is not a column', 1, true)
    assert.error_matches(function() s.index("", { "a" }) end, "the index needs a name", 1, true)
    assert.error_matches(function() s.index("ix", {}) end, "schema.index(ix): a list of columns", 1, true)
    assert.error_matches(function() s.define({ "todos" }) end, "item 1 is not a schema.table", 1, true)
    local a = s.table("a", s.column("id", t.integer))
    assert.error_matches(function() s.define({ a, a }) end, "table a is declared twice", 1, true)
  end)

  it("declares indexes from a name or a list, unique only when asked", function()
    assert.same({ element = "index", name = "ix_a", columns = { "a" }, unique = false }, s.index("ix_a", "a"))
    assert.same({ element = "index", name = "ix_ab", columns = { "a", "b" }, unique = true },
      s.index("ix_ab", { "a", "b" }, { unique = true }))
  end)

  it("finds a column's declaration, and names one that is not declared", function()
    local declared = s.define { projects() }
    local col = s.column_of(declared, "projects", "name")
    assert.equal("name", col.name)
    assert.is_false(col.nullable)
    assert.error_matches(function() s.column_of(declared, "projects", "owner") end,
      "the schema declares no column projects.owner", 1, true)
  end)

  it("finds the app's models.lua by default and loads it", function()
    assert.equal("scripts/app/models.lua", s.default_path())
    local declared = s.load()
    assert.equal("scripts/app/models.lua", declared.path)
    assert.equal("todos", declared.tables[1].name)
  end)

  it("says why a schema file cannot be used, naming the file", function()
    local dir = h.tmpdir()
    local function load_error(path)
      local ok, err = pcall(s.load, path)
      assert.is_false(ok)
      return err.migrate_error
    end
    assert.equal("no schema file at " .. dir .. "/none.lua: give one with --schema FILE", load_error(dir .. "/none.lua"))
    h.write(dir .. "/syntax.lua", "return {")
    assert.matches("^cannot load the schema " .. dir:gsub("%p", "%%%0") .. "/syntax%.lua: ", load_error(dir .. "/syntax.lua"))
    h.write(dir .. "/fails.lua", "error('no models here')")
    assert.matches("the schema .-/fails%.lua failed: .*no models here", load_error(dir .. "/fails.lua"))
    h.write(dir .. "/table.lua", "return { tables = {} }")
    assert.equal("the schema " .. dir .. "/table.lua must return schema.define { schema.table(...), ... }",
      load_error(dir .. "/table.lua"))
  end)

  it("gives the model of a declaration for each dialect", function()
    local declared = s.define { projects() }
    for _, dialect in ipairs({ "sqlite", "postgresql" }) do
      local m = s.model(declared, dialect)
      assert.same({ "projects" }, m.order)
      local p = m.tables.projects
      assert.same({ "id" }, p.pk)
      assert.is_false(p.column.id.nullable)
      assert.equal("varchar(80)", p.column.name.type)
      assert.is_false(p.column.name.nullable)
      assert.is_true(p.column.note.nullable)
      assert.same({ name = "ix_projects_name", columns = { "name" }, unique = false }, p.indexes.ix_projects_name)
      assert.same({ name = "ix_projects_done_name", columns = { "done", "name" }, unique = false },
        p.indexes.ix_projects_done_name)
      assert.same({ { name = "ck_projects_name", sql = "length(name) > 0" } }, p.checks)
    end
  end)

  it("refuses a primary key or an index naming a column that is not declared", function()
    local bad_pk = s.define { s.table("a", s.column("id", t.integer), s.primary_key("key")) }
    local ok, err = pcall(s.model, bad_pk, kind)
    assert.is_false(ok)
    assert.equal("table a: primary key column key is not declared", err.migrate_error)
    local bad_ix = s.define { s.table("a", s.column("id", t.integer), s.index("ix_a_x", "x")) }
    ok, err = pcall(s.model, bad_ix, kind)
    assert.is_false(ok)
    assert.equal("table a: index ix_a_x names column x, which is not declared", err.migrate_error)
  end)

  describe("set against the database (" .. kind .. ")", function()
    local conn, done
    setup(function()
      conn, done = h.fresh_connection("schema_spec")
      local columns_and_constraints = {}
      for _, e in ipairs(projects().elements) do
        if e.element ~= "index" then columns_and_constraints[#columns_and_constraints + 1] = e end
      end
      local create, indexes = ddl.create_table_sql("projects", columns_and_constraints, kind)
      conn:exec(create)
      for _, sql in ipairs(indexes) do conn:exec(sql) end
      conn:exec(ddl.create_index_sql("ix_projects_done_name", "projects", { "done", "name" }, {}, kind))
    end)
    teardown(function() done() end)

    it("matches a table made from the same declaration", function()
      local declared = s.model(s.define { projects() }, kind)
      assert.same({}, compare.diff(declared, reflect.database(conn)))
    end)

    it("differs by one column declared and not in the database", function()
      local declared = s.model(s.define { projects(s.column("owner", t.string(40))) }, kind)
      local found = compare.diff(declared, reflect.database(conn))
      assert.equal(1, #found)
      assert.equal("projects", found[1].table)
      assert.matches("owner", found[1].text, 1, true)
    end)
  end)
end)
