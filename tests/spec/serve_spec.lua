-- tests/spec/serve_spec.lua: what serve.lua and seed.lua do before serving:
-- seeding an empty todos table from seeds/*.lua (and only then), the check
-- that the database is at the migrations' head, and clear errors for bad
-- settings. Runs on the database of this pass.
local db = require "todohost.db"
local helper = require "spec_helper"
local api_helper = require "api_helper"
local seeding = require "seeding"

local url = helper.database_url()
local kind = url:match("^postgres") and "postgresql" or "sqlite"
local quote = helper.quote

-- Runs `todohost run SCRIPT` with env (a table) on this pass's database.
local function run_script(script, env)
  local parts = { "env", "DATABASE_URL=" .. quote(url) }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. quote(v) end
  parts[#parts + 1] = quote(helper.todohost())
  parts[#parts + 1] = "run " .. script
  return helper.run(table.concat(parts, " ") .. " </dev/null")
end

local function revision_file(dir, rev, down)
  helper.write(("%s/%s.lua"):format(dir, rev), ([[
return { revision = %q, down_revision = %s, message = "spec",
  upgrade = function() end, downgrade = function() end }
]]):format(rev, down and ("%q"):format(down) or "nil"))
end

describe("seeding on " .. kind, function()
  local conn

  setup(function()
    api_helper.migrate(url)
    conn = db.connect(url)
  end)
  teardown(function() conn:close() end)
  before_each(function() conn:exec("DELETE FROM todos") end)

  local function count() return conn:first("SELECT count(*) AS n FROM todos").n end

  it("runs seeds/*.lua into an empty todos table, once", function()
    local ran = seeding.run(conn)
    assert.is_true(ran >= 1)
    local n = count()
    assert.is_true(n >= 1)
    for _, t in ipairs(conn:query("SELECT title, is_completed, created_at FROM todos")) do
      assert.is_string(t.title)
      assert.is_boolean(t.is_completed)
      assert.is_string(t.created_at)
    end
    assert.equal(0, seeding.run(conn))
    assert.equal(n, count())
  end)

  it("never seeds a table that has rows, deleted ones included", function()
    conn:exec("INSERT INTO todos (title, deleted_at) VALUES ('gone', CURRENT_TIMESTAMP)")
    assert.equal(0, seeding.run(conn))
    assert.equal(1, count())
  end)

  it("runs the seed files in name order, all or nothing", function()
    local dir = helper.tmpdir()
    helper.write(dir .. "/002_second.lua", [[return function(conn)
      conn:exec("INSERT INTO todos (title) VALUES ('second')") end]])
    helper.write(dir .. "/001_first.lua", [[return function(conn)
      conn:exec("INSERT INTO todos (title) VALUES ('first')") end]])
    assert.equal(2, seeding.run(conn, dir))
    local titles = {}
    for _, r in ipairs(conn:query("SELECT title FROM todos ORDER BY id")) do titles[#titles + 1] = r.title end
    assert.same({ "first", "second" }, titles)

    conn:exec("DELETE FROM todos")
    helper.write(dir .. "/003_broken.lua", [[return function(conn) error("seed 003 is broken") end]])
    local ok, err = pcall(seeding.run, conn, dir)
    assert.is_false(ok)
    assert.matches("seed 003 is broken", tostring(err))
    assert.equal(0, count())   -- the first two were rolled back

    helper.write(dir .. "/003_broken.lua", "return 42")
    ok, err = pcall(seeding.run, conn, dir)
    assert.is_false(ok)
    assert.matches("003_broken.lua must return function%(conn%)", tostring(err))
  end)

  it("seeds once when two processes seed an empty database at once (PostgreSQL: an advisory lock)", function()
    local project = helper.tmpdir()
    assert(os.execute("mkdir -p " .. quote(project .. "/seeds")))
    -- a slow seed: without the lock both processes find the table empty
    helper.write(project .. "/seeds/001_slow.lua", [[return function(conn)
      if conn.kind == "postgresql" then conn:exec("SELECT pg_sleep(1)") end
      conn:exec("INSERT INTO todos (title) VALUES ('slow seed')") end]])
    local one = ("env DATABASE_URL=%s %s run seed.lua"):format(quote(url), quote(helper.todohost()))
    local code, out, err = helper.run(("(%s) & (%s) & wait"):format(one, one), project)
    assert.equal(0, code, err)
    assert.equal(1, count(), out .. err)
    assert.equal(1, select(2, out:gsub("not seeding", "")), out)
  end)

  it("`todohost run seed.lua` seeds, then says it has nothing to do", function()
    local code, out, err = run_script("seed.lua")
    assert.equal(0, code, err)
    assert.matches("seeded", out)
    assert.is_true(count() >= 1)
    code, out = run_script("seed.lua")
    assert.equal(0, code)
    assert.matches("not seeding", out)
  end)
end)

describe("serve.lua start-up on " .. kind, function()
  local conn, migrations, head

  setup(function()
    head = api_helper.migrate(url)
    conn = db.connect(url)
    migrations = helper.tmpdir()
    revision_file(migrations, "spec_r1", nil)
    revision_file(migrations, "spec_r2", "spec_r1")
  end)

  local function at(rev)
    conn:exec("DELETE FROM alembic_version")
    if rev then conn:exec("INSERT INTO alembic_version (version_num) VALUES ($1)", rev) end
  end

  teardown(function()
    at(head)   -- the real revision again, for whatever runs next on this database
    conn:close()
  end)

  it("exits 1 when the database is behind the migrations' head", function()
    at("spec_r1")
    local code, _, err = run_script("serve.lua", { MIGRATIONS_DIR = migrations, PORT = "0" })
    assert.equal(1, code)
    assert.matches("database is at spec_r1, migrations head is spec_r2: run `make migrate`", err, 1, true)
  end)

  it("with MIGRATE_ON_START=true, instances started at once migrate once (the migrator's lock), then serve", function()
    at(nil)
    local tmp = helper.tmpdir()
    local pids, logs = {}, {}
    local parts = { "env", "DATABASE_URL=" .. quote(url), "MIGRATIONS_DIR=" .. quote(migrations), "PORT=0",
      "WORKERS=1", "MIGRATE_ON_START=true", quote(helper.todohost()), "run serve.lua" }
    for i = 1, 3 do
      logs[i] = ("%s/serve%d.log"):format(tmp, i)
      pids[i] = io.popen(("%s >%s 2>&1 </dev/null & echo $!"):format(table.concat(parts, " "), quote(logs[i])))
        :read("l")
    end
    local all = ""
    for i = 1, 3 do
      for _ = 1, 200 do
        if (helper.read(logs[i]) or ""):find("serving on", 1, true) then break end
        os.execute("sleep 0.1")
      end
      helper.stop(pids[i])
      all = all .. (helper.read(logs[i]) or "")
    end
    assert.equal(3, select(2, all:gsub("serving on", "")), all)
    assert.equal(1, select(2, all:gsub("Running upgrade  %-> spec_r1", "")), all)
    assert.equal(1, select(2, all:gsub("Running upgrade spec_r1 %-> spec_r2", "")), all)
    assert.equal("spec_r2", conn:first("SELECT version_num FROM alembic_version").version_num)
  end)

  it("exits 1 when the database was never migrated", function()
    at(nil)
    local code, _, err = run_script("serve.lua", { MIGRATIONS_DIR = migrations, PORT = "0" })
    assert.equal(1, code)
    assert.matches("database is at no revision, migrations head is spec_r2: run `make migrate`", err, 1, true)
  end)

  it("exits 1 when the database is at a revision migrations/ does not have", function()
    at("spec_other")
    local code, _, err = run_script("serve.lua", { MIGRATIONS_DIR = migrations, PORT = "0" })
    assert.equal(1, code)
    assert.matches("database is at spec_other", err, 1, true)
    assert.matches("head is spec_r2", err, 1, true)
  end)

  it("exits 1 with one clear line for a bad setting", function()
    at("spec_r2")
    for name, value in pairs { PORT = "eighty", WORKERS = "0", ACCESS_LOG = "maybe",
        MAX_CONNECTIONS_PER_IP = "-1" } do
      local code, _, err = run_script("serve.lua", { MIGRATIONS_DIR = migrations, [name] = value })
      assert.equal(1, code, name)
      assert.matches(name, err)
      assert.equal(1, select(2, err:gsub("\n", "")), err)
    end
  end)

  it("exits 1 without a password in the message when the database cannot be reached", function()
    if kind ~= "postgresql" then return end
    local bad = (url:gsub("@([^/:]+):(%d+)", "@%1:1"))
    local code, out, err = helper.run(("env DATABASE_URL=%s MIGRATIONS_DIR=%s %s run serve.lua </dev/null")
      :format(quote(bad), quote(migrations), quote(helper.todohost())))
    assert.equal(1, code)
    assert.matches("todohost: ", err)
    assert.not_matches(helper.pg_password(), out .. err, 1, true)
  end)
end)
