-- tests/spec/migrator_autogen_spec.lua (migrator/autogen.lua, `migrate.lua
-- revision --autogenerate`): on the database of this pass, for each kind of
-- schema change (add/drop table, column, index, unique, check, foreign key;
-- type, length, nullability, server default; enum values), the round trip a
-- user makes: edit the schema, autogenerate, upgrade, `check` is clean,
-- downgrade, and the database reads back as it was, its rows kept wherever
-- the change allows. Also: nothing to do writes no file; the generated file
-- reads as written by hand (batch on SQLite, comments over lossy steps).
local h = require "spec_helper"
local sh = require "schema_helper"
local db = require "todohost.db"
local compare = require "migrator.compare"
local reflect = require "migrator.reflect"

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"

local function read_model(url)
  local conn <close> = db.connect(url)
  return reflect.database(conn)
end

local function count(url, tbl)
  local conn <close> = db.connect(url)
  return conn:first("SELECT count(*) AS n FROM " .. tbl).n
end

-- The revision files in dir other than r1's.
local function generated(dir)
  local files = {}
  local p = io.popen("ls " .. h.quote(dir))
  for name in p:lines() do
    if name:match("%.lua$") and name ~= "r1_rev.lua" then files[#files + 1] = dir .. "/" .. name end
  end
  p:close()
  return files
end

-- An edit of the schema's text: {pattern, replacement}.
local function edit(pattern, replacement)
  return { pattern = pattern, replacement = replacement }
end

-- text with the edit made; nil when it does not apply (once exactly).
local function apply(text, e)
  local out, n = text:gsub(e.pattern, e.replacement)
  if n ~= 1 then return nil end
  return out
end

-- sh.SCHEMA with the edit made (raises when it does not apply).
local function edited(pattern, replacement)
  return assert(apply(sh.SCHEMA, edit(pattern, replacement)), "the edit does not apply: " .. pattern)
end

-- Each change: a name, the edit, and whether the upgrade drops posts.

local CHANGES = {
  { "add a table", edit("\n}\n$", [[
  s.table("tags",
    s.column("id", t.integer, { primary_key = true }),
    s.column("post_id", t.integer, { nullable = false }),
    s.column("label", t.string(30), { nullable = false, server_default = "misc" }),
    s.foreign_key("post_id", "posts", "id", { ondelete = "CASCADE" })),
}
]]) },
  { "drop a table", edit(',\n  s.table%("posts",.-%)%),\n}', "\n}"), posts_dropped = true },
  { "add a nullable column", edit('s.column%("body", t.text%),', 's.column("body", t.text),\n    s.column("rating", t.small_integer),') },
  { "add a NOT NULL column with a default", edit('s.column%("body", t.text%),', 's.column("body", t.text),\n    s.column("views", t.integer, { nullable = false, server_default = 0 }),') },
  { "drop a column", edit('\n    s.column%("body", t.text%),', "") },
  { "add an array column", edit('s.column%("body", t.text%),', 's.column("body", t.text),\n    s.column("tags", t.array(t.string(20))),') },
  { "add a char(n) column", edit('s.column%("body", t.text%),', 's.column("body", t.text),\n    s.column("code", t.char(3)),') },
  { "add an index", edit('s.column%("body", t.text%)', 's.column("body", t.text, { index = true })') },
  { "drop an index", edit('\n    s.index%("ix_posts_user_published", { "user_id", "published" }, { unique = true }%),', "") },
  { "add a unique constraint", edit('s.column%("body", t.text%),', 's.column("body", t.text),\n    s.unique("user_id", "created_at"),') },
  { "drop a unique constraint", edit('{ nullable = false, unique = true }', '{ nullable = false }') },
  { "add a check constraint", edit('s.column%("body", t.text%),', 's.column("body", t.text),\n    s.check("id > 0", { name = "id_positive" }),') },
  { "drop a check constraint", edit(',\n    s.check%("score >= 0", { name = "score_positive" }%)', "") },
  { "add a foreign key", edit('s.column%("body", t.text%),', 's.column("body", t.text),\n    s.column("editor_id", t.integer),\n    s.foreign_key("editor_id", "users", "id", { ondelete = "SET NULL" }),') },
  { "drop a foreign key", edit(',\n    s.foreign_key%("user_id", "users", "id", { ondelete = "CASCADE" }%)', "") },
  { "change a foreign key's ON DELETE", edit('ondelete = "CASCADE"', 'ondelete = "SET NULL"') },
  { "change a type", edit("t.numeric%(6, 2%)", "t.numeric(8, 3)") },
  { "change a length", edit("t.string%(100%)", "t.string(150)") },
  { "make a column NOT NULL", edit('s.column%("body", t.text%)', 's.column("body", t.text, { nullable = false })') },
  { "change a server default", edit("nullable = false, server_default = false", "nullable = false, server_default = true") },
  { "drop a server default", edit('{ server_default = s.text%("0"%) }', "{}") },
  { "add an enum value", edit('{ "active", "blocked" }', '{ "active", "blocked", "deleted" }') },
}

describe("revision --autogenerate (" .. kind .. ")", function()
  local url, drop, dir

  before_each(function()
    url, drop = h.fresh_database("autogen_spec")
    dir = sh.revisions({ { "r1", sh.REVISION } })
    h.write(dir .. "/script.lua.tmpl", assert(h.read("migrations/script.lua.tmpl")))
    assert.equal(0, (sh.migrate(url, dir, "upgrade head")))
    sh.exec(url, "INSERT INTO users (email, status) VALUES ('a@x', 'active'), ('b@x', 'blocked')")
    sh.exec(url, "INSERT INTO posts (user_id, body) VALUES (1, 'one'), (2, 'two')")
  end)
  after_each(function() drop() end)

  it("says there is nothing to do, and writes no file, when the database matches", function()
    local code, out, err = sh.migrate(url, dir, "revision --autogenerate -m same --schema " .. h.quote(sh.schema_file(sh.SCHEMA)))
    assert.equal(0, code, err)
    assert.equal("", out)
    assert.same({}, generated(dir))
    code, _, err = h.run("env -u DEBUG DATABASE_URL=" .. h.quote(url) .. " " .. h.quote(h.todohost())
      .. " run migrate.lua --dir " .. h.quote(dir) .. " revision --autogenerate -m same --schema "
      .. h.quote(sh.schema_file(sh.SCHEMA)))
    assert.equal(0, code)
    assert.matches("No changes in schema detected", err, 1, true)
  end)

  it("refuses to start from a database that is not at head", function()
    sh.exec(url, "DELETE FROM alembic_version")
    local code, _, err = sh.migrate(url, dir, "revision --autogenerate -m x --schema " .. h.quote(sh.schema_file(sh.SCHEMA)))
    assert.equal(1, code)
    assert.matches("FAILED: Target database is not up to date: it is at base, head is r1", err, 1, true)
    assert.same({}, generated(dir))
  end)

  -- autogenerate -> upgrade -> check clean -> downgrade -> the same
  -- reflection as before; rows kept at each step (posts' unless dropped).
  local function round_trip(schema_text, posts_dropped, what)
    local before = read_model(url)
    local schema_path = sh.schema_file(schema_text)
    local code, _, err = sh.migrate(url, dir, "revision --autogenerate -m change --schema " .. h.quote(schema_path))
    assert.equal(0, code, err .. "\n" .. what)
    local files = generated(dir)
    assert.equal(1, #files)
    local text = h.read(files[1]) .. "\n" .. what
    code, _, err = sh.migrate(url, dir, "upgrade head")
    assert.equal(0, code, err .. "\n" .. text)
    code, _, err = sh.migrate(url, dir, "check --schema " .. h.quote(schema_path))
    assert.equal(0, code, err .. "\n" .. text)
    assert.equal(2, count(url, "users"))
    if not posts_dropped then assert.equal(2, count(url, "posts")) end
    code, _, err = sh.migrate(url, dir, "downgrade -1")
    assert.equal(0, code, err .. "\n" .. text)
    local after = read_model(url)
    assert.same({}, compare.diff(before, after), text)
    assert.same(before.tables.users.column.status.enum, after.tables.users.column.status.enum)
    assert.equal(2, count(url, "users"))
    assert.equal(posts_dropped and 0 or 2, count(url, "posts"))
  end

  for _, change in ipairs(CHANGES) do
    it("round-trips: " .. change[1], function()
      round_trip(assert(apply(sh.SCHEMA, change[2])), change.posts_dropped, change[1])
    end)
  end

  -- The property over combinations: random sets of 2 to 5 changes made
  -- together (those that still apply after the others), several rounds.
  local seed = tonumber(os.getenv("AUTOGEN_SEED") or "") or os.time()
  for round = 1, 4 do
    it(("round-trips random combinations of changes (AUTOGEN_SEED=%d, round %d)"):format(seed, round), function()
      math.randomseed(seed + round)
      local text, names, pool = sh.SCHEMA, {}, {}
      for i, change in ipairs(CHANGES) do if not change.posts_dropped then pool[#pool + 1] = i end end
      for _ = 1, math.random(2, 5) do
        local change = CHANGES[table.remove(pool, math.random(#pool))]
        local next_text = apply(text, change[2])
        if next_text then text, names[#names + 1] = next_text, change[1] end
      end
      round_trip(text, false, "changes: " .. table.concat(names, ", "))
    end)
  end

  it("writes op calls as by hand: a batch on SQLite, comments over steps that lose data", function()
    local schema_path = sh.schema_file(edited('s.column%("body", t.text%),', 's.column("body", t.text, { nullable = false }),')
      :gsub("t.string%(100%)", "t.string(50)")
      :gsub("nullable = false, server_default = false", "nullable = false, server_default = true"))
    assert.equal(0, (sh.migrate(url, dir, "revision --autogenerate -m change --schema " .. h.quote(schema_path))))
    local text = h.read(generated(dir)[1])
    assert.matches("-- converts every value of email (varchar(100) to varchar(50)); values that do not fit fail or are cut", text, 1, true)
    assert.matches("-- fails if a row holds NULL in body: give them a value first (op.execute UPDATE ...)", text, 1, true)
    if kind == "sqlite" then
      assert.matches('op.batch_alter_table("posts", function(batch)', text, 1, true)
      assert.matches('batch.alter_column("body", { nullable = false })', text, 1, true)
      assert.matches('batch.alter_column("published", { server_default = true })', text, 1, true)
      assert.matches('op.alter_column("users", "email", { type = t.string(50), existing_type = t.string(100) })', text, 1, true)
    else
      assert.matches('op.alter_column("posts", "body", { nullable = false })', text, 1, true)
      assert.matches('op.alter_column("posts", "published", { server_default = true })', text, 1, true)
      assert.not_matches("batch", text, 1, true)
    end
    assert.matches('op.alter_column("users", "email", { type = t.string(100), existing_type = t.string(50) })', text, 1, true)
  end)

  it("removing an enum value a row holds fails the upgrade and changes nothing", function()
    local schema_path = sh.schema_file(edited('{ "active", "blocked" }', '{ "active" }'))
    assert.equal(0, (sh.migrate(url, dir, "revision --autogenerate -m narrow --schema " .. h.quote(schema_path))))
    local before = read_model(url)
    local code, _, err = sh.migrate(url, dir, "upgrade head")
    assert.equal(1, code)
    assert.matches("failed and was rolled back; the database is still at r1", err, 1, true)
    assert.same({}, compare.diff(before, read_model(url)))
    assert.same({ "active", "blocked" }, read_model(url).tables.users.column.status.enum.values)
    assert.equal(2, count(url, "users"))
  end)
end)

describe("the schema file of docs/extending.md (" .. kind .. ")", function()
  it("autogenerates its first revision from an empty database, which upgrades and checks clean", function()
    local doc = assert(h.read("docs/extending.md"))
    local example = doc:match("### The schema file\n\n```lua\n(.-)```")
    assert.is_string(example)
    local url, drop = h.fresh_database("autogen_doc")
    local dir = h.tmpdir()
    h.write(dir .. "/script.lua.tmpl", assert(h.read("migrations/script.lua.tmpl")))
    local schema_path = sh.schema_file(example)
    local ok, err = pcall(function()
      local code, _, e = sh.migrate(url, dir, "revision --autogenerate -m first --schema " .. h.quote(schema_path))
      assert.equal(0, code, e)
      code, _, e = sh.migrate(url, dir, "upgrade head")
      assert.equal(0, code, e)
      code, _, e = sh.migrate(url, dir, "check --schema " .. h.quote(schema_path))
      assert.equal(0, code, e)
      sh.exec(url, "INSERT INTO owners (id) VALUES (1)")
      sh.exec(url, "INSERT INTO todos (title, owner_id) VALUES ('a', 1)")
      assert.is_true(not pcall(sh.exec, url, "INSERT INTO todos (title, owner_id, status) VALUES ('b', 1, 'later')"))
      assert.is_true(not pcall(sh.exec, url, "INSERT INTO todos (title, owner_id, priority) VALUES ('c', 1, -1)"))
      code, _, e = sh.migrate(url, dir, "downgrade base")
      assert.equal(0, code, e)
      assert.same({}, read_model(url).order)
    end)
    drop()
    if not ok then error(err, 0) end
  end)
end)
