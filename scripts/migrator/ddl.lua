-- migrator/ddl.lua: renders SQL text per dialect ("sqlite" or "postgresql")
-- exactly the way SQLAlchemy 2.0 and Alembic do, so that a schema made by
-- todohost is byte-for-byte the schema Alembic would have made: identifier
-- quoting, column types, server defaults, column specifications and
-- CREATE TABLE layout ("CREATE TABLE t (\n\tcol, \n\tcol, \n\tPRIMARY KEY (id)\n)").
--
-- Only rendering lives here: no database access, no state.

local ddl = {}

-- ---- identifiers -----------------------------------------------------------

local function word_set(text)
  local set = {}
  for w in text:gmatch("%S+") do set[w] = true end
  return set
end

-- SQLAlchemy's reserved words per dialect (quoted when used as names).
local RESERVED = {
  postgresql = word_set([[all analyse analyze and any array as asc asymmetric authorization
    between binary both case cast check collate column constraint create cross current_catalog
    current_date current_role current_schema current_time current_timestamp current_user default
    deferrable desc distinct do else end except false fetch for foreign freeze from full grant group
    having ilike in initially inner intersect into is isnull join leading left like limit localtime
    localtimestamp natural new not notnull null of off offset old on only or order outer over
    overlaps placing primary references returning right select session_user similar some symmetric
    table then to trailing true union unique user using variadic verbose when where window with]]),
  sqlite = word_set([[add after all alter analyze and as asc attach autoincrement before begin
    between by cascade case cast check collate column commit conflict constraint create cross
    current_date current_time current_timestamp database default deferrable deferred delete desc
    detach distinct drop each else end escape except exclusive exists explain fail false for foreign
    from full glob group having if ignore immediate in index indexed initially inner insert instead
    intersect into is isnull join key left like limit match natural not notnull null of offset on or
    order outer plan pragma primary query raise references reindex rename replace restrict right
    rollback row select set table temp temporary then to transaction trigger true union unique update
    using vacuum values view virtual when where]]),
}

-- A name as SQLAlchemy writes it: bare when it is lower case, made of
-- [a-z0-9_$], does not start with a digit or $ and is not reserved;
-- otherwise in double quotes.
function ddl.quote(name, dialect)
  assert(type(name) == "string", "identifier must be a string")
  if name:match("^[a-z_][a-z0-9_$]*$") and not RESERVED[dialect][name] then
    return name
  end
  return '"' .. name:gsub('"', '""') .. '"'
end

-- A list of names, quoted and joined with ", ".
function ddl.quote_list(names, dialect)
  local out = {}
  for i, n in ipairs(names) do
    if type(n) == "table" and n.sql then out[i] = n.sql else out[i] = ddl.quote(n, dialect) end
  end
  return table.concat(out, ", ")
end

-- ---- literals --------------------------------------------------------------

-- A raw SQL fragment (Alembic's sa.text()): rendered as written.
local Text = {}
Text.__index = Text
Text.__tostring = function(t) return t.sql end

function ddl.text(sql)
  assert(type(sql) == "string", "text() takes a SQL string")
  return setmetatable({ sql = sql }, Text)
end

function ddl.is_text(v)
  return getmetatable(v) == Text
end

-- A Lua value as a SQL literal for dialect: strings quoted, booleans as
-- true/false (PostgreSQL) or 1/0 (SQLite), integers and floats as numbers,
-- nil as NULL, text() as written.
function ddl.literal(v, dialect)
  local t = type(v)
  if v == nil then return "NULL"
  elseif t == "string" then return "'" .. v:gsub("'", "''") .. "'"
  elseif t == "boolean" then
    if dialect == "postgresql" then return v and "true" or "false" end
    return v and "1" or "0"
  elseif math.type(v) == "integer" then return tostring(v)
  elseif math.type(v) == "float" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot write " .. tostring(v) .. " as a SQL literal") end
    return string.format("%.17g", v)
  elseif ddl.is_text(v) then return v.sql
  end
  error("cannot write a " .. t .. " as a SQL literal")
end

-- Replaces $1..$n outside quotes in sql by literals of params (for --sql).
function ddl.inline_params(sql, params, dialect)
  if not params or params.n == 0 then return sql end
  local out, i, n = {}, 1, #sql
  while i <= n do
    local c = sql:sub(i, i)
    if c == "'" or c == '"' then
      local j = i + 1
      while j <= n do
        if sql:sub(j, j) == c then
          if sql:sub(j + 1, j + 1) == c then j = j + 2 else break end
        else
          j = j + 1
        end
      end
      out[#out + 1] = sql:sub(i, j)
      i = j + 1
    elseif c == "$" and sql:sub(i + 1, i + 1):match("%d") then
      local digits = sql:match("^%d+", i + 1)
      local k = tonumber(digits)
      if k < 1 or k > params.n then error("parameter $" .. digits .. " has no value") end
      out[#out + 1] = ddl.literal(params[k], dialect)
      i = i + 1 + #digits
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

-- ---- types -----------------------------------------------------------------

-- A column type: {name = kind, args...}. Each is usable bare (types.string)
-- or called with its arguments (types.string(200), types.datetime{timezone = true}).
local Type = {}
Type.__index = Type

local function make_type(kind, affinity, render, call)
  local t = setmetatable({ kind = kind, affinity = affinity, render = render }, Type)
  if call then
    t.__call_fn = call
  end
  return t
end

Type.__call = function(self, ...)
  if not self.__call_fn then
    if select("#", ...) == 0 then return self end
    error("type " .. self.kind .. " takes no arguments", 2)
  end
  local t = setmetatable({ kind = self.kind, affinity = self.affinity, render = self.render }, Type)
  self.__call_fn(t, ...)
  return t
end

local function fixed(pg, sqlite, affinity, kind)
  return make_type(kind, affinity, function(_, dialect)
    return dialect == "postgresql" and pg or sqlite
  end)
end

local types = {}
ddl.types = types

types.integer = fixed("INTEGER", "INTEGER", "integer", "integer")
types.big_integer = fixed("BIGINT", "BIGINT", "integer", "big_integer")
types.small_integer = fixed("SMALLINT", "SMALLINT", "integer", "small_integer")
types.text = fixed("TEXT", "TEXT", "text", "text")
types.boolean = fixed("BOOLEAN", "BOOLEAN", "numeric", "boolean")
types.float = fixed("FLOAT", "FLOAT", "real", "float")
types.date = fixed("DATE", "DATE", "numeric", "date")
types.large_binary = fixed("BYTEA", "BLOB", "blob", "large_binary")
types.json = fixed("JSON", "JSON", "numeric", "json")
types.uuid = fixed("UUID", "CHAR(32)", "text", "uuid")

-- string(length): VARCHAR(length), or VARCHAR without one.
types.string = make_type("string", "text", function(self)
  return self.length and ("VARCHAR(" .. self.length .. ")") or "VARCHAR"
end, function(self, length) self.length = length end)

-- numeric(precision, scale)
types.numeric = make_type("numeric", "numeric", function(self)
  if self.precision and self.scale then return ("NUMERIC(%d, %d)"):format(self.precision, self.scale) end
  if self.precision then return ("NUMERIC(%d)"):format(self.precision) end
  return "NUMERIC"
end, function(self, precision, scale) self.precision, self.scale = precision, scale end)

-- datetime{timezone = bool}: SQLite DATETIME; PostgreSQL TIMESTAMP WITH[OUT] TIME ZONE.
types.datetime = make_type("datetime", "numeric", function(self, dialect)
  if dialect == "postgresql" then
    return self.timezone and "TIMESTAMP WITH TIME ZONE" or "TIMESTAMP WITHOUT TIME ZONE"
  end
  return "DATETIME"
end, function(self, opts) self.timezone = opts and opts.timezone or false end)

-- time{timezone = bool}
types.time = make_type("time", "numeric", function(self, dialect)
  if dialect == "postgresql" then
    return self.timezone and "TIME WITH TIME ZONE" or "TIME WITHOUT TIME ZONE"
  end
  return "TIME"
end, function(self, opts) self.timezone = opts and opts.timezone or false end)

-- enum("todo_status", {"open", "done"}): a PostgreSQL enum type of that
-- name (created with the table or column that first uses it); on SQLite a
-- VARCHAR as long as the longest value, with CHECK (col IN (...)), as
-- SQLAlchemy's Enum(create_constraint=True) does.
types.enum = make_type("enum", "text", function(self, dialect)
  if not self.enum_name then error("op.types.enum needs a name and values: op.types.enum(\"todo_status\", {\"open\", \"done\"})", 0) end
  if dialect == "postgresql" then return ddl.quote(self.enum_name, dialect) end
  local longest = 0
  for _, v in ipairs(self.values) do longest = math.max(longest, #v) end
  return "VARCHAR(" .. longest .. ")"
end, function(self, name, values)
  if type(name) ~= "string" or name == "" or type(values) ~= "table" or #values == 0 then
    error("op.types.enum(name, {values...}): a type name and at least one value", 3)
  end
  for _, v in ipairs(values) do
    if type(v) ~= "string" then error("op.types.enum: values must be strings", 3) end
  end
  self.enum_name, self.values = name, { table.unpack(values) }
end)

-- jsonb: PostgreSQL's JSONB; on SQLite JSON (text), as SQLAlchemy's JSON.
types.jsonb = fixed("JSONB", "JSON", "numeric", "jsonb")

-- char(length): CHAR(length) on both (PostgreSQL pads with spaces to length).
types.char = make_type("char", "text", function(self)
  return self.length and ("CHAR(" .. self.length .. ")") or "CHAR"
end, function(self, length) self.length = length end)

-- array(element): PostgreSQL's ELEMENT[] (one dimension declared); on
-- SQLite, which has no arrays, JSON (the array as JSON text). An array of
-- an enum makes the enum type on PostgreSQL as an enum column does; on
-- SQLite it has no CHECK (a CHECK cannot look inside JSON: SQLite allows
-- no subquery there), as SQLAlchemy's ARRAY(Enum) has none: the copy
-- refuses an element that is not a label.
types.array = make_type("array", "numeric", function(self, dialect)
  if not self.element then error("op.types.array needs an element type: op.types.array(op.types.integer)", 0) end
  if dialect == "postgresql" then return self.element:render(dialect) .. "[]" end
  return "JSON"
end, function(self, element)
  if getmetatable(element) ~= Type or element.kind == "array" then
    error("op.types.array(element): element is a column type other than an array (op.types.text, ...)", 3)
  end
  self.element = element
end)

-- The enum type column type t needs on PostgreSQL: t itself, or the
-- element of an array of an enum; nil for the other types.
function ddl.enum_type(t)
  if t.kind == "enum" then return t end
  if t.kind == "array" and t.element and t.element.kind == "enum" then return t.element end
  return nil
end

-- The statement creating enum type t on PostgreSQL.
function ddl.create_enum_sql(t)
  local quoted = {}
  for i, v in ipairs(t.values) do quoted[i] = ddl.literal(v, "postgresql") end
  return "CREATE TYPE " .. ddl.quote(t.enum_name, "postgresql") .. " AS ENUM (" .. table.concat(quoted, ", ") .. ")"
end

-- The CHECK constraint standing for enum column col on SQLite.
function ddl.enum_check(col)
  local quoted = {}
  for i, v in ipairs(col.type.values) do quoted[i] = ddl.literal(v, "sqlite") end
  return ddl.check(ddl.quote(col.name, "sqlite") .. " IN (" .. table.concat(quoted, ", ") .. ")", { name = col.type.enum_name })
end

-- raw("CITEXT"): a type written as given, on every dialect.
function types.raw(sql)
  return make_type("raw", nil, function() return sql end)
end

-- A type argument: a type object, or a string taken as a raw type.
function ddl.to_type(t)
  if type(t) == "string" then return types.raw(t) end
  if getmetatable(t) == Type then return t end
  error("expected a column type (op.types.integer, op.types.string(200), ...) or a SQL type string", 3)
end

function ddl.render_type(t, dialect)
  return t:render(dialect)
end

-- SQLite's type affinity for a declared type name (section 3.1 of the
-- SQLite datatype docs).
function ddl.sqlite_affinity(decl)
  local d = (decl or ""):upper()
  if d:find("INT", 1, true) then return "integer" end
  if d:find("CHAR", 1, true) or d:find("CLOB", 1, true) or d:find("TEXT", 1, true) then return "text" end
  if d == "" or d:find("BLOB", 1, true) then return "blob" end
  if d:find("REAL", 1, true) or d:find("FLOA", 1, true) or d:find("DOUB", 1, true) then return "real" end
  return "numeric"
end

-- ---- server defaults -------------------------------------------------------

-- Marker for alter_column(..., {server_default = op.no_default}): drop it.
ddl.no_default = setmetatable({}, { __tostring = function() return "no_default" end })

-- The SQL of a server default (SQLAlchemy's get_column_default_string):
-- strings are literals, text() is raw SQL, booleans are true()/false().
function ddl.default_expr(value, dialect)
  if value == nil or value == ddl.no_default then return nil end
  return ddl.literal(value, dialect)
end

-- True when SQLAlchemy would treat the default as an expression (not a
-- plain string literal): Alembic then rebuilds a SQLite table to add it.
function ddl.default_is_expression(value)
  return value ~= nil and value ~= ddl.no_default and type(value) ~= "string"
end

-- " DEFAULT x" as the dialect's compiler writes it. SQLite wraps an
-- unparenthesised expression containing a non-word character in ( ).
function ddl.default_clause(expr, dialect)
  if expr == nil then return "" end
  if dialect == "sqlite" and not expr:match("^%s*['\"(]") and expr:match("[^%w_]") then
    return " DEFAULT (" .. expr .. ")"
  end
  return " DEFAULT " .. expr
end

-- ---- columns and tables ----------------------------------------------------

-- A column description, from op.column(name, type, opts).
function ddl.column(name, type_, opts)
  if type(name) ~= "string" then error("column name must be a string", 3) end
  opts = opts or {}
  for k in pairs(opts) do
    if not ({ nullable = 1, primary_key = 1, server_default = 1, autoincrement = 1, unique = 1, index = 1 })[k] then
      error(("unknown column option %q (nullable, primary_key, server_default, autoincrement, unique, index)"):format(k), 3)
    end
  end
  local nullable = opts.nullable
  if nullable == nil then nullable = not opts.primary_key end
  return {
    element = "column",
    name = name,
    type = ddl.to_type(type_),
    nullable = nullable,
    nullable_given = opts.nullable ~= nil,
    primary_key = opts.primary_key or false,
    server_default = opts.server_default,
    autoincrement = opts.autoincrement, -- nil = "auto"
    unique = opts.unique or false,
    index = opts.index or false,
  }
end

-- Splits (a, b, ..., {opts}) into a list and the options table.
local function names_and_opts(...)
  local n = select("#", ...)
  local names, opts = {}, {}
  for i = 1, n do
    local v = select(i, ...)
    if i == n and type(v) == "table" and not ddl.is_text(v) and #v == 0 then
      opts = v
    elseif type(v) == "table" and not ddl.is_text(v) then
      for _, x in ipairs(v) do names[#names + 1] = x end
    else
      names[#names + 1] = v
    end
  end
  return names, opts
end
ddl.names_and_opts = names_and_opts

function ddl.primary_key(...)
  local cols, opts = names_and_opts(...)
  return { element = "primary_key", columns = cols, name = opts.name }
end

function ddl.unique(...)
  local cols, opts = names_and_opts(...)
  return { element = "unique", columns = cols, name = opts.name }
end

-- foreign_key({"user_id"}, "users", {"id"}, {name=, ondelete=, onupdate=})
function ddl.foreign_key(cols, ref_table, ref_cols, opts)
  if type(cols) == "string" then cols = { cols } end
  if type(ref_cols) == "string" then ref_cols = { ref_cols } end
  opts = opts or {}
  return { element = "foreign_key", columns = cols, ref_table = ref_table, ref_columns = ref_cols,
    name = opts.name, ondelete = opts.ondelete, onupdate = opts.onupdate }
end

function ddl.check(expr, opts)
  opts = opts or {}
  return { element = "check", sql = expr, name = opts.name }
end

local function constraint_prefix(c, dialect)
  return c.name and ("CONSTRAINT " .. ddl.quote(c.name, dialect) .. " ") or ""
end

-- One table constraint as SQLAlchemy renders it.
function ddl.constraint_sql(c, dialect)
  local p = constraint_prefix(c, dialect)
  if c.element == "primary_key" then
    return p .. "PRIMARY KEY (" .. ddl.quote_list(c.columns, dialect) .. ")"
  elseif c.element == "unique" then
    return p .. "UNIQUE (" .. ddl.quote_list(c.columns, dialect) .. ")"
  elseif c.element == "check" then
    return p .. "CHECK (" .. c.sql .. ")"
  elseif c.element == "foreign_key" then
    local s = p .. "FOREIGN KEY(" .. ddl.quote_list(c.columns, dialect) .. ") REFERENCES "
      .. ddl.quote(c.ref_table, dialect) .. " (" .. ddl.quote_list(c.ref_columns, dialect) .. ")"
    if c.ondelete then s = s .. " ON DELETE " .. c.ondelete end
    if c.onupdate then s = s .. " ON UPDATE " .. c.onupdate end
    return s
  end
  error("unknown constraint " .. tostring(c.element))
end

-- Does this column become SERIAL on PostgreSQL (SQLAlchemy's
-- table._autoincrement_column rule)? table = {pk = {names}, fk_columns = set}.
local function is_serial(col, table_info)
  if col.type.affinity ~= "integer" or col.type.kind == "raw" then return false end
  if col.autoincrement == false or col.server_default ~= nil then return false end
  if not table_info or #table_info.pk ~= 1 or table_info.pk[1] ~= col.name then return false end
  if table_info.fk_columns and table_info.fk_columns[col.name] and col.autoincrement ~= true then return false end
  return true
end

-- The column specification SQLAlchemy's DDL compiler renders.
function ddl.column_spec(col, dialect, table_info)
  local spec = ddl.quote(col.name, dialect)
  if dialect == "postgresql" and is_serial(col, table_info) then
    local kind = col.type.kind
    spec = spec .. (kind == "big_integer" and " BIGSERIAL" or kind == "small_integer" and " SMALLSERIAL" or " SERIAL")
  else
    spec = spec .. " " .. ddl.render_type(col.type, dialect)
    spec = spec .. ddl.default_clause(ddl.default_expr(col.server_default, dialect), dialect)
  end
  if not col.nullable then spec = spec .. " NOT NULL" end
  return spec
end

-- CREATE TABLE for elements (columns and constraints, in order): the
-- primary key constraint first, then the others in the order given, as
-- SQLAlchemy does. Returns the statement, the list of CREATE INDEX
-- statements for columns declared with index = true, and the enum types its
-- columns use on PostgreSQL (which must exist first).
function ddl.create_table_sql(name, elements, dialect)
  local cols, constraints, pk = {}, {}, nil
  local pk_cols = {}
  local enums = {}
  local fk_columns = {}
  for _, e in ipairs(elements) do
    if e.element == "column" then
      cols[#cols + 1] = e
      if e.type.kind == "enum" and dialect == "sqlite" then
        constraints[#constraints + 1] = ddl.enum_check(e)
      elseif ddl.enum_type(e.type) and dialect == "postgresql" then
        enums[#enums + 1] = ddl.enum_type(e.type)   -- an array of an enum needs its type too
      end
      if e.primary_key then pk_cols[#pk_cols + 1] = e.name end
      if e.unique then constraints[#constraints + 1] = ddl.unique(e.name) end
    elseif e.element == "primary_key" then
      pk = e
    elseif e.element == "foreign_key" then
      for _, c in ipairs(e.columns) do fk_columns[c] = true end
      constraints[#constraints + 1] = e
    elseif e.element then
      constraints[#constraints + 1] = e
    else
      error("create_table takes columns (op.column) and constraints (op.primary_key, op.unique, op.foreign_key, op.check)", 3)
    end
  end
  if #cols == 0 then error("create_table needs at least one column", 3) end
  if pk then
    -- Columns named by the constraint are primary key columns too.
    local set = {}
    for _, c in ipairs(pk.columns) do set[c] = true end
    for _, c in ipairs(cols) do
      if set[c.name] and not c.nullable_given then c.nullable = false end
    end
  else
    pk = #pk_cols > 0 and ddl.primary_key(pk_cols) or nil
  end
  local info = { pk = pk and pk.columns or {}, fk_columns = fk_columns }
  local parts = {}
  for _, c in ipairs(cols) do parts[#parts + 1] = ddl.column_spec(c, dialect, info) end
  if pk then parts[#parts + 1] = ddl.constraint_sql(pk, dialect) end
  for _, c in ipairs(constraints) do parts[#parts + 1] = ddl.constraint_sql(c, dialect) end
  local sql = "CREATE TABLE " .. ddl.quote(name, dialect) .. " (\n\t" .. table.concat(parts, ", \n\t") .. "\n)"
  local indexes = {}
  for _, c in ipairs(cols) do
    if c.index then
      indexes[#indexes + 1] = ddl.create_index_sql("ix_" .. name .. "_" .. c.name, name, { c.name }, { unique = c.unique }, dialect)
    end
  end
  return sql, indexes, enums
end

-- CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON table (cols) [WHERE ...]
-- (CONCURRENTLY: opts.concurrently, PostgreSQL only)
function ddl.create_index_sql(name, table_name, columns, opts, dialect)
  opts = opts or {}
  local sql = "CREATE " .. (opts.unique and "UNIQUE " or "") .. "INDEX "
    .. ((opts.concurrently and dialect == "postgresql") and "CONCURRENTLY " or "")
    .. ddl.quote(name, dialect) .. " ON " .. ddl.quote(table_name, dialect)
    .. " (" .. ddl.quote_list(columns, dialect) .. ")"
  if opts.where then sql = sql .. " WHERE " .. opts.where end
  return sql
end

return ddl
