-- tests/spec/copy_spec.lua: `todohost run copy.lua`, the SQLite -> PostgreSQL
-- copy step, run as a user runs it: real SQLite files migrated by migrate.lua,
-- a real PostgreSQL database (a fresh one per test on the test server) and
-- the real binary as a separate process (so kill -9 is real too).
--
-- The copy always goes from SQLite to PostgreSQL, so this spec does the same
-- thing in both passes of tests/run.sh; it needs TEST_PG_URL.
local db = require "todohost.db"
local helper = require "spec_helper"
local ch = require "copy_helper"

local TODOHOST = ch.TODOHOST
local TARGET_DB = "copy_spec_target"
local TARGET_URL = ch.url_for(TARGET_DB)

local function fresh_target(revision) ch.fresh_target(TARGET_DB, revision) end
local fresh_source, insert_rows, generate_rows, run_copy = ch.fresh_source, ch.insert_rows, ch.generate_rows, ch.run_copy

local function target_value(sql, ...) return ch.value(TARGET_URL, sql, ...) end

local read_file = helper.read

local AWKWARD = ch.AWKWARD

describe("copy.lua", function()
  local source_url, source_path

  before_each(function()
    source_url, source_path = fresh_source()
    fresh_target()
  end)

  it("copies every awkward value exactly, verifies, and leaves the source untouched", function()
    insert_rows(source_url, AWKWARD)
    local before = read_file(source_path)
    local before_wal = read_file(source_path .. "-wal")

    local code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.equal(0, code, out)

    local c <close> = db.connect(TARGET_URL)
    local rows = c:query("SELECT id, title, description, is_completed FROM todos ORDER BY id")
    assert.equal(#AWKWARD, #rows)
    for i, want in ipairs(AWKWARD) do
      local got = rows[i]
      assert.equal(want.id, got.id)
      assert.equal(want.title, got.title)             -- byte for byte
      assert.equal(want.description, got.description) -- nil stays NULL, "" stays ""
      assert.equal(want.is_completed == 1, got.is_completed)
      -- timestamps: PostgreSQL's own reading of the same SQLite text (naive = UTC)
      local same = c:first([[SELECT created_at = $2::timestamptz AS c,
          updated_at IS NOT DISTINCT FROM $3::timestamptz AS u,
          deleted_at IS NOT DISTINCT FROM $4::timestamptz AS d FROM todos WHERE id = $1]],
        want.id, want.created_at, want.updated_at, want.deleted_at)
      assert.is_true(same.c and same.u and same.d, "timestamps of row " .. want.id)
    end
    assert.equal("2026-02-21 08:15:30.5",
      c:first("SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.FF6') AS v FROM todos WHERE id = 3").v
        :gsub("0+$", ""))
    assert.equal(1024 * 1024, c:first("SELECT octet_length(description) AS n FROM todos WHERE id = 7").n)

    -- progress as plain lines (not a terminal), then the plan's and the summary's figures
    assert.matches("todos%s+5 / 5 rows%s+[%d,]+ rows/s", out)
    -- the report: the table verified, with its checksum; no password anywhere
    assert.matches("todos%s+5%s.-%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%s+yes", out)
    assert.is_nil(out:find(helper.pg_password(), 1, true), "the password leaked into the output")

    -- the sequence is past the highest copied id: the app's next insert works
    assert.equal(11, c:first("INSERT INTO todos (title) VALUES ('next') RETURNING id").id)
    -- the indexes dropped for the load are back
    assert.equal(2, c:first("SELECT count(*) AS n FROM pg_indexes WHERE tablename = 'todos'").n)

    assert.equal(before, read_file(source_path), "the source file changed")
    -- (a read-only reader of a WAL database may leave an empty -wal file behind)
    local after_wal = read_file(source_path .. "-wal")
    assert.is_true(after_wal == before_wal or (before_wal == nil and after_wal == ""),
      "the source's WAL changed")
  end)

  it("refuses 'banana' in a boolean column, names it, and commits nothing", function()
    insert_rows(source_url, { AWKWARD[1], AWKWARD[2] })
    insert_rows(source_url, { { id = 42, title = "bad", is_completed = "banana", created_at = "2026-01-01 00:00:00" } })
    local code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.is_not.equal(0, code)
    assert.matches("todos%.is_completed", out)
    assert.matches("row id 42", out)
    assert.matches("'banana'", out)
    assert.equal(0, target_value("SELECT count(*) AS v FROM todos"))
    assert.equal(2, target_value("SELECT count(*) AS v FROM pg_indexes WHERE tablename = 'todos'"))
  end)

  for _, case in ipairs({
    { what = "a NUL byte in text", row = { id = 5, title = "nul\0byte" }, column = "todos%.title", value = "'nul\\x00byte'" },
    { what = "invalid UTF-8", row = { id = 5, title = "caf\xe9" }, column = "todos%.title", value = "'caf\\xe9'" },
    { what = "an integer out of range", row = { id = 3000000000, title = "big id" }, column = "todos%.id", value = "3000000000" },
    { what = "text in a timestamp column", row = { id = 5, title = "x", created_at = "yesterday" }, column = "todos%.created_at", value = "'yesterday'" },
    { what = "a title over 200 characters", row = { id = 5, title = ("é"):rep(201) }, column = "todos%.title", value = "201 characters" },
  }) do
    it("refuses " .. case.what .. " and commits nothing", function()
      case.row.is_completed = 0
      case.row.created_at = case.row.created_at or "2026-01-01 00:00:00"
      insert_rows(source_url, { AWKWARD[1], case.row })
      local code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
      assert.is_not.equal(0, code)
      assert.matches(case.column, out)
      assert.matches("row id " .. case.row.id, out)
      assert.is_truthy(out:find(case.value, 1, true), "the value is not named in: " .. out)
      assert.equal(0, target_value("SELECT count(*) AS v FROM todos"))
    end)
  end

  it("fails verification and commits nothing when the target stores something else", function()
    insert_rows(source_url, AWKWARD)
    local t <close> = db.connect(TARGET_URL)
    -- a trigger that quietly changes one value on its way in
    t:exec([[CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN IF NEW.id = 3 THEN NEW.title := upper(NEW.title); END IF; RETURN NEW; END $$]])
    t:exec("CREATE TRIGGER shout BEFORE INSERT ON todos FOR EACH ROW EXECUTE FUNCTION shout()")
    local code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.is_not.equal(0, code)
    assert.matches("table todos did not verify", out)
    assert.matches("nothing was committed", out)
    assert.equal(0, t:first("SELECT count(*) AS n FROM todos").n)
  end)

  it("refuses a non-empty target unless --replace, which replaces it in one transaction", function()
    insert_rows(source_url, AWKWARD)
    local t <close> = db.connect(TARGET_URL)
    t:exec("INSERT INTO todos (id, title) VALUES (500, 'already there')")
    local args = ("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL))

    local code, out = run_copy(args)
    assert.is_not.equal(0, code)
    assert.matches("already has rows", out)
    assert.matches("%-%-replace", out)
    assert.equal("already there", t:first("SELECT title FROM todos WHERE id = 500").title)

    code, out = run_copy(args .. " --replace")
    assert.equal(0, code, out)
    assert.is_nil(t:first("SELECT title FROM todos WHERE id = 500"))
    assert.equal(#AWKWARD, t:first("SELECT count(*) AS n FROM todos").n)
  end)

  it("refuses targets at another migration revision", function()
    fresh_target("2026_02_21_003")
    insert_rows(source_url, { AWKWARD[1] })
    local code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.is_not.equal(0, code)
    assert.is_truthy(out:find("source is at 2026_02_21_004, target at 2026_02_21_003: run `make migrate` against the target", 1, true), out)
  end)

  it("refuses a target missing a source column", function()
    insert_rows(source_url, { AWKWARD[1] })
    local t <close> = db.connect(TARGET_URL)
    t:exec("ALTER TABLE todos DROP COLUMN deleted_at")
    local code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.is_not.equal(0, code)
    assert.matches("deleted_at", out)
    assert.matches("not in the target", out)
  end)

  it("prints the names a hostile source gives its tables and columns escaped, on one line", function()
    local evil = "evil\27[2J\27]0;owned\7\r\nname\226\128\174\255"
    local shown = "evil\\x1b[2J\\x1b]0;owned\\x07\\x0d\\x0aname\\xe2\\x80\\xae\\xff"
    local src <close> = db.connect(source_url)
    src:exec(('CREATE TABLE "%s" (x INTEGER)'):format(evil))
    local code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.is_not.equal(0, code)
    assert.is_nil(out:find("[\0-\8\11-\31\127]"), out)
    assert.truthy(out:find("table " .. shown .. " is in the source but not in the target", 1, true), out)
    assert.equal(1, select(2, out:gsub("\n", "")), out)   -- one line

    src:exec(('DROP TABLE "%s"'):format(evil))
    src:exec(('ALTER TABLE todos ADD COLUMN "%s" TEXT'):format(evil))
    code, out = run_copy(("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.is_not.equal(0, code)
    assert.is_nil(out:find("[\0-\8\11-\31\127]"), out)
    assert.truthy(out:find("column(s) " .. shown .. " are in the source", 1, true), out)
    assert.equal(1, select(2, out:gsub("\n", "")), out)
  end)

  it("--dry-run checks and prints the plan without writing", function()
    insert_rows(source_url, AWKWARD)
    local code, out = run_copy(("--from %s --to %s --dry-run"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
    assert.equal(0, code, out)
    assert.matches("todos%s+5 rows", out)
    assert.matches("dry run", out)
    assert.equal(0, target_value("SELECT count(*) AS v FROM todos"))
  end)

  it("keeps what a target-only table's foreign key needs, and refuses --replace there", function()
    insert_rows(source_url, AWKWARD)
    local t <close> = db.connect(TARGET_URL)
    t:exec("CREATE TABLE comments (id SERIAL PRIMARY KEY, todo_id INTEGER REFERENCES todos (id))")
    local args = ("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL))
    local code, out = run_copy(args)
    assert.equal(0, code, out)
    assert.equal(#AWKWARD, t:first("SELECT count(*) AS n FROM todos").n)
    t:exec("INSERT INTO comments (todo_id) VALUES (7)")  -- the foreign key still works

    code, out = run_copy(args .. " --replace")
    assert.is_not.equal(0, code)
    assert.matches("todos is referenced by table comments", out)
    assert.equal(1, t:first("SELECT count(*) AS n FROM comments").n)
    assert.equal(#AWKWARD, t:first("SELECT count(*) AS n FROM todos").n)
  end)

  it("--tables copies only the named tables and refuses unknown ones", function()
    local c <close> = db.connect(source_url)
    c:exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    c:exec("INSERT INTO notes VALUES (1, 'not copied')")
    insert_rows(source_url, { AWKWARD[1] })
    local args = ("--from %s --to %s"):format(helper.quote(source_url), helper.quote(TARGET_URL))
    local code, out = run_copy(args)  -- every table: notes is not in the target
    assert.is_not.equal(0, code)
    assert.matches("notes is in the source but not in the target", out)

    code, out = run_copy(args .. " --tables nope")
    assert.is_not.equal(0, code)
    assert.matches("table nope is not in the source", out)

    code, out = run_copy(args .. " --tables todos")
    assert.equal(0, code, out)
    assert.equal(1, target_value("SELECT count(*) AS v FROM todos"))
  end)

  -- Starts the copy in the background; returns the folder holding its pid,
  -- its exit status (once it ended) and its output.
  local function start_copy(args) return ch.background(helper.quote(TODOHOST) .. " run copy.lua " .. args) end
  local wait_for = ch.wait_for

  -- the copier's server process while it loads rows (COPY ... FROM STDIN);
  -- index rebuilds and the verification still follow before any COMMIT
  local function copier_backend(watch)
    return watch:first([[SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
      AND application_name = 'todohost' AND state = 'active' AND query ILIKE 'COPY % FROM STDIN%']], TARGET_DB)
  end

  for _, case in ipairs({
    { what = "the copier is killed with kill -9", kill = function(dir)
        os.execute("kill -9 " .. read_file(dir .. "/pid"):match("%d+"))
      end },
    { what = "the connection is lost", says = "nothing was committed", kill = function(_, watch, backend)
        watch:first("SELECT pg_terminate_backend($1) AS v", backend.pid)
      end },
  }) do
    it("leaves the target exactly as before when " .. case.what .. " part-way", function()
      generate_rows(source_url, 400000)
      local watch <close> = db.connect(TARGET_URL)
      watch:exec("INSERT INTO todos (id, title) VALUES (999999, 'kept')")
      watch:first("SELECT setval('todos_id_seq', 999999) AS v")
      local dir = start_copy(("--from %s --to %s --replace"):format(helper.quote(source_url), helper.quote(TARGET_URL)))

      local backend = wait_for("the copy to start", 60, function() return copier_backend(watch) end)
      case.kill(dir, watch, backend)
      local rc = tonumber(wait_for("the copier to end", 60, function() return read_file(dir .. "/rc") end))
      assert.is_not.equal(0, rc, read_file(dir .. "/out"))
      if case.says then   -- one line that says so
        local said = read_file(dir .. "/out"):match("todohost: [^\n]*") or ""
        assert.truthy(said:find(case.says, 1, true), read_file(dir .. "/out"))
      end
      wait_for("the server to end the copier's session", 30, function()
        return not watch:first("SELECT 1 AS v FROM pg_stat_activity WHERE pid = $1", backend.pid)
      end)

      assert.equal(1, watch:first("SELECT count(*) AS n FROM todos").n)
      assert.equal("kept", watch:first("SELECT title FROM todos WHERE id = 999999").title)
      assert.equal(1000000, watch:first("SELECT nextval('todos_id_seq') AS v").v)
      assert.equal(2, watch:first("SELECT count(*) AS n FROM pg_indexes WHERE tablename = 'todos'").n)

      -- and the copy can simply be run again
      local code, out = run_copy(("--from %s --to %s --replace"):format(helper.quote(source_url), helper.quote(TARGET_URL)))
      assert.equal(0, code, out)
      assert.equal(400000, watch:first("SELECT count(*) AS n FROM todos").n)
    end)
  end
end)

describe("todohost.copy (the binding copy.lua uses)", function()
  local copy = require "todohost.copy"
  local COLUMNS = { "id", "title", "description", "is_completed", "created_at", "updated_at", "deleted_at" }
  local source_url

  before_each(function()
    source_url = fresh_source()
    fresh_target()
    generate_rows(source_url, 50000)
  end)

  it("stops on an error in on_progress, re-raises it, and leaves the target usable", function()
    local src <close> = db.connect(source_url, { readonly = true })
    local dst <close> = db.connect(TARGET_URL)
    local calls = 0
    local ok, err = pcall(dst.transaction, dst, function()
      copy.table(src, dst, { table = "todos", columns = COLUMNS, progress_every = 1000,
        on_progress = function(rows)
          calls = calls + 1
          if rows >= 3000 then error({ reason = "stop here" }) end
        end })
    end)
    assert.is_false(ok)
    assert.same({ reason = "stop here" }, err)  -- the callback's own error object
    assert.equal(3, calls)
    assert.equal(0, dst:first("SELECT count(*) AS n FROM todos").n)
  end)

  it("refuses to let on_progress close or use the connections it copies with", function()
    local src <close> = db.connect(source_url, { readonly = true })
    local dst <close> = db.connect(TARGET_URL)
    local ok, err = pcall(dst.transaction, dst, function()
      copy.table(src, dst, { table = "todos", columns = COLUMNS, progress_every = 1000,
        on_progress = function() dst:close() end })
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("in use by a running copy", 1, true))
    ok, err = pcall(dst.transaction, dst, function()
      copy.table(src, dst, { table = "todos", columns = COLUMNS, progress_every = 1000,
        on_progress = function() dst:exec("SELECT 1") end })
    end)
    assert.is_false(ok)
    assert.equal("55000", err.sqlstate)
    assert.equal(0, dst:first("SELECT count(*) AS n FROM todos").n)
  end)

  it("loads, and its checksum equals the target's read back; a changed row changes it", function()
    local src <close> = db.connect(source_url, { readonly = true })
    local dst <close> = db.connect(TARGET_URL)
    local loaded = copy.table(src, dst, { table = "todos", columns = COLUMNS, id_column = "id" })
    assert.equal(50000, loaded.rows)
    assert.matches("^%x+$", loaded.checksum)
    assert.equal(32, #loaded.checksum)
    local back = copy.checksum(dst, "todos", COLUMNS)
    assert.equal(loaded.rows, back.rows)
    assert.equal(loaded.checksum, back.checksum)
    dst:exec("UPDATE todos SET is_completed = NOT is_completed WHERE id = 777")
    assert.is_not.equal(loaded.checksum, copy.checksum(dst, "todos", COLUMNS).checksum)
  end)

  it("describes the target's columns from its catalog", function()
    local dst <close> = db.connect(TARGET_URL)
    local cols = copy.describe(dst, "todos")
    assert.equal(7, #cols)
    assert.same({ name = "title", type = "character varying(200)", supported = true, not_null = true, max_chars = 200 }, cols[2])
    assert.same({ name = "created_at", type = "timestamp with time zone", supported = true, not_null = true }, cols[5])
  end)

  it("checks its arguments", function()
    local src <close> = db.connect(source_url, { readonly = true })
    local dst <close> = db.connect(TARGET_URL)
    assert.has_error(function() copy.table(dst, dst, { table = "todos", columns = COLUMNS }) end)
    assert.has_error(function() copy.table(src, src, { table = "todos", columns = COLUMNS }) end)
    assert.has_error(function() copy.table(src, dst, { table = "todos", columns = {} }) end)
    assert.has_error(function() copy.table(src, dst, { columns = COLUMNS }) end)
    local ok, err = pcall(copy.table, src, dst, { table = "todos", columns = { "id", "nope" } })
    assert.is_false(ok)
    assert.matches("todos%.nope does not exist in the target", tostring(err))
  end)
end)
