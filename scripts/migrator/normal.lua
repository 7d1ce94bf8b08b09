-- migrator/normal.lua: the meaning of schema text, so that a declared schema
-- and a reflected database compare equal when they mean the same thing:
-- one name per column type ("varchar(200)", "timestamptz"), one text per
-- server default (now() for CURRENT_TIMESTAMP, false for 0 on a boolean,
-- without parentheses or PostgreSQL's ::casts), one spelling per foreign
-- key action and per CHECK expression. Pure functions, no database access.

local ddl = require "migrator.ddl"

local normal = {}

-- Type names as PostgreSQL's format_type and SQLite declarations spell
-- them, to the names used here.
local SYNONYMS = {
  ["character varying"] = "varchar", ["double precision"] = "float", ["float8"] = "float",
  ["int"] = "integer", ["int4"] = "integer", ["int8"] = "bigint", ["int2"] = "smallint",
  ["bool"] = "boolean", ["bytea"] = "blob", ["character"] = "char",
  ["timestamp with time zone"] = "timestamptz", ["timestamp without time zone"] = "timestamp",
  ["time with time zone"] = "timetz", ["time without time zone"] = "time",
  ["timestamp"] = "timestamp",
}

-- A type as written in SQL ("VARCHAR(200)", "character varying(200)",
-- "NUMERIC(10, 2)", "character varying(20)[]") to its canonical name
-- ("varchar(200)", "numeric(10,2)", "varchar(20)[]").
function normal.sql_type(text)
  local s = (text or ""):lower():gsub("%s+", " "):match("^%s*(.-)%s*$")
  local dims = 0   -- an array: its element's name, then [] per dimension
  while true do
    local element = s:match("^(.-)%s*%[%d*%]$")
    if not element then break end
    s, dims = element, dims + 1
  end
  -- "timestamp(6) with time zone": the modifier may sit in the middle
  local base, args, tail = s:match("^([^(]-)%s*(%b())%s*(.*)$")
  local rest = ""
  if base then
    rest = tail ~= "" and (" " .. tail) or ""
    args = args:gsub("%s+", "")
  else
    base, args = s, ""
  end
  local name = base .. rest
  name = SYNONYMS[name] or name
  return name .. args .. ("[]"):rep(dims)
end

-- A declared type (op.types.*) for dialect, canonical. An enum is
-- "enum <name>" on PostgreSQL and its VARCHAR on SQLite.
function normal.declared_type(t, dialect)
  if t.kind == "enum" and dialect == "postgresql" then return "enum " .. t.enum_name end
  return normal.sql_type(ddl.render_type(t, dialect))
end

-- Removes one pair of parentheses around the whole of s, if there is one.
local function strip_parens(s)
  while s:sub(1, 1) == "(" and s:sub(-1) == ")" do
    -- the first "(" must close at the very end
    local depth, closes_at = 0, nil
    local in_quote = false
    for i = 1, #s do
      local c = s:sub(i, i)
      if c == "'" then in_quote = not in_quote
      elseif not in_quote then
        if c == "(" then depth = depth + 1
        elseif c == ")" then
          depth = depth - 1
          if depth == 0 then closes_at = i; break end
        end
      end
    end
    if closes_at ~= #s then break end
    s = s:sub(2, -2):match("^%s*(.-)%s*$")
  end
  return s
end

-- Lower case outside single-quoted literals, spaces collapsed.
local function lower_outside_quotes(s)
  local out, i = {}, 1
  while i <= #s do
    local q = s:find("'", i, true)
    if not q then out[#out + 1] = s:sub(i):lower(); break end
    out[#out + 1] = s:sub(i, q - 1):lower()
    local j = q + 1
    while true do
      local k = s:find("'", j, true)
      if not k then j = #s; break end
      if s:sub(k + 1, k + 1) == "'" then j = k + 2 else j = k; break end
    end
    out[#out + 1] = s:sub(q, j)
    i = j + 1
  end
  return (table.concat(out):gsub("%s+", " "))
end

local TRUE_WORDS = { ["true"] = true, ["1"] = true, ["'1'"] = true, ["'t'"] = true, ["'true'"] = true }
local FALSE_WORDS = { ["false"] = true, ["0"] = true, ["'0'"] = true, ["'f'"] = true, ["'false'"] = true }
local NOW_WORDS = { ["current_timestamp"] = true, ["now()"] = true, ["current_timestamp()"] = true,
  ["localtimestamp"] = false, ["transaction_timestamp()"] = true, ["'now'"] = true }

-- The meaning of a server default's SQL (nil: none) for a column of
-- canonical type type_name: parentheses and ::casts of literals removed,
-- keywords in lower case, CURRENT_TIMESTAMP as now(), 0/1 as false/true on
-- a boolean, quotes removed around a number on a numeric column.
function normal.default(sql, type_name, dialect)
  if sql == nil then return nil end
  local s = strip_parens(sql:match("^%s*(.-)%s*$"))
  -- PostgreSQL's casts: 'x'::character varying, (-1)::integer, 'now'::text::timestamp
  while true do
    local base = s:match("^(.-)::[%a_][%w_ ]*$") or s:match("^(.-)::[%a_][%w_ ]*%b()$")
      or s:match("^(.-)::[%a_][%w_ ]*%b()[%w_ ]*$")
    if not base or base == "" then break end
    local quotes = select(2, base:gsub("'", ""))
    if quotes % 2 ~= 0 then break end
    s = strip_parens(base:match("^%s*(.-)%s*$"))
  end
  s = lower_outside_quotes(s)
  if NOW_WORDS[s] then return "now()" end
  if type_name == "boolean" then
    if TRUE_WORDS[s] then return "true" end
    if FALSE_WORDS[s] then return "false" end
  end
  local number = s:match("^'(%-?[%d%.]+)'$")
  if number and (type_name:match("int") or type_name:match("^numeric") or type_name == "float" or type_name == "real") then
    s = number
  end
  if s:match("^%-?%d+%.?%d*$") and (type_name == "float" or type_name:match("^numeric")) then
    s = tostring(tonumber(s))
  end
  return s
end

-- A foreign key action in one spelling; nil for NO ACTION (the default).
function normal.action(text)
  if text == nil then return nil end
  local s = text:upper():gsub("%s+", " ")
  if s == "NO ACTION" or s == "" then return nil end
  return s
end

-- A CHECK expression for comparison: lower case outside literals, no
-- spaces, no parentheses, PostgreSQL's ::casts dropped.
function normal.check(sql)
  local s = lower_outside_quotes(sql)
  s = s:gsub("^%s*check%s*", "")
  -- PostgreSQL's casts: (0)::numeric, 'a'::character varying, ...::text[]
  for _, long in ipairs({ "character varying", "double precision", "timestamp with time zone",
      "timestamp without time zone", "time with time zone", "time without time zone" }) do
    s = s:gsub("::" .. long, "")
  end
  s = s:gsub("::[%a_][%w_]*", ""):gsub("%[%]", "")
  return (s:gsub("[%s()]", ""))
end

-- Types every value of which fits the other.
local WIDER = { smallint = { integer = true, bigint = true }, integer = { bigint = true }, real = { float = true },
  varchar = { text = true } }

-- True when a value of canonical type `from` may not fit type `to`: a
-- shorter VARCHAR, a NUMERIC losing digits, any other change of type but a
-- wider integer or float, or VARCHAR to TEXT.
function normal.narrows(from, to)
  if from == to then return false end
  local a, b = from:match("^varchar%((%d+)%)$"), to:match("^varchar%((%d+)%)$")
  if a and b then return tonumber(b) < tonumber(a) end
  if from:match("^varchar") and (to == "text" or to == "varchar") then return false end
  local p1, s1 = from:match("^numeric%((%d+),(%d+)%)$")
  local p2, s2 = to:match("^numeric%((%d+),(%d+)%)$")
  if p1 and p2 then return tonumber(s2) < tonumber(s1) or tonumber(p2) - tonumber(s2) < tonumber(p1) - tonumber(s1) end
  if WIDER[from] and WIDER[from][to] then return false end
  return true
end

return normal
