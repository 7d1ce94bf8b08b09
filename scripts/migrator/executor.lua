-- migrator/executor.lua: where a migration's statements go.
--
-- Online, each statement runs on the connection and a failure is re-raised
-- naming the statement. Offline (--sql), each statement is printed the way
-- Alembic prints it (tabs as four spaces, trimmed, ";" and a blank line) with
-- parameters written as literals; for SQLite, whose table rebuilds must read
-- the current table definition, the statements also run on a scratch
-- in-memory database that mirrors the schema (the user's database is never
-- opened). A "dry" executor runs nothing: it lets the engine see which
-- operations a revision would perform (for the data-loss warning).

local ddl = require "migrator.ddl"
local log = require "migrator.log"

local Executor = {}
Executor.__index = Executor

local executor = {}

-- opts: dialect, conn (online or scratch), offline (bool), write (function
-- for offline text, default io.stdout), dry (bool).
function executor.new(opts)
  return setmetatable({
    dialect = opts.dialect,
    conn = opts.conn,
    offline = opts.offline or false,
    dry = opts.dry or false,
    write = opts.write or function(text) io.stdout:write(text) end,
    notes = {},
    warnings = {},
  }, Executor)
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- The statement as Alembic's offline mode prints it.
function executor.format_offline(sql)
  return (sql:gsub("\t", "    "):match("^%s*(.-)%s*$")) .. ";\n\n"
end

-- Runs one statement (parameters $1..$n). Returns rows affected online.
function Executor:exec(sql, ...)
  if self.dry then return 0 end
  if self.offline then
    self.write(executor.format_offline(ddl.inline_params(sql, pack(...), self.dialect)))
    if not self.conn then return 0 end
  end
  local ok, res = pcall(self.conn.exec, self.conn, sql, ...)
  if not ok then
    if type(res) == "table" and res.statement then error(res, 0) end
    error({ statement = sql, cause = res }, 0)
  end
  return res
end

-- Runs a catalog query. Offline PostgreSQL has no database to ask.
function Executor:query(sql, ...)
  if self.dry then return {} end
  if not self.conn then
    error({ migrate_error = "this operation needs to read the database, which --sql mode does not open; run it without --sql" }, 0)
  end
  local ok, res = pcall(self.conn.query, self.conn, sql, ...)
  if not ok then error({ statement = sql, cause = res }, 0) end
  return res
end

-- An offline comment line ("-- Running upgrade ...").
function Executor:comment(text)
  if self.offline then self.write("-- " .. text .. "\n\n") end
end

-- A warning from an operation (e.g. a rebuild dropping an index with its
-- column); printed at once.
function Executor:warn(text)
  if self.dry then return end
  log.warn("%s", text)
end

-- Records what an operation does (kind, table, column, detail: a table of
-- the options that matter to the planner and the linter).
function Executor:note(kind, table_name, column, detail)
  self.notes[#self.notes + 1] = { kind = kind, table = table_name, column = column, detail = detail or {} }
end

return executor
