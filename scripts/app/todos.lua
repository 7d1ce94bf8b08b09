-- todos.lua: the Todo API: its models, its routes and their handlers.
--
-- Returns the list of routes (see web/router.lua for the fields). To add an
-- endpoint, write a handler function `function(req, db) ... end` and add a
-- route for it to the list at the bottom: nothing is recompiled, and the
-- OpenAPI document and /docs pick it up.
--
-- The SQL is the same on SQLite and PostgreSQL except for "now": SQLite's
-- CURRENT_TIMESTAMP has whole seconds only, so it gets strftime with
-- fractions, stored like SQLAlchemy stores them ("YYYY-MM-DD HH:MM:SS.ffffff",
-- UTC), which the binding returns as ISO 8601 with +00:00.

local schema = require "web.schema"
local json = require "web.json"
local router = require "web.router"
local declared = require "models"
local column_of = require("migrator.schema").column_of

local format, sub, concat = string.format, string.sub, table.concat
local encode_string = json.string
local encode_text = json.string_memo   -- titles and descriptions repeat
local null = json.null
local JSON_HEADERS = router.JSON_HEADERS

-- ---- models ---------------------------------------------------------------

-- the title's limit is the column's, from the declared schema (scripts/app/models.lua)
local TITLE_MAX = column_of(declared, "todos", "title").type.length

local Todo = schema.model("Todo", {
  { "id", "integer", required = true },
  { "title", "string", required = true },
  { "description", "string", nullable = true },
  { "is_completed", "boolean", required = true },
  { "created_at", "string", required = true, format = "date-time" },
  { "updated_at", "string", nullable = true, format = "date-time" },
})

local TodoCreate = schema.model("TodoCreate", {
  { "title", "string", required = true, strip = true, min_length = 1, max_length = TITLE_MAX },
  { "description", "string", nullable = true },
  { "is_completed", "boolean", default = false },
})

local TodoUpdate = schema.model("TodoUpdate", {
  { "title", "string", strip = true, min_length = 1, max_length = TITLE_MAX },
  { "description", "string", nullable = true },
  { "is_completed", "boolean" },
})

local HTTPError = schema.model("HTTPError", {
  { "detail", "string", required = true },
}, "Not found")

-- ---- SQL ------------------------------------------------------------------

local COLUMNS = "id, title, description, is_completed, created_at, updated_at"
local NOW = {
  sqlite = "strftime('%Y-%m-%d %H:%M:%f000', 'now')",
  postgresql = "CURRENT_TIMESTAMP",
}

-- The statements for one kind of database, built once per kind. The
-- binding prepares each distinct SQL text once per connection.
local function statements(kind)
  local now = assert(NOW[kind], "unknown database kind")
  local s = {
    get = "SELECT " .. COLUMNS .. " FROM todos WHERE id = $1 AND deleted_at IS NULL",
    list = "SELECT " .. COLUMNS .. " FROM todos WHERE deleted_at IS NULL ORDER BY id LIMIT $1 OFFSET $2",
    list_by_state = "SELECT " .. COLUMNS .. " FROM todos WHERE deleted_at IS NULL AND is_completed = $3"
      .. " ORDER BY id LIMIT $1 OFFSET $2",
    insert = "INSERT INTO todos (title, description, is_completed, created_at) VALUES ($1, $2, $3, "
      .. now .. ") RETURNING " .. COLUMNS,
    delete = "UPDATE todos SET deleted_at = " .. now .. " WHERE id = $1 AND deleted_at IS NULL",
    update = {},   -- by the set of fields changed, built on first use
  }
  -- UPDATE for the fields present in a PATCH: the key lists them in order.
  local updatable = { "title", "description", "is_completed" }
  for mask = 0, 7 do
    local sets, n = {}, 1
    for bit, name in ipairs(updatable) do
      if mask & (1 << (bit - 1)) ~= 0 then
        n = n + 1
        sets[#sets + 1] = format("%s = $%d", name, n)
      end
    end
    sets[#sets + 1] = "updated_at = " .. now
    s.update[mask] = "UPDATE todos SET " .. concat(sets, ", ") ..
      " WHERE id = $1 AND deleted_at IS NULL RETURNING " .. COLUMNS
  end
  return s
end

local SQL = { sqlite = statements("sqlite"), postgresql = statements("postgresql") }

-- PostgreSQL's id column is a 32-bit integer: a larger id cannot exist.
local INT4_MIN, INT4_MAX = -2147483648, 2147483647

local function may_exist(db, id)
  return db.kind ~= "postgresql" or (id >= INT4_MIN and id <= INT4_MAX)
end

-- ---- responses ------------------------------------------------------------

local NOT_FOUND = '{"detail":"Todo not found"}'

-- ISO 8601 as the API shows it: "2026-11-24T19:16:41.505792+00:00", the same
-- on both databases. The binding returns ISO 8601 already; the fraction is
-- padded to six digits and a missing offset (naive text stored in SQLite by
-- other tools) read as UTC. The common case, the binding's full form
-- (32 bytes), costs one length check.
local function timestamp(ts)
  if #ts == 32 then return '"' .. ts .. '"' end
  local date, time, fraction, offset = ts:match("^(%d+%-%d+%-%d+)[T ](%d+:%d+:%d+)%.?(%d*)(.*)$")
  if not date then return encode_string(ts) end
  fraction = sub(fraction .. "000000", 1, 6)
  if offset == "" or offset == "Z" then offset = "+00:00"
  elseif #offset == 3 then offset = offset .. ":00" end
  return '"' .. date .. "T" .. time .. "." .. fraction .. offset .. '"'
end

-- One row as the Todo JSON object, keys in the model's order. Built by hand:
-- this runs for every todo of every response.
local function todo_json(row)
  local description, updated_at = row.description, row.updated_at
  local done = row.is_completed
  return '{"id":' .. row.id
    .. ',"title":' .. encode_text(row.title)
    .. ',"description":' .. (description and encode_text(description) or "null")
    .. ',"is_completed":' .. ((done == true or done == 1) and "true" or "false")
    .. ',"created_at":' .. timestamp(row.created_at)
    .. ',"updated_at":' .. (updated_at and timestamp(updated_at) or "null")
    .. "}"
end

-- ---- handlers -------------------------------------------------------------

local function list_todos(req, db)
  local args = req.args
  local sql = SQL[db.kind]
  local rows
  if args.completed == nil then
    rows = db:query(sql.list, args.limit, args.skip)
  else
    rows = db:query(sql.list_by_state, args.limit, args.skip, args.completed)
  end
  local n = #rows
  if n == 0 then return 200, JSON_HEADERS, "[]" end
  local parts = {}
  for i = 1, n do parts[i] = todo_json(rows[i]) end
  return 200, JSON_HEADERS, "[" .. concat(parts, ",") .. "]"
end

local function create_todo(req, db)
  local data = req.data
  local description = data.description
  if description == null then description = nil end
  local row = db:first(SQL[db.kind].insert, data.title, description, data.is_completed)
  return 201, JSON_HEADERS, todo_json(row)
end

local function read_todo(req, db)
  local id = req.params.todo_id
  local row = may_exist(db, id) and db:first(SQL[db.kind].get, id)
  if not row then return 404, JSON_HEADERS, NOT_FOUND end
  return 200, JSON_HEADERS, todo_json(row)
end

local function update_todo(req, db)
  local id = req.params.todo_id
  if not may_exist(db, id) then return 404, JSON_HEADERS, NOT_FOUND end
  local data = req.data
  local title, description, done = data.title, data.description, data.is_completed
  local mask, args, n = 0, { id }, 1
  if title ~= nil then mask = mask | 1; n = n + 1; args[n] = title end
  if description ~= nil then
    mask = mask | 2; n = n + 1
    if description ~= null then args[n] = description end   -- else SQL NULL
  end
  if done ~= nil then mask = mask | 4; n = n + 1; args[n] = done end
  local row = db:first(SQL[db.kind].update[mask], table.unpack(args, 1, n))
  if not row then return 404, JSON_HEADERS, NOT_FOUND end
  return 200, JSON_HEADERS, todo_json(row)
end

local function delete_todo(req, db)
  local id = req.params.todo_id
  if not may_exist(db, id) or db:exec(SQL[db.kind].delete, id) == 0 then
    return 404, JSON_HEADERS, NOT_FOUND
  end
  return 204, nil, nil
end

-- ---- routes ---------------------------------------------------------------

local todo_id = { "todo_id", "integer", title = "Todo Id" }
local not_found = { [404] = HTTPError }
local tags = { "todos" }

return {
  { method = "GET", path = "/todos", name = "list_todos", summary = "List todos", tags = tags,
    description = "Todos ordered by id; deleted ones are never listed.",
    query = {
      { "skip", "integer", default = 0, ge = 0 },
      { "limit", "integer", default = 100, ge = 1, le = 1000 },
      { "completed", "boolean", description = "true or false: only todos in that state" },
    },
    response = { Todo }, handler = list_todos },

  { method = "POST", path = "/todos", name = "create_todo", summary = "Create a todo", tags = tags,
    body = TodoCreate, response = Todo, status = 201, handler = create_todo },

  { method = "GET", path = "/todos/{todo_id}", name = "read_todo", summary = "Read a todo",
    tags = tags, path_params = { todo_id }, response = Todo, responses = not_found,
    handler = read_todo },

  { method = "PATCH", path = "/todos/{todo_id}", name = "update_todo", summary = "Update a todo",
    description = "Changes only the fields sent; sets updated_at.", tags = tags,
    path_params = { todo_id }, body = TodoUpdate, response = Todo, responses = not_found,
    handler = update_todo },

  { method = "DELETE", path = "/todos/{todo_id}", name = "delete_todo", summary = "Delete a todo",
    description = "Soft delete: the todo keeps its row but no longer exists for the API.",
    tags = tags, path_params = { todo_id }, status = 204, status_description = "Deleted",
    responses = not_found, handler = delete_todo },
}
