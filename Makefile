# cal_refresh: PGXS build, plus the demo / test / bench entry points.
#
# `make demo`, `make test` and `make bench` work on a fresh Debian machine
# before pg_config exists: test/harness.sh installs what is missing, then
# re-enters make for the build.

EXTENSION = cal_refresh
MODULE_big = cal_refresh
# src/ by layer, from the SQL faces down; a layer includes only those below.
SRC_LAYERS = src/sql src/policy src/journal src/calcom src/store src/common
OBJS = \
	src/sql/cal_refresh.o \
	src/sql/cal_schedule.o \
	src/sql/cal_stats.o \
	src/sql/check.o \
	src/sql/check_report.o \
	src/sql/check_table.o \
	src/sql/settings.o \
	src/policy/prune.o \
	src/policy/refresh.o \
	src/policy/refresh_pairs.o \
	src/policy/refresh_task.o \
	src/journal/journal.o \
	src/journal/journal_buffer.o \
	src/journal/journal_writer.o \
	src/calcom/calcom_client.o \
	src/calcom/calcom_endpoint.o \
	src/calcom/calcom_transfer.o \
	src/calcom/curl_wait.o \
	src/calcom/rate_limit.o \
	src/calcom/stats.o \
	src/store/app_table.o \
	src/store/failure_store.o \
	src/store/journal_store.o \
	src/store/spi_pinned.o \
	src/store/token_store.o \
	src/common/cal_error.o \
	src/common/calcom_parse.o \
	src/common/interrupt_hold.o \
	src/common/journal_codec.o \
	src/common/secret_file.o

# 1.4 is installed as 1.0 plus the update scripts: one definition of each
# object, and every fresh install exercises the upgrade path.
DATA = sql/cal_refresh--1.0.sql sql/cal_refresh--1.0--1.1.sql \
	sql/cal_refresh--1.1--1.2.sql sql/cal_refresh--1.2--1.3.sql \
	sql/cal_refresh--1.3--1.4.sql

# pg_regress tests, in order (test/harness.sh runs the same list)
REGRESS = setup settings secret_file update_tokens table_checks \
	permissions refresh fallback retries errors hostile_input \
	access_token transactions schedule hostile_rows check stats oauth2 comments \
	upgrade

SHLIB_LINK = -lcurl -lcjson
PG_CPPFLAGS = $(addprefix -I,$(SRC_LAYERS))
PG_CFLAGS = -std=c99 -Wall -Wextra -Werror \
	-Wno-unused-parameter -Wno-missing-field-initializers

# The newest PostgreSQL installed, unless PG_CONFIG names another.
PG_CONFIG ?= $(or $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/pg_config))),pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
endif

# PGXS tracks no header dependencies: rebuild everything when one changes.
$(OBJS): $(wildcard src/*/*.h)

.PHONY: demo test bench soak print-regress test-matrix

demo:
	@bash test/harness.sh demo

test:
	@bash test/harness.sh test

bench:
	@bash test/harness.sh bench

# By hand: sessions, the job and injected faults for SOAK_MINUTES (5);
# SOAK_SEED replays a schedule.  Not part of make test.
soak:
	@bash test/harness.sh soak

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

# Fuzz the pure readers with libFuzzer (clang): the response parser, then
# the journal's codec; FUZZ_SECONDS=60 each by default.
.PHONY: fuzz
fuzz:
	@bash fuzz/run.sh $(or $(FUZZ_SECONDS),60) calcom_parse
	@bash fuzz/run.sh $(or $(FUZZ_SECONDS),60) journal_codec

# Static checks (cppcheck and clang-tidy must stay quiet on src/).
.PHONY: lint
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress='*:/usr/include/*' \
		$(addprefix -I,$(SRC_LAYERS)) -I$(shell $(PG_CONFIG) --includedir-server) src
	clang-tidy --quiet src/*/*.c -- $(addprefix -I,$(SRC_LAYERS)) \
		-I$(shell $(PG_CONFIG) --includedir-server) -D_GNU_SOURCE

# ---------------------------------------------------------------------------
# Packaging.  cal_refresh.control's default_version is the one version:
# META.json carries it as SemVer (1.2 -> 1.2.0), debian/changelog as is.

# Root runs apt-get itself; anyone else through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -y -qq --no-install-recommends
# Installs the packages named that are missing (test/packages.sh).
INSTALL_MISSING := bash test/packages.sh
# The majors `make deb` builds for: every postgresql-server-dev-NN installed
# (pg_buildext intersects them with debian/pgversions); a list such as
# PG_SUPPORTED_VERSIONS="15 17" works too.
PG_SUPPORTED_VERSIONS ?= installed

.PHONY: deb check-version check-meta

# The Debian packages postgresql-NN-cal-refresh, built in a temporary copy
# (debian/control regenerated there for the majors at hand), copied to dist/.
# Installs the build dependencies it lacks; runs no test.
deb:
	@set -e; \
	if ! dpkg-checkbuilddeps >/dev/null 2>&1; then \
		$(APT_GET) update; \
		$(APT_GET) build-dep '$(CURDIR)'; \
	fi; \
	$(MAKE) --no-print-directory check-version; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/cal-refresh"; \
	tar -cf - --exclude-vcs --exclude=./dist --exclude='*.o' --exclude='*.so' \
		--exclude='*.bc' . | tar -xf - -C "$$tmp/cal-refresh"; \
	cd "$$tmp/cal-refresh"; \
	PG_SUPPORTED_VERSIONS='$(PG_SUPPORTED_VERSIONS)' pg_buildext updatecontrol; \
	PG_SUPPORTED_VERSIONS='$(PG_SUPPORTED_VERSIONS)' \
	DEB_BUILD_OPTIONS="noautodbgsym $${DEB_BUILD_OPTIONS:-}" \
		dpkg-buildpackage -us -uc -b; \
	mkdir -p '$(CURDIR)/dist'; \
	rm -f '$(CURDIR)'/dist/*.deb; \
	cp "$$tmp"/*.deb '$(CURDIR)/dist/'; \
	echo "built:"; ls -1 '$(CURDIR)'/dist/*.deb


# Fails unless META.json and debian/changelog carry default_version.
check-version:
	@perl -MJSON::PP -e 1 2>/dev/null || $(INSTALL_MISSING) perl
	@perl test/check_version.pl

# Neither PGXN's validator (PGXN::Meta::Validator) nor its schemas are
# packaged in Debian or npm: this checks META.json against PGXN Meta Spec
# 1.0.0 (required and known keys, SemVer, terms, tags, licenses, prereqs,
# resources, files that exist).
check-meta:
	@perl -MJSON::PP -e 1 2>/dev/null || $(INSTALL_MISSING) perl
	@perl test/check_meta.pl META.json
