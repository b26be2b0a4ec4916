#!/usr/bin/env bash
# Concurrency: refreshes of one user serialise on the row lock, the waiter
# uses what the winner stored, no refresh token is spent twice, a burst of
# cal_access_token causes one refresh, a held lock gives 'busy', and a
# session killed before COMMIT is recovered from by force refresh.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_conc
make_test_db "$db" 'timestamp(3)'
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration"
SELECT '01C' || lpad(i::text, 2, '0'), 'at-old', 'rt-seed-' || (1200 + i),
	   now() AT TIME ZONE 'UTC' - interval '1 minute', 1200 + i
FROM generate_series(1, 20) i;
INSERT INTO public."CalendarIntegration" VALUES
	('01HOT', 'at-old', 'rt-seed-1250', now() AT TIME ZONE 'UTC' - interval '1 minute', 1250);
SQL
$CAL_STANDIN_CTL reset
for i in $(seq 1 20); do $CAL_STANDIN_CTL seed $((1200 + i)) "rt-seed-$((1200 + i))"; done
$CAL_STANDIN_CTL seed 1250 rt-seed-1250

pgbench() {
	"$PG_BIN/pgbench" -h "$MAIN_HOST" -p "$MAIN_PORT" -U postgres -n "$@" "$db" 2>&1
}
warnings_in_log() { grep -c 'returning the stored access token' "$CAL_WORK/main/server.log" || true; }

# --- 8 sessions x 200 calls over 20 users ---------------------------------
# A call that fails raises (1 / 0 from success = false, or
# cal_access_token's own error), which pgbench reports as an aborted client.
cat >"$CAL_WORK/mix.sql" <<'SQL'
\set u random(1, 20)
\set k random(0, 2)
SELECT CASE :k
	WHEN 0 THEN (SELECT 1 / r.success::int
				 FROM cal_refresh_user_tokens('01C' || lpad(:u::text, 2, '0')) r)
	WHEN 1 THEN length(cal_access_token('01C' || lpad(:u::text, 2, '0'), '55 minutes'))
	ELSE length(cal_access_token('01C' || lpad(:u::text, 2, '0')))
END;
SQL
warnings_before=$(warnings_in_log)
out=$(pgbench -c 8 -j 2 -t 200 -f "$CAL_WORK/mix.sql")
like "$out" "number of transactions actually processed: 1600/1600" \
	"8 sessions x 200 calls: all 1600 processed"
like "$out" "number of failed transactions: 0 " "no call failed"
is "$(warnings_in_log)" "$warnings_before" "no stale token was handed out instead of a refresh"
calls=$($CAL_STANDIN_CTL calls)
like "$calls" '^refresh=[0-9]+ force_refresh=0$' \
	"no refresh token was spent twice: no force refresh was needed ($calls)"
not_current=""
while IFS='|' read -r id rt; do
	state=$($CAL_STANDIN_CTL is-current "$id" "$rt")
	[ "$state" = current ] || not_current="$not_current $id:$state"
done < <(cpsql main "$db" -At -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
	FROM public.\"CalendarIntegration\" WHERE \"userUlid\" LIKE '01C%'")
is "$not_current" "" "every row holds the pair the stand-in considers current"

# --- a burst of 50 cal_access_token for one expired user -------------------
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL latency 300
echo "SELECT length(cal_access_token('01HOT'));" >"$CAL_WORK/hot.sql"
out=$(pgbench -c 50 -j 2 -t 1 -f "$CAL_WORK/hot.sql")
like "$out" "number of transactions actually processed: 50/50" "50 concurrent callers all got a token"
is "$($CAL_STANDIN_CTL calls --user 1250)" "refresh=1 force_refresh=0" \
	"exactly one refresh reached Cal.com"
$CAL_STANDIN_CTL reset

# --- a lock held elsewhere: busy, or 55P03 when lock_timeout is shorter -----
wait_for() { poll_until "$db" "$1" 500; }
cpsql main "$db" -c "UPDATE public.\"CalendarIntegration\"
	SET \"calAccessTokenExpiresAt\" = now() AT TIME ZONE 'UTC' + interval '30 minutes'
	WHERE \"userUlid\" = '01C01'" >/dev/null
cpsql main "$db" -At >/dev/null 2>&1 <<'SQL' &
SET application_name = 'cal_lock_holder';
BEGIN;
SELECT 1 FROM public."CalendarIntegration" WHERE "userUlid" IN ('01C01', '01C02') FOR UPDATE;
SELECT pg_sleep(8);
COMMIT;
SQL
holder=$!
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'cal_lock_holder' AND query LIKE '%pg_sleep%'"
out=$(cpsql main "$db" -At -F '|' -v ON_ERROR_STOP=0 2>&1 <<'SQL'
SET cal_refresh.lock_timeout = '200ms';
\timing on
SELECT error_code, error FROM cal_refresh_user_tokens('01C01');
\timing off
SET lock_timeout = '100ms';
SELECT error_code FROM cal_refresh_user_tokens('01C01');
\echo sqlstate=:LAST_ERROR_SQLSTATE
RESET lock_timeout;
-- the stored token has 30 minutes left: asked for 45, it is returned,
-- with a WARNING, since the refresh cannot get the row
SELECT length(cal_access_token('01C01', '45 minutes')) > 0 AS served;
SQL
)
like "$out" 'busy\|another session held the row lock' "cal_refresh.lock_timeout gives busy"
ms=$(sed -n 's/^Time: \([0-9]*\)\..*/\1/p' <<<"$out" | head -1)
[ "${ms:-0}" -ge 200 ] && [ "${ms:-9999}" -le 1000 ] &&
	ok "busy after 200 ms, not after the holder's 8 s ($ms ms)" || not_ok "busy after 200 ms, not after the holder's 8 s ($ms ms)"
like "$out" "sqlstate=55P03" "a shorter lock_timeout of the session raises 55P03"
like "$out" "WARNING:  returning the stored access token of user \"01C01\"" \
	"cal_access_token on a busy row returns the stored token with a WARNING"
like "$out" $'\nt$' "...and the token"
kill "$holder" 2>/dev/null || true
cpsql main "$db" -At -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'cal_lock_holder'" >/dev/null
wait "$holder" 2>/dev/null || true
is "$($CAL_STANDIN_CTL calls)" "refresh=0 force_refresh=0" "nothing was sent while the row was busy"

# --- a session killed after Cal.com rotated, before COMMIT ------------------
cpsql main "$db" -At >/dev/null 2>&1 <<'SQL' &
SET application_name = 'cal_doomed';
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01C04');
SELECT pg_sleep(30);
COMMIT;
SQL
doomed=$!
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'cal_doomed' AND query LIKE '%pg_sleep%'"
cpsql main "$db" -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'cal_doomed'" >/dev/null
wait "$doomed" 2>/dev/null || true
$CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
is "$(cpsql main "$db" -At -F '|' -c "SELECT method, recovered_from_journal
	FROM cal_refresh_user_tokens('01C04')")" \
	"refresh|t" "the next call recovers from the journal (force refresh failing)"
$CAL_STANDIN_CTL reset
rt=$(cpsql main "$db" -At -c "SELECT \"calRefreshToken\" FROM public.\"CalendarIntegration\" WHERE \"userUlid\" = '01C04'")
is "$($CAL_STANDIN_CTL is-current 1204 "$rt")" current "...and the row ends current"
like "$(grep -c 'user "01C04": the row held a spent refresh token; the newest pair was recovered from the journal' "$CAL_WORK/main/server.log")" '^[1-9]' \
	"the recovery is explained in the log at LOG level"
# --- REPEATABLE READ: the row changed after the snapshot -------------------
$CAL_STANDIN_CTL reset
out_file=$CAL_WORK/rr.out
cpsql main "$db" -At -v ON_ERROR_STOP=0 >"$out_file" 2>&1 <<'SQL' &
SET application_name = 'cal_rr';
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM public."CalendarIntegration";
SELECT pg_sleep(1);
SELECT method FROM cal_refresh_user_tokens('01C05');
\echo sqlstate=:LAST_ERROR_SQLSTATE
ROLLBACK;
SQL
rr=$!
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'cal_rr' AND query LIKE '%pg_sleep%'"
is "$(cpsql main "$db" -At -c "SELECT method FROM cal_refresh_user_tokens('01C05')")" refresh \
	"another session refreshes the user after the snapshot was taken"
wait "$rr" || true
like "$(cat "$out_file")" "sqlstate=40001" \
	"the repeatable-read transaction gets 40001 at the row lock"
is "$($CAL_STANDIN_CTL calls --user 1205)" "refresh=1 force_refresh=0" \
	"...before calling Cal.com: no token was spent for it"
t_done
