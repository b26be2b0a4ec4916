# cal_refresh: PGXS build, plus the demo / test / bench entry points.
#
# `make demo`, `make test` and `make bench` work on a fresh Debian machine
# before pg_config exists: test/harness.sh installs what is missing, then
# re-enters make for the build.

EXTENSION = cal_refresh
MODULE_big = cal_refresh
OBJS = \
	src/cal_refresh.o \
	src/cal_schedule.o \
	src/calcom_client.o \
	src/calcom_parse.o \
	src/calcom_transfer.o \
	src/curl_wait.o \
	src/failure_store.o \
	src/journal.o \
	src/journal_store.o \
	src/rate_limit.o \
	src/refresh.o \
	src/secret_file.o \
	src/spi_pinned.o \
	src/token_store.o \
	src/token_table.o

# 1.2 is installed as 1.0 plus the update scripts: one definition of each
# object, and every fresh install exercises the upgrade path.
DATA = sql/cal_refresh--1.0.sql sql/cal_refresh--1.0--1.1.sql \
	sql/cal_refresh--1.1--1.2.sql

# pg_regress tests, in order (test/harness.sh runs the same list)
REGRESS = setup settings secret_file update_tokens table_checks \
	permissions refresh fallback retries errors hostile_input \
	access_token transactions schedule hostile_rows upgrade

SHLIB_LINK = -lcurl -lcjson
PG_CPPFLAGS = -Isrc
PG_CFLAGS = -std=c99 -Wall -Wextra -Werror \
	-Wno-unused-parameter -Wno-missing-field-initializers

# The newest PostgreSQL installed, unless PG_CONFIG names another.
PG_CONFIG ?= $(or $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/pg_config))),pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
endif

# PGXS tracks no header dependencies: rebuild everything when one changes.
$(OBJS): $(wildcard src/*.h)

.PHONY: demo test bench print-regress test-matrix

demo:
	@bash test/harness.sh demo

test:
	@bash test/harness.sh test

bench:
	@bash test/harness.sh bench

print-regress:
	@echo $(REGRESS)

# The whole suite in fresh chroots of Debian trixie (PostgreSQL 17) and sid
# (18), and the Debian package installed in another; as root.
test-matrix:
	@bash test/matrix.sh

# The valgrind run of test/t/70_valgrind.sh alone (it is part of make test).
.PHONY: valgrind
valgrind:
	@CAL_SHELL_TESTS=70_valgrind bash test/harness.sh test

# Fuzz the response parser with libFuzzer (clang); FUZZ_SECONDS=60 by default.
.PHONY: fuzz
fuzz:
	@bash fuzz/run.sh $(or $(FUZZ_SECONDS),60)

# Static checks (cppcheck and clang-tidy must stay quiet on src/).
.PHONY: lint
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress='*:/usr/include/*' \
		-Isrc -I$(shell $(PG_CONFIG) --includedir-server) src
	clang-tidy --quiet src/*.c -- -Isrc \
		-I$(shell $(PG_CONFIG) --includedir-server) -D_GNU_SOURCE
