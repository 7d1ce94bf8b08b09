-- bench/db_bench.lua: the todohost side of `make bench-db`.
--
--   todohost run bench/db_bench.lua point URL SQL ROWS SECONDS
--       point SELECTs through conn:first, prints queries per second
--   todohost run bench/db_bench.lua stream URL SQL
--       streams every row of SQL through conn:rows, prints rows and the
--       growth of resident memory in kB
local db = require "todohost.db"

-- Wall-clock seconds (10 ms resolution: enough over several seconds).
local function now()
  local f = assert(io.open("/proc/uptime"))
  local t = f:read("n")
  f:close()
  return t
end

local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end

local function point(url, sql, rows, seconds)
  local conn <close> = db.connect(url)
  rows, seconds = tonumber(rows), tonumber(seconds)
  local random = math.random
  math.randomseed(42)
  local n, found = 0, 0
  local start = now()
  local deadline = start + seconds
  repeat
    for _ = 1, 1000 do
      if conn:first(sql, random(1, rows)) then found = found + 1 end
    end
    n = n + 1000
  until now() >= deadline
  assert(found == n, "some keys were not found")
  print(("%.0f"):format(n / (now() - start)))
end

local function stream(url, sql)
  local conn <close> = db.connect(url)
  collectgarbage()
  local before, peak, count = rss_kb(), 0, 0
  for row in conn:rows(sql) do
    count = count + 1
    if count % 50000 == 0 then
      local now_kb = rss_kb()
      if now_kb > peak then peak = now_kb end
    end
    local _ = row
  end
  local after = rss_kb()
  if after > peak then peak = after end
  print(("%d %d"):format(count, peak - before))
end

local command = arg[1]
if command == "point" then point(arg[2], arg[3], arg[4], arg[5])
elseif command == "stream" then stream(arg[2], arg[3])
else error("usage: db_bench.lua point URL SQL ROWS SECONDS | stream URL SQL") end
