#!/usr/bin/env bash
# cal_refresh.cancel_grace: a cancel, statement_timeout or termination that
# lands while a refresh request is on the wire waits (at most the grace) for
# Cal.com's answer, journals the pair it carries, then takes effect; the
# next call recovers that pair with no force refresh.  With nothing on the
# wire the cancel stays prompt; a hung request is given up after the grace.
# Force refresh fails for good throughout, so that only the journal can
# recover a pair.  Stand-in users 7100-7119 and 7200-7499.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_grace
make_test_db "$db"
trap '$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
table='public."CalendarIntegration"'

# reset_user ID: the row of user 01G<ID> holds the stand-in's current token.
reset_user() {
	$CAL_STANDIN_CTL seed "$1" "rt-grace-$1"
	cpsql main "$db" -c "INSERT INTO $table VALUES ('01G$1', 'a', 'rt-grace-$1', now(), $1)
		ON CONFLICT (\"userUlid\") DO UPDATE SET \"calRefreshToken\" = 'rt-grace-$1'" >/dev/null
}
# victim NAME SQL...: runs the statements in the background as session NAME;
# the output goes to $CAL_WORK/NAME.out and the pid to $victim.
victim() {
	local name=$1
	shift
	printf '%s\n' "SET application_name = '$name';" "$@" '\echo sqlstate=:LAST_ERROR_SQLSTATE' |
		cpsql main "$db" -At -v ON_ERROR_STOP=0 >"$CAL_WORK/$name.out" 2>&1 &
	victim=$!
}
# The request of the session is on the wire: the stand-in saw it arrive
# (its answer is delayed) while the session waits in our WaitEventSet.
wait_in_flight() { in_flight "$db" "$1" "${2:-1}"; }
# recovered ID: the next refresh of 01G<ID> recovers the journaled pair,
# sends no force refresh, and leaves the row current.
recovered() {
	local what=$2 out rt
	$CAL_STANDIN_CTL latency 0
	out=$(cpsql main "$db" -At -F '|' -c "SELECT method, recovered_from_journal
		FROM cal_refresh_user_tokens('01G$1')")
	is "$out" "refresh|t" "$what: the next call recovers the pair from the journal"
	rt=$(cpsql main "$db" -At -c "SELECT \"calRefreshToken\" FROM $table WHERE \"userUlid\" = '01G$1'")
	is "$($CAL_STANDIN_CTL is-current "$1" "$rt")" current "$what: the row ends current"
	is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "$what: no force refresh"
}
between() {
	if [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; then
		ok "$4 ($1 ms)"
	else
		not_ok "$4 ($1 ms)" "wanted between $2 and $3 ms"
	fi
}
fresh() { standin_force_fails; }

is "$(cpsql main "$db" -At -F '|' -c "SELECT boot_val, unit, context FROM pg_settings
	WHERE name = 'cal_refresh.cancel_grace'")" "1000|ms|user" \
	"cal_refresh.cancel_grace: 1 s by default, settable by anyone"

# --- pg_cancel_backend while the answer is on its way ----------------------
fresh
reset_user 7101
$CAL_STANDIN_CTL latency 400
victim g_cancel "SELECT method FROM cal_refresh_user_tokens('01G7101');"
wait_in_flight g_cancel || not_ok "the request went out"
ms=$(signal_ms "$db" pg_cancel_backend g_cancel)
wait "$victim" || true
like "$(cat "$CAL_WORK/g_cancel.out")" "sqlstate=57014" "the cancel still raises 57014"
between "$ms" 150 950 "the cancel waited for the answer, not for the whole grace"
like "$(cat "$CAL_WORK/main/server.log")" "cancel held back for up to 1000 ms while 1 request" \
	"the server log says the cancel was held back"
recovered 7101 "cancel"

# --- statement_timeout while the answer is on its way -----------------------
fresh
reset_user 7102
$CAL_STANDIN_CTL latency 400
out=$(cpsql main "$db" -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
SET statement_timeout = '100ms';
\timing on
SELECT method FROM cal_refresh_user_tokens('01G7102');
\timing off
\echo sqlstate=:LAST_ERROR_SQLSTATE
SQL
)
like "$out" "canceling statement due to statement timeout" "statement_timeout still raises"
like "$out" "sqlstate=57014" "... with 57014"
between "$(sed -n 's/^Time: \([0-9]*\)\..*/\1/p' <<<"$out" | head -1)" 380 950 \
	"statement_timeout of 100 ms waited for the answer due after 400 ms"
recovered 7102 "statement_timeout"

# --- pg_terminate_backend while the answer is on its way --------------------
fresh
reset_user 7103
$CAL_STANDIN_CTL latency 400
victim g_terminate "SELECT method FROM cal_refresh_user_tokens('01G7103');"
wait_in_flight g_terminate || not_ok "the request went out"
ms=$(signal_ms "$db" pg_terminate_backend g_terminate)
wait "$victim" || true
like "$(cat "$CAL_WORK/g_terminate.out")" "terminating connection due to administrator command" \
	"pg_terminate_backend still ends the session"
between "$ms" 150 950 "the termination waited for the answer"
recovered 7103 "pg_terminate_backend"

# --- the old way: cal_refresh.cancel_grace = 0 -----------------------------
fresh
reset_user 7104
$CAL_STANDIN_CTL latency 400
victim g_nograce "SET cal_refresh.cancel_grace = 0;" \
	"SELECT method FROM cal_refresh_user_tokens('01G7104');"
wait_in_flight g_nograce || not_ok "the request went out"
ms=$(signal_ms "$db" pg_cancel_backend g_nograce)
wait "$victim" || true
like "$(cat "$CAL_WORK/g_nograce.out")" "sqlstate=57014" "grace 0: 57014"
between "$ms" 0 50 "grace 0: the cancel takes effect at once"
$CAL_STANDIN_CTL latency 0
for _ in $(seq 1 500); do
	[ "$($CAL_STANDIN_CTL token-state rt-grace-7104)" = spent ] && break
	sleep 0.01
done
is "$(cpsql main "$db" -At -F '|' -c "SELECT coalesce(recovered_from_journal, false), success
	FROM cal_refresh_user_tokens('01G7104')")" "f|f" \
	"grace 0: Cal.com rotated the pair, nothing journaled it, and it is lost"

# --- a hung request is given up after the grace ----------------------------
fresh
reset_user 7105
$CAL_STANDIN_CTL fault refresh hang
victim g_hang "SET cal_refresh.cancel_grace = '300ms';" \
	"SELECT method FROM cal_refresh_user_tokens('01G7105');"
wait_in_flight g_hang || not_ok "the request went out"
ms=$(signal_ms "$db" pg_cancel_backend g_hang)
wait "$victim" || true
like "$(cat "$CAL_WORK/g_hang.out")" "sqlstate=57014" "hung request: 57014"
between "$ms" 280 450 "hung request: given up after the grace of 300 ms"

# --- nothing on the wire: the cancel stays prompt --------------------------
# A 503 asking for a retry in 30 s: the call sleeps between attempts.
fresh
reset_user 7106
$CAL_STANDIN_CTL fault refresh status --status 503 --retry-after 30 --count 1
victim g_idle "SET cal_refresh.timeout = '60s';" \
	"SELECT method FROM cal_refresh_user_tokens('01G7106');"
wait_in_flight g_idle || not_ok "the first attempt went out"
for _ in $(seq 1 500); do
	$CAL_STANDIN_CTL requests | grep -q '"status": 503' && break
	sleep 0.01
done
ms=$(signal_ms "$db" pg_cancel_backend g_idle)
wait "$victim" || true
like "$(cat "$CAL_WORK/g_idle.out")" "sqlstate=57014" "waiting to retry: 57014"
between "$ms" 0 50 "waiting to retry, with nothing on the wire: the cancel is prompt"

# --- inside PL/pgSQL EXCEPTION blocks (subtransactions) --------------------
# Since PostgreSQL 17 a WaitEventSet belongs to a resource owner: one that
# a subtransaction's abort frees must not be ours to free again.  A cancel
# caught by the block (grace 0, then a held cancel), a failing call caught
# by it, then further calls in the same session.
fresh
reset_user 7107
reset_user 7108
$CAL_STANDIN_CTL fault refresh hang --count 1
$CAL_STANDIN_CTL fault refresh latency --latency-ms 1500 --count 1
$CAL_STANDIN_CTL fault refresh status --status 500 --count 1
victim g_subxact "SET cal_refresh.cancel_grace = 0;" \
	"DO \$\$ BEGIN PERFORM cal_refresh_user_tokens('01G7107');
	EXCEPTION WHEN query_canceled THEN RAISE NOTICE 'caught: %', SQLERRM; END \$\$;" \
	"SET cal_refresh.cancel_grace = '5s';" \
	"DO \$\$ BEGIN PERFORM cal_refresh_user_tokens('01G7107');
	EXCEPTION WHEN query_canceled THEN RAISE NOTICE 'caught again: %', SQLERRM; END \$\$;" \
	"SET cal_refresh.max_retries = 0;" \
	"UPDATE $table SET \"calAccessTokenExpiresAt\" = now() - interval '1 minute'
	WHERE \"userUlid\" = '01G7108';" \
	"DO \$\$ BEGIN PERFORM cal_access_token('01G7108');
	EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'caught a failure: %', SQLSTATE; END \$\$;" \
	"SELECT 'after=' || method || '/' || recovered_from_journal FROM cal_refresh_user_tokens('01G7107');"
cancel() { cpsql main "$db" -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE application_name = '$1'" >/dev/null; }
wait_in_flight g_subxact || not_ok "the first request went out"
cancel g_subxact
# The second request is answered after 1.5 s, within the grace of 5 s.
wait_in_flight g_subxact 2 || not_ok "the second request went out"
cancel g_subxact
wait "$victim" || true
out=$(cat "$CAL_WORK/g_subxact.out")
like "$out" "caught: canceling statement due to user request" \
	"a cancel at once (grace 0) is caught by an EXCEPTION block"
like "$out" "caught again: canceling statement due to user request" \
	"a held cancel is caught by an EXCEPTION block after the answer came"
like "$out" "caught a failure: 58000" "a failing call is caught by an EXCEPTION block"
like "$out" "after=refresh/true" \
	"the session refreshes afterwards, with the pair the held cancel journaled"
is "$(grep -c -E 'terminated by signal|double free|invalid memory alloc|resource .* leaked' \
	"$CAL_WORK/main/server.log" || true)" 0 "no backend crashed, nothing leaked"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "no force refresh"

# --- a job over 300 users at 200 ms, cancelled mid-run ---------------------
fresh
cpsql main "$db" -c "DELETE FROM $table" >/dev/null
$CAL_STANDIN_CTL seed-many 7200 300 rt-gj
cpsql main "$db" -c "INSERT INTO $table SELECT '01J' || i, 'a', 'rt-gj-' || i,
	now() - interval '1 minute', i FROM generate_series(7200, 7499) i" >/dev/null
$CAL_STANDIN_CTL latency 200
victim g_job "CALL cal_refresh_expiring_tokens_job();"
# Mid-run: the first batch of 100 committed, the second under way.
for _ in $(seq 1 1000); do
	n=$($CAL_STANDIN_CTL calls refresh | sed 's/refresh=//')
	[ "$n" -ge 150 ] && break
	sleep 0.01
done
ms=$(signal_ms "$db" pg_cancel_backend g_job)
wait "$victim" || true
like "$(cat "$CAL_WORK/g_job.out")" "sqlstate=57014" "the job was cancelled mid-run"
between "$ms" 0 950 "the cancelled job ended within the grace"
$CAL_STANDIN_CTL latency 0
sent=$($CAL_STANDIN_CTL calls refresh | sed 's/refresh=//')
stale=$(cpsql main "$db" -At -c "SELECT count(*) FROM $table t
	JOIN cal_refresh_journal j ON j.user_ulid = t.\"userUlid\"
	WHERE j.spent_token_sha256 = sha256(convert_to(t.\"calRefreshToken\", 'UTF8'))")
like "$stale" '^[1-9][0-9]*$' "the cancel rolled back pairs of $stale users, all journaled"
cpsql main "$db" -c "CALL cal_refresh_expiring_tokens_job()" >/dev/null
like "$(grep 'job done' "$CAL_WORK/main/server.log" | tail -1)" ", 0 forced, 0 failed" \
	"the next run forces nobody and fails nobody"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "no force refresh was sent"
is "$(cpsql main "$db" -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
	FROM $table WHERE \"userUlid\" LIKE '01J%'" | $CAL_STANDIN_CTL check-current | tail -1)" \
	"300 current, 0 not current" "every row ends current"
sent_after=$($CAL_STANDIN_CTL calls refresh | sed 's/refresh=//')
is "$((sent_after - sent))" "$((300 - sent))" \
	"the next run sent a refresh only for the users the first never reached"
t_done
