#!/usr/bin/env bash
# Cancel, statement_timeout and pg_terminate_backend during a hung Cal.com
# call with cal_refresh.cancel_grace = 0: 57014 (or the end of the session)
# within 50 ms of the signal, and a backend that works afterwards, Cal.com
# handle included.  31_cancel_grace.sh covers the grace.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_cancel
make_test_db "$db"
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration" VALUES ('01CANCEL', 'a', 'rt-seed-701', now(), 701);
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 701 rt-seed-701

# Waits until the session named $1 sleeps in our wait (wait_event
# "Extension"), polling; fails after 10 s.
wait_for_extension_wait() {
	local i
	for i in $(seq 1 1000); do
		[ "$(cpsql main "$db" -At -c "SELECT count(*) FROM pg_stat_activity
			WHERE application_name = '$1' AND wait_event_type = 'Extension'")" = 1 ] &&
			return 0
		sleep 0.01
	done
	return 1
}

# --- pg_cancel_backend ----------------------------------------------------
$CAL_STANDIN_CTL fault refresh hang
out_file=$CAL_WORK/cancel.out
cpsql main "$db" -At -v ON_ERROR_STOP=0 >"$out_file" 2>&1 <<'SQL' &
SET application_name = 'cal_cancel_victim';
SET cal_refresh.timeout = '60s';
SET cal_refresh.cancel_grace = 0;
SELECT error_code FROM cal_refresh_user_tokens('01CANCEL');
\echo sqlstate=:LAST_ERROR_SQLSTATE
SELECT 'alive';
SELECT method FROM cal_refresh_user_tokens('01CANCEL');
SQL
victim=$!
if wait_for_extension_wait cal_cancel_victim; then
	ok "the call waits in a WaitEventSet (wait_event_type Extension)"
else
	not_ok "the call waits in a WaitEventSet (wait_event_type Extension)"
fi

# While it waits, pg_stat_activity shows no token of this user.
$CAL_STANDIN_CTL issued-tokens >"$CAL_WORK/tokens-now"
echo rt-seed-701 >>"$CAL_WORK/tokens-now"
activity=$(cpsql main "$db" -At -c "SELECT query FROM pg_stat_activity")
is "$(grep -c -F -f "$CAL_WORK/tokens-now" <<<"$activity" || true)" 0 \
	"pg_stat_activity holds no token during the call"

ms=$(signal_ms "$db" pg_cancel_backend cal_cancel_victim)
wait "$victim" || true
out=$(cat "$out_file")
like "$out" "sqlstate=57014" "pg_cancel_backend raises 57014"
like "$ms" '^[0-9]+$' "cancel time measured ($ms ms)"
[ "${ms:-9999}" -le 50 ] && ok "cancelled within 50 ms ($ms ms)" ||
	not_ok "cancelled within 50 ms ($ms ms)"
like "$out" $'alive\nrefresh' "the backend answers and refreshes again after the cancel"

# --- statement_timeout ------------------------------------------------------
$CAL_STANDIN_CTL fault refresh hang
out=$(cpsql main "$db" -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
SET cal_refresh.timeout = '60s';
SET cal_refresh.cancel_grace = 0;
SET statement_timeout = '300ms';
\timing on
SELECT error_code FROM cal_refresh_user_tokens('01CANCEL');
\timing off
\echo sqlstate=:LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT method FROM cal_refresh_user_tokens('01CANCEL');
SQL
)
like "$out" "sqlstate=57014" "statement_timeout raises 57014"
ms=$(sed -n 's/^Time: \([0-9]*\)\..*/\1/p' <<<"$out" | head -1)
like "$ms" '^[0-9]+$' "statement time measured ($ms ms)"
[ "${ms:-9999}" -ge 300 ] && [ "${ms:-9999}" -le 350 ] &&
	ok "statement_timeout of 300 ms ends the call within 50 ms ($ms ms)" ||
	not_ok "statement_timeout of 300 ms ends the call within 50 ms ($ms ms)"
like "$out" "refresh" "the session refreshes again after the timeout"

# --- pg_terminate_backend ---------------------------------------------------
$CAL_STANDIN_CTL fault refresh hang
cpsql main "$db" -At -v ON_ERROR_STOP=0 >"$out_file" 2>&1 <<'SQL' &
SET application_name = 'cal_terminate_victim';
SET cal_refresh.timeout = '60s';
SET cal_refresh.cancel_grace = 0;
SELECT error_code FROM cal_refresh_user_tokens('01CANCEL');
SQL
victim=$!
wait_for_extension_wait cal_terminate_victim || true
ms=$(signal_ms "$db" pg_terminate_backend cal_terminate_victim)
wait "$victim" || true
like "$(cat "$out_file")" "terminating connection due to administrator command" \
	"pg_terminate_backend ends the session"
[ "${ms:-9999}" -le 50 ] && ok "terminated within 50 ms ($ms ms)" ||
	not_ok "terminated within 50 ms ($ms ms)"
is "$(grep -c 'terminated by signal' "$CAL_WORK/main/server.log" || true)" 0 \
	"no backend crashed"
is "$(cpsql main "$db" -At -c "SELECT method FROM cal_refresh_user_tokens('01CANCEL')")" \
	"refresh" "a new session refreshes"
t_done
