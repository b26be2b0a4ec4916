#!/usr/bin/env bash
# make bench: what concurrency buys cal_refresh_expiring_tokens.  1,000 due
# users, the stand-in answering each refresh after 50 ms (a round trip to a
# distant Cal.com), refreshed by one call:
#   1. with cal_refresh.max_concurrency = 32 (the default)
#   2. with cal_refresh.max_concurrency = 1 (one request after another)
# and prints both, per user, their ratio, and the 50 s that 1,000 sequential
# 50 ms round trips take at the very least.  Run by hand; not part of make test.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=b_batch
users=1000
latency_ms=50
make_test_db "$db"
cpsql main "$db" >/dev/null <<SQL
INSERT INTO public."CalendarIntegration"
SELECT '01BB' || i, 'a', 'rt-bb-' || i, now() - interval '1 minute', i
FROM generate_series(7000, 7000 + $users - 1) i;
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 7000 "$users" rt-bb
$CAL_STANDIN_CTL latency "$latency_ms"
trap '$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT

# run CONCURRENCY: make every row due again, refresh them in one call; prints
# the call's milliseconds, measured on the server
run() {
	local out n ms
	cpsql main "$db" -c "UPDATE public.\"CalendarIntegration\"
		SET \"calAccessTokenExpiresAt\" = now() - interval '1 minute'" >/dev/null
	out=$(cpsql main "$db" -At -F ' ' -c "SET cal_refresh.max_concurrency = $1" -c "
		SELECT count(*) FILTER (WHERE success),
			   round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)
		FROM cal_refresh_expiring_tokens(max_users => $users)" | grep -v '^SET$')
	read -r n ms <<<"$out"
	[ "$n" = "$users" ] || { echo "bench: only $n of $users refreshes succeeded" >&2; exit 1; }
	echo "$ms"
}

par_ms=$(run 32)
seq_ms=$(run 1)

awk -v p="$par_ms" -v s="$seq_ms" -v n="$users" -v l="$latency_ms" 'BEGIN {
	rounds = int((n + 31) / 32)
	printf "cal_refresh_expiring_tokens, %d due users, stand-in latency %d ms:\n", n, l
	printf "  max_concurrency = 32: %6d ms  %6.2f ms per user  (at best %d rounds x %d ms = %d ms)\n",
		p, p / n, rounds, l, rounds * l
	printf "  max_concurrency = 1:  %6d ms  %6.2f ms per user  (sequential in theory: %d x %d ms = %d ms)\n",
		s, s / n, n, l, n * l
	printf "  ratio 32 / its floor: %6.3f\n", p / (rounds * l)
	printf "  ratio 1 / 32:         %6.1f\n", s / p
}'
