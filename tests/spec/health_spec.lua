-- tests/spec/health_spec.lua (scripts/app/health.lua): GET /health through a
-- router holding only its route, on a database of its own on this pass:
-- the database kind and the revision alembic_version holds (null when it
-- holds none), the route's declaration for OpenAPI, and (PostgreSQL) 503
-- when the connection is lost inside a transaction.
local h = require "spec_helper"
local api_helper = require "api_helper"
local router = require "web.router"
local cjson = require "cjson"
local health = require "health"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"

describe("health (" .. kind .. ")", function()
  local conn, done, handle
  setup(function()
    conn, done = h.fresh_connection("health_spec")
    conn:exec("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    local r = router.new()
    for _, route in ipairs(health) do r:add(route) end
    handle = r:handler(conn)
  end)
  teardown(function() done() end)

  it("declares one route, GET /health, with its response model", function()
    assert.equal(1, #health)
    assert.equal("GET", health[1].method)
    assert.equal("/health", health[1].path)
    assert.equal("health", health[1].name)
    assert.equal("Health", health[1].response.name)
  end)

  it("reports the database kind and a null revision when none is applied", function()
    local status, body, headers = api_helper.call(handle, "GET", "/health")
    assert.equal(200, status)
    assert.equal("application/json; charset=utf-8", headers["content-type"])
    assert.same({ status = "ok", database = kind, revision = cjson.null }, body)
  end)

  it("reports the revision alembic_version holds, keys in the model's order", function()
    conn:exec("INSERT INTO alembic_version (version_num) VALUES ('abc123')")
    local _, _, _, raw = api_helper.call(handle, "GET", "/health")
    assert.equal('{"status":"ok","database":"' .. kind .. '","revision":"abc123"}', raw)
    conn:exec("DELETE FROM alembic_version")
  end)

  it("reports a null revision, not 500, when the database was never migrated (no alembic_version)", function()
    conn:exec("DROP TABLE alembic_version")
    local status, body = api_helper.call(handle, "GET", "/health")
    conn:exec("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    assert.equal(200, status)
    assert.same({ status = "ok", database = kind, revision = cjson.null }, body)
  end)

  it("answers 503 when the database connection is lost inside a transaction (PostgreSQL)", function()
    if kind ~= "postgresql" then return end
    local url, drop = h.fresh_database("health_gone")
    local gone = require("todohost.db").connect(url)
    local r = router.new()
    for _, route in ipairs(health) do r:add(route) end
    local gone_handle = r:handler(gone)
    local pid = gone:first("SELECT pg_backend_pid() AS pid").pid
    local status, body
    pcall(gone.transaction, gone, function()
      gone:first("SELECT 1 AS one")
      conn:exec("SELECT pg_terminate_backend($1)", pid)
      status, body = api_helper.call(gone_handle, "GET", "/health")
    end)
    pcall(gone.close, gone)
    drop()
    assert.equal(503, status)
    assert.same({ detail = "Database unavailable" }, body)
  end)
end)
