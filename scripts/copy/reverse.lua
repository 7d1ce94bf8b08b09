-- copy/reverse.lua: PostgreSQL -> SQLite, the snapshot: copy.lua's other
-- direction (`copy.lua --from postgresql://... --to sqlite:///snapshot.db`).
--
-- The steps:
--   1. read the source in one snapshot (REPEATABLE READ, read-only): its
--      revision (it must be migrated), its tables, their columns and types
--      (every type one the copy converts), their row counts;
--   2. an existing target is refused without --replace; with it, it is
--      locked exclusively (copy.lock_target: refused while another process
--      has it open), and stays locked until it is replaced;
--   3. the snapshot is built in a temporary file beside the target,
--      .NAME.tmp-PID (a dot file that no one takes for a database): the
--      migrations run there up to the source's revision (migrator.engine),
--      then, in one SQLite transaction, every table is emptied and filled
--      (todohost.copy.reverse: binary COPY TO STDOUT, one prepared INSERT per row);
--   4. each table is verified: rows and checksum of what the server sent
--      against those of what the snapshot holds (copy.sqlite_checksum, the
--      same scheme both ways), and the foreign keys are checked;
--   5. only then is the file fsynced and renamed over the target, whose
--      -wal and -shm are removed first (copy.install).
-- A failure removes the temporary file; kill -9 leaves it behind under its
-- dot name, and the old target (or no file) as it was.

local db = require "todohost.db"
local copy = require "todohost.copy"
local engine = require "migrator.engine"
local log = require "migrator.log"
local settings = require "todohost.settings"
local version = require "migrator.version"

local M = {}

-- The process id (Linux: /proc/self is the reader), for the temporary name.
local function own_pid()
  local f = io.open("/proc/self/stat", "r")
  local pid = f and f:read("n")
  if f then f:close() end
  return pid or math.random(1, 1e9)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- path's temporary sibling: same directory, .NAME.tmp-PID.
local function temporary_path(path)
  local dir, name = path:match("^(.*/)([^/]*)$")
  return (dir or "") .. "." .. (name or path) .. ".tmp-" .. own_pid()
end

local function remove_file_and_sides(path)
  for _, suffix in ipairs({ "", "-wal", "-shm", "-journal" }) do os.remove(path .. suffix) end
end

-- ---- 1. the source ------------------------------------------------------------

local TABLES_SQL = [[
  SELECT tablename AS name FROM pg_catalog.pg_tables
   WHERE schemaname = current_schema() ORDER BY tablename]]

local PRIMARY_KEY_SQL = [[
  SELECT a.attname AS name FROM pg_index x
    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey)
   WHERE x.indrelid = to_regclass(quote_ident($1)) AND x.indisprimary]]

local function source_revision(src, ui)
  local ids = version.ids(src)
  if not ids or #ids == 0 then
    ui.fail("the source is not migrated (no revision in alembic_version): run `make migrate` against it first")
  end
  if #ids > 1 then
    ui.fail(("the source is at several revisions (%s): merge them with a migration first"):format(table.concat(ids, ", ")))
  end
  return ids[1]
end

local function source_tables(src, wanted, ui)
  local names, present = {}, {}
  for _, row in ipairs(src:query(TABLES_SQL)) do
    if not ui.NOT_COPIED[row.name] then
      names[#names + 1] = row.name
      present[row.name] = true
    end
  end
  return ui.pick_tables(names, present, wanted)
end

-- What to copy for one table: every source column (each of a type the copy
-- converts), the primary key naming a row in errors, the row count.
local function plan_table(src, name, ui)
  local t = { name = name, columns = {}, sequences = {}, index_seconds = 0 }
  local unknown = {}
  for _, col in ipairs(copy.describe(src, name)) do
    t.columns[#t.columns + 1] = col.name
    if not col.supported then unknown[#unknown + 1] = col.name .. " (" .. col.type .. ")" end
  end
  if #unknown > 0 then
    ui.fail(("table %s: the copy cannot convert column(s) %s yet; leave the table out with --tables")
      :format(name, table.concat(unknown, ", ")))
  end
  local pk = src:query(PRIMARY_KEY_SQL, name)
  if #pk == 1 then t.id_column = pk[1].name end
  t.source_rows = src:first(("SELECT count(*) AS n FROM %s"):format(ui.quote(name))).n
  return t
end

-- ---- 3. the snapshot ------------------------------------------------------------

-- The snapshot's tables must have the source's columns: the migrations
-- made both, so a difference means one of them was changed by hand.
local function check_snapshot_schema(dst, t, ui)
  local have = {}
  for _, row in ipairs(dst:query("SELECT name FROM pragma_table_info($1)", t.name)) do have[row.name] = true end
  if not next(have) then
    ui.fail(("table %s is in the source but the migrations do not create it: leave it out with --tables"):format(t.name))
  end
  local missing = {}
  for _, col in ipairs(t.columns) do
    if not have[col] then missing[#missing + 1] = col end
    have[col] = nil
  end
  local extra = {}
  for col in pairs(have) do extra[#extra + 1] = col end
  if #missing + #extra > 0 then
    table.sort(extra)
    ui.fail(("table %s differs from what the migrations create (source only: %s; migrations only: %s): was one changed by hand?")
      :format(t.name, #missing > 0 and table.concat(missing, ", ") or "-", #extra > 0 and table.concat(extra, ", ") or "-"))
  end
end

local function verify(src, dst, t, ui)
  t.target = copy.sqlite_checksum(dst, src, t.name, t.columns)
  t.verified = t.load.rows == t.source_rows and t.target.rows == t.source_rows
    and t.target.checksum == t.load.checksum
  if not t.verified then
    ui.fail(("table %s did not verify: source %s rows, checksum %s; snapshot %s rows, checksum %s; nothing was replaced")
      :format(t.name, ui.thousands(t.source_rows), t.load.checksum, ui.thousands(t.target.rows), t.target.checksum))
  end
end

-- Builds, fills and verifies the snapshot at tmp (a fresh file).
local function build(src, tables, revision, tmp, ui)
  local url = "sqlite:///" .. tmp
  local dir = settings.get("MIGRATIONS_DIR") or require("todohost.paths").in_project("migrations")
  log.quiet = true
  local ok, err = pcall(engine.upgrade, { url = url, dir = dir }, revision)
  log.quiet = false
  if not ok then
    local why = type(err) == "table" and err.migrate_error or tostring(err)
    ui.fail(("cannot build the snapshot at the source's revision %s with the migrations in %s: %s")
      :format(revision, dir, why))
  end
  local dst <close> = db.connect(url)
  for _, t in ipairs(tables) do check_snapshot_schema(dst, t, ui) end
  dst:exec("PRAGMA foreign_keys = OFF")  -- rows come table by table; checked below
  -- a temporary file, thrown away on failure: no WAL to write everything
  -- twice, no fsync but copy.install's, once
  dst:first("PRAGMA journal_mode = MEMORY")
  dst:exec("PRAGMA synchronous = OFF")
  dst:transaction(function()
    for _, t in ipairs(tables) do
      dst:exec("DELETE FROM " .. ui.quote(t.name))  -- whatever a migration put there
      t.load = copy.reverse(src, dst, {
        table = t.name, columns = t.columns, id_column = t.id_column,
        on_progress = ui.progress_printer(t), progress_every = 16384,
      })
    end
    for _, t in ipairs(tables) do verify(src, dst, t, ui) end
    local broken = dst:first("SELECT \"table\" AS t, parent AS p FROM pragma_foreign_key_check LIMIT 1")
    if broken then
      ui.fail(("table %s has rows whose %s row is missing in the snapshot: copy both tables (--tables)")
        :format(broken.t, broken.p))
    end
  end)
  dst:first("PRAGMA journal_mode = DELETE")  -- one self-contained file (the app turns WAL on again)
end

-- ---- main ----------------------------------------------------------------------------

function M.run(opts, ui)
  local started = copy.now()
  local target = assert(db.parse_url(opts.to))
  local path = target.path
  if not path or path == "" or path == ":memory:" or target.uri then
    ui.fail("--to must name a SQLite file: sqlite:///path/to/snapshot.db")
  end
  local src <close> = db.connect(opts.from)
  src:exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  -- one snapshot for everything
  local revision = source_revision(src, ui)
  local tables = {}
  for _, name in ipairs(source_tables(src, opts.tables, ui)) do tables[#tables + 1] = plan_table(src, name, ui) end
  if #tables == 0 then ui.fail("the source has no tables to copy") end

  local lock
  if exists(path) then
    if not opts.replace then
      ui.fail(("the target %s already exists: pass --replace to replace it (it stays as it is until the new snapshot is complete and verified)")
        :format(path))
    end
    lock = copy.lock_target(path)
  end
  local tmp = temporary_path(path)
  ui.put(("copy: %s -> %s (a new file, built in %s), revision %s"):format(src.url, target.url, tmp, revision))
  for _, t in ipairs(tables) do
    ui.put(("  %-20s %11s rows  %2d columns"):format(t.name, ui.thousands(t.source_rows), #t.columns))
  end
  io.stdout:flush()

  remove_file_and_sides(tmp)
  local ok, err = pcall(function()
    build(src, tables, revision, tmp, ui)
    copy.install(tmp, path)
  end)
  if lock then lock:close() end
  if not ok then
    remove_file_and_sides(tmp)
    error(err, 0)
  end
  src:exec("ROLLBACK")
  ui.print_summary(tables, copy.now() - started)
  print(("copy: the snapshot is %s"):format(path))
end

return M
