-- tests/spec/migrator_normal_spec.lua (migrator/normal.lua): types, server
-- defaults, foreign key actions and CHECK expressions reduced to their
-- meaning, as the two databases and the declarations spell them.
local normal = require "migrator.normal"
local ddl = require "migrator.ddl"

describe("migrator.normal", function()
  it("gives one name to a type however it is spelled", function()
    assert.equal("varchar(200)", normal.sql_type("VARCHAR(200)"))
    assert.equal("varchar(200)", normal.sql_type("character varying(200)"))
    assert.equal("numeric(10,2)", normal.sql_type("NUMERIC(10, 2)"))
    assert.equal("timestamptz", normal.sql_type("timestamp with time zone"))
    assert.equal("timestamp", normal.sql_type("TIMESTAMP WITHOUT TIME ZONE"))
    -- arrays: the element canonical, then [] per dimension (format_type writes "character varying(20)[]")
    assert.equal("varchar(20)[]", normal.sql_type("character varying(20)[]"))
    assert.equal("varchar(20)[]", normal.sql_type("VARCHAR(20)[]"))
    assert.equal("integer[][]", normal.sql_type("int4 [] [3]"))
    assert.equal("timestamptz[]", normal.sql_type("timestamp with time zone[]"))
    assert.equal("float", normal.sql_type("double precision"))
    assert.equal("blob", normal.sql_type("bytea"))
    assert.equal("integer", normal.sql_type("  INTEGER "))
    assert.equal("char(32)", normal.sql_type("character(32)"))
  end)

  it("renders declared types per dialect, enums as PostgreSQL types or SQLite VARCHARs", function()
    local t = ddl.types
    assert.equal("timestamptz", normal.declared_type(t.datetime { timezone = true }, "postgresql"))
    assert.equal("datetime", normal.declared_type(t.datetime { timezone = true }, "sqlite"))
    local status = t.enum("todo_status", { "open", "done", "archived" })
    assert.equal("enum todo_status", normal.declared_type(status, "postgresql"))
    assert.equal("varchar(8)", normal.declared_type(status, "sqlite"))
  end)

  it("compares server defaults by meaning", function()
    -- the clock
    for _, sql in ipairs({ "now()", "CURRENT_TIMESTAMP", "(CURRENT_TIMESTAMP)", "(now())", "current_timestamp" }) do
      assert.equal("now()", normal.default(sql, "timestamptz", "postgresql"), sql)
    end
    -- booleans: false, 0, '0', 'f' on a boolean column; not on an integer one
    for _, sql in ipairs({ "false", "0", "(0)", "'0'", "'f'", "FALSE" }) do
      assert.equal("false", normal.default(sql, "boolean", "sqlite"), sql)
    end
    assert.equal("true", normal.default("1", "boolean", "sqlite"))
    assert.equal("0", normal.default("0", "integer", "sqlite"))
    -- PostgreSQL's casts and parentheses
    assert.equal("'open'", normal.default("'open'::character varying", "varchar(10)", "postgresql"))
    assert.equal("'open'", normal.default("'open'::todo_status", "enum todo_status", "postgresql"))
    assert.equal("-1", normal.default("(-1)", "integer", "postgresql"))
    assert.equal("-1", normal.default("'-1'::integer", "integer", "postgresql"))
    assert.equal("1.5", normal.default("1.50", "numeric(4,2)", "postgresql"))
    -- string literals keep their case
    assert.equal("'Open'", normal.default("'Open'", "text", "sqlite"))
    assert.is_nil(normal.default(nil, "text", "sqlite"))
    -- different meanings stay different
    assert.not_equal(normal.default("true", "boolean", "postgresql"), normal.default("false", "boolean", "postgresql"))
  end)

  it("spells foreign key actions and CHECK expressions one way", function()
    assert.is_nil(normal.action("NO ACTION"))
    assert.is_nil(normal.action(nil))
    assert.equal("SET NULL", normal.action("set  null"))
    assert.equal(normal.check("priority >= 0"), normal.check("CHECK ((priority >= 0))"))
    assert.equal(normal.check("status = 'A'"), normal.check("(status = 'A'::text)"))
    assert.equal(normal.check("score >= 0"), normal.check("(score >= (0)::numeric)"))
    assert.not_equal(normal.check("status = 'A'"), normal.check("status = 'a'"))
  end)
end)
