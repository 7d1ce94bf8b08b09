-- tests/spec/todos_spec.lua (scripts/app/todos.lua): the Todo routes
-- (docs/http-api.md: POST, GET, PATCH, DELETE /todos...), by calling the
-- app's request handler the way each server worker does (no sockets), on
-- the database of this pass: a SQLite file, then the test PostgreSQL server.
-- http_spec.lua sends the same kinds of requests over real HTTP.
local cjson = require "cjson"
local helper = require "spec_helper"
local api_helper = require "api_helper"

local url = helper.database_url()
local kind = url:match("^postgres") and "postgresql" or "sqlite"
local null = cjson.null
local call = api_helper.call

-- "/todos/ID" (ids decoded by cjson are floats: 1.0 must print as 1)
local function todo_path(id)
  return ("/todos/%d"):format(id)
end

describe("the Todo routes on " .. kind, function()
  local conn, handle

  setup(function() conn, handle = api_helper.app(url) end)

  teardown(function()
    if conn then conn:close() end
  end)

  before_each(function()
    conn:exec("DELETE FROM todos")
  end)

  local function create(fields)
    local status, todo = call(handle, "POST", "/todos", { json = fields })
    assert.equal(201, status)
    return todo
  end

  -- the detail entry of a 422 body for loc, or nil
  local function problem(body, ...)
    local want = table.concat({ ... }, "/")
    for _, d in ipairs(body.detail) do
      local loc = {}
      for i, part in ipairs(d.loc) do loc[i] = tostring(part) end
      if table.concat(loc, "/") == want then return d end
    end
  end

  local function assert_invalid(status, body, ...)
    assert.equal(422, status)
    local d = problem(body, ...)
    assert.is_table(d, "no 422 detail for " .. table.concat({ ... }, "/") .. " in " .. cjson.encode(body))
    assert.is_string(d.msg)
    assert.is_string(d.type)
    return d
  end

  describe("POST /todos", function()
    it("creates a todo and returns it with 201", function()
      local status, todo, headers = call(handle, "POST", "/todos",
        { json = { title = "  Buy milk  ", description = "2 litres" } })
      assert.equal(201, status)
      assert.matches("^application/json", headers["content-type"])
      assert.is_number(todo.id)
      assert.equal("Buy milk", todo.title)          -- surrounding white space trimmed
      assert.equal("2 litres", todo.description)
      assert.is_false(todo.is_completed)
      assert.matches(api_helper.TIMESTAMP, todo.created_at)
      assert.equal(null, todo.updated_at)
      assert.is_nil(todo.deleted_at)
      local row = conn:first("SELECT title, description FROM todos WHERE id = $1", math.tointeger(todo.id))
      assert.same({ title = "Buy milk", description = "2 litres" }, row)
    end)

    it("returns the keys in the Todo model's order", function()
      local _, _, _, raw = call(handle, "POST", "/todos", { json = { title = "order" } })
      assert.matches('^{"id":%d+,"title":"order","description":null,"is_completed":false,' ..
        '"created_at":"[^"]+","updated_at":null}$', raw)
    end)

    it("accepts is_completed and a null description, and ignores unknown fields", function()
      local todo = create({ title = "done", description = null, is_completed = true, owner = "x" })
      assert.is_true(todo.is_completed)
      assert.equal(null, todo.description)
      assert.is_nil(todo.owner)
    end)

    it("coerces values the way pydantic v1 does", function()
      assert.is_true(create({ title = "a", is_completed = "yes" }).is_completed)
      assert.is_false(create({ title = "b", is_completed = 0 }).is_completed)
      assert.equal("123", create({ title = 123 }).title)
    end)

    it("stores SQL meta-characters and Unicode literally", function()
      local evil = "'); DROP TABLE todos; -- \"%_\\ é 日本 😀"
      local todo = create({ title = evil, description = evil })
      assert.equal(evil, todo.title)
      local _, again = call(handle, "GET", todo_path(todo.id))
      assert.equal(evil, again.title)
      assert.equal(evil, again.description)
      assert.is_table(conn:first("SELECT count(*) AS n FROM todos"))
    end)

    it("counts the 200-character limit in characters, not bytes", function()
      assert.equal(200, utf8.len(create({ title = string.rep("é", 200) }).title))
      local status, body = call(handle, "POST", "/todos", { json = { title = string.rep("é", 201) } })
      local d = assert_invalid(status, body, "body", "title")
      assert.equal("value_error.any_str.max_length", d.type)
      assert.equal(200, d.ctx.limit_value)
    end)

    it("422 when the title is missing, with FastAPI's body", function()
      local status, body = call(handle, "POST", "/todos", { json = { description = "no title" } })
      assert.equal(422, status)
      assert.same({ detail = { { loc = { "body", "title" }, msg = "field required",
        type = "value_error.missing" } } }, body)
    end)

    it("never stores a number other than the one sent (2^53 and beyond: 422)", function()
      -- cjson decodes 9007199254740993 as the float ...992: refused, not stored as ...992
      for _, text in ipairs { '{"title": 9007199254740993}', '{"title": 9007199254740992}',
          '{"title": -9007199254740993}', '{"title": 1e16}', '{"title": "x", "description": 9007199254740993}' } do
        local status, body = call(handle, "POST", "/todos", { json = text })
        local d = assert_invalid(status, body, "body", text:find("description") and "description" or "title")
        assert.equal("type_error.str", d.type, text)
        assert.matches("send it as a JSON string", d.msg, 1, true)
      end
      assert.equal(0, conn:first("SELECT count(*) AS n FROM todos").n)
      -- below 2^53 a number is exact, and kept as its text (raw JSON: cjson.encode
      -- would round to 14 digits)
      assert.equal("9007199254740991", create('{"title": 9007199254740991}').title)
      assert.equal("-9007199254740991", create('{"title": -9007199254740991}').title)
      assert.equal("0.1", create('{"title": 0.1}').title)
      assert.equal("9007199254740993", create({ title = "9007199254740993" }).title)
    end)

    it("strips every white space character Python's str.strip() removes", function()
      local spaces = " \t\n\v\f\r\x1c\x1d\x1e\x1f\u{85}\u{a0}\u{1680}\u{2000}\u{2005}\u{200a}"
        .. "\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}"
      local todo = create({ title = spaces .. "a\u{a0}b" .. spaces })
      assert.equal("a\u{a0}b", todo.title)
      -- not white space for Python: zero width space, BOM
      assert.equal("\u{200b}x\u{feff}", create({ title = "\u{200b}x\u{feff}" }).title)
    end)

    it("422 when the title is empty or only white space", function()
      for _, title in ipairs { "", "   ", "\t\n", "\u{3000}" } do
        local status, body = call(handle, "POST", "/todos", { json = { title = title } })
        local d = assert_invalid(status, body, "body", "title")
        assert.equal("value_error.any_str.min_length", d.type)
        assert.equal("ensure this value has at least 1 characters", d.msg)
      end
    end)

    it("422 for wrong types, one entry per problem", function()
      local status, body = call(handle, "POST", "/todos",
        { json = '{"title": ["a"], "description": {"x": 1}, "is_completed": "maybe"}' })
      assert.equal(422, status)
      assert.equal(3, #body.detail)
      assert.equal("type_error.str", problem(body, "body", "title").type)
      assert.equal("type_error.str", problem(body, "body", "description").type)
      assert.equal("type_error.bool", problem(body, "body", "is_completed").type)
    end)

    it("422 for a null title or is_completed", function()
      local status, body = call(handle, "POST", "/todos", { json = '{"title": null, "is_completed": null}' })
      assert.equal("type_error.none.not_allowed", assert_invalid(status, body, "body", "title").type)
      assert.equal("type_error.none.not_allowed", assert_invalid(status, body, "body", "is_completed").type)
    end)

    it("422 when the body is not JSON, not an object, or missing", function()
      local status, body = call(handle, "POST", "/todos", { json = '{"title": "x"' })
      assert.equal(422, status)
      assert.equal("body", body.detail[1].loc[1])
      assert.equal("value_error.jsondecode", body.detail[1].type)

      for _, text in ipairs { "[]", '["title"]', '"title"', "42", "null" } do
        status, body = call(handle, "POST", "/todos", { json = text })
        assert.equal(422, status, text)
        assert.same({ "body" }, body.detail[1].loc, text)
      end

      status, body = call(handle, "POST", "/todos", {})
      assert.same({ detail = { { loc = { "body" }, msg = "field required", type = "value_error.missing" } } }, body)
    end)

    it("422 for a body that is not declared as JSON", function()
      local status, body = call(handle, "POST", "/todos",
        { body = '{"title":"x"}', headers = { ["content-type"] = "text/plain" } })
      assert.equal(422, status)
      assert.equal("type_error.dict", body.detail[1].type)
      -- but application/json with a charset, or a +json type, is JSON
      status = call(handle, "POST", "/todos",
        { body = '{"title":"x"}', headers = { ["content-type"] = "application/json; charset=utf-8" } })
      assert.equal(201, status)
      status = call(handle, "POST", "/todos",
        { body = '{"title":"x"}', headers = { ["content-type"] = "application/merge-patch+json" } })
      assert.equal(201, status)
    end)

    it("422 for invalid UTF-8, NUL characters, huge and non-finite numbers", function()
      local cases = {
        '{"title": "\xff\xfe"}', '{"title": "bad \xc3\x28"}', '{"title": "\\ud800"}',
        '{"title": "a\\u0000b"}', '{"title": 1e400}', '{"title": NaN}', '{"title": Infinity}',
        '{"title": 123456789012345678901234567890}', '{"title": "x", "is_completed": 1e400}',
        -- raw control characters: cjson takes them in strings, stops reading at a NUL
        '{"title": "a\1b"}', '{"title": "a\27[31mred"}', '{"title": "x"}\0{"title": "y"}', '{"title": "x"}\0',
      }
      for _, text in ipairs(cases) do
        local status, body = call(handle, "POST", "/todos", { json = text })
        assert.equal(422, status, text)
        assert.equal("body", body.detail[1].loc[1], text)
      end
      assert.equal(0, conn:first("SELECT count(*) AS n FROM todos").n)
    end)

    it("422 for deeply nested JSON instead of an error", function()
      local deep = string.rep("[", 100000) .. string.rep("]", 100000)
      local status = call(handle, "POST", "/todos", { json = '{"title": "x", "extra": ' .. deep .. "}" })
      assert.equal(422, status)
    end)
  end)

  describe("GET /todos", function()
    it("returns [] when there are none", function()
      local status, _, headers, raw = call(handle, "GET", "/todos")
      assert.equal(200, status)
      assert.matches("^application/json", headers["content-type"])
      assert.equal("[]", raw)
    end)

    it("lists todos ordered by id, without deleted ones", function()
      local a = create({ title = "a" })
      local b = create({ title = "b", is_completed = true })
      local c = create({ title = "c" })
      assert.equal(204, (call(handle, "DELETE", todo_path(b.id))))
      local status, list = call(handle, "GET", "/todos")
      assert.equal(200, status)
      assert.same({ a.id, c.id }, { list[1].id, list[2].id })
      assert.equal(2, #list)
      for _, todo in ipairs(list) do
        assert.matches(api_helper.TIMESTAMP, todo.created_at)
        assert.is_boolean(todo.is_completed)
      end
    end)

    it("pages with skip and limit", function()
      local ids = {}
      for i = 1, 5 do ids[i] = create({ title = "t" .. i }).id end
      local _, page = call(handle, "GET", "/todos", { query = "skip=1&limit=2" })
      assert.same({ ids[2], ids[3] }, { page[1].id, page[2].id })
      assert.equal(2, #page)
      _, page = call(handle, "GET", "/todos", { query = "skip=4&limit=1000" })
      assert.equal(1, #page)
      _, page = call(handle, "GET", "/todos", { query = "skip=10" })
      assert.same({}, page)
    end)

    it("defaults to 100 rows", function()
      conn:transaction(function()
        for i = 1, 105 do conn:exec("INSERT INTO todos (title) VALUES ($1)", "bulk " .. i) end
      end)
      local _, list = call(handle, "GET", "/todos")
      assert.equal(100, #list)
      local _, all = call(handle, "GET", "/todos", { query = "limit=1000" })
      assert.equal(105, #all)
    end)

    it("filters on completed=true/false (and pydantic's other spellings)", function()
      local open = create({ title = "open" })
      local done = create({ title = "done", is_completed = true })
      local _, list = call(handle, "GET", "/todos", { query = "completed=true" })
      assert.same({ done.id }, { list[1].id })
      assert.equal(1, #list)
      _, list = call(handle, "GET", "/todos", { query = "completed=false" })
      assert.same({ open.id }, { list[1].id })
      assert.equal(1, #list)
      _, list = call(handle, "GET", "/todos", { query = "completed=1" })
      assert.same({ done.id }, { list[1].id })
      -- empty means "not given", as in the documented skip=0&limit=100&completed=
      _, list = call(handle, "GET", "/todos", { query = "skip=0&limit=100&completed=" })
      assert.equal(2, #list)
    end)

    it("decodes percent-encoded query strings", function()
      create({ title = "x" })
      local status, list = call(handle, "GET", "/todos", { query = "completed=%74rue&limit=%31" })
      assert.equal(200, status)
      assert.same({}, list)
    end)

    it("422 for bad skip, limit and completed, every problem listed", function()
      local status, body = call(handle, "GET", "/todos", { query = "skip=-1&limit=0&completed=maybe" })
      assert.equal(422, status)
      assert.equal(3, #body.detail)
      local d = problem(body, "query", "skip")
      assert.same({ loc = { "query", "skip" }, msg = "ensure this value is greater than or equal to 0",
        type = "value_error.number.not_ge", ctx = { limit_value = 0 } }, d)
      assert.equal("value_error.number.not_ge", problem(body, "query", "limit").type)
      assert.equal("type_error.bool", problem(body, "query", "completed").type)

      status, body = call(handle, "GET", "/todos", { query = "limit=1001" })
      assert.equal("value_error.number.not_le", assert_invalid(status, body, "query", "limit").type)
      for _, q in ipairs { "limit=abc", "skip=1.5", "skip=99999999999999999999999", "limit=1e2" } do
        status, body = call(handle, "GET", "/todos", { query = q })
        assert.equal("type_error.integer", assert_invalid(status, body, "query", q:match("^%a+")).type, q)
      end
    end)
  end)

  describe("GET /todos/{id}", function()
    it("returns the todo", function()
      local todo = create({ title = "one", description = "first" })
      local status, got = call(handle, "GET", todo_path(todo.id))
      assert.equal(200, status)
      assert.same(todo, got)
    end)

    it("404 for a missing or deleted todo, with FastAPI's detail", function()
      local todo = create({ title = "gone" })
      call(handle, "DELETE", todo_path(todo.id))
      for _, id in ipairs { todo.id, todo.id + 1000, 0, -1, 2147483648, 9223372036854775807 } do
        local status, body = call(handle, "GET", todo_path(id))
        assert.equal(404, status, id)
        assert.same({ detail = "Todo not found" }, body)
      end
    end)

    it("422 when the id is not an integer", function()
      for _, id in ipairs { "abc", "1.5", "1e3", "99999999999999999999", "%20" } do
        local status, body = call(handle, "GET", "/todos/" .. id)
        assert.equal(422, status, id)
        assert.same({ loc = { "path", "todo_id" }, msg = "value is not a valid integer",
          type = "type_error.integer" }, body.detail[1])
      end
    end)
  end)

  describe("PATCH /todos/{id}", function()
    it("changes only the fields sent and sets updated_at", function()
      local todo = create({ title = "old", description = "keep" })
      local status, got = call(handle, "PATCH", todo_path(todo.id), { json = { is_completed = true } })
      assert.equal(200, status)
      assert.equal("old", got.title)
      assert.equal("keep", got.description)
      assert.is_true(got.is_completed)
      assert.equal(todo.created_at, got.created_at)
      assert.matches(api_helper.TIMESTAMP, got.updated_at)
      assert.is_true(got.updated_at >= got.created_at)

      status, got = call(handle, "PATCH", todo_path(todo.id),
        { json = { title = "  new  ", description = null } })
      assert.equal(200, status)
      assert.equal("new", got.title)
      assert.equal(null, got.description)
      assert.is_true(got.is_completed)
      local _, again = call(handle, "GET", todo_path(todo.id))
      assert.same(got, again)
    end)

    it("sets updated_at even for an empty object", function()
      local todo = create({ title = "t" })
      local status, got = call(handle, "PATCH", todo_path(todo.id), { json = "{}" })
      assert.equal(200, status)
      assert.matches(api_helper.TIMESTAMP, got.updated_at)
    end)

    it("422 for a null title or is_completed, an empty title, a bad type", function()
      local todo = create({ title = "t" })
      local status, body = call(handle, "PATCH", todo_path(todo.id), { json = '{"title": null}' })
      assert.equal("type_error.none.not_allowed", assert_invalid(status, body, "body", "title").type)
      status, body = call(handle, "PATCH", todo_path(todo.id), { json = '{"is_completed": null}' })
      assert.equal("type_error.none.not_allowed", assert_invalid(status, body, "body", "is_completed").type)
      status, body = call(handle, "PATCH", todo_path(todo.id), { json = { title = " " } })
      assert_invalid(status, body, "body", "title")
      status, body = call(handle, "PATCH", todo_path(todo.id), { json = { is_completed = "nope" } })
      assert_invalid(status, body, "body", "is_completed")
      status, body = call(handle, "PATCH", "/todos/abc", { json = { title = " " } })
      assert_invalid(status, body, "path", "todo_id")
      assert_invalid(status, body, "body", "title")
      local _, unchanged = call(handle, "GET", todo_path(todo.id))
      assert.equal(null, unchanged.updated_at)
      assert.equal("t", unchanged.title)
    end)

    it("422 for a number it cannot keep exactly, and the todo is unchanged", function()
      local todo = create({ title = "t" })
      local status, body = call(handle, "PATCH", todo_path(todo.id), { json = '{"title": 9007199254740993}' })
      assert.equal("type_error.str", assert_invalid(status, body, "body", "title").type)
      local _, unchanged = call(handle, "GET", todo_path(todo.id))
      assert.equal("t", unchanged.title)
    end)

    it("404 for a missing or deleted todo", function()
      local todo = create({ title = "t" })
      call(handle, "DELETE", todo_path(todo.id))
      local status, body = call(handle, "PATCH", todo_path(todo.id), { json = { title = "back" } })
      assert.equal(404, status)
      assert.same({ detail = "Todo not found" }, body)
      assert.equal("t", conn:first("SELECT title FROM todos WHERE id = $1", math.tointeger(todo.id)).title)
    end)
  end)

  describe("DELETE /todos/{id}", function()
    it("soft-deletes: 204 with an empty body, the row stays with deleted_at", function()
      local todo = create({ title = "t" })
      local status, _, headers, raw = call(handle, "DELETE", todo_path(todo.id))
      assert.equal(204, status)
      assert.equal("", raw)
      assert.is_nil(headers["content-type"])
      local row = conn:first("SELECT deleted_at FROM todos WHERE id = $1", math.tointeger(todo.id))
      assert.is_string(row.deleted_at)
    end)

    it("404 when missing or already deleted", function()
      local todo = create({ title = "t" })
      assert.equal(204, (call(handle, "DELETE", todo_path(todo.id))))
      local status, body = call(handle, "DELETE", todo_path(todo.id))
      assert.equal(404, status)
      assert.same({ detail = "Todo not found" }, body)
      assert.equal(404, (call(handle, "DELETE", todo_path(todo.id + 1000))))
    end)
  end)
end)
