#!/usr/bin/env bash
# Short libFuzzer runs (fuzz/run.sh) over the pure readers: the response
# parser (bodies from a hostile server never crash it, never yield an
# implausible token or expiry, never put a non-printable byte in a
# message) and the journal's hand-over codec (bytes never read outside
# the buffer, and what decodes encodes back to the same bytes).
set -uo pipefail
. "$CAL_TOP/test/lib.sh"

for target in calcom_parse journal_codec; do
	out=$(bash "$CAL_TOP/fuzz/run.sh" 8 "$target" 2>&1)
	last=$(tail -n 1 <<<"$out")
	if [[ $last =~ ^fuzz:\ $target:\ [0-9]+\ runs\ in\ [0-9]+\ s,\ no\ crash$ ]]; then
		ok "$last"
	else
		not_ok "fuzz smoke run of $target" "$(tail -n 15 <<<"$out")"
	fi
done
t_done
