-- doctor.lua: `todohost run doctor.lua` (`make doctor`): the migration
-- guide's pre-flight checklist and troubleshooting, done by the machine.
--
-- One line per check, ✓ passed, ✗ failed (followed by the one command that
-- fixes it), ! worth knowing, - for information. Exits 1 when a check
-- failed, 0 otherwise. Changes nothing: the database is only read (a SQLite
-- file is opened read-only), no server is started or stopped.
--
-- `todohost run doctor.lua port` checks only the port, silently when it is
-- free: `make run` asks it first, so that a taken port stops it before it
-- migrates anything, with one line on stderr.
--
-- Settings (todohost.settings: the environment, then .env, then the
-- defaults): PORT as `make run` uses it, DATABASE_URL, SQLITE_FILE (the
-- SQLite data `make copy` reads), MIGRATIONS_DIR, DB_PORT, DB_DATA_DIR,
-- NO_COLOR; the `settings` check reports every value that cannot be read.

local checks = require "doctor.checks"
local probe = require "doctor.probe"
local settings = require "todohost.settings"
local util = require "todohost.util"

local color = util.isatty(io.stdout) and not settings.get("NO_COLOR")
local function paint(code, text)
  if not color then return text end
  return "\27[" .. code .. "m" .. text .. "\27[0m"
end

-- ---- what to look at -------------------------------------------------------------------

-- PORT is the one setting a check cannot go without
local port_ok, port = pcall(settings.get, "PORT")
if not port_ok then
  io.stderr:write("doctor: ", tostring(port), "; unset it or fix it\n")
  os.exit(2)
end

local url = settings.get("DATABASE_URL")
local ctx = {
  cwd = require("todohost.paths").project,
  port = port,
  url = url,
  target = probe.parse_url(url),
  sqlite_file = settings.get("SQLITE_FILE"),
}

-- ---- `doctor.lua port`: the pre-flight of make run ----------------------------------

local only = arg[1]
if only ~= nil and only ~= "port" then
  io.stderr:write(string.format("doctor: unknown check %q; run it without arguments (or: port)\n", only))
  os.exit(2)
end
if only == "port" then
  local problem
  local quiet = {
    ok = function() end, info = function() end, warn = function() end,
    fail = function(text, fix) problem = problem or (text .. (fix and ("; fix: " .. fix) or "")) end,
  }
  checks.port(ctx, quiet)
  if problem then
    io.stderr:write("todohost: ", problem, "\n")
    os.exit(1)
  end
  os.exit(0)
end

-- ---- the report ------------------------------------------------------------------------

local failed, warned, passed = 0, 0, 0
local report = {}
function report.ok(text)
  passed = passed + 1
  print(paint("32", "✓") .. " " .. text)
end
function report.fail(text, fix)
  failed = failed + 1
  print(paint("31", "✗") .. " " .. text)
  if fix then print("    fix: " .. paint("1", fix)) end
end
function report.warn(text, fix)
  warned = warned + 1
  print(paint("33", "!") .. " " .. text)
  if fix then print("    fix: " .. fix) end
end
function report.info(text)
  print(paint("2", "-") .. " " .. text)
end

print(string.format("todohost doctor: %s", ctx.cwd))

-- ---- the checks, in the guide's order --------------------------------------------------

local function run(name)
  local ok, result = pcall(checks[name], ctx, report)
  if not ok then
    report.fail(string.format("%s: the check itself failed: %s", name, probe.mask(tostring(result))),
      "DEBUG=true make doctor   (and report it)")
    return false
  end
  return result
end

run("port")
if run("url") then
  run("database")
  run("server")
  run("migrations")
  run("rows")
end
run("settings")
run("dotenv")
run("sqlite_file")

if ctx.conn then ctx.conn:close() end

-- ---- verdict -----------------------------------------------------------------------------

local summary
if failed == 0 then
  summary = paint("32", string.format("all %d checks passed", passed))
else
  summary = paint("31", string.format("%d of %d checks failed", failed, failed + passed))
end
if warned > 0 then summary = summary .. string.format(", %d warning%s", warned, warned == 1 and "" or "s") end
print(summary)
os.exit(failed == 0 and 0 or 1)
