-- tests/spec/migrator_template_spec.lua (migrator/template.lua): new
-- revision files: ids, file names, the template's placeholders, and the
-- file written from the repository's migrations/script.lua.tmpl loading
-- as a revision on top of the head.
local h = require "spec_helper"
local revisions = require "migrator.revisions"
local template = require "migrator.template"

-- A copy of the repository's template in a scratch migrations directory.
local function scratch()
  local dir = h.tmpdir()
  h.write(dir .. "/script.lua.tmpl", assert(h.read("migrations/script.lua.tmpl")))
  return dir
end

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return err.migrate_error
end

describe("migrator.template", function()
  it("makes file names from messages: lower case, words joined by _, cut at a word near 40", function()
    assert.equal("add_priority_to_todos", template.slugify("Add priority to todos!"))
    assert.equal("", template.slugify("!!!"))
    assert.equal("one_two_three_four_five_six_seven_eight", template.slugify("one two three four five six seven eight nine ten"))
  end)

  it("fills placeholders and refuses an unknown one, naming the template", function()
    assert.equal("a=1 b=", template.render("a=${x} b=${y}", { x = "1", y = "" }, "t"))
    assert.matches("t: unknown placeholder ${z}", error_of(template.render, "${z}", {}, "t"), 1, true)
  end)

  it("writes a revision on top of the head that loads, with today's next id", function()
    local dir = scratch()
    local first = template.write(dir, "it's the \"first\"")
    local id1 = os.date("%Y_%m_%d") .. "_001"
    assert.equal(dir .. "/" .. id1 .. "_it_s_the_first.lua", first)
    local second = template.write(dir, "second")
    local g = revisions.load(dir)
    local id2 = os.date("%Y_%m_%d") .. "_002"
    assert.equal(dir .. "/" .. id2 .. "_second.lua", second)
    assert.same({ id1 }, g:get(id2).parents)
    assert.same({}, g:get(id1).parents)
    assert.equal("it's the \"first\"", g:get(id1).message)
    assert.equal(os.date("%Y_%m_%d") .. "_003", template.next_id(g))
  end)

  it("takes an id and a head of the caller's, base included", function()
    local dir = scratch()
    template.write(dir, "one", nil, "r1")
    template.write(dir, "two", nil, "r2")
    template.write(dir, "side", "r1", "r3")
    template.write(dir, "root", "base", "r4")
    local g = revisions.load(dir)
    assert.same({ "r1" }, g:get("r3").parents)
    assert.same({}, g:get("r4").parents)
  end)

  it("never overwrites: an existing id, a too long id, a missing template", function()
    local dir = scratch()
    template.write(dir, "one", nil, "r1")
    assert.matches("revision r1 already exists", error_of(template.write, dir, "again", nil, "r1"), 1, true)
    assert.matches("is longer than 32 characters", error_of(template.write, dir, "x", nil, ("x"):rep(33)), 1, true)
    local empty = h.tmpdir()
    assert.matches("no template at " .. empty .. "/script.lua.tmpl", error_of(template.write, empty, "x"), 1, true)
  end)

  it("fills the functions with generated bodies, or the example comments without them", function()
    local dir = scratch()
    local plain = h.read(template.write(dir, "plain", nil, "r1"))
    assert.matches('  upgrade = function(op)\n    -- e.g. op.add_column("todos", op.column("priority", op.types.integer, { nullable = true }))\n  end,',
      plain, 1, true)
    assert.matches('  downgrade = function(op)\n    -- e.g. op.drop_column("todos", "priority")\n  end,', plain, 1, true)
    local made = h.read(template.write(dir, "made", nil, "r2",
      { upgrades = '    op.drop_column("t", "c")', downgrades = "    op.execute('SELECT 1 % 2')" }))
    assert.matches('  upgrade = function(op)\n    op.drop_column("t", "c")\n  end,', made, 1, true)
    assert.matches("  downgrade = function(op)\n    op.execute('SELECT 1 % 2')\n  end,", made, 1, true)
    -- a template of the old form has nowhere to put them
    h.write(dir .. "/script.lua.tmpl", "return { revision = ${revision_lua} }\n")
    assert.matches(dir .. "/script.lua.tmpl has no ${upgrades} and ${downgrades} placeholders",
      error_of(template.write, dir, "x", nil, "r3", { upgrades = "", downgrades = "" }), 1, true)
  end)
end)
