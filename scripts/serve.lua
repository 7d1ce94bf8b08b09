-- serve.lua: `todohost run serve.lua`: serves the Todo API.
--
-- The steps, as one would do them by hand:
--   1. connect to DATABASE_URL and check it is at the migrations' head
--      (else exit 1: "database is at REV, migrations head is REV: run `make migrate`");
--   2. seed it when its todos table has no rows at all (seeds/*.lua);
--   3. serve HTTP on HOST:PORT with WORKERS workers, each of which loads
--      app.lua with its own database connection.
-- Settings come from the environment (.env already loaded by the host):
-- HOST (127.0.0.1), PORT (8080), WORKERS (number of cores), ACCESS_LOG
-- (true), RELOAD (false), HTTP_TIMEOUT (30 s), MAX_BODY (1 MiB), MAX_CONNECTIONS
-- (10,000), MAX_CONNECTIONS_PER_IP (a quarter of MAX_CONNECTIONS; 0: no limit,
-- for running behind a proxy, where every connection comes from one address).

local db = require "todohost.db"
local revisions = require "migrator.revisions"
local seeding = require "seeding"

local function fail(fmt, ...)
  io.stderr:write("todohost: ", string.format(fmt, ...), "\n")
  os.exit(1)
end

-- ---- settings ---------------------------------------------------------------

local function setting(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function integer_setting(name, default, min, max)
  local text = setting(name, nil)
  if text == nil then return default end
  local n = math.tointeger(tonumber(text))
  if not n or n < min or n > max then
    fail("%s must be a whole number from %d to %d, got %q", name, min, max, text)
  end
  return n
end

local BOOLEAN = { ["1"] = true, ["true"] = true, yes = true, on = true,
  ["0"] = false, ["false"] = false, no = false, off = false }
local function bool_setting(name, default)
  local text = setting(name, nil)
  if text == nil then return default end
  local b = BOOLEAN[text:lower()]
  if b == nil then fail("%s must be true or false, got %q", name, text) end
  return b
end

-- ---- the migrations' head -------------------------------------------------

-- migrations/ next to the scripts/ directory this script came from, unless
-- MIGRATIONS_DIR says otherwise (as for migrate.lua).
local function migrations_dir()
  local here = package.searchpath("seeding", package.path)
  local home = here and here:match("^(.*)/scripts/seeding%.lua$")
  return setting("MIGRATIONS_DIR", (home or ".") .. "/migrations")
end

-- The revision the database is at, or nil when it has none.
local function database_revision(conn)
  local ok, row = pcall(conn.first, conn, "SELECT version_num FROM alembic_version")
  if ok then return row and row.version_num end
  local err = row
  -- no alembic_version table: a database never migrated
  if type(err) == "table" and (err.sqlstate == "42P01" or tostring(err.message):find("no such table")) then
    return nil
  end
  error(err, 0)
end

-- ---- start ------------------------------------------------------------------

local host = setting("HOST", "127.0.0.1")
local port = integer_setting("PORT", 8080, 0, 65535)   -- 0: any free port (tests)
local workers = integer_setting("WORKERS", nil, 1, 256)
local timeout = integer_setting("HTTP_TIMEOUT", 30, 1, 3600)
local max_body = integer_setting("MAX_BODY", 1048576, 1024, 1073741824)
local max_connections = integer_setting("MAX_CONNECTIONS", nil, 1, 1000000)
local max_per_ip = integer_setting("MAX_CONNECTIONS_PER_IP", nil, 0, 1000000)
local access_log = bool_setting("ACCESS_LOG", true)
local reload = bool_setting("RELOAD", false)

local ok, err = pcall(function()
  local conn <close> = db.connect()
  local graph = revisions.load(migrations_dir())
  local head = graph:head()
  local current = database_revision(conn)
  if current ~= head then
    if current ~= nil and not graph.by_id[current] then
      fail("database is at %s, which %s does not have (head is %s): check DATABASE_URL",
        current, graph.dir, head)
    end
    fail("database is at %s, migrations head is %s: run `make migrate`", current or "no revision", head)
  end
  local ran = seeding.run(conn)
  if ran > 0 then
    io.stderr:write(string.format("todohost: empty database seeded from %d seed scripts\n", ran))
  end
  io.stderr:write(string.format("todohost: %s database at revision %s\n", conn.kind, head))
end)
if not ok then
  -- migrator errors are {migrate_error = text}; database errors print as one line
  fail("%s", type(err) == "table" and err.migrate_error or tostring(err))
end

local docs_problem = require("web.docs").problem()
if docs_problem then io.stderr:write("todohost: warning: /docs will not work: ", docs_problem, "\n") end

local http = require "todohost.http"
http.serve {
  app = "app",
  host = host,
  port = port,
  workers = workers,
  max_body = max_body,
  access_log = access_log,
  reload = reload,
  timeout = timeout,
  max_connections = max_connections,
  max_connections_per_ip = max_per_ip,
}
