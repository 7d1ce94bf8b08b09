-- tests/spec/web_json_spec.lua (web/json.lua): decoding with its errors and
-- positions, and the encoder: [] for empty arrays, exact 64-bit integers,
-- declared key order, FastAPI's string escapes, refusals.
local json = require "web.json"

describe("web.json", function()
  it("decodes objects, arrays, null and numbers", function()
    local v = json.decode('{"a": [1, 2.5, "x", true], "b": null}')
    assert.same({ 1, 2.5, "x", true }, v.a)
    assert.equal(json.null, v.b)
  end)

  it("returns nil, cjson's message and the 0-based position of a decode error", function()
    local v, message, pos = json.decode('{"a": 1,}')
    assert.is_nil(v)
    assert.is_string(message)
    assert.equal(8, pos)
  end)

  it("refuses NaN, Infinity and hex numbers, and nesting deeper than 64", function()
    assert.is_nil((json.decode("NaN")))
    assert.is_nil((json.decode("[Infinity]")))
    assert.is_nil((json.decode("[0x10]")))
    assert.is_not_nil((json.decode(("["):rep(64) .. ("]"):rep(64))))
    assert.is_nil((json.decode(("["):rep(65) .. ("]"):rep(65))))
  end)

  it("encodes an empty array as [] and an empty table as {}", function()
    assert.equal("[]", json.encode(json.array {}))
    assert.equal("{}", json.encode({}))
    assert.equal('{"items":[]}', json.encode({ items = json.array() }))
  end)

  it("keeps 64-bit integers exact and writes floats that read back", function()
    assert.equal("[9223372036854775807,-9223372036854775808,0]", json.encode({ math.maxinteger, math.mininteger, 0 }))
    assert.equal("[2.0,0.1,1e+300]", json.encode({ 2.0, 0.1, 1e300 }))
    assert.equal(0.1 + 0.2, tonumber(json.encode(0.1 + 0.2)))
  end)

  it("writes an object's keys in the declared order, skipping absent ones and unlisted ones", function()
    assert.equal('{"z":1,"a":2,"m":null}',
      json.encode(json.object({ a = 2, z = 1, m = json.null, extra = 5 }, { "z", "a", "gone", "m" })))
  end)

  it("escapes strings as FastAPI does: quotes, control characters, '/' left as it is", function()
    assert.equal('"a/b"', json.encode("a/b"))
    assert.equal('"q\\"\\\\ \\n\\u0001/"', json.encode('q"\\ \n\1/'))
    assert.equal('"hé"', json.string("hé"))   -- UTF-8 as it is
    assert.equal(json.string("x/\ty"), json.string_memo("x/\ty"))
    assert.equal(json.string_memo("x/\ty"), json.string_memo("x/\ty"))
  end)

  it("round-trips through decode", function()
    local value = { id = 12345678901234, title = "t/\"\n", done = false, tags = { "a", "b" } }
    assert.same(value, json.decode(json.encode(value)))
  end)

  it("refuses what JSON cannot hold: non-finite numbers, functions, cycles", function()
    assert.has_error(function() json.encode({ 0 / 0 }) end, "cannot encode a non-finite number as JSON")
    assert.has_error(function() json.encode({ math.huge }) end)
    assert.has_error(function() json.encode({ print }) end, "cannot encode a function as JSON")
    local cycle = {}
    cycle.self = cycle
    assert.has_error(function() json.encode(cycle) end, "JSON nesting too deep (cycle?)")
  end)
end)
