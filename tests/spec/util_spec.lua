-- tests/spec/util_spec.lua: todohost.util (host/lua_util.c) on real files and
-- the real clock: listing a directory (sorted, by suffix, hidden names left
-- out, a missing one as nil and a message), making directories, SHA-256,
-- text made safe for a terminal, the monotonic clock and sleep, isatty.
local h = require "spec_helper"
local util = require "todohost.util"

describe("todohost.util", function()
  it("lists a directory sorted, without . and .., or says why it cannot", function()
    local dir = h.tmpdir()
    for _, name in ipairs({ "b.lua", "a.lua", ".hidden.lua", "notes.txt", "c.lua.orig", "z" }) do
      h.write(dir .. "/" .. name, "")
    end
    assert.same({ ".hidden.lua", "a.lua", "b.lua", "c.lua.orig", "notes.txt", "z" }, util.listdir(dir))
    assert.same({}, util.listdir(h.tmpdir()))
    local none, err = util.listdir(dir .. "/none")
    assert.is_nil(none)
    assert.equal(dir .. "/none: No such file or directory", err)
  end)

  it("lists only the names ending in a suffix, hidden ones left out", function()
    local dir = h.tmpdir()
    for _, name in ipairs({ "02_b.lua", "01_a.lua", ".#01_a.lua", "script.lua.tmpl", "README", ".lua" }) do
      h.write(dir .. "/" .. name, "")
    end
    assert.same({ "01_a.lua", "02_b.lua" }, util.listdir(dir, ".lua"))
    assert.same({ "script.lua.tmpl" }, util.listdir(dir, ".tmpl"))
    assert.same({ "01_a.lua", "02_b.lua", "README", "script.lua.tmpl" }, util.listdir(dir, ""))
    assert.is_nil(util.listdir(dir .. "/none", ".lua"))
  end)

  it("makes a directory and its missing parents; an existing one is fine", function()
    local dir = h.tmpdir() .. "/a/b/c"
    assert.is_true(util.mkdir(dir))
    assert.same({}, util.listdir(dir))
    assert.is_true(util.mkdir(dir))
    h.write(dir .. "/file", "")
    local ok, err = util.mkdir(dir .. "/file/sub")
    assert.is_nil(ok)
    assert.matches("file", err, 1, true)
  end)

  it("hashes with SHA-256", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", util.sha256(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", util.sha256("abc"))
  end)

  it("escapes control characters and invalid UTF-8 for a terminal", function()
    assert.equal("a\\x1b[2Jb\\x5c", util.text_safe("a\27[2Jb\\"))
    assert.equal("ok ✓ \\xff", util.text_safe("ok ✓ \255"))
    assert.equal("keep \\n", util.text_safe("keep \\n", true))
  end)

  it("measures a sleep on the monotonic clock", function()
    local t0 = util.clock()
    util.sleep(0.05)
    local waited = util.clock() - t0
    assert.is_true(waited >= 0.05, tostring(waited))
    assert.is_true(waited < 5, tostring(waited))
  end)

  it("tells a terminal from a file", function()
    local f = io.tmpfile()
    assert.is_false(util.isatty(f))
    f:close()
  end)
end)
