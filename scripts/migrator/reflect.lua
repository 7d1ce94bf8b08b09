-- migrator/reflect.lua: a live database read into the model of
-- migrator/schema.lua (tables, columns with canonical types, defaults and
-- nullability, primary keys, indexes, unique and check constraints, foreign
-- keys, enum values), so that it compares with the declared schema.
--
-- SQLite: sqlite_master, PRAGMA table_info, index_list, index_info and
-- foreign_key_list; CHECK constraints from the CREATE TABLE text; a CHECK of
-- the form `col IN ('a', ...)` is the column's enum (SQLAlchemy's Enum).
-- PostgreSQL: one pg_catalog query over the current schema, whatever the
-- number of tables. alembic_version and todohost's checksum table are
-- not part of the app's schema and are left out.
--
-- conn: a todohost.db connection (anything with :query and .kind).

local normal = require "migrator.normal"
local version = require "migrator.version"

local reflect = {}

local IGNORED = { [version.TABLE] = true, [version.CHECKSUMS] = true }

local function truthy(v)
  return v == true or v == 1 or v == "t" or v == "1"
end

local function new_table(name)
  return { name = name, columns = {}, column = {}, pk = {}, indexes = {}, uniques = {}, checks = {}, fks = {} }
end

local function add_column(t, c)
  t.columns[#t.columns + 1] = c
  t.column[c.name] = c
end

-- ---- SQLite ------------------------------------------------------------------------

local function sqlite_table(conn, name, sql)
  local sqlite_batch = require "migrator.sqlite_batch"   -- its CREATE TABLE parser; SQLite only
  local t = new_table(name)
  local q = '"' .. name:gsub('"', '""') .. '"'
  local pk = {}
  for _, r in ipairs(conn:query("PRAGMA table_info(" .. q .. ")")) do
    local type_name = normal.sql_type(r.type)
    local c = {
      name = r.name,
      type = type_name,
      nullable = not truthy(r.notnull) and (r.pk or 0) == 0,
      default_sql = r.dflt_value,
    }
    c.default = normal.default(r.dflt_value, type_name, "sqlite")
    add_column(t, c)
    if (r.pk or 0) > 0 then pk[#pk + 1] = { r.pk, r.name } end
  end
  table.sort(pk, function(a, b) return a[1] < b[1] end)
  for i, p in ipairs(pk) do t.pk[i] = p[2] end

  for _, ix in ipairs(conn:query("PRAGMA index_list(" .. q .. ")")) do
    if ix.origin ~= "pk" then
      local cols = {}
      for _, info in ipairs(conn:query("PRAGMA index_info(\"" .. ix.name:gsub('"', '""') .. "\")")) do
        cols[#cols + 1] = info.name or "<expression>"
      end
      if ix.origin == "u" then
        t.uniques[#t.uniques + 1] = { columns = cols }
      else
        t.indexes[ix.name] = { name = ix.name, columns = cols, unique = truthy(ix.unique) }
      end
    end
  end

  local fks = {}
  for _, r in ipairs(conn:query("PRAGMA foreign_key_list(" .. q .. ")")) do
    local fk = fks[r.id]
    if not fk then
      fk = { columns = {}, ref_table = r.table, ref_columns = {},
        ondelete = normal.action(r.on_delete), onupdate = normal.action(r.on_update) }
      fks[r.id] = fk
      t.fks[#t.fks + 1] = fk
    end
    fk.columns[r.seq + 1] = r.from
    fk.ref_columns[r.seq + 1] = r.to
  end

  local parsed = sqlite_batch.parse_create_table(sql)
  local checks = {}
  for _, con in ipairs(parsed.constraints) do
    if con.kind == "CHECK" then checks[#checks + 1] = con.text end
  end
  for _, c in ipairs(t.columns) do
    for _, extra in ipairs((parsed.columns[c.name] or { extras = {} }).extras) do
      if extra:upper():match("^CONSTRAINT") or extra:upper():match("^CHECK") then checks[#checks + 1] = extra end
    end
  end
  for _, text in ipairs(checks) do
    local parts = sqlite_batch.constraint_parts(text)
    local check_name, expr = parts.name, parts.expr
    if parts.kind == "CHECK" and expr then
      local col, values = sqlite_batch.enum_of(expr)
      if col and t.column[col] then
        t.column[col].enum = { name = check_name, values = values }
      else
        t.checks[#t.checks + 1] = { name = check_name, sql = expr }
      end
    end
  end
  return t
end

local function reflect_sqlite(conn)
  local model = { dialect = "sqlite", tables = {}, order = {} }
  for _, r in ipairs(conn:query("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
      .. "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")) do
    if not IGNORED[r.name] then
      model.tables[r.name] = sqlite_table(conn, r.name, r.sql)
      model.order[#model.order + 1] = r.name
    end
  end
  return model
end

-- ---- PostgreSQL ----------------------------------------------------------------------

-- One query, one row per table of the current schema: its columns,
-- constraints and indexes as JSON arrays (decoded with lua-cjson), each
-- read through the catalog's indexes on the table's oid. On the fresh
-- backend of a `migrate.lua check` (under 30 ms), each catalog query costs
-- a round trip and a plan made with cold caches: five of them took about
-- 4.5 ms, this one about 3.

-- The names of the columns numbered keys (an int2 array) of relation rel,
-- in key order, as a JSON array.
local function pg_cols(keys, rel)
  return "(SELECT json_agg(a.attname ORDER BY k.o) FROM unnest(" .. keys .. ") WITH ORDINALITY AS k(n, o) "
    .. "JOIN pg_catalog.pg_attribute a ON a.attrelid = " .. rel .. " AND a.attnum = k.n)"
end

-- An enum column's values are those of the type of its name in the
-- current schema.
local PG_MODEL = [[
WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema())
SELECT c.relname AS name,
  json_strip_nulls((SELECT json_agg(json_build_object(
      'name', a.attname, 'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
      'notnull', a.attnotnull, 'identity', a.attidentity,
      'default', pg_catalog.pg_get_expr(d.adbin, d.adrelid),
      'typtype', t.typtype, 'typname', t.typname,
      'labels', CASE WHEN t.typtype = 'e' THEN
        (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
           FROM pg_catalog.pg_enum e JOIN pg_catalog.pg_type et ON et.oid = e.enumtypid
          WHERE et.typname = t.typname AND et.typnamespace = (SELECT oid FROM ns)) END)
      ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a
     JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))::text AS columns,
  json_strip_nulls((SELECT json_agg(json_build_object(
      'name', con.conname, 'kind', con.contype, 'def', pg_catalog.pg_get_constraintdef(con.oid),
      'columns', ]] .. pg_cols("con.conkey", "con.conrelid") .. [[,
      'ref_table', r.relname, 'ref_columns', ]] .. pg_cols("con.confkey", "con.confrelid") .. [[,
      'ondelete', con.confdeltype, 'onupdate', con.confupdtype) ORDER BY con.conname)
     FROM pg_catalog.pg_constraint con
     LEFT JOIN pg_catalog.pg_class r ON r.oid = con.confrelid
    WHERE con.conrelid = c.oid AND con.contype IN ('p', 'u', 'c', 'f')))::text AS constraints,
  json_strip_nulls((SELECT json_agg(json_build_object(
      'name', i.relname, 'unique', x.indisunique, 'columns', ]] .. pg_cols("x.indkey::int2[]", "x.indrelid") .. [[,
      'special', x.indexprs IS NOT NULL OR x.indpred IS NOT NULL))
     FROM pg_catalog.pg_index x
     JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    WHERE x.indrelid = c.oid AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
      WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x'))))::text AS indexes
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p')
 ORDER BY c.relname]]

local PG_ACTIONS = { a = nil, r = "RESTRICT", c = "CASCADE", n = "SET NULL", d = "SET DEFAULT" }

-- A JSON array column of PG_MODEL as a Lua list ({} for SQL NULL: no rows).
local json
local function json_list(text)
  if text == nil then return {} end
  json = json or require("cjson").new()   -- a private instance: no settings shared
  return json.decode(text)
end

local function pg_column(r)
  local c = { name = r.name, nullable = not r.notnull }
  if r.typtype == "e" then
    c.type = "enum " .. r.typname
    c.enum = { name = r.typname, values = r.labels or {} }
  else
    c.type = normal.sql_type(r.type)
  end
  local default = r.default
  if (default and default:match("^nextval%(")) or (r.identity and r.identity ~= "") then
    c.autoincrement = true
    default = nil
  end
  c.default_sql = default
  c.default = normal.default(default, c.type, "postgresql")
  return c
end

local function pg_constraint(t, r)
  if r.kind == "p" then
    t.pk = r.columns or {}
  elseif r.kind == "u" then
    t.uniques[#t.uniques + 1] = { name = r.name, columns = r.columns or {} }
  elseif r.kind == "c" then
    t.checks[#t.checks + 1] = { name = r.name, sql = (r.def:match("^CHECK%s*%((.*)%)") or r.def) }
  elseif r.kind == "f" then
    t.fks[#t.fks + 1] = { name = r.name, columns = r.columns or {}, ref_table = r.ref_table,
      ref_columns = r.ref_columns or {}, ondelete = PG_ACTIONS[r.ondelete], onupdate = PG_ACTIONS[r.onupdate] }
  end
end

local function reflect_pg(conn)
  local model = { dialect = "postgresql", tables = {}, order = {} }
  for _, row in ipairs(conn:query(PG_MODEL)) do
    if not IGNORED[row.name] then
      local t = new_table(row.name)
      model.tables[row.name] = t
      model.order[#model.order + 1] = row.name
      for _, r in ipairs(json_list(row.columns)) do add_column(t, pg_column(r)) end
      for _, r in ipairs(json_list(row.constraints)) do pg_constraint(t, r) end
      for _, r in ipairs(json_list(row.indexes)) do
        local cols = r.columns or {}
        if r.special then cols = { "<expression>" } end
        t.indexes[r.name] = { name = r.name, columns = cols, unique = r.unique }
      end
    end
  end
  return model
end

-- The database's schema as a model (see migrator/schema.lua).
function reflect.database(conn)
  if conn.kind == "postgresql" then return reflect_pg(conn) end
  return reflect_sqlite(conn)
end

return reflect
