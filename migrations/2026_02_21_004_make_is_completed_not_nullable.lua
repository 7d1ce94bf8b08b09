-- make_is_completed_not_nullable
--
-- Revision ID: 2026_02_21_004
-- Revises: 2026_02_21_003
-- Create Date: 2026-02-21
--
-- NULLs become false, then is_completed is NOT NULL with server default
-- false (Alembic's sa.false(): `false` on PostgreSQL, `0` on SQLite, where
-- the table is rebuilt as Alembic's batch mode does).
return {
  revision = "2026_02_21_004",
  down_revision = "2026_02_21_003",
  message = "make_is_completed_not_nullable",
  create_date = "2026-02-21",

  upgrade = function(op)
    op.execute("UPDATE todos SET is_completed = false WHERE is_completed IS NULL")
    op.alter_column("todos", "is_completed", { nullable = false, server_default = false })
  end,

  downgrade = function(op)
    op.alter_column("todos", "is_completed", { nullable = true, server_default = op.no_default })
  end,
}
