-- tests/spec/api_helper.lua: what the API specs share: a database with the
-- todos schema (made by the real migrations when migrations/ has them, else
-- by the DDL the migrations produce), and calling the app's handler the way
-- the server does.
local db = require "todohost.db"
local json = require "cjson"
local helper = require "spec_helper"

local M = {}

local TODOS_DDL = {
  sqlite = [[CREATE TABLE todos (id INTEGER NOT NULL PRIMARY KEY, title VARCHAR(200) NOT NULL,
    description TEXT, is_completed BOOLEAN NOT NULL DEFAULT 0,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at DATETIME, deleted_at DATETIME)]],
  postgresql = [[CREATE TABLE todos (id SERIAL PRIMARY KEY, title VARCHAR(200) NOT NULL,
    description TEXT, is_completed BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE)]],
}

-- true when the real migrations can build the schema.
function M.have_migrations()
  local f = io.open("scripts/migrate.lua", "r")
  if not f then return false end
  f:close()
  local code, out = helper.run("ls migrations/*.lua")
  return code == 0 and out ~= ""
end

-- Brings the database at url to the migrations' head; returns the revision.
function M.migrate(url)
  if M.have_migrations() then
    local code, out, err = helper.run(("DATABASE_URL=%s %s run migrate.lua upgrade head")
      :format(helper.quote(url), helper.quote(helper.todohost())))
    assert(code == 0, "migrate.lua failed:\n" .. out .. err)
    local conn <close> = db.connect(url)
    return conn:first("SELECT version_num FROM alembic_version").version_num
  end
  local conn <close> = db.connect(url)
  conn:exec("DROP TABLE IF EXISTS todos")
  conn:exec("DROP TABLE IF EXISTS alembic_version")
  conn:exec(TODOS_DDL[conn.kind])
  conn:exec("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
  conn:exec("INSERT INTO alembic_version (version_num) VALUES ('spec_head')")
  return "spec_head"
end

-- The app's handler (api.lua) on the database at url brought to head:
-- returns the connection (the caller closes it) and the handler.
function M.app(url)
  M.migrate(url)
  local conn = db.connect(url)
  return conn, require("api").handler(conn)
end

-- Before migrations/ has revisions: a migrations directory in dir holding
-- the one revision M.migrate() records, so serve.lua's start-up check
-- passes. Returns that directory, or nil when the real migrations exist.
function M.fake_migrations_dir(dir)
  if M.have_migrations() then return nil end
  assert(os.execute("mkdir -p " .. helper.quote(dir)))
  helper.write(dir .. "/spec_head.lua", 'return { revision = "spec_head", message = "schema made by '
    .. 'tests/spec/api_helper.lua", upgrade = function() end, downgrade = function() end }\n')
  return dir
end

-- A request table as the server builds it.
function M.request(method, path, opts)
  opts = opts or {}
  local headers = opts.headers or {}
  local body = opts.body
  if opts.json ~= nil then
    body = type(opts.json) == "string" and opts.json or json.encode(opts.json)
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  return { method = method, path = path, query = opts.query or "", headers = headers, body = body }
end

-- Calls handler like the server and decodes a JSON reply:
-- returns status, decoded body (or the raw string), headers, raw body.
function M.call(handler, method, path, opts)
  local assert = require "luassert"
  local status, headers, body = handler(M.request(method, path, opts))
  assert.is_number(status)
  assert.is_table(headers)
  assert.is_string(body)
  local decoded = body
  local ct = headers["content-type"] or ""
  if ct:find("application/json", 1, true) and body ~= "" then decoded = json.decode(body) end
  return status, decoded, headers, body
end

-- ISO 8601 with microseconds and an explicit UTC offset, as the API promises.
M.TIMESTAMP = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%+00:00$"

return M
