-- tests/fuzz/fuzz_params.lua: properties of routing and of path and query
-- parameter validation, run by fuzz_params.c for each input (see
-- fuzz_lua.h).
--
-- The input is one byte choosing the method, then the request target
-- "PATH[?QUERY]" (the path ends at a NUL, as the server hands it to Lua).
-- It goes through the app's real router (api.lua's routes) with every
-- handler replaced by one that returns what validation let through.
-- Properties: never a 500 (a Lua error); a 422 body is FastAPI-shaped with
-- loc "path" or "query"; accepted values meet their declarations; the same
-- request always gives the same answer; parse_query's work is linear.

local counters, home = ...
local support = dofile(home .. "/tests/fuzz/fuzz_lua.lua")(counters)
local api = require "api"
local router = require "web.router"
local cjson = require("cjson").new()

local work, linear, canon = support.work, support.linear, support.canon

local METHODS = { "GET", "POST", "PATCH", "DELETE", "PUT", "HEAD" }
local STATUSES = { [200] = true, [307] = true, [404] = true, [405] = true, [422] = true }
local BODY = '{"title":"x"}'
local QUERY_PER_BYTE, FIXED = 200, 20000

-- The app's router, its handlers replaced by one echoing the request's
-- validated values.
local last   -- the request the echo handler saw
local r = api.router()
for _, route in ipairs(r.routes) do
  route.handler = function(req)
    last = req
    return 200, nil, ""
  end
end
local handle = r:handler(nil)

local function check_values(req)
  local params, args = req.params or {}, req.args or {}
  if req.path:find("^/todos/") then
    if math.type(params.todo_id) ~= "integer" then return "todo_id accepted as " .. canon(params.todo_id) end
  end
  if req.path == "/todos" and req.method == "GET" then
    if math.type(args.skip) ~= "integer" or args.skip < 0 then return "skip accepted as " .. canon(args.skip) end
    if math.type(args.limit) ~= "integer" or args.limit < 1 or args.limit > 1000 then
      return "limit accepted as " .. canon(args.limit)
    end
    if args.completed ~= nil and type(args.completed) ~= "boolean" then
      return "completed accepted as " .. canon(args.completed)
    end
  end
end

local function check_422(body)
  local ok, decoded = pcall(cjson.decode, body)
  if not ok or type(decoded) ~= "table" or type(decoded.detail) ~= "table" then
    return "a 422 body that is not FastAPI's: " .. body
  end
  for _, e in ipairs(decoded.detail) do
    local where = type(e.loc) == "table" and e.loc[1]
    if not (where == "path" or where == "query") or type(e.msg) ~= "string" or type(e.type) ~= "string" then
      return "a 422 entry that is not a path or query error: " .. body
    end
  end
end

local function answer(method, path, query)
  last = nil
  local status, headers, body = handle({ method = method, path = path, query = query,
    headers = { ["content-type"] = "application/json" }, body = BODY })
  return status, headers, body, last
end

return function(input)
  local method = METHODS[(input:byte(1) or 0) % #METHODS + 1]
  local target = input:sub(2)
  local path, query = target:match("^([^?]*)%??(.*)$")
  path = path:match("^[^%z]*")
  if path:byte(1) ~= 47 then path = "/" .. path end

  local ins, bytes, ok, args = work(router.parse_query, query)
  if not ok then return "parse_query raised: " .. tostring(args) end
  local problem = linear("parse_query", #query, ins, bytes, QUERY_PER_BYTE, FIXED)
  if problem then return problem end
  for k, v in pairs(args) do
    if type(k) ~= "string" or type(v) ~= "string" or k == "" or v == "" then
      return "parse_query gave " .. canon(args)
    end
  end

  local status, headers, body, req = answer(method, path, query)
  if not STATUSES[status] then return ("status %s for %s %q"):format(tostring(status), method, target) end
  if type(headers) ~= "table" or type(body) ~= "string" then return "a reply without headers or body" end
  if status == 422 then problem = check_422(body)
  elseif status == 200 then problem = req and check_values(req) or (not req and "200 without the handler")
  elseif status == 307 then
    local want = path:sub(1, -2) .. (query ~= "" and "?" .. query or "")
    if headers.location ~= want then problem = "307 to " .. tostring(headers.location) end
  end
  if problem then return problem end

  local status2, _, body2 = answer(method, path, query)
  if status2 ~= status or body2 ~= body then return "two different answers to one request" end
end
