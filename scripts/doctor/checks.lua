-- doctor/checks.lua: the checks of `make doctor`, in the order of the
-- migration guide's pre-flight checklist and troubleshooting section.
--
-- Each check is function(ctx, report). It calls report.ok(text),
-- report.fail(text, fix) (fix: the one command that repairs it),
-- report.warn(text, fix) (worth knowing, not a failure) or
-- report.info(text). ctx carries what earlier checks learnt:
--   ctx.cwd                 the project (todohost.paths): where .env is read
--   ctx.port, ctx.host      where `make run` serves (PORT, HOST)
--   ctx.url, ctx.target     DATABASE_URL and probe.parse_url(DATABASE_URL)
--   ctx.conn                an open connection once `database` succeeded
--   ctx.sqlite_file         the SQLite file `make copy` reads (database.db)

local db = require "todohost.db"
local probe = require "doctor.probe"
local settings = require "todohost.settings"
local util = require "todohost.util"

local checks = {}

local MIGRATE = "make migrate"
local DB_START = "make db-start"
local EXAMPLE_URL = "postgresql://todo_user:todo_pass@localhost:5432/todo_db"

-- An error value as one line (database errors carry message; hint).
local function error_text(err)
  if type(err) == "table" and err.migrate_error then return err.migrate_error end
  return probe.mask(tostring(err))
end

local function plural(n, word)
  return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

-- The command that sets DATABASE_URL where it came from, with a note.
local function set_url(ctx, url, note)
  local source = probe.setting_source("DATABASE_URL")
  local how = source == "the environment" and ("export DATABASE_URL=" .. url) or ("edit .env: DATABASE_URL=" .. url)
  return note and (how .. "   (" .. note .. ")") or how
end

-- ---- 1. the app is not already running -------------------------------------------

function checks.port(ctx, report)
  if ctx.port == 0 then
    report.ok("PORT=0: make run serves on any free port")
    return
  end
  local who = probe.listener(ctx.port)
  if who == nil then
    report.ok(string.format("nothing listens on port %d yet (make run can serve on it)", ctx.port))
    return
  end
  local command = who.command or "a process this user cannot see"
  local alt = ctx.port == 8080 and 8081 or ctx.port + 1
  local program = (command:match("^(%S+)") or ""):match("([^/]+)$")
  if who.pid and program == "todohost" then
    report.fail(string.format("todohost is already running on port %d (pid %d: %s); stop it before migrating or copying, "
      .. "or serve elsewhere with PORT=%d make run", ctx.port, who.pid, command, alt), "kill " .. who.pid)
  elseif who.pid then
    report.fail(string.format("port %d is taken by pid %d (%s); stop it, or serve elsewhere with PORT=%d make run",
      ctx.port, who.pid, command, alt), "kill " .. who.pid)
  else
    report.fail(string.format("port %d is taken by a process of another user", ctx.port),
      string.format("PORT=%d make run", alt))
  end
end

-- ---- 2. which database, and does it answer ---------------------------------------

function checks.url(ctx, report)
  local source = probe.setting_source("DATABASE_URL")
  local shown = db.mask_url(ctx.url)
  local t = ctx.target
  if t.kind == "unknown" then
    report.fail(string.format("DATABASE_URL=%s (from %s) is not a database URL: it must start with "
      .. "sqlite:/// or postgresql://", shown, source),
      set_url(ctx, EXAMPLE_URL))
    return false
  elseif t.kind == "invalid" then
    report.fail(string.format("DATABASE_URL (from %s) cannot be read: %s", source, t.error),
      set_url(ctx, EXAMPLE_URL))
    return false
  end
  local what
  if t.kind == "sqlite" then
    what = t.path and ("the SQLite file " .. t.path) or "an in-memory SQLite database (gone when the program ends)"
  else
    what = string.format("PostgreSQL database %s on %s:%d as %s", t.dbname or "(the user's name)", t.host, t.port,
      t.user or "(the login user)")
  end
  report.ok(string.format("DATABASE_URL=%s (from %s): %s", shown, source, what))
  return true
end

-- The fix for a connection error, from its sqlstate and text.
local function connection_fix(ctx, err)
  local state = type(err) == "table" and err.sqlstate or ""
  local message = type(err) == "table" and tostring(err.message) or tostring(err)
  local t = ctx.target
  if state == "28P01" or message:find("password", 1, true) then
    return set_url(ctx, EXAMPLE_URL, "the user and password of make db-start")
  elseif state == "3D000" then
    return string.format("createdb -h %s -p %d -U %s %s", t.host, t.port, t.user or "todo_user", t.dbname or "todo_db")
  elseif message:find("translate host name", 1, true) or message:find("Name or service", 1, true) then
    return set_url(ctx, EXAMPLE_URL, "the host name is wrong: localhost for make db-start")
  elseif t.kind == "postgresql" and probe.is_local_host(t.host) then
    return DB_START
  end
  return set_url(ctx, EXAMPLE_URL, "or the URL of your server")
end

function checks.database(ctx, report)
  local t = ctx.target
  local url = ctx.url
  if t.kind == "sqlite" and t.path and not probe.file_exists(t.path) then
    report.fail(string.format("%s does not exist yet (make run creates, migrates and seeds it)", t.path), "make run")
    return false
  end
  local options = {}
  if t.kind == "sqlite" then
    options.readonly = true   -- never create the file or change its journal mode
  elseif not url:find("connect_timeout=", 1, true) then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. "connect_timeout=10"
  end
  local ok, conn = pcall(db.connect, url, options)
  if not ok then
    report.fail("the database does not answer: " .. error_text(conn), connection_fix(ctx, conn))
    return false
  end
  ctx.conn = conn
  local version_sql = t.kind == "sqlite" and "SELECT sqlite_version() AS v" or "SHOW server_version"
  local okv, row = pcall(conn.first, conn, version_sql)
  local version = okv and row and (row.v or row.server_version) or "?"
  report.ok(string.format("the database answers (%s %s)", t.kind == "sqlite" and "SQLite" or "PostgreSQL", version))
  return true
end

-- ---- 3. the development server: Docker or native ---------------------------------

function checks.server(ctx, report)
  local t = ctx.target
  local needed = t.kind == "postgresql" and probe.is_local_host(t.host)
  local note = needed and "" or (t.kind == "postgresql" and string.format(" (DATABASE_URL points at %s, not at it)", t.host)
    or " (not needed while DATABASE_URL is SQLite)")
  if probe.docker_answers() then
    local status = probe.docker_container_status("personal_todo_postgres")
    if status and status:match("^Up") then
      report.ok("Docker: container personal_todo_postgres is " .. status .. note)
    elseif needed then
      report.fail("Docker: container personal_todo_postgres is " .. (status or "not created yet"), DB_START)
    else
      report.info("Docker: container personal_todo_postgres is " .. (status or "not created") .. note)
    end
    return
  end
  local native = probe.native_state()
  local where = "no Docker engine; native PostgreSQL"
  if ctx.conn and needed and not native.running then
    -- it answers, so some server runs: not the one make db-start manages
    report.ok(string.format("%s of make db-start is not running, but a server answers on %s:%d",
      where, t.host, t.port))
  elseif not native.installed then
    if needed then
      report.fail(where .. " is not installed (make db-start installs and starts it)", DB_START)
    else
      report.info(where .. " is not installed" .. note)
    end
  elseif native.running then
    report.ok(string.format("%s is running on localhost:%d (data in %s)%s", where, native.port, native.data_dir, note))
  elseif needed then
    report.fail(string.format("%s is not running%s", where,
      native.has_data and string.format(" (data in %s)", native.data_dir) or " (no data folder yet)"), DB_START)
  else
    report.info(string.format("%s is not running%s", where, note))
  end
end

-- ---- 4. migrations: the database's revision vs the newest file ------------------

-- A context for migrator.version's readers, on an open connection.
local function version_context(conn)
  return { dialect = conn.kind, query = function(_, sql, ...) return conn:query(sql, ...) end }
end

function checks.migrations(ctx, report)
  local revisions = require "migrator.revisions"
  local version = require "migrator.version"
  local dir = revisions.default_dir()
  local shown_dir = settings.get("MIGRATIONS_DIR") or "migrations/"
  local okg, graph = pcall(revisions.load, dir)
  local okh, head = false, nil
  if okg then okh, head = pcall(graph.head, graph) end
  if not okg or not okh then
    report.fail("migrations: " .. error_text(okg and head or graph), "todohost run migrate.lua heads")
    return
  end
  if not ctx.conn then
    report.info(string.format("migrations: head is %s (%s); the database's revision is unknown until it answers",
      head, plural(#graph.list, "revision")))
    return
  end
  local vctx = version_context(ctx.conn)
  local okc, current = pcall(version.current, vctx)
  if not okc then
    report.fail("migrations: cannot read alembic_version: " .. error_text(current), MIGRATE)
    return
  end
  ctx.revision = current[1]
  if #current == 0 then
    report.fail(string.format("migrations: the database has no revision (never migrated); head is %s", head), MIGRATE)
    return
  end
  local text = table.concat(current, ", ")
  for _, id in ipairs(current) do
    if not graph.by_id[id] then
      report.fail(string.format("migrations: the database is at %s, which %s does not have (head is %s): "
        .. "it was migrated by another version of the project, or DATABASE_URL names the wrong database",
        id, shown_dir, head),
        "git pull   (to get the migration file for " .. id .. "; or point DATABASE_URL at this project's database)")
      return
    end
  end
  if #current == 1 and current[1] == head then
    report.ok(string.format("migrations: at head %s (%s in %s)", head, plural(#graph.list, "revision"), shown_dir))
  else
    local applied = graph:ancestors(current)
    local pending = 0
    for _ in pairs(graph:ancestors({ head })) do pending = pending + 1 end
    for _ in pairs(applied) do pending = pending - 1 end
    report.fail(string.format("migrations: the database is at %s, head is %s (%s to apply)", text, head,
      plural(math.max(pending, 0), "revision")), MIGRATE)
  end
  -- files edited after they were applied (todohost's checksum side table)
  local okr, recorded = pcall(version.checksums, vctx)
  if okr then
    for _, id in ipairs(graph:topological(graph:ancestors(current))) do
      if recorded[id] and not graph:checksum_matches(id, recorded[id]) then
        report.warn(string.format("%s was edited after it was applied here: the database has the old version's "
          .. "schema", graph:get(id).path), "put the change in a new revision: todohost run migrate.lua revision -m \"...\"")
      end
    end
  end
end

-- ---- 5. row counts -------------------------------------------------------------------

-- {total, deleted} for the todos table of conn, or nil when it has none.
local function todo_counts(conn)
  local ok, row = pcall(conn.first, conn, "SELECT count(*) AS total, count(deleted_at) AS deleted FROM todos")
  if ok then return row end
  ok, row = pcall(conn.first, conn, "SELECT count(*) AS total FROM todos")
  if ok then row.deleted = 0; return row end
  return nil
end

-- The todos of the SQLite file `make copy` reads, or nil when it cannot tell.
local function sqlite_todos(path)
  if not probe.file_exists(path) then return nil end
  local ok, conn = pcall(db.connect, "sqlite:///" .. path, { readonly = true })
  if not ok then return nil end
  local counts = todo_counts(conn)
  conn:close()
  return counts
end
checks.sqlite_todos = sqlite_todos

function checks.rows(ctx, report)
  if not ctx.conn then return end
  local counts = todo_counts(ctx.conn)
  if not counts then
    if ctx.revision == nil then return end   -- reported by migrations already
    report.fail("rows: the database has no todos table although it has a revision", MIGRATE)
    return
  end
  local text = string.format("rows: todos has %s%s", plural(counts.total, "row"),
    counts.deleted > 0 and string.format(" (%d soft-deleted)", counts.deleted) or "")
  local t = ctx.target
  local source = t.kind == "postgresql" and sqlite_todos(ctx.sqlite_file) or nil
  if source and source.total > 0 and counts.total == 0 then
    report.fail(string.format("%s but %s has %s: the SQLite data was not copied yet", text, ctx.sqlite_file,
      plural(source.total, "todo")), "make copy")
  elseif source then
    report.ok(string.format("%s (%s has %d)", text, ctx.sqlite_file, source.total))
  else
    report.ok(text)
  end
end

-- ---- settings: every one todohost reads, as it read them -------------------------

-- One line for the settings not at their default (DATABASE_URL has its own),
-- and a failure for each value todohost cannot read.
function checks.settings(ctx, report)
  local changed = {}
  for _, entry in ipairs(settings.all()) do
    if entry.error then
      report.fail(entry.error, entry.source == ".env" and ("edit .env: fix or remove " .. entry.name)
        or ("unset " .. entry.name .. "   (or set it to a valid value)"))
    elseif entry.source ~= "default" and entry.name ~= "DATABASE_URL" then
      local shown = entry.name == "API_TOKEN" and "***" or util.text_safe(tostring(entry.value))
      changed[#changed + 1] = string.format("%s=%s (%s)", entry.name, shown, entry.source)
    end
  end
  if #changed > 0 then report.info("settings: " .. table.concat(changed, ", ")) end
end

-- ---- 6. .env exists and git ignores it ------------------------------------------------

function checks.dotenv(ctx, report)
  local path = ctx.cwd .. "/.env"
  if not probe.file_exists(path) then
    if probe.setting_source("DATABASE_URL") == "the environment" then
      report.info("no .env (DATABASE_URL comes from the environment)")
    else
      report.info("no .env: DATABASE_URL is the default, SQLite (for PostgreSQL: make env, or cp .env.example .env)")
    end
    return
  end
  local status = probe.git_status_of(".env")
  if status == "ignored" then
    report.ok(".env exists and git ignores it")
  elseif status == "tracked" then
    report.fail(".env is tracked by git (committed or staged): its password would be shared", "git rm --cached .env")
  elseif status == "not ignored" then
    report.fail(".env exists but git does not ignore it (it holds a password)", "echo .env >> .gitignore")
  else
    report.ok(".env exists (not a git checkout: nothing to ignore it from)")
  end
end

-- ---- 7. database.db, the SQLite original, is still there ------------------------------

function checks.sqlite_file(ctx, report)
  local path = ctx.sqlite_file
  local t = ctx.target
  local active = t.kind == "sqlite" and t.path and t.path:gsub("^%./", "") == path:gsub("^%./", "")
  if not probe.file_exists(path) then
    if not active then
      report.info(string.format("%s is not here: there is no SQLite data to copy (make copy needs it)", path))
    end
    return
  end
  if active then
    report.ok(string.format("%s is the database in use (DATABASE_URL)", path))
    return
  end
  local counts = sqlite_todos(path)
  report.ok(string.format("%s is still there%s: the SQLite data, kept as it was", path,
    counts and string.format(" (%s)", plural(counts.total, "todo")) or ""))
end

checks.ORDER = { "port", "url", "database", "server", "migrations", "rows", "settings", "dotenv", "sqlite_file" }

return checks
