-- tests/browser/prepare_db.lua: `todohost run tests/browser/prepare_db.lua URL DIR`
-- brings the database at URL to the migrations' head, the way the API specs
-- do (tests/spec/api_helper.lua). Prints the migrations directory serve.lua
-- must use: empty for the real migrations/, else a stand-in made in DIR.
package.path = "tests/spec/?.lua;" .. package.path
local api_helper = require "api_helper"
local url, dir = arg[1], arg[2]
assert(url and dir, "usage: todohost run tests/browser/prepare_db.lua URL DIR")
api_helper.migrate(url)
print(api_helper.fake_migrations_dir(dir) or "")
