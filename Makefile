# todohost: build, run, test. `make help` lists the targets.
.DEFAULT_GOAL := all
SHELL := /bin/bash

PKGS    := lua5.4 libpq sqlite3 libmicrohttpd
# Host sources: add a module here only once it compiles cleanly.
SRCS    := host/main.c host/runtime.c host/config.c host/dburl.c \
           host/db.c host/db_sqlite.c host/db_pg.c host/lua_db.c
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

.PHONY: all deps asan run test clean help migrate seed serve bench bench-db
all: deps $(B)/todohost $(B)/libtodohost.a ## build build/todohost (installs missing packages first)

deps: ## install missing Debian packages for building
	@scripts/install-deps.sh build

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
	$(B)/todohost run migrate.lua upgrade head

seed: all ## seed the configured database when its todos table is empty
	$(B)/todohost run seed.lua

run: all ## build, migrate, seed and serve on DATABASE_URL (default sqlite:///./database.db)
	$(B)/todohost run migrate.lua upgrade head
	$(B)/todohost run seed.lua

test: ## install test packages, start a throwaway PostgreSQL, run every suite (plain and ASan+UBSan)
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory all asan
	@tests/run.sh

bench-db: ## benchmark the database binding against pgbench and plain sqlite3
	@scripts/install-deps.sh test
	@$(MAKE) --no-print-directory all
	@bench/db.sh

bench: bench-db ## run every benchmark

clean: ## remove build output
	rm -rf $(B)

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d)
