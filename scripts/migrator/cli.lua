-- migrator/cli.lua: the migrate commands as the command line shows them
-- (upgrade, downgrade, current, history, heads, show, stamp, revision,
-- check), each a function(opts, args) returning the process exit status.
-- The work is migrator/engine.lua's and migrator/template.lua's; this
-- module checks the arguments and prints the results in Alembic's formats.
-- Modules only one command needs (autogen, template) are required by that
-- command, so that `check` (timed: under 30 ms) compiles only what it uses.

local engine = require "migrator.engine"
local log = require "migrator.log"
local revisions = require "migrator.revisions"

local fail = revisions.fail
local cli = {}

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

-- Prints ids one a line, short or (-v) verbose.
local function print_ids(opts, graph, ids)
  for _, id in ipairs(ids) do
    if opts.verbose then log.out("%s", log_entry(graph, id)) else log.out("%s", head_only(graph, id)) end
  end
end

function cli.upgrade(opts, args)
  engine.upgrade(opts, args[1] or "head")
  return 0
end

function cli.downgrade(opts, args)
  local target = args[1]
  if not target then
    fail("downgrade needs a target: base, a revision id, or -N (e.g. downgrade -1)")
  end
  engine.downgrade(opts, target)
  return 0
end

function cli.current(opts)
  local graph, heads = engine.current(opts)
  print_ids(opts, graph, heads)
  return 0
end

function cli.heads(opts)
  local graph = engine.load_graph(opts)
  print_ids(opts, graph, graph.heads)
  return 0
end

function cli.history(opts)
  local graph = engine.load_graph(opts)
  local current_set = opts.indicate_current and engine.current_set(opts) or nil
  for _, id in ipairs(engine.history(graph, opts.range)) do
    if opts.verbose then
      log.out("%s", log_entry(graph, id, current_set))
    else
      local rev = graph:get(id)
      log.out("%s -> %s, %s", parents_text(rev), head_only(graph, id, current_set), rev.message)
    end
  end
  return 0
end

function cli.show(opts, args)
  local graph = engine.load_graph(opts)
  local name = args[1] or fail("show needs a revision: show REV (or head)")
  for _, id in ipairs(engine.named(graph, name)) do log.out("%s", log_entry(graph, id)) end
  return 0
end

local SIDE_ADVICE = {
  schema = "the migrations make the database's: autogenerate a migration, or change the schema",
  database = "the migrations make the schema's: the database was changed by hand; change it back",
}

-- 0 at head and matching the declared schema; 1 otherwise, with a FAILED
-- line saying how far behind, or one line per difference and which side to change.
function cli.check(opts)
  local state = engine.check(opts)
  if #state.pending == 0 and #state.differences == 0 then
    log.info("No new upgrade operations detected: the database is at head (%s) and matches %s.", state.head, state.schema_path)
    return 0
  end
  if #state.pending == 0 then
    local n = #state.differences
    local lines = { ("FAILED: the database is at head (%s) but differs from the schema in %s (%d difference%s):")
      :format(state.head, state.schema_path, n, n == 1 and "" or "s") }
    for _, d in ipairs(state.differences) do
      lines[#lines + 1] = "  " .. d.text .. " (" .. SIDE_ADVICE[d.side] .. ")"
    end
    io.stderr:write(table.concat(lines, "\n"), "\n")
    return 1
  end
  local n = #state.pending
  io.stderr:write(("FAILED: Target database is not up to date: it is at %s, head is %s (%d revision%s to apply); "
    .. "run: todohost run migrate.lua upgrade head\n"):format(engine.at_text(state.heads), state.head, n, n == 1 and "" or "s"))
  return 1
end

-- One line per operation that loses data or blocks a table; 1 when there
-- is any (for CI), 0 otherwise.
function cli.lint(opts, args)
  local findings = engine.lint(opts, args[1])
  for _, f in ipairs(findings) do log.out("%s: %s", f.revision, f.text) end
  if #findings == 0 then
    log.info("No operation that loses data or blocks a table.")
    return 0
  end
  return 1
end

function cli.stamp(opts, args)
  local name = args[1] or fail("stamp needs a revision: stamp REV, stamp head or stamp base")
  engine.stamp(opts, name)
  return 0
end

-- With --autogenerate the file holds the operations that make the
-- database match the declared schema; when they already match, no file.
function cli.revision(opts)
  local message = opts.message or fail('revision needs a message: revision -m "add priority to todos"')
  local bodies
  if opts.autogenerate then
    local found = engine.autogenerate(opts)
    if #found.differences == 0 then
      log.info("No changes in schema detected: the database matches %s; no revision written.", found.schema_path)
      return 0
    end
    for _, d in ipairs(found.differences) do log.info("Detected %s", d.text) end
    local up, down = require("migrator.autogen").render(found.differences, found.dialect)
    bodies = { upgrades = up, downgrades = down }
  end
  local path = require("migrator.template").write(opts.dir, message, opts.head, opts.rev_id, bodies)
  log.out("Generating %s ...  done", path)
  return 0
end

return cli
