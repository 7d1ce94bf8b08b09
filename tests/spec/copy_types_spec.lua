-- tests/spec/copy_types_spec.lua: every column type op.types creates,
-- copied both ways exactly: a table made by a migration of the test's own
-- (op.types for every type, rendered for each database), awkward values
-- per type in a SQLite file, copied into PostgreSQL and back into a SQLite
-- snapshot, which must hold the very same values; and each value the copy
-- refuses, with its row, in the copy and in the pre-flight (--check).
--
-- The copies run between SQLite and PostgreSQL, so the spec needs the test
-- server (TEST_PG_URL) in both passes; without it the spec says so and skips.
local helper = require "spec_helper"

if not helper.pg_url() then
  describe("copy of every op.types type", function()
    pending("skipped: needs the PostgreSQL test server (TEST_PG_URL); run it through tests/run.sh")
  end)
  return
end

local db = require "todohost.db"
local ch = require "copy_helper"
local q = helper.quote

local TARGET_DB = "copy_types_target"
local TARGET_URL = ch.url_for(TARGET_DB)

-- A migration of the test's own: one table with a column of each type.
local TYPED = [[
return { revision = "2026_02_21_005", down_revision = "2026_02_21_004", message = "typed",
  upgrade = function(op)
    local t = op.types
    op.create_table("typed",
      op.column("id", t.integer, { primary_key = true }),
      op.column("b", t.boolean), op.column("i2", t.small_integer), op.column("i4", t.integer),
      op.column("i8", t.big_integer), op.column("f", t.float), op.column("s", t.text),
      op.column("v", t.string(5)), op.column("j", t.json), op.column("bin", t.large_binary),
      op.column("d", t.date), op.column("ts", t.datetime), op.column("tz", t.datetime{ timezone = true }),
      op.column("u", t.uuid), op.column("n", t.numeric(12, 3)), op.column("nu", t.numeric),
      op.column("tm", t.time), op.column("c", t.char(4)), op.column("jb", t.jsonb),
      op.column("ai", t.array(t.integer)), op.column("at", t.array(t.string(3))), op.column("af", t.array(t.float)),
      op.column("st", t.enum("typed_status", { "open", "done", "it's" })),
      -- typed_tag: used by this array column only (its CREATE TYPE comes with the table)
      op.column("ae", t.array(t.enum("typed_tag", { "open", "it's \"q\"", "naïve 😀", "NULL", "a,b" }))),
      op.column("ab", t.array(t.large_binary)))
  end,
  downgrade = function(op) op.drop_table("typed") end }
]]
local COLUMNS = { "id", "b", "i2", "i4", "i8", "f", "s", "v", "j", "bin", "d", "ts", "tz", "u", "n", "nu", "tm", "c", "jb", "ai", "at", "af", "st", "ae", "ab" }

local migrations
local function env() return "MIGRATIONS_DIR=" .. q(migrations) .. " " end

local function migrate(url)
  local code, out, err = helper.run(env() .. ("DATABASE_URL=%s %s run migrate.lua upgrade head"):format(q(url), q(ch.TODOHOST)))
  assert(code == 0, "migrate.lua failed:\n" .. out .. err)
end

local function run_copy(args)
  local code, out, err = helper.run(env() .. q(ch.TODOHOST) .. " run copy.lua " .. args)
  return code, out .. err
end

-- Awkward values per type, as SQLite stores them (the app's forms). Each
-- row: id, then the columns in COLUMNS order (nil: NULL).
local ROWS = {
  { 1, 1, -32768, -2147483648, math.mininteger, -0.0, "it's \"q\" \\N\t\n😀", "ab✓de", '{"b": [1, 2.50], "a": null}',
    "\0\1\255", "0001-01-01", "1999-12-31 23:59:59.999999", "2026-02-21 10:15:30.000001",
    "0123456789abcdef0123456789abcdef", 123456789.125, "0.1", "00:00:00.000000", "ab  ",
    [[{"b": [1, 2.50, 1e2, -0.0, 1E-2], "a": null, "aa": "x\u00e9\n\/", "a": true}]],
    "[1, null, -2147483648]", [=[[["a\"b", null], ["😀", ""]]]=], "[0.1, -0.0, 1e+300, 5e-324]", "it's",
    [=[["it's \"q\"", null, "naïve 😀"]]=], [=[["\\x0001ff", null, "\\x"]]=] },
  { 2, 0, 32767, 2147483647, math.maxinteger, 1 / 0, "", "", "[]", "", "9999-12-31",
    "2026-02-21 10:15:30.000000", "2000-01-01 00:00:00.000000", "ffffffffffffffffffffffffffffffff",
    -999999999.999, 12345678901234567, "23:59:59.999999", "    ", [[ "\ud83d\ude00 \u0001" ]], "[]", "[[[null]]]", "[]", "open", "[]", "[]" },
  { 3, nil, 0, 0, 0, -1 / 0, "naïve", "x", "1", nil, "2026-02-28", "2026-02-21 10:15:30.500000", nil,
    nil, 0, -1.5, "24:00:00.000000", "✓✓✓✓", "[]", nil, nil, nil, nil,
    [=[[["open", "NULL"], ["a,b", "open"]]]=], [=[[["\\x00"], ["\\xff"]]]=] },
  { 4, 1, nil, nil, nil, 5e-324, nil, nil, nil, "text", nil, nil, nil, nil, 12, "NaN", "12:34:56.000000", nil, "1.25" },
  { 5, 0, 1, 1, 1, 1.7976931348623157e308, "x", nil, nil, nil, nil, nil, nil, nil, 0.001, 1e20, nil, "a   ", '{"k": {"z": [{}, [[]]], "y": 1}, "": 0}',
    nil, nil, nil, nil, "[null]", [=[[null, "\\x6869"]]=] },
}

local function insert(url, rows)
  local c <close> = db.connect(url)
  local marks = {}
  for i = 1, #COLUMNS do marks[i] = "$" .. i end
  local sql = ("INSERT INTO typed (%s) VALUES (%s)"):format(table.concat(COLUMNS, ", "), table.concat(marks, ", "))
  c:transaction(function()
    for _, r in ipairs(rows) do c:exec(sql, table.unpack(r, 1, #COLUMNS)) end
    c:exec("UPDATE typed SET bin = CAST(bin AS BLOB)")   -- (the driver binds strings as text)
  end)
end

-- Every value of typed as SQLite stores it: storage class and exact text
-- (reals as their 17 digits, blobs in hex).
local function stored(path)
  local c <close> = db.connect("sqlite:///" .. path, { readonly = true })
  local exprs = {}
  for _, col in ipairs(COLUMNS) do
    exprs[#exprs + 1] = ("typeof(%s) || ':' || CASE typeof(%s) WHEN 'real' THEN printf('%%!.17g', %s)"
      .. " WHEN 'blob' THEN hex(%s) ELSE CAST(%s AS TEXT) END AS %s"):format(col, col, col, col, col, col)
  end
  return c:query("SELECT " .. table.concat(exprs, ", ") .. " FROM typed ORDER BY id")
end

describe("copy of every op.types type", function()
  local dir, source

  setup(function()
    migrations = helper.tmpdir()
    os.execute(("cp %s/*.lua %s/"):format(q(require("todohost.paths").in_project("migrations")), q(migrations)))
    helper.write(migrations .. "/2026_02_21_005_typed.lua", TYPED)
  end)

  before_each(function()
    local admin <close> = db.connect(ch.url_for("postgres"))
    admin:exec('DROP DATABASE IF EXISTS "' .. TARGET_DB .. '" WITH (FORCE)')
    admin:exec('CREATE DATABASE "' .. TARGET_DB .. '"')
    migrate(TARGET_URL)
    dir = helper.tmpdir()
    source = dir .. "/source.db"
    migrate("sqlite:///" .. source)
  end)

  it("creates each type for both databases as SQLAlchemy does", function()
    local pg <close> = db.connect(TARGET_URL)
    local got = {}
    for _, r in ipairs(pg:query("SELECT attname AS n, format_type(atttypid, atttypmod) AS t FROM pg_attribute"
        .. " WHERE attrelid = 'typed'::regclass AND attnum > 0 ORDER BY attnum")) do got[r.n] = r.t end
    assert.equal("numeric(12,3)", got.n)
    assert.equal("time without time zone", got.tm)
    assert.equal("character(4)", got.c)
    local lite <close> = db.connect("sqlite:///" .. source)
    local sql = lite:first("SELECT sql AS v FROM sqlite_master WHERE name = 'typed'").v
    assert.matches("n NUMERIC%(12, 3%)", sql)
    assert.matches("c CHAR%(4%)", sql)
    assert.equal("typed_tag[]", got.ae)   -- the enum type made for an array column alone
    assert.equal("bytea[]", got.ab)
    assert.matches("ae JSON, ", sql)
    assert.is_nil(sql:find("typed_tag", 1, true))   -- no CHECK on SQLite: one cannot look inside JSON
    assert.matches("ab JSON", sql)
    local ddl = require "migrator.ddl"
    assert.equal("JSONB", ddl.render_type(ddl.types.jsonb, "postgresql"))
    assert.equal("JSON", ddl.render_type(ddl.types.jsonb, "sqlite"))
    assert.equal("INTEGER[]", ddl.render_type(ddl.types.array(ddl.types.integer), "postgresql"))
    assert.equal("VARCHAR(20)[]", ddl.render_type(ddl.types.array(ddl.types.string(20)), "postgresql"))
    assert.equal("JSON", ddl.render_type(ddl.types.array(ddl.types.integer), "sqlite"))
    assert.equal("CHAR(3)", ddl.render_type(ddl.types.char(3), "sqlite"))
  end)

  it("SQLite -> PostgreSQL -> SQLite gives back every awkward value of every type", function()
    insert("sqlite:///" .. source, ROWS)
    local want = stored(source)
    local code, out = run_copy(("--check --from %s --to %s"):format(q("sqlite:///" .. source), q(TARGET_URL)))
    assert.equal(0, code, out)
    code, out = run_copy(("--from %s --to %s"):format(q("sqlite:///" .. source), q(TARGET_URL)))
    assert.equal(0, code, out)
    local pg <close> = db.connect(TARGET_URL)
    assert.equal("123456789.125", pg:first("SELECT n::text AS v FROM typed WHERE id = 1").v)
    assert.equal("12345678901234567", pg:first("SELECT nu::text AS v FROM typed WHERE id = 2").v)
    assert.equal("NaN", pg:first("SELECT nu::text AS v FROM typed WHERE id = 4").v)
    assert.equal("24:00:00", pg:first("SELECT tm::text AS v FROM typed WHERE id = 3").v)

    -- jsonb comes back in PostgreSQL's own form (the copy sent exactly that form)
    for i, r in ipairs(pg:query("SELECT jb::text AS v FROM typed ORDER BY id")) do
      if want[i].jb:match("^text:") then want[i].jb = "text:" .. r.v end
    end
    assert.equal([[{"a": true, "b": [1, 2.50, 100, 0.0, 0.01], "aa": "xé\n/"}]], want[1].jb:sub(6))
    assert.equal([["😀 \u0001"]], want[2].jb:sub(6))
    assert.equal([=[{"": 0, "k": {"y": 1, "z": [{}, [[]]]}}]=], want[5].jb:sub(6))

    assert.equal([[{{"a\"b",NULL},{😀,""}}]], pg:first("SELECT at::text AS v FROM typed WHERE id = 1").v)
    assert.equal("{{{NULL}}}", pg:first("SELECT at::text AS v FROM typed WHERE id = 2").v)
    assert.equal("{0.1,-0,1e+300,5e-324}", pg:first("SELECT af::text AS v FROM typed WHERE id = 1").v)
    assert.equal([[{"it's \"q\"",NULL,"naïve 😀"}]], pg:first("SELECT ae::text AS v FROM typed WHERE id = 1").v)
    assert.equal([[{{open,"NULL"},{"a,b",open}}]], pg:first("SELECT ae::text AS v FROM typed WHERE id = 3").v)
    assert.equal("{}", pg:first("SELECT ae::text AS v FROM typed WHERE id = 2").v)
    assert.equal([[{"\\x0001ff",NULL,"\\x"}]], pg:first("SELECT ab::text AS v FROM typed WHERE id = 1").v)
    assert.equal([[{{"\\x00"},{"\\xff"}}]], pg:first("SELECT ab::text AS v FROM typed WHERE id = 3").v)
    assert.equal("hi", pg:first("SELECT encode(ab[2], 'escape') AS v FROM typed WHERE id = 5").v)
    assert.is_nil(pg:first("SELECT ab AS v FROM typed WHERE id = 4").v)

    local back = dir .. "/back.db"
    code, out = run_copy(("--from %s --to %s"):format(q(TARGET_URL), q("sqlite:///" .. back)))
    assert.equal(0, code, out)
    assert.same(want, stored(back))
  end)

  it("refuses a numeric that does not fit numeric(p, s), naming its row, in the copy and the pre-flight", function()
    insert("sqlite:///" .. source, {
      { 1, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, 1.5 },
      { 7, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, 1.0005 },
      { 8, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, 1234567890 },
      { 9, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, 1700000000 },
      { 10, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, "25:00" },
      { 11, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, "abcde" },
      { 12, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, "1.2.3" },
      { 13, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, [[{"a":}]] },
      { 14, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, [=[["\u0000"]]=] },
      { 15, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, "[1, 2.5]", "[[\"abcd\"]]" },
      { 16, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, "[[1], 2]", nil, "{}" },
    })
    local code, out = run_copy(("--from %s --to %s"):format(q("sqlite:///" .. source), q(TARGET_URL)))
    assert.equal(1, code, out)
    assert.matches("typed%.n, row id 7: value 1%.000499+ %(real%) cannot be stored in numeric%(12,3%): more decimal places than numeric%(12, 3%) keeps", out)

    code, out = run_copy(("--check --from %s --to %s"):format(q("sqlite:///" .. source), q(TARGET_URL)))
    assert.equal(1, code, out)
    assert.matches("typed%.n: 2 values refused: numbers the column's type cannot hold", out)
    assert.matches("typed%.n, row id 7: value 1%.000499+ %(real%)", out)
    assert.matches("typed%.n, row id 8: value 1234567890 %(integer%): does not fit numeric%(12, 3%): at most 9 digits", out)
    assert.matches("typed%.tm: 1 value refused: a number where a date or time belongs", out)
    assert.matches("typed%.tm, row id 9: value 1700000000 %(integer%)", out)
    assert.matches("typed%.tm, row id 10: value '25:00' %(text%): time of day out of range", out)
    assert.matches("typed%.c, row id 11: value 'abcde' %(text%): 5 characters, the column holds 4", out)
    assert.matches("typed%.nu, row id 12: value '1%.2%.3' %(text%): not a decimal number", out)
    assert.matches("typed%.ai, row id 15: value '%[1, 2%.5%]' %(text%): an element: expected an integer", out)
    assert.matches("typed%.at, row id 15: value '%[%[\"abcd\"%]%]' %(text%): an element: 4 characters, the column holds at most 3", out)
    assert.matches("typed%.ai, row id 16: value '%[%[1%], 2%]' %(text%): a JSON array that is not rectangular", out)
    assert.matches("typed%.af, row id 16: value '{}' %(text%): not a JSON array", out)
    assert.matches("typed%.jb, row id 13: value '{\"a\":}' %(text%): not JSON", out)
    assert.matches("typed%.jb, row id 14: value '%[\"\\u0000\"%]' %(text%): \\u0000, which PostgreSQL's jsonb cannot hold", out)
  end)

  it("PostgreSQL -> SQLite: arrays of an enum and of bytea written in PostgreSQL come back as the JSON the copy reads", function()
    local pg <close> = db.connect(TARGET_URL)
    pg:exec([==[INSERT INTO typed (id, ae, ab) VALUES
      (1, ARRAY[['a,b', 'NULL'], [NULL, 'it''s "q"']]::typed_tag[], ARRAY['\x00ff'::bytea, NULL, ''::bytea]),
      (2, '{}', (SELECT ARRAY[decode(string_agg(lpad(to_hex(i), 2, '0'), '' ORDER BY i), 'hex')] FROM generate_series(0, 255) i)),
      (3, NULL, '{}')]==])
    local back = dir .. "/back.db"
    local code, out = run_copy(("--from %s --to %s"):format(q(TARGET_URL), q("sqlite:///" .. back)))
    assert.equal(0, code, out)   -- verified: the snapshot's checksum is the server's
    local got = stored(back)
    assert.equal([=[text:[["a,b", "NULL"], [null, "it's \"q\""]]]=], got[1].ae)
    assert.equal([=[text:["\\x00ff", null, "\\x"]]=], got[1].ab)
    assert.equal("text:[]", got[2].ae)
    local all = {}
    for i = 0, 255 do all[#all + 1] = ("%02x"):format(i) end
    assert.equal('text:["\\\\x' .. table.concat(all) .. '"]', got[2].ab)
    assert.is_nil(got[3].ae)
    assert.equal("text:[]", got[3].ab)
  end)

  it("refuses a label not of the enum and a bytea element not in hex, naming its row, in the copy and the pre-flight", function()
    local function row(id, st, ae, ab)
      local r = { id }
      r[23], r[24], r[25] = st, ae, ab
      return r
    end
    insert("sqlite:///" .. source, {
      row(20, "done", [=[["open", "a,b"]]=], [=[["\\xABcd"]]=]),
      row(21, nil, [=[["open", "closed"]]=]),
      row(22, nil, nil, [=[["\\x0g"]]=]),
      row(23, nil, nil, [=[["0102"]]=]),
      row(24, nil, nil, "[1]"),
      row(26, nil, nil, [=[["\\x012"]]=]),
      row(27, nil, [=[[["Open"]]]=]),
    })
    do   -- a value the enum column's CHECK would refuse (a file written by other means, say)
      local c <close> = db.connect("sqlite:///" .. source)
      c:exec("PRAGMA ignore_check_constraints = 1")
      c:exec("INSERT INTO typed (id, st) VALUES (25, 'closed')")
    end
    local from_to = ("--from %s --to %s"):format(q("sqlite:///" .. source), q(TARGET_URL))
    local code, out = run_copy("--check " .. from_to)
    assert.equal(1, code, out)
    assert.matches("typed.ae: 2 values refused: values the column's type cannot hold", out, 1, true)
    assert.matches([=[typed.ae, row id 21: value '["open", "closed"]' (text): an element: not one of the enum type's labels]=], out, 1, true)
    assert.matches([=[typed.ae, row id 27: value '[["Open"]]' (text): an element: not one of the enum type's labels]=], out, 1, true)
    assert.matches("typed.ab: 4 values refused", out, 1, true)
    assert.matches([=[typed.ab, row id 22: value '["\\x0g"]' (text): an element: expected a bytea's hex text, "\\x0102ff" in JSON]=], out, 1, true)
    assert.matches([=[typed.ab, row id 23: value '["0102"]' (text): an element: expected a bytea's hex text]=], out, 1, true)
    assert.matches([=[typed.ab, row id 24: value '[1]' (text): an element: expected a bytea's hex text]=], out, 1, true)
    assert.matches([=[typed.ab, row id 26: value '["\\x012"]' (text): an element: expected a bytea's hex text]=], out, 1, true)
    assert.matches("typed.st, row id 25: value 'closed' (text): not one of the enum type's labels", out, 1, true)
    assert.is_nil(out:find("row id 20", 1, true))

    code, out = run_copy(from_to)
    assert.equal(1, code, out)
    assert.matches([=[typed.ae, row id 21: value '["open", "closed"]' (text) cannot be stored in typed_tag[]: an element: not one of the enum type's labels]=], out, 1, true)
    local lite <close> = db.connect("sqlite:///" .. source)
    lite:exec("DELETE FROM typed WHERE id IN (21, 27)")
    code, out = run_copy(from_to)
    assert.equal(1, code, out)
    assert.matches([=[typed.ab, row id 22: value '["\\x0g"]' (text) cannot be stored in bytea[]: an element: expected a bytea's hex text]=], out, 1, true)
    lite:exec("DELETE FROM typed WHERE id IN (22, 23, 24, 26)")
    code, out = run_copy(from_to)
    assert.equal(1, code, out)
    assert.matches("typed.st, row id 25: value 'closed' (text) cannot be stored in typed_status: not one of the enum type's labels", out, 1, true)
    lite:exec("DELETE FROM typed WHERE id = 25")
    code, out = run_copy(from_to)
    assert.equal(0, code, out)
    local pg <close> = db.connect(TARGET_URL)
    assert.equal([[{"\\xabcd"}]], pg:first("SELECT ab::text AS v FROM typed WHERE id = 20").v)   -- hex in either case; back in lower case
  end)

  it("refuses, in the snapshot, a numeric SQLite's NUMERIC column cannot hold exactly, naming its row", function()
    local code, out = run_copy(("--from %s --to %s"):format(q("sqlite:///" .. source), q(TARGET_URL)))
    assert.equal(0, code, out)
    local pg <close> = db.connect(TARGET_URL)
    pg:exec("INSERT INTO typed (id, nu) VALUES (1, 1.5), (2, 1.50)")
    code, out = run_copy(("--from %s --to %s"):format(q(TARGET_URL), q("sqlite:///" .. dir .. "/snap.db")))
    assert.equal(1, code, out)
    assert.matches("typed%.nu, row id 2: the numeric value cannot be stored in SQLite: trailing zeros after the point", out)
    pg:exec("UPDATE typed SET nu = 12345678901234567.5 WHERE id = 2")
    code, out = run_copy(("--from %s --to %s"):format(q(TARGET_URL), q("sqlite:///" .. dir .. "/snap.db")))
    assert.equal(1, code, out)
    assert.matches("typed%.nu, row id 2: the numeric value cannot be stored in SQLite: more digits than SQLite's NUMERIC column keeps exactly", out)
  end)
end)
