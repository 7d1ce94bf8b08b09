-- tests/spec/web_router_spec.lua (web/router.lua): routing (static and
-- parameterized paths, 404, 405 with Allow, Starlette's slash redirect),
-- validation in FastAPI's order with every error at once, what a handler
-- may return, the query-string parser, and the worker's real database
-- connection handed to handlers. (Failure handling: api_spec.lua.)
local h = require "spec_helper"
local api_helper = require "api_helper"
local db = require "todohost.db"
local json = require "web.json"
local router = require "web.router"
local schema = require "web.schema"

local request = api_helper.request

-- A router with a few routes; the handlers echo what they were given.
local function sample()
  local r = router.new()
  r:add({ method = "GET", path = "/items", handler = function() return 200, nil, json.array {} end })
  r:add({ method = "POST", path = "/items", status = 201,
    body = schema.model("New", { { "title", "string", required = true } }),
    handler = function(req) return 201, nil, { title = req.data.title } end })
  r:add({ method = "GET", path = "/items/count", handler = function() return 200, nil, "7" end })
  r:add({ method = "GET", path = "/items/{id}", path_params = { { "id", "integer", ge = 1 } },
    query = { { "full", "boolean", default = false } },
    handler = function(req) return 200, nil, { id = req.params.id, full = req.args.full } end })
  r:add({ method = "DELETE", path = "/items/{id}", path_params = { { "id", "integer" } },
    handler = function() return 204 end })
  r:add({ method = "GET", path = "/a/{x}/b/{y}", handler = function(req) return 200, nil, { x = req.params.x, y = req.params.y } end })
  return r:handler(nil)
end

describe("web.router", function()
  local handle = sample()

  it("routes static paths before parameterized ones, and passes path parameters", function()
    local status, _, body = handle(request("GET", "/items/count"))
    assert.same({ 200, "7" }, { status, body })
    status, _, body = handle(request("GET", "/items/12", { query = "full=yes" }))
    assert.equal(200, status)
    assert.same({ id = 12, full = true }, json.decode(body))
    status, _, body = handle(request("GET", "/a/one/b/two"))
    assert.same({ x = "one", y = "two" }, json.decode(body))
  end)

  it("answers 404 for an unknown path and 405 with Allow for a known path's other method", function()
    local status, headers, body = handle(request("GET", "/nothing"))
    assert.same({ 404, '{"detail":"Not Found"}' }, { status, body })
    assert.matches("^application/json", headers["content-type"])
    status, headers, body = handle(request("PUT", "/items/3"))
    assert.same({ 405, '{"detail":"Method Not Allowed"}', "DELETE, GET" }, { status, body, headers.allow })
    status, headers = handle(request("PATCH", "/items"))
    assert.same({ 405, "GET, POST" }, { status, headers.allow })
  end)

  it("redirects a trailing slash to the route without it, keeping the query (307)", function()
    local status, headers, body = handle(request("GET", "/items/", { query = "a=1" }))
    assert.same({ 307, "/items?a=1", "" }, { status, headers.location, body })
    status, headers = handle(request("GET", "/items/5/"))
    assert.same({ 307, "/items/5" }, { status, headers.location })
    assert.equal(404, (handle(request("GET", "/nothing/"))))
  end)

  it("validates path, query and body in that order and reports every error in one 422", function()
    local r = router.new()
    r:add({ method = "PUT", path = "/x/{id}", path_params = { { "id", "integer" } },
      query = { { "n", "integer", required = true } },
      body = schema.model("B", { { "title", "string", required = true } }),
      handler = function() error("must not run") end })
    local status, headers, body = r:handler(nil)(request("PUT", "/x/abc", { query = "n=x", json = { title = json.null } }))
    assert.equal(422, status)
    assert.matches("^application/json", headers["content-type"])
    local locs = {}
    for _, e in ipairs(json.decode(body).detail) do locs[#locs + 1] = table.concat(e.loc, ".") end
    assert.same({ "path.id", "query.n", "body.title" }, locs)
    -- constraints of path parameters too
    status, _, body = handle(request("GET", "/items/0"))
    assert.equal(422, status)
    assert.equal("value_error.number.not_ge", json.decode(body).detail[1].type)
  end)

  it("encodes a table body as JSON, sends a string as it is, and nil as an empty body without headers", function()
    local status, headers, body = handle(request("POST", "/items", { json = { title = "t" } }))
    assert.same({ 201, '{"title":"t"}' }, { status, body })
    assert.matches("^application/json", headers["content-type"])
    status, headers, body = handle(request("DELETE", "/items/3"))
    assert.same({ 204, "", {} }, { status, body, headers })
    status, _, body = handle(request("GET", "/items"))
    assert.same({ 200, "[]" }, { status, body })
  end)

  it("parses query strings: last value wins, an empty value is absent, %XX and + decoded", function()
    assert.same({ a = "2", b = "x y", ["c d"] = "é&" }, router.parse_query("a=1&a=2&b=x+y&c%20d=%C3%A9%26&e=&=z"))
    assert.same({}, router.parse_query(nil))
    assert.same({}, router.parse_query("&&"))
    assert.same({ flag = nil }, router.parse_query("flag"))
    assert.is_nil(router.parse_query("a=1&a=").a)
  end)

  it("refuses a route with more than 4 path parameters, or two models of one name", function()
    local r = router.new()
    assert.has_error(function()
      r:add({ method = "GET", path = "/{a}/{b}/{c}/{d}/{e}", handler = print })
    end, "route GET /{a}/{b}/{c}/{d}/{e}: at most 4 path parameters")
    r:add({ method = "POST", path = "/m1", body = schema.model("M", { { "a", "string" } }), handler = print })
    assert.has_error(function()
      r:add({ method = "POST", path = "/m2", body = schema.model("M", { { "b", "string" } }), handler = print })
    end, "two different models are named M")
  end)

  it("hands the worker's database connection to every handler (" .. (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^%a+") .. ")", function()
    local conn <close> = db.connect(h.database_url())
    local r = router.new()
    r:add({ method = "GET", path = "/sum/{a}", path_params = { { "a", "integer" } },
      handler = function(req, d) return 200, nil, { kind = d.kind, sum = d:first("SELECT $1 + 2 AS s", req.params.a).s } end })
    local handler = r:handler(conn)
    for a = 1, 3 do
      local status, _, body = handler(request("GET", "/sum/" .. a))
      assert.equal(200, status)
      assert.same({ kind = conn.kind, sum = a + 2 }, json.decode(body))
    end
  end)
end)

describe("web.router's route declarations", function()
  it("leave the caller's field tables as they were (a field shared by a path and a query stays optional there)", function()
    local id = { "id", "integer" }
    local r = router.new()
    r:add({ method = "GET", path = "/things/{id}", path_params = { id },
      handler = function(req) return 200, nil, { id = req.params.id } end })
    r:add({ method = "GET", path = "/things", query = { id },
      handler = function(req) return 200, nil, { id = req.args.id or json.null } end })
    local handle = r:handler(nil)
    assert.is_nil(id.required, "the declaration's field table was changed")
    local status, _, body = handle(request("GET", "/things"))
    assert.same({ 200, '{"id":null}' }, { status, body })
    status, _, body = handle(request("GET", "/things/5"))
    assert.same({ 200, '{"id":5}' }, { status, body })
  end)
end)
