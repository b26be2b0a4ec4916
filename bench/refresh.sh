#!/usr/bin/env bash
# make bench: what a refresh costs, measured in one run against the local
# stand-in (no network, so this is the extension's own overhead).
#   1. 1,000 cal_refresh_user_tokens in one session (each: row lock, HTTP
#      round trip on a kept-alive connection, UPDATE)
#   2. 1,000 refreshes sent straight to the stand-in by a Python client on
#      one kept-alive connection (the HTTP round trip alone)
#   3. 10,000 cal_access_token on the fast path (no lock, no HTTP)
# and prints the ratios.  Run by hand; not part of make test.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=b_refresh
make_test_db "$db"
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration" VALUES
	('01BENCH', 'a', 'rt-seed-2001', now() - interval '1 minute', 2001),
	('01FAST', 'a', 'rt-seed-2002', now() + interval '1 hour', 2002);
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 2001 rt-seed-2001
$CAL_STANDIN_CTL seed 2003 rt-seed-2003

ms() { date +%s%3N; }

t0=$(ms)
ok=$(cpsql main "$db" -At -c "SELECT count(*) FILTER (WHERE (cal_refresh_user_tokens('01BENCH')).success)
	FROM generate_series(1, 1000) g, LATERAL (SELECT g) x")
t1=$(ms)
[ "$ok" = 1000 ] || { echo "bench: only $ok of 1000 refreshes succeeded" >&2; exit 1; }
ext_ms=$((t1 - t0))

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

t0=$(ms)
cpsql main "$db" -At -c "SELECT count(*) FROM generate_series(1, 10000) g,
	LATERAL (SELECT cal_access_token('01FAST' || repeat('', g))) x" >/dev/null
t1=$(ms)
fast_ms=$((t1 - t0))

awk -v e="$ext_ms" -v r="$raw_ms" -v f="$fast_ms" 'BEGIN {
	printf "cal_refresh_user_tokens:        %6.2f ms per call (1,000 calls)\n", e / 1000
	printf "HTTP round trip alone (Python): %6.2f ms per call (1,000 calls)\n", r / 1000
	printf "cal_access_token, fast path:    %6.3f ms per call (10,000 calls)\n", f / 10000
	printf "ratio refresh / bare HTTP:      %6.2f\n", e / r
	printf "ratio refresh / fast path:      %6.0f\n", (e / 1000) / (f / 10000)
}'
