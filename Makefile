# todohost: build, run, test. `make help` lists the targets.
.DEFAULT_GOAL := all
SHELL := /bin/bash

PKGS    := lua5.4 libpq sqlite3 libmicrohttpd libcrypto
# Host sources: add a module here only once it compiles cleanly.
SRCS    := host/main.c host/runtime.c host/config.c host/dburl.c \
           host/db.c host/db_sqlite.c host/db_pg.c host/db_pool.c host/lua_db.c \
           host/http.c host/lua_http.c host/copy.c host/lua_copy.c \
           host/lua_util.c host/textsafe.c \
           host/lua_settings.c host/lua_metrics.c
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) $(PKG_CFLAGS) -Ihost -MMD -MP
LDLIBS  = $(PKG_LIBS) -lpthread -lm -ldl
SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

B       := build
OBJS     = $(SRCS:host/%.c=$(B)/obj/%.o)
ASAN_OBJS= $(SRCS:host/%.c=$(B)/asan/obj/%.o)
# The binary that migrate, seed, copy, doctor and run use (tests set it to the ASan build).
TODOHOST ?= $(B)/todohost

.PHONY: all deps asan run test clean help migrate seed serve bench bench-db bench-http bench-migrate bench-copy db-start db-stop psql env
all: deps $(B)/todohost $(B)/libtodohost.a node_modules/swagger-ui-dist/package.json ## build build/todohost (installs missing packages first)

deps: ## install missing Debian packages for building
	@scripts/install-deps.sh build

# Swagger UI for /docs: swagger-ui-dist from the npm registry, pinned in
# package.json + package-lock.json, installed into node_modules/ when missing
# or when the pins change (no install scripts run: nothing phones home).
SWAGGER_UI := node_modules/swagger-ui-dist/package.json
$(SWAGGER_UI): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || scripts/install-deps.sh node
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

$(B)/todohost: $(OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) -rdynamic

# Everything but main(), for the C unit tests in tests/c/ (link: $(B)/libtodohost.a $(LDLIBS)).
$(B)/libtodohost.a: $(filter-out $(B)/obj/main.o,$(OBJS))
	$(AR) rcs $@ $^
$(B)/asan/libtodohost.a: $(filter-out $(B)/asan/obj/main.o,$(ASAN_OBJS))
	$(AR) rcs $@ $^

$(B)/obj/%.o: host/%.c | $(B)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

asan: deps $(B)/asan/todohost $(B)/asan/libtodohost.a ## build the AddressSanitizer + UBSan binary
$(B)/asan/todohost: $(ASAN_OBJS)
	$(CC) $(CSTD) $(SAN) -o $@ $^ $(LDLIBS) -rdynamic
$(B)/asan/obj/%.o: host/%.c | $(B)/asan/obj
	$(CC) $(CSTD) $(WARN) $(SAN) $(PKG_CFLAGS) -Ihost -MMD -MP -c -o $@ $<

$(B)/obj $(B)/asan/obj:
	@mkdir -p $@

migrate: all ## migrate the configured database to head
	$(TODOHOST) run migrate.lua upgrade head

seed: all ## seed the configured database when its todos table is empty
	$(TODOHOST) run seed.lua

run: all ## build, migrate, seed and serve on DATABASE_URL (default sqlite:///./database.db)
	@$(TODOHOST) run doctor.lua port
	$(TODOHOST) run migrate.lua upgrade head
	$(TODOHOST) run seed.lua
	RELOAD=true $(TODOHOST) run serve.lua

test: ## install test packages, start a throwaway PostgreSQL, run every suite (plain and ASan+UBSan)
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory all asan
	@tests/run.sh

bench-db: ## benchmark the database binding against pgbench and plain sqlite3
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory all
	@bench/db.sh

bench-http: ## benchmark the HTTP server with wrk (GET /todos/1, GET /todos, POST /todos) against pgbench
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/http.sh

bench-migrate: ## time `migrate.lua upgrade head`, `current` (< 50 ms), `check` (< 30 ms) and autogenerate (< 100 ms) vs Alembic on the original app
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/migrate.sh

bench-copy: ## time copy.lua (1,000,000 todos SQLite -> PostgreSQL, verified) vs psql \copy and pgloader
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory all
	@bench/copy.sh

bench: bench-db bench-http bench-migrate bench-copy ## run every benchmark

db-start: all ## start PostgreSQL on localhost:5432 (Docker Compose, else a native server; data in localdev/data/)
	@TODOHOST=$(TODOHOST) scripts/db.sh start

db-stop: all ## stop it; the data stays in localdev/data/personal_todo_pgdata
	@TODOHOST=$(TODOHOST) scripts/db.sh stop

env: ## create .env from .env.example (PostgreSQL of `make db-start`); an existing .env is kept
	@if [ -e .env ]; then echo ".env exists: kept as it is (compare with .env.example)"; \
	else cp .env.example .env && echo ".env created from .env.example: DATABASE_URL points at PostgreSQL"; fi

psql: all ## open a SQL shell on DATABASE_URL (psql; sqlite3 for a sqlite:/// URL)
	@TODOHOST=$(TODOHOST) scripts/db.sh psql

# ---- fuzzing: libFuzzer targets tests/fuzz/fuzz_*.c (clang) -----------------
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_OBJS  = $(SRCS:host/%.c=$(B)/fuzz/obj/%.o)
FUZZ_SAN  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
.PHONY: fuzz fuzz-build
fuzz: fuzz-build ## run every fuzz target for FUZZ_S seconds (default 60); FUZZ_MERGE=1 keeps new inputs in tests/fuzz/corpus
	@tests/fuzz/fuzz.sh
fuzz-build: deps $(SWAGGER_UI) $(FUZZ_BINS)
	@scripts/install-deps.sh fuzz
$(B)/fuzz/libtodohost.a: $(filter-out $(B)/fuzz/obj/main.o,$(FUZZ_OBJS))
	$(AR) rcs $@ $^
$(B)/fuzz/obj/%.o: host/%.c | $(B)/fuzz/obj
	clang $(CSTD) $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -Ihost -MMD -MP -c -o $@ $<
$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(B)/fuzz/libtodohost.a
	clang $(CSTD) $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer -Ihost -Itests/fuzz $(PKG_CFLAGS) -o $@ $< $(B)/fuzz/libtodohost.a $(LDLIBS) -rdynamic
$(FUZZ_BINS): $(wildcard tests/fuzz/*.h)   # a target rebuilds when a header it may include changes
$(B)/fuzz/obj:
	@scripts/install-deps.sh fuzz
	@mkdir -p $@

# ---- load and soak --------------------------------------------------------------
.PHONY: stress
stress: ## load and soak: 1,000 keep-alive connections, then a connection per request, STRESS_S (60) s each, on SQLite and PostgreSQL, plain and ASan builds
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory all asan
	@for b in build/todohost build/asan/todohost; do echo "== $$b"; TODOHOST=$$PWD/$$b tests/stress/stress.sh || exit 1; done

.PHONY: copy doctor
copy: all ## copy the SQLite data (database.db) into DATABASE_URL (PostgreSQL); options: ARGS="--replace"
	$(TODOHOST) run copy.lua $(ARGS)

.PHONY: snapshot
snapshot: all ## a verified SQLite snapshot of DATABASE_URL (PostgreSQL) in localdev/snapshot-DATE-TIME.db
	@mkdir -p localdev
	$(TODOHOST) run copy.lua --to sqlite:///localdev/snapshot-$$(date +%Y-%m-%d-%H%M%S).db $(ARGS)

doctor: all ## check the set-up: port, DATABASE_URL, server, migrations, rows, .env, database.db
	@$(TODOHOST) run doctor.lua

clean: ## remove build output
	rm -rf $(B)

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d)

# ---- install ------------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=]: the binary in PREFIX/bin; the
# installation (paths.install: scripts/*.lua, the revision template, the
# Swagger UI files /docs serves) in PREFIX/share/todohost, with the list of
# what was put there in its install-manifest, which make uninstall follows;
# docs in PREFIX/share/doc/todohost; the man page in PREFIX/share/man/man1.
PREFIX  ?= /usr/local
INSTALL_LUA    = $(sort $(shell find scripts -name '*.lua'))
INSTALL_SHARE  = $(INSTALL_LUA) migrations/script.lua.tmpl $(wildcard seeds/*.lua) \
                 $(addprefix node_modules/swagger-ui-dist/,swagger-ui.css swagger-ui-bundle.js \
                   favicon-32x32.png oauth2-redirect.html LICENSE NOTICE package.json)
INSTALL_DOCS   = README.md $(wildcard docs/*.md)
MANIFEST       = share/todohost/install-manifest
.PHONY: install uninstall
install: $(TODOHOST) $(SWAGGER_UI) ## install todohost, its scripts, docs and man page in PREFIX (/usr/local); DESTDIR for packages
	@set -e; root='$(DESTDIR)$(PREFIX)'; list=''; \
	put() { install -D -m "$$1" "$$2" "$$root/$$3"; list+="$$3"$$'\n'; }; \
	put 755 '$(TODOHOST)' bin/todohost; \
	for f in $(INSTALL_SHARE); do put 644 "$$f" "share/todohost/$$f"; done; \
	for f in $(INSTALL_DOCS); do put 644 "$$f" "share/doc/todohost/$${f#docs/}"; done; \
	put 644 docs/todohost.1 share/man/man1/todohost.1; \
	printf '%s%s\n' "$$list" '$(MANIFEST)' >"$$root/$(MANIFEST)"; \
	echo "installed todohost in $$root ($$(wc -l <"$$root/$(MANIFEST)") files, listed in $(MANIFEST))"

uninstall: ## remove what make install put in PREFIX (its install-manifest), and nothing else
	@set -e; root='$(DESTDIR)$(PREFIX)'; \
	if [ ! -f "$$root/$(MANIFEST)" ]; then \
	  echo "make uninstall: no $$root/$(MANIFEST): todohost is not installed there (check PREFIX and DESTDIR)" >&2; exit 1; fi; \
	while IFS= read -r f; do \
	  case "$$f" in ''|/*|*..*) echo "make uninstall: skipped a suspicious manifest line: $$f" >&2; continue ;; esac; \
	  rm -f -- "$$root/$$f"; \
	done <"$$root/$(MANIFEST)"; \
	for d in share/todohost share/doc/todohost; do \
	  [ -d "$$root/$$d" ] && find "$$root/$$d" -depth -type d -empty -delete; done; \
	echo "removed todohost from $$root"
