#!/usr/bin/env bash
# The harness behind `make demo`, `make test` and `make bench`: install what
# is missing, build and install the extension, start the Cal.com stand-in
# and throwaway clusters, run the work, stop everything it started.
#
#   test/harness.sh test    every pg_regress test, then every test/t/*.sh;
#                           last line "N passed, N failed", non-zero exit on
#                           any failure
#   test/harness.sh demo    refresh a demo user and show the row before/after
#   test/harness.sh bench   run bench/*.sh (by hand; not part of `make test`)
#   test/harness.sh soak    run test/soak.sh (by hand; SOAK_MINUTES, SOAK_SEED)
set -euo pipefail

mode=${1:-test}
CAL_TOP=$(cd "$(dirname "$0")/.." && pwd)
export CAL_TOP
# shellcheck source=test/lib.sh
. "$CAL_TOP/test/lib.sh"

# CAL_KEEP=1 keeps clusters' logs and pg_regress output even on success.
keep_workdir=$([ "${CAL_KEEP:-0}" = 1 ] && echo yes || echo no)
cleanup() {
	stop_all
	if [ "$keep_workdir" = yes ]; then
		log "logs kept in $CAL_WORK"
	else
		rm -rf "$CAL_WORK"
	fi
}

setup() {
	ensure_packages
	# CAL_INSTALLED=1: the extension as its Debian package installed it.
	[ "${CAL_INSTALLED:-0}" = 1 ] || build_and_install
	make_workdir
	trap cleanup EXIT
	make_secret_file
	start_standin
	# The tests log everything (debug5) and check the log; a benchmark
	# measures what a production server pays, with the default log level.
	if [ "$mode" = bench ]; then
		cluster_start main yes "log_min_messages = warning"
	else
		cluster_start main yes
	fi
}

run_regress() {
	local tests outdir=$CAL_WORK/regress
	tests=$(make -C "$CAL_TOP" -s print-regress)
	mkdir -p "$outdir"
	local pg_regress
	pg_regress=$("$PG_BIN/pg_config" --pkglibdir)/pgxs/src/test/regress/pg_regress
	set +e
	# shellcheck disable=SC2086
	"$pg_regress" --inputdir="$CAL_TOP" --outputdir="$outdir" \
		--bindir="$PG_BIN" --host="$MAIN_HOST" --port="$MAIN_PORT" \
		--user=postgres --dbname=contrib_regression $tests \
		>"$outdir/pg_regress.out" 2>&1
	set -e
	cat "$outdir/pg_regress.out"
	# "test ... ok" up to PostgreSQL 15; TAP lines ("ok 1 - test") from 16.
	regress_passed=$(grep -cE '\.\.\. ok|^ok [0-9]+ ' "$outdir/pg_regress.out" || true)
	regress_failed=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$outdir/pg_regress.out" || true)
	if [ "$regress_failed" -gt 0 ] && [ -f "$outdir/regression.diffs" ]; then
		head -c 20000 "$outdir/regression.diffs"
	fi
}

# Each test/t/*.sh prints "ok - ..." / "not ok - ..." lines; a script that
# exits non-zero without saying why counts as one more failure.
run_shell_tests() {
	shell_passed=0
	shell_failed=0
	local t out rc n_ok n_not start
	for t in "$CAL_TOP"/test/t/${CAL_SHELL_TESTS:-*}.sh; do
		[ -e "$t" ] || continue
		set +e
		start=$SECONDS
		out=$(bash ${CAL_TRACE:+-x} "$t" 2>&1)
		rc=$?
		set -e
		echo "# $(basename "$t") ($((SECONDS - start)) s)"
		printf '%s\n' "$out"
		n_ok=$(grep -c '^ok ' <<<"$out" || true)
		n_not=$(grep -c '^not ok ' <<<"$out" || true)
		if [ "$rc" -ne 0 ] && [ "$n_not" -eq 0 ]; then
			echo "not ok - $(basename "$t") exited with $rc"
			n_not=1
		fi
		shell_passed=$((shell_passed + n_ok))
		shell_failed=$((shell_failed + n_not))
	done
}

# make bench only: what bench/alternatives.sh compares the extension with
# (PL/Python, Node.js with the pg package pinned by bench/node's lockfile),
# gnuplot for its plot, curl for the bare round trip.  Only what is missing.
ensure_bench_tools() {
	install_missing "postgresql-plpython3-$PG_MAJOR" gnuplot-nox curl
	command -v node >/dev/null 2>&1 || install_missing nodejs npm
	# npm ci wipes node_modules: run it only when the lockfile changed.
	local dir=$CAL_TOP/bench/node
	if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
		[ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
	fi
}

case "$mode" in
test)
	setup
	# CAL_SHELL_TESTS=PATTERN runs only the matching test/t scripts, and
	# then no pg_regress test (for working on one script).
	if [ -n "${CAL_SHELL_TESTS:-}" ]; then
		regress_passed=0
		regress_failed=0
	else
		run_regress
	fi
	# CAL_REGRESS_ONLY=1 runs the pg_regress tests and no shell test.
	if [ "${CAL_REGRESS_ONLY:-0}" = 1 ]; then
		shell_passed=0
		shell_failed=0
	else
		run_shell_tests
	fi
	passed=$((regress_passed + shell_passed))
	failed=$((regress_failed + shell_failed))
	[ "$failed" -gt 0 ] && keep_workdir=yes
	echo "pg_regress: $regress_passed passed, $regress_failed failed; shell tests: $shell_passed passed, $shell_failed failed"
	stop_all
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	;;
demo)
	setup
	bash "$CAL_TOP/test/demo.sh"
	;;
bench)
	ensure_bench_tools
	setup
	# BENCH=name runs bench/name.sh alone.
	for b in "$CAL_TOP"/bench/${BENCH:-*}.sh; do
		[ -e "$b" ] && bash "$b"
	done
	;;
soak)
	setup
	# A finding keeps the logs, the request log and the crash times.
	bash "$CAL_TOP/test/soak.sh" || { keep_workdir=yes; exit 1; }
	;;
*)
	log "usage: $0 test|demo|bench|soak"
	exit 2
	;;
esac
