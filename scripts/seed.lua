-- seed.lua: `todohost run seed.lua`: seeds the configured database
-- (DATABASE_URL) with seeds/*.lua when its todos table has no rows at all.
-- `serve.lua` does the same at start-up.

local db = require "todohost.db"
local seeding = require "seeding"

local ok, err = pcall(function()
  local conn <close> = db.connect()
  local ran = seeding.run(conn)
  local count = conn:first("SELECT count(*) AS n FROM todos").n
  if ran == 0 then
    print(string.format("todos already has %d rows: not seeding", count))
  else
    print(string.format("seeded: %d todos from %d seed scripts", count, ran))
  end
end)
if not ok then
  io.stderr:write("seed: ", tostring(err), "\n")
  os.exit(1)
end
