-- tests/spec/api_spec.lua (scripts/app/api.lua): the assembled API, by
-- calling the app's request handler the way each server worker does (no
-- sockets), on the database of this pass: every route module's routes, the
-- router's 404/405/redirect, /openapi.json and /docs; and the router's
-- failure handling. Each route module has its own spec (todos_spec.lua,
-- health_spec.lua); http_spec.lua sends requests over real HTTP.
local cjson = require "cjson"
local helper = require "spec_helper"
local api_helper = require "api_helper"
local api = require "api"
local router = require "web.router"

local url = helper.database_url()
local kind = url:match("^postgres") and "postgresql" or "sqlite"
local call = api_helper.call

describe("the Todo API on " .. kind, function()
  local conn, handle

  setup(function() conn, handle = api_helper.app(url) end)

  teardown(function()
    if conn then conn:close() end
  end)

  describe("the router", function()
    it("holds every route module's routes, /docs, /openapi.json and /metrics, each once", function()
      local seen = {}
      for _, route in ipairs(api.router().routes) do
        local key = route.method .. " " .. route.path
        assert.is_nil(seen[key], key)
        seen[key] = true
      end
      for _, key in ipairs({ "GET /todos", "POST /todos", "GET /todos/{todo_id}", "PATCH /todos/{todo_id}",
        "DELETE /todos/{todo_id}", "GET /health", "GET /openapi.json", "GET /docs", "GET /metrics" }) do
        assert.is_true(seen[key], key)
      end
    end)

    it("describes the API with api.INFO", function()
      local _, doc = call(handle, "GET", "/openapi.json")
      assert.same({ title = api.INFO.title, description = api.INFO.description, version = api.INFO.version }, doc.info)
    end)
  end)

  describe("routing", function()
    it("404 for an unknown path", function()
      for _, path in ipairs { "/", "/nope", "/todos/1/extra", "/TODOS" } do
        local status, body = call(handle, "GET", path)
        assert.equal(404, status, path)
        assert.same({ detail = "Not Found" }, body)
      end
    end)

    it("405 for a known path with another method, with Allow", function()
      local status, body, headers = call(handle, "PUT", "/todos/1", { json = { title = "x" } })
      assert.equal(405, status)
      assert.same({ detail = "Method Not Allowed" }, body)
      assert.equal("DELETE, GET, PATCH", headers.allow)
      status = call(handle, "DELETE", "/todos")
      assert.equal(405, status)
    end)

    it("redirects a trailing slash like Starlette (307)", function()
      local status, _, headers = call(handle, "GET", "/todos/", { query = "limit=5" })
      assert.equal(307, status)
      assert.equal("/todos?limit=5", headers.location)
    end)
  end)

  describe("GET /openapi.json", function()
    it("describes every route and the schemas", function()
      local status, doc = call(handle, "GET", "/openapi.json")
      assert.equal(200, status)
      assert.matches("^3%.", doc.openapi)
      assert.is_string(doc.info.title)
      local expected = {
        ["/todos"] = { "get", "post" },
        ["/todos/{todo_id}"] = { "get", "patch", "delete" },
        ["/health"] = { "get" },
      }
      for path, methods in pairs(expected) do
        assert.is_table(doc.paths[path], path)
        for _, m in ipairs(methods) do
          local op = doc.paths[path][m]
          assert.is_table(op, m .. " " .. path)
          assert.is_string(op.operationId)
          assert.is_table(op.responses)
        end
      end
      local schemas = doc.components.schemas
      for _, name in ipairs { "Todo", "TodoCreate", "TodoUpdate", "HTTPValidationError", "ValidationError" } do
        assert.is_table(schemas[name], name)
      end
      assert.same({ "title" }, schemas.TodoCreate.required)
      assert.equal(200, schemas.TodoCreate.properties.title.maxLength)
      assert.equal("#/components/schemas/TodoCreate",
        doc.paths["/todos"].post.requestBody.content["application/json"].schema["$ref"])
      assert.equal("#/components/schemas/HTTPValidationError",
        doc.paths["/todos"].post.responses["422"].content["application/json"].schema["$ref"])
      assert.is_table(doc.paths["/todos"].post.responses["201"])
      assert.is_table(doc.paths["/todos/{todo_id}"].delete.responses["204"])
      local params = {}
      for _, p in ipairs(doc.paths["/todos"].get.parameters) do params[p.name] = p end
      assert.equal(1000, params.limit.schema.maximum)
      assert.equal("query", params.skip["in"])
      assert.is_nil(doc.paths["/docs"])
    end)
  end)

  describe("GET /docs", function()
    it("serves Swagger UI from the local swagger-ui-dist", function()
      local status, html, headers = call(handle, "GET", "/docs")
      assert.equal(200, status)
      assert.matches("^text/html", headers["content-type"])
      assert.matches("/docs/swagger%-ui%-bundle%.js", html)
      assert.matches("/openapi%.json", html)
      assert.not_matches("https?://", (html:gsub("window%.location%.origin", "")))  -- nothing from the internet
      local ok, _, asset_headers, js = call(handle, "GET", "/docs/swagger-ui-bundle.js")
      assert.equal(200, ok, "swagger-ui-dist missing: run make (npm ci)")
      assert.matches("javascript", asset_headers["content-type"])
      assert.is_true(#js > 100000)
      assert.matches("SwaggerUIBundle", js)
      assert.equal(200, (call(handle, "GET", "/docs/swagger-ui.css")))
      assert.equal(404, (call(handle, "GET", "/docs/..%2f..%2fetc%2fpasswd")))
      assert.equal(404, (call(handle, "GET", "/docs/package.json")))
    end)
  end)
end)

describe("the router's failure handling", function()
  local function handler_with(route)
    local r = router.new()
    r:add(route)
    return r:handler({ kind = "none" })
  end

  it("answers 500 without details when a handler raises, and keeps serving", function()
    local _
    local calls = 0
    local handle = handler_with({ method = "GET", path = "/boom", handler = function()
      calls = calls + 1
      if calls == 1 then error("secret stack detail") end
      return 200, nil, { ok = true }
    end })
    local status, headers, body = handle(api_helper.request("GET", "/boom"))
    assert.equal(500, status)
    assert.equal('{"detail":"Internal Server Error"}', body)
    assert.matches("^application/json", headers["content-type"])
    status, _, body = handle(api_helper.request("GET", "/boom"))
    assert.equal(200, status)
    assert.equal('{"ok":true}', body)
  end)

  it("logs a handler's error escaped, masked and indented, never as raw outside bytes", function()
    local handle = handler_with({ method = "GET", path = "/boom", handler = function(req)
      error("bad title '" .. req.headers["x-title"] .. "' from postgresql://u:pw5ecret@h/db\nsecond line", 0)
    end })
    local req = api_helper.request("GET", "/boom")
    req.headers = { ["x-title"] = "\27[2J\r\ntodohost: 200 GET /forged \226\128\174" }
    local log = io.tmpfile()
    local stderr = io.stderr
    io.stderr = log
    local ok, status = pcall(handle, req)
    io.stderr = stderr
    log:seek("set")
    local text = log:read("a")
    log:close()
    assert.is_true(ok, status)
    assert.equal(500, status)
    assert.is_nil(text:find("[\27\r]"), text)
    assert.is_nil(text:find("\226\128\174", 1, true), text)
    assert.is_nil(text:find("pw5ecret", 1, true), text)
    assert.is_nil(text:find("\ntodohost: 200", 1, true), text)
    assert.truthy(text:find("\\x1b[2J\\x0d\n  | todohost: 200 GET /forged \\xe2\\x80\\xae", 1, true), text)
    assert.truthy(text:find("\n  | second line\n", 1, true), text)
  end)

  it("answers 503 for a database connection error", function()
    local handle = handler_with({ method = "GET", path = "/db", handler = function()
      error(setmetatable({ message = "server closed the connection", sqlstate = "08006", hint = "" },
        { __tostring = function(e) return e.message end }))
    end })
    local status, _, body = handle(api_helper.request("GET", "/db"))
    assert.equal(503, status)
    assert.equal('{"detail":"Database unavailable"}', body)
  end)

  it("rejects bad route declarations when the app loads", function()
    local r = router.new()
    assert.has_error(function() r:add({ method = "FETCH", path = "/x", handler = print }) end)
    assert.has_error(function() r:add({ method = "GET", path = "x", handler = print }) end)
    assert.has_error(function() r:add({ method = "GET", path = "/x/{id}",
      path_params = { { "other", "integer" } }, handler = print }) end)
    assert.has_error(function() r:add({ method = "GET", path = "/x", query = { { "q", "float" } },
      handler = print }) end)
    r:add({ method = "GET", path = "/x", handler = print })
    assert.has_error(function() r:add({ method = "GET", path = "/x", handler = print }) end)
  end)

  it("never turns a JSON number into another integer (2^53 and beyond: 422)", function()
    local schema = require "web.schema"
    local handle = handler_with({ method = "POST", path = "/count",
      body = schema.model("Count", { { "n", "integer", required = true } }),
      handler = function(req) return 200, nil, ("%d"):format(req.data.n) end })
    local status, _, body = handle(api_helper.request("POST", "/count", { json = '{"n": 9007199254740991}' }))
    assert.same({ 200, "9007199254740991" }, { status, body })
    status, _, body = handle(api_helper.request("POST", "/count", { json = '{"n": 9007199254740993}' }))
    assert.equal(422, status)
    assert.equal("type_error.integer", cjson.decode(body).detail[1].type)
  end)

  it("adds an endpoint from a plain Lua function and documents it", function()
    local r = router.new({ title = "t" })
    r:add({ method = "GET", path = "/hello/{name}", query = { { "times", "integer", default = 1, ge = 1 } },
      handler = function(req) return 200, nil, { hello = string.rep(req.params.name, req.args.times) } end })
    local handle = r:handler(nil)
    local status, _, body = handle(api_helper.request("GET", "/hello/ab", { query = "times=2" }))
    assert.equal(200, status)
    assert.equal('{"hello":"abab"}', body)
    local doc = require("web.openapi").document(r)
    assert.is_table(doc.paths["/hello/{name}"].get)
  end)
end)
