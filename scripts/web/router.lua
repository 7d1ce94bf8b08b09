-- web/router.lua: routes requests to Lua handlers, validating their path,
-- query and body parameters first, with FastAPI's status codes and bodies.
--
--   local r = router.new()
--   r:add{ method = "GET", path = "/todos/{todo_id}", name = "read_todo",
--          summary = "Read a todo",
--          path_params = { {"todo_id", "integer"} },          -- web/schema fields
--          query = { {"skip", "integer", default = 0, ge = 0} },
--          body = SomeModel,                                   -- schema.model
--          response = TodoModel (or { TodoModel } for an array), status = 200,
--          handler = function(req, db) return 200, nil, {...} end }
--   local handle = r:handler(conn)      -- function(req) -> status, headers, body
--
-- A handler gets the request (method, path, query, headers, body, plus the
-- validated params, args and data, and route: the matched route, which
-- also tells whoever measures the request, metrics.lua) and the worker's database connection
-- object; it returns status, headers (nil: JSON) and a body: a table
-- (encoded as JSON), a string (sent as is) or nil (empty). Route patterns
-- are compiled once in add(); a request costs one table lookup (static
-- paths) or one string.match per parameterized path.
--
-- On PostgreSQL the connection object is the worker's pool: each request
-- has a connection of its own from its first statement to its end, and
-- its statements never hold up the other requests (docs/lua-api.md,
-- "Requests and connections"). `batch_reads = true`, from an earlier
-- scheme, is still accepted in a route and does nothing.

local json = require "web.json"
local schema = require "web.schema"
local mask_text = require("todohost.db").mask_text
local text_safe = require("todohost.util").text_safe

local router = {}
router.__index = router

local type, match, gmatch, gsub, sub, byte, format, concat, pairs, ipairs, xpcall, tostring =
  type, string.match, string.gmatch, string.gsub, string.sub, string.byte, string.format, table.concat, pairs,
  ipairs, xpcall, tostring

local JSON_TYPE = "application/json; charset=utf-8"
router.JSON_HEADERS = { ["content-type"] = JSON_TYPE }
local JSON_HEADERS = router.JSON_HEADERS
local NO_HEADERS = {}

local NOT_FOUND = '{"detail":"Not Found"}'
local METHOD_NOT_ALLOWED = '{"detail":"Method Not Allowed"}'
local INTERNAL_ERROR = '{"detail":"Internal Server Error"}'
local UNAVAILABLE = '{"detail":"Database unavailable"}'

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  HEAD = true, OPTIONS = true }

-- ---- query strings ------------------------------------------------------

-- Percent-decoding, '+' as a space: the one decoder, todohost.http's (C).
local unescape = require("todohost.http").unescape

-- Parses a raw query string into name -> value (the last one wins, as in
-- FastAPI for a scalar parameter). An empty value counts as absent.
local function parse_query(qs)
  local args = {}
  if qs == nil or qs == "" then return args end
  for pair in qs:gmatch("[^&]+") do
    local k, v = match(pair, "^([^=]*)=?(.*)$")
    if k ~= "" then
      if k:find("[%%+]") then k = unescape(k) end
      if v == "" then
        args[k] = nil
      else
        if v:find("[%%+]") then v = unescape(v) end
        args[k] = v
      end
    end
  end
  return args
end
router.parse_query = parse_query

-- ---- declaring routes -----------------------------------------------------

function router.new(info)
  return setmetatable({
    info = info or {},
    routes = {},     -- in declaration order, for OpenAPI
    static = {},     -- path -> entry
    dynamic = {},    -- list of entries with a pattern
    models = {},     -- name -> model, for OpenAPI components
  }, router)
end

-- Compiles "/todos/{todo_id}" into a Lua pattern and the parameter names.
local function compile_path(path)
  local names = {}
  local pattern = gsub(path, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  pattern = gsub(pattern, "{([%w_]+)}", function(name)
    names[#names + 1] = name
    return "([^/]+)"
  end)
  if #names == 0 then return nil end
  return "^" .. pattern .. "$", names
end

local function register_model(self, model)
  if model and model.name then
    local known = self.models[model.name]
    assert(known == nil or known == model, "two different models are named " .. model.name)
    self.models[model.name] = model
  end
end

-- Adds a route (see the header). Errors in the declaration are raised here,
-- when the app loads, not when a request arrives.
function router:add(declared_route)
  local route = {}   -- a copy: the module's declaration stays as written
  for k, v in pairs(declared_route) do route[k] = v end
  local where = format("route %s %s", tostring(route.method), tostring(route.path))
  assert(METHODS[route.method], where .. ": method must be one of GET, POST, PUT, PATCH, DELETE")
  assert(type(route.path) == "string" and byte(route.path) == 47, where .. ": path must start with /")
  assert(type(route.handler) == "function", where .. ": handler must be a function")
  assert(route.batch_reads == nil or type(route.batch_reads) == "boolean",
    where .. ": batch_reads must be true or false (it does nothing now: every request has its own connection)")
  route.name = route.name or gsub(route.method:lower() .. route.path, "%W", "_")
  route.status = route.status or 200

  local pattern, names = compile_path(route.path)
  assert(not names or #names <= 4, where .. ": at most 4 path parameters")   -- see find_entry
  -- every {name} of the path is a parameter; undeclared ones are strings
  local declared = {}
  for _, f in ipairs(route.path_params or {}) do declared[f[1]] = f end
  local params = {}
  for i, name in ipairs(names or {}) do
    local f = {}   -- a copy: the declaration's field table may serve a query too
    for k, v in pairs(declared[name] or { name, "string" }) do f[k] = v end
    f.required = true
    params[i] = f
    declared[name] = nil
  end
  assert(next(declared) == nil, where .. ": path parameter " .. tostring(next(declared)) ..
    " is not in the path")
  route.path_params = schema.params(params, where)
  if route.query then route.query = schema.params(route.query, where) end
  register_model(self, route.body)
  local response = route.response
  register_model(self, response and (response.name and response or response[1]))
  for _, model in pairs(route.responses or {}) do register_model(self, model) end

  local entry
  if pattern then
    for _, e in ipairs(self.dynamic) do
      if e.pattern == pattern then entry = e end
    end
    if not entry then
      entry = { pattern = pattern, names = names, methods = {} }
      self.dynamic[#self.dynamic + 1] = entry
    end
  else
    entry = self.static[route.path]
    if not entry then
      entry = { methods = {} }
      self.static[route.path] = entry
    end
  end
  assert(entry.methods[route.method] == nil, where .. ": declared twice")
  entry.methods[route.method] = route
  local allow = {}
  for m in pairs(entry.methods) do allow[#allow + 1] = m end
  table.sort(allow)
  entry.allow_headers = { ["content-type"] = JSON_TYPE, allow = concat(allow, ", ") }
  self.routes[#self.routes + 1] = route
  return route
end

-- ---- dispatching ----------------------------------------------------------

-- The entry for a path and the raw path parameter values (or nil).
local function find_entry(self, path)
  local entry = self.static[path]
  if entry then return entry, nil end
  local dynamic = self.dynamic
  for i = 1, #dynamic do
    local e = dynamic[i]
    local c1, c2, c3, c4 = match(path, e.pattern)
    if c1 then
      local names = e.names
      local raw = { [names[1]] = c1 }
      if c2 then raw[names[2]] = c2 end
      if c3 then raw[names[3]] = c3 end
      if c4 then raw[names[4]] = c4 end
      return e, raw
    end
  end
  return nil
end

-- Errors raised by the database binding that mean "cannot reach the
-- database": connection exceptions (08), operator intervention (57P0x),
-- too many connections (53300), and a reconnect finding the database gone
-- (3D000: it was dropped, or is being re-created).
local function is_unavailable(err)
  if type(err) ~= "table" then return false end
  local state = err.sqlstate
  if type(state) ~= "string" then return false end
  return sub(state, 1, 2) == "08" or sub(state, 1, 4) == "57P0" or state == "53300"
    or state == "3D000"
end
router.is_unavailable = is_unavailable

local function log(fmt, ...)
  io.stderr:write(format(fmt, ...), "\n")
end
router.log = log

-- Text from outside (a method, a path, an error that may quote the request)
-- for one entry of the server log: passwords masked, every line escaped
-- (util.text_safe: control characters, bidi controls, invalid UTF-8 as
-- \xNN, a traceback's tabs as spaces), further lines indented with "  | "
-- so that none can pass for an entry of its own.
local function shown(text)
  local lines = {}
  for line in gmatch(mask_text(tostring(text)) .. "\n", "(.-)\n") do
    lines[#lines + 1] = text_safe((gsub(line, "\t", "  ")))
  end
  return concat(lines, "\n  | ")
end
router.shown = shown

-- xpcall message handler: keeps error tables (database errors) intact and
-- adds a traceback to string errors, for the server log only.
local function traceback(err)
  if type(err) == "string" then return debug.traceback(err, 2) end
  return err
end

local function validation_error(errors)
  return 422, JSON_HEADERS, json.encode(json.object({ detail = errors }, { "detail" }))
end

local function dispatch(self, db, req)
  local path = req.path
  local entry, raw = find_entry(self, path)
  if not entry then
    -- Starlette's redirect_slashes: /todos/ -> 307 to /todos
    if #path > 1 and byte(path, -1) == 47 then
      local bare = sub(path, 1, -2)
      if find_entry(self, bare) then
        local q = req.query
        return 307, { location = (q and q ~= "") and (bare .. "?" .. q) or bare }, ""
      end
    end
    return 404, JSON_HEADERS, NOT_FOUND
  end
  local route = entry.methods[req.method]
  if not route then return 405, entry.allow_headers, METHOD_NOT_ALLOWED end
  req.route = route   -- for whoever measures the request (metrics.lua)

  -- validation, in FastAPI's order: path, query, body; all errors at once
  local errors
  if raw then
    req.params, errors = schema.validate_params(route.path_params, raw, "path", errors)
  end
  if route.query then
    req.args, errors = schema.validate_params(route.query, parse_query(req.query), "query", errors)
  end
  if route.body then
    local headers = req.headers
    req.data, errors = schema.parse_body(route.body, req.body, headers and headers["content-type"], errors)
  end
  if errors then return validation_error(errors) end

  local status, headers, body = route.handler(req, db)
  if type(body) == "table" then
    body = json.encode(body)
    headers = headers or JSON_HEADERS
  elseif body == nil then
    body = ""
    headers = headers or NO_HEADERS
  else
    headers = headers or JSON_HEADERS
  end
  return status, headers, body
end

-- The function the server calls for each request. The router and the
-- connection are shared by every request of this worker; nothing here is
-- created per request except what a request itself needs.
function router:handler(db)
  return function(req)
    local ok, status, headers, body = xpcall(dispatch, traceback, self, db, req)
    if ok then return status, headers, body end
    local err = status
    if is_unavailable(err) then
      log("todohost: 503 %s %s: database unavailable: %s", shown(req.method), shown(req.path), shown(err))
      return 503, JSON_HEADERS, UNAVAILABLE
    end
    log("todohost: 500 %s %s: %s", shown(req.method), shown(req.path), shown(err))
    return 500, JSON_HEADERS, INTERNAL_ERROR
  end
end

return router
