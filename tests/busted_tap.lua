-- tests/busted_tap.lua: busted's TAP output handler, made safe for errors
-- that have no source line (a spec file that does not compile crashes
-- busted 2.1.1's own TAP handler). tests/busted.lua installs it as `-o TAP`.
--
-- Output, one line per test, then the plan line `1..N` once every file ran:
--   ok N - describe it
--   ok N - # SKIP reason
--   not ok N - describe it
--   # FILE @ LINE
--   # Failure message: ...   (each further line of it prefixed with "# ")
-- tests/run.sh counts these lines; a missing plan line means busted stopped
-- before the end.

local pretty = require "pl.pretty"

local function write_line(text)
  io.stdout:write(text, "\n")
end

local function commented(text)
  return (tostring(text):gsub("\n", "\n# "))
end

local function location(failure)
  local trace = failure.element and failure.element.trace or failure.trace
  if trace and trace.short_src then
    return trace.short_src .. (trace.currentline and (" @ " .. trace.currentline) or "")
  end
  return nil
end

return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.base"()
  local counter = 0

  local function show_failure(failure)
    local message = failure.message
    if message == nil then
      message = "Nil error"
    elseif type(message) ~= "string" then
      message = pretty.write(message)
    end
    write_line(string.format("not ok %d - %s", counter, failure.name))
    local where = location(failure)
    if where then write_line("# " .. where) end
    if failure.randomseed then write_line("# Random seed: " .. failure.randomseed) end
    write_line("# Failure message: " .. commented(message))
    local trace = failure.trace
    if (options.verbose or failure.isError) and trace and trace.traceback and trace.traceback ~= "" then
      write_line("# " .. commented((trace.traceback:gsub("^\n", "", 1):gsub("\n+$", ""))))
    end
  end

  handler.suiteReset = function()
    counter = 0
    return nil, true
  end

  handler.suiteEnd = function()
    write_line("1.." .. counter)
    io.stdout:flush()
    return nil, true
  end

  handler.testEnd = function(_, _, status)
    counter = counter + 1
    if status == "success" then
      write_line(string.format("ok %d - %s", counter, handler.successes[#handler.successes].name))
    elseif status == "pending" then
      local pending = handler.pendings[#handler.pendings]
      write_line(string.format("ok %d - # SKIP %s", counter, pending.message or pending.name))
    elseif status == "failure" then
      show_failure(handler.failures[#handler.failures])
    elseif status == "error" then
      show_failure(handler.errors[#handler.errors])
    end
    io.stdout:flush()
    return nil, true
  end

  -- errors outside an `it` (a file that does not load, a failing
  -- before_each or describe body) are one failed test each
  handler.error = function(element)
    if element.descriptor ~= "it" then
      counter = counter + 1
      show_failure(handler.errors[#handler.errors])
    end
    io.stdout:flush()
    return nil, true
  end

  busted.subscribe({ "suite", "reset" }, handler.suiteReset)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "error" }, handler.error)
  -- a failure outside an `it` (assert in before_each) arrives as "failure"
  busted.subscribe({ "failure" }, handler.error)

  return handler
end
