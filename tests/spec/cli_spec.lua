-- tests/spec/cli_spec.lua: the todohost command line as a user meets it:
-- `todohost run`, `todohost version`, settings from the environment and
-- .env, errors, the prompt, and the DEBUG echo. Runs the real binary.
local h = require "spec_helper"

local url = h.database_url()
local bin = h.todohost()

-- Runs todohost with args in dir; env is a table of extra variables. The
-- test's own DATABASE_URL/DEBUG are cleared so .env and defaults show.
local function todohost(dir, args, env)
  local prefix = "env -u DATABASE_URL -u DEBUG"
  for k, v in pairs(env or {}) do prefix = prefix .. " " .. k .. "=" .. h.quote(v) end
  return h.run(prefix .. " " .. h.quote(bin) .. " " .. args, dir)
end

describe("todohost command line", function()
  local dir

  before_each(function()
    dir = h.tmpdir()
  end)

  it("prints the versions of todohost, Lua, SQLite and libpq", function()
    local code, out = todohost(dir, "version")
    assert.equal(0, code)
    assert.truthy(out:find("^todohost %d+%.%d+"))
    assert.truthy(out:find("Lua 5%.4"))
    assert.truthy(out:find("SQLite 3%."))
    assert.truthy(out:find("libpq %d+"))
  end)

  it("runs a script with arg as the lua interpreter sets it", function()
    h.write(dir .. "/args.lua", [[
      local n = select("#", ...)
      print(arg[0], arg[1], arg[2], #arg, n, (...))
    ]])
    local code, out = todohost(dir, "run args.lua one 'two words'")
    assert.equal(0, code)
    assert.equal("args.lua\tone\ttwo words\t2\t2\tone\n", out)
  end)

  it("finds a script by name in scripts/ and modules there by require", function()
    os.execute("mkdir -p " .. h.quote(dir .. "/scripts"))
    h.write(dir .. "/scripts/greet.lua", 'print(require("greeting").text)')
    h.write(dir .. "/scripts/greeting.lua", 'return { text = "hello from a module" }')
    local code, out = todohost(dir, "run greet")
    assert.equal(0, code)
    assert.equal("hello from a module\n", out)
  end)

  it("gives scripts cjson and todohost.db", function()
    h.write(dir .. "/mods.lua", [[
      local cjson = require "cjson"
      local db = require "todohost.db"
      print(cjson.encode({ a = 1 }), type(db.connect))
    ]])
    local code, out = todohost(dir, "run mods.lua")
    assert.equal(0, code)
    assert.equal('{"a":1}\tfunction\n', out)
  end)

  it("reports an uncaught error in one line and exits 1", function()
    h.write(dir .. "/boom.lua", 'local function f() error("it broke") end\nf()\n')
    local code, out, err = todohost(dir, "run boom.lua")
    assert.equal(1, code)
    assert.equal("", out)
    assert.equal("todohost: boom.lua:1: it broke\n", err)
  end)

  it("adds a traceback when DEBUG is true", function()
    h.write(dir .. "/boom.lua", 'local function f() error("it broke") end\nf()\n')
    local code, _, err = todohost(dir, "run boom.lua", { DEBUG = "true" })
    assert.equal(1, code)
    assert.truthy(err:find("stack traceback", 1, true))
  end)

  it("reports a database error table by its message and hint", function()
    local port = h.free_port()
    h.write(dir .. "/down.lua", ('require("todohost.db").connect("postgresql://u:pw123456@127.0.0.1:%d/x")'):format(port))
    local code, _, err = todohost(dir, "run down.lua")
    assert.equal(1, code)
    assert.truthy(err:find("connection refused; is PostgreSQL running? try `make db-start`", 1, true))
    assert.is_nil(err:find("pw123456", 1, true))
    assert.equal(1, select(2, err:gsub("\n", "")))
  end)

  it("says so when the script does not exist", function()
    local code, _, err = todohost(dir, "run no_such_script.lua")
    assert.equal(1, code)
    assert.truthy(err:find("no script 'no_such_script.lua'", 1, true))
  end)

  it("rejects an unknown command with the usage", function()
    local code, _, err = todohost(dir, "frobnicate")
    assert.equal(2, code)
    assert.truthy(err:find("usage: todohost run", 1, true))
  end)

  describe("settings", function()
    local show = 'print(os.getenv("DATABASE_URL"), os.getenv("DEBUG"), os.getenv("EXTRA"))'

    it("default to sqlite:///./database.db and DEBUG=false", function()
      h.write(dir .. "/show.lua", show)
      local code, out = todohost(dir, "run show.lua")
      assert.equal(0, code)
      assert.equal("sqlite:///./database.db\tfalse\tnil\n", out)
    end)

    it("come from .env, with comments, quotes and export", function()
      h.write(dir .. "/show.lua", show)
      h.write(dir .. "/.env", table.concat({
        "# a comment",
        "",
        "export DATABASE_URL='sqlite:///./from_env_file.db'",
        'DEBUG="false"  # trailing comment',
        "EXTRA = plain value # inline comment",
      }, "\n") .. "\n")
      local code, out = todohost(dir, "run show.lua")
      assert.equal(0, code)
      assert.equal("sqlite:///./from_env_file.db\tfalse\tplain value\n", out)
    end)

    it("take the environment over .env", function()
      h.write(dir .. "/show.lua", show)
      h.write(dir .. "/.env", "DATABASE_URL=sqlite:///./file.db\n")
      local code, out = todohost(dir, "run show.lua", { DATABASE_URL = "sqlite:///./env.db" })
      assert.equal(0, code)
      assert.equal("sqlite:///./env.db\tfalse\tnil\n", out)
    end)

    it("refuse a malformed .env line, naming it", function()
      h.write(dir .. "/show.lua", show)
      h.write(dir .. "/.env", "GOOD=1\nthis line is wrong\n")
      local code, _, err = todohost(dir, "run show.lua")
      assert.equal(1, code)
      assert.truthy(err:find(".env line 2", 1, true))
    end)

    it("db.connect() uses DATABASE_URL from .env", function()
      h.write(dir .. "/.env", "DATABASE_URL=" .. url .. "\n")
      h.write(dir .. "/kind.lua", 'print(require("todohost.db").connect().kind)')
      local code, out = todohost(dir, "run kind.lua")
      assert.equal(0, code)
      assert.equal((url:match("^postgres") and "postgresql" or "sqlite") .. "\n", out)
    end)
  end)

  it("echoes statements and durations when DEBUG is true, masking the password", function()
    h.write(dir .. "/q.lua", 'local c = require("todohost.db").connect(); c:first("SELECT $1 AS echo_probe", 7)')
    local code, _, err = todohost(dir, "run q.lua", { DEBUG = "true", DATABASE_URL = url })
    assert.equal(0, code)
    assert.truthy(err:find("SELECT $1 AS echo_probe", 1, true))
    assert.truthy(err:find("%(7%)"))
    assert.truthy(err:find("%d+%.%d+ ms"))
    if url:match("^postgres") then
      assert.is_nil(err:find(h.pg_password(), 1, true))
    end
  end)

  it("opens a prompt with the database API loaded when given no script", function()
    local code, out = h.run("printf 'x = 40\\nreturn x + 2\\nfor i = 1, 2 do\\nprint(i * 10)\\nend\\nprint(type(db.connect))\\n' | env -u DEBUG " ..
      h.quote(bin) .. " run", dir)
    assert.equal(0, code)
    assert.truthy(out:find("42\n", 1, true))
    assert.truthy(out:find("10\n20\n", 1, true))
    assert.truthy(out:find("function\n", 1, true))
  end)
end)
