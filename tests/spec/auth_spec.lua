-- tests/spec/auth_spec.lua: auth.lua: the loopback test and the constant-time
-- comparison in process; over real HTTP, the token required (401 without
-- it or with a wrong one, /health exempt, API_TOKEN_EXEMPT), the refusal
-- to serve a non-loopback HOST without a token (ALLOW_NO_TOKEN lifts it),
-- and the token never in the log or in doctor's output.
local auth = require "auth"
local helper = require "spec_helper"
local api_helper = require "api_helper"

local kind = helper.database_url():match("^postgres") and "postgresql" or "sqlite"
local quote = helper.quote
local TOKEN = "s3cret-token-for-the-spec"

describe("auth.lua", function()
  it("tells loopback addresses from the others", function()
    for _, host in ipairs { "127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]" } do
      assert.is_true(auth.is_loopback(host), host)
    end
    for _, host in ipairs { "0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "127.0.0.1.evil", "example.org" } do
      assert.is_false(auth.is_loopback(host), host)
    end
  end)

  it("compares whole strings", function()
    assert.is_true(auth.same("Bearer abc", "Bearer abc"))
    assert.is_false(auth.same("Bearer abd", "Bearer abc"))
    assert.is_false(auth.same("Bearer ab", "Bearer abc"))
    assert.is_false(auth.same("Bearer abcd", "Bearer abc"))
    assert.is_false(auth.same("", "Bearer abc"))
  end)
end)

describe("the API token over HTTP on " .. kind, function()
  local url, tmp, migrations

  setup(function()
    tmp = helper.tmpdir()
    url = helper.database_url()
    api_helper.migrate(url)
    migrations = api_helper.fake_migrations_dir(tmp .. "/migrations")
  end)

  local function env(extra)
    local e = { DATABASE_URL = url, WORKERS = "1", MIGRATIONS_DIR = migrations }
    for k, v in pairs(extra) do e[k] = v end
    return e
  end

  local function status(base, path, header)
    local _, out = helper.run(("curl -s -o /dev/null -w '%%{http_code}' %s %s"):format(
      header and ("-H " .. quote(header)) or "", quote(base .. path)))
    return tonumber(out)
  end

  it("answers 401 without the right token, and /health (exempt) without one", function()
    local log = tmp .. "/token.log"
    local pid, base = helper.serve(env { API_TOKEN = TOKEN, ACCESS_LOG = "json", DEBUG = "true" }, log)
    local ok, err = pcall(function()
      assert.equal(401, status(base, "/todos"))
      assert.equal(401, status(base, "/todos", "Authorization: Bearer wrong"))
      assert.equal(401, status(base, "/todos", "Authorization: Bearer " .. TOKEN .. "x"))
      assert.equal(401, status(base, "/todos", "Authorization: " .. TOKEN))
      assert.equal(401, status(base, "/metrics"))
      assert.equal(200, status(base, "/todos", "Authorization: Bearer " .. TOKEN))
      assert.equal(200, status(base, "/todos", "Authorization: bearer " .. TOKEN))
      assert.equal(200, status(base, "/metrics", "Authorization: Bearer " .. TOKEN))
      assert.equal(200, status(base, "/health"))
      local _, headers = helper.run("curl -s -D - -o /dev/null " .. quote(base .. "/todos"))
      assert.matches("www%-authenticate: bearer", headers:lower())
    end)
    helper.stop(pid)
    assert(ok, err)
    assert.is_nil((helper.read(log) or ""):find(TOKEN, 1, true))
  end)

  it("serves the paths of API_TOKEN_EXEMPT without the token", function()
    local pid, base = helper.serve(env { API_TOKEN = TOKEN, API_TOKEN_EXEMPT = "/health, /metrics" },
      tmp .. "/exempt.log")
    local ok, err = pcall(function()
      assert.equal(200, status(base, "/metrics"))
      assert.equal(200, status(base, "/health"))
      assert.equal(401, status(base, "/todos"))
    end)
    helper.stop(pid)
    assert(ok, err)
  end)

  it("refuses to serve a non-loopback HOST without a token, in one line", function()
    local parts = { "env" }
    for k, v in pairs(env { HOST = "0.0.0.0" }) do parts[#parts + 1] = k .. "=" .. quote(v) end
    local code, out, err = helper.run(table.concat(parts, " ") .. " " .. quote(helper.todohost())
      .. " run serve.lua </dev/null")
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("HOST=0.0.0.0 is not a loopback address and API_TOKEN is not set", err, 1, true)
    assert.equal(1, select(2, err:gsub("\n", "")), err)
  end)

  it("serves a non-loopback HOST with a token, or when told so with ALLOW_NO_TOKEN", function()
    local pid, base = helper.serve(env { HOST = "0.0.0.0", API_TOKEN = TOKEN }, tmp .. "/exposed.log")
    local ok, err = pcall(function() assert.equal(401, status(base, "/todos")) end)
    helper.stop(pid)
    assert(ok, err)
    pid, base = helper.serve(env { HOST = "0.0.0.0", ALLOW_NO_TOKEN = "true" }, tmp .. "/open.log")
    ok, err = pcall(function() assert.equal(200, status(base, "/todos")) end)
    helper.stop(pid)
    assert(ok, err)
  end)

  it("never shows the token in doctor's settings line", function()
    local code, out, err = helper.run(("env DATABASE_URL=%s API_TOKEN=%s %s run doctor.lua"):format(
      quote(url), quote(TOKEN), quote(helper.todohost())))
    assert.is_number(code)
    assert.matches("API_TOKEN=***", out .. err, 1, true)
    assert.is_nil((out .. err):find(TOKEN, 1, true))
  end)
end)
