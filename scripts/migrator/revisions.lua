-- migrator/revisions.lua: the revision graph: loading migrations/*.lua,
-- checking it (duplicates, missing parents, cycles), resolving names
-- (head, base, ids, unique id prefixes, +N/-N) and planning the ordered list
-- of revisions between two points.
--
-- A revision file returns a table: revision (string), down_revision (nil, a
-- string, or a list of strings for a merge), message, upgrade(op) and
-- downgrade(op). Everything here is pure data; nothing touches a database.

local source = require "migrator.source"
local paths = require "todohost.paths"
local settings = require "todohost.settings"
local util = require "todohost.util"

local revisions = {}

local Graph = {}
Graph.__index = Graph

-- ---- errors --------------------------------------------------------------

-- Errors meant for the user are tables {migrate_error = text}; the CLI
-- prints them as "FAILED: text" without a traceback.
local function fail(fmt, ...)
  error({ migrate_error = string.format(fmt, ...) }, 0)
end
revisions.fail = fail

-- ---- files ---------------------------------------------------------------

-- The migrations folder when none is given (--dir): MIGRATIONS_DIR, else
-- the project's migrations/. migrate.lua, serve.lua and doctor use it.
function revisions.default_dir()
  return settings.get("MIGRATIONS_DIR") or paths.in_project("migrations")
end

local function is_directory(path)
  return util.listdir(path) ~= nil
end

-- The *.lua file names in dir, sorted (none when dir cannot be read).
local function lua_files(dir)
  return util.listdir(dir, ".lua") or {}
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then fail("cannot read %s: %s", path, err) end
  local text = f:read("a")
  f:close()
  return text
end

-- down_revision normalised to a list (empty for a base revision).
local function parents_of(down)
  if down == nil or down == "" then return {} end
  if type(down) == "string" then return { down } end
  if type(down) == "table" then
    local list = {}
    for _, d in ipairs(down) do list[#list + 1] = d end
    return list
  end
  return nil
end

-- Loads one revision file; returns the revision record.
local function load_revision(dir, name)
  local path = dir .. "/" .. name
  local text = read_file(path)
  local chunk, err = load(text, "@" .. path, "t")
  if not chunk then fail("%s does not compile: %s", path, err) end
  local ok, mod = pcall(chunk)
  if not ok then fail("%s raised an error while loading: %s", path, tostring(mod)) end
  if type(mod) ~= "table" then
    fail("%s must return a table with revision, down_revision, message, upgrade and downgrade", path)
  end
  if type(mod.revision) ~= "string" or mod.revision == "" then
    fail("%s has no `revision` id (a string such as \"2026_02_21_001\")", path)
  end
  if #mod.revision > 32 then
    fail("%s: revision id %q is longer than 32 characters (alembic_version.version_num is VARCHAR(32))",
      path, mod.revision)
  end
  local parents = parents_of(mod.down_revision)
  if not parents then
    fail("%s: down_revision must be nil, a revision id, or a list of ids (a merge)", path)
  end
  for _, fn in ipairs({ "upgrade", "downgrade" }) do
    if type(mod[fn]) ~= "function" then
      fail("%s: `%s` must be a function(op)", path, fn)
    end
  end
  return {
    id = mod.revision,
    parents = parents,
    message = mod.message or "",
    module = mod,
    path = path,
    file = name,
    text = text,
    children = {},
  }
end

-- ---- loading -------------------------------------------------------------

-- Loads every revision in dir and checks the graph. Raises a migrate error
-- for a missing directory, a duplicate id, an unknown down_revision or a
-- cycle.
function revisions.load(dir)
  if not is_directory(dir) then
    fail("no migrations directory at %s (run from the project root, or give --dir DIR or MIGRATIONS_DIR)", dir)
  end
  local g = setmetatable({ dir = dir, by_id = {}, list = {} }, Graph)
  for _, name in ipairs(lua_files(dir)) do
    local rev = load_revision(dir, name)
    local seen = g.by_id[rev.id]
    if seen then
      fail("revision %s is defined twice: in %s and in %s", rev.id, seen.path, rev.path)
    end
    g.by_id[rev.id] = rev
    g.list[#g.list + 1] = rev
  end
  for _, rev in ipairs(g.list) do
    for _, p in ipairs(rev.parents) do
      local parent = g.by_id[p]
      if not parent then
        fail("%s: down_revision %s is not in %s (was its file deleted or renamed?)", rev.path, p, dir)
      end
      parent.children[#parent.children + 1] = rev.id
    end
  end
  for _, rev in ipairs(g.list) do table.sort(rev.children) end
  g:check_cycles()
  g.heads, g.bases = {}, {}
  for _, rev in ipairs(g.list) do
    if #rev.children == 0 then g.heads[#g.heads + 1] = rev.id end
    if #rev.parents == 0 then g.bases[#g.bases + 1] = rev.id end
  end
  if #g.list > 0 and #g.bases == 0 then fail("the revisions in %s have no base revision", dir) end
  return g
end

-- Depth-first search for a cycle along down_revision links.
function Graph:check_cycles()
  local state = {} -- nil: unseen, 1: on the current path, 2: done
  local path = {}
  local function visit(id)
    if state[id] == 2 then return end
    if state[id] == 1 then
      local start = 1
      for i, p in ipairs(path) do if p == id then start = i end end
      local cycle = {}
      for i = start, #path do cycle[#cycle + 1] = path[i] end
      cycle[#cycle + 1] = id
      fail("the revisions form a cycle: %s (fix the down_revision of one of them)", table.concat(cycle, " -> "))
    end
    state[id] = 1
    path[#path + 1] = id
    for _, p in ipairs(self.by_id[id].parents) do visit(p) end
    path[#path] = nil
    state[id] = 2
  end
  for _, rev in ipairs(self.list) do visit(rev.id) end
end

-- ---- lookups -------------------------------------------------------------

function Graph:get(id)
  return self.by_id[id]
end

-- The SHA-256 of revision id's code: comments and layout left out
-- (migrator/source.lua), so that editing a comment is not an edit.
function Graph:checksum(id)
  local rev = self.by_id[id]
  if not rev.checksum then rev.checksum = util.sha256(source.canonical(rev.text)) end
  return rev.checksum
end

-- The checksum's first form, of the file's bytes (stored by todohost
-- before comments were left out): accepted, and replaced by the new form.
function Graph:legacy_checksum(id)
  return util.sha256(self.by_id[id].text)
end

-- True when sum, a checksum recorded for revision id, is that of its code
-- now, in either form.
function Graph:checksum_matches(id, sum)
  return sum == self:checksum(id) or sum == self:legacy_checksum(id)
end

function Graph:heads_text()
  if #self.heads == 0 then return "none: " .. self.dir .. " holds no revision" end
  return table.concat(self.heads, ", ")
end

-- The single head; raises when there are none or several.
function Graph:head()
  if #self.heads == 1 then return self.heads[1] end
  if #self.heads == 0 then fail("%s holds no revision yet; create one with: todohost run migrate.lua revision -m \"message\"", self.dir) end
  fail("Multiple head revisions are present: %s; merge them with a new revision whose down_revision lists "
    .. "both ({ \"%s\" }), or name the revision to go to", self:heads_text(), table.concat(self.heads, '", "'))
end

-- An exact id, else a unique prefix of one.
function Graph:resolve(name)
  if self.by_id[name] then return name end
  local found = {}
  for _, rev in ipairs(self.list) do
    if rev.id:sub(1, #name) == name then found[#found + 1] = rev.id end
  end
  if #found == 1 then return found[1] end
  if #found > 1 then
    table.sort(found)
    fail("revision %s is ambiguous: it could be %s", name, table.concat(found, ", "))
  end
  fail("Can't locate revision %s (known heads: %s)", name, self:heads_text())
end

-- The set (id -> true) of id and all its ancestors.
function Graph:ancestors(ids)
  local set = {}
  local function visit(id)
    if set[id] then return end
    set[id] = true
    for _, p in ipairs(self.by_id[id].parents) do visit(p) end
  end
  for _, id in ipairs(ids) do visit(id) end
  return set
end

-- The ids in set, parents before children, ties broken by id.
function Graph:topological(set)
  local order, done = {}, {}
  local ids = {}
  for id in pairs(set) do ids[#ids + 1] = id end
  table.sort(ids)
  local function visit(id)
    if done[id] then return end
    done[id] = true
    for _, p in ipairs(self.by_id[id].parents) do
      if set[p] then visit(p) end
    end
    order[#order + 1] = id
  end
  for _, id in ipairs(ids) do visit(id) end
  return order
end

-- Checks that every id in the database's alembic_version is a known
-- revision; raises a clear error otherwise.
function Graph:check_current(current)
  for _, id in ipairs(current) do
    if not self.by_id[id] then
      fail("Can't locate revision %s: the database's alembic_version says %s, but %s has no such revision "
        .. "(known heads: %s); restore the missing migration file, or check DATABASE_URL", id, id, self.dir, self:heads_text())
    end
  end
end

-- ---- targets -------------------------------------------------------------

-- Walks n steps towards the heads from the current revisions (upgrade +N).
function Graph:relative_up(current, n)
  local at
  if #current > 1 then fail("the database has several current revisions (%s); name the target revision instead of +%d", table.concat(current, ", "), n) end
  at = current[1]
  local start = at or "base"
  for step = 1, n do
    local nexts
    if at == nil then nexts = self.bases else nexts = self.by_id[at].children end
    if #nexts == 0 then
      fail("cannot upgrade +%d: only %d revision(s) above %s (head is %s)", n, step - 1, start, self:heads_text())
    elseif #nexts > 1 then
      fail("cannot upgrade +%d: the history branches after %s into %s; name the target revision", n, at or "base", table.concat(nexts, ", "))
    end
    at = nexts[1]
  end
  return at
end

-- Walks n steps towards base (downgrade -N); nil means base.
function Graph:relative_down(current, n)
  if #current > 1 then fail("the database has several current revisions (%s); name the target revision instead of -%d", table.concat(current, ", "), n) end
  local at = current[1]
  for step = 1, n do
    if at == nil then fail("cannot downgrade -%d: the database is only %d revision(s) above base", n, step - 1) end
    local parents = self.by_id[at].parents
    if #parents > 1 then fail("cannot downgrade -%d: %s is a merge of %s; name the target revision", n, at, table.concat(parents, ", ")) end
    at = parents[1]
  end
  return at
end

-- Resolves an upgrade target: "head"/"heads", "+N", an id or prefix.
-- Returns the list of target ids.
function Graph:upgrade_target(name, current)
  if name == "head" then return { self:head() } end
  if name == "heads" then return { table.unpack(self.heads) } end
  local n = name:match("^%+(%d+)$")
  if n then return { self:relative_up(current, tonumber(n)) } end
  return { self:resolve(name) }
end

-- Resolves a downgrade target: "base", "-N", an id or prefix. Returns a list
-- of ids, empty for base.
function Graph:downgrade_target(name, current)
  if name == "base" then return {} end
  local n = name:match("^%-(%d+)$")
  if n then
    local at = self:relative_down(current, tonumber(n))
    return at and { at } or {}
  end
  return { self:resolve(name) }
end

-- The revisions to run, in order, to go up from current to targets.
function Graph:upgrade_plan(current, targets)
  local have = self:ancestors(current)
  local want = self:ancestors(targets)
  local todo = {}
  for id in pairs(want) do
    if not have[id] then todo[id] = true end
  end
  return self:topological(todo)
end

-- The revisions to undo, in order (children first), to go down from current
-- to targets.
function Graph:downgrade_plan(current, targets)
  local have = self:ancestors(current)
  local keep = self:ancestors(targets)
  for _, t in ipairs(targets) do
    if not have[t] then
      fail("cannot downgrade to %s: the database (at %s) is not above it; use upgrade",
        t, #current > 0 and table.concat(current, ", ") or "base")
    end
  end
  local todo = {}
  for id in pairs(have) do
    if not keep[id] then todo[id] = true end
  end
  local order = self:topological(todo)
  local reversed = {}
  for i = #order, 1, -1 do reversed[#reversed + 1] = order[i] end
  return reversed
end

-- True when id is a head.
function Graph:is_head(id)
  local rev = self.by_id[id]
  return rev ~= nil and #rev.children == 0
end

return revisions
