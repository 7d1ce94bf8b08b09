-- tests/busted.lua: runs busted inside todohost, so specs can require the
-- host's C modules (todohost.db, ...) exactly as scripts do.
--
--   build/todohost run tests/busted.lua [busted options] [spec files or dirs]
--
-- Same arguments as the `busted` command (Debian's lua-busted 2.1): for
-- example `-o TAP tests/spec/db_spec.lua` (tests/run.sh's choice; TAP is
-- tests/busted_tap.lua). Exits non-zero when a test fails or errors.

-- Debian installs busted and its Lua dependencies (penlight, luassert, say,
-- lua-term, lua-system, lfs) for the lua5.4 interpreter; todohost's states
-- search scripts/ first, so add the interpreter's standard places after it.
local lua_paths = {
  "/usr/local/share/lua/5.4/?.lua", "/usr/local/share/lua/5.4/?/init.lua",
  "/usr/share/lua/5.4/?.lua", "/usr/share/lua/5.4/?/init.lua",
}
local c_paths = {
  "/usr/local/lib/lua/5.4/?.so",
  "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so", "/usr/lib/aarch64-linux-gnu/lua/5.4/?.so",
  "/usr/lib/lua/5.4/?.so",
}

local function append_missing(search_path, templates)
  for _, template in ipairs(templates) do
    if not (";" .. search_path .. ";"):find(";" .. template .. ";", 1, true) then
      search_path = search_path .. ";" .. template
    end
  end
  return (search_path:gsub("^;+", ""))
end

package.path = append_missing(package.path, lua_paths)
-- specs share tests/spec/spec_helper.lua: require "spec_helper"
package.path = "./tests/spec/?.lua;" .. package.path
package.cpath = append_missing(package.cpath, c_paths)

local found, runner = pcall(require, "busted.runner")
if not found then
  io.stderr:write("tests/busted.lua: busted is not installed; install it: apt-get install lua-busted\n")
  os.exit(1)
end

-- `-o TAP` is our TAP handler (see tests/busted_tap.lua for why).
local here = (arg and arg[0] or "tests/busted.lua"):match("^(.*)/[^/]*$") or "."
package.loaded["busted.outputHandlers.TAP"] = dofile(here .. "/busted_tap.lua")

runner({ standalone = false })
