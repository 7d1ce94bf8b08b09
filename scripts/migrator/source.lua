-- migrator/source.lua: a Lua source text reduced to what it does, for the
-- checksums of applied revisions: comments removed, layout removed (a space
-- kept only between two word characters), strings kept byte for byte. Two
-- files that differ only in comments, indentation, blank lines or spacing
-- reduce to the same text; any change to code or to a string does not.

local source = {}

-- The level of a long bracket opening at i ("[[" is 0, "[==[" is 2), or nil.
local function long_open(text, i)
  local eqs = text:match("^%[(=*)%[", i)
  return eqs and #eqs or nil
end

-- Index just past the long bracket of level opened at i (end of text when
-- it is not closed: the file would not load anyway).
local function long_end(text, i, level)
  local close = "]" .. ("="):rep(level) .. "]"
  local _, e = text:find(close, i + level + 2, true)
  return (e or #text) + 1
end

-- Index just past the quoted string opening at i.
local function quoted_end(text, i)
  local q = text:sub(i, i)
  local j = i + 1
  while j <= #text do
    local c = text:sub(j, j)
    if c == "\\" then j = j + 2
    elseif c == q or c == "\n" then return j + 1
    else j = j + 1 end
  end
  return j
end

-- The canonical form of Lua source text (see the top of this file).
function source.canonical(text)
  local out, i, n = {}, 1, #text
  local pending_space = false
  local function emit(piece)
    if pending_space and #out > 0 and out[#out]:match("[%w_]$") and piece:match("^[%w_]") then
      out[#out + 1] = " "
    end
    pending_space = false
    out[#out + 1] = piece
  end
  while i <= n do
    local c = text:sub(i, i)
    if c:match("%s") then
      pending_space = true
      i = i + 1
    elseif text:sub(i, i + 1) == "--" then
      local level = long_open(text, i + 2)
      if level then i = long_end(text, i + 2, level)
      else i = (text:find("\n", i, true) or n) + 1 end
      pending_space = true
    elseif c == "'" or c == '"' then
      local j = quoted_end(text, i)
      emit(text:sub(i, j - 1))
      i = j
    elseif c == "[" and long_open(text, i) then
      local j = long_end(text, i, long_open(text, i))
      emit(text:sub(i, j - 1))
      i = j
    else
      local j = text:find("[%s'\"%[%-]", i + 1) or n + 1
      if c == "-" or c == "[" then j = i + 1 end
      emit(text:sub(i, j - 1))
      i = j
    end
  end
  return table.concat(out)
end

return source
