-- tests/spec/seeding_spec.lua (scripts/app/seeding.lua, `require "seeding"`):
-- seed scripts run in name order, all in one transaction, only into a todos
-- table with no rows at all; a missing folder, a seed that fails and one
-- that returns no function are clear errors that leave nothing behind.
local h = require "spec_helper"
local seeding = require "seeding"

-- A seeds folder holding files (name -> source).
local function seeds(files)
  local dir = h.tmpdir()
  for name, text in pairs(files) do h.write(dir .. "/" .. name, text) end
  return dir
end

local function insert(title)
  return ("return function(conn) conn:exec(\"INSERT INTO todos (title) VALUES ($1)\", %q) end\n"):format(title)
end

describe("seeding", function()
  local conn, done
  setup(function() conn, done = h.fresh_connection("seeding") end)
  teardown(function() done() end)
  before_each(function()
    conn:exec("DROP TABLE IF EXISTS todos")
    conn:exec(conn.kind == "postgresql"
      and "CREATE TABLE todos (id SERIAL PRIMARY KEY, title TEXT NOT NULL, deleted_at TIMESTAMP)"
      or "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, deleted_at TIMESTAMP)")
  end)

  local function titles()
    local out = {}
    for _, row in ipairs(conn:query("SELECT title FROM todos ORDER BY id")) do out[#out + 1] = row.title end
    return out
  end

  it("lists the *.lua files of a folder by name, and names a folder that is missing", function()
    local dir = seeds({ ["b.lua"] = "", ["a.lua"] = "", ["notes.txt"] = "", [".#a.lua"] = "", ["c.lua.orig"] = "" })
    assert.same({ "a.lua", "b.lua" }, seeding.files(dir))
    local ok, err = pcall(seeding.files, dir .. "/none")
    assert.is_false(ok)
    assert.equal("seed directory " .. dir .. "/none not found", err)
  end)

  it("runs every seed in file name order into an empty table, once", function()
    local dir = seeds({ ["02_second.lua"] = insert("second"), ["01_first.lua"] = insert("first") })
    assert.is_true(seeding.needed(conn))
    assert.equal(2, seeding.run(conn, dir))
    assert.same({ "first", "second" }, titles())
    assert.is_false(seeding.needed(conn))
    assert.equal(0, seeding.run(conn, dir))
    assert.same({ "first", "second" }, titles())
  end)

  it("never seeds a table that has rows, soft-deleted ones included", function()
    conn:exec("INSERT INTO todos (title, deleted_at) VALUES ('gone', CURRENT_TIMESTAMP)")
    assert.is_false(seeding.needed(conn))
    assert.equal(0, seeding.run(conn, seeds({ ["a.lua"] = insert("a") })))
    assert.same({ "gone" }, titles())
  end)

  it("lands no seed when one fails", function()
    local dir = seeds({ ["a.lua"] = insert("a"), ["b.lua"] = "return function(conn) error('b broke', 0) end\n" })
    local ok, err = pcall(seeding.run, conn, dir)
    assert.is_false(ok)
    assert.matches("b broke", tostring(err), 1, true)
    assert.same({}, titles())
    assert.is_true(seeding.needed(conn))
  end)

  it("refuses a seed that does not return a function, or does not compile, naming the file", function()
    local dir = seeds({ ["a.lua"] = insert("a"), ["b.lua"] = "return 42\n" })
    local ok, err = pcall(seeding.run, conn, dir)
    assert.is_false(ok)
    assert.equal("seed " .. dir .. "/b.lua must return function(conn), it returned a number", err)
    dir = seeds({ ["a.lua"] = "return function( this is not Lua" })
    ok, err = pcall(seeding.run, conn, dir)
    assert.is_false(ok)
    assert.matches("^seed .*/a%.lua:1: .*expected", err)
    assert.same({}, titles())
  end)
end)
