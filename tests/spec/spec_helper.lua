-- tests/spec/spec_helper.lua: what specs share: the database under test,
-- scratch directories, free ports, and running todohost as a process.
local M = {}

--- The database URL of this pass (SQLite file or PostgreSQL server).
function M.database_url()
  return os.getenv("TEST_DATABASE_URL") or "sqlite:///" .. M.tmpdir() .. "/spec.db"
end

--- The PostgreSQL URL of the test server, or nil when there is none.
function M.pg_url()
  local url = os.getenv("TEST_PG_URL")
  if url and url ~= "" then return url end
end

--- The password inside the test server's URL (to check it never leaks).
function M.pg_password()
  local url = M.pg_url() or ""
  return url:match("^[^:]+://[^:]+:([^@]+)@") or "todo_pass"
end

local counter = 0
--- A fresh scratch directory under TEST_TMPDIR.
function M.tmpdir()
  counter = counter + 1
  local base = os.getenv("TEST_TMPDIR") or "/tmp"
  local dir = ("%s/spec-%d-%d-%d"):format(base, os.time(), math.random(1, 1e9), counter)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  return dir
end

--- A TCP port nothing listens on (best effort: probe with bash's /dev/tcp),
--- below the kernel's range for outgoing connections (32768 up), where an
--- outgoing connection could take it between the probe and the bind.
function M.free_port()
  for _ = 1, 50 do
    local port = math.random(10000, 32000)
    local probe = ("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null"):format(port)
    if not os.execute(probe) then return port end
  end
  error("no free port found")
end

--- Shell-quotes s.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The todohost binary under test (absolute path).
function M.todohost()
  local bin = os.getenv("TODOHOST")
  if bin and bin ~= "" then return bin end
  local pwd = io.popen("pwd"):read("l")
  return pwd .. "/build/todohost"
end

--- The contents of the file at path, or nil when it cannot be read.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- Runs a shell command; returns exit code, stdout, stderr.
function M.run(cmd, dir)
  local out, err = os.tmpname(), os.tmpname()
  local full = (dir and ("cd " .. M.quote(dir) .. " && ") or "") ..
      "(" .. cmd .. ") >" .. out .. " 2>" .. err
  local ok, _, code = os.execute(full)
  local stdout, stderr = M.read(out) or "", M.read(err) or ""
  os.remove(out)
  os.remove(err)
  return ok and 0 or code, stdout, stderr
end

--- Runs Lua code as `todohost run -` (the code on stdin), in dir (default:
--- here), under `env ENV` (a string of options and VAR=VALUE, quoted);
--- returns exit code, stdout, stderr.
function M.run_lua(code, env, dir)
  local script = M.tmpdir() .. "/script.lua"
  M.write(script, code)
  return M.run(("env %s %s run - <%s"):format(env or "", M.quote(M.todohost()), M.quote(script)), dir)
end

--- Writes text to path.
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Starts `todohost run serve.lua` with env (name -> value; PORT=0 unless
--- given), its output in log; returns its pid and base URL once it serves,
--- or raises with the log when it does not start.
function M.serve(env, log)
  local parts = { "env", "PORT=0" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. M.quote(v) end
  local cmd = ("%s %s run serve.lua >%s 2>&1 </dev/null & echo $!"):format(table.concat(parts, " "),
    M.quote(M.todohost()), M.quote(log))
  local pid = io.popen(cmd):read("l")
  for _ = 1, 300 do
    local port = (M.read(log) or ""):match("serving on http://[^ ]*:(%d+) ")
    if port then return pid, "http://127.0.0.1:" .. port end
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
    os.execute("sleep 0.1")
  end
  error("serve.lua did not start:\n" .. (M.read(log) or ""))
end

--- Stops a server started by M.serve (SIGTERM, then SIGKILL after 10 s);
--- returns true when it had exited by itself.
function M.stop(pid)
  os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then return true end
    os.execute("sleep 0.1")
  end
  os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  return false
end

--- A database of its own for one test on this pass's kind: a new SQLite
--- file, or a new PostgreSQL database made through TEST_PG_URL. Returns its
--- URL and a function that drops it.
function M.fresh_database(prefix)
  local url = os.getenv("TEST_DATABASE_URL") or "sqlite"
  if url:match("^sqlite") then
    return "sqlite:///" .. M.tmpdir() .. "/" .. prefix .. ".db", function() end
  end
  counter = counter + 1
  local db = require "todohost.db"
  local name = ("%s_%d_%d"):format(prefix, os.time() % 100000, counter)
  local admin = db.connect(M.pg_url())
  admin:exec("DROP DATABASE IF EXISTS " .. name)
  admin:exec("CREATE DATABASE " .. name)
  admin:close()
  return M.pg_url():gsub("/[^/?]*(%??[^/]*)$", "/" .. name .. "%1"), function()
    local a = db.connect(M.pg_url())
    a:exec("DROP DATABASE IF EXISTS " .. name .. " WITH (FORCE)")
    a:close()
  end
end

--- A connection to a database of its own (M.fresh_database); returns it, a
--- function that closes it and drops the database, and the URL.
function M.fresh_connection(prefix)
  local url, drop = M.fresh_database(prefix)
  local conn = require("todohost.db").connect(url)
  return conn, function() conn:close(); drop() end, url
end

--- A migrations directory holding revisions ({id, upgrade body, downgrade
--- body}), chained in order.
function M.revisions(list)
  local dir = M.tmpdir()
  local prev = "nil"
  for _, r in ipairs(list) do
    M.write(dir .. "/" .. r[1] .. "_rev.lua", ("return { revision = %q, down_revision = %s, message = %q,\n"
      .. "upgrade = function(op)\n%s\nend,\ndowngrade = function(op)\n%s\nend }\n"):format(r[1], prev, r[1], r[2], r[3] or ""))
    prev = ("%q"):format(r[1])
  end
  return dir
end

return M
