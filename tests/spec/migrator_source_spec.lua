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

  it("gives the same text whatever the layout and comments between tokens (random token streams)", function()
    local seed = tonumber(os.getenv("SOURCE_SEED") or "") or os.time()
    math.randomseed(seed)
    local TOKENS = { "local", "x", "op", ".", "add_column", "(", ")", "{", "}", "=", ",", "-", "1", "2.5", "==",
      '"a  b"', "'--[[ no ]]'", "[[x\n  y]]", '"\\""', "[", "]", "and", "not", "..", "#" }
    local GAPS = { " ", "\n", "\t  ", " -- note\n", " --[[ c ]] ", "\n\n", " --[==[ c\n]==] " }
    for _ = 1, 200 do
      local tokens = {}
      for i = 1, math.random(1, 30) do tokens[i] = TOKENS[math.random(#TOKENS)] end
      local tight, loose = {}, {}
      for i, tok in ipairs(tokens) do
        local prev = tokens[i - 1]
        -- the tight form needs a space only where two words would merge, or
        -- "-" and "-" would open a comment, or "[" and "[" a long string
        local need = prev and ((prev:match("[%w_\"'%]]$") and tok:match("^[%w_\"'%[]"))
          or (prev:sub(-1) == "-" and tok:sub(1, 1) == "-") or (prev:sub(-1) == "[" and tok:match("^[%[=]"))
          or (prev:sub(-1) == "." and tok:match("^[%.%d]")) or (prev:match("[%d]$") and tok:match("^%.")))
        tight[#tight + 1] = (need and " " or "") .. tok
        loose[#loose + 1] = (i > 1 and GAPS[math.random(#GAPS)] or "") .. tok
      end
      local a, b = table.concat(tight), table.concat(loose)
      assert.equal(c(a), c(b), ("SOURCE_SEED=%d:\n%s\n---\n%s"):format(seed, a, b))
    end
  end)
end)
