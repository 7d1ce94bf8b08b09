-- tests/spec/migrator_lint_spec.lua (migrator/lint.lua): lint.revision called
-- on revisions of the spec's own, for both dialects: one finding per
-- operation that loses data or blocks a table, none for the safe ones, and
-- NOT NULL judged by the NULLs counted in this pass's database.
-- (`migrate.lua lint` as a command: migrator_safety_spec.lua.)
local h = require "spec_helper"
local lint = require "migrator.lint"
local types = require("migrator.ddl").types

local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"

-- A revision whose upgrade is fn(op).
local function rev(fn, transactional)
  return { module = { upgrade = fn, transactional = transactional } }
end

describe("migrator.lint", function()
  it("finds nothing in a revision that only adds", function()
    for _, dialect in ipairs({ "sqlite", "postgresql" }) do
      assert.same({}, lint.revision(rev(function(op)
        op.create_table("t", op.column("id", op.types.integer, { primary_key = true }))
        op.create_index("ix_t_id", "t", { "id" }) -- a new table holds no rows yet
        op.add_column("u", op.column("note", op.types.text))
        op.add_column("u", op.column("n", op.types.integer, { nullable = false, server_default = "0" }))
      end), dialect))
    end
  end)

  it("names each operation that loses data or blocks a table, with a way round", function()
    local found = lint.revision(rev(function(op)
      op.drop_table("old")
      op.drop_column("u", "legacy")
      op.add_column("u", op.column("score", op.types.integer, { nullable = false }))
      op.create_index("ix_u_name", "u", { "name" })
    end), "postgresql")
    assert.equal(4, #found)
    assert.matches("^drops table old and its rows; way round: ", found[1])
    assert.matches("^drops column u%.legacy and its values", found[2])
    assert.matches("^adds NOT NULL column u%.score without a server default: fails when u has rows", found[3])
    assert.matches("^builds index ix_u_name on u without CONCURRENTLY", found[4])
    -- SQLite builds indexes without blocking readers the same way: no finding there
    assert.equal(3, #lint.revision(rev(function(op)
      op.drop_table("old")
      op.drop_column("u", "legacy")
      op.add_column("u", op.column("score", op.types.integer, { nullable = false }))
      op.create_index("ix_u_name", "u", { "name" })
    end), "sqlite"))
    assert.same({}, lint.revision(rev(function(op)
      op.create_index("ix_u_name", "u", { "name" }, { concurrently = true })
    end, false), "postgresql"))
  end)

  it("flags a type change that narrows, not one that widens", function()
    local function change(from, to)
      return lint.revision(rev(function(op)
        op.alter_column("u", "name", { type = to, existing_type = from })
      end), kind)
    end
    local narrow = change(types.string(100), types.string(20))
    assert.equal(1, #narrow)
    assert.matches("^changes the type of u%.name from varchar%(100%) to varchar%(20%)", narrow[1])
    assert.same({}, change(types.string(20), types.string(100)))
  end)

  it("reports an upgrade that fails before running anything", function()
    assert.same({ "its upgrade fails before running anything: boom" },
      lint.revision(rev(function() error("boom", 0) end), kind))
  end)

  describe("NOT NULL on this pass's database (" .. kind .. ")", function()
    local conn, done
    setup(function()
      conn, done = h.fresh_connection("lint_spec")
      conn:exec("CREATE TABLE people (id INTEGER PRIMARY KEY, nick VARCHAR(20), mail VARCHAR(20))")
      conn:exec("INSERT INTO people (id, nick, mail) VALUES (1, NULL, 'a'), (2, NULL, 'b'), (3, 'c', 'c')")
    end)
    teardown(function() done() end)

    local function nulls(t, c)
      return conn:first(("SELECT count(*) AS n FROM %s WHERE %s IS NULL"):format(t, c)).n
    end
    local function set_not_null(column, fill)
      return lint.revision(rev(function(op)
        if fill then op.execute("UPDATE people SET " .. column .. " = '?' WHERE " .. column .. " IS NULL") end
        op.alter_column("people", column, { nullable = false })
      end), kind, nulls)
    end

    it("counts the rows holding NULL now", function()
      local found = set_not_null("nick")
      assert.equal(1, #found)
      assert.matches("^sets NOT NULL on people%.nick %(2 rows hold NULL now%)", found[1])
    end)

    it("finds nothing when no row holds NULL, or when the revision fills them first", function()
      assert.same({}, set_not_null("mail"))
      assert.same({}, set_not_null("nick", true))
    end)
  end)
end)
