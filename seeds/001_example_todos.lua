-- seeds/001_example_todos.lua: a few example todos for a new database.
-- A seed returns function(conn); seeding.lua runs it inside a transaction,
-- only when the todos table has no rows at all.

local EXAMPLES = {
  { "Read the todohost README", "make run, then open http://127.0.0.1:8080/docs", true },
  { "Try the API in Swagger UI", "GET /todos, then POST one of your own", false },
  { "Move to PostgreSQL", "set DATABASE_URL in .env, then make migrate (see the README)", false },
}

return function(conn)
  for _, todo in ipairs(EXAMPLES) do
    conn:exec("INSERT INTO todos (title, description, is_completed) VALUES ($1, $2, $3)",
      todo[1], todo[2], todo[3])
  end
end
