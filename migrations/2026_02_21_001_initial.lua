-- initial
--
-- Revision ID: 2026_02_21_001
-- Revises:
-- Create Date: 2026-02-21
--
-- The todos table. On SQLite: id INTEGER (a rowid alias), created_at
-- DATETIME DEFAULT (CURRENT_TIMESTAMP); on PostgreSQL: id SERIAL,
-- created_at TIMESTAMP WITH TIME ZONE DEFAULT (CURRENT_TIMESTAMP), exactly
-- what Alembic's op.create_table made for the original app.
return {
  revision = "2026_02_21_001",
  down_revision = nil,
  message = "initial",
  create_date = "2026-02-21",

  upgrade = function(op)
    local t = op.types
    op.create_table("todos",
      op.column("id", t.integer, { nullable = false }),
      op.column("title", t.string(200), { nullable = false }),
      op.column("description", t.text, { nullable = true }),
      op.column("is_completed", t.boolean, { nullable = true }),
      op.column("created_at", t.datetime { timezone = true },
        { server_default = op.text("(CURRENT_TIMESTAMP)"), nullable = false }),
      op.primary_key("id"))
    op.create_index("ix_todos_id", "todos", { "id" }, { unique = false })
  end,

  downgrade = function(op)
    op.drop_index("ix_todos_id", "todos")
    op.drop_table("todos")
  end,
}
