-- models.lua: the app's declared schema, what SQLAlchemy's models were to
-- the original app (Alembic's target_metadata). `migrate.lua check` and the
-- server's start compare the database with it; `migrate.lua revision
-- --autogenerate` writes the migration that makes the database match it.
-- The HTTP models read their limits from it (todos.title's length).
--
-- Columns take the types of op.types and the options of op.column; a table
-- also takes s.index, s.unique, s.check, s.foreign_key (see
-- scripts/migrator/schema.lua).

local s = require "migrator.schema"
local t = s.types

return s.define {
  s.table("todos",
    s.column("id", t.integer, { primary_key = true, index = true }),
    s.column("title", t.string(200), { nullable = false }),
    s.column("description", t.text, { nullable = true }),
    s.column("is_completed", t.boolean, { nullable = false, server_default = false }),
    s.column("created_at", t.datetime { timezone = true }, { nullable = false, server_default = s.now }),
    s.column("updated_at", t.datetime { timezone = true }, { nullable = true }),
    s.column("deleted_at", t.datetime { timezone = true }, { nullable = true })),
}
