-- tests/spec/copy_check_spec.lua: `copy.lua --check` and `--dry-run`, the
-- pre-flight: every row of a real migrated SQLite file is run through the
-- copy's own conversion against the real PostgreSQL target's types, every
-- value that would stop the copy is reported (column, row id, value, why),
-- the exit status is 1 when there is one, and nothing is ever written.
--
-- Like copy_spec, it does the same thing in both passes of tests/run.sh and
-- needs TEST_PG_URL.
local ch = require "copy_helper"

local TARGET_DB = "copy_check_spec_target"
local TARGET_URL = ch.url_for(TARGET_DB)

local GOOD = {
  { id = 1, title = "fine", is_completed = 0, created_at = "2026-02-21 10:15:30" },
  { id = 2, title = "also fine", description = "yes", is_completed = 1, created_at = "2026-02-21 10:15:30.5" },
}

describe("copy.lua --check / --dry-run", function()
  local source_url, args

  before_each(function()
    source_url = ch.fresh_source()
    ch.fresh_target(TARGET_DB)
    args = ("--from %s --to %s"):format(ch.quote(source_url), ch.quote(TARGET_URL))
    ch.insert_rows(source_url, GOOD)
  end)

  local function target_rows() return ch.value(TARGET_URL, "SELECT count(*) AS v FROM todos") end

  for _, flag in ipairs({ "--dry-run", "--check" }) do
    it(flag .. " finds the one 'banana' the copy would stop at, exits 1, and writes nothing", function()
      ch.insert_rows(source_url, { { id = 42, title = "bad", is_completed = "banana", created_at = "2026-01-01 00:00:00" } })
      local code, out = ch.run_copy(args .. " " .. flag)
      assert.equal(1, code, out)
      assert.is_nil(out:find("every check passed", 1, true), out)
      assert.matches("todos%.is_completed", out)
      assert.matches("row id 42", out)
      assert.matches("'banana'", out)
      assert.matches("expected 0 or 1", out)
      assert.equal(0, target_rows())
    end)
  end

  it("--check reports one bad value of each kind, by column, with its row, value, reason and fix", function()
    ch.insert_rows(source_url, {
      { id = 11, title = "bool", is_completed = "yes", created_at = "2026-01-01 00:00:00" },
      { id = 12, title = "epoch", is_completed = 1, created_at = 1700000000 },
      { id = 13, title = ("é"):rep(201), is_completed = 0, created_at = "2026-01-01 00:00:00" },
      { id = 14, title = "caf\xe9", is_completed = 0, created_at = "2026-01-01 00:00:00" },
      { id = 15, title = "nul", description = "a\0b", is_completed = 0, created_at = "2026-01-01 00:00:00" },
      { id = 16, title = "banana", is_completed = "banana", created_at = "2026-01-01 00:00:00" },
    })
    local code, out = ch.run_copy(args .. " --check")
    assert.equal(1, code, out)
    local function has(text) assert.truthy(out:find(text, 1, true), "missing " .. text .. " in:\n" .. out) end
    -- the storage classes per column (SQLite's typeof) and the refusals
    assert.matches("is_completed%s+boolean%s+6%s+0%s+2%s+0%s+0%s+2\n", out)
    assert.matches("created_at%s+timestamp with time zone%s+1%s+0%s+7%s+0%s+0%s+1\n", out)
    has("todos.is_completed: 1 value refused: 'true'/'yes'-style text in a boolean column")
    has("todos.is_completed, row id 11: value 'yes' (text): expected 0 or 1")
    has([[UPDATE "todos" SET "is_completed" = 1 WHERE lower("is_completed") IN]])
    has("todos.created_at: 1 value refused: a number where a date or time belongs")
    has("todos.created_at, row id 12: value 1700000000 (integer)")
    has("todos.title: 1 value refused: text longer than the column's varchar(n)")
    has("todos.title, row id 13: value '" .. ("é"):rep(30))
    has("201 characters, the column holds at most 200")
    has("todos.title, row id 14: value 'caf\\xe9' (text): invalid UTF-8")
    has("todos.description, row id 15: value 'a\\x00b' (text): a NUL byte")
    has("todos.is_completed: 1 value refused: values the column's type cannot hold")
    has("todos.is_completed, row id 16: value 'banana' (text): expected 0 or 1")
    -- the one-line summary: how many, where, what to do
    has("todohost: copy: check: 6 values in 4 columns (todos.title, todos.description, todos.is_completed, "
      .. "todos.created_at) would stop the copy")
    has("fix them in the source and run the check again; nothing was written")
    assert.equal(0, target_rows())

    -- and the copy itself refuses the first of them, as the check said
    code, out = ch.run_copy(args)
    assert.equal(1, code, out)
    has("todos.is_completed, row id 11: value 'yes' (text) cannot be stored in boolean: expected 0 or 1")
  end)

  it("keeps the first 10 refused values of a column and counts the rest", function()
    local rows = {}
    for i = 1, 25 do
      rows[i] = { id = 100 + i, title = "t", is_completed = "banana", created_at = "2026-01-01 00:00:00" }
    end
    ch.insert_rows(source_url, rows)
    local code, out = ch.run_copy(args .. " --check")
    assert.equal(1, code, out)
    assert.equal(10, select(2, out:gsub("todos%.is_completed, row id %d+: value 'banana'", "")), out)
    assert.truthy(out:find("row id 110: value 'banana'", 1, true), out)
    assert.is_nil(out:find("row id 111: value", 1, true), out)
    assert.truthy(out:find("    (15 more)", 1, true), out)
    assert.truthy(out:find("check: 25 values in 1 column (todos.is_completed)", 1, true), out)
  end)

  it("refuses a NULL in a column NOT NULL only in the target; warns of values stored as another kind", function()
    local src <close> = require("todohost.db").connect(source_url)
    src:exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB, data BLOB)")
    src:exec("INSERT INTO notes VALUES (1, 42, 'text in bytea'), (2, 'words', x'00ff')")
    local dst <close> = require("todohost.db").connect(TARGET_URL)
    dst:exec("CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL, data bytea)")
    local code, out = ch.run_copy(args .. " --check --tables notes")
    assert.equal(0, code, out)
    assert.truthy(out:find("notes.body: warning: 1 integer stored as its decimal text (the copy accepts them)", 1, true), out)
    assert.truthy(out:find("notes.data: warning: 1 text stored as its bytes", 1, true), out)
    assert.truthy(out:find("copy: check: every value of 2 rows converts", 1, true), out)

    src:exec("INSERT INTO notes VALUES (3, NULL, NULL)")
    code, out = ch.run_copy(args .. " --check --tables notes")
    assert.equal(1, code, out)
    assert.truthy(out:find("notes.body: 1 value refused: NULL in a NOT NULL column", 1, true), out)
    assert.truthy(out:find("notes.body, row id 3: value NULL (null): NULL in a NOT NULL column", 1, true), out)
    assert.equal(0, ch.value(TARGET_URL, "SELECT count(*) AS v FROM notes"))
  end)

  it("--dry-run on clean data still says every check passed, prints the plan, exits 0", function()
    local code, out = ch.run_copy(args .. " --dry-run")
    assert.equal(0, code, out)
    assert.matches("todos%s+2 rows", out)
    assert.matches("dry run: every check passed; nothing was written", out)
    assert.equal(0, target_rows())
  end)
end)
