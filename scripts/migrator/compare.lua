-- migrator/compare.lua: the differences between the declared schema and a
-- database, both as models (migrator/schema.lua, migrator/reflect.lua).
--
-- compare.diff(declared, reflected) returns a list, in a stable order
-- (tables as declared, then the database's others; in a table: columns,
-- primary key, indexes, unique, check and foreign key constraints), of
--   { kind = "add_table" | "drop_table" | "add_column" | "drop_column"
--       | "type" | "nullable" | "default" | "enum" | "primary_key"
--       | "add_index" | "drop_index" | "add_unique" | "drop_unique"
--       | "add_check" | "drop_check" | "add_fk" | "drop_fk",
--     table = name, column = name?, schema = declared side, db = database side,
--     text = one line: "todos.is_completed: server default false in the
--       schema, true in the database" }
-- where "add_*" means present in the schema only and "drop_*" in the
-- database only (what an upgrade would do).

local normal = require "migrator.normal"

local compare = {}

local function list_text(names)
  return table.concat(names, ", ")
end

-- Same names in the same order.
local function same_list(a, b)
  return #a == #b and table.concat(a, "\0") == table.concat(b, "\0")
end

local function default_text(v)
  return v == nil and "none" or v
end

local function fk_text(fk)
  local s = "(" .. list_text(fk.columns) .. ") -> " .. fk.ref_table .. " (" .. list_text(fk.ref_columns) .. ")"
  if fk.ondelete then s = s .. " ON DELETE " .. fk.ondelete end
  if fk.onupdate then s = s .. " ON UPDATE " .. fk.onupdate end
  return s
end

local function fk_key(fk)
  return list_text(fk.columns) .. ">" .. fk.ref_table .. "(" .. list_text(fk.ref_columns) .. ")"
end

local function index_text(ix)
  return (ix.unique and "unique index " or "index ") .. ix.name .. " (" .. list_text(ix.columns) .. ")"
end

local function compare_columns(out, name, s, d)
  local function add(kind, text, extra)
    local item = { kind = kind, table = name, column = s.name, schema = s, db = d, text = name .. "." .. s.name .. ": " .. text }
    for k, v in pairs(extra or {}) do item[k] = v end
    out[#out + 1] = item
  end
  local both_enums = s.enum and d.enum
  if both_enums and not same_list(s.enum.values, d.enum.values) then
    add("enum", ("enum values %s in the schema, %s in the database"):format(list_text(s.enum.values), list_text(d.enum.values)))
  end
  -- an enum's VARCHAR length on SQLite follows its values: reported above
  if s.type ~= d.type and not (both_enums and s.enum.name == d.enum.name or both_enums and not s.type:match("^enum ")) then
    add("type", ("type %s in the schema, %s in the database"):format(s.type, d.type))
  elseif s.enum and not d.enum then
    add("type", ("type enum %s in the schema, %s without its CHECK in the database"):format(s.enum.name, d.type))
  end
  if s.nullable ~= d.nullable then
    add("nullable", ("%s in the schema, %s in the database"):format(
      s.nullable and "NULL allowed" or "NOT NULL", d.nullable and "NULL allowed" or "NOT NULL"))
  end
  if s.default ~= d.default then
    add("default", ("server default %s in the schema, %s in the database"):format(default_text(s.default), default_text(d.default)))
  end
end

-- Pairs items of two lists by key(item); calls missing(item) for items of
-- a only, extra(item) for items of b only, both(x, y) for pairs.
local function pair(a, b, key, missing, extra, both)
  local by = {}
  for _, y in ipairs(b) do by[key(y)] = y end
  local used = {}
  for _, x in ipairs(a) do
    local y = by[key(x)]
    if y and not used[y] then used[y] = true; if both then both(x, y) end else missing(x) end
  end
  for _, y in ipairs(b) do if not used[y] then extra(y) end end
end

local function values(map)
  local list = {}
  for _, v in pairs(map) do list[#list + 1] = v end
  table.sort(list, function(x, y) return x.name < y.name end)
  return list
end

local function compare_tables(out, s, d)
  local name = s.name
  local function add(kind, text, sv, dv)
    out[#out + 1] = { kind = kind, table = name, schema = sv, db = dv, text = name .. ": " .. text }
  end
  for _, c in ipairs(s.columns) do
    local dc = d.column[c.name]
    if dc then
      compare_columns(out, name, c, dc)
    else
      out[#out + 1] = { kind = "add_column", table = name, column = c.name, schema = c,
        text = name .. "." .. c.name .. ": column in the schema, not in the database" }
    end
  end
  for _, c in ipairs(d.columns) do
    if not s.column[c.name] then
      out[#out + 1] = { kind = "drop_column", table = name, column = c.name, db = c,
        text = name .. "." .. c.name .. ": column in the database, not in the schema" }
    end
  end
  if not same_list(s.pk, d.pk) then
    add("primary_key", ("primary key (%s) in the schema, (%s) in the database"):format(list_text(s.pk), list_text(d.pk)), s.pk, d.pk)
  end
  pair(values(s.indexes), values(d.indexes), function(ix) return ix.name end,
    function(ix) add("add_index", index_text(ix) .. " in the schema, not in the database", ix) end,
    function(ix) add("drop_index", index_text(ix) .. " in the database, not in the schema", nil, ix) end,
    function(x, y)
      if x.unique ~= y.unique or not same_list(x.columns, y.columns) then
        add("drop_index", index_text(y) .. " in the database, " .. index_text(x) .. " in the schema", nil, y)
        out[#out].replaced_by = x
      end
    end)
  local function unique_key(u)
    local names = { table.unpack(u.columns) }
    table.sort(names)
    return list_text(names)
  end
  pair(s.uniques, d.uniques, unique_key,
    function(u) add("add_unique", "unique constraint (" .. list_text(u.columns) .. ") in the schema, not in the database", u) end,
    function(u) add("drop_unique", "unique constraint (" .. list_text(u.columns) .. ") in the database, not in the schema", nil, u) end)
  -- checks pair by name when the schema names them, else by expression
  local schema_names = {}
  for _, c in ipairs(s.checks) do if c.name then schema_names[c.name] = true end end
  local function check_key(c)
    return c.name and schema_names[c.name] and ("name:" .. c.name) or ("sql:" .. normal.check(c.sql))
  end
  pair(s.checks, d.checks, check_key,
    function(c) add("add_check", "check constraint " .. (c.name and (c.name .. " ") or "") .. "(" .. c.sql .. ") in the schema, not in the database", c) end,
    function(c) add("drop_check", "check constraint " .. (c.name and (c.name .. " ") or "") .. "(" .. c.sql .. ") in the database, not in the schema", nil, c) end)
  pair(s.fks, d.fks, fk_key,
    function(fk) add("add_fk", "foreign key " .. fk_text(fk) .. " in the schema, not in the database", fk) end,
    function(fk) add("drop_fk", "foreign key " .. fk_text(fk) .. " in the database, not in the schema", nil, fk) end,
    function(x, y)
      if x.ondelete ~= y.ondelete or x.onupdate ~= y.onupdate then
        add("drop_fk", "foreign key " .. fk_text(x) .. " in the schema, " .. fk_text(y) .. " in the database", nil, y)
        out[#out].replaced_by = x
      end
    end)
end

-- The differences (see the top of this file); {} when they match.
function compare.diff(declared, reflected)
  local out = {}
  for _, name in ipairs(declared.order) do
    local s, d = declared.tables[name], reflected.tables[name]
    if d then
      compare_tables(out, s, d)
    else
      out[#out + 1] = { kind = "add_table", table = name, schema = s, text = name .. ": table in the schema, not in the database" }
    end
  end
  for _, name in ipairs(reflected.order) do
    if not declared.tables[name] then
      out[#out + 1] = { kind = "drop_table", table = name, db = reflected.tables[name],
        text = name .. ": table in the database, not in the schema" }
    end
  end
  return out
end

return compare
