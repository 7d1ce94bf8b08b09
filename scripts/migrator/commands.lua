-- migrator/commands.lua: the migrate commands (upgrade, downgrade, current,
-- history, heads, show, stamp, revision, check), each a function(opts, args)
-- returning the process exit status.
--
-- Online runs take the migration lock (PostgreSQL advisory lock), then
-- apply each revision in its own transaction together with its
-- alembic_version update and checksum, re-checking inside the transaction
-- that the database is where the plan expects (another migrator may have
-- moved it while this one waited). --sql runs print the statements instead
-- and open no database.

local db = require "todohost.db"
local ddl = require "migrator.ddl"
local executor = require "migrator.executor"
local log = require "migrator.log"
local ops = require "migrator.ops"
local revisions = require "migrator.revisions"
local settings = require "todohost.settings"
local version = require "migrator.version"

local fail = revisions.fail
local commands = {}

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

-- Warns when an applied revision's file changed since it ran.
local function check_checksums(graph, ctx, current)
  local recorded = version.checksums(ctx)
  local applied = graph:ancestors(current)
  local edited = 0
  for _, id in ipairs(graph:topological(applied)) do
    local sum = recorded[id]
    if sum and sum ~= graph:checksum(id) then
      edited = edited + 1
      log.warn("%s was edited after it was applied to this database (its checksum differs from the one recorded "
        .. "then); the database has the schema of the old version: put further changes in a new revision",
        graph:get(id).path)
    end
  end
  return edited
end

-- Warns before a downgrade that drops tables or columns (found by a dry run
-- of each downgrade function; nothing is executed).
local function warn_data_loss(graph, plan, conn, dialect)
  for _, id in ipairs(plan) do
    local rev = graph:get(id)
    local ctx = executor.new({ dialect = dialect, dry = true })
    if pcall(rev.module.downgrade, ops.new(ctx)) then
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

-- Runs one revision in its own transaction. Returns the new heads, or
-- nil, "replan" when the database moved under us.
local function run_step(env, rev, direction, heads)
  local conn, graph = env.conn, env.graph
  local new_heads, removed, added = heads_after(graph, heads, rev, direction)
  local ctx = env.ctx
  local ok, err = pcall(conn.transaction, conn, function()
    -- PostgreSQL: the advisory lock keeps other migrators out. SQLite: they
    -- may have moved the database while this one waited for BEGIN IMMEDIATE.
    if conn.kind == "sqlite" and not same_set(version.current(ctx), heads) then
      error({ replan = true }, 0)
    end
    log.info("%s", step_line(direction, rev, heads, new_heads))
    if direction == "upgrade" then version.ensure_table(ctx) end
    local fn_ok, fn_err = pcall(rev.module[direction], ops.new(ctx))
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
  local cause, statement = describe_error(err)
  local text = ("%s %s (%s) failed and was rolled back; the database is still at %s.\n  error: %s"):format(
    direction == "upgrade" and "Upgrade to" or "Downgrade of", rev.id, rev.path, at_text(heads), cause)
  if statement then text = text .. "\n  statement: " .. statement:gsub("%s+", " ") end
  fail("%s", text)
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
-- Returns the exit code 0.
local function with_online(opts, graph, fn)
  local env = open_online(opts, graph)
  local ok, err = pcall(function()
    context_lines(env.conn.kind)
    fn(env)
  end)
  close_online(env)
  if not ok then error(err, 0) end
  return 0
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
      if attempt == 1 and direction == "upgrade" then check_checksums(graph, ctx, heads) end
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
      scratch:transaction(function() rev.module.upgrade(ops.new(mirror)) end)
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
      local run = function() rev.module[direction](ops.new(ctx)) end
      if scratch then scratch:transaction(run) else run() end
      version.step(ctx, removed, added)
      if direction == "downgrade" and #new_heads == 0 then ctx:exec("DROP TABLE alembic_version") end
      io.stdout:write("COMMIT;\n\n")
      heads = new_heads
    end
  end)
  if scratch then scratch:close() end
  if not ok then
    local cause, statement = describe_error(err)
    fail("%s%s", cause, statement and ("\n  statement: " .. statement) or "")
  end
  return 0
end

-- ---- commands ------------------------------------------------------------------

function commands.upgrade(opts, args)
  local target = args[1] or "head"
  if opts.sql then return migrate_offline(opts, "upgrade", target) end
  return migrate_online(opts, "upgrade", target)
end

function commands.downgrade(opts, args)
  local target = args[1]
  if not target then
    fail("downgrade needs a target: base, a revision id, or -N (e.g. downgrade -1)")
  end
  if opts.sql then return migrate_offline(opts, "downgrade", target) end
  return migrate_online(opts, "downgrade", target)
end

-- "ID (head)" as Alembic's current/heads print it.
local function head_only(graph, id, current_set)
  local text = id
  if graph:is_head(id) then text = text .. " (head)" end
  if current_set and current_set[id] then text = text .. " (current)" end
  local rev = graph:get(id)
  if #rev.children > 1 then text = text .. " (branchpoint)" end
  if #rev.parents > 1 then text = text .. " (mergepoint)" end
  return text
end

local function parents_text(rev)
  return #rev.parents == 0 and "<base>" or table.concat(rev.parents, ", ")
end

-- Alembic's verbose entry (show, -v).
local function log_entry(graph, id, current_set)
  local rev = graph:get(id)
  local lines = {}
  lines[#lines + 1] = "Rev: " .. head_only(graph, id, current_set)
  lines[#lines + 1] = (#rev.parents > 1 and "Merges: " or "Parent: ") .. parents_text(rev)
  if #rev.children > 1 then lines[#lines + 1] = "Branches into: " .. table.concat(rev.children, ", ") end
  lines[#lines + 1] = "Path: " .. rev.path
  lines[#lines + 1] = ""
  local doc = rev.message .. "\n\nRevision ID: " .. rev.id .. "\nRevises: "
    .. table.concat(rev.parents, ", ") .. (rev.module.create_date and ("\nCreate Date: " .. rev.module.create_date) or "")
  for l in (doc .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = "    " .. l end
  return table.concat(lines, "\n") .. "\n"
end

function commands.current(opts)
  local graph = load_graph(opts)
  local conn = connect(opts)
  local ok, err = pcall(function()
    context_lines(conn.kind)
    local ctx = executor.new({ dialect = conn.kind, conn = conn })
    local heads = version.current(ctx)
    graph:check_current(heads)
    for _, id in ipairs(heads) do
      if opts.verbose then log.out("%s", log_entry(graph, id)) else log.out("%s", head_only(graph, id)) end
    end
  end)
  conn:close()
  if not ok then error(err, 0) end
  return 0
end

function commands.heads(opts)
  local graph = load_graph(opts)
  for _, id in ipairs(graph.heads) do
    if opts.verbose then log.out("%s", log_entry(graph, id)) else log.out("%s", head_only(graph, id)) end
  end
  return 0
end

function commands.history(opts)
  local graph = load_graph(opts)
  local current_set
  if opts.indicate_current then
    local conn = connect(opts)
    local ok, heads = pcall(version.current, executor.new({ dialect = conn.kind, conn = conn }))
    conn:close()
    if not ok then error(heads, 0) end
    current_set = {}
    for _, h in ipairs(heads) do current_set[h] = true end
  end
  local order = graph:topological(graph:ancestors(graph.heads))
  local lower, upper
  if opts.range then
    local a, b = split_range(opts.range)
    lower = a and a ~= "base" and graph:ancestors({ graph:resolve(a) }) or nil
    upper = b and b ~= "head" and b ~= "heads" and graph:ancestors({ graph:resolve(b) }) or nil
    if a and a ~= "base" then lower[graph:resolve(a)] = nil end
  end
  for i = #order, 1, -1 do
    local id = order[i]
    if (not upper or upper[id]) and (not lower or not lower[id]) then
      if opts.verbose then
        log.out("%s", log_entry(graph, id, current_set))
      else
        local rev = graph:get(id)
        log.out("%s -> %s, %s", parents_text(rev), head_only(graph, id, current_set), rev.message)
      end
    end
  end
  return 0
end

function commands.show(opts, args)
  local graph = load_graph(opts)
  local name = args[1] or fail("show needs a revision: show REV (or head)")
  local ids = name == "head" and { graph:head() } or name == "heads" and graph.heads or { graph:resolve(name) }
  for _, id in ipairs(ids) do log.out("%s", log_entry(graph, id)) end
  return 0
end

function commands.check(opts)
  local graph = load_graph(opts)
  local conn = connect(opts)
  local ok, res = pcall(function()
    context_lines(conn.kind)
    local ctx = executor.new({ dialect = conn.kind, conn = conn })
    local heads = version.current(ctx)
    graph:check_current(heads)
    check_checksums(graph, ctx, heads)
    local head = graph:head()
    if same_set(heads, { head }) then
      log.info("No new upgrade operations detected: the database is at head (%s).", head)
      return 0
    end
    local pending = graph:upgrade_plan(heads, { head })
    io.stderr:write(("FAILED: Target database is not up to date: it is at %s, head is %s (%d revision%s to apply); "
      .. "run: todohost run migrate.lua upgrade head\n"):format(at_text(heads), head, #pending, #pending == 1 and "" or "s"))
    return 1
  end)
  conn:close()
  if not ok then error(res, 0) end
  return res
end

function commands.stamp(opts, args)
  local name = args[1] or fail("stamp needs a revision: stamp REV, stamp head or stamp base")
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
    return 0
  end
  return with_online(opts, graph, function(env)
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

-- ---- revision -m ---------------------------------------------------------------

local function slugify(message)
  local slug = message:lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", "")
  if #slug > 40 then
    slug = slug:sub(1, 40):gsub("_[^_]*$", "")
  end
  return slug
end

local function lua_string(s)
  return string.format("%q", s)
end

function commands.revision(opts)
  local message = opts.message or fail('revision needs a message: revision -m "add priority to todos"')
  local graph = load_graph(opts)
  local parent
  if opts.head then
    parent = opts.head == "base" and nil or (opts.head == "head" and graph:head() or graph:resolve(opts.head))
  elseif #graph.heads > 0 then
    parent = graph:head()
  end
  local id = opts.rev_id
  if not id then
    local prefix = os.date("%Y_%m_%d")
    local n = 0
    for _, rev in ipairs(graph.list) do
      local seq = rev.id:match("^" .. prefix .. "_(%d+)$")
      if seq and tonumber(seq) > n then n = tonumber(seq) end
    end
    id = ("%s_%03d"):format(prefix, n + 1)
  end
  if graph:get(id) then fail("revision %s already exists (%s)", id, graph:get(id).path) end
  if #id > 32 then fail("revision id %s is longer than 32 characters", id) end
  local template_path = opts.dir .. "/script.lua.tmpl"
  local f = io.open(template_path, "r")
  if not f then fail("no template at %s: restore it from the repository", template_path) end
  local template = f:read("a")
  f:close()
  local values = {
    message = message,
    message_lua = lua_string(message),
    revision = id,
    revision_lua = lua_string(id),
    down_revision = parent or "",
    down_revision_lua = parent and lua_string(parent) or "nil",
    create_date = os.date("%Y-%m-%d %H:%M:%S"),
  }
  local text = template:gsub("%${([%w_]+)}", function(key)
    return values[key] or fail("%s: unknown placeholder ${%s}", template_path, key)
  end)
  local slug = slugify(message)
  local path = opts.dir .. "/" .. id .. (slug ~= "" and ("_" .. slug) or "") .. ".lua"
  local existing = io.open(path, "r")
  if existing then
    existing:close()
    fail("%s already exists", path)
  end
  local out, err = io.open(path, "w")
  if not out then fail("cannot write %s: %s", path, tostring(err)) end
  out:write(text)
  out:close()
  log.out("Generating %s ...  done", path)
  return 0
end

return commands
