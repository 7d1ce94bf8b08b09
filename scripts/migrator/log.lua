-- migrator/log.lua: the migrator's console output, in Alembic's log format.
--
-- Alembic's default logging config prints "%(levelname)-5.5s [%(name)s] %(message)s"
-- on stderr, so `INFO  [migrate] Running upgrade A -> B, message` lines go to
-- stderr and command results (current, history, heads, --sql) to stdout, as
-- with Alembic: `todohost run migrate.lua current 2>/dev/null` prints just the
-- revision.

local log = { quiet = false }

local function line(level, fmt, ...)
  local text = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  io.stderr:write(string.format("%-5.5s [migrate] %s\n", level, text))
end

-- Progress; silenced by -q.
function log.info(fmt, ...)
  if not log.quiet then line("INFO", fmt, ...) end
end

-- Something the user should look at; never silenced.
function log.warn(fmt, ...)
  line("WARN", fmt, ...)
end

-- A command result, on stdout.
function log.out(fmt, ...)
  local text = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  io.stdout:write(text, "\n")
end

return log
