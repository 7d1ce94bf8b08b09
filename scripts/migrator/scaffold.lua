-- migrator/scaffold.lua: `migrate.lua init [DIR]`, as `alembic init`: a new
-- migrations folder (default: the project's migrations/) holding the
-- revision template of the installation and a short README. It refuses a DIR
-- that exists and is not empty, so nothing of the user's is overwritten.
--
--   scaffold.init(opts, args) -> 0 (opts.dir: the default DIR; args[1]: DIR)

local log = require "migrator.log"
local paths = require "todohost.paths"
local util = require "todohost.util"
local fail = require("migrator.revisions").fail

local scaffold = {}

local README = [[
Migrations for todohost, one Lua file per revision (Alembic's model).

  todohost run migrate.lua revision -m "add a column"   a new revision from script.lua.tmpl
  todohost run migrate.lua upgrade head                 apply every revision (DATABASE_URL, or .env)
  todohost run migrate.lua downgrade -1                 undo the last one
  todohost run migrate.lua current                      the database's revision
  todohost run migrate.lua help                         every command

A revision returns revision, down_revision, upgrade(op) and downgrade(op);
script.lua.tmpl is the template `revision` fills in: edit it to change what
new revisions look like. The database's revision is kept in its
alembic_version table. See `man todohost` and docs/lua-api.md.
]]

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then fail("cannot read the revision template %s: %s (reinstall todohost)", path, tostring(err)) end
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f, err = io.open(path, "wb")
  if not f then fail("cannot write %s: %s", path, tostring(err)) end
  f:write(text)
  f:close()
end

function scaffold.init(opts, args)
  local dir = args[1] or opts.dir
  local entries = util.listdir(dir)
  if entries and #entries > 0 then
    fail("%s exists and is not empty: give another DIR (todohost run migrate.lua init DIR)", dir)
  end
  local template = read(paths.in_install("migrations/script.lua.tmpl"))
  local ok, err = util.mkdir(dir)
  if not ok then fail("cannot create %s (give another DIR)", tostring(err)) end
  write(dir .. "/script.lua.tmpl", template)
  write(dir .. "/README", README)
  log.out("Creating directory %s ...  done", dir)
  log.out("Generating %s/script.lua.tmpl ...  done", dir)
  log.out("Generating %s/README ...  done", dir)
  log.out("Next: todohost run migrate.lua%s revision -m \"first revision\"",
    dir == paths.in_project("migrations") and "" or (" --dir " .. dir))
  return 0
end

return scaffold
