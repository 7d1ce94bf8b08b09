-- tests/spec/schema_helper.lua: what the declared-schema specs share: a
-- schema using every kind of element (two tables, an enum, a numeric, a
-- CHECK, a UNIQUE, a foreign key with ON DELETE, indexes) written twice, as
-- a revision made of op calls and as the declaration in a schema file, and
-- running migrate.lua on them.
local h = require "spec_helper"

local M = {}

M.REVISION = [[
    local t = op.types
    local now = op.dialect == "postgresql" and op.text("now()") or op.text("(CURRENT_TIMESTAMP)")
    op.create_table("users",
      op.column("id", t.integer, { primary_key = true }),
      op.column("email", t.string(100), { nullable = false, unique = true }),
      op.column("status", t.enum("user_status", { "active", "blocked" }), { nullable = false, server_default = "active" }),
      op.column("score", t.numeric(6, 2), { server_default = op.text("0") }),
      op.check("score >= 0", { name = "score_positive" }))
    op.create_table("posts",
      op.column("id", t.integer, { primary_key = true }),
      op.column("user_id", t.integer, { nullable = false }),
      op.column("body", t.text),
      op.column("published", t.boolean, { nullable = false, server_default = false }),
      op.column("created_at", t.datetime { timezone = true }, { nullable = false, server_default = now }),
      op.foreign_key("user_id", "users", "id", { ondelete = "CASCADE" }))
    op.create_index("ix_posts_user_id", "posts", { "user_id" })
    op.create_index("ix_posts_user_published", "posts", { "user_id", "published" }, { unique = true })
]]

M.SCHEMA = [[
local s = require "migrator.schema"
local t = s.types
return s.define {
  s.table("users",
    s.column("id", t.integer, { primary_key = true }),
    s.column("email", t.string(100), { nullable = false, unique = true }),
    s.column("status", t.enum("user_status", { "active", "blocked" }), { nullable = false, server_default = "active" }),
    s.column("score", t.numeric(6, 2), { server_default = s.text("0") }),
    s.check("score >= 0", { name = "score_positive" })),
  s.table("posts",
    s.column("id", t.integer, { primary_key = true }),
    s.column("user_id", t.integer, { nullable = false, index = true }),
    s.column("body", t.text),
    s.column("published", t.boolean, { nullable = false, server_default = false }),
    s.column("created_at", t.datetime { timezone = true }, { nullable = false, server_default = s.now }),
    s.index("ix_posts_user_published", { "user_id", "published" }, { unique = true }),
    s.foreign_key("user_id", "users", "id", { ondelete = "CASCADE" })),
}
]]

M.revisions = h.revisions

-- A schema file with text; returns its path.
function M.schema_file(text)
  local path = h.tmpdir() .. "/models.lua"
  h.write(path, text)
  return path
end

-- Runs `migrate.lua ARGS` on url with the migrations in dir; returns
-- code, stdout, stderr.
function M.migrate(url, dir, args)
  return h.run("env -u DEBUG DATABASE_URL=" .. h.quote(url) .. " " .. h.quote(h.todohost())
    .. " run migrate.lua -q --dir " .. h.quote(dir) .. " " .. args)
end

-- Runs sql on url.
function M.exec(url, ...)
  local db = require "todohost.db"
  local conn = db.connect(url)
  local ok, err = pcall(conn.exec, conn, ...)
  conn:close()
  if not ok then error(err, 0) end
end

return M
