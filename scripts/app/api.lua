-- api.lua: assembles the HTTP API: the router with every route module's
-- routes, /openapi.json and /docs, bound to one database connection.
--
--   local handle = require("api").handler(conn)  -- function(req) -> status, headers, body
--
-- A route module returns a list of routes (see web/router.lua); list new
-- modules in ROUTE_MODULES.

local router = require "web.router"
local docs = require "web.docs"
local auth = require "auth"
local json = require "web.json"
local metrics = require "metrics"

local api = {}

api.INFO = {
  title = "todohost",
  description = "A personal todo list: the Todo API.",
  version = "0.1.0",
}

local ROUTE_MODULES = { "todos", "health" }

-- The router with every route declared (raises on a bad declaration).
function api.router()
  local r = router.new(api.INFO)
  for _, name in ipairs(ROUTE_MODULES) do
    for _, route in ipairs(require(name)) do r:add(route) end
  end
  for _, route in ipairs(docs.routes(r)) do r:add(route) end
  for _, route in ipairs(metrics.routes) do r:add(route) end
  return r
end

local UNAUTHORIZED_HEADERS = { ["content-type"] = router.JSON_HEADERS["content-type"],
  ["www-authenticate"] = "Bearer" }
local NOT_AUTHENTICATED = json.encode(json.object({ detail = "Not authenticated" }, { "detail" }))

-- handle, answering 401 first to a request that lacks the token, when one
-- is required (auth.guard).
local function guarded(handle)
  local may_pass = auth.guard()
  if not may_pass then return handle end
  return function(req)
    if not may_pass(req) then return 401, UNAUTHORIZED_HEADERS, NOT_AUTHENTICATED end
    return handle(req)
  end
end

function api.handler(conn)
  return metrics.measured(guarded(api.router():handler(conn)))
end

return api
