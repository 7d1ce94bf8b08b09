-- web/openapi.lua: the OpenAPI 3 document of a router, generated from the
-- same route and model declarations that validate requests, in the shape
-- FastAPI (pydantic v1) gives it: operation ids, titles, the 422
-- HTTPValidationError response and its ValidationError schema.
--
--   openapi.document(router) -> a table ready for web/json.encode

local json = require "web.json"

local openapi = {}

local format, gsub, upper = string.format, string.gsub, string.upper

local O = json.object
local A = json.array

-- "is_completed" -> "Is Completed", as pydantic titles fields.
local function title_of(name)
  return (gsub(gsub(name, "_", " "), "(%w)(%w*)", function(first, rest)
    return upper(first) .. rest
  end))
end

local function ref(name)
  return O({ ["$ref"] = "#/components/schemas/" .. name }, { "$ref" })
end

local FIELD_KEYS = { "title", "type", "format", "minimum", "maximum", "minLength", "maxLength",
  "nullable", "default", "description" }

-- The JSON schema of one field.
local function field_schema(f)
  return O({
    title = f.title or title_of(f[1]),
    type = f[2],
    format = f.format,
    minimum = f.ge, maximum = f.le,
    minLength = f.min_length, maxLength = f.max_length,
    nullable = f.nullable or nil,
    default = f.default,
    description = f.description,
  }, FIELD_KEYS)
end

local function model_schema(model)
  local properties, required, order = {}, A {}, {}
  for i, f in ipairs(model.fields) do
    properties[f[1]] = field_schema(f)
    order[i] = f[1]
    if f.required then required[#required + 1] = f[1] end
  end
  return O({
    title = model.name,
    required = #required > 0 and required or nil,
    type = "object",
    properties = O(properties, order),
    description = model.description,
  }, { "title", "required", "type", "properties", "description" })
end

local VALIDATION_SCHEMAS = {
  ValidationError = O({
    title = "ValidationError",
    required = A { "loc", "msg", "type" },
    type = "object",
    properties = O({
      loc = O({ title = "Location", type = "array",
        items = O({ anyOf = A { O({ type = "string" }, { "type" }), O({ type = "integer" }, { "type" }) } },
          { "anyOf" }) }, { "title", "type", "items" }),
      msg = O({ title = "Message", type = "string" }, { "title", "type" }),
      type = O({ title = "Error Type", type = "string" }, { "title", "type" }),
    }, { "loc", "msg", "type" }),
  }, { "title", "required", "type", "properties" }),
  HTTPValidationError = O({
    title = "HTTPValidationError",
    type = "object",
    properties = O({
      detail = O({ title = "Detail", type = "array", items = ref("ValidationError") },
        { "title", "type", "items" }),
    }, { "detail" }),
  }, { "title", "type", "properties" }),
}

local function json_content(schema_)
  return O({ ["application/json"] = O({ schema = schema_ }, { "schema" }) }, { "application/json" })
end

local function parameter(f, location)
  return O({
    required = f.required or false,
    schema = field_schema(f),
    name = f[1],
    ["in"] = location,
    description = f.description,
  }, { "description", "required", "schema", "name", "in" })
end

local function operation(route)
  local op = {
    tags = route.tags and A(route.tags) or nil,
    summary = route.summary or title_of(route.name),
    description = route.description,
    operationId = gsub(route.name .. route.path, "%W", "_") .. "_" .. route.method:lower(),
  }
  local params = A {}
  for _, f in ipairs(route.path_params or {}) do params[#params + 1] = parameter(f, "path") end
  for _, f in ipairs(route.query or {}) do params[#params + 1] = parameter(f, "query") end
  if #params > 0 then op.parameters = params end
  if route.body then
    op.requestBody = O({ content = json_content(ref(route.body.name)), required = true },
      { "content", "required" })
  end

  local responses, order = {}, {}
  local function respond(status, description, content)
    local key = format("%d", status)
    responses[key] = O({ description = description, content = content }, { "description", "content" })
    order[#order + 1] = key
  end
  local response = route.response
  local content
  if response and response.name then
    content = json_content(ref(response.name))
  elseif response then
    content = json_content(O({
      title = "Response " .. title_of(op.operationId),
      type = "array", items = ref(response[1].name),
    }, { "title", "type", "items" }))
  elseif route.status ~= 204 then
    content = json_content(O({}, {}))
  end
  respond(route.status, route.status_description or "Successful Response", content)
  for status, model in pairs(route.responses or {}) do
    respond(status, model.description or model.name, json_content(ref(model.name)))
  end
  if route.body or route.query or #route.path_params > 0 then
    respond(422, "Validation Error", json_content(ref("HTTPValidationError")))
  end
  table.sort(order)
  op.responses = O(responses, order)
  return O(op, { "tags", "summary", "description", "operationId", "parameters", "requestBody",
    "responses" })
end

function openapi.document(r)
  local info = r.info
  local paths, path_order = {}, {}
  local needs_validation = false
  for _, route in ipairs(r.routes) do
    if not route.hidden then
      local item = paths[route.path]
      if not item then
        item = { ops = {}, order = {} }
        paths[route.path] = item
        path_order[#path_order + 1] = route.path
      end
      local method = route.method:lower()
      item.ops[method] = operation(route)
      item.order[#item.order + 1] = method
      if route.body or route.query or #route.path_params > 0 then needs_validation = true end
    end
  end
  for p, item in pairs(paths) do paths[p] = O(item.ops, item.order) end

  local schemas, names = {}, {}
  for name, model in pairs(r.models) do
    schemas[name] = model_schema(model)
    names[#names + 1] = name
  end
  if needs_validation then
    for name, s in pairs(VALIDATION_SCHEMAS) do
      schemas[name] = s
      names[#names + 1] = name
    end
  end
  table.sort(names)

  return O({
    openapi = "3.0.2",
    info = O({ title = info.title or "API", description = info.description,
      version = info.version or "0.1.0" }, { "title", "description", "version" }),
    paths = O(paths, path_order),
    components = O({ schemas = O(schemas, names) }, { "schemas" }),
  }, { "openapi", "info", "paths", "components" })
end

return openapi
