-- migrator/ops.lua: the `op` object handed to a revision's upgrade(op) and
-- downgrade(op): Alembic's operations, rendered for the database at hand.
--
--   op.create_table(name, op.column(...), ..., op.primary_key("id"))
--   op.drop_table(name)
--   op.add_column(table, op.column(name, type, {nullable=, server_default=, ...}))
--   op.drop_column(table, column)
--   op.alter_column(table, column, {nullable=, type=, server_default=, new_column_name=, using=})
--   op.create_index(name, table, {columns}, {unique=, where=})
--   op.drop_index(name, table)
--   op.create_unique_constraint(name, table, {columns})
--   op.create_check_constraint(name, table, condition)
--   op.create_foreign_key(name, table, ref_table, {columns}, {ref_columns}, {ondelete=, onupdate=})
--   op.drop_constraint(name, table, {type_ = "unique"|"check"|"foreignkey", columns=, sql=})
--                                   -- name nil: found by its columns or condition
--   op.rename_table(old, new)
--   op.execute(sql, ...)            -- $1..$n parameters, bound
--   op.bulk_insert(table, rows, {columns = {...}})
--   op.query(sql, ...)              -- rows, for data migrations (not in --sql mode)
--   op.batch_alter_table(table, function(batch) batch.alter_column(...) ... end)
-- and the constructors op.column, op.types.*, op.text, op.no_default,
-- op.primary_key, op.unique, op.foreign_key, op.check; op.dialect is
-- "sqlite" or "postgresql". Both op.f(...) and op:f(...) work.
--
-- op.types.enum(name, {values}) is a PostgreSQL enum type (created when a
-- table or column first uses it; alter_column to an enum with other values
-- adds them in place, or makes the type again when values go) and a
-- VARCHAR with its CHECK on SQLite.
--
-- On PostgreSQL every change is a plain ALTER. On SQLite, changes ALTER
-- TABLE cannot make (alter_column, drop_column, add_column with an
-- expression default or a constraint, adding or dropping a constraint)
-- rebuild the table (sqlite_batch),
-- exactly where Alembic's batch mode would.

local ddl = require "migrator.ddl"
local normal = require "migrator.normal"
local sqlite_batch = require "migrator.sqlite_batch"

local ops = {}

local function check_name(v, what)
  if type(v) ~= "string" or v == "" then
    error(("%s must be a non-empty string, got %s"):format(what, type(v)), 3)
  end
end

local ALTER_KEYS = {
  nullable = true, type = true, server_default = true, new_column_name = true, using = true,
  existing_type = true, existing_nullable = true, existing_server_default = true, comment = true,
}

-- Builds the op object over an executor (see migrator/executor.lua).
function ops.new(ctx)
  local d = ctx.dialect
  local op = {
    dialect = d,
    types = ddl.types,
    text = ddl.text,
    no_default = ddl.no_default,
    column = ddl.column,
    primary_key = ddl.primary_key,
    unique = ddl.unique,
    foreign_key = ddl.foreign_key,
    check = ddl.check,
  }
  local q = function(name) return ddl.quote(name, d) end

  -- Lets users write op:f(...) as well as op.f(...).
  local function method(fn)
    return function(first, ...)
      if first == op then return fn(...) end
      return fn(first, ...)
    end
  end

  -- SQLite changes that need a rebuild, grouped per table while a batch is
  -- open (nil otherwise).
  local pending

  local function rebuild(table_name, changes)
    if pending then
      for _, c in ipairs(changes) do pending.changes[#pending.changes + 1] = c end
    else
      sqlite_batch.rebuild(ctx, table_name, changes)
    end
  end

  -- Statements that must run after the pending rebuild (index changes).
  local function after_rebuild(fn)
    if pending then pending.after[#pending.after + 1] = fn else fn() end
  end

  -- Creates enum type t on PostgreSQL unless it exists (SQLAlchemy's
  -- checkfirst); offline it is always written.
  local function ensure_enum(t)
    if d ~= "postgresql" then return end
    if not ctx.offline then
      local found = ctx:query("SELECT 1 AS found FROM pg_catalog.pg_type WHERE typname = $1 "
        .. "AND typnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema())", t.enum_name)
      if #found > 0 then return end
    end
    ctx:exec(ddl.create_enum_sql(t))
  end

  -- Makes enum type t exist on PostgreSQL with exactly t.values: created
  -- when missing; values added in place (ALTER TYPE ... ADD VALUE BEFORE/
  -- AFTER) when the old ones keep their order; otherwise the type is made
  -- again and every column using it converted (a row holding a removed
  -- value makes that fail, and the revision roll back).
  local function sync_enum(t)
    if ctx.offline then
      error({ migrate_error = "changing enum " .. t.enum_name .. " reads its values from the database, which --sql mode does not open; run it without --sql" }, 0)
    end
    local rows = ctx:query("SELECT e.enumlabel AS label FROM pg_catalog.pg_enum e JOIN pg_catalog.pg_type t ON t.oid = e.enumtypid "
      .. "WHERE t.typname = $1 AND t.typnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema()) "
      .. "ORDER BY e.enumsortorder", t.enum_name)
    if #rows == 0 then return ensure_enum(t) end
    local old, position = {}, {}
    for i, r in ipairs(rows) do old[i] = r.label end
    for i, v in ipairs(t.values) do position[v] = i end
    local kept_in_order, last = true, 0
    for _, v in ipairs(old) do
      if not position[v] or position[v] < last then kept_in_order = false; break end
      last = position[v]
    end
    local name = q(t.enum_name)
    if kept_in_order then
      local present = {}
      for _, v in ipairs(old) do present[v] = true end
      for i, v in ipairs(t.values) do
        if not present[v] then
          local after = t.values[i - 1]
          ctx:exec("ALTER TYPE " .. name .. " ADD VALUE " .. ddl.literal(v, d)
            .. (after and (" AFTER " .. ddl.literal(after, d)) or (" BEFORE " .. ddl.literal(old[1], d))))
          present[v] = true
        end
      end
      return
    end
    local usages = ctx:query("SELECT c.relname AS table_name, a.attname AS column_name, "
      .. "pg_catalog.pg_get_expr(dft.adbin, dft.adrelid) AS dflt FROM pg_catalog.pg_attribute a "
      .. "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
      .. "LEFT JOIN pg_catalog.pg_attrdef dft ON dft.adrelid = a.attrelid AND dft.adnum = a.attnum "
      .. "WHERE a.atttypid = to_regtype($1) AND c.relkind = 'r' AND NOT a.attisdropped", name)
    local old_name = q(t.enum_name .. "_old")
    ctx:exec("ALTER TYPE " .. name .. " RENAME TO " .. old_name)
    ctx:exec(ddl.create_enum_sql(t))
    for _, u in ipairs(usages) do
      local head = "ALTER TABLE " .. q(u.table_name) .. " ALTER COLUMN " .. q(u.column_name)
      if u.dflt then ctx:exec(head .. " DROP DEFAULT") end
      ctx:exec(head .. " TYPE " .. name .. " USING " .. q(u.column_name) .. "::text::" .. name)
      if u.dflt then ctx:exec(head .. " SET DEFAULT " .. u.dflt) end
    end
    ctx:exec("DROP TYPE " .. old_name)
  end

  -- The name of column's type on PostgreSQL (typname), nil offline.
  local function pg_column_type(table_name, column)
    if ctx.offline then return nil end
    local row = ctx:query("SELECT t.typname AS name FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
      .. "WHERE a.attrelid = to_regclass($1) AND a.attname = $2", q(table_name), column)[1]
    return row and row.name
  end

  function op.create_table(name, ...)
    check_name(name, "create_table: table name")
    ctx:note("create_table", name)
    if ctx.dry then return end
    local sql, indexes, enums = ddl.create_table_sql(name, { ... }, d)
    for _, t in ipairs(enums) do ensure_enum(t) end
    ctx:exec(sql)
    for _, ix in ipairs(indexes) do ctx:exec(ix) end
  end

  function op.drop_table(name)
    check_name(name, "drop_table: table name")
    ctx:note("drop_table", name)
    if ctx.dry then return end
    ctx:exec("DROP TABLE " .. q(name))
  end

  function op.rename_table(old, new)
    check_name(old, "rename_table: old name")
    check_name(new, "rename_table: new name")
    ctx:note("rename_table", old)
    if ctx.dry then return end
    ctx:exec("ALTER TABLE " .. q(old) .. " RENAME TO " .. q(new))
  end

  -- ALTER TABLE ... ADD COLUMN; an enum column on SQLite carries its CHECK.
  local function add_column_sql(table_name, col)
    local sql = "ALTER TABLE " .. q(table_name) .. " ADD COLUMN " .. ddl.column_spec(col, d, nil)
    if d == "sqlite" and col.type.kind == "enum" then
      sql = sql .. " " .. ddl.constraint_sql(ddl.enum_check(col), d)
    end
    return sql
  end

  function op.add_column(table_name, col)
    check_name(table_name, "add_column: table name")
    if type(col) ~= "table" or col.element ~= "column" then
      error("add_column(table, op.column(name, type, opts)): the second argument must be op.column(...)", 2)
    end
    ctx:note("add_column", table_name, col.name, { nullable = col.nullable, server_default = col.server_default })
    if ctx.dry then return end
    if ddl.enum_type(col.type) then ensure_enum(ddl.enum_type(col.type)) end
    if d == "sqlite" and (ddl.default_is_expression(col.server_default) or col.primary_key or col.unique) then
      rebuild(table_name, { { op = "add", column = col } })
    elseif d == "sqlite" and pending then
      -- keep the batch's order: an ADD COLUMN before a rebuild of the same table
      pending.changes[#pending.changes + 1] = { op = "add", column = col }
    else
      ctx:exec(add_column_sql(table_name, col))
      -- unique = true is a constraint of its own, as Alembic adds it (with
      -- index = true the unique index below is the constraint instead)
      if col.unique and not col.index then
        ctx:exec("ALTER TABLE " .. q(table_name) .. " ADD " .. ddl.constraint_sql(ddl.unique(col.name), d))
      end
    end
    if col.index then
      after_rebuild(function()
        ctx:exec(ddl.create_index_sql("ix_" .. table_name .. "_" .. col.name, table_name, { col.name }, { unique = col.unique }, d))
      end)
    end
  end

  function op.drop_column(table_name, column)
    check_name(table_name, "drop_column: table name")
    check_name(column, "drop_column: column name")
    ctx:note("drop_column", table_name, column)
    if ctx.dry then return end
    if d == "sqlite" then
      rebuild(table_name, { { op = "drop", column = column } })
    else
      ctx:exec("ALTER TABLE " .. q(table_name) .. " DROP COLUMN " .. q(column))
    end
  end

  function op.alter_column(table_name, column, opts)
    check_name(table_name, "alter_column: table name")
    check_name(column, "alter_column: column name")
    opts = opts or {}
    for k in pairs(opts) do
      if not ALTER_KEYS[k] then
        error(("alter_column: unknown option %q (nullable, type, server_default, new_column_name, using)"):format(k), 2)
      end
    end
    local new_type = opts.type and ddl.to_type(opts.type)
    ctx:note("alter_column", table_name, column, { nullable = opts.nullable, server_default = opts.server_default,
      type = new_type, existing_type = opts.existing_type and ddl.to_type(opts.existing_type) })
    if new_type then ctx:note("alter_column_type", table_name, column) end
    if ctx.dry then return end
    if d == "postgresql" then
      local head = "ALTER TABLE " .. q(table_name) .. " ALTER COLUMN " .. q(column)
      if new_type and new_type.kind == "enum" then
        sync_enum(new_type)
        if pg_column_type(table_name, column) ~= new_type.enum_name then
          local using = opts.using or (q(column) .. "::text::" .. ddl.render_type(new_type, d))
          ctx:exec(head .. " TYPE " .. ddl.render_type(new_type, d) .. " USING " .. using)
        end
      elseif new_type then
        if ddl.enum_type(new_type) then ensure_enum(ddl.enum_type(new_type)) end   -- an array of an enum
        ctx:exec(head .. " TYPE " .. ddl.render_type(new_type, d) .. (opts.using and (" USING " .. opts.using) or ""))
      end
      if opts.nullable ~= nil then
        ctx:exec(head .. (opts.nullable and " DROP NOT NULL" or " SET NOT NULL"))
      end
      if opts.server_default ~= nil then
        local expr = ddl.default_expr(opts.server_default, d)
        ctx:exec(head .. (expr and (" SET DEFAULT " .. expr) or " DROP DEFAULT"))
      end
    elseif opts.nullable ~= nil or new_type or opts.server_default ~= nil then
      rebuild(table_name, { {
        op = "alter", column = column, nullable = opts.nullable, type = new_type,
        server_default = opts.server_default,
      } })
    end
    if opts.new_column_name then
      check_name(opts.new_column_name, "alter_column: new_column_name")
      after_rebuild(function()
        ctx:exec("ALTER TABLE " .. q(table_name) .. " RENAME " .. (d == "sqlite" and "COLUMN " or "")
          .. q(column) .. " TO " .. q(opts.new_column_name))
      end)
    end
  end

  function op.create_index(name, table_name, columns, opts)
    check_name(name, "create_index: index name")
    check_name(table_name, "create_index: table name")
    if type(columns) == "string" then columns = { columns } end
    ctx:note("create_index", table_name, nil, { name = name, concurrently = opts and opts.concurrently })
    if ctx.dry then return end
    if opts and opts.concurrently and ctx.replay then
      -- a replay in a scratch schema runs in one transaction: build it plainly
      opts = { unique = opts.unique, where = opts.where }
    end
    if opts and opts.concurrently and d == "postgresql" and ctx.transactional ~= false then
      error({ migrate_error = ("create_index %s: concurrently = true cannot run inside a transaction; "
        .. "declare transactional = false in the revision (see docs/extending.md)"):format(name) }, 0)
    end
    after_rebuild(function()
      ctx:exec(ddl.create_index_sql(name, table_name, columns, opts, d))
    end)
  end

  function op.drop_index(name, table_name)
    check_name(name, "drop_index: index name")
    ctx:note("drop_index", table_name)
    if ctx.dry then return end
    if pending then
      -- the index must be gone before the rebuild would re-create it
      ctx:exec("DROP INDEX " .. q(name))
    else
      ctx:exec("DROP INDEX " .. q(name))
    end
  end

  -- ---- constraints (Alembic's names) ----

  -- Adds a table constraint: ALTER TABLE ... ADD on PostgreSQL, a rebuild
  -- on SQLite.
  local function add_constraint(table_name, c)
    ctx:note("create_constraint", table_name)
    if ctx.dry then return end
    if d == "sqlite" then
      rebuild(table_name, { { op = "add_constraint", constraint = c } })
    else
      ctx:exec("ALTER TABLE " .. q(table_name) .. " ADD " .. ddl.constraint_sql(c, d))
    end
  end

  function op.create_unique_constraint(name, table_name, columns)
    check_name(table_name, "create_unique_constraint: table name")
    if type(columns) == "string" then columns = { columns } end
    add_constraint(table_name, ddl.unique(columns, { name = name }))
  end

  function op.create_check_constraint(name, table_name, sql)
    check_name(table_name, "create_check_constraint: table name")
    check_name(sql, "create_check_constraint: condition")
    add_constraint(table_name, ddl.check(sql, { name = name }))
  end

  -- create_foreign_key(name, table, ref_table, {cols}, {ref_cols}, {ondelete=, onupdate=})
  function op.create_foreign_key(name, table_name, ref_table, columns, ref_columns, opts)
    check_name(table_name, "create_foreign_key: table name")
    check_name(ref_table, "create_foreign_key: referenced table name")
    opts = opts or {}
    add_constraint(table_name, ddl.foreign_key(columns, ref_table, ref_columns,
      { name = name, ondelete = opts.ondelete, onupdate = opts.onupdate }))
  end

  local PG_TYPE = { unique = "u", check = "c", foreignkey = "f", primary = "p" }

  -- The name PostgreSQL gave the unnamed constraint opts describes
  -- (type_ unique/foreignkey with columns, or check with sql).
  local function pg_constraint_name(table_name, opts)
    local rows = ctx:query("SELECT con.conname AS name, pg_catalog.pg_get_constraintdef(con.oid) AS def, "
      .. "(SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(con.conkey) WITH ORDINALITY AS k(n, o) "
      .. "JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n) AS columns "
      .. "FROM pg_catalog.pg_constraint con WHERE con.conrelid = to_regclass($1) AND con.contype = $2",
      q(table_name), PG_TYPE[opts.type_] or "?")
    for _, r in ipairs(rows) do
      if opts.type_ == "check" then
        if normal.check(r.def) == normal.check(opts.sql or "") then return r.name end
      elseif r.columns == table.concat(opts.columns or {}, ",") then
        return r.name
      end
    end
    error({ migrate_error = ("table %s has no %s constraint on (%s)"):format(table_name, tostring(opts.type_),
      table.concat(opts.columns or { opts.sql or "?" }, ", ")) }, 0)
  end

  -- drop_constraint(name, table, {type_ = "unique"|"check"|"foreignkey"|"primary"});
  -- an unnamed constraint (name nil) is found by its columns (unique,
  -- foreignkey) or its condition (check: sql =).
  function op.drop_constraint(name, table_name, opts)
    check_name(table_name, "drop_constraint: table name")
    opts = opts or {}
    if name == nil and not (opts.type_ and (opts.columns or opts.sql)) then
      error("drop_constraint(nil, table, {type_ =, columns = | sql =}): an unnamed constraint needs its type_ and columns or sql", 2)
    end
    ctx:note("drop_constraint", table_name)
    if ctx.dry then return end
    if d == "sqlite" then
      rebuild(table_name, { { op = "drop_constraint", name = name, type_ = opts.type_, columns = opts.columns, sql = opts.sql } })
    else
      name = name or pg_constraint_name(table_name, opts)
      ctx:exec("ALTER TABLE " .. q(table_name) .. " DROP CONSTRAINT " .. q(name))
    end
  end

  function op.execute(sql, ...)
    check_name(sql, "execute: SQL")
    ctx:note("execute")
    if ctx.dry then return 0 end
    return ctx:exec(sql, ...)
  end

  function op.query(sql, ...)
    check_name(sql, "query: SQL")
    if ctx.dry then return {} end
    if ctx.offline then
      error({ migrate_error = "op.query cannot run in --sql mode (no database is opened); run the migration without --sql" }, 0)
    end
    return ctx:query(sql, ...)
  end

  -- Inserts rows (tables keyed by column name). Each row inserts the keys
  -- it has (so server defaults fill the others), in sorted order; with
  -- opts.columns every row inserts exactly those columns (absent = NULL).
  function op.bulk_insert(table_name, rows, opts)
    check_name(table_name, "bulk_insert: table name")
    if type(rows) ~= "table" then error("bulk_insert(table, rows): rows must be a list of tables", 2) end
    ctx:note("bulk_insert", table_name)
    if ctx.dry then return end
    for _, row in ipairs(rows) do
      local columns = opts and opts.columns
      if not columns then
        columns = {}
        for k in pairs(row) do columns[#columns + 1] = k end
        table.sort(columns)
      end
      local marks, values = {}, {}
      for i, c in ipairs(columns) do
        marks[i] = "$" .. i
        values[i] = row[c]
      end
      ctx:exec("INSERT INTO " .. q(table_name) .. " (" .. ddl.quote_list(columns, d) .. ") VALUES ("
        .. table.concat(marks, ", ") .. ")", table.unpack(values, 1, #columns))
    end
  end

  -- Groups changes to one table so that SQLite rebuilds it once.
  function op.batch_alter_table(table_name, fn)
    check_name(table_name, "batch_alter_table: table name")
    if type(fn) ~= "function" then error("batch_alter_table(table, function(batch) ... end)", 2) end
    if pending then error("batch_alter_table cannot be nested", 2) end
    local batch = {}
    local NAME_FIRST = { create_index = true, drop_index = true, create_unique_constraint = true,
      create_check_constraint = true, create_foreign_key = true, drop_constraint = true }
    for _, name in ipairs({ "add_column", "drop_column", "alter_column", "create_index", "drop_index",
        "create_unique_constraint", "create_check_constraint", "create_foreign_key", "drop_constraint" }) do
      local f = op[name]
      batch[name] = function(first, ...)
        if first == batch then return f(table_name, ...) end
        if NAME_FIRST[name] then
          local args = { first, ... }
          return f(args[1], table_name, table.unpack(args, 2, 5))
        end
        return f(table_name, first, ...)
      end
    end
    if d ~= "sqlite" or ctx.dry then
      fn(batch)
      return
    end
    pending = { changes = {}, after = {} }
    local ok, err = pcall(fn, batch)
    local work = pending
    pending = nil
    if not ok then error(err, 0) end
    local needs_rebuild = false
    for _, c in ipairs(work.changes) do
      if c.op ~= "add" or ddl.default_is_expression(c.column.server_default) or c.column.primary_key or c.column.unique then
        needs_rebuild = true
      end
    end
    if needs_rebuild then
      sqlite_batch.rebuild(ctx, table_name, work.changes)
    else
      for _, c in ipairs(work.changes) do
        ctx:exec(add_column_sql(table_name, c.column))
      end
    end
    for _, f in ipairs(work.after) do f() end
  end

  for _, name in ipairs({ "create_table", "drop_table", "rename_table", "add_column", "drop_column",
      "alter_column", "create_index", "drop_index", "execute", "query", "bulk_insert", "batch_alter_table",
      "create_unique_constraint", "create_check_constraint", "create_foreign_key", "drop_constraint" }) do
    op[name] = method(op[name])
  end
  return op
end

return ops
