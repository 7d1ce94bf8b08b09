-- web/schema.lua: declared shapes of parameters and bodies, and their
-- validation with the errors FastAPI (pydantic v1) gives.
--
-- A field is a table: { NAME, TYPE, required = bool, nullable = bool,
--   default = value, strip = bool, min_length = n, max_length = n,
--   ge = n, le = n, description = text, title = text }
-- with TYPE one of "string", "integer", "boolean". A model is a named list
-- of fields (schema.model); routes declare path/query parameters as fields
-- and bodies as models, and web/openapi.lua describes the same tables.
--
-- Values are coerced the way pydantic v1 does for the FastAPI app this API
-- replaces, so its clients see no difference: "true"/"yes"/"1"/1 are
-- booleans, a number sent for a string field becomes its text, a string
-- field is stripped of surrounding white space before its length is checked.
--
-- An error is { loc = {"body"|"query"|"path", name...}, msg =, type =,
-- ctx = {limit_value = n}? }, encoded with keys in that order.

local json = require "web.json"

local schema = {}

local type, tonumber, tostring, format, find, match, gsub, byte, sub, lower, mtype, tointeger, floor, utf8len =
  type, tonumber, tostring, string.format, string.find, string.match, string.gsub, string.byte, string.sub,
  string.lower, math.type, math.tointeger, math.floor, utf8.len
local null = json.null

local ERROR_KEYS = { "loc", "msg", "type", "ctx" }
local CTX_KEYS = { "limit_value" }

-- Appends one error to errors (an array, created on first use) and returns it.
local function add_error(errors, loc, msg, etype, limit)
  errors = errors or json.array {}
  local err = { loc = loc, msg = msg, type = etype }
  if limit ~= nil then err.ctx = json.object({ limit_value = limit }, CTX_KEYS) end
  errors[#errors + 1] = json.object(err, ERROR_KEYS)
  return errors
end
schema.add_error = add_error

-- ---- white space and text --------------------------------------------

-- Python's str.strip() removes what str.isspace() calls white space, not
-- only ASCII: \t\n\v\f\r, the separators \x1c-\x1f and the space, and the
-- multi-byte spaces: U+0085 and U+00A0 (2 bytes in UTF-8), U+1680,
-- U+2000..U+200A, U+2028, U+2029, U+202F, U+205F and U+3000 (3 bytes).
local ASCII_SPACE = {}
for b = 9, 13 do ASCII_SPACE[b] = true end
for b = 28, 32 do ASCII_SPACE[b] = true end
local NON_SPACE, LAST_NON_SPACE = "[^\t-\r\28- ]", "^.*[^\t-\r\28- ]()"
local SPACE2 = "\xC2[\x85\xA0]"
-- Every 3-byte space matches SPACE3_LIKE; SPACE3 maps those that are spaces
-- to three ASCII spaces (gsub keeps a match the table does not know).
local SPACE3_LIKE, SPACE3 = "[\xE1-\xE3][\x80\x81\x9A][\x80-\xAF]", {}
for _, cp in ipairs { 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 } do SPACE3[utf8.char(cp)] = "   " end
for cp = 0x2000, 0x200A do SPACE3[utf8.char(cp)] = "   " end

-- s without its leading and trailing white space. Multi-byte spaces are
-- first replaced by as many ASCII spaces (two gsub, positions unchanged),
-- then one search from each end finds the text to keep: a few passes over
-- s in C whatever s holds, so the time is linear in #s (a title of a
-- million U+00A0 must not hold a worker). Returns s itself when nothing is
-- removed; a string that starts and ends with ASCII text costs two byte
-- reads.
local function strip(s)
  local first, last = byte(s, 1), byte(s, -1)
  if not first then return s end
  if first < 0x80 and last < 0x80 and not ASCII_SPACE[first] and not ASCII_SPACE[last] then return s end
  local ascii = s
  if find(ascii, "\xC2", 1, true) then ascii = gsub(ascii, SPACE2, "  ") end
  if find(ascii, "[\xE1-\xE3]") then ascii = gsub(ascii, SPACE3_LIKE, SPACE3) end
  local i = find(ascii, NON_SPACE)
  if not i then return "" end
  local j = match(ascii, LAST_NON_SPACE) - 1
  if i == 1 and j == #s then return s end
  return sub(s, i, j)
end
schema.strip = strip

-- ---- coercion of one value --------------------------------------------

local NOT_STR = "str type expected"
local INEXACT = "number too large to keep exactly (2^53 or more): send it as a JSON string"

-- The text pydantic v1 makes of a number given for a string field, or nil
-- and the reason. cjson decodes every JSON number with strtod, so from 2^53
-- on an integer may already be another one (9007199254740993 arrives as
-- ...992): those are refused, never stored as a different number.
local function number_text(n)
  if mtype(n) == "integer" then return format("%d", n) end
  if n ~= n then return nil, NOT_STR end
  if n >= 2^53 or n <= -2^53 then return nil, INEXACT end   -- also +-inf (1e400)
  if n == floor(n) then return format("%d", tointeger(n)) end
  for _, fmt in ipairs { "%.15g", "%.16g", "%.17g" } do
    local s = format(fmt, n)
    if tonumber(s) == n then return s end
  end
end

local BOOL_TEXT = {
  ["0"] = false, off = false, f = false, ["false"] = false, n = false, no = false,
  ["1"] = true, on = true, t = true, ["true"] = true, y = true, yes = true,
}

-- Each coercer returns the value, or nil, message, error type.
local coerce = {}

function coerce.boolean(v)
  local tv = type(v)
  if tv == "boolean" then return v end
  if tv == "string" then
    local b = BOOL_TEXT[lower(v)]
    if b ~= nil then return b end
  elseif tv == "number" then
    if v == 0 then return false elseif v == 1 then return true end
  end
  return nil, "value could not be parsed to a boolean", "type_error.bool"
end

local NOT_INT = "value is not a valid integer"

local function int_from_text(s)
  local digits = match(s, "^%s*([+-]?%d+)%s*$")
  local n = digits and tonumber(digits)
  -- tonumber gives a float when the digits do not fit 64 bits: refuse those.
  if mtype(n) == "integer" then return n end
  return nil, NOT_INT, "type_error.integer"
end

function coerce.integer(v)
  local tv = type(v)
  if tv == "number" then
    if mtype(v) == "integer" then return v end
    if v ~= v then return nil, NOT_INT, "type_error.integer" end
    -- a JSON number is a float from cjson, exact only below 2^53
    if v >= 2^53 or v <= -2^53 then return nil, INEXACT, "type_error.integer" end
    -- pydantic v1 does int(v): truncation toward zero
    return tointeger(v >= 0 and floor(v) or -floor(-v))
  elseif tv == "string" then
    return int_from_text(v)
  elseif tv == "boolean" then
    return v and 1 or 0
  end
  return nil, NOT_INT, "type_error.integer"
end

function coerce.string(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" then
    local s, why = number_text(v)
    if s then return s end
    return nil, why, "type_error.str"
  elseif tv == "boolean" then
    return v and "True" or "False"   -- pydantic v1: bool is an int, str(True)
  end
  return nil, NOT_STR, "type_error.str"
end

-- Checks the constraints of field on an already coerced value; returns the
-- (possibly stripped) value or nil, msg, type, limit.
local function constrain(field, v)
  if field[2] == "string" then
    if field.strip then v = strip(v) end
    local len = utf8len(v)
    if not len then return nil, "string is not valid UTF-8", "value_error.str.utf8" end
    if find(v, "\0", 1, true) then
      return nil, "string contains a NUL character", "value_error.str.nul"
    end
    if field.min_length and len < field.min_length then
      return nil, format("ensure this value has at least %d characters", field.min_length),
        "value_error.any_str.min_length", field.min_length
    end
    if field.max_length and len > field.max_length then
      return nil, format("ensure this value has at most %d characters", field.max_length),
        "value_error.any_str.max_length", field.max_length
    end
  elseif field[2] == "integer" then
    if field.ge and v < field.ge then
      return nil, format("ensure this value is greater than or equal to %d", field.ge),
        "value_error.number.not_ge", field.ge
    end
    if field.le and v > field.le then
      return nil, format("ensure this value is less than or equal to %d", field.le),
        "value_error.number.not_le", field.le
    end
  end
  return v
end

-- Validates one raw value (nil = absent) of field. Returns the clean value
-- (json.null for an accepted null, nil for absent-without-default) and the
-- errors array, extended when the value is bad; the error's loc is
-- {location, name}, built only when there is an error.
local function check(field, raw, location, errors)
  local v, msg, etype, limit
  if raw == nil then
    if not field.required then return field.default, errors end
    msg, etype = "field required", "value_error.missing"
  elseif raw == null then
    if field.nullable then return null, errors end
    msg, etype = "none is not an allowed value", "type_error.none.not_allowed"
  else
    v, msg, etype = coerce[field[2]](raw)
    if v ~= nil then
      v, msg, etype, limit = constrain(field, v)
      if v ~= nil then return v, errors end
    end
  end
  return nil, add_error(errors, json.array { location, field[1] }, msg, etype, limit)
end
schema.check = check

-- ---- declarations -----------------------------------------------------

local TYPES = { string = true, integer = true, boolean = true }

local function check_field(field, where)
  assert(type(field[1]) == "string", where .. ": a field needs a name first")
  assert(TYPES[field[2]], where .. ": field " .. tostring(field[1]) ..
    " has an unknown type " .. tostring(field[2]) .. " (string, integer, boolean)")
  return field
end

-- A named model (a JSON object body or response): fields in order.
function schema.model(name, fields, description)
  for _, f in ipairs(fields) do check_field(f, "model " .. name) end
  return { name = name, fields = fields, description = description }
end

-- Path or query parameters: a list of fields.
function schema.params(fields, where)
  for _, f in ipairs(fields) do check_field(f, where or "parameters") end
  return fields
end

-- ---- validating requests ----------------------------------------------

-- Validates a table of raw values (strings, or nil when absent) against a
-- list of parameter fields. Returns the clean values and the errors.
function schema.validate_params(fields, raw, location, errors)
  local out = {}
  for i = 1, #fields do
    local f = fields[i]
    local name = f[1]
    out[name], errors = check(f, raw and raw[name], location, errors)
  end
  return out, errors
end

-- Validates a decoded JSON value against a model. Returns the clean object
-- (only fields that were sent or have a default; unknown fields dropped;
-- an accepted null is json.null) and the errors.
function schema.validate_model(model, value, errors)
  if type(value) ~= "table" or value == null or value[1] ~= nil
      or getmetatable(value) == json.array_mt then
    if value == nil then
      return nil, add_error(errors, json.array { "body" }, "field required", "value_error.missing")
    end
    return nil, add_error(errors, json.array { "body" }, "value is not a valid dict", "type_error.dict")
  end
  local out = {}
  local fields = model.fields
  for i = 1, #fields do
    local f = fields[i]
    local name = f[1]
    out[name], errors = check(f, value[name], "body", errors)
  end
  return out, errors
end

-- Bytes never allowed raw in JSON text: control characters other than the
-- white space between tokens (\t \n \r), which cjson takes inside strings,
-- and NUL, where cjson stops reading ('{"title":"x"}\0{...}' was accepted).
local CONTROL_BYTE = "[\0-\8\11\12\14-\31]"

-- The body of a request as FastAPI reads it for a model parameter: no body
-- means "field required", a non-JSON content type means "not a valid dict",
-- bad JSON, bad UTF-8 or a raw control character a decode error at its
-- position.
function schema.parse_body(model, body, content_type, errors)
  if body == nil or body == "" then
    return schema.validate_model(model, nil, errors)
  end
  if content_type and content_type ~= "" then
    local ct = lower(content_type)
    local subtype = match(ct, "^%s*application/([^;%s]+)")
    if not subtype or not (subtype == "json" or find(subtype, "+json", 1, true)) then
      return nil, add_error(errors, json.array { "body" }, "value is not a valid dict", "type_error.dict")
    end
  end
  local len, bad = utf8len(body)
  if not len then
    return nil, add_error(errors, json.array { "body", bad - 1 },
      format("invalid UTF-8 in request body at byte %d", bad - 1), "value_error.jsondecode")
  end
  local control = find(body, CONTROL_BYTE)
  if control then
    return nil, add_error(errors, json.array { "body", control - 1 },
      format("invalid control character in request body at byte %d", control - 1), "value_error.jsondecode")
  end
  local value, message, pos = json.decode(body)
  if value == nil then
    return nil, add_error(errors, json.array { "body", pos }, message, "value_error.jsondecode")
  end
  -- cjson decodes [] like {}: a body that is an array is never an object.
  if find(body, "^%s*%[") then value = json.array(value) end
  return schema.validate_model(model, value, errors)
end

return schema
