-- tests/fuzz/fuzz_lua.lua: what the Lua-side fuzz checks share (loaded by
-- fuzz_body.lua and fuzz_params.lua with dofile): measuring the work a call
-- does, and a canonical text of a value to compare two results.
--
--   local support = dofile(home .. "/tests/fuzz/fuzz_lua.lua")(counters)
--   support.work(f, ...)   -> instructions, bytes allocated, ok, results...
--   support.canon(v)       -> text, equal for equal values (keys sorted)
--   support.linear(what, n, instructions, bytes, per_byte, fixed)
--                          -> nil, or the text of a failed bound
-- counters() is fuzz_lua.h's: instructions run and bytes allocated so far.

return function(counters)
  local support = {}
  local pack, unpack = table.pack, table.unpack

  -- Calls f(...) twice (protected), measuring the Lua instructions it
  -- runs and the bytes it allocates: deterministic, unlike a clock. The
  -- smaller of the two counts: a call may pay for growing the state's
  -- string table (amortized over every call), the second then will not.
  -- Returns the results of the first call.
  function support.work(f, ...)
    local i0, a0 = counters()
    local r = pack(pcall(f, ...))
    local i1, a1 = counters()
    pcall(f, ...)
    local i2, a2 = counters()
    return math.min(i1 - i0, i2 - i1), math.min(a1 - a0, a2 - a1), unpack(r, 1, r.n)
  end

  -- Work linear in n: at most per_byte * n + fixed instructions, and as
  -- many bytes allocated (generous bounds: a linear pass stays far below
  -- them, a quadratic one on a few kilobytes far above).
  function support.linear(what, n, instructions, bytes, per_byte, fixed)
    local limit = per_byte * n + fixed
    if instructions > limit or bytes > limit then
      return ("%s: work not linear in the input's %d bytes: %d instructions, %d bytes allocated (bound %d)")
        :format(what, n, instructions, bytes, limit)
    end
  end

  local function canon(v, out)
    local tv = type(v)
    if tv ~= "table" then
      out[#out + 1] = tv == "string" and ("%q"):format(v) or (math.type(v) or tv) .. ":" .. tostring(v)
      return
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      canon(k, out); out[#out + 1] = "="; canon(v[k], out); out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  end
  function support.canon(v)
    local out = {}
    canon(v, out)
    return table.concat(out)
  end

  return support
end
