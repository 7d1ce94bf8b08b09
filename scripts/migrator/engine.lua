-- migrator/engine.lua: the migration engine: plans and runs upgrades,
-- downgrades and stamps, and reads where a database is. It returns data
-- (revision ids, counts) and raises {migrate_error = text} on failure; the
-- command line's printing and exit codes are migrator/cli.lua's.
--
-- Online runs take the migration lock (PostgreSQL advisory lock), then
-- apply each revision in its own transaction together with its
-- alembic_version update and checksum, re-checking inside the transaction
-- that the database is where the plan expects (another migrator may have
-- moved it while this one waited). --sql runs write the statements to
-- stdout instead and open no database. Progress ("Running upgrade A -> B")
-- and warnings go to migrator/log.lua as they happen.
--
-- opts, for every function: dir (the migrations directory), url (nil:
-- DATABASE_URL), sql (offline).

local compare = require "migrator.compare"
local db = require "todohost.db"
local ddl = require "migrator.ddl"
local executor = require "migrator.executor"
local log = require "migrator.log"
local reflect = require "migrator.reflect"
local revisions = require "migrator.revisions"
local schema = require "migrator.schema"
local settings = require "todohost.settings"
local version = require "migrator.version"

local fail = revisions.fail
local engine = {}

-- The `op` object of migrator/ops.lua for ctx. ops (and lint, in
-- engine.lint) are required when first used: `check` and `current` never
-- run a revision, and compiling them is a good part of their time.
local function new_op(ctx)
  return require("migrator.ops").new(ctx)
end
-- ---- helpers -----------------------------------------------------------------

local IMPL = { sqlite = "SQLiteImpl", postgresql = "PostgresqlImpl" }

local function context_lines(dialect)
  log.info("Context impl %s.", IMPL[dialect])
  log.info("Will assume transactional DDL.")
end

-- The dialect a URL names, without connecting (host/dburl.c reads it).
local function dialect_of(url)
  local target, err = db.parse_url(url or "")
  if not target then fail("%s", tostring(err)) end
  return target.kind
end

local function database_url(opts)
  return opts.url or (settings.get("DATABASE_URL"))
end

local function connect(opts)
  local ok, conn = pcall(db.connect, database_url(opts))
  if not ok then fail("cannot connect to the database: %s", tostring(conn)) end
  return conn
end

local function same_set(a, b)
  if #a ~= #b then return false end
  local set = {}
  for _, x in ipairs(a) do set[x] = true end
  for _, x in ipairs(b) do if not set[x] then return false end end
  return true
end

local function sorted_copy(list)
  local c = { table.unpack(list) }
  table.sort(c)
  return c
end

local function at_text(ids)
  if #ids == 0 then return "base" end
  return table.concat(ids, ", ")
end

-- One readable text for an error raised while running a revision.
local function describe_error(err)
  if type(err) == "table" and err.statement then
    return tostring(err.cause), err.statement
  end
  if type(err) == "table" and err.migrate_error then return err.migrate_error end
  return tostring(err)
end

-- The heads after applying (up) or undoing (down) rev from heads.
local function heads_after(graph, heads, rev, direction)
  local removed, added = {}, {}
  local set = {}
  for _, h in ipairs(heads) do set[h] = true end
  if direction == "upgrade" then
    for _, p in ipairs(rev.parents) do
      if set[p] then removed[#removed + 1] = p; set[p] = nil end
    end
    added[1] = rev.id
    set[rev.id] = true
  else
    removed[1] = rev.id
    set[rev.id] = nil
    local remaining = {}
    for h in pairs(set) do remaining[#remaining + 1] = h end
    local covered = graph:ancestors(remaining)
    for _, p in ipairs(rev.parents) do
      if not covered[p] then added[#added + 1] = p; set[p] = true end
    end
  end
  local new = {}
  for h in pairs(set) do new[#new + 1] = h end
  table.sort(new)
  return new, sorted_copy(removed), sorted_copy(added)
end

local function step_line(direction, rev, heads, new_heads)
  local from, to
  if direction == "upgrade" then
    from, to = table.concat(rev.parents, ", "), rev.id
  else
    from = rev.id
    local added = {}
    local set = {}
    for _, h in ipairs(heads) do set[h] = true end
    for _, h in ipairs(new_heads) do if not set[h] then added[#added + 1] = h end end
    to = table.concat(#added > 0 and added or {}, ", ")
    if #added == 0 and #rev.parents > 0 then to = table.concat(rev.parents, ", ") end
  end
  local msg = rev.message ~= "" and (", " .. rev.message) or ""
  return ("Running %s %s -> %s%s"):format(direction, from, to, msg)
end

-- Warns when an applied revision's code changed since it ran (comments
-- and layout do not count); with opts.strict, raises after the warnings.
-- A checksum of the first form (the file's bytes) that matches is
-- accepted, and with rewrite (a migrator holding the lock) replaced by the
-- new form. recorded: the checksums read already (nil: read them). Returns
-- the number of edited revisions.
local function check_checksums(graph, ctx, current, opts, rewrite, recorded)
  recorded = recorded or version.checksums(ctx)
  local applied = graph:ancestors(current)
  local edited = 0
  for _, id in ipairs(graph:topological(applied)) do
    local sum = recorded[id]
    if sum and sum ~= graph:checksum(id) and graph:checksum_matches(id, sum) then
      if rewrite then version.set_checksum(ctx, id, graph:checksum(id)) end
    elseif sum and not graph:checksum_matches(id, sum) then
      edited = edited + 1
      log.warn("%s was edited after it was applied to this database (its checksum differs from the one recorded "
        .. "then); the database has the schema of the old version: put further changes in a new revision",
        graph:get(id).path)
    end
  end
  if edited > 0 and opts and opts.strict then
    fail("--strict: %d applied revision(s) edited since they ran (see the warnings above); restore them and put the change in a new revision", edited)
  end
  return edited
end

-- Warns before a downgrade that drops tables or columns (found by a dry run
-- of each downgrade function; nothing is executed).
local function warn_data_loss(graph, plan, conn, dialect)
  for _, id in ipairs(plan) do
    local rev = graph:get(id)
    local ctx = executor.new({ dialect = dialect, dry = true })
    if pcall(rev.module.downgrade, new_op(ctx)) then
      for _, note in ipairs(ctx.notes) do
        local what, count_sql
        if note.kind == "drop_table" then
          what = "table " .. note.table
          count_sql = "SELECT count(*) AS n FROM " .. ddl.quote(note.table, dialect)
        elseif note.kind == "drop_column" then
          what = "column " .. note.table .. "." .. note.column
          count_sql = "SELECT count(*) AS n FROM " .. ddl.quote(note.table, dialect) .. " WHERE "
            .. ddl.quote(note.column, dialect) .. " IS NOT NULL"
        elseif note.kind == "alter_column_type" then
          what = "the type of column " .. note.table .. "." .. note.column .. " (values may not convert back)"
        end
        if what then
          local rows = ""
          if conn and count_sql then
            local ok, res = pcall(conn.first, conn, count_sql)
            if ok and res then rows = (" (%d row%s data)"):format(res.n, res.n == 1 and " holds" or "s hold") end
          end
          log.warn("Downgrade of %s (%s) drops %s%s: that data will be lost", rev.id, rev.message, what, rows)
        end
      end
    end
  end
end

-- ---- online runs ---------------------------------------------------------------

-- SQLite: foreign keys are enforced by todohost's connections; a table
-- rebuild must run with enforcement off (it cannot change inside a
-- transaction), and PRAGMA foreign_key_check verifies each revision before
-- it commits.
local function fk_off(conn)
  if conn.kind ~= "sqlite" then return false end
  local row = conn:first("PRAGMA foreign_keys")
  local on = row and (row.foreign_keys == 1 or row.foreign_keys == true)
  if on then conn:exec("PRAGMA foreign_keys = OFF") end
  return on
end

local function fk_check(ctx)
  if ctx.dialect ~= "sqlite" then return end
  local bad = ctx:query("PRAGMA foreign_key_check")
  if #bad > 0 then
    local b = bad[1]
    error({ migrate_error = ("the revision leaves %d row(s) breaking foreign keys (first: table %s rowid %s "
      .. "references %s)"):format(#bad, tostring(b.table), tostring(b.rowid), tostring(b.parent)) }, 0)
  end
end

-- ms a migration statement may wait for a table lock on PostgreSQL (0: no
-- limit): the setting MIGRATE_LOCK_TIMEOUT.
local function lock_timeout_ms()
  return settings.get("MIGRATE_LOCK_TIMEOUT")
end

-- The other sessions holding locks on tables of the current schema, one
-- line each (never their statements, which may hold secrets).
local function lock_holders(conn)
  local ok, rows = pcall(conn.query, conn, "SELECT DISTINCT a.pid, a.usename AS username, "
    .. "coalesce(nullif(a.application_name, ''), '?') AS app, coalesce(a.state, '?') AS state, c.relname AS relation "
    .. "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
    .. "JOIN pg_catalog.pg_class c ON c.oid = l.relation "
    .. "WHERE l.granted AND l.pid <> pg_backend_pid() AND c.relkind IN ('r', 'p') "
    .. "AND c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema()) "
    .. "ORDER BY a.pid, c.relname LIMIT 5")
  if not ok or #rows == 0 then return "" end
  local lines = {}
  for _, r in ipairs(rows) do
    lines[#lines + 1] = ("\n  blocked by: session %d (user %s, application %s, %s) holding a lock on %s"):format(
      r.pid, tostring(r.username), r.app, r.state, r.relation)
  end
  return table.concat(lines) .. ("\n  end that session's transaction (or SELECT pg_terminate_backend(%d)), then run the command again")
    :format(rows[1].pid)
end

local function is_lock_timeout(err)
  return type(err) == "table" and type(err.cause) == "table" and err.cause.sqlstate == "55P03"
end

-- The failure text of rev's step, from err.
local function step_failure(conn, rev, direction, heads, err, outside)
  local cause, statement = describe_error(err)
  local what = direction == "upgrade" and "Upgrade to" or "Downgrade of"
  local text
  if outside then
    text = ("%s %s (%s, transactional = false) failed part-way: what ran before the error stays in the database, "
      .. "the rest did not run; alembic_version still says %s.\n  error: %s"):format(what, rev.id, rev.path, at_text(heads), cause)
  else
    text = ("%s %s (%s) failed and was rolled back; the database is still at %s.\n  error: %s"):format(
      what, rev.id, rev.path, at_text(heads), cause)
  end
  if statement then text = text .. "\n  statement: " .. statement:gsub("%s+", " ") end
  if is_lock_timeout(err) then
    text = text .. ("\n  it waited %d ms for a table lock (MIGRATE_LOCK_TIMEOUT)"):format(lock_timeout_ms()) .. lock_holders(conn)
  end
  if outside then
    text = text .. ("\n  finish or undo that part by hand (see the file), then record it: todohost run migrate.lua stamp %s "
      .. "(finished) or stamp %s (undone)"):format(direction == "upgrade" and rev.id or at_text(rev.parents), at_text(heads))
  end
  return text
end

-- Raises when a transactional = false revision started and did not finish
-- (see run_step_outside), saying what to do: nothing can go on from a
-- state that is not known. recorded: the checksums read already (nil: read them).
local function refuse_unfinished(ctx, graph, heads, recorded)
  local left = version.unfinished(ctx, recorded)[1]
  if not left then return end
  local rev = graph:get(left.id)
  local done_at = left.direction == "upgrade" and left.id or at_text(rev and rev.parents or {})
  fail("%s (%s, transactional = false) started its %s and did not finish: part of it may be in the database, "
    .. "and alembic_version says %s; finish or undo that part by hand (see the file), then record it: "
    .. "todohost run migrate.lua stamp %s (finished) or stamp %s (undone)",
    left.id, rev and rev.path or "a file that is gone", left.direction, at_text(heads), done_at, at_text(heads))
end

-- Runs a transactional = false revision on PostgreSQL: marked as started
-- (so that a failure half-way is reported by every later run), run
-- statement by statement, then recorded in one transaction.
local function run_step_outside(env, rev, direction, heads, new_heads, removed, added)
  local conn, ctx = env.conn, env.ctx
  conn:transaction(function()
    if direction == "upgrade" then version.ensure_table(ctx) end
    version.set_checksum(ctx, rev.id, version.STARTED .. direction)
  end)
  log.info("%s", step_line(direction, rev, heads, new_heads))
  local timeout = lock_timeout_ms()
  if timeout > 0 then conn:exec("SET lock_timeout = " .. timeout) end
  ctx.transactional = false
  local ok, err = pcall(rev.module[direction], new_op(ctx))
  ctx.transactional = nil
  if timeout > 0 then pcall(conn.exec, conn, "RESET lock_timeout") end
  if not ok then fail("%s", step_failure(conn, rev, direction, heads, err, true)) end
  conn:transaction(function()
    version.step(ctx, removed, added)
    version.set_checksum(ctx, rev.id, direction == "upgrade" and env.graph:checksum(rev.id) or nil)
  end)
  return new_heads
end

-- Runs one revision in its own transaction (on PostgreSQL with
-- lock_timeout; a transactional = false revision outside one). Returns the
-- new heads, or nil, "replan" when the database moved under us.
local function run_step(env, rev, direction, heads)
  local conn, graph = env.conn, env.graph
  local new_heads, removed, added = heads_after(graph, heads, rev, direction)
  local ctx = env.ctx
  if rev.module.transactional == false and conn.kind == "postgresql" then
    return run_step_outside(env, rev, direction, heads, new_heads, removed, added)
  end
  local ok, err = pcall(conn.transaction, conn, function()
    -- PostgreSQL: the advisory lock keeps other migrators out. SQLite: they
    -- may have moved the database while this one waited for BEGIN IMMEDIATE.
    if conn.kind == "sqlite" and not same_set(version.current(ctx), heads) then
      error({ replan = true }, 0)
    end
    if conn.kind == "postgresql" and lock_timeout_ms() > 0 then
      conn:exec("SET LOCAL lock_timeout = " .. lock_timeout_ms())
    end
    log.info("%s", step_line(direction, rev, heads, new_heads))
    if direction == "upgrade" then version.ensure_table(ctx) end
    local fn_ok, fn_err = pcall(rev.module[direction], new_op(ctx))
    if not fn_ok then error(fn_err, 0) end
    version.step(ctx, removed, added)
    if direction == "upgrade" then
      version.set_checksum(ctx, rev.id, graph:checksum(rev.id))
    else
      version.set_checksum(ctx, rev.id, nil)
    end
    fk_check(ctx)
  end)
  if ok then return new_heads end
  version.forget(ctx)
  if type(err) == "table" and err.replan then return nil, "replan" end
  fail("%s", step_failure(conn, rev, direction, heads, err, false))
end

local function load_graph(opts)
  return revisions.load(opts.dir)
end

-- Opens the database for a migration run: connection, lock, FK setting.
local function open_online(opts, graph)
  local conn = connect(opts)
  local env = { conn = conn, graph = graph, ctx = executor.new({ dialect = conn.kind, conn = conn }) }
  version.lock(conn)
  env.ctx.locked = conn.kind == "postgresql"
  env.fk_was_on = fk_off(conn)
  return env
end

local function close_online(env)
  if env.fk_was_on then pcall(env.conn.exec, env.conn, "PRAGMA foreign_keys = ON") end
  env.conn:close()
end

-- Runs fn(env) on an online connection (locked; foreign keys off on SQLite),
-- which is restored and closed whatever happens; fn's error is re-raised.
local function with_online(opts, graph, fn)
  local env = open_online(opts, graph)
  local ok, err = pcall(function()
    context_lines(env.conn.kind)
    fn(env)
  end)
  close_online(env)
  if not ok then error(err, 0) end
end

-- Plans and runs steps until the plan is empty; re-plans when another
-- migrator moved the database meanwhile.
local function migrate_online(opts, direction, target_name)
  local graph = load_graph(opts)
  return with_online(opts, graph, function(env)
    local ctx = env.ctx
    for attempt = 1, 20 do
      local heads = version.current(ctx)
      graph:check_current(heads)
      if attempt == 1 then refuse_unfinished(ctx, graph, heads) end
      if attempt == 1 and direction == "upgrade" then check_checksums(graph, ctx, heads, opts, true) end
      local plan
      if direction == "upgrade" then
        local targets = graph:upgrade_target(target_name, heads)
        plan = graph:upgrade_plan(heads, targets)
        if #plan == 0 and attempt == 1 and not same_set(heads, targets) then
          -- every target is already applied but is not where the database is: it is below
          fail("Destination %s is not a valid upgrade target from current head(s) %s; use downgrade to go back",
            table.concat(targets, ", "), at_text(heads))
        end
      else
        local targets = graph:downgrade_target(target_name, heads)
        plan = graph:downgrade_plan(heads, targets)
        if attempt == 1 then warn_data_loss(graph, plan, env.conn, env.conn.kind) end
      end
      local replanned = false
      for _, id in ipairs(plan) do
        local new_heads = run_step(env, graph:get(id), direction, heads)
        if not new_heads then replanned = true; break end
        heads = new_heads
      end
      if not replanned then return end
      log.info("another migrator changed the database meanwhile; planning again")
    end
    fail("the database kept changing under this migrator; run the command again")
  end)
end

-- ---- offline (--sql) runs ------------------------------------------------------

-- Splits "START:END" (START optional).
local function split_range(text)
  local a, b = text:match("^(.-):(.+)$")
  if a then return (a ~= "" and a or nil), b end
  return nil, text
end

local function migrate_offline(opts, direction, range)
  local graph = load_graph(opts)
  local dialect = dialect_of(database_url(opts))
  local start, finish = split_range(range)
  if direction == "downgrade" and not start then
    fail("downgrade with --sql needs a range START:END, e.g. downgrade --sql %s:base (no database is read to find where it is)",
      #graph.heads == 1 and graph.heads[1] or "head")
  end
  local heads = {}
  if start and start ~= "base" then
    heads = graph:upgrade_target(start, {})
  end
  local plan
  if direction == "upgrade" then
    plan = graph:upgrade_plan(heads, graph:upgrade_target(finish, heads))
  else
    plan = graph:downgrade_plan(heads, graph:downgrade_target(finish, heads))
  end
  local scratch
  if dialect == "sqlite" then
    -- Rebuilds read the table definition: mirror the schema at START in memory.
    scratch = db.connect("sqlite:///:memory:")
    local mirror = executor.new({ dialect = dialect, conn = scratch })
    for _, id in ipairs(graph:upgrade_plan({}, heads)) do
      local rev = graph:get(id)
      scratch:transaction(function() rev.module.upgrade(new_op(mirror)) end)
    end
    if #heads > 0 then
      version.ensure_table(mirror)
      version.step(mirror, {}, heads)
    end
  end
  if direction == "downgrade" then warn_data_loss(graph, plan, nil, dialect) end
  local ctx = executor.new({ dialect = dialect, conn = scratch, offline = true })
  local ok, err = pcall(function()
    for i, id in ipairs(plan) do
      local rev = graph:get(id)
      local new_heads, removed, added = heads_after(graph, heads, rev, direction)
      io.stdout:write("BEGIN;\n\n")
      if i == 1 and direction == "upgrade" and #heads == 0 then version.ensure_table(ctx) end
      ctx:comment((step_line(direction, rev, heads, new_heads):gsub(", .*$", "")))
      local run = function() rev.module[direction](new_op(ctx)) end
      if scratch then scratch:transaction(run) else run() end
      version.step(ctx, removed, added)
      if direction == "downgrade" and #new_heads == 0 then version.drop_table(ctx) end
      io.stdout:write("COMMIT;\n\n")
      heads = new_heads
    end
  end)
  if scratch then scratch:close() end
  if not ok then
    local cause, statement = describe_error(err)
    fail("%s%s", cause, statement and ("\n  statement: " .. statement) or "")
  end
end

-- ---- the operations ------------------------------------------------------------

engine.at_text = at_text
engine.load_graph = load_graph

-- Applies revisions up to target (head, REV or +N); with opts.sql, writes
-- their SQL instead (target may be START:END).
function engine.upgrade(opts, target)
  if opts.sql then return migrate_offline(opts, "upgrade", target) end
  return migrate_online(opts, "upgrade", target)
end

-- Undoes revisions down to target (base, REV or -N); with opts.sql, writes
-- their SQL instead (target must be START:END).
function engine.downgrade(opts, target)
  if opts.sql then return migrate_offline(opts, "downgrade", target) end
  return migrate_online(opts, "downgrade", target)
end

-- Returns fn(ctx) for a context on a new connection (no lock), which is
-- closed whatever happens; the Context lines are logged first unless quiet.
local function with_reader(opts, quiet, fn)
  local conn = connect(opts)
  local ok, res = pcall(function()
    if not quiet then context_lines(conn.kind) end
    return fn(executor.new({ dialect = conn.kind, conn = conn }))
  end)
  conn:close()
  if not ok then error(res, 0) end
  return res
end

-- Returns the graph and the database's revision ids (sorted), checked
-- against the graph.
function engine.current(opts)
  local graph = load_graph(opts)
  return graph, with_reader(opts, false, function(ctx)
    local heads = version.current(ctx)
    graph:check_current(heads)
    return heads
  end)
end

-- The database's revision ids as a set (id -> true), read quietly and not
-- checked against the graph (history -i).
function engine.current_set(opts)
  local heads = with_reader(opts, true, version.current)
  local set = {}
  for _, h in ipairs(heads) do set[h] = true end
  return set
end

-- The ids of graph, newest first, limited to range ("A:B", either side
-- optional, base and head allowed) when given.
function engine.history(graph, range)
  local order = graph:topological(graph:ancestors(graph.heads))
  local lower, upper
  if range then
    local a, b = split_range(range)
    lower = a and a ~= "base" and graph:ancestors({ graph:resolve(a) }) or nil
    upper = b and b ~= "head" and b ~= "heads" and graph:ancestors({ graph:resolve(b) }) or nil
    if a and a ~= "base" then lower[graph:resolve(a)] = nil end
  end
  local ids = {}
  for i = #order, 1, -1 do
    local id = order[i]
    if (not upper or upper[id]) and (not lower or not lower[id]) then ids[#ids + 1] = id end
  end
  return ids
end

-- The ids that name means for show: head, heads, or one revision.
function engine.named(graph, name)
  return name == "head" and { graph:head() } or name == "heads" and graph.heads or { graph:resolve(name) }
end

-- Returns fn(ctx, graph, declared schema, the database's ids checked
-- against the graph, its recorded checksums) on a new connection (see
-- with_reader); the graph and the schema (opts.schema) are loaded first.
local function with_schema(opts, fn)
  local graph = load_graph(opts)
  local declared = schema.load(opts.schema)
  return with_reader(opts, false, function(ctx)
    local state = version.state(ctx)
    graph:check_current(state.ids)
    return fn(ctx, graph, declared, state.ids, state.checksums)
  end)
end

-- Where the database stands: { heads = its ids, head = the graph's head,
-- pending = the ids an upgrade to head would apply ({} at head),
-- schema_path, differences = compare.diff of the declared schema
-- (opts.schema, else scripts/app/models.lua) and the database, made only at
-- head ({} otherwise), each with side = "schema" (the migrations make
-- the database's) or "database" (the migrations make the schema's; the database was
-- changed outside them) }. Warns about edited revision files.
function engine.check(opts)
  return with_schema(opts, function(ctx, graph, declared, heads, recorded)
    refuse_unfinished(ctx, graph, heads, recorded)
    check_checksums(graph, ctx, heads, opts, false, recorded)
    local head = graph:head()
    local pending = {}
    if not same_set(heads, { head }) then pending = graph:upgrade_plan(heads, { head }) end
    local differences = {}
    if #pending == 0 then
      local model = schema.model(declared, ctx.dialect)
      differences = compare.diff(model, reflect.database(ctx.conn))
      if #differences > 0 then
        -- which side moved: a difference the migrations also have is the
        -- schema's (no migration makes it yet); else the database's
        local unmigrated = {}
        for _, d in ipairs(compare.diff(model, engine.migrations_model(graph, ctx.conn))) do unmigrated[d.text] = true end
        for _, d in ipairs(differences) do d.side = unmigrated[d.text] and "schema" or "database" end
      end
    end
    return { heads = heads, head = head, pending = pending, schema_path = declared.path, differences = differences }
  end)
end

-- The lint findings, { {revision =, path =, text =}... }, of the revision
-- named (nil: every revision, oldest first) for the configured database's
-- dialect. NULL counts come from the database when it can be reached (a
-- SQLite file is never created for it).
function engine.lint(opts, name)
  local graph = load_graph(opts)
  local ids = name and engine.named(graph, name) or graph:topological(graph:ancestors(graph.heads))
  local url = database_url(opts)
  local target = db.parse_url(url or "")
  if not target then fail("%s", select(2, db.parse_url(url or ""))) end
  local conn
  if target.kind == "postgresql" or (target.path and io.open(target.path, "r")) then
    local ok, c = pcall(db.connect, url)
    conn = ok and c or nil
  end
  local nulls = conn and function(t, c)
    local ok, row = pcall(conn.first, conn, "SELECT count(*) AS n FROM " .. ddl.quote(t, conn.kind)
      .. " WHERE " .. ddl.quote(c, conn.kind) .. " IS NULL")
    return ok and row and row.n or nil
  end
  local findings = {}
  for _, id in ipairs(ids) do
    local rev = graph:get(id)
    for _, text in ipairs(require("migrator.lint").revision(rev, target.kind, nulls)) do
      findings[#findings + 1] = { revision = id, path = rev.path, text = text }
    end
  end
  if conn then conn:close() end
  return findings
end

-- What `revision --autogenerate` works from: the differences between the
-- declared schema (opts.schema) and the database, which must be at head
-- (at base when there are no revisions yet), and the database's dialect.
function engine.autogenerate(opts)
  return with_schema(opts, function(ctx, graph, declared, heads)
    local expected = #graph.heads > 0 and { graph:head() } or {}
    if not same_set(heads, expected) then
      fail("Target database is not up to date: it is at %s, head is %s; run `todohost run migrate.lua upgrade head` "
        .. "first, so that the new revision starts from head", at_text(heads), at_text(expected))
    end
    return { differences = compare.diff(schema.model(declared, ctx.dialect), reflect.database(ctx.conn)),
      dialect = ctx.dialect, schema_path = declared.path }
  end)
end

-- The differences between the declared schema (path; nil: the default)
-- and the database on conn, without saying which side moved: the quick
-- comparison the server makes at start. Raises {migrate_error} when the
-- schema cannot be loaded.
function engine.differences(conn, path)
  return compare.diff(schema.model(schema.load(path), conn.kind), reflect.database(conn))
end

-- The model of the schema the migrations make at head, built where it
-- cannot touch the user's tables: on SQLite in a scratch in-memory
-- database, on PostgreSQL in a scratch schema inside a transaction on
-- conn that is always rolled back. Each revision's upgrade runs as it
-- would for real, data migrations included (on empty tables).
function engine.migrations_model(graph, conn)
  local plan = graph:upgrade_plan({}, { graph:head() })
  local function replay(target)
    local ctx = executor.new({ dialect = target.kind, conn = target })
    ctx.replay = true
    for _, id in ipairs(plan) do
      local ok, err = pcall(graph:get(id).module.upgrade, new_op(ctx))
      if not ok then
        local cause = describe_error(err)
        fail("replaying %s to compare with the schema failed: %s", graph:get(id).path, cause)
      end
    end
    return reflect.database(target)
  end
  if conn.kind == "sqlite" then
    local scratch = db.connect("sqlite:///:memory:")
    local ok, model = pcall(function() return scratch:transaction(function() return replay(scratch) end) end)
    scratch:close()
    if not ok then error(model, 0) end
    return model
  end
  local model
  local ok, err = pcall(conn.transaction, conn, function()
    local name = ("todohost_replay_%d"):format(math.random(1, 1e9))
    conn:exec("CREATE SCHEMA " .. name)
    conn:exec("SET LOCAL search_path TO " .. name)
    model = replay(conn)
    error({ rollback = true }, 0)
  end)
  if not ok and not (type(err) == "table" and err.rollback) then error(err, 0) end
  return model
end

-- Records name (a revision, head, heads or base) as the database's revision
-- without running anything, and the checksums of what that applies; with
-- opts.sql, writes the alembic_version statements instead.
function engine.stamp(opts, name)
  local graph = load_graph(opts)
  local targets
  if name == "base" then targets = {}
  elseif name == "head" then targets = { graph:head() }
  elseif name == "heads" then targets = { table.unpack(graph.heads) }
  else targets = { graph:resolve(name) } end
  targets = sorted_copy(targets)
  local applied = graph:ancestors(targets)
  if opts.sql then
    local ctx = executor.new({ dialect = dialect_of(database_url(opts)), offline = true })
    io.stdout:write("BEGIN;\n\n")
    version.ensure_table(ctx)
    version.step(ctx, {}, targets)
    io.stdout:write("COMMIT;\n\n")
    return
  end
  with_online(opts, graph, function(env)
    local ctx = env.ctx
    env.conn:transaction(function()
      local heads = version.current(ctx)
      log.info("Running stamp_revision %s -> %s", table.concat(heads, ", "), table.concat(targets, ", "))
      version.ensure_table(ctx)
      local keep, removed, added = {}, {}, {}
      for _, t in ipairs(targets) do keep[t] = true end
      local have = {}
      for _, h in ipairs(heads) do
        have[h] = true
        if not keep[h] then removed[#removed + 1] = h end
      end
      for _, t in ipairs(targets) do if not have[t] then added[#added + 1] = t end end
      version.step(ctx, removed, added)
      local recorded = version.checksums(ctx)
      for _, rev in ipairs(graph.list) do
        if applied[rev.id] then
          if recorded[rev.id] ~= graph:checksum(rev.id) then version.set_checksum(ctx, rev.id, graph:checksum(rev.id)) end
        elseif recorded[rev.id] then
          version.set_checksum(ctx, rev.id, nil)
        end
      end
    end)
  end)
end

return engine
