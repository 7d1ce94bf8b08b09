-- health.lua: GET /health, the liveness check: the database kind and the
-- revision it is at (null when none is, or it was never migrated). When the database cannot be reached the query raises a
-- connection error, which the router answers with 503.

local schema = require "web.schema"
local json = require "web.json"
local router = require "web.router"
local version = require "migrator.version"

local Health = schema.model("Health", {
  { "status", "string", required = true },
  { "database", "string", required = true, description = "sqlite or postgresql" },
  { "revision", "string", nullable = true, description = "the applied migration (alembic_version)" },
})

local KEYS = { "status", "database", "revision" }

local function health(_, db)
  local revision = version.revision_if_migrated(db)
  return 200, router.JSON_HEADERS, json.encode(json.object({
    status = "ok", database = db.kind, revision = revision or json.null,
  }, KEYS))
end

return {
  { method = "GET", path = "/health", name = "health", summary = "Health", tags = { "health" },
    description = "200 when the database answers; 503 when it cannot be reached.",
    response = Health, handler = health },
}
