-- tests/spec/web_docs_spec.lua (web/docs.lua): /openapi.json, the Swagger UI
-- page and its assets for a router, served from the installation's
-- swagger-ui-dist (or SWAGGER_UI_DIST); when the files are missing, a 503
-- and one line saying to run make, never a crash.
local h = require "spec_helper"
local docs = require "web.docs"
local json = require "web.json"
local router = require "web.router"

local function sample(title)
  local r = router.new({ title = title, version = "1" })
  r:add({ method = "GET", path = "/ping", name = "ping", handler = function() return 200, nil, "pong" end })
  local routes = docs.routes(r)
  for _, route in ipairs(routes) do r:add(route) end
  return r, routes
end

-- The handler of routes for path.
local function handler(routes, path)
  for _, route in ipairs(routes) do
    if route.path == path then return route.handler end
  end
end

-- Runs code with todohost in a scratch folder whose installation
-- (TODOHOST_HOME) is that folder, with the extra environment env.
local function isolated(env, code)
  local dir = h.tmpdir()
  local root = io.popen("pwd"):read("l")
  h.write(dir .. "/snippet.lua", code)
  return h.run(("env -u SWAGGER_UI_DIST TODOHOST_HOME=%s LUA_PATH=%s %s %s run snippet.lua"):format(
    h.quote(dir), h.quote(root .. "/scripts/?.lua;;"), env, h.quote(h.todohost())), dir)
end

describe("web.docs", function()
  it("adds three hidden routes: /openapi.json, /docs and /docs/{file}", function()
    local _, routes = sample("T")
    local paths = {}
    for _, route in ipairs(routes) do
      assert.equal("GET", route.method)
      assert.is_true(route.hidden)
      paths[#paths + 1] = route.path
    end
    assert.same({ "/openapi.json", "/docs", "/docs/{file}" }, paths)
  end)

  it("serves the router's OpenAPI document, without the hidden routes", function()
    local _, routes = sample("T")
    local status, headers, body = handler(routes, "/openapi.json")({})
    assert.equal(200, status)
    assert.equal("application/json; charset=utf-8", headers["content-type"])
    local doc = json.decode(body)
    assert.equal("T", doc.info.title)
    assert.truthy(doc.paths["/ping"])
    assert.is_nil(doc.paths["/docs"])
    assert.is_nil(doc.paths["/openapi.json"])
  end)

  it("serves the Swagger UI page titled after the API, with markup taken out of the title", function()
    local _, routes = sample('<b>"Todo" & co</b>')
    local status, headers, body = handler(routes, "/docs")({})
    assert.equal(200, status)
    assert.equal("text/html; charset=utf-8", headers["content-type"])
    assert.matches("<title>bTodo  co/b - Swagger UI</title>", body, 1, true)
    assert.matches("url: '/openapi.json'", body, 1, true)
  end)

  it("serves the asset files of the installation's swagger-ui-dist, and 404 for any other name", function()
    assert.is_nil(docs.problem())
    local _, routes = sample("T")
    local asset = handler(routes, "/docs/{file}")
    local status, headers, body = asset({ params = { file = "swagger-ui.css" } })
    assert.equal(200, status)
    assert.equal("text/css; charset=utf-8", headers["content-type"])
    assert.equal("public, max-age=86400", headers["cache-control"])
    assert.equal(h.read("node_modules/swagger-ui-dist/swagger-ui.css"), body)
    for _, name in ipairs({ "index.html", "../package.json", "package.json" }) do
      status, _, body = asset({ params = { file = name } })
      assert.equal(404, status)
      assert.equal('{"detail":"Not Found"}', body)
    end
  end)

  it("takes the files from SWAGGER_UI_DIST when it is set", function()
    local dist = h.tmpdir()
    h.write(dist .. "/swagger-ui-bundle.js", "// mine\n")
    local rc, out, err = isolated("SWAGGER_UI_DIST=" .. h.quote(dist), [[
      local docs = require "web.docs"
      local r = require("web.router").new({ title = "T" })
      print(docs.problem())
      print(select(3, docs.routes(r)[3].handler({ params = { file = "swagger-ui-bundle.js" } })))
    ]])
    assert.equal(0, rc, err)
    assert.equal("nil\n// mine\n\n", out)
  end)

  it("without swagger-ui-dist: problem() says to run make, and an asset is a 503 with one log line", function()
    local rc, out, err = isolated("", [[
      local docs = require "web.docs"
      local r = require("web.router").new({ title = "T" })
      print(docs.problem())
      local status, _, body = docs.routes(r)[3].handler({ params = { file = "swagger-ui.css" } })
      print(status, body)
      print((docs.routes(r)[2].handler({})))
    ]])
    assert.equal(0, rc, err)
    assert.equal("Swagger UI (npm package swagger-ui-dist) is not installed: run `make` (it runs npm ci)\n"
      .. '503\t{"detail":"Swagger UI is not installed on the server: run `make`"}\n200\n', out)
    assert.equal("todohost: /docs/swagger-ui.css: Swagger UI (npm package swagger-ui-dist) is not installed: "
      .. "run `make` (it runs npm ci)\n", err)
  end)
end)
