-- add_deleted_at_to_todos
--
-- Revision ID: 2026_02_21_003
-- Revises: 2026_02_21_002
-- Create Date: 2026-02-21
return {
  revision = "2026_02_21_003",
  down_revision = "2026_02_21_002",
  message = "add_deleted_at_to_todos",
  create_date = "2026-02-21",

  upgrade = function(op)
    op.add_column("todos", op.column("deleted_at", op.types.datetime { timezone = true }, { nullable = true }))
  end,

  downgrade = function(op)
    op.drop_column("todos", "deleted_at")
  end,
}
