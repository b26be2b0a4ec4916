#!/usr/bin/env bash
# cal_refresh_expiring_tokens: one call refreshes every due user, concurrently
# (1,000 users at 50 ms each in well under 10 s), leaves users not due alone,
# shares the cluster's request budget, skips rows another session has locked,
# and keeps users that keep failing out of batches (backoff in
# cal_refresh_failure) while single-user calls still try them.
# Stand-in users 3000-4999.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_batch
make_test_db "$db"
trap '$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
table='public."CalendarIntegration"'

# "managed id refresh token" of the rows whose managed id is in [$1, $2], for
# `standin_ctl.py check-current`
rows_of() {
	cpsql main "$db" -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
		FROM $table WHERE \"calManagedUserId\" BETWEEN $1 AND $2"
}
wait_for() { poll_until "$db" "$1" 500; }
# The most refresh requests the stand-in saw arrive within $1 seconds: with a
# latency above that, the most that were in flight at once.
most_at_once() {
	$CAL_STANDIN_CTL requests | "$CAL_PYTHON" -c '
import bisect, json, sys
window = float(sys.argv[1])
times = sorted(r["t"] for r in json.load(sys.stdin)["requests"] if r["endpoint"] == "refresh")
print(max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0))' "$1"
}
timing_ms() { sed -n 's/^Time: \([0-9]*\)\..*/\1/p' <<<"$1" | head -1; }

# --- the interface ---------------------------------------------------------
is "$(cpsql main "$db" -At -F '|' -c "SELECT boot_val, context FROM pg_settings
	WHERE name = 'cal_refresh.max_concurrency'")" "32|user" \
	"cal_refresh.max_concurrency: default 32, settable by anyone"
is "$(cpsql main "$db" -At -F '|' -c "SELECT
	has_function_privilege('public', 'cal_refresh_expiring_tokens(interval, integer)', 'EXECUTE'),
	has_function_privilege('public', 'cal_refresh_status()', 'EXECUTE'),
	has_table_privilege('public', 'cal_refresh_failure', 'SELECT'),
	has_table_privilege('public', 'cal_refresh_failure', 'UPDATE')")" "f|f|f|f" \
	"the batch function, the status function and cal_refresh_failure are closed to PUBLIC"
out=$(cpsql main "$db" -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
SELECT count(*) FROM cal_refresh_expiring_tokens(within => '56 minutes');
\echo sqlstate=:LAST_ERROR_SQLSTATE
SELECT count(*) FROM cal_refresh_expiring_tokens(within => '-1 second');
\echo sqlstate=:LAST_ERROR_SQLSTATE
SELECT count(*) FROM cal_refresh_expiring_tokens(max_users => 0);
\echo sqlstate=:LAST_ERROR_SQLSTATE
SELECT count(*) FROM cal_refresh_expiring_tokens(max_users => 10001);
\echo sqlstate=:LAST_ERROR_SQLSTATE
SET cal_refresh.table_name = 'public.no_such_table';
SELECT count(*) FROM cal_refresh_expiring_tokens();
\echo sqlstate=:LAST_ERROR_SQLSTATE
SQL
)
is "$(grep -o 'sqlstate=.*' <<<"$out" | paste -sd' ')" \
	"sqlstate=22023 sqlstate=22023 sqlstate=22023 sqlstate=22023 sqlstate=55000" \
	"within outside 0..55 min and max_users outside 1..10000 raise 22023; a missing table raises 55000"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM cal_refresh_expiring_tokens(within => '0', max_users => 10000)")" \
	0 "an empty table gives no rows (within 0 and max_users 10000 are accepted)"

# --- 1,000 due users, 50 ms each, one call ----------------------------------
# Due: expired, expiring within the 10 minutes, or no expiry at all.  Not due:
# 20 users whose token has 30 minutes left (known to the stand-in, so a wrong
# refresh of them would succeed and show).
cpsql main "$db" >/dev/null <<SQL
INSERT INTO $table
SELECT '01B' || i, 'at-old', 'rt-45-' || i,
	   CASE i % 10 WHEN 0 THEN NULL
				   WHEN 1 THEN now() + interval '5 minutes'
				   ELSE now() - interval '1 minute' END, i
FROM generate_series(3000, 3999) i;
INSERT INTO $table
SELECT '01K' || i, 'at-keep', 'rt-45k-' || i, now() + interval '30 minutes', i
FROM generate_series(4000, 4019) i;
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 3000 1000 rt-45
$CAL_STANDIN_CTL seed-many 4000 20 rt-45k
$CAL_STANDIN_CTL latency 50
out=$(cpsql main "$db" -At 2>&1 <<'SQL'
\timing on
CREATE TABLE batch_result AS SELECT * FROM cal_refresh_expiring_tokens() WITH ORDINALITY;
SQL
)
ms=$(timing_ms "$out")
$CAL_STANDIN_CTL latency 0
is "$(cpsql main "$db" -At -F '|' -c "SELECT count(*), count(*) FILTER (WHERE success),
	count(*) FILTER (WHERE method = 'refresh'), count(*) FILTER (WHERE error_code IS NULL),
	count(DISTINCT user_ulid) FROM batch_result")" "1000|1000|1000|1000|1000" \
	"one call returns 1,000 rows: every user refreshed, once"
like "${ms:-}" '^[0-9]+$' "the call was timed ($ms ms)"
[ "${ms:-99999}" -lt 10000 ] && ok "1,000 refreshes at 50 ms each in under 10 s ($ms ms)" ||
	not_ok "1,000 refreshes at 50 ms each in under 10 s ($ms ms)"
is "$($CAL_STANDIN_CTL calls)" "refresh=1000 force_refresh=0" \
	"the stand-in saw exactly 1,000 refreshes (none of a user not due, none twice)"
most=$(most_at_once 0.04)
[ "$most" -ge 16 ] && [ "$most" -le 32 ] &&
	ok "requests ran concurrently, at most 32 at once by default ($most arrived within 40 ms)" ||
	not_ok "requests ran concurrently, at most 32 at once by default ($most arrived within 40 ms)"
is "$(cpsql main "$db" -At -c "SELECT array_agg(user_ulid ORDER BY ordinality)
	= array_agg(user_ulid ORDER BY user_ulid COLLATE \"C\") FROM batch_result")" t \
	"rows come back in \"userUlid\" COLLATE \"C\" order"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM batch_result r JOIN $table t
	ON t.\"userUlid\" = r.user_ulid
	WHERE r.access_token = t.\"calAccessToken\"
	  AND r.access_token_expires_at = t.\"calAccessTokenExpiresAt\"
	  AND t.\"calAccessTokenExpiresAt\" > now() + interval '50 minutes'
	  AND r.refresh_token_expires_at > now() + interval '300 days'")" 1000 \
	"each row stores the access token and expiries it returned"
is "$(rows_of 3000 3999 | $CAL_STANDIN_CTL check-current | tail -1)" "1000 current, 0 not current" \
	"every refreshed row holds the refresh token the stand-in considers current"
is "$(cpsql main "$db" -At -F '|' -c "SELECT count(*),
	count(*) FILTER (WHERE \"calAccessToken\" = 'at-keep' AND \"calRefreshToken\" = 'rt-45k-' || \"calManagedUserId\"
		AND \"calAccessTokenExpiresAt\" < now() + interval '31 minutes')
	FROM $table WHERE \"userUlid\" LIKE '01K%'")" "20|20" \
	"the 20 users not due (30 minutes left) are untouched"
is "$(rows_of 4000 4019 | $CAL_STANDIN_CTL check-current | tail -1)" "20 current, 0 not current" \
	"...and their refresh tokens were not spent"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM cal_refresh_expiring_tokens()")" 0 \
	"a second call finds nothing due"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM cal_refresh_expiring_tokens(within => '35 minutes', max_users => 5)")" 5 \
	"a wider window makes the 20 users due; max_users caps the call at 5"
is "$(cpsql main "$db" -At -c "SELECT string_agg(\"userUlid\", ',' ORDER BY \"userUlid\") FROM $table
	WHERE \"calAccessTokenExpiresAt\" > now() + interval '50 minutes' AND \"userUlid\" LIKE '01K%'")" \
	"01K4000,01K4001,01K4002,01K4003,01K4004" "...the first 5 in \"userUlid\" order"

# --- cal_refresh.max_concurrency bounds the requests in flight ---------------
# 12 due users, 200 ms each, 4 at a time: three rounds, about 600 ms.
cpsql main "$db" -c "UPDATE $table SET \"calAccessTokenExpiresAt\" = now() - interval '1 minute'
	WHERE \"calManagedUserId\" BETWEEN 3000 AND 3011" >/dev/null
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL latency 200
out=$(cpsql main "$db" -At 2>&1 <<'SQL'
SET cal_refresh.max_concurrency = 4;
\timing on
SELECT count(*) FILTER (WHERE success) FROM cal_refresh_expiring_tokens();
SQL
)
ms=$(timing_ms "$out")
$CAL_STANDIN_CTL latency 0
like "$out" $'(^|\n)12\n' "max_concurrency 4: all 12 refreshed"
is "$(most_at_once 0.15)" 4 "...never more than 4 requests in flight, and 4 at once"
[ "${ms:-0}" -ge 550 ] && [ "${ms:-99999}" -lt 1500 ] &&
	ok "...in three rounds of 200 ms ($ms ms)" || not_ok "...in three rounds of 200 ms ($ms ms)"

# --- the cluster's request budget, shared by two sessions -------------------
cpsql main "$db" -c "DROP TABLE batch_result" -c "TRUNCATE $table" >/dev/null
cpsql main "$db" >/dev/null <<SQL
INSERT INTO $table SELECT '01Q' || i, 'a', 'rt-45q-' || i, now(), i
FROM generate_series(4100, 4129) i;
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 4100 30 rt-45q
session() {
	cpsql main "$db" -At -F '|' -c "SET cal_refresh.max_requests_per_minute = 600" \
		-c "SELECT count(*) FILTER (WHERE success), string_agg(user_ulid, ',')
			FROM cal_refresh_expiring_tokens(max_users => 15)" | grep -v '^SET$'
}
session >"$CAL_WORK/batch-rate1.out" 2>&1 &
p1=$!
session >"$CAL_WORK/batch-rate2.out" 2>&1 &
p2=$!
wait "$p1" "$p2" || true
r1=$(cat "$CAL_WORK/batch-rate1.out")
r2=$(cat "$CAL_WORK/batch-rate2.out")
is "${r1%%|*}+${r2%%|*}" "15+15" "two sessions at 600 a minute: 15 refreshes each, all succeeded"
is "$(tr ',' '\n' <<<"${r1#*|},${r2#*|}" | sort -u | wc -l)" 30 "...of 30 different users"
stats=$($CAL_STANDIN_CTL requests | "$CAL_PYTHON" -c '
import json, sys
from collections import Counter
log = json.load(sys.stdin)["requests"]
times = sorted(r["t"] for r in log if r["endpoint"] == "refresh")
per_user = Counter(r["user_id"] for r in log if r["endpoint"] == "refresh")
most = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
print(len(times), len(per_user), max(per_user.values()),
      sum(1 for r in log if r["endpoint"] != "refresh"), most, round(times[-1] - times[0], 2))')
read -r n users twice others most span <<<"$stats"
is "$n/$users/$twice/$others" "30/30/1/0" \
	"the stand-in saw 30 refreshes of 30 users, none refreshed twice, nothing else"
[ "$most" -le 12 ] && ok "at most 12 requests in any one second ($most)" ||
	not_ok "at most 12 requests in any one second ($most)"
awk -v s="$span" 'BEGIN { exit !(s >= 2.5) }' &&
	ok "spread over at least 2.5 s, as 600 a minute requires ($span s)" ||
	not_ok "spread over at least 2.5 s, as 600 a minute requires ($span s)"
is "$(rows_of 4100 4129 | $CAL_STANDIN_CTL check-current | tail -1)" "30 current, 0 not current" \
	"every row holds its current refresh token"

# --- a row locked by another session is skipped, not waited for -------------
cpsql main "$db" -c "TRUNCATE $table" >/dev/null
cpsql main "$db" >/dev/null <<SQL
INSERT INTO $table SELECT '01L' || i, 'a', 'rt-45l-' || i, now(), i
FROM generate_series(4200, 4207) i;
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 4200 8 rt-45l
cpsql main "$db" -At >/dev/null 2>&1 <<SQL &
SET application_name = 'cal_batch_holder';
BEGIN;
SELECT 1 FROM $table WHERE "userUlid" = '01L4201' FOR UPDATE;
SELECT pg_sleep(30);
COMMIT;
SQL
holder=$!
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'cal_batch_holder'
	AND query LIKE '%pg_sleep%'" || not_ok "the lock holder started"
out=$(cpsql main "$db" -At -F '|' 2>&1 <<'SQL'
\timing on
SELECT string_agg(user_ulid, ',' ORDER BY user_ulid), count(*) FILTER (WHERE success)
FROM cal_refresh_expiring_tokens(max_users => 3);
\timing off
SELECT string_agg(user_ulid, ',' ORDER BY user_ulid), count(*) FILTER (WHERE success)
FROM cal_refresh_expiring_tokens();
SQL
)
ms=$(timing_ms "$out")
like "$out" $'(^|\n)01L4200,01L4202,01L4203\\|3\n' \
	"max_users => 3 with 01L4201 locked elsewhere: the next three unlocked users"
like "$out" $'\n01L4204,01L4205,01L4206,01L4207\\|4$' "a second call takes the rest, still without 01L4201"
[ "${ms:-99999}" -lt 2000 ] && ok "the locked row was skipped, not waited for ($ms ms)" ||
	not_ok "the locked row was skipped, not waited for ($ms ms)"
is "$($CAL_STANDIN_CTL calls --user 4201)" "refresh=0 force_refresh=0" "nothing was sent for the locked user"
cpsql main "$db" -At -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'cal_batch_holder'" >/dev/null
wait "$holder" 2>/dev/null || true
is "$(cpsql main "$db" -At -F '|' -c "SELECT user_ulid, success FROM cal_refresh_expiring_tokens()")" \
	"01L4201|t" "once the lock is gone, the next call refreshes that user"

# --- a user that keeps failing is backed off -------------------------------
# 01F4399: its refresh token is unknown to the stand-in (400) and so is its
# managed user id (force refresh: 404), so both endpoints fail.
cpsql main "$db" -c "TRUNCATE $table" >/dev/null
cpsql main "$db" >/dev/null <<SQL
INSERT INTO $table VALUES
	('01F4300', 'a', 'rt-45f-4300', now() - interval '1 minute', 4300),
	('01F4399', 'a', 'rt-45-never-issued', now() - interval '1 minute', 4399);
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 4300 rt-45f-4300
status_of() {
	cpsql main "$db" -At -F '|' -c "SELECT failures, last_error_code,
		round(extract(epoch FROM next_attempt_at - last_failure_at)),
		last_failure_at BETWEEN now() - interval '1 minute' AND now(),
		last_error IS NOT NULL AND last_error <> ''
		FROM cal_refresh_status() WHERE user_ulid = '$1'"
}
is "$(cpsql main "$db" -At -F '|' -c "SELECT user_ulid, success, method, error_code
	FROM cal_refresh_expiring_tokens()")" $'01F4300|t|refresh|\n01F4399|f||calcom_rejected' \
	"the first batch call returns the failing user with success = false, next to a good one"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=1" "...after trying force refresh for it"
is "$(status_of 01F4399)" "1|calcom_rejected|60|t|t" \
	"cal_refresh_status: 1 failure, its error, next attempt 1 minute after the failure"
is "$(cpsql main "$db" -At -F '|' -c "SELECT count(*), count(failures), count(last_error_code)
	FROM cal_refresh_status()")" "2|1|1" \
	"cal_refresh_status has a row per user; the failure columns are NULL for a user without failures"
is "$(cpsql main "$db" -At -F '|' -c "SELECT user_ulid, failures, error_code FROM cal_refresh_failure")" \
	"01F4399|1|calcom_rejected" "cal_refresh_failure holds the one failing user"
cpsql main "$db" -c "UPDATE $table SET \"calAccessTokenExpiresAt\" = now() - interval '1 minute'
	WHERE \"userUlid\" = '01F4300'" >/dev/null
$CAL_STANDIN_CTL reset
is "$(cpsql main "$db" -At -c "SELECT string_agg(user_ulid, ',') FROM cal_refresh_expiring_tokens()")" \
	"01F4300" "a second batch call right after skips the backed-off user"
is "$($CAL_STANDIN_CTL calls)/$($CAL_STANDIN_CTL calls --user 4300)" \
	"refresh=1 force_refresh=0/refresh=1 force_refresh=0" \
	"...and sends nothing for it: the one request was the good user's"

$CAL_STANDIN_CTL reset
is "$(cpsql main "$db" -At -F '|' -c "SELECT success, error_code FROM cal_refresh_user_tokens('01F4399')")" \
	"f|calcom_rejected" "cal_refresh_user_tokens ignores the backoff and fails again"
is "$($CAL_STANDIN_CTL calls)" "refresh=1 force_refresh=1" "...after calling Cal.com (both endpoints)"
is "$(status_of 01F4399)" "2|calcom_rejected|120|t|t" "now 2 failures and a 2-minute backoff"

# Backoff over: a batch tries the user again.  Each backoff doubles the last
# (here 4 h), but never passes 6 h.
cpsql main "$db" -c "UPDATE cal_refresh_failure SET failures = 40,
	last_failure_at = now() - interval '4 hours 1 second',
	next_attempt_at = now() - interval '1 second'" >/dev/null
is "$(cpsql main "$db" -At -F '|' -c "SELECT user_ulid, success FROM cal_refresh_expiring_tokens()")" \
	"01F4399|f" "once next_attempt_at has passed, a batch tries the user again"
is "$(status_of 01F4399)" "41|calcom_rejected|21600|t|t" "after 41 failures the backoff is capped at 6 h"

# The stand-in knows the user again: the stored token is still unknown (400),
# force refresh now works, and the failure record goes.
$CAL_STANDIN_CTL seed 4399 rt-45-revived
is "$(cpsql main "$db" -At -F '|' -c "SELECT success, method FROM cal_refresh_user_tokens('01F4399')")" \
	"t|force_refresh" "once the stand-in knows the user, cal_refresh_user_tokens succeeds by force refresh"
is "$(cpsql main "$db" -At -F '|' -c "SELECT coalesce(failures, 0), last_error_code IS NULL,
	next_attempt_at IS NULL, last_failure_at IS NULL, expires_in > interval '50 minutes'
	FROM cal_refresh_status() WHERE user_ulid = '01F4399'")" "0|t|t|t|t" \
	"cal_refresh_status shows no failure any more, and the new expiry"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM cal_refresh_failure")" 0 \
	"the success deleted the failure record"
is "$(rows_of 4399 4399 | $CAL_STANDIN_CTL check-current | tail -1)" "1 current, 0 not current" \
	"the row holds the pair the stand-in considers current"
cpsql main "$db" -c "TRUNCATE $table" >/dev/null
$CAL_STANDIN_CTL reset
t_done
