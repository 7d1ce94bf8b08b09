-- seeding.lua: runs the seed scripts of seeds/ into a database whose todos
-- table has no rows at all (deleted ones included), so a database with data,
-- for example one copied from SQLite, is never touched.
--
-- A seed script is seeds/NAME.lua returning function(conn); the scripts run
-- in file name order, all in one transaction: either every seed lands or
-- none does.
--
--   seeding.run(conn [, dir]) -> number of scripts run (0: todos had rows)

local paths = require "todohost.paths"
local util = require "todohost.util"

local seeding = {}

-- pg_advisory_xact_lock key: the bytes of "thseeds!" (the migrator's is "todohost").
seeding.LOCK_KEY = 0x7468736565647321

-- The project's seeds/; when it has none, the installation's (the Todo
-- app's example todos).
function seeding.default_dir()
  local own = paths.in_project("seeds")
  if util.listdir(own) then return own end
  return paths.in_install("seeds")
end

-- The *.lua files of dir, sorted by name; an error when dir is missing.
function seeding.files(dir)
  return util.listdir(dir, ".lua") or error(string.format("seed directory %s not found", dir), 0)
end

-- true when the todos table has no rows at all.
function seeding.needed(conn)
  return conn:first("SELECT 1 AS present FROM todos LIMIT 1") == nil
end

function seeding.run(conn, dir)
  dir = dir or seeding.default_dir()
  local names = seeding.files(dir)
  local ran = 0
  conn:transaction(function()
    -- checked inside the transaction under a lock, so two processes
    -- starting at once cannot both seed: SQLite's BEGIN IMMEDIATE; on
    -- PostgreSQL a transaction advisory lock (without it both would see
    -- an empty table), after which the other's rows are visible
    if conn.kind == "postgresql" then conn:exec("SELECT pg_advisory_xact_lock($1)", seeding.LOCK_KEY) end
    if not seeding.needed(conn) then return end
    for _, name in ipairs(names) do
      local path = dir .. "/" .. name
      local chunk, err = loadfile(path, "t")
      if not chunk then error("seed " .. err, 0) end
      local seed = chunk()
      if type(seed) ~= "function" then
        error(string.format("seed %s must return function(conn), it returned a %s", path, type(seed)), 0)
      end
      seed(conn)
      ran = ran + 1
    end
  end)
  return ran
end

return seeding
