#!/usr/bin/env bash
# cal_refresh_expiring_tokens_job, the procedure for pg_cron: batches that
# commit one by one, in "userUlid" order, each row visited once; refused
# inside a transaction block; a cancel loses only the batch in flight (the
# next run recovers its users by force refresh); two runs at once share the
# work without refreshing anyone twice; cal_refresh.job_max_runtime stops it
# starting new batches.  Stand-in users 5000-5999.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_job
make_test_db "$db"
table='public."CalendarIntegration"'
log_file=$CAL_WORK/main/server.log
cleanup() {
	cpsql main "$db" -At -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
		WHERE application_name LIKE 'cal_job_%'" >/dev/null 2>&1 || true
	$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true
}
trap cleanup EXIT

# add_users FIRST COUNT: due rows '01J<id>' holding rt-46-<id>, the same in
# the stand-in
add_users() {
	cpsql main "$db" -c "INSERT INTO $table SELECT '01J' || i, 'a', 'rt-46-' || i,
		now() - interval '1 minute', i FROM generate_series($1, $1 + $2 - 1) i" >/dev/null
	$CAL_STANDIN_CTL seed-many "$1" "$2" rt-46
}
fresh_count() {
	cpsql main "$db" -At -c "SELECT count(*) FROM $table
		WHERE \"calAccessTokenExpiresAt\" > now() + interval '50 minutes'"
}
check_current() {
	cpsql main "$db" -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
		FROM $table WHERE $1" | $CAL_STANDIN_CTL check-current | tail -1
}
# The job's LOG lines from this database written after byte $1 of the
# server log, without the " in N ms" tail.
log_size() { wc -c <"$log_file"; }
job_lines() {
	tail -c +"$(($1 + 1))" "$log_file" | grep -a "@$db LOG:  cal_refresh: job " |
		sed 's/.*LOG:  cal_refresh: //; s/ in [0-9]* ms$//' || true
}
# Polls SQL until it returns t; ~10 s at most.
wait_for() { poll_until "$db" "$1" 1000; }
# Until the stand-in has answered every request it received and no new one
# came in for 0.1 s (it still works off the requests of a cancelled backend,
# rotating their tokens); ~10 s at most.
wait_standin_idle() {
	local _ state last=none
	for _ in $(seq 1 100); do
		state=$($CAL_STANDIN_CTL requests | "$CAL_PYTHON" -c '
import json, sys
log = json.load(sys.stdin)["requests"]
print(len(log), "busy" if any(r["status"] is None for r in log) else "idle")')
		[ "$state" = "$last" ] && [ "${state#* }" = idle ] && return 0
		last=$state
		sleep 0.1
	done
	return 1
}

is "$(cpsql main "$db" -At -F '|' -c "SELECT current_setting('cal_refresh.job_max_runtime'), context
	FROM pg_settings WHERE name = 'cal_refresh.job_max_runtime'")" "4min|superuser" \
	"cal_refresh.job_max_runtime: default 4min, superuser only"
is "$(cpsql main "$db" -At -c "SELECT has_function_privilege('public',
	'cal_refresh_expiring_tokens_job(interval, integer)', 'EXECUTE')")" f "the procedure is closed to PUBLIC"

# --- per-batch commits, in keyset order -------------------------------------
add_users 5000 250
$CAL_STANDIN_CTL reset
mark=$(log_size)
out=$(cpsql main "$db" -At -c "CALL cal_refresh_expiring_tokens_job(batch_size => 100)" 2>&1) ||
	not_ok "the job ran" "$out"
is "$(job_lines "$mark")" "job batch 1: 100 due, 100 refreshed, 0 forced, 0 failed
job batch 2: 100 due, 100 refreshed, 0 forced, 0 failed
job batch 3: 50 due, 50 refreshed, 0 forced, 0 failed
job done: 3 batches, 250 due, 250 refreshed, 0 forced, 0 failed" \
	"250 due users, batch_size 100: batches of 100, 100 and 50, then the done line"
like "$(tail -c +"$((mark + 1))" "$log_file" | grep -a "@$db LOG:  cal_refresh: job done" || true)" \
	'in [0-9]+ ms$' "the done line gives the run time in ms"
is "$(fresh_count)" 250 "every row is fresh afterwards"
is "$($CAL_STANDIN_CTL calls)" "refresh=250 force_refresh=0" "each user refreshed once"
is "$(check_current "true")" "250 current, 0 not current" "every row holds its current refresh token"

# --- not inside a transaction block ------------------------------------------
cpsql main "$db" -c "UPDATE $table SET \"calAccessTokenExpiresAt\" = now() - interval '1 minute'
	WHERE \"calManagedUserId\" < 5005" >/dev/null
$CAL_STANDIN_CTL reset
out=$(cpsql main "$db" -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
BEGIN;
CALL cal_refresh_expiring_tokens_job();
\echo sqlstate=:LAST_ERROR_SQLSTATE
ROLLBACK;
SQL
)
like "$out" "sqlstate=2D000" "CALL inside BEGIN raises 2D000"
is "$($CAL_STANDIN_CTL calls)" "refresh=0 force_refresh=0" \
	"...before any request: no token was spent in a transaction that could not commit"
out=$(cpsql main "$db" -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
CREATE FUNCTION job_in_function() RETURNS void LANGUAGE plpgsql
AS $$ BEGIN CALL cal_refresh_expiring_tokens_job(); END $$;
SELECT job_in_function();
\echo sqlstate=:LAST_ERROR_SQLSTATE
DROP FUNCTION job_in_function();
SQL
)
like "$out" "sqlstate=2D000" "CALL from inside a function (an atomic context) raises 2D000 too"
is "$($CAL_STANDIN_CTL calls)" "refresh=0 force_refresh=0" "...before any request"

# --- a cancel in the middle: committed batches stay, the next run recovers -----
cpsql main "$db" -c "TRUNCATE $table" >/dev/null
add_users 5300 100
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL latency 200
mark=$(log_size)
cpsql main "$db" -At -v ON_ERROR_STOP=0 >"$CAL_WORK/job-cancel.out" 2>&1 <<'SQL' &
SET application_name = 'cal_job_cancel';
SET cal_refresh.max_concurrency = 4;
CALL cal_refresh_expiring_tokens_job(batch_size => 20);
\echo sqlstate=:LAST_ERROR_SQLSTATE
SQL
victim=$!
# Batches of 20 at 4 at a time and 200 ms each take about 1 s: wait for the
# first to commit (its 20 rows turn fresh for other sessions), then cancel.
if wait_for "SELECT count(*) >= 20 FROM $table
	WHERE \"calAccessTokenExpiresAt\" > now() + interval '50 minutes'"; then
	ok "the first batch committed while the job was running"
else
	not_ok "the first batch committed while the job was running"
fi
cpsql main "$db" -At -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'cal_job_cancel'" >/dev/null
wait "$victim" || true
is "$(grep -o 'sqlstate=.*' "$CAL_WORK/job-cancel.out")" "sqlstate=57014" "pg_cancel_backend ends the CALL with 57014"
$CAL_STANDIN_CTL latency 0
wait_standin_idle || not_ok "the stand-in worked off the cancelled requests"
fresh=$(fresh_count)
if [ "$fresh" -ge 20 ] && [ "$fresh" -lt 100 ] && [ $((fresh % 20)) -eq 0 ]; then
	ok "whole batches were committed, no half batch ($fresh fresh rows)"
else
	not_ok "whole batches were committed, no half batch ($fresh fresh rows)"
fi
is "$(job_lines "$mark" | grep -c '^job batch' || true)" "$((fresh / 20))" \
	"one log line per committed batch"
is "$(job_lines "$mark" | grep -c '^job done' || true)" 0 "no done line for the cancelled run"
is "$(check_current "\"calAccessTokenExpiresAt\" > now() + interval '50 minutes'")" \
	"$fresh current, 0 not current" "the committed rows hold the refresh token the stand-in considers current"
# Users of the cancelled batch whose pair Cal.com rotated: the cancel waited
# for those answers (cal_refresh.cancel_grace), so their stored token is
# spent but their pair is in the journal.
spent=$(cpsql main "$db" -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
	FROM $table WHERE \"calAccessTokenExpiresAt\" < now()" |
	$CAL_STANDIN_CTL check-current | grep -c 'not current (spent)' || true)
like "$spent" '^[1-9][0-9]*$' "users whose rotation was rolled back: $spent"
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
mark=$(log_size)
cpsql main "$db" -At -c "CALL cal_refresh_expiring_tokens_job()" >/dev/null 2>&1 ||
	not_ok "the second run succeeded"
due=$((100 - fresh))
is "$(job_lines "$mark" | grep '^job done')" \
	"job done: 1 batches, $due due, $due refreshed, 0 forced, 0 failed" \
	"a second run finishes the rest, recovering the $spent spent users from the journal"
is "$($CAL_STANDIN_CTL calls)" "refresh=$((due - spent)) force_refresh=0" \
	"...sending nothing for them: their journaled access tokens are fresh"
is "$(fresh_count)/$(check_current "true")" "100/100 current, 0 not current" \
	"every row ends fresh and current"

# --- two runs at once ----------------------------------------------------------
cpsql main "$db" -c "TRUNCATE $table" >/dev/null
add_users 5500 100
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL latency 100
mark=$(log_size)
twins=()
for s in 1 2; do
	cpsql main "$db" -At -v ON_ERROR_STOP=0 >"$CAL_WORK/job-twin$s.out" 2>&1 <<SQL &
SET application_name = 'cal_job_twin$s';
SET cal_refresh.max_concurrency = 4;
CALL cal_refresh_expiring_tokens_job(batch_size => 20);
\echo sqlstate=:LAST_ERROR_SQLSTATE
SQL
	twins+=($!)
done
wait "${twins[@]}" || true
$CAL_STANDIN_CTL latency 0
is "$(grep -h -o 'sqlstate=.*' "$CAL_WORK"/job-twin[12].out | paste -sd/)" "sqlstate=00000/sqlstate=00000" \
	"two runs at once both succeed"
done_lines=$(job_lines "$mark" | grep '^job done' || true)
is "$(wc -l <<<"$done_lines")" 2 "...each logs its done line"
totals=$(sed -n 's/^job done: [0-9]* batches, \([0-9]*\) due, \([0-9]*\) refreshed, \([0-9]*\) forced, \([0-9]*\) failed$/\1 \2 \3 \4/p' \
	<<<"$done_lines" | awk '{ d += $1; r += $2; f += $3; x += $4; if ($1 > 0) busy++ }
	END { printf "%d due, %d refreshed, %d forced, %d failed, %d runs with work", d, r, f, x, busy }')
is "$totals" "100 due, 100 refreshed, 0 forced, 0 failed, 2 runs with work" \
	"between them they refreshed each of the 100 users, and both did some of it"
per_user=$($CAL_STANDIN_CTL requests | "$CAL_PYTHON" -c '
import json, sys
from collections import Counter
log = json.load(sys.stdin)["requests"]
users = Counter(r["user_id"] for r in log if r["endpoint"] == "refresh")
print(len(users), max(users.values(), default=0), sum(1 for r in log if r["endpoint"] != "refresh"))')
is "$per_user" "100 1 0" "the stand-in saw 100 users refreshed once each, and no force refresh"
is "$(tail -c +"$((mark + 1))" "$log_file" | grep -a -c 'deadlock detected' || true)" 0 "no deadlock"
is "$(fresh_count)/$(check_current "true")" "100/100 current, 0 not current" \
	"every row ends fresh and current"

# --- cal_refresh.job_max_runtime --------------------------------------------
# A batch of 20 at 2 at a time and 250 ms each would take 2.5 s, longer than
# the 1 s allowed: the users whose turn comes after 1 s are not started
# (timeout, nothing sent), those under way finish, and no batch follows.
cpsql main "$db" -c "TRUNCATE $table" >/dev/null
add_users 5700 60
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL latency 250
mark=$(log_size)
out=$(cpsql main "$db" -At 2>&1 <<'SQL'
SET cal_refresh.job_max_runtime = '1s';
SET cal_refresh.max_concurrency = 2;
\timing on
CALL cal_refresh_expiring_tokens_job(batch_size => 20);
SQL
)
$CAL_STANDIN_CTL latency 0
ms=$(sed -n 's/^Time: \([0-9]*\)\..*/\1/p' <<<"$out" | head -1)
lines=$(job_lines "$mark")
n_ok=$(sed -n 's/^job batch 1: 20 due, \([0-9]*\) refreshed, 0 forced, 0 failed$/\1/p' <<<"$lines")
like "$lines" $'^job batch 1: 20 due, [0-9]+ refreshed, 0 forced, 0 failed\njob done: 1 batches, 20 due' \
	"job_max_runtime 1s and a 2.5 s batch: one batch, then the job stops"
like "$(tail -c +"$((mark + 1))" "$log_file" | grep -a -A1 'job batch 1' | grep -a DETAIL)" \
	"DETAIL:  $((20 - ${n_ok:-0})) not started: cal_refresh.job_max_runtime had passed; they are due again next run." \
	"...and says how many users it did not start"
[ "${n_ok:-0}" -ge 4 ] && [ "${n_ok:-20}" -le 12 ] &&
	ok "...having started users for 1 s only: $n_ok of 20 refreshed" ||
	not_ok "...having started users for 1 s only: $n_ok of 20 refreshed" "$lines"
[ "${ms:-0}" -ge 1000 ] && [ "${ms:-99999}" -lt 2000 ] &&
	ok "the run took the time allowed plus the users under way ($ms ms)" ||
	not_ok "the run took the time allowed plus the users under way ($ms ms)"
is "$(fresh_count)" "${n_ok:-x}" "as many rows are fresh as were refreshed"
is "$($CAL_STANDIN_CTL calls)" "refresh=${n_ok:-x} force_refresh=0" \
	"nothing was sent for the users not started"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM $table
	WHERE \"calAccessTokenExpiresAt\" < now() + interval '10 minutes'")" "$((60 - ${n_ok:-0}))" \
	"the others are left due"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM cal_refresh_failure")" 0 \
	"users never tried are not recorded as failing"
out=$(cpsql main "$db" -At -v ON_ERROR_STOP=0 -c "CREATE ROLE job_nobody" \
	-c "SET ROLE job_nobody" -c "SET cal_refresh.job_max_runtime = '1h'" 2>&1 || true)
like "$out" "permission denied to set parameter" "only a superuser may change job_max_runtime"
cpsql main "$db" -c "DROP ROLE job_nobody" -c "TRUNCATE $table" >/dev/null
$CAL_STANDIN_CTL reset
t_done
