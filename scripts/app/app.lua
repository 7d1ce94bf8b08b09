-- app.lua: the module each HTTP worker requires once: opens the worker's own
-- database connection (DATABASE_URL) and returns the request handler,
-- function(req) -> status, headers, body.

local db = require "todohost.db"
local api = require "api"

return api.handler(db.connect())
