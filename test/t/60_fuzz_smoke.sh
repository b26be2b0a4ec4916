#!/usr/bin/env bash
# A short libFuzzer run over the response parser (fuzz/run.sh): bodies
# from a hostile server never crash it, never yield an implausible token
# or expiry, and never put a non-printable byte in a message.
set -uo pipefail
. "$CAL_TOP/test/lib.sh"

out=$(bash "$CAL_TOP/fuzz/run.sh" 10 2>&1)
last=$(tail -n 1 <<<"$out")
if [[ $last =~ ^fuzz:\ [0-9]+\ runs\ in\ [0-9]+\ s,\ no\ crash$ ]]; then
	ok "$last"
else
	not_ok "fuzz smoke run" "$(tail -n 15 <<<"$out")"
fi
t_done
