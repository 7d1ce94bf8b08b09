-- migrator/lint.lua: the operations of a revision's upgrade that lose data
-- or block a table, found by a dry run (nothing is executed): dropping a
-- table or a column, a type change that may not fit the values, NOT NULL on
-- a column that may hold NULLs, a NOT NULL column added without a default,
-- and (PostgreSQL) an index built without CONCURRENTLY on an existing table.
-- Each finding is one line naming the operation and a way round it.
--
-- lint.revision(rev, dialect, nulls) returns a list of texts; nulls, when
-- given, is function(table, column) -> the number of NULLs in the database
-- now (or nil when it cannot tell).

local executor = require "migrator.executor"
local normal = require "migrator.normal"
local ops = require "migrator.ops"

local lint = {}

-- The finding for note (nil: none); an alter_column's type and nullability
-- are looked at one after the other (aspect "type", then "nullable").
local function finding_for(note, dialect, created, filled, nulls, aspect)
  local k, t, c, d = note.kind, note.table, note.column, note.detail
  if created[t] then return nil end -- a table made by this revision holds no rows yet
  if k == "alter_column" and aspect == "type" then d = { type = d.type, existing_type = d.existing_type }
  elseif k == "alter_column" then d = { nullable = d.nullable } end
  if k == "drop_table" then
    return ("drops table %s and its rows; way round: stop using it, rename it (op.rename_table) and drop it "
      .. "in a later revision once nothing reads it"):format(t)
  elseif k == "drop_column" then
    return ("drops column %s.%s and its values (a downgrade cannot bring them back); way round: stop reading it "
      .. "first, drop it in a later revision"):format(t, c)
  elseif k == "alter_column" and d.type then
    local to = normal.declared_type(d.type, dialect)
    local from = d.existing_type and normal.declared_type(d.existing_type, dialect)
    if from and not normal.narrows(from, to) then return nil end
    return ("changes the type of %s.%s%s to %s: values that do not fit fail the revision%s; way round: add a new "
      .. "column, copy the values in batches, switch the app, drop the old column"):format(t, c,
        from and (" from " .. from) or " (existing_type not given)", to,
        dialect == "postgresql" and ", and the table is rewritten under an exclusive lock" or "")
  elseif k == "alter_column" and d.nullable == false then
    if filled[t] then return nil end
    local n = nulls and nulls(t, c)
    if n == 0 then return nil end
    return ("sets NOT NULL on %s.%s%s: fails while a row holds NULL (a server default does not fill them); way round: "
      .. "op.execute(\"UPDATE %s SET %s = ... WHERE %s IS NULL\") first in the same revision"):format(t, c,
        n and (" (" .. n .. " row" .. (n == 1 and "" or "s") .. " hold NULL now)") or "", t, c, c)
  elseif k == "add_column" and d.nullable == false and d.server_default == nil then
    return ("adds NOT NULL column %s.%s without a server default: fails when %s has rows; way round: give it a "
      .. "server_default, or add it nullable, fill it, then set NOT NULL"):format(t, c, t)
  elseif k == "create_index" and dialect == "postgresql" and not d.concurrently then
    return ("builds index %s on %s without CONCURRENTLY: writes to %s wait until it is built; way round: "
      .. "op.create_index(..., { concurrently = true }) in a revision with transactional = false"):format(d.name, t, t)
  end
  return nil
end

-- The findings for rev's upgrade on dialect (see the top of this file).
function lint.revision(rev, dialect, nulls)
  local ctx = executor.new({ dialect = dialect, dry = true })
  ctx.transactional = rev.module.transactional
  local ok, err = pcall(rev.module.upgrade, ops.new(ctx))
  if not ok then
    return { "its upgrade fails before running anything: " .. tostring(type(err) == "table" and err.migrate_error or err) }
  end
  local out, created, filled = {}, {}, {}
  for _, note in ipairs(ctx.notes) do
    if note.kind == "create_table" then created[note.table] = true end
    -- an op.execute before a NOT NULL is taken as the UPDATE that fills the NULLs
    if note.kind == "execute" then filled = setmetatable({}, { __index = function() return true end }) end
    for _, aspect in ipairs(note.kind == "alter_column" and { "type", "nullable" } or { "all" }) do
      local text = finding_for(note, dialect, created, filled, nulls, aspect)
      if text then out[#out + 1] = text end
    end
  end
  return out
end

return lint
