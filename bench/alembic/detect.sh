#!/usr/bin/env bash
# bench/alembic/detect.sh: what Alembic (the Debian python3-alembic, 1.8 in
# bookworm) detects with `revision --autogenerate` on the changes of
# docs/extending.md's comparison table, on the original app (this folder),
# first with Alembic's default settings, then with compare_type and
# compare_server_default on. One line per change; prints, never judges.
#
#   bench/alembic/detect.sh URL    URL: a superuser URL of a PostgreSQL server
#                                  (tests/pg.sh start prints one)
# bench/migrate.sh runs it at its end. Settings: PYTHON=/usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")"
admin_url=${1:?usage: bench/alembic/detect.sh POSTGRESQL_URL}
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1 PGOPTIONS="-c client_min_messages=warning"

url_for() { printf '%s/%s' "${admin_url%/*}" "$1"; }
admin() { psql -X -q -v ON_ERROR_STOP=1 "$admin_url" -c "$1" >/dev/null; }

work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  admin "DROP DATABASE IF EXISTS alembic_detect_case" 2>/dev/null || true
  admin "DROP DATABASE IF EXISTS alembic_detect_head" 2>/dev/null || true
}
trap cleanup EXIT

# The original app's database at head, the template of every case.
admin "DROP DATABASE IF EXISTS alembic_detect_head"
admin "CREATE DATABASE alembic_detect_head"
cp -r alembic.ini env.py models.py script.py.mako versions "$work/"
DATABASE_URL=$(url_for alembic_detect_head) "$PYTHON" -m alembic -c "$work/alembic.ini" upgrade head 2>/dev/null

# detected OPTIONS: what `revision --autogenerate` (with OPTIONS, -x ...) finds
# on DATABASE_URL, "; "-separated, or "nothing"; writes no file.
FLAGS="-x compare_type=true -x compare_server_default=true"
detected() {
  local log found
  rm -f "$work"/versions/*_detect.py
  # shellcheck disable=SC2086  # options: two words each
  if log=$("$PYTHON" -m alembic -c "$work/alembic.ini" $1 revision --autogenerate --rev-id detect -m detect 2>&1); then
    found=$(printf '%s\n' "$log" | sed -n "/Detected sequence/d; s/.*\] Detected \(.*\)/\1/p" | paste -sd ';' | sed 's/;/; /g')
  else
    found="alembic failed: $(printf '%s\n' "$log" | tail -1)"
  fi
  rm -f "$work"/versions/*_detect.py
  echo "${found:-nothing}"
}

# print_row TITLE WITH_DEFAULTS WITH_FLAGS
print_row() {
  printf '%-38s defaults: %s\n%-38s + compare_type, compare_server_default: %s\n' "$1" "$2" "" "$3"
}

# case TITLE SQL MODEL_EDIT: SQL runs on a copy of the database at head,
# MODEL_EDIT (a sed script, then Python lines after "||") changes models.py;
# prints what autogenerate detects, with defaults and with both options on.
case_() {
  local title=$1 sql=$2 edit=$3
  admin "DROP DATABASE IF EXISTS alembic_detect_case"
  admin "CREATE DATABASE alembic_detect_case TEMPLATE alembic_detect_head"
  [ -z "$sql" ] || psql -X -q -v ON_ERROR_STOP=1 "$(url_for alembic_detect_case)" -c "$sql" >/dev/null
  sed -e "${edit%%||*}" models.py >"$work/models.py"
  [[ $edit != *"||"* ]] || printf '%s\n' "${edit#*||}" | tr ';' '\n' | sed 's/^ *//' >>"$work/models.py"
  local out=() options
  for options in "" "$FLAGS"; do
    out+=("$(DATABASE_URL=$(url_for alembic_detect_case) detected "$options")")
  done
  print_row "$title" "${out[@]}"
}

echo "Alembic $("$PYTHON" -c 'import alembic; print(alembic.__version__)') autogenerate on the original app (bench/alembic), PostgreSQL:"
case_ "nothing changed" "" ""
case_ "server default changed (false->true)" "" "s/Boolean, Column/true, Boolean, Column/; s/server_default=false()/server_default=true()/"
case_ "server default dropped (created_at)" "" "s/, server_default=func.now()//"
case_ "varchar length (200->300)" "" "s/String(200)/String(300)/"
case_ "type (description text->varchar)" "" "s/description = Column(Text/description = Column(String(500)/"
enum_sql="CREATE TYPE priority AS ENUM ('low', 'high'); ALTER TABLE todos ADD COLUMN priority priority"
enum_col='from sqlalchemy import Enum; Todo.__table__.append_column(Column("priority", Enum(VALUES, name="priority")))'
case_ "enum unchanged (low, high)" "$enum_sql" "||${enum_col/VALUES/\"low\", \"high\"}"
case_ "enum value added (+urgent)" "$enum_sql" "||${enum_col/VALUES/\"low\", \"high\", \"urgent\"}"
case_ "enum value removed (-high)" "$enum_sql" "||${enum_col/VALUES/\"low\"}"
case_ "check constraint added" "" '||from sqlalchemy import CheckConstraint; Todo.__table__.append_constraint(CheckConstraint("length(title) > 0", name="ck_todos_title"))'
case_ "unique constraint added, unnamed" "" '||from sqlalchemy import UniqueConstraint; Todo.__table__.append_constraint(UniqueConstraint("title"))'
case_ "unique constraint added, named" "" '||from sqlalchemy import UniqueConstraint; Todo.__table__.append_constraint(UniqueConstraint("title", name="uq_todos_title"))'
case_ "nullability (description NOT NULL)" "" "s/description = Column(Text, nullable=True)/description = Column(Text, nullable=False)/"
case_ "index added (title)" "" "s/title = Column(String(200), nullable=False)/title = Column(String(200), nullable=False, index=True)/"
owners='from sqlalchemy import ForeignKey, Table; Table("owners", Base.metadata, Column("id", Integer, primary_key=True))'
owner_col='Todo.__table__.append_column(Column("owner_id", Integer, ForeignKey("owners.id"ONDELETE)))'
owners_sql="CREATE TABLE owners (id serial PRIMARY KEY); ALTER TABLE todos ADD COLUMN owner_id integer"
case_ "foreign key added" "$owners_sql" "||$owners; ${owner_col/ONDELETE/}"
case_ "foreign key ON DELETE changed" "$owners_sql REFERENCES owners (id)" "||$owners; ${owner_col/ONDELETE/, ondelete=\"CASCADE\"}"

# SQLite, nothing changed: the same database at head (the revisions run there too).
cp models.py "$work/models.py"
sqlite_out=()
for options in "" "$FLAGS"; do
  rm -f "$work/todo.db"
  export DATABASE_URL="sqlite:///$work/todo.db"
  "$PYTHON" -m alembic -c "$work/alembic.ini" upgrade head 2>/dev/null
  sqlite_out+=("$(detected "$options")")
done
print_row "SQLite, nothing changed" "${sqlite_out[@]}"
