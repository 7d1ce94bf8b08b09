-- tests/spec/paths_spec.lua: todohost.paths, the two places (host/runtime.c):
-- the installation (this checkout here) and the project (the working
-- directory), and that the scripts ask for the one they mean: in a folder
-- of its own (no scripts/), serve.lua and seeding use that folder's
-- migrations/ and seeds/, not the checkout's. Needs no database server.
local helper = require "spec_helper"
local paths = require "todohost.paths"

local quote = helper.quote

-- `todohost run -` with code on stdin, in dir, with env (a string of VAR=VALUE).
local function run_in(dir, code, env)
  return helper.run_lua(code, "-u TODOHOST_HOME -u MIGRATIONS_DIR " .. (env or ""), dir)
end

local function physical(dir)
  local _, out = helper.run("pwd -P", dir)
  return (out:gsub("\n$", ""))
end

describe("todohost.paths", function()
  it("names the installation (this checkout) and the project (the working directory)", function()
    local root = physical(".")
    assert.equal(root, paths.install)
    assert.equal(root, paths.project)
    local dir = helper.tmpdir()
    local code, out, err = run_in(dir, 'local p = require "todohost.paths"; print(p.install); print(p.project)')
    assert.equal(0, code, err)
    assert.equal(root .. "\n" .. physical(dir) .. "\n", out)
  end)

  it("TODOHOST_HOME names the installation", function()
    local home = helper.tmpdir()
    local code, out, err = run_in(".", "print(require('todohost.paths').install)", "TODOHOST_HOME=" .. quote(home))
    assert.equal(0, code, err)
    assert.equal(physical(home) .. "\n", out)
  end)

  it("in_install joins; in_project keeps a path relative, as the user types it", function()
    assert.equal(paths.install .. "/migrations/script.lua.tmpl", paths.in_install("migrations/script.lua.tmpl"))
    assert.equal("migrations", paths.in_project("migrations"))
    assert.equal("/elsewhere/seeds", paths.in_project("/elsewhere/seeds"))
  end)
end)

describe("scripts in a project folder of their own", function()
  it("seeding's default is the project's seeds/, else the installation's", function()
    local dir = helper.tmpdir()
    local code, out, err = run_in(dir, 'print(require("seeding").default_dir())')
    assert.equal(0, code, err)
    assert.equal(paths.install .. "/seeds\n", out)
    assert(os.execute("mkdir " .. quote(dir .. "/seeds")))
    code, out, err = run_in(dir, 'print(require("seeding").default_dir())')
    assert.equal(0, code, err)
    assert.equal("seeds\n", out)
  end)

  it("serve.lua checks the database against the project's migrations/, not the installation's", function()
    local dir = helper.tmpdir()
    assert(os.execute("mkdir -p " .. quote(dir .. "/migrations")))
    helper.write(dir .. "/migrations/spec_p1.lua", [[
return { revision = "spec_p1", down_revision = nil, message = "spec",
  upgrade = function() end, downgrade = function() end }
]])
    local code, _, err = helper.run(("env -u TODOHOST_HOME -u MIGRATIONS_DIR DATABASE_URL=sqlite:///./spec.db PORT=0 %s run serve.lua </dev/null")
      :format(quote(helper.todohost())), dir)
    assert.equal(1, code)
    assert.matches("database is at no revision, migrations head is spec_p1", err, 1, true)
  end)
end)
