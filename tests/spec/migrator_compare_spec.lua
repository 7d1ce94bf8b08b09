-- tests/spec/migrator_compare_spec.lua (migrator/compare.lua, with
-- migrator/schema.lua): the declared schema set against the database of this
-- pass, through `migrate.lua check` as a user runs it: the Todo app's
-- migrations at head match scripts/app/models.lua; each kind of difference is one
-- line naming both sides and which one to change (a change made by hand in
-- the database, or a schema edited without a migration); serve.lua warns at
-- start and serves anyway.
local h = require "spec_helper"
local sh = require "schema_helper"
local db = require "todohost.db"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"
local DB_SIDE = "(the migrations make the schema's: the database was changed by hand; change it back)"
local SCHEMA_SIDE = "(the migrations make the database's: autogenerate a migration, or change the schema)"

-- The lines of text after the FAILED line.
local function difference_lines(text)
  local lines = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^  ") then lines[#lines + 1] = line:sub(3) end
  end
  return lines
end

describe("the declared schema against the database (" .. kind .. ")", function()
  local url, drop

  before_each(function() url, drop = h.fresh_database("compare_spec") end)
  after_each(function() drop() end)

  it("finds the Todo app's database at head clean against scripts/app/models.lua", function()
    local code, _, err = sh.migrate(url, "migrations", "upgrade head")
    assert.equal(0, code, err)
    code, _, err = sh.migrate(url, "migrations", "check")
    assert.equal(0, code, err)
    assert.equal("", err)
    -- and reports a change made by hand, with the issue's wording
    if kind == "postgresql" then
      sh.exec(url, "ALTER TABLE todos ALTER COLUMN is_completed SET DEFAULT true")
      code, _, err = sh.migrate(url, "migrations", "check")
      assert.equal(1, code)
      assert.same({ "todos.is_completed: server default false in the schema, true in the database " .. DB_SIDE },
        difference_lines(err))
    else
      sh.exec(url, "DROP INDEX ix_todos_id")
      code, _, err = sh.migrate(url, "migrations", "check")
      assert.equal(1, code)
      assert.same({ "todos: index ix_todos_id (id) in the schema, not in the database " .. DB_SIDE }, difference_lines(err))
    end
    assert.matches("^FAILED: the database is at head %(2026_02_21_004%) but differs from the schema in [^\n]*models%.lua %(1 difference%):", err)
  end)

  it("is clean when the schema declares what the migrations made, every kind of element included", function()
    local dir = sh.revisions({ { "r1", sh.REVISION } })
    assert.equal(0, (sh.migrate(url, dir, "upgrade head")))
    local code, out, err = sh.migrate(url, dir, "check --schema " .. h.quote(sh.schema_file(sh.SCHEMA)))
    assert.equal(0, code, err)
    assert.equal("", out .. err)
  end)

  it("lists changes made by hand in the database, one line each, the database to change", function()
    local dir = sh.revisions({ { "r1", sh.REVISION } })
    assert.equal(0, (sh.migrate(url, dir, "upgrade head")))
    sh.exec(url, "DROP INDEX ix_posts_user_id")
    sh.exec(url, "ALTER TABLE users ADD COLUMN nickname VARCHAR(20)")
    local code, _, err = sh.migrate(url, dir, "check --schema " .. h.quote(sh.schema_file(sh.SCHEMA)))
    assert.equal(1, code)
    assert.same({
      "users.nickname: column in the database, not in the schema " .. DB_SIDE,
      "posts: index ix_posts_user_id (user_id) in the schema, not in the database " .. DB_SIDE,
    }, difference_lines(err))
  end)

  it("lists a schema edited without a migration, one line each, the schema's side named", function()
    local dir = sh.revisions({ { "r1", sh.REVISION } })
    assert.equal(0, (sh.migrate(url, dir, "upgrade head")))
    local edited = sh.SCHEMA
      :gsub('"published", t.boolean, { nullable = false, server_default = false }', '"published", t.boolean, { nullable = false, server_default = true }')
      :gsub("t.string%(100%)", "t.string(120)")
      :gsub('s.column%("body", t.text%)', 's.column("body", t.text, { nullable = false })')
      :gsub('{ "active", "blocked" }', '{ "active", "blocked", "deleted" }')
      :gsub('ondelete = "CASCADE"', 'ondelete = "SET NULL"')
      :gsub(',\n    s.check%("score >= 0", { name = "score_positive" }%)', "")
      :gsub('s.column%("id", t.integer, { primary_key = true }%),\n    s.column%("user_id"',
        's.column("id", t.integer, { primary_key = true }),\n    s.column("title", t.string(50)),\n    s.column("user_id"')
    local code, _, err = sh.migrate(url, dir, "check --schema " .. h.quote(sh.schema_file(edited)))
    assert.equal(1, code)
    assert.same({
      "users.email: type varchar(120) in the schema, varchar(100) in the database " .. SCHEMA_SIDE,
      "users.status: enum values active, blocked, deleted in the schema, active, blocked in the database " .. SCHEMA_SIDE,
      "users: check constraint score_positive (" .. (kind == "postgresql" and "(score >= (0)::numeric)" or "score >= 0")
        .. ") in the database, not in the schema " .. SCHEMA_SIDE,
      "posts.title: column in the schema, not in the database " .. SCHEMA_SIDE,
      "posts.body: NOT NULL in the schema, NULL allowed in the database " .. SCHEMA_SIDE,
      "posts.published: server default true in the schema, false in the database " .. SCHEMA_SIDE,
      "posts: foreign key (user_id) -> users (id) ON DELETE SET NULL in the schema, (user_id) -> users (id) ON DELETE CASCADE in the database "
        .. SCHEMA_SIDE,
    }, difference_lines(err))
  end)

  it("keeps the revision check: behind head it says so, and how far", function()
    local dir = sh.revisions({ { "r1", sh.REVISION }, { "r2", "" } })
    assert.equal(0, (sh.migrate(url, dir, "upgrade r1")))
    local code, _, err = sh.migrate(url, dir, "check --schema " .. h.quote(sh.schema_file(sh.SCHEMA)))
    assert.equal(1, code)
    assert.matches("FAILED: Target database is not up to date: it is at r1, head is r2 (1 revision to apply)", err, 1, true)
  end)

  it("refuses a schema file it cannot use with one line naming it", function()
    local dir = sh.revisions({ { "r1", sh.REVISION } })
    assert.equal(0, (sh.migrate(url, dir, "upgrade head")))
    local code, _, err = sh.migrate(url, dir, "check --schema /nonexistent/models.lua")
    assert.equal(1, code)
    assert.equal("FAILED: no schema file at /nonexistent/models.lua: give one with --schema FILE\n", err)
    local bad = sh.schema_file("return { tables = {} }")
    code, _, err = sh.migrate(url, dir, "check --schema " .. h.quote(bad))
    assert.equal(1, code)
    assert.equal("FAILED: the schema " .. bad .. " must return schema.define { schema.table(...), ... }\n", err)
    bad = sh.schema_file([[local s = require "migrator.schema"
return s.define { s.table("t", s.column("id", s.types.integer), s.index("ix", { "nope" })) }]])
    code, _, err = sh.migrate(url, dir, "check --schema " .. h.quote(bad))
    assert.equal(1, code)
    assert.equal("FAILED: table t: index ix names column nope, which is not declared\n", err)
  end)

  it("serve.lua warns at start, one line per difference, and serves anyway", function()
    assert.equal(0, (sh.migrate(url, "migrations", "upgrade head")))
    sh.exec(url, "DROP INDEX ix_todos_id")
    local out
    for _ = 1, 3 do   -- another suite may take the free port first
      local port = h.free_port()
      local script = ([[
        env -u DEBUG DATABASE_URL=%s PORT=%d WORKERS=1 RELOAD=false %s run serve.lua 2>&1 & pid=$!
        for i in $(seq 1 100); do
          if curl -s -o /dev/null http://127.0.0.1:%d/health; then echo SERVED; break; fi
          kill -0 $pid 2>/dev/null || break
          sleep 0.1
        done
        kill $pid; wait $pid]]):format(h.quote(url), port, h.quote(h.todohost()), port)
      out = select(2, h.run(script))
      if not out:find("already in use", 1, true) then break end
    end
    assert.matches("todohost: warning: schema drift: todos: index ix_todos_id (id) in the schema, not in the database\n", out, 1, true)
    assert.matches("SERVED", out, 1, true)
  end)
end)

describe("the HTTP models and the declared schema", function()
  it("take the title's limit from the schema's todos.title", function()
    local saved_models, saved_todos = package.loaded.models, package.loaded.todos
    local s = require "migrator.schema"
    package.loaded.models = s.define { s.table("todos",
      s.column("id", s.types.integer, { primary_key = true }),
      s.column("title", s.types.string(50), { nullable = false })) }
    package.loaded.todos = nil
    local ok, routes = pcall(require, "todos")
    package.loaded.models, package.loaded.todos = saved_models, saved_todos
    assert.is_true(ok, tostring(routes))
    local limit
    for _, r in ipairs(routes) do
      if r.method == "POST" and r.path == "/todos" then
        for _, f in ipairs(r.body.fields) do if f[1] == "title" then limit = f.max_length end end
      end
    end
    assert.equal(50, limit)
    assert.equal(200, require("migrator.schema").column_of(require "models", "todos", "title").type.length)
  end)
end)
