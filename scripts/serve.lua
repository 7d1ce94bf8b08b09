-- serve.lua: `todohost run serve.lua`: serves the Todo API.
--
-- The steps, as one would do them by hand:
--   1. connect to DATABASE_URL and check it is at the migrations' head
--      (else exit 1: "database is at REV, migrations head is REV: run `make migrate`");
--      and warn, one line per difference, when it differs from the declared
--      schema (scripts/app/models.lua), which never stops the start;
--   2. seed it when its todos table has no rows at all (seeds/*.lua);
--   3. serve HTTP on HOST:PORT with WORKERS workers, each of which loads
--      app.lua with its own database connection.
-- With MIGRATE_ON_START=true, step 1 upgrades the database to the head
-- first, with the migrator's engine and so under its advisory lock: of
-- instances started at once, one migrates and the others find it done.
-- Seeding takes a lock of its own (seeding.lua). A HOST that is not a
-- loopback address needs API_TOKEN (auth.lua) or ALLOW_NO_TOKEN=true.
-- Settings come from todohost.settings (the environment, then .env, then the
-- defaults of host/config.c): HOST, PORT, WORKERS, ACCESS_LOG (true, false
-- or json), RELOAD,
-- HTTP_TIMEOUT, MAX_BODY, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP (0: no
-- limit, for running behind a proxy, where every connection comes from one
-- address), MIGRATIONS_DIR. A value it cannot read stops the server with one
-- line naming the setting.

local auth = require "auth"
local db = require "todohost.db"
local engine = require "migrator.engine"
local settings = require "todohost.settings"
local revisions = require "migrator.revisions"
local seeding = require "seeding"
local version = require "migrator.version"

local function fail(fmt, ...)
  io.stderr:write("todohost: ", string.format(fmt, ...), "\n")
  os.exit(1)
end

-- ---- start ------------------------------------------------------------------

-- every setting read (and checked) before anything connects
local function setting(name) return (settings.get(name)) end

-- ACCESS_LOG as http.serve takes it: true, false or "json".
local function access_log_mode()
  local text, source = settings.get("ACCESS_LOG")
  if text:lower() == "json" then return "json" end
  local on = settings.boolean(text)
  if on == nil then
    fail('ACCESS_LOG must be true, false or json, got "%s" (from %s)',
      require("todohost.util").text_safe(text), source)
  end
  return on
end

local options = {
  app = "app",
  host = setting("HOST"),
  port = setting("PORT"),
  workers = setting("WORKERS"),
  max_body = setting("MAX_BODY"),
  access_log = access_log_mode(),
  reload = setting("RELOAD"),
  timeout = setting("HTTP_TIMEOUT"),
  max_connections = setting("MAX_CONNECTIONS"),
  max_connections_per_ip = setting("MAX_CONNECTIONS_PER_IP"),
}

local exposed = auth.problem()
if exposed then fail("%s", exposed) end

local ok, err = pcall(function()
  if setting("MIGRATE_ON_START") then engine.upgrade({ dir = revisions.default_dir() }, "head") end
  local conn <close> = db.connect()
  local graph = revisions.load(revisions.default_dir())
  local head = graph:head()
  local current = version.revision_if_migrated(conn)
  if current ~= head then
    if current ~= nil and not graph.by_id[current] then
      fail("database is at %s, which %s does not have (head is %s): check DATABASE_URL",
        current, graph.dir, head)
    end
    fail("database is at %s, migrations head is %s: run `make migrate`", current or "no revision", head)
  end
  -- a database that drifted from scripts/app/models.lua is served, with a warning
  local compared, drift = pcall(require("migrator.engine").differences, conn)
  if not compared then
    io.stderr:write("todohost: warning: cannot compare the database with its schema: ",
      type(drift) == "table" and tostring(drift.migrate_error) or tostring(drift), "\n")
  else
    for _, d in ipairs(drift) do io.stderr:write("todohost: warning: schema drift: ", d.text, "\n") end
    if #drift > 0 then io.stderr:write("todohost: warning: run `todohost run migrate.lua check` for what to change\n") end
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
http.serve(options)
