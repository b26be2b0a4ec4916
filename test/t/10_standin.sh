#!/usr/bin/env bash
# The Cal.com stand-in checks itself (it runs its own instance): the tests
# that rely on it are only as good as its faithfulness to calcom-api.md.
set -uo pipefail
. "$CAL_TOP/test/lib.sh"

out=$("$CAL_PYTHON" "$CAL_TOP/test/standin_selftest.py" 2>&1)
last=$(tail -n 1 <<<"$out")
if [[ $last =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
	ok "stand-in self-test: $last"
else
	not_ok "stand-in self-test: $last" "$(grep -i 'fail' <<<"$out" | head -20)"
fi
t_done
