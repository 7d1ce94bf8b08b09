#!/usr/bin/env bash
# tests/e2e/stress.sh: the short form of `make stress` in `make test`: the
# same load (1,000 keep-alive connections, then a connection per request) for
# 5 s per phase on SQLite and on the harness's PostgreSQL, with the binary
# under test (plain, then ASan+UBSan). tests/stress/stress.sh says what passes.
cd "$(dirname "$0")/../.." || exit 1
STRESS_S=${STRESS_S:-5} exec tests/stress/stress.sh
