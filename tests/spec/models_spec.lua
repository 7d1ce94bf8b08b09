-- tests/spec/models_spec.lua (scripts/app/models.lua): the app's declared
-- schema: the todos table as the original app's SQLAlchemy model had it,
-- and a database of its own on this pass, brought to head by the
-- repository's migrations, matching it with no difference.
local h = require "spec_helper"
local db = require "todohost.db"
local schema = require "migrator.schema"
local reflect = require "migrator.reflect"
local compare = require "migrator.compare"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"

describe("models (" .. kind .. ")", function()
  local models = require "models"

  it("declares the todos table with the original model's columns", function()
    assert.equal("schema", models.element)
    assert.equal(1, #models.tables)
    local todos = schema.model(models, kind).tables.todos
    local shape = {}
    for _, c in ipairs(todos.columns) do shape[#shape + 1] = { c.name, c.type, c.nullable, c.default_sql ~= nil } end
    local timestamp = kind == "sqlite" and "datetime" or "timestamptz"
    assert.same({
      { "id", "integer", false, false },
      { "title", "varchar(200)", false, false },
      { "description", "text", true, false },
      { "is_completed", "boolean", false, true },
      { "created_at", timestamp, false, true },
      { "updated_at", timestamp, true, false },
      { "deleted_at", timestamp, true, false },
    }, shape)
    assert.same({ "id" }, todos.pk)
    assert.is_table(todos.indexes.ix_todos_id)
    assert.equal(200, schema.column_of(models, "todos", "title").type.length)
  end)

  it("is what the migrations make at head", function()
    local url, drop = h.fresh_database("models_spec")
    local code, out, err = h.run(("DATABASE_URL=%s %s run migrate.lua -q upgrade head")
      :format(h.quote(url), h.quote(h.todohost())))
    local differences
    if code == 0 then
      local conn <close> = db.connect(url)
      differences = compare.diff(schema.model(models, kind), reflect.database(conn))
    end
    drop()
    assert.equal(0, code, out .. err)
    assert.same({}, differences)
  end)
end)
