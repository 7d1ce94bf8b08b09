-- doctor/probe.lua: the facts `make doctor` looks at, gathered without
-- changing anything: who listens on a TCP port, where a setting came from,
-- what a database URL names (with its password masked), whether git ignores
-- a file, and the state of the development PostgreSQL (Docker or native).
-- Nothing here prints; doctor/checks.lua turns the facts into verdicts.

local db = require "todohost.db"
local settings = require "todohost.settings"
local paths = require "todohost.paths"

local probe = {}

-- ---- small helpers -----------------------------------------------------------

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
probe.shell_quote = shell_quote

-- Runs a shell command; returns its whole stdout and its exit status
-- (a number; 127 when the command is missing).
function probe.run(command)
  local p = io.popen(command, "r")
  if not p then return "", 127 end
  local out = p:read("a") or ""
  local _, _, code = p:close()
  return out, code or 1
end

function probe.file_exists(path)
  local f = io.open(path, "rb")
  if not f then return false end
  f:close()
  return true
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end
probe.read_file = read_file

-- ---- database URLs -------------------------------------------------------------

-- text with every password replaced by ***: the userinfo of each URL in it
-- and every password=... (host/dburl.c's masker, so a command line is safe too).
function probe.mask(text)
  return db.mask_text(tostring(text))
end

-- What a DATABASE_URL names: {kind = "sqlite", path = FILE | nil for memory}
-- or {kind = "postgresql", host, port, user, dbname} (libpq's reading, with
-- libpq's defaults for what is missing: localhost, 5432); {kind = "unknown",
-- scheme = ...} for an unsupported scheme and {kind = "invalid", error = TEXT}
-- for a URL it cannot read (host/dburl.c parses it; TEXT is masked).
function probe.parse_url(url)
  local t, err = db.parse_url(url)
  if not t then
    local scheme = url:match("^(%a[%w+.-]*):")
    local base = scheme and scheme:lower():match("^([^+]*)")
    if base ~= "sqlite" and base ~= "postgresql" and base ~= "postgres" then
      return { kind = "unknown", scheme = scheme or "(none)" }
    end
    return { kind = "invalid", error = tostring(err) }
  end
  if t.kind == "sqlite" then return { kind = "sqlite", path = t.path } end
  local params = t.params
  local host = t.host
  if not host or host == "" then host = params.hostaddr or "localhost" end
  return {
    kind = "postgresql", host = host, port = t.port or 5432,
    user = t.user ~= "" and t.user or nil,
    dbname = t.dbname ~= "" and t.dbname or nil,
  }
end

function probe.is_local_host(host)
  return host == "localhost" or host == "127.0.0.1" or host == "::1" or host:sub(1, 1) == "/"
end

-- Where the setting name came from: "the environment", ".env" or "the
-- default" (todohost.settings, which read them at start-up).
local SOURCE_TEXT = { environment = "the environment", [".env"] = ".env", default = "the default" }
function probe.setting_source(name)
  for _, entry in ipairs(settings.all()) do
    if entry.name == name then return SOURCE_TEXT[entry.source] end
  end
  error("no setting " .. name)
end

-- ---- TCP listeners ---------------------------------------------------------------

-- The inodes of the TCP sockets listening on port (any address, IPv4 or
-- IPv6), from /proc/net/tcp{,6}. Returns a list (empty when nobody listens),
-- or nil when /proc cannot tell.
function probe.listening_inodes(port)
  local inodes, readable = {}, false
  for _, file in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local text = read_file(file)
    if text then
      readable = true
      for line in text:gmatch("[^\n]+") do
        -- sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        local hexport, state, inode = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:%x+%s+(%x+)%s+%S+%s+%S+%s+%S+%s+%d+%s+%d+%s+(%d+)")
        if hexport and state == "0A" and tonumber(hexport, 16) == port then
          inodes[#inodes + 1] = inode
        end
      end
    end
  end
  if not readable then return nil end
  return inodes
end

-- The command line of process pid, its arguments joined by spaces, passwords
-- masked (an argument that is a URL as one URL, blanks and all).
function probe.command_line(pid)
  local text = read_file("/proc/" .. pid .. "/cmdline")
  if not text or text == "" then return nil end
  local args = {}
  for a in text:gmatch("[^%z]+") do
    args[#args + 1] = a:match("^%a[%w+.-]*://") and db.mask_url(a) or probe.mask(a)
  end
  return table.concat(args, " ")
end

-- Who listens on port: nil when nobody (or /proc cannot tell), else
-- {pid = N | nil, command = TEXT | nil}.
function probe.listener(port)
  local inodes = probe.listening_inodes(port)
  if not inodes or #inodes == 0 then return nil end
  for _, inode in ipairs(inodes) do
    local out = probe.run("find /proc/[0-9]*/fd -maxdepth 1 -lname " .. shell_quote("socket:\\[" .. inode .. "\\]")
      .. " 2>/dev/null")
    local pid = out:match("^/proc/(%d+)/fd/")
    if pid then return { pid = tonumber(pid), command = probe.command_line(pid) } end
  end
  return {}
end

-- ---- git -----------------------------------------------------------------------

-- "ignored", "tracked" (committed or added: ignoring no longer helps),
-- "not ignored", or nil when this is no git checkout (or git is missing).
function probe.git_status_of(path)
  local _, code = probe.run("git rev-parse --is-inside-work-tree >/dev/null 2>&1")
  if code ~= 0 then return nil end
  local _, tracked = probe.run("git ls-files --error-unmatch -- " .. shell_quote(path) .. " >/dev/null 2>&1")
  if tracked == 0 then return "tracked" end
  local _, ignored = probe.run("git check-ignore -q -- " .. shell_quote(path) .. " 2>/dev/null")
  if ignored == 0 then return "ignored" end
  return "not ignored"
end

-- ---- the development PostgreSQL --------------------------------------------------

-- true when a Docker engine answers (not just a docker command).
function probe.docker_answers()
  local _, code = probe.run("command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1")
  return code == 0
end

-- The status text of the Compose container ("Up 2 hours", "Exited (0) ..."),
-- or nil when there is no such container.
function probe.docker_container_status(name)
  local out = probe.run("timeout 10 docker ps -a --filter " .. shell_quote("name=^" .. name .. "$")
    .. " --format '{{.Status}}' 2>/dev/null")
  out = out:gsub("%s+$", "")
  if out == "" then return nil end
  return out
end

-- The newest native PostgreSQL bin directory, or nil.
function probe.native_bindir()
  local out = probe.run("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1")
  out = out:gsub("%s+$", "")
  if out ~= "" and probe.file_exists(out .. "/pg_ctl") then return out end
  return nil
end

-- The native server of scripts/db.sh: {installed, data_dir, has_data,
-- running, port}. Only asks scripts/db.sh (which never installs anything
-- for `status` once a server is installed) when there is data to look at.
-- A setting's value, or its default when the value cannot be read: the
-- doctor's `settings` check reports a bad value once, with its fix.
local function setting_or_default(name)
  local ok, value = pcall(settings.get, name)
  if ok then return value end
  return settings.default(name)
end

function probe.native_state()
  local data = setting_or_default("DB_DATA_DIR")
  local shown = data
  data = paths.in_project(data)
  local state = {
    installed = probe.native_bindir() ~= nil,
    data_dir = shown,
    has_data = probe.file_exists(data .. "/PG_VERSION"),
    port = setting_or_default("DB_PORT"),
    running = false,
  }
  if state.installed and state.has_data then
    local _, code = probe.run(shell_quote(paths.in_project("scripts/db.sh")) .. " status >/dev/null 2>&1")
    state.running = code == 0
    -- postmaster.pid: pid, data dir, start time, port, ...
    local pidfile = state.running and read_file(data .. "/postmaster.pid")
    local port = pidfile and pidfile:match("^[^\n]*\n[^\n]*\n[^\n]*\n(%d+)")
    if port then state.port = tonumber(port) end
  end
  return state
end

return probe
