#!/usr/bin/env bash
# make bench: refreshes under contention.  8 sessions (pgbench -c 8) call
# cal_refresh_user_tokens over 4 users, each call its own transaction, so
# that every user's refreshes queue on its row lock: with the journal, and
# in a database whose extension objects are 1.1 (no journal), in
# alternating rounds of BENCH_SECONDS (10) each; medians of BENCH_ROUNDS (3)
# in refreshes per second.  Every round must end with each row holding
# Cal.com's current pair and no force refresh sent.  Run by hand.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"
. "$CAL_TOP/bench/lib.sh"

ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER_ROUND=${BENCH_SECONDS:-10}
script=$CAL_WORK/contention.pgbench
printf '%s\n' '\set u random(1, 4)' \
	"SELECT (cal_refresh_user_tokens('01CT' || :u)).success;" >"$script"

$CAL_STANDIN_CTL reset
bench_db b_ct_journal 1.4 3100 4 CT
bench_db b_ct_nojournal 1.1 3200 4 CT
cpsql main postgres -c "ALTER DATABASE b_ct_nojournal SET log_min_messages = panic" \
	-c "ALTER DATABASE b_ct_nojournal SET client_min_messages = error" >/dev/null

# round DB: refreshes per second of one round.
round() {
	"$PG_BIN/pgbench" -n -c 8 -j 8 -T "$SECONDS_PER_ROUND" -h "$MAIN_HOST" -p "$MAIN_PORT" \
		-U postgres -f "$script" "$1" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}

SECONDS_PER_ROUND=2 round b_ct_journal >/dev/null # warm up
with=() without=()
for _ in $(seq 1 "$ROUNDS"); do
	with+=("$(round b_ct_journal)")
	without+=("$(round b_ct_nojournal)")
done
for db in b_ct_journal b_ct_nojournal; do
	current=$(cpsql main "$db" -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
		FROM public.\"CalendarIntegration\"" | $CAL_STANDIN_CTL check-current | tail -1)
	[ "$current" = "4 current, 0 not current" ] ||
		{ echo "bench: $db: $current" >&2; exit 1; }
done
[ "$($CAL_STANDIN_CTL calls force_refresh)" = "force_refresh=0" ] ||
	{ echo "bench: force refreshes were sent" >&2; exit 1; }
echo "rounds (refreshes/s), journal: ${with[*]}; no journal: ${without[*]}"
awk -v w="$(printf '%s\n' "${with[@]}" | median)" \
	-v wo="$(printf '%s\n' "${without[@]}" | median)" -v n="$ROUNDS" -v s="$SECONDS_PER_ROUND" 'BEGIN {
	printf "8 sessions on 4 users, journal:     %7.1f refreshes/s (median of %d rounds of %d s)\n", w, n, s
	printf "8 sessions on 4 users, no journal:  %7.1f refreshes/s\n", wo
	printf "ratio journal / no journal:         %7.2f\n", w / wo
}'
