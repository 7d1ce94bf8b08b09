-- migrator/template.lua: new revision files (`migrate.lua revision -m`),
-- written from the migrations directory's script.lua.tmpl.
--
-- The template's ${placeholders}: message, revision, down_revision,
-- create_date, and message_lua, revision_lua, down_revision_lua (the same
-- as Lua literals; down_revision_lua is nil at base), upgrades and
-- downgrades (the functions' bodies: an example comment, or what
-- `revision --autogenerate` generated).

local EXAMPLE = {
  upgrades = '    -- e.g. op.add_column("todos", op.column("priority", op.types.integer, { nullable = true }))',
  downgrades = '    -- e.g. op.drop_column("todos", "priority")',
}

local revisions = require "migrator.revisions"

local fail = revisions.fail
local template = {}

-- The file name's part after the id: the message in lower case, words
-- joined by "_", cut at a word boundary near 40 characters.
function template.slugify(message)
  local slug = message:lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", "")
  if #slug > 40 then
    slug = slug:sub(1, 40):gsub("_[^_]*$", "")
  end
  return slug
end

local function lua_string(s)
  return string.format("%q", s)
end

-- The next id of today's form, YYYY_MM_DD_NNN, after any of graph's.
function template.next_id(graph)
  local prefix = os.date("%Y_%m_%d")
  local n = 0
  for _, rev in ipairs(graph.list) do
    local seq = rev.id:match("^" .. prefix .. "_(%d+)$")
    if seq and tonumber(seq) > n then n = tonumber(seq) end
  end
  return ("%s_%03d"):format(prefix, n + 1)
end

-- text with each ${key} replaced by values[key]; an unknown key raises
-- naming template_path.
function template.render(text, values, template_path)
  return (text:gsub("%${([%w_]+)}", function(key)
    return values[key] or fail("%s: unknown placeholder ${%s}", template_path, key)
  end))
end

-- Writes a new revision file into dir for message, on top of head (nil:
-- the graph's head; "base": none), with id rev_id (nil: template.next_id)
-- and bodies {upgrades =, downgrades =} (nil: the example comments).
-- Never overwrites a file. Returns its path; raises {migrate_error} when
-- the id exists or is too long, or the template is missing or bad.
function template.write(dir, message, head, rev_id, bodies)
  local graph = revisions.load(dir)
  local parent
  if head == "base" then
    parent = nil   -- a new root ("x and nil or y" would always give y)
  elseif head then
    parent = head == "head" and graph:head() or graph:resolve(head)
  elseif #graph.heads > 0 then
    parent = graph:head()
  end
  local id = rev_id or template.next_id(graph)
  if graph:get(id) then fail("revision %s already exists (%s)", id, graph:get(id).path) end
  if #id > 32 then fail("revision id %s is longer than 32 characters", id) end
  local template_path = dir .. "/script.lua.tmpl"
  local f = io.open(template_path, "r")
  if not f then fail("no template at %s: restore it from the repository", template_path) end
  local source = f:read("a")
  f:close()
  if bodies and not (source:find("${upgrades}", 1, true) and source:find("${downgrades}", 1, true)) then
    fail("%s has no ${upgrades} and ${downgrades} placeholders for the generated operations: "
      .. "put them in the upgrade and downgrade functions (see the repository's migrations/script.lua.tmpl)", template_path)
  end
  bodies = bodies or EXAMPLE
  local text = template.render(source, {
    message = message,
    message_lua = lua_string(message),
    revision = id,
    revision_lua = lua_string(id),
    down_revision = parent or "",
    down_revision_lua = parent and lua_string(parent) or "nil",
    create_date = os.date("%Y-%m-%d %H:%M:%S"),
    upgrades = bodies.upgrades,
    downgrades = bodies.downgrades,
  }, template_path)
  local slug = template.slugify(message)
  local path = dir .. "/" .. id .. (slug ~= "" and ("_" .. slug) or "") .. ".lua"
  local existing = io.open(path, "r")
  if existing then
    existing:close()
    fail("%s already exists", path)
  end
  local out, err = io.open(path, "w")
  if not out then fail("cannot write %s: %s", path, tostring(err)) end
  out:write(text)
  out:close()
  return path
end

return template
