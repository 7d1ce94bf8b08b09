-- migrator/schema.lua: the declared schema (what SQLAlchemy's models and
-- Alembic's target_metadata are to the original app): the declaration
-- functions a schema file uses, loading that file, and turning the
-- declaration into the model that migrator/reflect.lua also produces for a
-- live database, so that migrator/compare.lua can set one against the other.
--
-- A schema file returns schema.define { schema.table(name, ...), ... }; a
-- table takes columns (schema.column, the same as op.column), indexes
-- (schema.index) and constraints (schema.unique, schema.check,
-- schema.foreign_key, schema.primary_key), with the types of op.types.
--
-- The model, per dialect (one table entry shown):
--   { dialect = "sqlite"|"postgresql", order = {table names},
--     tables = { [name] = { name, columns = {col...}, column = {[name] = col},
--       pk = {names}, indexes = {[name] = {name, columns, unique}},
--       uniques = {{name?, columns}}, checks = {{name?, sql}},
--       fks = {{name?, columns, ref_table, ref_columns, ondelete?, onupdate?}} } } }
--   col = { name, type = canonical type text, enum = {name, values}?,
--     nullable, default = the default's meaning (compare.default), default_sql,
--     decl = the declared op.column (declared models only) }

local ddl = require "migrator.ddl"
local normal = require "migrator.normal"

local schema = {}

schema.types = ddl.types
schema.text = ddl.text
schema.column = ddl.column
schema.primary_key = ddl.primary_key
schema.unique = ddl.unique
schema.foreign_key = ddl.foreign_key
schema.check = ddl.check
-- The database's clock as a server default: CURRENT_TIMESTAMP on both
-- dialects (SQLAlchemy's func.now(); PostgreSQL shows it as now()).
schema.now = ddl.text("CURRENT_TIMESTAMP")

local function fail(fmt, ...)
  error({ migrate_error = string.format(fmt, ...) }, 0)
end

-- index(name, {columns}, {unique = bool}): an index of the table it is in.
function schema.index(name, columns, opts)
  if type(name) ~= "string" or name == "" then error("schema.index: the index needs a name", 2) end
  if type(columns) == "string" then columns = { columns } end
  if type(columns) ~= "table" or #columns == 0 then error("schema.index(" .. name .. "): a list of columns", 2) end
  return { element = "index", name = name, columns = columns, unique = opts and opts.unique or false }
end

-- table(name, elements...): one table's declaration.
function schema.table(name, ...)
  if type(name) ~= "string" or name == "" then error("schema.table: the table needs a name", 2) end
  local elements = { ... }
  for i, e in ipairs(elements) do
    if type(e) ~= "table" or not e.element then
      error(("schema.table(%q): element %d is not a column, index or constraint"):format(name, i), 2)
    end
  end
  return { element = "table", name = name, elements = elements }
end

-- define{tables...}: the schema a schema file returns.
function schema.define(tables)
  local seen = {}
  for i, t in ipairs(tables) do
    if type(t) ~= "table" or t.element ~= "table" then error(("schema.define: item %d is not a schema.table(...)"):format(i), 2) end
    if seen[t.name] then error("schema.define: table " .. t.name .. " is declared twice", 2) end
    seen[t.name] = true
  end
  return { element = "schema", tables = tables }
end

-- The declaration (op.column) of table.column in declared; raises naming
-- it when the schema has no such column.
function schema.column_of(declared, table_name, column)
  for _, t in ipairs(declared.tables) do
    if t.name == table_name then
      for _, e in ipairs(t.elements) do
        if e.element == "column" and e.name == column then return e end
      end
    end
  end
  error(("the schema declares no column %s.%s"):format(table_name, column), 2)
end

-- The schema file used when none is given: scripts/app/models.lua, found as
-- `require "models"` would find it.
function schema.default_path()
  local found = package.searchpath("models", package.path)
  return found and (found:gsub("^%./", "")) or "scripts/app/models.lua"
end

-- Loads the declaration in path (nil: schema.default_path()). Raises
-- {migrate_error} naming the file when it cannot be read or does not
-- return schema.define{...}.
function schema.load(path)
  path = path or schema.default_path()
  local chunk, err = loadfile(path)
  if not chunk then
    if not io.open(path, "r") then fail("no schema file at %s: give one with --schema FILE", path) end
    fail("cannot load the schema %s: %s", path, tostring(err))
  end
  local ok, declared = pcall(chunk)
  if not ok then
    fail("the schema %s failed: %s", path, type(declared) == "table" and tostring(declared.migrate_error) or tostring(declared))
  end
  if type(declared) ~= "table" or declared.element ~= "schema" then
    fail("the schema %s must return schema.define { schema.table(...), ... }", path)
  end
  declared.path = path
  return declared
end

-- One declared table as the model's table for dialect.
local function model_table(decl, dialect)
  local t = { name = decl.name, columns = {}, column = {}, pk = {}, indexes = {}, uniques = {}, checks = {}, fks = {},
    decl = decl }
  local pk_decl
  for _, e in ipairs(decl.elements) do
    if e.element == "column" then
      local c = {
        name = e.name,
        nullable = e.nullable and not e.primary_key,
        decl = e,
      }
      if e.type.kind == "enum" then
        c.enum = { name = e.type.enum_name, values = e.type.values }
      end
      c.type = normal.declared_type(e.type, dialect)
      c.default_sql = ddl.default_expr(e.server_default, dialect)
      c.default = normal.default(c.default_sql, c.type, dialect)
      t.columns[#t.columns + 1] = c
      t.column[e.name] = c
      if e.primary_key then t.pk[#t.pk + 1] = e.name end
      if e.index then
        local name = "ix_" .. decl.name .. "_" .. e.name
        t.indexes[name] = { name = name, columns = { e.name }, unique = e.unique }
      elseif e.unique then
        t.uniques[#t.uniques + 1] = { columns = { e.name } }
      end
    elseif e.element == "primary_key" then
      pk_decl = e
    elseif e.element == "index" then
      t.indexes[e.name] = { name = e.name, columns = e.columns, unique = e.unique }
    elseif e.element == "unique" then
      t.uniques[#t.uniques + 1] = { name = e.name, columns = e.columns }
    elseif e.element == "check" then
      t.checks[#t.checks + 1] = { name = e.name, sql = e.sql }
    elseif e.element == "foreign_key" then
      t.fks[#t.fks + 1] = { name = e.name, columns = e.columns, ref_table = e.ref_table, ref_columns = e.ref_columns,
        ondelete = normal.action(e.ondelete), onupdate = normal.action(e.onupdate) }
    end
  end
  if pk_decl then
    t.pk = pk_decl.columns
    for _, name in ipairs(pk_decl.columns) do
      if not t.column[name] then fail("table %s: primary key column %s is not declared", decl.name, name) end
      t.column[name].nullable = false
    end
  end
  for name, ix in pairs(t.indexes) do
    for _, c in ipairs(ix.columns) do
      if not t.column[c] then fail("table %s: index %s names column %s, which is not declared", decl.name, name, c) end
    end
  end
  return t
end

-- The declaration as the model for dialect (see the top of this file).
function schema.model(declared, dialect)
  local model = { dialect = dialect, tables = {}, order = {} }
  for _, decl in ipairs(declared.tables) do
    model.tables[decl.name] = model_table(decl, dialect)
    model.order[#model.order + 1] = decl.name
  end
  return model
end

return schema
