-- tests/spec/migrator_cli_spec.lua (migrator/cli.lua): each migrate command's
-- function called as migrate.lua calls it, on the repository's migrations/
-- and a database of its own on this pass (SQLite file or PostgreSQL): the
-- exit status, the lines on stdout and stderr in Alembic's formats, and the
-- one-line refusals of missing arguments. (The command line's parsing and
-- the process: migrate_spec.lua.)
local h = require "spec_helper"
local cli = require "migrator.cli"
local log = require "migrator.log"

local REVS = { "2026_02_21_001", "2026_02_21_002", "2026_02_21_003", "2026_02_21_004" }
local MESSAGES = { "initial", "add_updated_at_to_todos", "add_deleted_at_to_todos", "make_is_completed_not_nullable" }
local kind = (os.getenv("TEST_DATABASE_URL") or "sqlite"):match("^sqlite") and "sqlite" or "postgresql"
-- What every command that opens the database says first, as Alembic does.
local CONTEXT = ("INFO  [migrate] Context impl %s.\nINFO  [migrate] Will assume transactional DDL.\n")
  :format(kind == "sqlite" and "SQLiteImpl" or "PostgresqlImpl")

-- Calls command(opts, args) with stdout and stderr caught; returns its
-- status and the text of each (raises what the command raised).
local function call(command, opts, args)
  local out, err = io.tmpfile(), io.tmpfile()
  local saved_out, saved_err = io.stdout, io.stderr
  io.stdout, io.stderr = out, err
  local ok, status = pcall(command, opts, args or {})
  io.stdout, io.stderr = saved_out, saved_err
  out:seek("set")
  err:seek("set")
  local out_text, err_text = out:read("a"), err:read("a")
  out:close()
  err:close()
  if not ok then error(status, 0) end
  return status, out_text, err_text
end

-- The migrate_error a command raises.
local function refusal(command, opts, args)
  local ok, err = pcall(call, command, opts, args)
  assert.is_false(ok)
  return err.migrate_error
end

describe("migrator.cli", function()
  local opts, drop

  before_each(function()
    local url
    url, drop = h.fresh_database("cli_spec")
    opts = { dir = "migrations", url = url }
  end)
  after_each(function() drop() end)

  it("upgrades, and prints where the database is as current and heads do", function()
    assert.equal(0, (call(cli.upgrade, opts, { "+2" })))
    local status, out, err = call(cli.current, opts)
    assert.equal(0, status)
    assert.equal(REVS[2] .. "\n", out)
    assert.equal(CONTEXT, err)
    _, out = call(cli.heads, opts)
    assert.equal(REVS[4] .. " (head)\n", out)
    _, out, err = call(cli.upgrade, opts, {})
    assert.equal("", out)
    assert.equal(CONTEXT .. ("INFO  [migrate] Running upgrade %s -> %s, %s\nINFO  [migrate] Running upgrade %s -> %s, %s\n")
      :format(REVS[2], REVS[3], MESSAGES[3], REVS[3], REVS[4], MESSAGES[4]), err)
    _, out = call(cli.current, opts)
    assert.equal(REVS[4] .. " (head)\n", out)
  end)

  it("prints the history newest first, marking head and current", function()
    call(cli.upgrade, opts, { REVS[3] })
    local _, out = call(cli.history, opts)
    assert.equal(("%s -> %s (head), %s\n%s -> %s, %s\n%s -> %s, %s\n<base> -> %s, %s\n"):format(
      REVS[3], REVS[4], MESSAGES[4], REVS[2], REVS[3], MESSAGES[3], REVS[1], REVS[2], MESSAGES[2], REVS[1], MESSAGES[1]), out)
    opts.indicate_current = true
    _, out = call(cli.history, opts)
    assert.matches(REVS[2] .. " -> " .. REVS[3] .. " (current), ", out, 1, true)
  end)

  it("shows a revision in Alembic's verbose form", function()
    local _, out = call(cli.show, opts, { "head" })
    assert.equal(table.concat({
      "Rev: " .. REVS[4] .. " (head)",
      "Parent: " .. REVS[3],
      "Path: migrations/" .. REVS[4] .. "_" .. MESSAGES[4] .. ".lua",
      "",
      "    " .. MESSAGES[4],
      "    ",
      "    Revision ID: " .. REVS[4],
      "    Revises: " .. REVS[3],
      "    Create Date: 2026-02-21",
    "",
    }, "\n") .. "\n", out)
  end)

  it("check: 1 with the revisions to apply, 0 at head matching the schema", function()
    call(cli.upgrade, opts, { REVS[1] })
    local status, out, err = call(cli.check, opts)
    assert.equal(1, status)
    assert.equal("", out)
    assert.equal(CONTEXT .. ("FAILED: Target database is not up to date: it is at %s, head is %s (3 revisions to apply); "
      .. "run: todohost run migrate.lua upgrade head\n"):format(REVS[1], REVS[4]), err)
    call(cli.upgrade, opts, {})
    status, _, err = call(cli.check, opts)
    assert.equal(0, status)
    assert.equal(CONTEXT .. ("INFO  [migrate] No new upgrade operations detected: the database is at head (%s) and matches "
      .. "scripts/app/models.lua.\n"):format(REVS[4]), err)
  end)

  it("stamps without running the revisions", function()
    call(cli.stamp, opts, { "head" })
    local _, out = call(cli.current, opts)
    assert.equal(REVS[4] .. " (head)\n", out)
    call(cli.stamp, opts, { "base" })
    _, out = call(cli.current, opts)
    assert.equal("", out)
  end)

  it("downgrades to a target", function()
    call(cli.upgrade, opts, {})
    assert.equal(0, (call(cli.downgrade, opts, { "-1" })))
    local _, out = call(cli.current, opts)
    assert.equal(REVS[3] .. "\n", out)
  end)

  it("lint: 0 and one line when the app's migrations are safe", function()
    local status, out, err = call(cli.lint, opts, {})
    assert.equal(0, status)
    assert.equal("", out)
    assert.equal("INFO  [migrate] No operation that loses data or blocks a table.\n", err)
  end)

  it("writes a new revision on top of the head", function()
    local dir = h.tmpdir()
    assert(os.execute("cp migrations/*.lua migrations/script.lua.tmpl " .. h.quote(dir)))
    local status, out = call(cli.revision, { dir = dir, url = opts.url, message = "add priority", rev_id = "abc123" })
    assert.equal(0, status)
    assert.equal("Generating " .. dir .. "/abc123_add_priority.lua ...  done\n", out)
    local rev = dofile(dir .. "/abc123_add_priority.lua")
    assert.equal("abc123", rev.revision)
    assert.equal(REVS[4], rev.down_revision)
  end)

  it("refuses a command missing its argument in one line", function()
    assert.equal("downgrade needs a target: base, a revision id, or -N (e.g. downgrade -1)", refusal(cli.downgrade, opts))
    assert.equal("stamp needs a revision: stamp REV, stamp head or stamp base", refusal(cli.stamp, opts))
    assert.equal("show needs a revision: show REV (or head)", refusal(cli.show, opts))
    assert.equal('revision needs a message: revision -m "add priority to todos"', refusal(cli.revision, opts))
  end)

  it("keeps progress off stderr when quiet", function()
    log.quiet = true
    local ok, err = pcall(function()
      local _, _, err_text = call(cli.upgrade, opts, {})
      assert.equal("", err_text)
    end)
    log.quiet = false
    assert(ok, err)
  end)
end)
