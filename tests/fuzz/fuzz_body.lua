-- tests/fuzz/fuzz_body.lua: properties of request body validation, run by
-- fuzz_body.c for each input (see fuzz_lua.h).
--
-- The input is a request body. For the Todo create and update models:
-- parse_body never raises; an error list is FastAPI-shaped (loc starts with
-- "body"); an accepted title is stripped, 1..200 characters, valid UTF-8;
-- a number accepted for a string field keeps its value exactly; a body
-- with a raw control character (or NUL, where cjson stops) is refused; the same
-- body always gives the same result; the work is linear in the body's size.
-- strip, on the raw input: idempotent, a substring of the input, linear.
-- The input as a Content-Type header: never raises, linear.

local counters, home = ...
local support = dofile(home .. "/tests/fuzz/fuzz_lua.lua")(counters)
local schema = require "web.schema"
local json = require "web.json"

local work, linear, canon = support.work, support.linear, support.canon
local null = json.null

-- The body models, as the routes of todos.lua declare them.
local MODELS = {}
for _, route in ipairs(require "todos") do
  if route.body then MODELS[#MODELS + 1] = route.body end
end
assert(#MODELS == 2, "todos.lua should declare two body models")

-- Bounds of the work per input byte (instructions and bytes allocated),
-- far above what a linear pass needs and far below a quadratic one on
-- inputs of a few kilobytes.
local STRIP_PER_BYTE, PARSE_PER_BYTE, FIXED = 40, 200, 20000

local function check_errors(errors)
  if getmetatable(errors) ~= json.array_mt or #errors == 0 then return "errors: not a non-empty array" end
  for _, e in ipairs(errors) do
    if type(e.loc) ~= "table" or e.loc[1] ~= "body" then return "an error whose loc is not body: " .. canon(e) end
    if type(e.msg) ~= "string" or e.msg == "" or type(e.type) ~= "string" then
      return "an error without msg or type: " .. canon(e)
    end
  end
  -- the 422 body encodes
  local ok, err = pcall(json.encode, json.object({ detail = errors }, { "detail" }))
  if not ok then return "the errors do not encode: " .. tostring(err) end
end

local function check_string(name, s, stripped, max)
  if type(s) ~= "string" then return name .. " is a " .. type(s) end
  local len = utf8.len(s)
  if not len then return name .. " accepted with bad UTF-8" end
  if s:find("\0", 1, true) then return name .. " accepted with a NUL" end
  if stripped then
    if schema.strip(s) ~= s then return name .. " accepted unstripped" end
    if len < 1 or len > max then return name .. " accepted with " .. len .. " characters" end
  end
end

-- A number sent for a string field is kept as the same number, and only
-- when cjson's strtod decoded it exactly: from 2^53 on, an integer may
-- already be another one (9007199254740993 arrives as ...992).
local function check_number(name, sent, kept)
  if type(sent) ~= "number" or kept == nil then return end
  if tonumber(kept) ~= sent then return ("%s: the number %.17g was kept as %q"):format(name, sent, kept) end
  if math.abs(sent) >= 2^53 then return ("%s: %.17g kept, but it may not be the number sent"):format(name, sent) end
end

local function check_model(model, body)
  local ins, bytes, ok, out, errors = work(schema.parse_body, model, body, "application/json")
  if not ok then return "parse_body raised: " .. tostring(out) end
  local problem = linear("parse_body " .. model.name, #body, ins, bytes, PARSE_PER_BYTE, FIXED)
  if problem then return problem end
  local again_out, again_errors = schema.parse_body(model, body, "application/json")
  if canon { out, errors } ~= canon { again_out, again_errors } then
    return "parse_body gave two different results for one body"
  end
  if errors then return check_errors(errors) end
  if type(out) ~= "table" then return "accepted, but no object" end
  if body:find("[\0-\8\11\12\14-\31]") then return "accepted a body with a raw control character" end
  local create = model.name == "TodoCreate"
  local sent = json.decode(body)
  if out.title ~= nil or create then
    problem = check_string("title", out.title, true, 200)
      or check_number("title", sent.title, out.title)
      or (type(sent.title) == "string" and out.title ~= schema.strip(sent.title)
        and "title: not the stripped text sent")
    if problem then return problem end
  end
  if out.description ~= nil and out.description ~= null then
    problem = check_string("description", out.description, false)
      or check_number("description", sent.description, out.description)
    if problem then return problem end
  end
  local done = out.is_completed
  if not (type(done) == "boolean" or (done == nil and not create)) then
    return "is_completed accepted as " .. canon(done)
  end
end

local function check_strip(s)
  local ins, bytes, ok, t = work(schema.strip, s)
  if not ok then return "strip raised: " .. tostring(t) end
  local problem = linear("strip", #s, ins, bytes, STRIP_PER_BYTE, 1000)
  if problem then return problem end
  if schema.strip(t) ~= t then return "strip is not idempotent" end
  if not s:find(t, 1, true) then return "strip gave text that is not in its input" end
  if s ~= t and #t == #s then return "strip changed the text but not its length" end
end

local PLAIN_BODY = '{"title":"x"}'
local function check_content_type(ct)
  local ins, bytes, ok, err = work(schema.parse_body, MODELS[1], PLAIN_BODY, ct)
  if not ok then return "parse_body raised on a content type: " .. tostring(err) end
  return linear("content type", #ct, ins, bytes, PARSE_PER_BYTE, FIXED)
end

return function(input)
  for _, model in ipairs(MODELS) do
    local problem = check_model(model, input)
    if problem then return problem end
  end
  return check_strip(input) or check_content_type(input)
end
