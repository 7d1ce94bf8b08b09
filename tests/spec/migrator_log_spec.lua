-- tests/spec/migrator_log_spec.lua (migrator/log.lua): the migrator's console
-- output in Alembic's log format, read from a separate todohost process:
-- progress and warnings on stderr as "LEVEL [migrate] text", -q silencing
-- progress only, command results on stdout. Needs no database.
local h = require "spec_helper"

local function run(code)
  local status, out, err = h.run_lua('local log = require "migrator.log"\n' .. code)
  assert.equal(0, status, err)
  return out, err
end

describe("migrator.log", function()
  it("writes progress and warnings on stderr in Alembic's format, results on stdout", function()
    local out, err = run([[
      log.info("Running upgrade %s -> %s, %s", "a", "b", "add todos")
      log.warn("dropping column %s", "t.c")
      log.out("%s (head)", "b")
      log.info("100% done")]])
    assert.equal("b (head)\n", out)
    assert.equal("INFO  [migrate] Running upgrade a -> b, add todos\n"
      .. "WARN  [migrate] dropping column t.c\n"
      .. "INFO  [migrate] 100% done\n", err)
  end)

  it("quiet silences progress, never warnings nor results", function()
    local out, err = run([[
      log.quiet = true
      log.info("Running upgrade")
      log.warn("look at this")
      log.out("b")]])
    assert.equal("b\n", out)
    assert.equal("WARN  [migrate] look at this\n", err)
  end)
end)
