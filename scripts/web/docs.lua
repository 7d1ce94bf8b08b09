-- web/docs.lua: GET /openapi.json and GET /docs (Swagger UI) for a router.
--
-- Swagger UI comes from the npm package swagger-ui-dist, pinned in
-- package.json and installed by `make` into node_modules/, and is served
-- from here, so /docs works with no internet access. Each worker reads an
-- asset file the first time it is asked for and keeps it.

local json = require "web.json"
local openapi = require "web.openapi"
local settings = require "todohost.settings"
local paths = require "todohost.paths"

local docs = {}

local HTML_HEADERS = { ["content-type"] = "text/html; charset=utf-8" }
local JSON_HEADERS = { ["content-type"] = "application/json; charset=utf-8" }

local ASSETS = {
  ["swagger-ui.css"] = "text/css; charset=utf-8",
  ["swagger-ui-bundle.js"] = "application/javascript; charset=utf-8",
  ["favicon-32x32.png"] = "image/png",
  ["oauth2-redirect.html"] = "text/html; charset=utf-8",
}

-- The directory holding swagger-ui-dist's files, or nil.
local function find_dist()
  local candidates = {
    (settings.get("SWAGGER_UI_DIST")),
    paths.in_install("node_modules/swagger-ui-dist"),
    paths.in_project("node_modules/swagger-ui-dist"),
  }
  for i = 1, 3 do
    local dir = candidates[i]
    if dir then
      local f = io.open(dir .. "/swagger-ui-bundle.js", "rb")
      if f then f:close(); return dir end
    end
  end
end

-- One line saying what is missing and how to fix it, or nil when /docs can work.
function docs.problem()
  if find_dist() then return nil end
  return "Swagger UI (npm package swagger-ui-dist) is not installed: run `make` (it runs npm ci)"
end

local function page(title)
  return ([[
<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<link type="text/css" rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="shortcut icon" href="/docs/favicon-32x32.png">
<title>%s - Swagger UI</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
const ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect.html',
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
})
</script>
</body>
</html>
]]):format((title:gsub("[<>&\"]", "")))
end

local MISSING = '{"detail":"Swagger UI is not installed on the server: run `make`"}'

-- The routes serving the documentation of router r (hidden from the
-- document itself, as in FastAPI).
function docs.routes(r)
  local document, html
  local cache, dist = {}, nil

  local function openapi_json()
    document = document or json.encode(openapi.document(r))
    return 200, JSON_HEADERS, document
  end

  local function swagger_page()
    html = html or page(r.info.title or "API")
    return 200, HTML_HEADERS, html
  end

  local function asset(req)
    local name = req.params.file
    local content_type = ASSETS[name]
    if not content_type then return 404, JSON_HEADERS, '{"detail":"Not Found"}' end
    local entry = cache[name]
    if not entry then
      dist = dist or find_dist()
      local f = dist and io.open(dist .. "/" .. name, "rb")
      if not f then
        io.stderr:write("todohost: /docs/", name, ": ", docs.problem() or "file missing", "\n")
        return 503, JSON_HEADERS, MISSING
      end
      local body = f:read("a")
      f:close()
      entry = { { ["content-type"] = content_type, ["cache-control"] = "public, max-age=86400" }, body }
      cache[name] = entry
    end
    return 200, entry[1], entry[2]
  end

  return {
    { method = "GET", path = "/openapi.json", hidden = true, handler = openapi_json },
    { method = "GET", path = "/docs", hidden = true, handler = swagger_page },
    { method = "GET", path = "/docs/{file}", hidden = true, handler = asset },
  }
end

return docs
