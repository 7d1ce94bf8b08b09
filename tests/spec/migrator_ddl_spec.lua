-- tests/spec/migrator_ddl_spec.lua (migrator/ddl.lua): identifiers, literals
-- and inlined parameters, types, defaults, columns and constraints, as
-- SQLAlchemy renders them; each rendering also run on the database of this
-- pass (SQLite or PostgreSQL) and read back.
local h = require "spec_helper"
local db = require "todohost.db"
local ddl = require "migrator.ddl"

local url = h.database_url()
local dialect = url:match("^sqlite") and "sqlite" or "postgresql"
local other = dialect == "sqlite" and "postgresql" or "sqlite"

describe("migrator.ddl (" .. dialect .. ")", function()
  local conn
  local made = {}

  before_each(function() conn = db.connect(url) end)
  after_each(function()
    for i = #made, 1, -1 do pcall(conn.exec, conn, "DROP TABLE IF EXISTS " .. ddl.quote(made[i], dialect)) end
    made = {}
    conn:close()
  end)

  -- Creates a table from elements; dropped after the test.
  local function create(name, ...)
    local sql, indexes = ddl.create_table_sql(name, { ... }, dialect)
    made[#made + 1] = name
    conn:exec(sql)
    for _, ix in ipairs(indexes) do conn:exec(ix) end
    return sql, indexes
  end

  it("quotes what is not a plain lower-case name or is reserved, and nothing else", function()
    assert.equal("todos", ddl.quote("todos", dialect))
    assert.equal("a_1$", ddl.quote("a_1$", dialect))
    assert.equal('"Todos"', ddl.quote("Todos", dialect))
    assert.equal('"1st"', ddl.quote("1st", dialect))
    assert.equal('"order"', ddl.quote("order", dialect))
    assert.equal('"we""ird name"', ddl.quote('we"ird name', dialect))
    assert.equal('id, "select", lower(x)', ddl.quote_list({ "id", "select", ddl.text("lower(x)") }, dialect))
    -- a name quoted that way works as a table name
    create('we"ird name', ddl.column("Order", ddl.types.integer))
    conn:exec("INSERT INTO " .. ddl.quote('we"ird name', dialect) .. " (" .. ddl.quote("Order", dialect) .. ") VALUES (1)")
    assert.equal(1, conn:first('SELECT count(*) AS n FROM "we""ird name"').n)
  end)

  it("writes literals that the database reads back as the same values", function()
    for _, v in ipairs({ "it's", "", 42, -7, 2.5, 0.1 }) do
      local got = conn:first("SELECT " .. ddl.literal(v, dialect) .. " AS v").v
      -- (PostgreSQL's NUMERIC arrives as text, exact)
      assert.equal(v, type(v) == "number" and tonumber(got) or got, tostring(v))
    end
    assert.equal("NULL", ddl.literal(nil, dialect))
    assert.equal("now()", ddl.literal(ddl.text("now()"), dialect))
    assert.equal(dialect == "sqlite" and "1" or "true", ddl.literal(true, dialect))
    assert.equal(dialect == "sqlite" and "0" or "false", ddl.literal(false, dialect))
    assert.has_error(function() ddl.literal(0 / 0, dialect) end)
    assert.has_error(function() ddl.literal({}, dialect) end, "cannot write a table as a SQL literal")
  end)

  it("inlines $n parameters outside quotes, for --sql", function()
    local sql = ddl.inline_params("SELECT $1 AS a, '$1' AS b, \"x$2\" AS c, $2 AS d", { n = 2, "o'k", 10 }, dialect)
    assert.equal("SELECT 'o''k' AS a, '$1' AS b, \"x$2\" AS c, 10 AS d", sql)
    assert.equal("SELECT $1", ddl.inline_params("SELECT $1", { n = 0 }, dialect))
    assert.has_error(function() ddl.inline_params("SELECT $3", { n = 1, 1 }, dialect) end, "parameter $3 has no value")
  end)

  it("renders each type for each dialect", function()
    local t = ddl.types
    local want = {
      { t.integer, "INTEGER", "INTEGER" }, { t.big_integer, "BIGINT", "BIGINT" },
      { t.string(20), "VARCHAR(20)", "VARCHAR(20)" }, { t.string, "VARCHAR", "VARCHAR" },
      { t.text, "TEXT", "TEXT" }, { t.boolean, "BOOLEAN", "BOOLEAN" },
      { t.numeric(10, 2), "NUMERIC(10, 2)", "NUMERIC(10, 2)" }, { t.numeric(5), "NUMERIC(5)", "NUMERIC(5)" },
      { t.datetime, "DATETIME", "TIMESTAMP WITHOUT TIME ZONE" },
      { t.datetime { timezone = true }, "DATETIME", "TIMESTAMP WITH TIME ZONE" },
      { t.time, "TIME", "TIME WITHOUT TIME ZONE" }, { t.large_binary, "BLOB", "BYTEA" },
      { t.uuid, "CHAR(32)", "UUID" }, { ddl.to_type("CITEXT"), "CITEXT", "CITEXT" },
    }
    for _, w in ipairs(want) do
      assert.equal(w[2], ddl.render_type(w[1], "sqlite"))
      assert.equal(w[3], ddl.render_type(w[1], "postgresql"))
    end
    assert.has_error(function() ddl.column("x", 5) end)
  end)

  it("gives SQLite's type affinity for a declared type", function()
    assert.same({ "integer", "text", "text", "blob", "real", "numeric", "blob" }, {
      ddl.sqlite_affinity("BIGINT"), ddl.sqlite_affinity("VARCHAR(3)"), ddl.sqlite_affinity("clob"),
      ddl.sqlite_affinity("BLOB"), ddl.sqlite_affinity("DOUBLE"), ddl.sqlite_affinity("DATETIME"), ddl.sqlite_affinity(nil) })
  end)

  it("renders defaults: string literals, text() as written and wrapped on SQLite, no_default as none", function()
    assert.equal(" DEFAULT 'a'", ddl.default_clause(ddl.default_expr("a", dialect), dialect))
    assert.equal(" DEFAULT (1 + 2)", ddl.default_clause(ddl.default_expr(ddl.text("1 + 2"), "sqlite"), "sqlite"))
    assert.equal(" DEFAULT 1 + 2", ddl.default_clause(ddl.default_expr(ddl.text("1 + 2"), "postgresql"), "postgresql"))
    assert.equal("", ddl.default_clause(ddl.default_expr(ddl.no_default, dialect), dialect))
    assert.is_false(ddl.default_is_expression("x"))
    assert.is_true(ddl.default_is_expression(ddl.text("x")))
    assert.is_true(ddl.default_is_expression(false))
    assert.is_false(ddl.default_is_expression(ddl.no_default))
  end)

  it("creates a table whose columns, defaults, key, constraints and indexes work", function()
    local t = ddl.types
    local sql, indexes = create("ddl_parent", ddl.column("id", t.integer, { primary_key = true }))
    assert.equal(dialect == "sqlite" and "CREATE TABLE ddl_parent (\n\tid INTEGER NOT NULL, \n\tPRIMARY KEY (id)\n)"
      or "CREATE TABLE ddl_parent (\n\tid SERIAL NOT NULL, \n\tPRIMARY KEY (id)\n)", sql)
    assert.same({}, indexes)
    sql, indexes = create("ddl_child",
      ddl.column("id", t.integer, { primary_key = true }),
      ddl.column("parent_id", t.integer, { nullable = false }),
      ddl.column("code", t.string(5), { unique = true, index = true }),
      ddl.column("n", t.integer, { server_default = ddl.text("4") }),
      ddl.foreign_key("parent_id", "ddl_parent", "id", { name = "fk_child_parent", ondelete = "CASCADE" }),
      ddl.check("n < 10", { name = "ck_n" }))
    assert.same({ "CREATE UNIQUE INDEX ix_ddl_child_code ON ddl_child (code)" }, indexes)
    assert.matches("CONSTRAINT fk_child_parent FOREIGN KEY(parent_id) REFERENCES ddl_parent (id) ON DELETE CASCADE", sql, 1, true)
    conn:exec("INSERT INTO ddl_parent (id) VALUES (1)")
    conn:exec("INSERT INTO ddl_child (id, parent_id, code) VALUES (1, 1, 'a')")
    assert.equal(4, conn:first("SELECT n FROM ddl_child").n)
    for _, bad in ipairs({ "(2, 1, 'a', 1)", "(3, 9, 'b', 1)", "(4, 1, 'c', 10)", "(5, NULL, 'd', 1)" }) do
      assert.is_false(pcall(conn.exec, conn, "INSERT INTO ddl_child (id, parent_id, code, n) VALUES " .. bad), bad)
    end
    conn:exec("DELETE FROM ddl_parent")
    assert.equal(0, conn:first("SELECT count(*) AS n FROM ddl_child").n)
  end)

  it("takes the primary key's columns from op.primary_key, which makes them NOT NULL", function()
    local sql = ddl.create_table_sql("k", { ddl.column("a", ddl.types.integer), ddl.column("b", ddl.types.text),
      ddl.primary_key("a", "b", { name = "pk_k" }) }, other)
    assert.equal("CREATE TABLE k (\n\ta INTEGER NOT NULL, \n\tb TEXT NOT NULL, \n\tCONSTRAINT pk_k PRIMARY KEY (a, b)\n)", sql)
  end)

  it("refuses bad declarations with a message saying what to pass", function()
    assert.has_error(function() ddl.column("x", ddl.types.integer, { nulable = true }) end,
      'unknown column option "nulable" (nullable, primary_key, server_default, autoincrement, unique, index)')
    assert.has_error(function() ddl.create_table_sql("t", {}, dialect) end, "create_table needs at least one column")
    assert.has_error(function() ddl.create_table_sql("t", { "id" }, dialect) end)
  end)

  it("renders CREATE INDEX with unique and where", function()
    assert.equal('CREATE UNIQUE INDEX ix ON "select" (a, b) WHERE a > 0',
      ddl.create_index_sql("ix", "select", { "a", "b" }, { unique = true, where = "a > 0" }, dialect))
  end)
end)
