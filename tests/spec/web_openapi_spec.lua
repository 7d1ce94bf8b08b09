-- tests/spec/web_openapi_spec.lua (web/openapi.lua): the OpenAPI document of
-- a router, in FastAPI's shape: paths in declaration order, operation ids,
-- parameters, bodies, responses (the 422 only where something is
-- validated), and the component schemas of the models.
local json = require "web.json"
local openapi = require "web.openapi"
local router = require "web.router"
local schema = require "web.schema"

local Todo = schema.model("Todo", {
  { "id", "integer", required = true },
  { "is_completed", "boolean", default = false, description = "done?" },
  { "title", "string", required = true, min_length = 1, max_length = 9, nullable = true },
}, "A todo")
local NotFound = schema.model("NotFound", { { "detail", "string" } })

local function sample()
  local r = router.new({ title = "Todo API", version = "1.2.3" })
  r:add({ method = "GET", path = "/todos", name = "list_todos", tags = { "todos" }, response = { Todo },
    query = { { "skip", "integer", default = 0, ge = 0 } }, handler = print })
  r:add({ method = "GET", path = "/health", name = "health", response = Todo, handler = print })
  r:add({ method = "DELETE", path = "/todos/{todo_id}", name = "delete_todo", status = 204,
    path_params = { { "todo_id", "integer" } }, responses = { [404] = NotFound }, handler = print })
  r:add({ method = "POST", path = "/todos", name = "create_todo", body = Todo, status = 201, handler = print })
  r:add({ method = "GET", path = "/secret", hidden = true, handler = print })
  return r
end

-- The document as a client reads it (and its keys, in order, per object).
local function document(r)
  local text = json.encode(openapi.document(r))
  return json.decode(text), text
end

describe("web.openapi", function()
  it("lists paths in declaration order, methods grouped, hidden routes left out", function()
    local doc, text = document(sample())
    assert.equal("3.0.2", doc.openapi)
    assert.same({ title = "Todo API", version = "1.2.3" }, doc.info)
    assert.is_nil(doc.paths["/secret"])
    local todos, health, one = text:find('"/todos":', 1, true), text:find('"/health":', 1, true), text:find('"/todos/{todo_id}":', 1, true)
    assert.is_true(todos < health and health < one)
    assert.is_true(text:find('"get":', todos, true) < text:find('"post":', todos, true))
  end)

  it("describes operations as FastAPI does: ids, summaries, parameters, bodies", function()
    local doc = document(sample())
    local list = doc.paths["/todos"].get
    assert.equal("list_todos_todos_get", list.operationId)
    assert.equal("List Todos", list.summary)
    assert.same({ "todos" }, list.tags)
    assert.same({ { required = false, name = "skip", ["in"] = "query",
      schema = { title = "Skip", type = "integer", minimum = 0, default = 0 } } }, list.parameters)
    local delete = doc.paths["/todos/{todo_id}"].delete
    assert.same({ required = true, name = "todo_id", ["in"] = "path", schema = { title = "Todo Id", type = "integer" } },
      delete.parameters[1])
    local create = doc.paths["/todos"].post
    assert.same({ content = { ["application/json"] = { schema = { ["$ref"] = "#/components/schemas/Todo" } } }, required = true },
      create.requestBody)
  end)

  it("documents responses: arrays, 204 without content, other statuses, 422 only where input is validated", function()
    local doc = document(sample())
    local list = doc.paths["/todos"].get.responses
    assert.same({ title = "Response List Todos Todos Get", type = "array", items = { ["$ref"] = "#/components/schemas/Todo" } },
      list["200"].content["application/json"].schema)
    assert.same({ ["$ref"] = "#/components/schemas/HTTPValidationError" }, list["422"].content["application/json"].schema)
    local health = doc.paths["/health"].get.responses
    assert.is_nil(health["422"])
    local delete = doc.paths["/todos/{todo_id}"].delete.responses
    assert.same({ description = "Successful Response" }, delete["204"])
    assert.same({ ["$ref"] = "#/components/schemas/NotFound" }, delete["404"].content["application/json"].schema)
    local created = doc.paths["/todos"].post.responses   -- the route's status, not 200
    assert.is_nil(created["200"])
    assert.equal("Successful Response", created["201"].description)
  end)

  it("gives each model a schema: titles, required, constraints, nullable, defaults; and the validation schemas", function()
    local doc = document(sample())
    local s = doc.components.schemas
    assert.same({ "HTTPValidationError", "NotFound", "Todo", "ValidationError" }, (function()
      local names = {}
      for name in pairs(s) do names[#names + 1] = name end
      table.sort(names)
      return names
    end)())
    assert.same({
      title = "Todo", required = { "id", "title" }, type = "object", description = "A todo",
      properties = {
        id = { title = "Id", type = "integer" },
        is_completed = { title = "Is Completed", type = "boolean", default = false, description = "done?" },
        title = { title = "Title", type = "string", minLength = 1, maxLength = 9, nullable = true },
      },
    }, s.Todo)
    -- no input validated anywhere: no validation schemas
    local r = router.new()
    r:add({ method = "GET", path = "/x", handler = print })
    assert.same({}, document(r).components.schemas)
  end)
end)
