-- tests/spec/migrator_source_spec.lua (migrator/source.lua): the canonical
-- form checksums are taken of: comments and layout gone, code and strings kept.
local source = require "migrator.source"

local c = source.canonical

describe("migrator.source", function()
  it("leaves out comments, blank lines, indentation and spacing", function()
    local a = 'return { upgrade = function(op)\n  op.drop_column("t", "c")\nend }\n'
    local b = '-- note\n--[[ long\n note ]] return {\n\n    upgrade = function (op) -- why\n' ..
      '      op.drop_column( "t" ,\n "c" )  --[==[ x ]==]\n    end\n}'
    assert.equal(c(a), c(b))
    assert.equal('return{upgrade=function(op)op.drop_column("t","c")end}', c(a))
  end)

  it("keeps a space only between two words", function()
    assert.equal("local x=a and b", c("local   x =\ta\nand b"))
    assert.equal("a-b", c("a - b"))
    assert.equal("a--b", c("a - -b"))       -- not a comment
    assert.equal("a", c("a -- b"))
  end)

  it("keeps strings byte for byte, long strings included", function()
    assert.not_equal(c('x = "a  b"'), c('x = "a b"'))
    assert.not_equal(c("x = [[a\n  b]]"), c("x = [[a\nb]]"))
    assert.not_equal(c("x = 'a -- no'"), c("x = 'a'"))
    assert.equal("x='--[[ not a comment ]]'", c("x = '--[[ not a comment ]]'"))
    assert.equal('x="\\"--"', c('x = "\\"--"'))
  end)

  it("sees any change to code", function()
    assert.not_equal(c("op.alter_column('t', 'c', { nullable = true })"), c("op.alter_column('t', 'c', { nullable = false })"))
    assert.not_equal(c("a = b"), c("a = bb"))
  end)
end)
