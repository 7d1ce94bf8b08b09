-- tests/spec/http_spec.lua: every row of the Todo API (docs/http-api.md) over real HTTP:
-- `todohost run serve.lua` (the binary under test) on the database of this
-- pass, requests with curl. On PostgreSQL also: the database goes away
-- (503) and comes back (served again without a restart).
local db = require "todohost.db"
local cjson = require "cjson"
local helper = require "spec_helper"
local api_helper = require "api_helper"

local kind = helper.database_url():match("^postgres") and "postgresql" or "sqlite"
local null = cjson.null
local quote = helper.quote

-- PostgreSQL: a database of our own, so it can be dropped under the server.
local SPEC_DB = "todohost_http_spec"
local function spec_url()
  if kind == "sqlite" then return helper.database_url() end
  return (helper.database_url():gsub("/[^/?]*(%??[^/]*)$", "/" .. SPEC_DB .. "%1"))
end

local function admin(sql)
  local conn <close> = db.connect(helper.pg_url())
  conn:exec(sql)
end

local function create_spec_database()
  admin("DROP DATABASE IF EXISTS " .. SPEC_DB .. " WITH (FORCE)")
  admin("CREATE DATABASE " .. SPEC_DB)
end

local function slurp(path) return helper.read(path) or "" end

describe("the Todo API over HTTP on " .. kind, function()
  local url, base, pid, log, tmp

  -- status, headers (lower-case names), body, decoded JSON body (or nil)
  local function request(method, path, opts)
    opts = opts or {}
    local out, hdr = tmp .. "/body", tmp .. "/headers"
    local cmd = { "curl -s --max-time 20 -X", quote(method), "-o", quote(out), "-D", quote(hdr),
      "-w '%{http_code}'" }
    for name, value in pairs(opts.headers or {}) do
      cmd[#cmd + 1] = "-H " .. quote(name .. ": " .. value)
    end
    if opts.json then
      cmd[#cmd + 1] = "-H 'content-type: application/json'"
      helper.write(tmp .. "/request", type(opts.json) == "string" and opts.json or cjson.encode(opts.json))
      cmd[#cmd + 1] = "--data-binary @" .. quote(tmp .. "/request")
    elseif opts.file then
      cmd[#cmd + 1] = "--data-binary @" .. quote(opts.file)
    end
    cmd[#cmd + 1] = quote(base .. path)
    local code, stdout = helper.run(table.concat(cmd, " "))
    -- (curl may fail to send a body the server refused early: the status still tells)
    local headers = {}
    for line in slurp(hdr):gmatch("[^\r\n]+") do
      local name, value = line:match("^([%w-]+):%s*(.*)$")
      if name then headers[name:lower()] = value end
    end
    local body = slurp(out)
    local decoded
    if (headers["content-type"] or ""):find("application/json", 1, true) and body ~= "" then
      decoded = cjson.decode(body)
    end
    return tonumber(stdout), headers, body, decoded
  end

  local function todo_path(id) return ("/todos/%d"):format(id) end

  local function start_server()
    log = tmp .. "/server.log"
    local env = {
      "DATABASE_URL=" .. quote(url), "PORT=0", "WORKERS=2", "HTTP_TIMEOUT=10",
    }
    local fake = api_helper.fake_migrations_dir(tmp .. "/migrations")
    if fake then env[#env + 1] = "MIGRATIONS_DIR=" .. quote(fake) end
    local cmd = ("env %s %s run serve.lua >%s 2>&1 & echo $!"):format(table.concat(env, " "),
      quote(helper.todohost()), quote(log))
    pid = io.popen(cmd):read("l")
    for _ = 1, 300 do
      local port = slurp(log):match("serving on http://[^ ]*:(%d+) ")
      if port then
        base = "http://127.0.0.1:" .. port
        return
      end
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      os.execute("sleep 0.1")
    end
    error("serve.lua did not start:\n" .. slurp(log))
  end

  setup(function()
    tmp = helper.tmpdir()
    if kind == "postgresql" then create_spec_database() end
    url = spec_url()
    api_helper.migrate(url)
    start_server()
  end)

  teardown(function()
    if pid then
      os.execute("kill -TERM " .. pid .. " 2>/dev/null")
      for _ = 1, 100 do
        if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
        os.execute("sleep 0.1")
      end
      os.execute("kill -KILL " .. pid .. " 2>/dev/null")
    end
    if kind == "postgresql" then pcall(admin, "DROP DATABASE IF EXISTS " .. SPEC_DB .. " WITH (FORCE)") end
  end)

  it("seeded the empty database at start-up", function()
    local status, headers, _, list = request("GET", "/todos")
    assert.equal(200, status)
    assert.equal("application/json; charset=utf-8", headers["content-type"])
    assert.is_true(#list >= 1)
    assert.matches("empty database seeded", slurp(log))
    local conn <close> = db.connect(url)
    assert.equal(#list, conn:first("SELECT count(*) AS n FROM todos").n)
  end)

  it("POST, GET, PATCH and DELETE a todo", function()
    local status, headers, _, todo = request("POST", "/todos", { json = { title = "  over HTTP  " } })
    assert.equal(201, status)
    assert.matches("^application/json", headers["content-type"])
    assert.same({ "over HTTP", null, false, null },
      { todo.title, todo.description, todo.is_completed, todo.updated_at })
    assert.matches(api_helper.TIMESTAMP, todo.created_at)

    local _, _, _, got = request("GET", todo_path(todo.id))
    assert.same(todo, got)

    local _, _, _, list = request("GET", "/todos", { headers = {} })
    assert.equal(todo.id, list[#list].id)

    local _, _, _, patched = request("PATCH", todo_path(todo.id),
      { json = { is_completed = true, description = "details" } })
    assert.is_true(patched.is_completed)
    assert.equal("details", patched.description)
    assert.matches(api_helper.TIMESTAMP, patched.updated_at)

    local _, _, _, done = request("GET", "/todos", { headers = {} })
    local seen = false
    for _, t in ipairs(done) do seen = seen or t.id == todo.id end
    assert.is_true(seen)
    status = request("GET", "/todos?completed=false")
    assert.equal(200, status)
    local _, _, _, open = request("GET", "/todos?completed=false&limit=1000")
    for _, t in ipairs(open) do assert.not_equal(todo.id, t.id) end

    local del_status, del_headers, del_body = request("DELETE", todo_path(todo.id))
    assert.equal(204, del_status)
    assert.equal("", del_body)
    assert.is_nil(del_headers["content-type"])
    assert.equal(404, (request("GET", todo_path(todo.id))))
    assert.equal(404, (request("DELETE", todo_path(todo.id))))
    assert.equal(404, (request("PATCH", todo_path(todo.id), { json = { title = "x" } })))
  end)

  it("gives FastAPI's 404, 405 and 422 bodies", function()
    local status, _, _, body = request("GET", "/todos/999999")
    assert.same({ 404, { detail = "Todo not found" } }, { status, body })
    status, _, _, body = request("GET", "/nowhere")
    assert.same({ 404, { detail = "Not Found" } }, { status, body })
    local headers
    status, headers, _, body = request("PUT", "/todos/1", { json = { title = "x" } })
    assert.same({ 405, { detail = "Method Not Allowed" } }, { status, body })
    assert.equal("DELETE, GET, PATCH", headers.allow)

    status, _, _, body = request("GET", "/todos/abc")
    assert.equal(422, status)
    assert.same({ "path", "todo_id" }, body.detail[1].loc)
    status, _, _, body = request("GET", "/todos?skip=-1&limit=5000")
    assert.equal(422, status)
    assert.equal(2, #body.detail)
    status, _, _, body = request("POST", "/todos", { json = {} })
    assert.same({ 422, { detail = { { loc = { "body", "title" }, msg = "field required",
      type = "value_error.missing" } } } }, { status, body })
    status, _, _, body = request("POST", "/todos", { json = "{not json" })
    assert.equal(422, status)
    assert.equal("value_error.jsondecode", body.detail[1].type)
    status = request("PATCH", "/todos/1", { json = '{"is_completed": null}' })
    assert.equal(422, status)
  end)

  it("answers the HTTP edges as nginx would", function()
    -- %00 would end the decoded path: /todos/1 must not answer
    local status, headers, _, body = request("GET", "/todos/1%00abc")
    assert.same({ 400, { detail = "Bad Request" } }, { status, body })
    assert.equal("close", headers.connection)
    -- CR/LF in a path: no trailing-slash redirect with CR/LF in Location (a 500)
    status, headers, _, body = request("GET", "/todos%0d%0aSet-Cookie:%20x=1/")
    assert.same({ 404, { detail = "Not Found" } }, { status, body })
    assert.is_nil(headers["set-cookie"])
    status = request("GET", "/todos/1%1b%5b2J")
    assert.equal(404, status)

    -- the access log shows the path escaped, on one line
    os.execute("sleep 0.3")
    assert.matches("GET /todos\\x0d\\x0aSet-Cookie: x=1/ 404", slurp(log), 1, true)
  end)

  it("stores SQL meta-characters literally", function()
    local evil = "x'; DROP TABLE todos; --"
    local status, _, _, todo = request("POST", "/todos", { json = { title = evil } })
    assert.equal(201, status)
    local _, _, _, got = request("GET", todo_path(todo.id))
    assert.equal(evil, got.title)
  end)

  it("answers 413 to a body over 1 MiB", function()
    local big = tmp .. "/big.json"
    helper.write(big, '{"title": "' .. string.rep("a", 1100000) .. '"}')
    local status = request("POST", "/todos", { file = big, headers = { ["content-type"] = "application/json" } })
    assert.equal(413, status)
  end)

  it("serves /health, /openapi.json and /docs", function()
    local status, _, _, health = request("GET", "/health")
    assert.equal(200, status)
    assert.equal("ok", health.status)
    assert.equal(kind, health.database)
    assert.is_string(health.revision)

    local _, _, _, doc = request("GET", "/openapi.json")
    assert.matches("^3%.", doc.openapi)
    assert.is_table(doc.paths["/todos/{todo_id}"].patch)
    assert.is_table(doc.components.schemas.TodoUpdate)

    local headers, html
    status, headers, html = request("GET", "/docs")
    assert.equal(200, status)
    assert.matches("^text/html", headers["content-type"])
    assert.matches("swagger%-ui%-bundle%.js", html)
    status, headers = request("GET", "/docs/swagger-ui.css")
    assert.equal(200, status)
    assert.matches("^text/css", headers["content-type"])
  end)

  it("logs one access line per request", function()
    request("GET", "/todos/424242")
    os.execute("sleep 0.2")
    assert.matches("GET /todos/424242 404", slurp(log))
  end)

  if kind == "postgresql" then
    it("answers 503 while the database is gone, and recovers without a restart", function()
      assert.equal(200, (request("GET", "/health")))
      admin("DROP DATABASE " .. SPEC_DB .. " WITH (FORCE)")
      for _, path in ipairs { "/health", "/todos", "/todos/1", "/health" } do
        local status, _, raw, body = request("GET", path)
        assert.equal(503, status, path)
        assert.is_string(body.detail)
        assert.not_matches(helper.pg_password(), raw, 1, true)
      end
      admin("CREATE DATABASE " .. SPEC_DB)
      api_helper.migrate(url)
      local ok
      for _ = 1, 20 do   -- each worker reconnects on its next request
        ok = request("GET", "/health") == 200 and request("GET", "/todos") == 200
        if ok then break end
        os.execute("sleep 0.1")
      end
      assert.is_true(ok)
      local status = request("POST", "/todos", { json = { title = "after the outage" } })
      assert.equal(201, status)
      assert.not_matches(helper.pg_password(), slurp(log), 1, true)
    end)
  end
end)
