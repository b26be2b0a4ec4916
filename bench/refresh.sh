#!/usr/bin/env bash
# make bench: what a refresh costs, measured in one run against the local
# stand-in (no network, so this is the extension's own overhead).
#   1. cal_refresh_user_tokens, each call in its own transaction as an
#      application makes them (a DO loop that commits after each call):
#      with the journal, and in a database whose extension objects are 1.1
#      (no journal: the library then skips it, as it does when no writer
#      can start), and with cal_refresh.track_stats off (what counting
#      the requests costs), in alternating rounds of 1,000 calls; medians
#   2. 1,000 refreshes sent straight to the stand-in by a Python client on
#      one kept-alive connection (the HTTP round trip alone), and 1,000 of
#      the UPDATE a refresh makes, each committed: together the floor of a
#      refresh
#   3. 10,000 cal_access_token on the fast path (no lock, no HTTP)
# and prints the ratios.  Run by hand; not part of make test.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"
. "$CAL_TOP/bench/lib.sh"

ROUNDS=${BENCH_ROUNDS:-5}

$CAL_STANDIN_CTL reset
bench_db b_journal 1.4 2001 1 BENCH due
bench_db b_nojournal 1.1 2002 1 BENCH due
for db in b_journal b_nojournal; do
	cpsql main "$db" -c "INSERT INTO public.\"CalendarIntegration\"
		VALUES ('01FAST', 'a', 'rt-fast', now() + interval '1 hour', 1)" >/dev/null
done
# Without a journal each call logs that its pair was not journaled: keep
# that line's cost out of the comparison.
cpsql main postgres -c "ALTER DATABASE b_nojournal SET log_min_messages = panic" >/dev/null
$CAL_STANDIN_CTL seed 2003 rt-seed-2003

# One round: 1,000 refreshes, each committed; prints milliseconds.  A
# second argument is a statement run first (a setting).
round_ms() {
	{
		printf '%s\n' "SET client_min_messages = error;" "${2:-}"
		cat <<'SQL'
\timing on
DO $$ BEGIN FOR i IN 1..1000 LOOP
	INSERT INTO cal_token_result_log SELECT (cal_refresh_user_tokens('01BENCH1')).success;
	COMMIT; END LOOP; END $$;
SQL
	} | cpsql main "$1" -At 2>/dev/null | sed -n 's/^Time: \([0-9.]*\).*/\1/p'
}

round_ms b_journal >/dev/null # warm up: the writer, caches, connections
round_ms b_nojournal >/dev/null
with=() without=() nostats=()
for _ in $(seq 1 "$ROUNDS"); do
	with+=("$(round_ms b_journal)")
	without+=("$(round_ms b_nojournal)")
	nostats+=("$(round_ms b_journal "SET cal_refresh.track_stats = off;")")
done
with_ms=$(printf '%s\n' "${with[@]}" | median)
without_ms=$(printf '%s\n' "${without[@]}" | median)
nostats_ms=$(printf '%s\n' "${nostats[@]}" | median)
for db in b_journal b_nojournal; do
	ok=$(cpsql main "$db" -At -c "SET client_min_messages = error" \
		-c "SELECT count(*) FROM cal_token_result_log WHERE NOT success")
	[ "$ok" = 0 ] || { echo "bench: $ok refreshes failed in $db" >&2; exit 1; }
done

raw_ms=$("$CAL_PYTHON" - "$CAL_STANDIN_URL" "$CAL_CLIENT_ID" "$CAL_WORK/standin.secret" <<'PY'
import http.client, json, sys, time
from urllib.parse import urlsplit
url, client_id, secret_file = sys.argv[1:4]
secret = open(secret_file).read().strip()
u = urlsplit(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
token = "rt-seed-2003"
start = time.monotonic()
for _ in range(1000):
    conn.request("POST", f"/v2/oauth/{client_id}/refresh", body=json.dumps({"refreshToken": token}),
                 headers={"Content-Type": "application/json", "x-cal-secret-key": secret,
                          "x-cal-client-id": client_id})
    token = json.loads(conn.getresponse().read())["data"]["refreshToken"]
print(round((time.monotonic() - start) * 1000))
PY
)

# The UPDATE a refresh makes of the row, each committed, alone.
update_ms=$(cpsql main b_journal -At <<'SQL' | sed -n 's/^Time: \([0-9.]*\).*/\1/p'
\timing on
DO $$ BEGIN FOR i IN 1..1000 LOOP
	UPDATE public."CalendarIntegration" SET "calAccessToken" = 'at-' || i,
		"calRefreshToken" = 'rt-' || i, "calAccessTokenExpiresAt" = now() + interval '1 hour'
	WHERE "userUlid" = '01FAST';
	COMMIT; END LOOP; END $$;
SQL
)

fast_ms=$(cpsql main b_journal -At <<'SQL' | sed -n 's/^Time: \([0-9.]*\).*/\1/p'
\timing on
SELECT count(*) FROM generate_series(1, 10000) g,
	LATERAL (SELECT cal_access_token('01FAST' || repeat('', g))) x;
SQL
)

echo "rounds (ms per 1,000), journal: ${with[*]}; no journal: ${without[*]}; stats off: ${nostats[*]}"
awk -v w="$with_ms" -v wo="$without_ms" -v ns="$nostats_ms" -v r="$raw_ms" -v f="$fast_ms" -v n="$ROUNDS" -v u="$update_ms" 'BEGIN {
	printf "cal_refresh_user_tokens, journal:     %6.3f ms per call (median of %d rounds of 1,000)\n", w / 1000, n
	printf "cal_refresh_user_tokens, no journal:  %6.3f ms per call (same rounds, alternating)\n", wo / 1000
	printf "the journal costs:                    %+6.3f ms per call\n", (w - wo) / 1000
	printf "cal_refresh_user_tokens, stats off:   %6.3f ms per call (same rounds, alternating)\n", ns / 1000
	printf "counting in cal_refresh_stats costs:  %+6.3f ms per call (%+.1f%%)\n", (w - ns) / 1000, (w - ns) * 100 / ns
	printf "HTTP round trip alone (Python):       %6.3f ms per call (1,000 calls)\n", r / 1000
	printf "the same UPDATE, committed, alone:    %6.3f ms per call (1,000 calls)\n", u / 1000
	printf "floor (round trip + UPDATE):          %6.3f ms per call\n", (r + u) / 1000
	printf "ratio refresh / floor:                %6.2f (journal), %.2f (no journal)\n", w / (r + u), wo / (r + u)
	printf "cal_access_token, fast path:          %6.3f ms per call (10,000 calls)\n", f / 10000
	printf "ratio refresh / bare HTTP:            %6.2f (journal), %.2f (no journal)\n", w / r, wo / r
	printf "ratio refresh / fast path:            %6.0f\n", (w / 1000) / (f / 10000)
}'
