-- tests/spec/app_spec.lua (scripts/app/app.lua): what each HTTP worker
-- requires: in a separate todohost with DATABASE_URL naming a database of
-- its own on this pass (migrated to head), `require "app"` opens it and
-- gives the request handler, which answers /health with that database's
-- kind and revision and serves the Todo routes on it.
local h = require "spec_helper"
local db = require "todohost.db"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"

describe("app (" .. kind .. ")", function()
  local url, drop
  setup(function()
    url, drop = h.fresh_database("app_spec")
    local code, out, err = h.run(("DATABASE_URL=%s %s run migrate.lua -q upgrade head")
      :format(h.quote(url), h.quote(h.todohost())))
    assert(code == 0, out .. err)
  end)
  teardown(function() drop() end)

  it("opens DATABASE_URL and returns the handler of the whole API", function()
    local code, out, err = h.run_lua([[
      local handle = require "app"
      local function show(method, path, body)
        local status, headers, text = handle({ method = method, path = path, query = "", body = body,
          headers = { ["content-type"] = "application/json" } })
        print(status, headers["content-type"], text)
      end
      show("GET", "/health")
      show("POST", "/todos", '{"title": "from app_spec"}')
      show("GET", "/nope")]], "-u API_TOKEN DATABASE_URL=" .. h.quote(url))
    assert.equal(0, code, err)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal('200\tapplication/json; charset=utf-8\t{"status":"ok","database":"' .. kind .. '","revision":"2026_02_21_004"}', lines[1])
    assert.matches('^201\tapplication/json; charset=utf%-8\t{"id":1,"title":"from app_spec",', lines[2])
    assert.equal('404\tapplication/json; charset=utf-8\t{"detail":"Not Found"}', lines[3])
    local conn <close> = db.connect(url)
    assert.equal("from app_spec", conn:first("SELECT title FROM todos").title)
  end)
end)
