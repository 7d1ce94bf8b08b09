-- web/json.lua: JSON for the HTTP layer, decoding with lua-cjson and encoding
-- with a small encoder that keeps what Debian's cjson 2.1.0 loses.
--
-- cjson 2.1.0 (Debian 12) has no empty-array marker, encodes integers with
-- 14 significant digits and objects in hash order. Responses need `[]` for
-- an empty list, exact 64-bit ids and (for people reading them) keys in the
-- declared order, so encoding is done here; cjson still escapes the strings.
--
--   json.decode(text)        -> value | nil, message, position (0-based)
--   json.encode(value)       -> text
--   json.null                -> the JSON null sentinel (cjson.null)
--   json.array(t)            -> t, marked to encode as an array (even empty)
--   json.object(t, keys)     -> t, marked to encode its keys in that order
--   json.string(s)           -> s as a JSON string literal
--   json.string_memo(s)      -> the same, remembered for strings sent often

local cjson = require "cjson"

local json = {}

-- A private cjson instance, so settings here never leak into other modules.
local decoder = cjson.new()
decoder.decode_invalid_numbers(false)   -- no NaN, Infinity or hex numbers
decoder.decode_max_depth(64)
local cjson_decode = decoder.decode
local cjson_encode = decoder.encode

json.null = decoder.null

local type, next, ipairs, find, gsub, format, concat, mtype, tostring, setmetatable, getmetatable, huge =
  type, next, ipairs, string.find, string.gsub, string.format, table.concat, math.type, tostring,
  setmetatable, getmetatable, math.huge

local array_mt = { __name = "json.array" }
json.array_mt = array_mt

function json.array(t)
  return setmetatable(t or {}, array_mt)
end

-- An object whose keys encode in the given order (keys absent from t are
-- skipped, keys of t not listed are not encoded).
function json.object(t, keys)
  return setmetatable(t, { __jsonorder = keys })
end

-- Decodes text; on failure returns nil, cjson's message and the 0-based
-- position of the problem (FastAPI reports `["body", pos]`).
function json.decode(text)
  local ok, value = pcall(cjson_decode, text)
  if ok then return value end
  local message = tostring(value)
  local pos = message:match("at character (%d+)")
  return nil, message, pos and (tonumber(pos) - 1) or 0
end

-- A JSON string literal. Plain strings (the common case) skip cjson; cjson
-- escapes '/' as '\/', which is valid JSON but not what FastAPI sends, so
-- it is undone (a '/' in cjson's output is always preceded by that escape).
local PLAIN = '^[^\0-\31"\\/\127]*$'   -- anchored: much faster than searching for a bad char
local function encode_string(s)
  if find(s, PLAIN) then return '"' .. s .. '"' end
  local out = cjson_encode(s)
  if find(s, "/", 1, true) then out = gsub(out, "\\/", "/") end
  return out
end
json.string = encode_string

-- json.string with a memo: the same titles are sent again and again, and a
-- table lookup is several times cheaper than checking a string for
-- characters to escape. Bounded: strings over MEMO_MAX_LEN bytes are not
-- kept, and the memo starts over after MEMO_ENTRIES entries (per worker).
local MEMO_MAX_LEN, MEMO_ENTRIES = 256, 4096
local memo, memo_size = {}, 0
function json.string_memo(s)
  local e = memo[s]
  if e then return e end
  e = encode_string(s)
  if #s <= MEMO_MAX_LEN then
    if memo_size >= MEMO_ENTRIES then memo, memo_size = {}, 0 end
    memo[s] = e
    memo_size = memo_size + 1
  end
  return e
end

local function encode_number(n)
  if mtype(n) == "integer" then return format("%d", n) end
  if n ~= n or n == huge or n == -huge then
    error("cannot encode a non-finite number as JSON", 3)
  end
  if n == math.floor(n) and n > -2^53 and n < 2^53 then return format("%.1f", n) end
  for _, fmt in ipairs { "%.15g", "%.16g" } do
    local s = format(fmt, n)
    if tonumber(s) == n then return s end
  end
  return format("%.17g", n)
end

local encode_value

local function encode_table(t, out, n, depth)
  if depth > 64 then error("JSON nesting too deep (cycle?)", 3) end
  local mt = getmetatable(t)
  local order = mt and mt.__jsonorder
  if mt == array_mt or (not order and t[1] ~= nil) then
    n = n + 1; out[n] = "["
    for i = 1, #t do
      if i > 1 then n = n + 1; out[n] = "," end
      n = encode_value(t[i], out, n, depth + 1)
    end
    n = n + 1; out[n] = "]"
    return n
  end
  n = n + 1; out[n] = "{"
  local first = true
  local k, v
  local i = 0
  while true do
    -- the next member: from the declared order, else from pairs()
    if order then
      i = i + 1
      k = order[i]
      if k == nil then break end
      v = t[k]
    else
      k, v = next(t, k)
      if k == nil then break end
    end
    if v ~= nil then
      if not first then n = n + 1; out[n] = "," end
      first = false
      n = n + 1; out[n] = encode_string(tostring(k))
      n = n + 1; out[n] = ":"
      n = encode_value(v, out, n, depth + 1)
    end
  end
  n = n + 1; out[n] = "}"
  return n
end

encode_value = function(v, out, n, depth)
  local tv = type(v)
  local piece
  if tv == "string" then piece = encode_string(v)
  elseif tv == "number" then piece = encode_number(v)
  elseif tv == "boolean" then piece = v and "true" or "false"
  elseif v == nil or v == json.null then piece = "null"
  elseif tv == "table" then return encode_table(v, out, n, depth)
  else error("cannot encode a " .. tv .. " as JSON", 3) end
  n = n + 1; out[n] = piece
  return n
end

function json.encode(value)
  local tv = type(value)
  if tv == "string" then return encode_string(value) end
  local out = {}
  encode_value(value, out, 0, 0)
  return concat(out)
end

return json
