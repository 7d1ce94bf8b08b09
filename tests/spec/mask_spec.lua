-- tests/spec/mask_spec.lua: todohost.db's URL reading and password masking
-- from Lua (db.parse_url, db.mask_url, db.mask_text), and http.parse_query:
-- the cases reviews found after the C tests (tests/c/test_dburl.c) and the
-- fuzz target (tests/fuzz/fuzz_dburl.c) were written.
local db = require "todohost.db"

describe("password masking from Lua", function()
  it("masks a password that follows a NUL byte's place in mask_text and mask_url", function()
    local text = "postgresql://u:sek\0ret@h/db"
    for _, masked in ipairs { db.mask_text(text), db.mask_url(text) } do
      assert.is_nil(masked:find("sek", 1, true), masked)
      assert.is_nil(masked:find("ret@", 1, true), masked)
      assert.truthy(masked:find("postgresql://u:***@h/db", 1, true), masked)
    end
  end)

  it("refuses a database URL holding a NUL byte", function()
    local ok, err = pcall(db.parse_url, "postgresql://u:sek\0ret@h/db")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("NUL", 1, true), tostring(err))
    assert.is_nil(tostring(err):find("sek", 1, true))
    ok, err = pcall(db.connect, "postgresql://u:sek\0ret@h/db")
    assert.is_false(ok)
    assert.is_nil(tostring(err):find("sek", 1, true))
  end)

  it("refuses user:password without '@host', never showing the password", function()
    local t, err = db.parse_url("postgresql://todo_user:s3kr1tpw/todo_db")
    assert.is_nil(t)
    assert.is_nil(tostring(err):find("s3kr1tpw", 1, true), tostring(err))
    local ok, cerr = pcall(db.connect, "postgresql://todo_user:s3kr1tpw/todo_db")
    assert.is_false(ok)
    assert.is_nil(tostring(cerr):find("s3kr1tpw", 1, true), tostring(cerr))
    assert.are.equal("postgresql://todo_user:***/todo_db", db.mask_url("postgresql://todo_user:s3kr1tpw/todo_db"))
  end)

  it("takes a number above 65535 after ':' for a password, never a port", function()
    local t, err = db.parse_url("postgresql://postgres:123456/todo")
    assert.is_nil(t)
    assert.is_nil(tostring(err):find("123456", 1, true), tostring(err))
    assert.are.equal("postgresql://postgres:***/todo", db.mask_url("postgresql://postgres:123456/todo"))
    -- a real port stays a port
    assert.are.equal("postgresql://h1:1,h2:65535/db", db.parse_url("postgresql://h1:1,h2:65535/db").url)
  end)
end)

describe("todohost.http.parse_query", function()
  it("stays as documented: every name, an empty value as \"\", the last value wins", function()
    local http = require "todohost.http"
    assert.same({ a = "2", b = "", c = "", ["x y"] = "1+1" }, http.parse_query("a=1&b=&a=2&c&x+y=1%2B1"))
    assert.same({}, http.parse_query(""))
    assert.same({}, http.parse_query())
  end)
end)
