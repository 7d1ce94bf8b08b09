-- api.lua: assembles the HTTP API: the router with every route module's
-- routes, /openapi.json and /docs, bound to one database connection.
--
--   local handle = require("api").handler(conn)  -- function(req) -> status, headers, body
--
-- A route module returns a list of routes (see web/router.lua); list new
-- modules in ROUTE_MODULES.

local router = require "web.router"
local docs = require "web.docs"

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
  return r
end

function api.handler(conn)
  return api.router():handler(conn)
end

return api
