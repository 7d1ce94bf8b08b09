-- tests/spec/doctor_probe_spec.lua (doctor/probe.lua): the facts `make doctor`
-- looks at, each gathered from the real thing: shell commands and their
-- status, files, passwords masked in URLs and command lines, a URL's parts,
-- where a setting came from (a separate todohost with its own environment
-- and .env), who listens on a port (a real server process), what git says
-- of a file (a scratch repository), and the native PostgreSQL's state for a
-- data folder. Needs no database.
local h = require "spec_helper"
local probe = require "doctor.probe"

local root = io.popen("pwd"):read("l")

-- Runs code (which may use `probe`) in a separate todohost in dir, under env.
local function probe_in(dir, code, env)
  local status, out, err = h.run_lua('local probe = require "doctor.probe"\n' .. code,
    "-u DATABASE_URL -u PORT -u DB_PORT -u DB_DATA_DIR " .. (env or ""), dir)
  assert(status == 0, out .. err)
  return out
end

-- Starts tests/fixtures/serve_hello.lua with args; returns its pid and port.
local function start_server(args)
  local dir = h.tmpdir()
  local log, pidfile = dir .. "/serve.log", dir .. "/serve.pid"
  os.execute("cd " .. h.quote(root) .. "; LUA_PATH=" .. h.quote(root .. "/tests/fixtures/?.lua;;")
    .. " PORT=0 " .. h.quote(h.todohost()) .. " run tests/fixtures/serve_hello.lua " .. args .. " >"
    .. h.quote(log) .. " 2>&1 & echo $! >" .. h.quote(pidfile))
  local pid = tonumber(io.open(pidfile):read("l"))
  for _ = 1, 100 do
    local port = (h.read(log) or ""):match("serving on http://[^ ]*:(%d+)")
    if port then return pid, tonumber(port) end
    os.execute("sleep 0.1")
  end
  os.execute("kill " .. pid)
  error("the fixture server did not start: " .. (h.read(log) or ""))
end

describe("doctor.probe", function()
  it("runs a shell command: its output and exit status; 127 for a missing command", function()
    assert.same({ "it's $HOME\n", 0 }, { probe.run("printf '%s\\n' " .. probe.shell_quote("it's $HOME")) })
    assert.same({ "", 3 }, { probe.run("exit 3") })
    assert.equal(127, select(2, probe.run("no-such-command-here 2>/dev/null")))
  end)

  it("tells whether a file exists and reads it", function()
    local dir = h.tmpdir()
    h.write(dir .. "/f", "text\0bytes")
    assert.is_true(probe.file_exists(dir .. "/f"))
    assert.is_false(probe.file_exists(dir .. "/none"))
    assert.equal("text\0bytes", probe.read_file(dir .. "/f"))
    assert.is_nil(probe.read_file(dir .. "/none"))
  end)

  it("masks passwords in URLs and command lines", function()
    assert.equal("postgresql://u:***@h:5432/d", probe.mask("postgresql://u:pw@h:5432/d"))
    assert.equal("psql postgres://a:***@x/y -c 1", probe.mask("psql postgres://a:p:w@x/y -c 1"))
    assert.equal("postgresql://h/d?user=u&password=***", probe.mask("postgresql://h/d?user=u&password=pw"))
    assert.equal("sqlite:///./database.db", probe.mask("sqlite:///./database.db"))
  end)

  it("reads the parts of a DATABASE_URL", function()
    local t = probe.parse_url("postgresql+psycopg2://todo_user:todo_pass@localhost:5433/todo_db")
    assert.same({ kind = "postgresql", host = "localhost", port = 5433, user = "todo_user", dbname = "todo_db" }, t)
    assert.same({ kind = "postgresql", host = "localhost", port = 5432 }, probe.parse_url("postgresql://"))
    assert.same({ kind = "sqlite", path = "./database.db" }, probe.parse_url("sqlite:///./database.db"))
    assert.same({ kind = "sqlite", path = "/abs/x.db" }, probe.parse_url("sqlite:////abs/x.db"))
    assert.same({ kind = "sqlite" }, probe.parse_url("sqlite:///:memory:"))
    assert.equal(5432, probe.parse_url("postgres://h/d").port)
    assert.same({ kind = "unknown", scheme = "postgressql" }, probe.parse_url("postgressql://u@h/d"))
    assert.equal("unknown", probe.parse_url("localhost:5432/todo_db").kind)
    local bad = probe.parse_url("postgresql://todo_user:secret/todo_db")
    assert.equal("invalid", bad.kind)
    assert.is_nil(bad.error:find("secret", 1, true))
  end)

  it("tells local hosts from remote ones", function()
    for _, host in ipairs({ "localhost", "127.0.0.1", "::1", "/var/run/postgresql" }) do
      assert.is_true(probe.is_local_host(host), host)
    end
    assert.is_false(probe.is_local_host("db.example.com"))
    assert.is_false(probe.is_local_host("10.0.0.1"))
  end)

  it("says where each setting came from", function()
    local dir = h.tmpdir()
    h.write(dir .. "/.env", "DB_PORT=5544\n")
    local out = probe_in(dir, [[
      print(probe.setting_source("PORT"))
      print(probe.setting_source("DB_PORT"))
      print(probe.setting_source("HOST"))
      print(select(2, pcall(probe.setting_source, "NOPE")))]], "PORT=9999")
    assert.equal("the environment\n.env\nthe default\n", out:match("^(.-\n.-\n.-\n)"))
    assert.matches("no setting NOPE\n$", out)
  end)

  it("finds who listens on a port, with its command line masked", function()
    local port = h.free_port()
    assert.same({}, probe.listening_inodes(port))
    assert.is_nil(probe.listener(port))
    local pid
    pid, port = start_server("postgresql://u:pw@h/d password=secret")
    local inodes = probe.listening_inodes(port)
    local found = probe.listener(port)
    local cmdline = probe.command_line(pid)
    os.execute("kill " .. pid)
    assert.is_true(#inodes >= 1)
    assert.equal(pid, found.pid)
    assert.equal(cmdline, found.command)
    assert.matches("run tests/fixtures/serve_hello.lua postgresql://u:***@h/d password=***$", cmdline)
    assert.is_nil(cmdline:find("secret", 1, true))
    assert.is_nil(probe.command_line(999999999))
  end)

  it("says whether git ignores or tracks a file, and nothing outside a checkout", function()
    local dir = h.tmpdir()
    assert.equal("nil\n", probe_in(dir, 'print(probe.git_status_of(".env"))'))
    assert(os.execute("cd " .. h.quote(dir) .. " && git init -q . && printf '.env\\n' >.gitignore && touch .env kept notes"
      .. " && git add -f kept"))
    assert.equal("ignored\ntracked\nnot ignored\n", probe_in(dir,
      'print(probe.git_status_of(".env")); print(probe.git_status_of("kept")); print(probe.git_status_of("notes"))'))
  end)

  it("reports whether a Docker engine answers as `docker info` does", function()
    local _, info = probe.run("timeout 10 docker info >/dev/null 2>&1")
    assert.equal(info == 0, probe.docker_answers())
    if not probe.docker_answers() then assert.is_nil(probe.docker_container_status("personal_todo_postgres")) end
  end)

  it("finds the native PostgreSQL and the state of a data folder it does not run", function()
    local bindir = probe.native_bindir()
    assert.is_string(bindir)
    assert.is_true(probe.file_exists(bindir .. "/pg_ctl"))
    local dir = h.tmpdir()
    local out = probe_in(dir, [[
      local s = probe.native_state()
      print(s.installed, s.data_dir, s.has_data, s.running, s.port)]], "DB_DATA_DIR=pgdata DB_PORT=5999")
    assert.equal("true\tpgdata\tfalse\tfalse\t5999\n", out)
  end)
end)
