-- tests/spec/web_schema_spec.lua (web/schema.lua): declarations, pydantic
-- v1's coercions, constraints and FastAPI's error shapes, and request
-- bodies (content type, UTF-8, control bytes, JSON errors).
local schema = require "web.schema"
local json = require "web.json"

local Item = schema.model("Item", {
  { "title", "string", required = true, strip = true, min_length = 1, max_length = 5 },
  { "count", "integer", ge = 0, le = 10, default = 3 },
  { "done", "boolean", nullable = true },
})

-- The errors as plain tables (loc, msg, type, ctx).
local function plain(errors)
  return json.decode(json.encode(errors or json.array {}))
end

describe("web.schema", function()
  it("refuses a field without a name or with an unknown type, naming the model", function()
    assert.has_error(function() schema.model("M", { { 1, "string" } }) end, "model M: a field needs a name first")
    assert.has_error(function() schema.params({ { "x", "float" } }, "query of GET /") end,
      "query of GET /: field x has an unknown type float (string, integer, boolean)")
  end)

  it("coerces as pydantic v1: booleans from text and 0/1, integers from text, numbers to strings", function()
    local fields = schema.params({ { "b", "boolean" }, { "i", "integer" }, { "s", "string" } })
    for text, want in pairs({ yes = true, ON = true, t = true, ["1"] = true, no = false, f = false, off = false, ["0"] = false }) do
      assert.equal(want, (schema.validate_params(fields, { b = text }, "query")).b, text)
    end
    local out, errors = schema.validate_params(fields, { i = " -12 ", s = "x" }, "query")
    assert.is_nil(errors)
    assert.same({ i = -12, s = "x" }, out)
    out = schema.validate_model(schema.model("N", fields), { i = 2.9, s = 12, b = 1 })
    assert.same({ i = 2, s = "12", b = true }, out)
    out = schema.validate_model(schema.model("N", fields), { s = true })
    assert.equal("True", out.s)
  end)

  it("reports FastAPI's errors with loc, msg, type and ctx", function()
    local fields = schema.params({ { "b", "boolean" }, { "i", "integer", required = true } })
    local out, errors = schema.validate_params(fields, { b = "maybe", i = "9223372036854775808" }, "query")
    assert.same({
      { loc = { "query", "b" }, msg = "value could not be parsed to a boolean", type = "type_error.bool" },
      { loc = { "query", "i" }, msg = "value is not a valid integer", type = "type_error.integer" },
    }, plain(errors))
    assert.is_nil(out.b)
    _, errors = schema.validate_params(fields, {}, "path")
    assert.same({ { loc = { "path", "i" }, msg = "field required", type = "value_error.missing" } }, plain(errors))
  end)

  it("checks constraints after stripping Unicode white space, and fills defaults", function()
    local out, errors = schema.validate_model(Item, { title = "\u{00A0} abc \u{3000}" })
    assert.is_nil(errors)
    assert.same({ title = "abc", count = 3 }, out)
    _, errors = schema.validate_model(Item, { title = "   ", count = 11 })
    assert.same({
      { loc = { "body", "title" }, msg = "ensure this value has at least 1 characters",
        type = "value_error.any_str.min_length", ctx = { limit_value = 1 } },
      { loc = { "body", "count" }, msg = "ensure this value is less than or equal to 10",
        type = "value_error.number.not_le", ctx = { limit_value = 10 } },
    }, plain(errors))
    _, errors = schema.validate_model(Item, { title = "abcdef", count = -1 })
    assert.same({ "value_error.any_str.max_length", "value_error.number.not_ge" },
      { plain(errors)[1].type, plain(errors)[2].type })
    -- length counts characters, not bytes
    assert.is_nil(select(2, schema.validate_model(Item, { title = "ééééé" })))
  end)

  it("takes null only where nullable, and refuses NUL characters and bad UTF-8 in strings", function()
    local out, errors = schema.validate_model(Item, { title = "a", done = json.null })
    assert.is_nil(errors)
    assert.equal(json.null, out.done)
    _, errors = schema.validate_model(Item, { title = json.null })
    assert.equal("type_error.none.not_allowed", plain(errors)[1].type)
    _, errors = schema.validate_model(Item, { title = "a\0b" })
    assert.equal("value_error.str.nul", plain(errors)[1].type)
    _, errors = schema.validate_model(Item, { title = "a\xff" })
    assert.equal("value_error.str.utf8", plain(errors)[1].type)
  end)

  it("refuses a body that is not an object", function()
    for _, value in ipairs({ json.array { 1 }, "text", 5 }) do
      local _, errors = schema.validate_model(Item, value)
      assert.same({ { loc = { "body" }, msg = "value is not a valid dict", type = "type_error.dict" } }, plain(errors))
    end
  end)

  it("parses a body: missing, wrong content type, bad UTF-8, control bytes, bad JSON, an array", function()
    local function first_error(body, content_type)
      local out, errors = schema.parse_body(Item, body, content_type)
      assert.is_nil(out)
      return plain(errors)[1]
    end
    assert.same({ loc = { "body" }, msg = "field required", type = "value_error.missing" }, first_error(""))
    assert.equal("type_error.dict", first_error('{"title":"a"}', "text/plain").type)
    assert.same({ "body", 10 }, first_error('{"title":"\xff"}', "application/json").loc)
    assert.same({ "body", 13 }, first_error('{"title":"a"}\0{}', "application/json").loc)
    local err = first_error('{"title": }', "application/json")
    assert.equal("value_error.jsondecode", err.type)
    assert.same({ "body", 10 }, err.loc)
    assert.equal("type_error.dict", first_error("[]", "application/json").type)
    local out, errors = schema.parse_body(Item, '{"title":"ok","extra":1}', "application/vnd.api+json; charset=utf-8")
    assert.is_nil(errors)
    assert.same({ title = "ok", count = 3 }, out)
  end)
end)
