#!/usr/bin/env bash
# Build a libFuzzer target and fuzz it:
#   calcom_parse   (the default) the pure Cal.com body readers and checkers
#                  of src/common/calcom_parse.c, seeded from fuzz/corpus;
#   journal_codec  the journal's hand-over bytes (src/common/journal_codec.c),
#                  seeded from fuzz/corpus_journal.
#
#   fuzz/run.sh [SECONDS [TARGET]]    fuzz for SECONDS (default 60)
#
# Works from any directory.  The binary and a working copy of fuzz/corpus go
# to a temporary directory, never into the source tree; it is removed when
# the run is clean and kept, with the crashing input, when it is not.
# Exits with the fuzzer's status; 2 when the target cannot be built.  The
# last line is "fuzz: N runs in S s, no crash" on a clean run.
#
# Needs clang with its fuzzer runtime (Debian: clang, libclang-rt-N-dev (N: clang's major))
# and cJSON (Debian: libcjson-dev).
set -euo pipefail

usage() {
	echo "usage: $0 [SECONDS [calcom_parse|journal_codec]]" >&2
	exit 2
}

[ $# -le 2 ] || usage
seconds=${1:-60}
target=${2:-calcom_parse}
case $target in
	calcom_parse) sources="src/common/calcom_parse.c" libs="-lcjson" corpus=corpus ;;
	journal_codec) sources="src/common/journal_codec.c" libs="" corpus=corpus_journal ;;
	*) usage ;;
esac
case $seconds in
	'' | *[!0-9]*) usage ;;
	*) ;;
esac
[ "$seconds" -gt 0 ] || usage

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang not found; install Debian's clang and libclang-rt-N-dev (N: clang's major)" >&2
	exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cal_refresh_fuzz.XXXXXX")
keep_work=no
# shellcheck disable=SC2317  # called by the EXIT trap, not unreachable
cleanup() {
	if [ "$keep_work" = no ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# Is the fuzzer runtime there?  A one-line target tells.
cat >"$work/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return 0; }
EOF
if ! clang -fsanitize=fuzzer,address,undefined "$work/probe.c" \
	-o "$work/probe" >"$work/probe.log" 2>&1; then
	sed 's/^/  /' "$work/probe.log" >&2
	echo "fuzz: clang's fuzzer runtime is missing; install Debian's clang and libclang-rt-N-dev (N: clang's major)" >&2
	exit 2
fi

bin="$work/fuzz_$target"
echo "fuzz: building $bin"
# shellcheck disable=SC2086  # sources and libs are word lists
if ! (cd "$top" &&
	clang -g -O1 -fsanitize=fuzzer,address,undefined -I src/common \
		$sources "fuzz/fuzz_$target.c" $libs -o "$bin"); then
	echo "fuzz: build failed (cJSON's headers come with Debian's libcjson-dev)" >&2
	exit 2
fi

mkdir "$work/corpus" "$work/artifacts"
cp -R "$top/fuzz/$corpus/." "$work/corpus/"

# UBSan only reports by default; make its findings crashes too.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

echo "fuzz: running $target for $seconds s on a copy of fuzz/$corpus"
set +e
(cd "$work" &&
	"$bin" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$work/corpus") 2>&1 |
	tee "$work/fuzz.log"
status=${PIPESTATUS[0]}
set -e

done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$work/fuzz.log" | tail -n 1 || true)
if [ "$status" -eq 0 ] && [ -n "$done_line" ]; then
	runs=$(echo "$done_line" | sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/')
	secs=$(echo "$done_line" | sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/')
	echo "fuzz: $target: $runs runs in $secs s, no crash"
else
	keep_work=yes
	echo "fuzz: fuzzer exited with status $status; log, inputs and crash files kept in $work" >&2
	ls -l "$work/artifacts" >&2 || true
	if [ "$status" -eq 0 ]; then
		status=1
	fi
fi
exit "$status"
