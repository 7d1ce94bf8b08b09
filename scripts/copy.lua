-- copy.lua: moves every row of every migrated table from the SQLite file into
-- PostgreSQL, proves nothing was lost, and commits only then. With --from
-- postgresql://... --to sqlite:///FILE it goes the other way: a verified
-- snapshot of PostgreSQL in a new SQLite file (copy/reverse.lua).
--
--   todohost run copy.lua [--from URL] [--to URL] [--tables a,b] [--replace]
--                         [--check | --dry-run] [--keep-indexes]
--
-- The steps, in the order a careful person would do them by hand:
--   1. open the source read-only and read it in one snapshot (BEGIN);
--   2. check: both databases at the same migration revision, every source
--      table and column present in the target with a type the copy converts,
--      the target tables empty (or --replace);
--   3. in ONE target transaction: lock and empty the tables, drop their
--      indexes, COPY each table (parents before children), rebuild the
--      indexes, move sequences past the highest id, and verify each table
--      (row count and checksum, computed on both sides);
--   4. COMMIT only when every table verified, then print the summary.
-- --check (and --dry-run, which also prints the plan) does 1 and 2, then
-- reads every row and runs every value through the copy's own conversion
-- (copy.check), writing nothing, and reports every value the copy would
-- refuse; it exits 1 when there is one.
-- A failure anywhere (a value that cannot be converted, a lost connection,
-- kill -9) leaves the target exactly as it was. The bulk transfer is C
-- (todohost.copy); everything else is here, to read and to change.

local db = require "todohost.db"
local copy = require "todohost.copy"
local settings = require "todohost.settings"
local util = require "todohost.util"
local version = require "migrator.version"

-- Tables that belong to the migration machinery: never copied.
local NOT_COPIED = { alembic_version = true, todohost_migration_checksums = true }

local USAGE = [[
usage: todohost run copy.lua [--from URL] [--to URL] [--tables a,b] [--replace] [--check | --dry-run]
  --from URL       the SQLite database to read, never modified (default ]] .. settings.default("DATABASE_URL") .. [[)
  --to URL         the PostgreSQL database to fill (default DATABASE_URL)
                   (--to sqlite:///FILE [--from postgresql://..., default DATABASE_URL]: a snapshot of
                   PostgreSQL in a new SQLite file, verified, then renamed over FILE; --replace to
                   replace an existing FILE; `make snapshot` names it localdev/snapshot-DATE-TIME.db)
  --tables a,b     copy only these tables (default: every table of the source)
  --replace        empty target tables that already hold rows, inside the copy's transaction
  --check          read every value and report each one the copy would refuse; write nothing
  --dry-run        --check, and print the plan
  --keep-indexes   keep the target's indexes during the load (slower; for debugging)]]

-- ---- small helpers --------------------------------------------------------

local function fail(message) error("copy: " .. message, 0) end

local function quote(name) return '"' .. name:gsub('"', '""') .. '"' end

local function quoted_list(names)
  local out = {}
  for i, name in ipairs(names) do out[i] = quote(name) end
  return table.concat(out, ", ")
end

local function thousands(n)
  local s = tostring(math.floor(n))
  repeat
    local k
    s, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until k == 0
  return s
end

local function human_bytes(n)
  if n >= 1024 * 1024 then return ("%.1f MiB"):format(n / (1024 * 1024)) end
  if n >= 1024 then return ("%.1f KiB"):format(n / 1024) end
  return ("%d B"):format(n)
end

local function say(...) io.stderr:write(...) end

-- Text from the databases (table and column names above all: a SQLite file
-- can name a table with escape sequences, newlines, bidi overrides) made
-- safe to print on one line of a terminal or a log (util.text_safe: control
-- characters, bidi controls and invalid UTF-8 as \xNN; a backslash stays, so
-- the engine's own escapes in its messages, such as \x00, read as they are).
local function shown(text) return util.text_safe(tostring(text), true) end

-- print() for lines that hold names from the databases.
local function put(line) print(shown(line)) end

-- ---- 0. arguments ------------------------------------------------------------

local function parse_args(argv)
  -- from: the SQLite database the app used until now, DATABASE_URL's default
  local opts = { from = settings.default("DATABASE_URL"), to = settings.get("DATABASE_URL") }
  local function bad_usage(message)
    io.stderr:write("copy: ", message, " (usage: todohost run copy.lua --help)\n")
    os.exit(2)
  end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if name == "from" or name == "to" or name == "tables" then
      if value == nil then i = i + 1; value = argv[i] end
      if value == nil or value == "" then bad_usage("--" .. name .. " needs a value") end
      opts[name] = value
      opts[name .. "_given"] = true
    elseif (name == "replace" or name == "check" or name == "dry-run" or name == "keep-indexes") and value == nil then
      opts[name:gsub("-", "_")] = true
    elseif name == "help" or a == "-h" then
      print(USAGE)
      os.exit(0)
    else
      bad_usage("unknown argument '" .. a .. "'")
    end
    i = i + 1
  end
  if opts.tables then
    local list = {}
    for name in opts.tables:gmatch("[^,]+") do
      name = name:match("^%s*(.-)%s*$")
      if name == "" then bad_usage("--tables: empty table name") end
      if NOT_COPIED[name] then bad_usage("--tables: " .. name .. " is never copied") end
      list[#list + 1] = name
    end
    if #list == 0 then bad_usage("--tables needs at least one table name") end
    opts.tables = list
  end
  if not opts.to or opts.to == "" then
    bad_usage("no target: pass --to postgresql://... or set DATABASE_URL (environment or .env)")
  end
  local target = db.parse_url(opts.to)
  if target and target.kind == "sqlite" and not opts.from_given then
    opts.from = settings.get("DATABASE_URL")  -- --to sqlite:///FILE alone: a snapshot of DATABASE_URL
  end
  local source = db.parse_url(opts.from)
  opts.reverse = source and source.kind == "postgresql" and target and target.kind == "sqlite"
  if opts.reverse and (opts.check or opts.dry_run or opts.keep_indexes) then
    bad_usage("--check, --dry-run and --keep-indexes are for SQLite -> PostgreSQL only")
  end
  if target and target.kind == "sqlite" and source and source.kind == "sqlite" then
    bad_usage(("a SQLite snapshot is made from PostgreSQL, not from %s: pass --from postgresql://... or set DATABASE_URL to it")
      :format(source.url))
  end
  if target and target.kind == "sqlite" and not opts.reverse then  -- refused before connecting, which would create the file
    bad_usage(("the target must be PostgreSQL, not %s: pass --to postgresql://... or set DATABASE_URL")
      :format(target.url))
  end
  return opts
end

-- ---- 2. checks -----------------------------------------------------------------

local function revision_of(conn, side)
  local versions = version.ids(conn)
  if not versions then
    fail(("the %s has no alembic_version table: run `make migrate` against it first"):format(side))
  end
  return #versions > 0 and table.concat(versions, ",") or "(no revision)"
end

local function check_revisions(src, dst)
  local from, to = revision_of(src, "source"), revision_of(dst, "target")
  if from ~= to then
    fail(("source is at %s, target at %s: run `make migrate` against the target"):format(from, to))
  end
  return from
end

-- wanted (--tables), each checked to be among the source's names (present:
-- name -> true), or every name when wanted is nil.
local function pick_tables(names, present, wanted)
  if not wanted then return names end
  for _, name in ipairs(wanted) do
    if not present[name] then
      fail(("table %s is not in the source (it has: %s)"):format(name, table.concat(names, ", ")))
    end
  end
  return wanted
end

local function source_table_names(src, wanted)
  local names, present = {}, {}
  local sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
  for _, row in ipairs(src:query(sql)) do
    if not NOT_COPIED[row.name] then
      names[#names + 1] = row.name
      present[row.name] = true
    end
  end
  return pick_tables(names, present, wanted)
end

-- What to copy for one table: its source columns (all of them, in order),
-- the column naming a row in errors, the target's types, the source rows.
local function plan_table(src, dst, name)
  local t = { name = name, columns = {}, source_rows = 0 }
  local pks = {}
  for _, row in ipairs(src:query("SELECT name, pk FROM pragma_table_info($1) ORDER BY cid", name)) do
    t.columns[#t.columns + 1] = row.name
    if row.pk > 0 then pks[#pks + 1] = row.name end
  end
  if #pks == 1 then t.id_column = pks[1] end

  local ok, described = pcall(copy.describe, dst, name)
  if not ok then
    fail(("table %s is in the source but not in the target: run `make migrate` against the target"):format(name))
  end
  local target = {}
  for _, col in ipairs(described) do target[col.name] = col end
  local missing, unsupported = {}, {}
  for _, col in ipairs(t.columns) do
    if not target[col] then missing[#missing + 1] = col
    elseif not target[col].supported then unsupported[#unsupported + 1] = col .. " " .. target[col].type end
  end
  if #missing > 0 then
    fail(("table %s: column(s) %s are in the source but not in the target: run `make migrate` against the target")
      :format(name, table.concat(missing, ", ")))
  end
  if #unsupported > 0 then
    fail(("table %s: the copy cannot convert into column(s) %s yet; leave the table out with --tables")
      :format(name, table.concat(unsupported, ", ")))
  end
  t.source_rows = src:first(("SELECT count(*) AS n FROM %s"):format(quote(name))).n
  t.target_has_rows = dst:first(("SELECT EXISTS (SELECT 1 FROM %s) AS busy"):format(quote(name))).busy
  return t
end

local function check_empty(tables, replace)
  if replace then return end
  for _, t in ipairs(tables) do
    if t.target_has_rows then
      fail(("target table %s already has rows: pass --replace to empty it inside the copy's transaction, or copy into a fresh database")
        :format(t.name))
    end
  end
end

-- Parents before children, by the target's foreign keys (stable by name).
local FOREIGN_KEYS_SQL = [[
  SELECT c.relname AS child, p.relname AS parent
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_class p ON p.oid = k.confrelid
   WHERE k.contype = 'f' AND pg_table_is_visible(c.oid) AND c.oid <> p.oid]]

-- Also notes the tables that a table left out of the copy refers to: those
-- cannot be truncated (see lock_and_empty).
local function in_foreign_key_order(dst, tables)
  local by_name, parents = {}, {}
  for _, t in ipairs(tables) do by_name[t.name], parents[t.name] = t, {} end
  for _, fk in ipairs(dst:query(FOREIGN_KEYS_SQL)) do
    if by_name[fk.child] and by_name[fk.parent] then parents[fk.child][fk.parent] = true
    elseif by_name[fk.parent] then by_name[fk.parent].referenced_by = fk.child end
  end
  local ordered, placed = {}, {}
  while #ordered < #tables do
    local progressed = false
    for _, t in ipairs(tables) do
      if not placed[t.name] then
        local ready = true
        for parent in pairs(parents[t.name]) do ready = ready and placed[parent] ~= nil end
        if ready then
          ordered[#ordered + 1], placed[t.name], progressed = t, true, true
        end
      end
    end
    if not progressed then  -- a cycle: keep the remaining ones in name order
      for _, t in ipairs(tables) do
        if not placed[t.name] then ordered[#ordered + 1], placed[t.name] = t, true end
      end
    end
  end
  return ordered
end

-- ---- 3. the transfer, inside the target transaction ------------------------

-- Locks the tables (nobody writes while we copy), re-checks emptiness under
-- the lock, and truncates them, which also lets COPY use FREEZE. A table
-- that a table outside the copy refers to cannot be truncated: it is loaded
-- without FREEZE when empty, and refused with --replace (emptying it could
-- cascade into the other table).
local function lock_and_empty(dst, tables, replace)
  local names = {}
  for i, t in ipairs(tables) do names[i] = t.name end
  dst:exec("SET LOCAL lock_timeout = '10s'")
  local ok, err = pcall(dst.exec, dst, "LOCK TABLE " .. quoted_list(names) .. " IN ACCESS EXCLUSIVE MODE")
  if not ok then
    if type(err) == "table" and err.sqlstate == "55P03" then
      fail("the target tables are in use (is the app running against the target?): stop it and run the copy again")
    end
    error(err, 0)
  end
  if not replace then
    for _, t in ipairs(tables) do
      if dst:first(("SELECT EXISTS (SELECT 1 FROM %s) AS busy"):format(quote(t.name))).busy then
        fail(("target table %s received rows while the copy was starting: pass --replace or stop the writer")
          :format(t.name))
      end
    end
  end
  local truncate = {}
  for _, t in ipairs(tables) do
    if t.referenced_by and replace then
      fail(("table %s is referenced by table %s, which is not being copied: add it to --tables, or empty both yourself")
        :format(t.name, t.referenced_by))
    end
    t.freeze = not t.referenced_by
    if t.freeze then truncate[#truncate + 1] = t.name end
  end
  if #truncate > 0 then dst:exec("TRUNCATE " .. quoted_list(truncate)) end
end

-- The table's indexes that can be dropped during the load and rebuilt after
-- it (building an index once is much cheaper than updating it per row).
-- Kept in place: indexes a foreign key relies on, the replica identity,
-- the clustered index and commented ones.
local INDEXES_SQL = [[
  SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS indexdef,
         k.conname AS constraint_name, pg_get_constraintdef(k.oid) AS constraint_def
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    LEFT JOIN pg_constraint k
      ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u', 'x')
   WHERE x.indrelid = to_regclass(quote_ident($1))
     AND NOT x.indisreplident AND NOT x.indisclustered
     AND obj_description(x.indexrelid, 'pg_class') IS NULL
     AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = x.indexrelid)
   ORDER BY i.relname]]

local function drop_indexes(dst, t)
  local indexes = dst:query(INDEXES_SQL, t.name)
  for _, ix in ipairs(indexes) do
    if ix.constraint_name then
      dst:exec(("ALTER TABLE %s DROP CONSTRAINT %s"):format(quote(t.name), quote(ix.constraint_name)))
    else
      dst:exec("DROP INDEX " .. quote(ix.name))
    end
  end
  return indexes
end

local function rebuild_indexes(dst, t, indexes)
  for _, ix in ipairs(indexes) do
    if ix.constraint_name then
      dst:exec(("ALTER TABLE %s ADD CONSTRAINT %s %s")
        :format(quote(t.name), quote(ix.constraint_name), ix.constraint_def))
    else
      dst:exec(ix.indexdef)
    end
  end
end

-- Serial and identity columns: the next value goes past the highest copied
-- id. ALTER ... RESTART, not setval(): setval is never rolled back, RESTART
-- is part of the transaction like everything else here.
local SEQUENCES_SQL = [[
  SELECT a.attname AS column_name, a.attidentity <> '' AS identity,
         pg_get_serial_sequence(quote_ident($1), a.attname) AS sequence
    FROM pg_attribute a
   WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped
     AND pg_get_serial_sequence(quote_ident($1), a.attname) IS NOT NULL]]

local function move_sequences(dst, t)
  t.sequences = {}
  for _, s in ipairs(dst:query(SEQUENCES_SQL, t.name)) do
    local top = dst:first(("SELECT max(%s)::int8 AS v FROM %s"):format(quote(s.column_name), quote(t.name))).v
    if top then
      local next_id = math.tointeger(top) + 1
      if s.identity then
        dst:exec(("ALTER TABLE %s ALTER COLUMN %s RESTART WITH %d"):format(quote(t.name), quote(s.column_name), next_id))
      else
        dst:exec(("ALTER SEQUENCE %s RESTART WITH %d"):format(s.sequence, next_id))  -- (a catalog name, quoted)
      end
      t.sequences[#t.sequences + 1] = ("%s.%s next id %s"):format(t.name, s.column_name, thousands(next_id))
    end
  end
end

local function progress_printer(t)
  local tty = copy.isatty(2)
  local start, last = copy.now(), -math.huge
  return function(rows)
    local now = copy.now()
    local done = rows >= t.source_rows
    if not done and now - last < (tty and 0.1 or 5) then return end
    last = now
    local elapsed = math.max(now - start, 1e-6)
    local rate = rows / elapsed
    local eta = rate > 0 and (t.source_rows - rows) / rate or 0
    local line = ("%-20s %11s / %s rows  %9s rows/s  %s"):format(shown(t.name), thousands(rows),
      thousands(t.source_rows), thousands(rate),
      done and ("%.2fs"):format(elapsed) or ("ETA %.1fs"):format(eta))
    if tty then
      local width, fraction = 24, t.source_rows > 0 and rows / t.source_rows or 1
      local filled = math.floor(width * math.min(fraction, 1) + 0.5)
      say("\r[", ("#"):rep(filled), ("."):rep(width - filled), "] ", line, "\27[K", done and "\n" or "")
    else
      say(line, "\n")
    end
  end
end

-- Count and checksum on both sides must agree, else the transaction rolls back.
local function verify(dst, t)
  t.target = copy.checksum(dst, t.name, t.columns)
  t.verified = t.load.rows == t.source_rows and t.target.rows == t.source_rows
    and t.target.checksum == t.load.checksum
  if not t.verified then
    fail(("table %s did not verify: source %s rows, checksum %s; target %s rows, checksum %s; nothing was committed")
      :format(t.name, thousands(t.source_rows), t.load.checksum, thousands(t.target.rows), t.target.checksum))
  end
end

local function transfer(src, dst, tables, opts)
  lock_and_empty(dst, tables, opts.replace)
  for _, t in ipairs(tables) do
    local indexes = opts.keep_indexes and {} or drop_indexes(dst, t)
    t.load = copy.table(src, dst, {
      table = t.name, columns = t.columns, id_column = t.id_column, freeze = t.freeze,
      on_progress = progress_printer(t), progress_every = 16384,
    })
    local started = copy.now()
    rebuild_indexes(dst, t, indexes)
    move_sequences(dst, t)
    t.index_seconds = copy.now() - started
    verify(dst, t)
  end
end

-- ---- the pre-flight (--check, --dry-run) -----------------------------------------

-- The kinds of value the copy refuses (copy.check's problems), each with
-- what to do in the source. The copy never changes a value, so every one
-- of them stops it: they are reported as refused, never as warnings.
local PROBLEMS = {
  { kind = "text_bool", says = "'true'/'yes'-style text in a boolean column (the copy takes 0 and 1, as the app stores them)",
    fix = "UPDATE {t} SET {c} = 1 WHERE lower({c}) IN ('true', 't', 'yes', 'y', 'on', '1'); "
      .. "UPDATE {t} SET {c} = 0 WHERE lower({c}) IN ('false', 'f', 'no', 'n', 'off', '0')" },
  { kind = "time_number", says = "a number where a date or time belongs (the copy does not guess what it counts)",
    fix = "if they are Unix seconds: UPDATE {t} SET {c} = datetime({c}, 'unixepoch') WHERE typeof({c}) IN ('integer', 'real')" },
  { kind = "too_long", says = "text longer than the column's varchar(n) (the copy never cuts text)",
    fix = "shorten it in the source, or widen the column with a migration" },
  { kind = "utf8", says = "text that is not UTF-8 or holds a NUL byte (PostgreSQL text can hold neither)",
    fix = "correct the text in the source" },
  { kind = "out_of_range", says = "numbers the column's type cannot hold (numeric(p, s) without rounding, smallint...)",
    fix = "correct them in the source, or widen the column with a migration" },
  { kind = "null", says = "NULL in a NOT NULL column", fix = "give those rows a value in the source" },
  { kind = "other", says = "values the column's type cannot hold", fix = "see each row's reason" },
}

-- Values the copy accepts but stores as another kind: warnings.
local RETYPED = {
  bytea = { "text stored as its bytes", "texts stored as their bytes" },
  default = { "integer stored as its decimal text", "integers stored as their decimal text" },
}

local STORAGE = { "integer", "real", "text", "blob", "null" }

local function plural(n, one, many) return thousands(n) .. " " .. (n == 1 and one or many) end

-- The refused values of one column, by kind: how many, what to do, the
-- first ones (copy.check keeps the first 10 of the column) with their rows.
local function print_problems(t, col)
  local name = t.name .. "." .. col.name
  local names = { t = quote(t.name), c = quote(col.name) }
  for _, p in ipairs(PROBLEMS) do
    local n = col.problems[p.kind]
    if n then
      put(("  %s: %s refused: %s"):format(name, plural(n, "value", "values"), p.says))
      put("      to fix: " .. p.fix:gsub("{(%a)}", names))
      local shown_here = 0
      for _, s in ipairs(col.samples) do
        if s.problem == p.kind then
          shown_here = shown_here + 1
          put(("    %s, row %s %s: value %s (%s): %s"):format(name, t.id_column or "rowid", s.id, s.value,
            s.storage, s.reason))
        end
      end
      if n > shown_here then put(("    (%s more)"):format(thousands(n - shown_here))) end
    end
  end
end

local function print_check(t, found)
  put(("check: %s: %s read in %.2fs, %s the copy would refuse"):format(t.name,
    plural(found.rows, "row", "rows"), found.seconds, plural(found.refused, "value", "values")))
  local head = ("  %-24s %-28s"):format("column", "target type")
  for _, kind in ipairs(STORAGE) do head = head .. ("%10s"):format(kind) end
  print(head .. ("%10s"):format("refused"))
  for _, col in ipairs(found.columns) do
    local line = ("  %-24s %-28s"):format(col.name, col.type)
    for _, kind in ipairs(STORAGE) do line = line .. ("%10s"):format(thousands(col.storage[kind])) end
    put(line .. ("%10s"):format(thousands(col.refused)))
  end
  for _, col in ipairs(found.columns) do
    if col.refused > 0 then print_problems(t, col) end
    if col.retyped > 0 then
      local says = RETYPED[col.type] or RETYPED.default
      put(("  %s.%s: warning: %s (the copy accepts them)"):format(t.name, col.name,
        plural(col.retyped, says[1], says[2])))
    end
  end
end

-- Reads every row of every table through the copy's conversion; prints
-- what it found and fails (exit 1) when any value would stop the copy.
local function preflight(src, dst, tables, opts)
  local refused, columns, rows, seconds = 0, {}, 0, 0
  for _, t in ipairs(tables) do
    local found = copy.check(src, dst, {
      table = t.name, columns = t.columns, id_column = t.id_column,
      on_progress = progress_printer(t), progress_every = 16384,
    })
    print_check(t, found)
    refused, rows, seconds = refused + found.refused, rows + found.rows, seconds + found.seconds
    for _, col in ipairs(found.columns) do
      if col.refused > 0 then columns[#columns + 1] = t.name .. "." .. col.name end
    end
  end
  io.stdout:flush()
  if refused > 0 then
    fail(("check: %s in %s (%s) would stop the copy, each listed above with its row: fix them in the source and run the check again; nothing was written")
      :format(plural(refused, "value", "values"), plural(#columns, "column", "columns"), table.concat(columns, ", ")))
  end
  if opts.dry_run then
    print("copy: dry run: every check passed; nothing was written")
  else
    print(("copy: check: every value of %s converts (%.2fs); nothing was written"):format(
      plural(rows, "row", "rows"), seconds))
  end
end

-- ---- 4. reporting ----------------------------------------------------------------

local function print_plan(src, dst, revision, tables)
  put(("copy: %s -> %s, both at revision %s"):format(src.url, dst.url, revision))
  for _, t in ipairs(tables) do
    put(("  %-20s %11s rows  %2d columns  %s"):format(t.name, thousands(t.source_rows), #t.columns,
      t.target_has_rows and "target has rows: emptied first (--replace)" or "target empty"))
  end
  io.stdout:flush()
end

local function print_summary(tables, seconds)
  local rule = ("-"):rep(20) .. "  " .. ("-"):rep(11) .. "  " .. ("-"):rep(10) .. "  " .. ("-"):rep(7)
    .. "  " .. ("-"):rep(8) .. "  " .. ("-"):rep(32) .. "  " .. ("-"):rep(8)
  print(("%-20s  %11s  %10s  %7s  %8s  %-32s  %s"):format("table", "rows", "bytes", "load s", "verify s",
    "checksum", "verified"))
  print(rule)
  local rows, bytes = 0, 0
  for _, t in ipairs(tables) do
    put(("%-20s  %11s  %10s  %7.2f  %8.2f  %-32s  %s"):format(t.name, thousands(t.load.rows),
      human_bytes(t.load.bytes), t.load.seconds, t.target.seconds + t.index_seconds, t.load.checksum,
      t.verified and "yes" or "NO"))
    rows, bytes = rows + t.load.rows, bytes + t.load.bytes
  end
  print(rule)
  print(("%-20s  %11s  %10s  %7.2f  (wall clock, checks and commit included)"):format("total",
    thousands(rows), human_bytes(bytes), seconds))
  for _, t in ipairs(tables) do
    for _, line in ipairs(t.sequences) do put("sequence: " .. line) end
  end
end

-- ---- main --------------------------------------------------------------------------

local function main(argv)
  local started = copy.now()
  local opts = parse_args(argv)
  if opts.reverse then
    return require("copy.reverse").run(opts, {
      fail = fail, put = put, quote = quote, thousands = thousands, NOT_COPIED = NOT_COPIED, pick_tables = pick_tables,
      progress_printer = progress_printer, print_summary = print_summary,
    })
  end

  local src <close> = db.connect(opts.from, { readonly = true })
  if src.kind ~= "sqlite" then fail("--from must be a SQLite database (sqlite:///path/to/database.db)") end
  local dst <close> = db.connect(opts.to)
  if dst.kind ~= "postgresql" then
    fail(("the target must be PostgreSQL, not %s: pass --to postgresql://... or set DATABASE_URL"):format(dst.url))
  end

  src:exec("BEGIN")  -- 1. one consistent snapshot of the source for checks and copy
  local revision = check_revisions(src, dst)
  local tables = {}
  for _, name in ipairs(source_table_names(src, opts.tables)) do
    tables[#tables + 1] = plan_table(src, dst, name)
  end
  if #tables == 0 then fail("the source has no tables to copy") end
  tables = in_foreign_key_order(dst, tables)
  check_empty(tables, opts.replace)
  if not opts.check or opts.dry_run then print_plan(src, dst, revision, tables) end
  if opts.check or opts.dry_run then
    preflight(src, dst, tables, opts)
    src:exec("ROLLBACK")
    return
  end

  dst:transaction(function() transfer(src, dst, tables, opts) end)
  src:exec("ROLLBACK")  -- (read-only: ends the snapshot)
  print_summary(tables, copy.now() - started)
end

-- Every error leaves with its text made safe to print (it may quote names).
local function safe_error(err)
  if type(err) == "table" and type(err.message) == "string" then
    err.message = shown(err.message)
    if type(err.hint) == "string" then err.hint = shown(err.hint) end
    return err
  end
  return type(err) == "string" and shown(err) or err
end

local ok, err = xpcall(main, safe_error, arg)
if not ok then error(err, 0) end
