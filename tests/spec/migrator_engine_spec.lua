-- tests/spec/migrator_engine_spec.lua (migrator/engine.lua): the engine
-- called directly, on the repository's migrations/ and a scratch SQLite
-- file (its PostgreSQL side runs through migrate.lua in migrate_spec.lua):
-- what each operation returns and what it leaves in the database.
local h = require "spec_helper"
local db = require "todohost.db"
local engine = require "migrator.engine"
local log = require "migrator.log"
local version = require "migrator.version"

local REVS = { "2026_02_21_001", "2026_02_21_002", "2026_02_21_003", "2026_02_21_004" }

describe("migrator.engine", function()
  local opts

  before_each(function()
    log.quiet = true
    opts = { dir = "migrations", url = "sqlite:///" .. h.tmpdir() .. "/engine.db" }
  end)
  after_each(function() log.quiet = false end)

  local function ids()
    local conn <close> = db.connect(opts.url)
    return version.ids(conn)
  end

  it("upgrades to a target and to head, and reports where the database is", function()
    engine.upgrade(opts, "+2")
    local graph, heads = engine.current(opts)
    assert.same({ REVS[2] }, heads)
    assert.equal(REVS[4], graph:head())
    local state = engine.check(opts)
    assert.same({ heads = { REVS[2] }, head = REVS[4], pending = { REVS[3], REVS[4] }, differences = {} },
      { heads = state.heads, head = state.head, pending = state.pending, differences = state.differences })
    engine.upgrade(opts, "head")
    assert.same({ REVS[4] }, ids())
    state = engine.check(opts)
    assert.same({ heads = { REVS[4] }, head = REVS[4], pending = {}, differences = {} },
      { heads = state.heads, head = state.head, pending = state.pending, differences = state.differences })
    assert.truthy(state.schema_path:match("scripts/app/models%.lua$"))
    assert.same({ [REVS[4]] = true }, engine.current_set(opts))
  end)

  it("downgrades to a revision and to base, dropping the version table's rows", function()
    engine.upgrade(opts, "head")
    engine.downgrade(opts, REVS[1])
    assert.same({ REVS[1] }, ids())
    engine.downgrade(opts, "base")
    assert.same({}, ids())
    local conn <close> = db.connect(opts.url)
    assert.is_nil(conn:first("SELECT name FROM sqlite_master WHERE name = 'todos'"))
  end)

  it("refuses an upgrade to a revision below the database, changing nothing", function()
    engine.upgrade(opts, "head")
    local ok, err = pcall(engine.upgrade, opts, REVS[2])
    assert.is_false(ok)
    assert.matches("is not a valid upgrade target", err.migrate_error, 1, true)
    assert.same({ REVS[4] }, ids())
  end)

  it("stamps without running anything", function()
    engine.stamp(opts, REVS[3])
    assert.same({ REVS[3] }, ids())
    local conn <close> = db.connect(opts.url)
    assert.is_nil(conn:first("SELECT name FROM sqlite_master WHERE name = 'todos'"))
    engine.stamp(opts, "base")
    assert.same({}, ids())
  end)

  it("lists history newest first, within a range; names head, heads and ids", function()
    local graph = engine.load_graph(opts)
    assert.same({ REVS[4], REVS[3], REVS[2], REVS[1] }, engine.history(graph))
    -- both ends included, as Alembic's history -r A:B
    assert.same({ REVS[3], REVS[2], REVS[1] }, engine.history(graph, REVS[1] .. ":" .. REVS[3]))
    assert.same({ REVS[2], REVS[1] }, engine.history(graph, ":" .. REVS[2]))
    assert.same({ REVS[4] }, engine.named(graph, "head"))
    assert.same({ REVS[2] }, engine.named(graph, "2026_02_21_002"))
    assert.equal("base", engine.at_text({}))
    assert.equal("a, b", engine.at_text({ "a", "b" }))
  end)

  it("writes --sql for an upgrade range without opening the database", function()
    local out = io.tmpfile()
    local stdout = io.stdout
    io.stdout = out
    local ok, err = pcall(engine.upgrade, { dir = opts.dir, url = opts.url, sql = true }, "base:" .. REVS[1])
    io.stdout = stdout
    assert.is_true(ok, err)
    out:seek("set")
    local text = out:read("a")
    out:close()
    assert.matches("CREATE TABLE alembic_version", text, 1, true)
    assert.matches("INSERT INTO alembic_version (version_num) VALUES ('" .. REVS[1] .. "');", text, 1, true)
    assert.is_nil(h.read(opts.url:sub(#"sqlite:///" + 1)))   -- no file created
  end)
end)
