-- metrics.lua: the server's metrics: each request counted by route, method
-- and status with its latency (todohost.metrics keeps the counts per
-- worker in C), and GET /metrics, which sums every worker's counts in
-- Prometheus' text format (version 0.0.4).
--
--   metrics.measured(handle) -> function(req) -> status, headers, body:
--       handle, with each request counted (req.route: the router's route)
--   metrics.render() -> the text of /metrics
--   metrics.routes                   -> the /metrics route (web/router.lua)
--
-- The pool gauges are each worker's db.pool_stats(), taken at most every
-- half second as a request starts, and by the worker answering /metrics.

local counters = require "todohost.metrics"
local db = require "todohost.db"
local util = require "todohost.util"

local concat, format, gsub, ipairs, sort = table.concat, string.format, string.gsub, ipairs, table.sort

local metrics = {}

local KNOWN_METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, HEAD = true,
  OPTIONS = true }
local POOL_EVERY = 0.5   -- seconds between two samples of a worker's pool

local function sample_pool()
  local p = db.pool_stats()
  if p then counters.pool(p.open, p.lent, p.waiting) end
end

function metrics.measured(handle)
  local clock, series, observe = util.clock, counters.series, counters.observe
  local ids = {}          -- route (or method, when no route matched) -> status -> series id
  local sampled = -POOL_EVERY
  return function(req)
    local t0 = clock()
    if t0 - sampled >= POOL_EVERY then
      sampled = t0
      sample_pool()
    end
    local status, headers, body = handle(req)
    local route = req.route
    local key = route or (KNOWN_METHODS[req.method] and req.method or "other")
    local by_status = ids[key]
    if not by_status then
      by_status = {}
      ids[key] = by_status
    end
    local id = by_status[status]
    if not id then
      id = series(route and route.name or "none", route and route.method or key, status)
      by_status[status] = id
    end
    observe(id, clock() - t0)
    return status, headers, body
  end
end

-- A label value with \, " and newlines escaped.
local function label(v)
  return (gsub(tostring(v), '[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function number(n)
  if n == math.floor(n) and math.abs(n) < 2^53 then return format("%d", n) end
  return format("%.9g", n)
end

function metrics.render()
  sample_pool()
  local c = counters.collect()
  local rows = c.series
  sort(rows, function(a, b)
    if a.route ~= b.route then return a.route < b.route end
    if a.method ~= b.method then return a.method < b.method end
    return a.status < b.status
  end)
  local out = {}
  local function line(...) out[#out + 1] = format(...) end

  line("# HELP todohost_http_requests_total Requests answered, by route, method and status.")
  line("# TYPE todohost_http_requests_total counter")
  local errors = { handler = 0, database = 0 }
  local hist, order = {}, {}   -- route\nmethod -> {route, method, count, sum, buckets}
  for _, r in ipairs(rows) do
    line('todohost_http_requests_total{route="%s",method="%s",status="%d"} %d', label(r.route), label(r.method),
      r.status, r.count)
    if r.status == 500 then errors.handler = errors.handler + r.count end
    if r.status == 503 then errors.database = errors.database + r.count end
    local k = r.route .. "\n" .. r.method
    local h = hist[k]
    if not h then
      h = { route = r.route, method = r.method, count = 0, sum = 0, buckets = {} }
      for i = 1, #r.buckets do h.buckets[i] = 0 end
      hist[k] = h
      order[#order + 1] = h
    end
    h.count, h.sum = h.count + r.count, h.sum + r.sum
    for i, n in ipairs(r.buckets) do h.buckets[i] = h.buckets[i] + n end
  end

  line("# HELP todohost_http_request_duration_seconds Time from a request's handler call to its answer.")
  line("# TYPE todohost_http_request_duration_seconds histogram")
  for _, h in ipairs(order) do
    local labels = format('route="%s",method="%s"', label(h.route), label(h.method))
    local total = 0
    for i, le in ipairs(c.bounds) do
      total = total + h.buckets[i]
      line('todohost_http_request_duration_seconds_bucket{%s,le="%s"} %d', labels, number(le), total)
    end
    line('todohost_http_request_duration_seconds_bucket{%s,le="+Inf"} %d', labels, h.count)
    line("todohost_http_request_duration_seconds_sum{%s} %s", labels, number(h.sum))
    line("todohost_http_request_duration_seconds_count{%s} %d", labels, h.count)
  end

  line("# HELP todohost_http_errors_total Requests that failed: handler (500, the cause in the log), "
    .. "database (503, unreachable or its pool exhausted).")
  line("# TYPE todohost_http_errors_total counter")
  line('todohost_http_errors_total{kind="handler"} %d', errors.handler)
  line('todohost_http_errors_total{kind="database"} %d', errors.database)

  line("# HELP todohost_db_pool_connections PostgreSQL connections of the pools, summed over the workers "
    .. "(sampled by each worker at most every 0.5 s).")
  line("# TYPE todohost_db_pool_connections gauge")
  line('todohost_db_pool_connections{state="open"} %d', c.pool.open)
  line('todohost_db_pool_connections{state="in_use"} %d', c.pool.lent)
  line("# HELP todohost_db_pool_waiting Requests waiting for a free PostgreSQL connection.")
  line("# TYPE todohost_db_pool_waiting gauge")
  line("todohost_db_pool_waiting %d", c.pool.waiting)
  out[#out + 1] = ""
  return concat(out, "\n")
end

local TEXT_HEADERS = { ["content-type"] = "text/plain; version=0.0.4; charset=utf-8" }

metrics.routes = {
  { method = "GET", path = "/metrics", name = "metrics", hidden = true,
    handler = function() return 200, TEXT_HEADERS, metrics.render() end },
}

return metrics
