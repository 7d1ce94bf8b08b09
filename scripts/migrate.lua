-- migrate.lua: schema migrations, Alembic-compatible.
--
--   todohost run migrate.lua <command> [options]
--
-- Reads the command line, runs one command from migrator/cli.lua and
-- turns its errors into one "FAILED: ..." line and a non-zero exit, as
-- Alembic's CLI does. See `todohost run migrate.lua help`.

local USAGE = [[
usage: todohost run migrate.lua [--dir DIR] [--url URL] [-q] <command> [options]

commands:
  init [DIR]                  create a migrations folder (default: migrations/) with the
                              revision template and a README; DIR must be new or empty
  upgrade [--sql] [TARGET]    apply revisions up to TARGET: head (default), REV or +N
  downgrade [--sql] TARGET    undo revisions down to TARGET: base, REV or -N
  current [-v]                show the database's revision
  history [-v] [-i] [-r A:B]  list revisions, newest first (-i marks the current one)
  heads [-v]                  show the newest revision(s)
  show REV                    show one revision (REV may be head)
  stamp [--sql] REV           record REV (head, base) as applied without running anything
  revision -m MSG [--rev-id ID] [--head REV] [--autogenerate]
                              write a new revision file from migrations/script.lua.tmpl;
                              --autogenerate fills it with what makes the database (at
                              head) match the declared schema, and writes none when it does
  check                       exit 1 when the database is not at head or differs from the
                              declared schema (one line per difference)
  lint [REV]                  list the upgrade operations that lose data or block a table
                              (every revision, or REV), one line each with a way round

options:
  --dir DIR    the migrations directory (default: MIGRATIONS_DIR, else migrations/)
  --url URL    the database (default: DATABASE_URL from the environment or .env)
  --sql        print the SQL for the database's dialect instead of running it;
               a range START:END starts from START instead of base
  -q, --quiet  no INFO lines (warnings and errors still print)
  --strict     upgrade, check: fail when an applied revision was edited since it ran (for CI)
  --schema FILE  check, revision --autogenerate: the declared schema (default: scripts/app/models.lua)
  -v, --verbose, -i/--indicate-current, -r/--rev-range RANGE, -m/--message MSG
]]

local log = require "migrator.log"
local settings = require "todohost.settings"

local function usage_error(fmt, ...)
  io.stderr:write("FAILED: ", string.format(fmt, ...), "\n", "run `todohost run migrate.lua help` for usage\n")
  os.exit(2, true)
end

-- Options that take a value, and the field each fills.
local VALUE_OPTS = {
  ["--dir"] = "dir", ["--url"] = "url", ["-m"] = "message", ["--message"] = "message",
  ["-r"] = "range", ["--rev-range"] = "range", ["--rev-id"] = "rev_id", ["--head"] = "head", ["--schema"] = "schema",
}
local FLAG_OPTS = {
  ["--sql"] = "sql", ["-q"] = "quiet", ["--quiet"] = "quiet", ["-v"] = "verbose", ["--verbose"] = "verbose",
  ["-i"] = "indicate_current", ["--indicate-current"] = "indicate_current", ["--purge"] = "purge", ["--autogenerate"] = "autogenerate",
  ["--strict"] = "strict",
}

local function parse(argv)
  local opts, positional = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local key, inline = a:match("^(%-%-?[%w-]+)=(.*)$")
    key = key or a
    if VALUE_OPTS[key] then
      local v = inline
      if not v then
        i = i + 1
        v = argv[i]
        if v == nil then usage_error("%s needs a value", key) end
      end
      opts[VALUE_OPTS[key]] = v
    elseif FLAG_OPTS[a] then
      opts[FLAG_OPTS[a]] = true
    elseif a == "-h" or a == "--help" then
      positional = { "help" }
      break
    elseif a:match("^%-%-?%a") then
      usage_error("unknown option %s", a)
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  opts.dir = opts.dir or require("migrator.revisions").default_dir()
  opts.dir = opts.dir:gsub("/+$", "")
  if opts.dir == "" then opts.dir = "/" end
  return opts, positional
end

local function main(argv)
  local opts, positional = parse(argv)
  local name = table.remove(positional, 1)
  if name == nil or name == "help" then
    io.stdout:write(USAGE)
    return name == nil and 2 or 0
  end
  log.quiet = opts.quiet or false
  local cli = require "migrator.cli"
  local command = name == "init" and require("migrator.scaffold").init or cli[name]
  if type(command) ~= "function" then usage_error("unknown command %q", name) end
  local limits = { init = 1, upgrade = 1, downgrade = 1, show = 1, stamp = 1, lint = 1, current = 0, heads = 0, history = 0, check = 0, revision = 0 }
  if #positional > limits[name] then usage_error("%s: unexpected argument %q", name, positional[limits[name] + 1]) end
  if opts.sql and not (name == "upgrade" or name == "downgrade" or name == "stamp") then
    usage_error("--sql works with upgrade, downgrade and stamp")
  end
  return command(opts, positional)
end

local ok, status = xpcall(main, function(err)
  if type(err) == "table" and err.migrate_error then return err end
  if type(err) == "table" then return { migrate_error = tostring(err) } end
  if settings.get("DEBUG") then return { migrate_error = debug.traceback(tostring(err), 2) } end
  return { migrate_error = tostring(err) }
end, arg)

if not ok then
  io.stderr:write("FAILED: ", status.migrate_error, "\n")
  os.exit(1, true)
end
io.stdout:flush()
os.exit(status or 0, true)
