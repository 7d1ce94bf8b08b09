-- tests/spec/settings_spec.lua: todohost.settings, the one reading of every
-- setting: each kind (string, boolean, integer with a range), where a value
-- came from (environment, .env, default), the one truthiness rule
-- (pydantic's words), empty values, and bad values as one-line errors.
-- Runs the real binary in a temp folder, so .env and the environment are
-- the test's own.
local h = require "spec_helper"
local settings = require "todohost.settings"

local bin = h.todohost()

-- Prints settings.get(name) (value, type, source) or the error, in dir
-- with the extra environment env (and every known setting unset first).
local function get(dir, name, env)
  local prefix = "env"
  for _, entry in ipairs(settings.all()) do prefix = prefix .. " -u " .. entry.name end
  for k, v in pairs(env or {}) do prefix = prefix .. " " .. k .. "=" .. h.quote(v) end
  h.write(dir .. "/get.lua", [[
local settings = require "todohost.settings"
local ok, value, source = pcall(settings.get, ...)
if not ok then io.stderr:write(value, "\n") os.exit(3) end
print(tostring(value), type(value), source)
]])
  return h.run(prefix .. " " .. h.quote(bin) .. " run get.lua " .. h.quote(name), dir)
end

describe("todohost.settings", function()
  local dir

  before_each(function()
    dir = h.tmpdir() .. "/settings"
    assert(os.execute("rm -rf " .. h.quote(dir) .. " && mkdir -p " .. h.quote(dir)))
  end)

  it("gives each kind its type and its default when unset", function()
    assert.same({ 0, "sqlite:///./database.db\tstring\tdefault\n", "" }, { get(dir, "DATABASE_URL") })
    assert.same({ 0, "false\tboolean\tdefault\n", "" }, { get(dir, "DEBUG") })
    assert.same({ 0, "8080\tnumber\tdefault\n", "" }, { get(dir, "PORT") })
    assert.same({ 0, "nil\tnil\tdefault\n", "" }, { get(dir, "WORKERS") })
  end)

  it("takes the environment first, then .env, then the default", function()
    h.write(dir .. "/.env", "PORT=9001\nHOST=0.0.0.0\nexport RELOAD=off\n")
    assert.same({ 0, "9002\tnumber\tenvironment\n", "" }, { get(dir, "PORT", { PORT = "9002" }) })
    assert.same({ 0, "9001\tnumber\t.env\n", "" }, { get(dir, "PORT") })
    assert.same({ 0, "0.0.0.0\tstring\t.env\n", "" }, { get(dir, "HOST") })
    assert.same({ 0, "false\tboolean\t.env\n", "" }, { get(dir, "RELOAD") })
    assert.same({ 0, "1048576\tnumber\tdefault\n", "" }, { get(dir, "MAX_BODY") })
  end)

  it("reads true/false as pydantic does: its twelve words, any case, nothing else", function()
    for _, word in ipairs { "1", "true", "TRUE", "yes", "on", "t", "Y" } do
      assert.same({ 0, "true\tboolean\tenvironment\n", "" }, { get(dir, "RELOAD", { RELOAD = word }) }, word)
    end
    for _, word in ipairs { "0", "false", "False", "no", "OFF", "f", "n" } do
      assert.same({ 0, "false\tboolean\tenvironment\n", "" }, { get(dir, "MIGRATE_ON_START", { MIGRATE_ON_START = word }) }, word)
    end
    for _, word in ipairs { "2", "enabled", "tru", " true", "yes please" } do
      local code, out, err = get(dir, "RELOAD", { RELOAD = word })
      assert.equal(3, code, word)
      assert.equal("", out)
      assert.equal(("RELOAD must be true or false (1, true, yes, on, t, y / 0, false, no, off, f, n; any case), "
        .. "got %q (from the environment)\n"):format(word), err)
    end
  end)

  it("reads a boolean word with settings.boolean, nil for anything else", function()
    assert.equal(true, settings.boolean("Yes"))
    assert.equal(false, settings.boolean("off"))
    assert.is_nil(settings.boolean("json"))
  end)

  it("counts an empty value as unset", function()
    assert.same({ 0, "8080\tnumber\tdefault\n", "" }, { get(dir, "PORT", { PORT = "" }) })
    assert.same({ 0, "true\tstring\tdefault\n", "" }, { get(dir, "ACCESS_LOG", { ACCESS_LOG = "" }) })
    assert.same({ 0, "127.0.0.1\tstring\tdefault\n", "" }, { get(dir, "HOST", { HOST = "" }) })
  end)

  it("reads an empty DEBUG in .env as false, leaking nothing (the ASan build checks)", function()
    h.write(dir .. "/.env", "DEBUG=\n")
    assert.same({ 0, "false\tboolean\tdefault\n", "" }, { get(dir, "DEBUG") })
  end)

  it("keeps an empty DATABASE_URL empty: an error, never the default database", function()
    assert.same({ 0, "\tstring\tenvironment\n", "" }, { get(dir, "DATABASE_URL", { DATABASE_URL = "" }) })
    assert(os.execute("mkdir -p " .. h.quote(dir .. "/migrations")))
    local code, out, err = h.run("DATABASE_URL= " .. h.quote(bin) .. " run migrate.lua current", dir)
    assert.are_not.equal(0, code)
    assert.truthy((out .. err):find("empty database URL", 1, true), out .. err)
    local f = io.open(dir .. "/database.db")
    assert.is_nil(f, "no database.db was created")
    if f then f:close() end
  end)

  it("refuses a number out of range or not whole, in one line naming the setting and the source", function()
    h.write(dir .. "/.env", "MAX_BODY=12\n")
    local code, out, err = get(dir, "MAX_BODY")
    assert.same({ 3, "", 'MAX_BODY must be a whole number from 1024 to 1073741824, got "12" (from .env)\n' },
      { code, out, err })
    for _, text in ipairs { "65536", "-1", "80a", "8080.0", "0x50", " 80" } do
      code, _, err = get(dir, "PORT", { PORT = text })
      assert.equal(3, code, text)
      assert.equal(('PORT must be a whole number from 0 to 65535, got %q (from the environment)\n'):format(text), err)
    end
    assert.same({ 0, "0\tnumber\tenvironment\n", "" }, { get(dir, "PORT", { PORT = "0" }) })
    assert.same({ 0, "65535\tnumber\tenvironment\n", "" }, { get(dir, "PORT", { PORT = "65535" }) })
  end)

  it("escapes control characters of a bad value in its error", function()
    local _, _, err = get(dir, "PORT", { PORT = "8\27[2J" })
    assert.equal('PORT must be a whole number from 0 to 65535, got "8\\x1b[2J" (from the environment)\n', err)
  end)

  it("refuses a name it does not know", function()
    local code, _, err = get(dir, "PROT")
    assert.equal(3, code)
    assert.equal('todohost has no setting named PROT (see docs/lua-api.md, "Settings")\n', err)
  end)

  it("stops every command at start when DEBUG is not a true/false word", function()
    h.write(dir .. "/.env", "DEBUG=maybe\n")
    local code, out, err = get(dir, "PORT")
    assert.same({ 1, "", 'todohost: DEBUG must be true or false (1, true, yes, on, t, y / 0, false, no, off, f, n; '
      .. 'any case), got "maybe" (from .env)\n' }, { code, out, err })
  end)

  it("lists every setting with its kind, value, source, default and doc; a bad one with its error", function()
    h.write(dir .. "/all.lua", [[
for _, e in ipairs(require("todohost.settings").all()) do
  print(e.name, e.kind, tostring(e.value), e.source, tostring(e.default), e.min, e.max, e.doc ~= nil, e.error)
end
]])
    local code, out = h.run("env -u PORT -u WORKERS -u DEBUG MAX_BODY=huge WORKERS=4 " .. h.quote(bin) .. " run all.lua", dir)
    assert.equal(0, code)
    assert.truthy(out:find("\nPORT\tinteger\t8080\tdefault\t8080\t0\t65535\ttrue\tnil\n", 1, true), out)
    assert.truthy(out:find("\nWORKERS\tinteger\t4\tenvironment\tnil\t1\t256\ttrue\tnil\n", 1, true), out)
    assert.truthy(out:find("\nMAX_BODY\tinteger\tnil\tenvironment\t1048576\t1024\t1073741824\ttrue\t"
      .. 'MAX_BODY must be a whole number from 1024 to 1073741824, got "huge" (from the environment)\n', 1, true), out)
    assert.truthy(out:find("^DATABASE_URL\tstring\t"), out)
    assert.truthy(out:find("\nDEBUG\tboolean\tfalse\tdefault\tfalse\tnil\tnil\ttrue\tnil\n", 1, true), out)
  end)

  it("gives the typed default of a setting", function()
    assert.equal("sqlite:///./database.db", settings.default("DATABASE_URL"))
    assert.equal(8080, settings.default("PORT"))
    assert.equal("true", settings.default("ACCESS_LOG"))
    assert.equal(false, settings.default("MIGRATE_ON_START"))
    assert.is_nil(settings.default("WORKERS"))
  end)
end)
