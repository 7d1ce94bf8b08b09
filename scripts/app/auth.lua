-- auth.lua: the API token. When HOST is not a loopback address the API
-- requires API_TOKEN, sent as `Authorization: Bearer TOKEN`; the paths of
-- API_TOKEN_EXEMPT (/health by default) answer without it. A token set
-- for a loopback HOST is required too. The token is compared in constant
-- time and never written anywhere.
--
--   auth.is_loopback(host)   -> true for localhost, 127.0.0.0/8 and ::1
--   auth.problem()           -> nil, or why the server must not start
--                               (exposed without a token, unless ALLOW_NO_TOKEN)
--   auth.guard()             -> nil when no token is required, else
--                               function(req) -> true when req may pass

local settings = require "todohost.settings"

local byte, gmatch, match = string.byte, string.gmatch, string.match

local auth = {}

function auth.is_loopback(host)
  host = host:lower():gsub("^%[(.*)%]$", "%1")
  return host == "localhost" or host == "::1" or match(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

function auth.problem()
  if settings.get("API_TOKEN") or auth.is_loopback(settings.get("HOST")) or settings.get("ALLOW_NO_TOKEN") then
    return nil
  end
  return ("HOST=%s is not a loopback address and API_TOKEN is not set: set API_TOKEN "
    .. "(clients send Authorization: Bearer TOKEN), or ALLOW_NO_TOKEN=true to serve the API to "
    .. "anyone who reaches it"):format(settings.get("HOST"))
end

-- true when a equals b; the time taken depends on #b only, not on where
-- the two differ.
local function same(a, b)
  local diff = #a ~ #b
  for i = 1, #b do diff = diff | ((byte(a, i) or 0) ~ byte(b, i)) end
  return diff == 0
end
auth.same = same

function auth.guard()
  local token = settings.get("API_TOKEN")
  if not token then return nil end
  local exempt = {}
  for path in gmatch(settings.get("API_TOKEN_EXEMPT") or "", "[^,%s]+") do exempt[path] = true end
  return function(req)
    if exempt[req.path] then return true end
    local given = req.headers and req.headers["authorization"]
    -- the scheme in any case (RFC 7235), then the token itself
    return type(given) == "string" and given:sub(1, 7):lower() == "bearer " and same(given:sub(8), token)
  end
end

return auth
