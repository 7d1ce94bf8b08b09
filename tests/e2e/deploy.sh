#!/usr/bin/env bash
# tests/e2e/deploy.sh: several instances behind nginx (docs/deploy.md), for
# real. Three todohost instances start at once on a fresh, unmigrated
# PostgreSQL database with MIGRATE_ON_START=true; Debian's nginx, run
# unprivileged from a temp dir with deploy/nginx-todohost.conf (its ports
# replaced by free ones), balances them. Concurrent POSTs go through nginx
# for DEPLOY_S seconds (20); half-way one instance gets SIGTERM. Then:
# the migration and the seeding ran once; the stopped instance finished its
# requests and exited 0; every acknowledged todo (201 with its id) is in the
# database exactly once, with that id; nginx answered every request (none
# lost to the stop) and routed around the stopped instance; each instance's
# /metrics agrees with its access log. Also checks deploy/todohost@.service
# with `systemd-analyze verify` (systemd is among the test packages).
# Prints `ok - ` / `not ok - ` lines; run by tests/run.sh (TODOHOST,
# TEST_PG_URL, TEST_TMPDIR).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
TODOHOST=${TODOHOST:-$ROOT/build/todohost}
TMP=$(mktemp -d "${TEST_TMPDIR:-/tmp}/deploy.XXXXXX")
DURATION=${DEPLOY_S:-20}
CLIENTS=${DEPLOY_CLIENTS:-8}
failed=0
pids=()
nginx_pid=""

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
note() { printf '# %s\n' "$@" >&2; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
eq() { [ "$1" = "$2" ] || { note "got:  ${1:0:600}" "want: ${2:0:600}"; return 1; }; }
now_ms() { date +%s%3N; }

cleanup() {
  [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "${ADMIN:-}" ] && psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS deploy_e2e WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT

# ---- the unit file ---------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
  # (ExecStart must exist for verify: the binary under test stands in for the installed one)
  mkdir -p "$TMP/unit"
  sed "s|/usr/local/bin/todohost|$TODOHOST|" deploy/todohost@.service >"$TMP/unit/todohost@8081.service"
  out=$(systemd-analyze verify --man=no "$TMP/unit/todohost@8081.service" 2>&1)
  check "systemd-analyze verify accepts deploy/todohost@.service, without a warning" eq "$? $out" "0 "
else
  ok "# SKIP systemd-analyze is not installed"
fi

if [ -z "${TEST_PG_URL:-}" ]; then
  echo "ok - # SKIP TEST_PG_URL not set (tests/run.sh starts PostgreSQL)"
  exit "$failed"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
  not_ok "nginx is not installed: run scripts/install-deps.sh test"
  exit 1
fi

ADMIN="${TEST_PG_URL%/*}/postgres"
URL="${TEST_PG_URL%/*}/deploy_e2e"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$URL" -c "$1"; }
psql -X -q -v ON_ERROR_STOP=1 "$ADMIN" -c "DROP DATABASE IF EXISTS deploy_e2e WITH (FORCE)" \
  -c "CREATE DATABASE deploy_e2e" >/dev/null || { not_ok "cannot create a database on the test server"; exit 1; }

# free_port: a TCP port nothing listens on, not handed out before, below the
# kernel's range for outgoing connections (32768 up): one of those can take a
# port between the probe and the bind (an instance's PostgreSQL connection did)
taken=" "
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((10000 + RANDOM % 22000))
    case "$taken" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then taken="$taken$p "; echo "$p"; return; fi
  done
  return 1
}

# ---- three instances, started at once on the unmigrated database -----------------------
ports=()
for i in 0 1 2; do
  ports[i]=$(free_port)
  env DATABASE_URL="$URL" HOST=127.0.0.1 PORT="${ports[i]}" WORKERS=2 DB_POOL_SIZE=4 \
    MIGRATE_ON_START=true ACCESS_LOG=json MAX_CONNECTIONS_PER_IP=0 HTTP_TIMEOUT=10 \
    "$TODOHOST" run serve.lua >"$TMP/instance$i.log" 2>&1 </dev/null &
  pids[i]=$!
done
for i in 0 1 2; do
  for _ in $(seq 300); do
    grep -q "serving on" "$TMP/instance$i.log" && break
    kill -0 "${pids[i]}" 2>/dev/null || break
    sleep 0.1
  done
done
started=$(cat "$TMP"/instance?.log | grep -c "serving on")
check "three instances started at once on an unmigrated database all serve" eq "$started" 3
if [ "$started" != 3 ]; then
  for i in 0 1 2; do echo "# instance $i:" >&2; sed "s/^/#   /" "$TMP/instance$i.log" >&2; done
fi
if [ "$started" != 3 ]; then note "$(cat "$TMP"/instance?.log)"; exit 1; fi

all_logs=$(cat "$TMP"/instance?.log)
revisions=$(ls migrations/*.lua | wc -l)
ran=$(grep -c "Running upgrade" <<<"$all_logs")
dups=$(grep "Running upgrade" <<<"$all_logs" | sed 's/.*Running upgrade//' | sort | uniq -d)
check "the migration ran once: each of the $revisions revisions upgraded by one instance" \
  eq "$ran/$dups" "$revisions/"
check "the seeding ran once: one instance seeded, the others found rows" \
  eq "$(grep -c "empty database seeded" <<<"$all_logs")" 1

# ---- nginx, unprivileged, with the repository's configuration -------------------------
NG="$TMP/nginx"
mkdir -p "$NG/temp" "$NG/logs"
nginx_port=$(free_port)
sed -e "s/127.0.0.1:8081/127.0.0.1:${ports[0]}/" -e "s/127.0.0.1:8082/127.0.0.1:${ports[1]}/" \
  -e "s/127.0.0.1:8083/127.0.0.1:${ports[2]}/" -e "s/listen 80;/listen 127.0.0.1:$nginx_port;/" \
  deploy/nginx-todohost.conf >"$NG/todohost.conf"
{
  [ "$(id -u)" -eq 0 ] && echo "user root;"   # (as root its workers would be nobody, locked out of $NG)
  cat <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/logs/error.log info;
events { worker_connections 512; }
http {
    log_format upstream '\$msec \$status \$upstream_addr';   # (the last address answered)
    access_log $NG/logs/access.log upstream;
    client_body_temp_path $NG/temp/body;
    proxy_temp_path $NG/temp/proxy;
    fastcgi_temp_path $NG/temp/fastcgi;
    uwsgi_temp_path $NG/temp/uwsgi;
    scgi_temp_path $NG/temp/scgi;
    include $NG/todohost.conf;
}
EOF
} >"$NG/nginx.conf"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/logs/error.log" >"$NG/logs/stdout" 2>&1 &
nginx_pid=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$nginx_port/health" && break
  sleep 0.1
done
check "nginx serves the API through the upstream block" \
  eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$nginx_port/todos")" 200
if ! kill -0 "$nginx_pid" 2>/dev/null; then note "$(cat "$NG"/logs/*)"; exit 1; fi

# ---- concurrent writes for DURATION s, one instance stopped half-way -------------------
# each client writes "ms status id title" per request into its own file
client() {
  local c=$1 end=$2 n=0 out
  while [ "$(now_ms)" -lt "$end" ]; do
    n=$((n + 1))
    out=$(curl -s --max-time 15 -X POST -H 'content-type: application/json' \
      --data "{\"title\":\"load-$c-$n\"}" -w '\n%{http_code}' "http://127.0.0.1:$nginx_port/todos")
    local status=${out##*$'\n'} id
    id=$(sed -n 's/^{"id":\([0-9]*\),.*/\1/p' <<<"${out%$'\n'*}")
    echo "$(now_ms) $status ${id:-none} load-$c-$n"
  done >"$TMP/client$c.txt"
}
t0=$(now_ms)
end=$((t0 + DURATION * 1000))
cpids=()
for c in $(seq $CLIENTS); do client "$c" "$end" & cpids+=($!); done
sleep $((DURATION / 2))
stop_ms=$(now_ms)
kill -TERM "${pids[1]}"
wait "${pids[1]}"
stop_rc=$?
exited_ms=$(now_ms)
for p in "${cpids[@]}"; do wait "$p"; done
cat "$TMP"/client*.txt >"$TMP/requests.txt"

note "the stopped instance: $(grep -E 'stopping:|stopped' "$TMP/instance1.log" | xargs)"
check "the stopped instance exited 0 after SIGTERM" eq "$stop_rc" 0
check "... and said it stopped" grep -q "todohost: stopped" "$TMP/instance1.log"

total=$(wc -l <"$TMP/requests.txt")
acked=$(awk '$2 == 201 && $3 != "none"' "$TMP/requests.txt" | wc -l)
after=$(awk -v t="$exited_ms" '$1 > t && $2 == 201' "$TMP/requests.txt" | wc -l)
note "$total requests through nginx in ${DURATION}s ($acked acknowledged, $after after the stop)"
check "every request through nginx was answered 201, during the stop too (none lost)" eq "$acked" "$total"
check "writes went on after the stop" test "$after" -gt 0

# every acknowledged todo is in the database exactly once, with its id
awk '$2 == 201 {print $3, $4}' "$TMP/requests.txt" | sort >"$TMP/acked.txt"
sql "SELECT id, title FROM todos WHERE title LIKE 'load-%'" | tr '|' ' ' | sort >"$TMP/stored.txt"
check "every acknowledged todo is in the database with its id" \
  eq "$(comm -23 "$TMP/acked.txt" "$TMP/stored.txt" | head -5)" ""
check "... and exactly once" \
  eq "$(sql "SELECT title FROM todos WHERE title LIKE 'load-%' GROUP BY title HAVING count(*) > 1" | head -5)" ""
check "... and nothing else was stored" eq "$(comm -13 "$TMP/acked.txt" "$TMP/stored.txt" | head -5)" ""

# nginx routed around the stopped instance: it found it refusing, the others answered
stopped="127.0.0.1:${ports[1]}"
check "nginx saw the stopped instance refuse connections" \
  grep -q "Connection refused.*upstream: \"http://$stopped" "$NG/logs/error.log"
late=$(awk -v t="$exited_ms" '$1 * 1000 > t && $2 == 201 {print $NF}' "$NG/logs/access.log" | sort -u | xargs)
check "after the stop, nginx answered from the two others only" \
  eq "$late" "$(printf '127.0.0.1:%s\n' "${ports[0]}" "${ports[2]}" | sort | xargs)"
check "the stopped instance answered requests before the stop" \
  test "$(grep -c '"method":"POST","path":"/todos","status":201' "$TMP/instance1.log")" -gt 0

# /metrics of a running instance counts what its access log shows
sleep 0.5   # (access-log lines are written out every 200 ms)
logged=$(grep -c '"method":"POST","path":"/todos","status":201' "$TMP/instance0.log")
counted=$(curl -s "http://127.0.0.1:${ports[0]}/metrics" |
  sed -n 's/^todohost_http_requests_total{route="create_todo",method="POST",status="201"} //p')
check "an instance's /metrics counts the writes its access log shows" eq "$counted" "$logged"
check "/metrics is not served through nginx" \
  eq "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$nginx_port/metrics")" 404

# ---- the two left stop cleanly -------------------------------------------------------
for i in 0 2; do
  kill -TERM "${pids[i]}"
  wait "${pids[i]}"
  check "instance $i exits 0 on SIGTERM" eq "$?" 0
done
pids=()
exit "$failed"
