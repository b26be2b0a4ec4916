#!/usr/bin/env bash
# Runs last: after the whole suite, the main server's log (written at
# log_min_messages = debug5, so every Cal.com call is there, with every
# error and its CONTEXT) holds no token the stand-in ever issued and not
# the client secret.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

log_file=$CAL_WORK/main/server.log
tokens=$CAL_WORK/issued-tokens
$CAL_STANDIN_CTL issued-tokens >"$tokens"
n_tokens=$(wc -l <"$tokens")
like "$n_tokens" '^[1-9][0-9]+$' "the suite made the stand-in issue tokens ($n_tokens)"

n_calls=$(grep -c 'cal_refresh: refresh for user' "$log_file" || true)
like "$n_calls" '^[1-9][0-9]*$' "Cal.com calls are logged at DEBUG1 ($n_calls lines)"
like "$(grep -c 'trying force refresh' "$log_file" || true)" '^[1-9][0-9]*$' \
	"fallbacks are logged"

hits=$(grep -c -F -f "$tokens" "$log_file" || true)
is "$hits" "0" "no issued token in the server log"
hits=$(grep -c -F -f "$CAL_WORK/standin.secret" "$log_file" || true)
is "$hits" "0" "the client secret is not in the server log"
hits=$(grep -c -i 'x-cal-secret-key' "$log_file" || true)
is "$hits" "0" "no request header is logged"
t_done
