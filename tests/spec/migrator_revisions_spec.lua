-- tests/spec/migrator_revisions_spec.lua (migrator/revisions.lua): loading
-- revision files and the errors for broken ones, the graph's heads and
-- names (+N, -N, prefixes), and the plans between two points, on real
-- files in a scratch directory.
local h = require "spec_helper"
local revisions = require "migrator.revisions"
local util = require "todohost.util"

-- A directory holding revisions { {id, down_revision (Lua source)} ... }.
local function dir_with(list)
  local dir = h.tmpdir()
  for i, r in ipairs(list) do
    h.write(("%s/%02d_%s.lua"):format(dir, i, r[1]), ("return { revision = %q, down_revision = %s, message = %q, "
      .. "upgrade = function() end, downgrade = function() end }\n"):format(r[1], r[2] or "nil", "msg " .. r[1]))
  end
  return dir
end

-- The migrate_error text of calling fn.
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_table(err)
  return err.migrate_error
end

-- a <- b <- c, b <- d, and m merging c and d
local BRANCHED = { { "a1" }, { "b1", '"a1"' }, { "c1", '"b1"' }, { "d1", '"b1"' } }
local MERGED = { { "a1" }, { "b1", '"a1"' }, { "c1", '"b1"' }, { "d1", '"b1"' }, { "m1", '{ "c1", "d1" }' } }

describe("migrator.revisions", function()
  it("loads the *.lua files of a directory, skipping hidden and other files", function()
    local dir = dir_with(MERGED)
    h.write(dir .. "/.hidden.lua", "error('must not load')")
    h.write(dir .. "/script.lua.tmpl", "not lua")
    local g = revisions.load(dir)
    assert.equal(5, #g.list)
    assert.same({ "m1" }, g.heads)
    assert.same({ "a1" }, g.bases)
    assert.same({ "c1", "d1" }, g:get("b1").children)
    assert.same({ "c1", "d1" }, g:get("m1").parents)
    assert.equal("msg m1", g:get("m1").message)
    -- the checksum is of the code without comments and layout; the first form of the bytes
    local source = require "migrator.source"
    assert.equal(util.sha256(source.canonical(h.read(dir .. "/05_m1.lua"))), g:checksum("m1"))
    assert.equal(util.sha256(h.read(dir .. "/05_m1.lua")), g:legacy_checksum("m1"))
  end)

  it("refuses a broken set of revisions, naming the file and what to do", function()
    assert.matches("no migrations directory at /nonexistent", error_of(revisions.load, "/nonexistent"), 1, true)
    assert.matches("revision a1 is defined twice", error_of(revisions.load, dir_with({ { "a1" }, { "a1" } })), 1, true)
    assert.matches("down_revision zz is not in", error_of(revisions.load, dir_with({ { "a1" }, { "b1", '"zz"' } })), 1, true)
    assert.matches("the revisions form a cycle: ", error_of(revisions.load, dir_with({ { "a1" }, { "b1", '"c1"' }, { "c1", '"b1"' } })), 1, true)
    assert.matches("is longer than 32 characters", error_of(revisions.load, dir_with({ { ("x"):rep(33) } })), 1, true)
    local dir = h.tmpdir()
    h.write(dir .. "/bad.lua", "return {")
    assert.matches("bad.lua does not compile", error_of(revisions.load, dir), 1, true)
    h.write(dir .. "/bad.lua", "return { revision = 'a', upgrade = function() end }")
    assert.matches("`downgrade` must be a function(op)", error_of(revisions.load, dir), 1, true)
    h.write(dir .. "/bad.lua", "return { revision = 'a', down_revision = 5, upgrade = print, downgrade = print }")
    assert.matches("down_revision must be nil, a revision id, or a list of ids", error_of(revisions.load, dir), 1, true)
  end)

  it("has one head, or says there are several or none", function()
    assert.equal("m1", revisions.load(dir_with(MERGED)):head())
    local g = revisions.load(dir_with(BRANCHED))
    assert.same({ "c1", "d1" }, g.heads)
    assert.matches("Multiple head revisions are present: c1, d1", error_of(g.head, g), 1, true)
    local empty = revisions.load(h.tmpdir())
    assert.matches("holds no revision yet", error_of(empty.head, empty), 1, true)
    assert.is_true(g:is_head("c1"))
    assert.is_false(g:is_head("b1"))
  end)

  it("resolves ids and unique prefixes, and refuses unknown or ambiguous ones", function()
    local g = revisions.load(dir_with({ { "2026_01" }, { "2026_02", '"2026_01"' }, { "2027_01", '"2026_02"' } }))
    assert.equal("2027_01", g:resolve("2027"))
    assert.equal("2026_02", g:resolve("2026_02"))
    assert.matches("revision 2026 is ambiguous: it could be 2026_01, 2026_02", error_of(g.resolve, g, "2026"), 1, true)
    assert.matches("Can't locate revision 9", error_of(g.resolve, g, "9"), 1, true)
    assert.matches("Can't locate revision zz: the database's alembic_version says zz",
      error_of(g.check_current, g, { "zz" }), 1, true)
    g:check_current({ "2026_01" })
  end)

  it("plans upgrades parents first and downgrades children first, through branches and merges", function()
    local g = revisions.load(dir_with(MERGED))
    assert.same({ "a1", "b1", "c1", "d1", "m1" }, g:upgrade_plan({}, { "m1" }))
    assert.same({ "d1", "m1" }, g:upgrade_plan({ "c1" }, { "m1" }))
    assert.same({ "m1", "d1", "c1", "b1" }, g:downgrade_plan({ "m1" }, { "a1" }))
    assert.same({ "m1", "d1", "c1", "b1", "a1" }, g:downgrade_plan({ "m1" }, {}))
    assert.same({}, g:upgrade_plan({ "m1" }, { "c1" }))
    assert.matches("cannot downgrade to m1: the database (at c1) is not above it",
      error_of(g.downgrade_plan, g, { "c1" }, { "m1" }), 1, true)
  end)

  it("walks +N and -N, refusing to walk past the ends or through a branch or merge", function()
    local linear = revisions.load(dir_with({ { "a1" }, { "b1", '"a1"' }, { "c1", '"b1"' } }))
    assert.same({ "b1" }, linear:upgrade_target("+2", {}))
    assert.same({ "c1" }, linear:upgrade_target("+1", { "b1" }))
    assert.same({ "a1" }, linear:downgrade_target("-2", { "c1" }))
    assert.same({}, linear:downgrade_target("-3", { "c1" }))
    assert.same({}, linear:downgrade_target("base", { "c1" }))
    assert.same({ "c1" }, linear:upgrade_target("head", {}))
    -- counted from where the database is, not from where the walk stopped
    assert.matches("cannot upgrade +4: only 3 revision(s) above base (head is c1)",
      error_of(linear.upgrade_target, linear, "+4", {}), 1, true)
    assert.matches("cannot upgrade +3: only 1 revision(s) above b1 (head is c1)",
      error_of(linear.upgrade_target, linear, "+3", { "b1" }), 1, true)
    assert.matches("cannot downgrade -2: the database is only 1 revision(s) above base",
      error_of(linear.downgrade_target, linear, "-2", { "a1" }), 1, true)
    local g = revisions.load(dir_with(MERGED))
    assert.matches("the history branches after b1 into c1, d1", error_of(g.upgrade_target, g, "+1", { "b1" }), 1, true)
    assert.matches("m1 is a merge of c1, d1", error_of(g.downgrade_target, g, "-1", { "m1" }), 1, true)
    assert.matches("several current revisions", error_of(g.upgrade_target, g, "+1", { "c1", "d1" }), 1, true)
    assert.same({ "c1", "d1" }, revisions.load(dir_with(BRANCHED)):upgrade_target("heads", {}))
  end)
end)

describe("migrator.revisions.default_dir", function()
  -- what default_dir() says in a scratch project, with the environment env
  local function default_dir(env)
    local dir = h.tmpdir()
    local root = io.popen("pwd"):read("l")
    h.write(dir .. "/snippet.lua", 'print(require("migrator.revisions").default_dir())')
    local rc, out, err = h.run(("env -u MIGRATIONS_DIR %s LUA_PATH=%s %s run snippet.lua"):format(env,
      h.quote(root .. "/scripts/?.lua;;"), h.quote(h.todohost())), dir)
    assert.equal(0, rc, err)
    return out
  end

  it("is the project's migrations/, or MIGRATIONS_DIR (migrate.lua, serve.lua and doctor share it)", function()
    assert.equal("migrations\n", default_dir(""))
    assert.equal("/srv/m\n", default_dir("MIGRATIONS_DIR=/srv/m"))
  end)
end)
