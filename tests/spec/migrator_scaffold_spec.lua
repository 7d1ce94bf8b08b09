-- tests/spec/migrator_scaffold_spec.lua (migrator/scaffold.lua): `migrate.lua
-- init [DIR]`: a new migrations folder holding the installation's revision
-- template and a README, a non-empty folder refused untouched, and the
-- folder that comes out usable by `revision`.
local h = require "spec_helper"
local log = require "migrator.log"
local revisions = require "migrator.revisions"
local scaffold = require "migrator.scaffold"
local template = require "migrator.template"

-- Runs scaffold.init(opts, args) with log.out captured; returns its result
-- and the lines it printed (or false and the error's text).
local function init(opts, args)
  local printed, out = {}, log.out
  log.out = function(fmt, ...) printed[#printed + 1] = string.format(fmt, ...) end
  local ok, res = pcall(scaffold.init, opts, args)
  log.out = out
  if not ok then return false, type(res) == "table" and res.migrate_error or tostring(res) end
  return res, printed
end

describe("migrator.scaffold", function()
  it("creates DIR with the installation's template and a README, and says what comes next", function()
    local dir = h.tmpdir() .. "/new/migrations"
    local rc, printed = init({ dir = "unused" }, { dir })
    assert.equal(0, rc)
    assert.equal(h.read("migrations/script.lua.tmpl"), h.read(dir .. "/script.lua.tmpl"))
    assert.matches("one Lua file per revision", h.read(dir .. "/README"), 1, true)
    assert.same({
      "Creating directory " .. dir .. " ...  done",
      "Generating " .. dir .. "/script.lua.tmpl ...  done",
      "Generating " .. dir .. "/README ...  done",
      'Next: todohost run migrate.lua --dir ' .. dir .. ' revision -m "first revision"',
    }, printed)
  end)

  it("takes opts.dir when no DIR is given, and accepts an empty existing folder", function()
    local dir = h.tmpdir()
    assert.equal(0, (init({ dir = dir }, {})))
    assert.truthy(h.read(dir .. "/script.lua.tmpl"))
  end)

  it("makes a folder where `revision` writes a revision that loads", function()
    local dir = h.tmpdir() .. "/m"
    assert.equal(0, (init({}, { dir })))
    local path = template.write(dir, "first")
    local graph = revisions.load(dir)
    assert.equal(1, #graph.list)
    assert.equal(path, graph:get(graph:head()).path)
  end)

  it("refuses a folder that is not empty and leaves it as it was", function()
    local dir = h.tmpdir()
    h.write(dir .. "/mine.lua", "return 1\n")
    local ok, err = init({}, { dir })
    assert.is_false(ok)
    assert.equal(dir .. " exists and is not empty: give another DIR (todohost run migrate.lua init DIR)", err)
    assert.equal("return 1\n", h.read(dir .. "/mine.lua"))
    assert.is_nil(h.read(dir .. "/script.lua.tmpl"))
  end)

  it("says when DIR cannot be created", function()
    local file = h.tmpdir() .. "/file"
    h.write(file, "x")
    local ok, err = init({}, { file .. "/migrations" })
    assert.is_false(ok)
    assert.matches("^cannot create .*migrations.*%(give another DIR%)$", err)
  end)
end)
