-- tests/spec/migrator_executor_spec.lua (migrator/executor.lua): where a
-- migration's statements go: online on this pass's database (rows affected,
-- a failure naming its statement), offline as Alembic prints them with the
-- parameters inlined, and dry (nothing runs).
local h = require "spec_helper"
local db = require "todohost.db"
local executor = require "migrator.executor"

describe("migrator.executor", function()
  local conn, done
  setup(function() conn, done = h.fresh_connection("executor") end)
  teardown(function() done() end)

  it("prints a statement as Alembic's offline mode: tabs as four spaces, trimmed, ';' and a blank line", function()
    assert.equal("SELECT\n    1;\n\n", executor.format_offline("  \nSELECT\n\t1  \n"))
  end)

  it("runs statements online and returns the rows affected", function()
    local ex = executor.new({ dialect = conn.kind, conn = conn })
    ex:exec("CREATE TABLE ex_t (id INTEGER PRIMARY KEY, name VARCHAR(20))")
    assert.equal(1, ex:exec("INSERT INTO ex_t (id, name) VALUES ($1, $2)", 1, "a"))
    assert.equal(1, ex:exec("INSERT INTO ex_t (id, name) VALUES ($1, $2)", 2, "b"))
    assert.equal(2, ex:exec("UPDATE ex_t SET name = $1", "c"))
    assert.same({ { n = 2 } }, ex:query("SELECT count(*) AS n FROM ex_t WHERE name = $1", "c"))
  end)

  it("raises a failed statement as {statement, cause}", function()
    local ex = executor.new({ dialect = conn.kind, conn = conn })
    local ok, err = pcall(ex.exec, ex, "INSERT INTO ex_missing VALUES (1)")
    assert.is_false(ok)
    assert.equal("INSERT INTO ex_missing VALUES (1)", err.statement)
    assert.matches("ex_missing", tostring(err.cause))
    ok, err = pcall(ex.query, ex, "SELECT nothing FROM ex_missing")
    assert.is_false(ok)
    assert.equal("SELECT nothing FROM ex_missing", err.statement)
  end)

  it("writes offline statements with their parameters as literals, and comments, running nothing", function()
    local text = {}
    local ex = executor.new({ dialect = "postgresql", offline = true, write = function(s) text[#text + 1] = s end })
    assert.equal(0, ex:exec("UPDATE todos SET title = $1 WHERE id = $2 AND note = '$1'", "it's", 7))
    ex:comment("Running upgrade a -> b")
    assert.same({ "UPDATE todos SET title = 'it''s' WHERE id = 7 AND note = '$1';\n\n",
      "-- Running upgrade a -> b\n\n" }, text)
    local ok, err = pcall(ex.query, ex, "SELECT 1")
    assert.is_false(ok)
    assert.matches("--sql mode does not open", err.migrate_error, 1, true)
  end)

  it("offline with a scratch connection (SQLite) writes and also runs each statement there", function()
    local scratch = db.connect("sqlite://")
    local text = {}
    local ex = executor.new({ dialect = "sqlite", conn = scratch, offline = true, write = function(s) text[#text + 1] = s end })
    ex:exec("CREATE TABLE s (id INTEGER)")
    assert.same({ "CREATE TABLE s (id INTEGER);\n\n" }, text)
    assert.same({ { n = 0 } }, ex:query("SELECT count(*) AS n FROM s"))
    scratch:close()
  end)

  it("dry runs nothing and reads nothing, but keeps the notes", function()
    local ex = executor.new({ dialect = conn.kind, conn = conn, dry = true })
    assert.equal(0, ex:exec("DROP TABLE ex_t"))
    assert.same({}, ex:query("SELECT * FROM ex_t"))
    ex:note("drop_column", "ex_t", "name")
    assert.same({ { kind = "drop_column", table = "ex_t", column = "name", detail = {} } }, ex.notes)
    assert.same({ { n = 2 } }, conn:query("SELECT count(*) AS n FROM ex_t"))
  end)
end)
