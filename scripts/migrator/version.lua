-- migrator/version.lua: the database's record of applied revisions.
--
-- alembic_version is Alembic's own table, created and updated with the very
-- statements Alembic issues, so that either tool can take over a database.
-- todohost_migration_checksums is todohost's side table: the SHA-256 of each
-- revision file when it was applied, to notice edited migrations. On
-- PostgreSQL a session advisory lock serialises concurrent migrators.

local version = {}

version.TABLE = "alembic_version"
version.CHECKSUMS = "todohost_migration_checksums"
-- pg_advisory_lock key: the bytes of "todohost" as a 64-bit integer.
version.LOCK_KEY = 0x746f646f686f7374

-- The set of those of names that are tables of the database (of the
-- current schema on PostgreSQL), in one query.
local function tables_present(ctx, names)
  local marks = {}
  for i = 1, #names do marks[i] = "$" .. i end
  local sql
  if ctx.dialect == "postgresql" then
    sql = "SELECT c.relname AS name FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p') "
      .. "AND c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema()) "
      .. "AND c.relname IN (" .. table.concat(marks, ", ") .. ")"
  else
    sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (" .. table.concat(marks, ", ") .. ")"
  end
  local present = {}
  for _, row in ipairs(ctx:query(sql, table.unpack(names))) do present[row.name] = true end
  return present
end

-- True when the table exists (in the current schema on PostgreSQL). A
-- table seen once is remembered in ctx.known_tables: migrators hold the
-- migration lock, and nothing but a migration drops these tables.
function version.has_table(ctx, name)
  ctx.known_tables = ctx.known_tables or {}
  if ctx.known_tables[name] ~= nil then return ctx.known_tables[name] end
  local found = tables_present(ctx, { name })[name] == true
  -- Under PostgreSQL's migration lock an absent table stays absent until
  -- this migrator creates it, so that answer can be kept too.
  if found or ctx.locked then ctx.known_tables[name] = found end
  return found
end

-- The revision ids in alembic_version (empty at base or without the table).
function version.current(ctx)
  if not version.has_table(ctx, version.TABLE) then return {} end
  local ids = {}
  for _, row in ipairs(ctx:query("SELECT version_num FROM alembic_version")) do
    ids[#ids + 1] = row.version_num
  end
  table.sort(ids)
  return ids
end

-- Where a reader finds the database, in two queries whatever it holds:
-- { ids = version.current's ids, checksums = version.checksums' map }.
-- One query finds which of the two tables exist (remembered as has_table
-- does), one reads those that do.
function version.state(ctx)
  local present = tables_present(ctx, { version.TABLE, version.CHECKSUMS })
  ctx.known_tables = ctx.known_tables or {}
  for name in pairs(present) do ctx.known_tables[name] = true end
  local reads = {}
  if present[version.TABLE] then
    reads[#reads + 1] = "SELECT 'version' AS kind, version_num AS revision, NULL AS checksum FROM alembic_version"
  end
  if present[version.CHECKSUMS] then
    reads[#reads + 1] = "SELECT 'checksum' AS kind, revision, checksum FROM todohost_migration_checksums"
  end
  local state = { ids = {}, checksums = {} }
  if #reads == 0 then return state end
  for _, row in ipairs(ctx:query(table.concat(reads, " UNION ALL "))) do
    if row.kind == "version" then
      state.ids[#state.ids + 1] = row.revision
    else
      state.checksums[row.revision] = row.checksum
    end
  end
  table.sort(state.ids)
  return state
end

-- Creates alembic_version as Alembic does, when it is missing (offline:
-- always, as Alembic's --sql output does).
function version.ensure_table(ctx)
  if not ctx.offline and version.has_table(ctx, version.TABLE) then return end
  ctx:exec("CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\t"
    .. "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n)")
  if ctx.known_tables then ctx.known_tables[version.TABLE] = true end
end

-- Drops alembic_version (a downgrade to base in --sql mode, as Alembic's
-- output ends).
function version.drop_table(ctx)
  ctx:exec("DROP TABLE alembic_version")
  if ctx.known_tables then ctx.known_tables[version.TABLE] = nil end
end

-- Forgets remembered tables (after a rolled-back transaction).
function version.forget(ctx)
  ctx.known_tables = nil
end

-- Alembic's version-table statements for one step: removed ids leave the
-- table, added ids enter it (an UPDATE when one replaces another).
-- Online, an UPDATE/DELETE that matches no row means another migrator moved
-- the database meanwhile: raise so that the transaction rolls back.
function version.step(ctx, removed, added)
  local function expect_one(n, sql)
    if not ctx.offline and n ~= 1 then
      error({ migrate_error = ("the version table changed while migrating (expected one row for: %s); "
        .. "is another migrator running? run the command again"):format(sql) }, 0)
    end
  end
  local r, a = { table.unpack(removed) }, { table.unpack(added) }
  while #r > 0 and #a > 0 do
    local from, to = table.remove(r, 1), table.remove(a, 1)
    local sql = "UPDATE alembic_version SET version_num=$1 WHERE alembic_version.version_num = $2"
    expect_one(ctx:exec(sql, to, from), sql)
  end
  for _, id in ipairs(r) do
    local sql = "DELETE FROM alembic_version WHERE alembic_version.version_num = $1"
    expect_one(ctx:exec(sql, id), sql)
  end
  for _, id in ipairs(a) do
    ctx:exec("INSERT INTO alembic_version (version_num) VALUES ($1)", id)
  end
end


-- ---- readers on a plain connection ---------------------------------------------
-- (for the server, /health and the copy, which hold a todohost.db connection
-- and no migration context)

-- The revision the database is at: the first row of alembic_version, nil
-- when the table is empty. Raises the database's error when the table does
-- not exist. conn: anything with :first (a connection, a request's db).
function version.revision(conn)
  local row = conn:first("SELECT version_num FROM alembic_version")
  return row and row.version_num
end

-- As version.revision, but nil when the database was never migrated (no
-- alembic_version table); other errors are re-raised.
function version.revision_if_migrated(conn)
  local ok, id = pcall(version.revision, conn)
  if ok then return id end
  if type(id) == "table" and (id.sqlstate == "42P01" or tostring(id.message):find("no such table")) then
    return nil
  end
  error(id, 0)
end

-- Every id in alembic_version, sorted; nil when the table does not exist
-- (on PostgreSQL: is not visible on the search_path).
function version.ids(conn)
  local present
  if conn.kind == "sqlite" then
    present = conn:first("SELECT 1 AS yes FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
  else
    present = conn:first("SELECT 1 AS yes WHERE to_regclass('alembic_version') IS NOT NULL")
  end
  if not present then return nil end
  local ids = {}
  for _, row in ipairs(conn:query("SELECT version_num FROM alembic_version ORDER BY version_num")) do
    ids[#ids + 1] = row.version_num
  end
  return ids
end

-- ---- checksums ---------------------------------------------------------------

-- revision -> checksum, from the side table ({} when it does not exist).
function version.checksums(ctx)
  local map = {}
  if not version.has_table(ctx, version.CHECKSUMS) then return map end
  for _, row in ipairs(ctx:query("SELECT revision, checksum FROM todohost_migration_checksums")) do
    map[row.revision] = row.checksum
  end
  return map
end

local function ensure_checksum_table(ctx)
  if version.has_table(ctx, version.CHECKSUMS) then return end
  ctx:exec("CREATE TABLE todohost_migration_checksums (\n\trevision VARCHAR(32) NOT NULL, \n\t"
    .. "checksum VARCHAR(64) NOT NULL, \n\t"
    .. "CONSTRAINT todohost_migration_checksums_pkc PRIMARY KEY (revision)\n)")
  ctx.known_tables[version.CHECKSUMS] = true
end

-- Records (checksum given) or forgets (nil) the checksum of revision id.
-- Not part of --sql output: the side table is todohost's, not Alembic's.
function version.set_checksum(ctx, id, checksum)
  if ctx.offline then return end
  if checksum == nil and not version.has_table(ctx, version.CHECKSUMS) then return end
  ensure_checksum_table(ctx)
  if checksum then
    ctx:exec("INSERT INTO todohost_migration_checksums (revision, checksum) VALUES ($1, $2) "
      .. "ON CONFLICT (revision) DO UPDATE SET checksum = excluded.checksum", id, checksum)
  else
    ctx:exec("DELETE FROM todohost_migration_checksums WHERE revision = $1", id)
  end
end

-- The checksum a transactional = false revision holds while it runs:
-- "started:upgrade" or "started:downgrade" (never a SHA-256), replaced when
-- it is recorded as done, left behind when it fails half-way.
version.STARTED = "started:"

-- The revisions whose transactional = false run started and did not
-- finish: { {id =, direction =}... }, sorted by id ({} when none), from
-- recorded (a map read already, as version.checksums returns it) or the
-- database.
function version.unfinished(ctx, recorded)
  local out = {}
  for id, sum in pairs(recorded or version.checksums(ctx)) do
    local direction = sum:match("^started:(%a+)$")
    if direction then out[#out + 1] = { id = id, direction = direction } end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

-- ---- locking -------------------------------------------------------------------

-- Waits for the migration lock (PostgreSQL; SQLite serialises writers with
-- BEGIN IMMEDIATE and the version re-check inside each transaction).
function version.lock(conn)
  if conn.kind == "postgresql" then
    conn:exec("SELECT pg_advisory_lock($1)", version.LOCK_KEY)
  end
end

-- (No unlock: the session lock ends with the connection, which the
-- migrator closes as soon as it is done.)

return version
