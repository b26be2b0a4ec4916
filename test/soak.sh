#!/usr/bin/env bash
# make soak: looks for the cases nobody listed.  For SOAK_MINUTES (5 by
# default), SOAK_SESSIONS sessions call cal_refresh_user_tokens and
# cal_access_token over SOAK_USERS users, some in transactions that roll
# back, in savepoints, in prepared transactions, under a short
# statement_timeout or client_connection_check_interval; the job runs every
# few seconds; and a chaos loop, driven by SOAK_SEED (printed; the same seed
# replays the same schedule), cancels and terminates sessions, kills
# clients mid-call, kills the journal writer, injects Cal.com faults and
# latency, and stops the server with -m immediate and starts it again.
# Force refresh fails throughout, so a lost pair cannot hide.
#
# At the end every user's row, after one more refresh that adopts what the
# journal holds, must hold Cal.com's current pair.  A pair lost to an
# immediate shutdown is allowed when it was issued within the window README
# states (a request on the wire, a batch's pair not yet handed over, a
# hand-over not yet written and flushed): those are counted apart, with the
# time from the issue to the stop.  Sessions commit synchronously, as in
# production.  No token may be
# in the server log, and no backend may have crashed.  Run by test/harness.sh
# soak (the cluster and the stand-in are up); exits non-zero on a finding.
set -uo pipefail
. "$CAL_TOP/test/lib.sh"

minutes=${SOAK_MINUTES:-5}
sessions=${SOAK_SESSIONS:-4}
users=${SOAK_USERS:-100}
seed=${SOAK_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
# A pair issued this long before an immediate shutdown may be lost to it
# (3 x wal_writer_delay, plus the writer's own commit): README's window.
crash_window_ms=${SOAK_CRASH_WINDOW_MS:-1000}
db=t_soak
table='public."CalendarIntegration"'
dir=$CAL_WORK/soak
mkdir -p "$dir"
chmod 777 "$dir"
log=$CAL_WORK/main/server.log
first_user=9000
echo "soak: seed $seed, $minutes min, $sessions sessions, $users users"

# Commits as production makes them (the test clusters' default is off):
# a pair whose caller committed is then as durable as that commit.
cpsql main postgres -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null
make_test_db "$db"
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many $first_user "$users" rt-soak
$CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
cpsql main "$db" -c "INSERT INTO $table SELECT '01S' || i, 'a', 'rt-soak-' || i,
	now() - interval '1 minute', i FROM generate_series($first_user, $((first_user + users - 1))) i" >/dev/null
end=$((SECONDS + minutes * 60))

count() { echo "$1" >>"$dir/faults"; }

# One statement list, as session NAME, in a psql of its own whose pid the
# chaos loop can find; errors are expected and ignored.
run_session() {
	local name=$1
	shift
	printf '%s\n' "SET application_name = '$name';" "$@" >"$dir/$name.sql"
	"$PG_BIN/psql" -X -q -At -h "$MAIN_HOST" -p "$MAIN_PORT" -U postgres -d "$db" \
		-f "$dir/$name.sql" >>"$dir/$name.out" 2>&1 &
	echo $! >"$dir/$name.pid"
	wait $! 2>/dev/null
	rm -f "$dir/$name.pid"
}

worker() {
	local k=$1 n=0 user action gid
	RANDOM=$((seed * 31 + k))
	while [ $SECONDS -lt $end ]; do
		n=$((n + 1))
		user="01S$((first_user + RANDOM % users))"
		action=$((RANDOM % 8))
		gid="soak_${k}_$n"
		case $action in
			0 | 1) run_session "w$k" "SELECT success FROM cal_refresh_user_tokens('$user');" ;;
			2) run_session "w$k" "BEGIN;" "SELECT success FROM cal_refresh_user_tokens('$user');" "ROLLBACK;" ;;
			3) run_session "w$k" "BEGIN;" "SAVEPOINT a;" \
				"SELECT success FROM cal_refresh_user_tokens('$user');" "ROLLBACK TO a;" "COMMIT;" ;;
			4) run_session "w$k" "SELECT length(cal_access_token('$user', '55 minutes')) > 0;" ;;
			5) run_session "w$k" "BEGIN;" "SELECT success FROM cal_refresh_user_tokens('$user');" \
				"PREPARE TRANSACTION '$gid';" \
				"$([ $((RANDOM % 2)) = 0 ] && echo COMMIT || echo ROLLBACK) PREPARED '$gid';" ;;
			6) count statement_timeout
				run_session "w$k" "SET statement_timeout = '$((1 + RANDOM % 400))ms';" \
					"SELECT success FROM cal_refresh_user_tokens('$user');" ;;
			7) run_session "w$k" "SET client_connection_check_interval = '100ms';" \
				"SELECT success FROM cal_refresh_user_tokens('$user');" ;;
		esac
	done
	echo "$n" >"$dir/w$k.actions"
}

# Prepared transactions a killed client left behind hold their rows: gone
# after 5 s, as a DBA would end them.
end_orphans() {
	cpsql main "$db" -At -c "SELECT gid FROM pg_prepared_xacts
		WHERE prepared < now() - interval '${1:-5} seconds'" 2>/dev/null |
		while read -r gid; do
			cpsql main "$db" -c "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1
		done
}

job_loop() {
	while [ $SECONDS -lt $end ]; do
		end_orphans
		run_session job "UPDATE $table SET \"calAccessTokenExpiresAt\" = now() - interval '1 minute'
			WHERE random() < 0.1;" "CALL cal_refresh_expiring_tokens_job();"
		sleep 3
	done
}

# A backend of the soak's sessions, chosen by the chaos loop's RANDOM.
victim_pid() {
	cpsql main "$db" -At -c "SELECT pid FROM pg_stat_activity
		WHERE application_name LIKE 'w%' OR application_name = 'job'
		ORDER BY pid OFFSET $((RANDOM % sessions)) LIMIT 1" 2>/dev/null
}

# Stops the server with -m immediate and starts it again; notes when the
# stop began and when it was over (a backend may still send a request in
# between).
restart_server() {
	local began
	began=$(date +%s%3N)
	as_pg "$PG_BIN/pg_ctl" -D "$MAIN_DATA" -m immediate -w stop >/dev/null 2>&1
	echo "$began $(date +%s%3N)" >>"$dir/crashes"
	as_pg "$PG_BIN/pg_ctl" -D "$MAIN_DATA" -l "$log" -w -t 120 start >/dev/null 2>&1
}

chaos() {
	local pid f last_crash=$SECONDS
	RANDOM=$seed
	while [ $SECONDS -lt $end ]; do
		sleep "$(printf '0.%03d' $((300 + RANDOM % 700)))"
		case $((RANDOM % 10)) in
			0 | 1) pid=$(victim_pid)
				[ -n "$pid" ] && cpsql main "$db" -c "SELECT pg_cancel_backend($pid)" >/dev/null 2>&1 &&
					count cancel ;;
			2) pid=$(victim_pid)
				[ -n "$pid" ] && cpsql main "$db" -c "SELECT pg_terminate_backend($pid)" >/dev/null 2>&1 &&
					count terminate ;;
			3) f=$(ls "$dir"/w*.pid 2>/dev/null | head -n $((1 + RANDOM % sessions)) | tail -1)
				[ -n "$f" ] && kill -9 "$(cat "$f" 2>/dev/null)" 2>/dev/null && count client_killed ;;
			4) cpsql main "$db" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE backend_type = 'cal_refresh journal writer'" >/dev/null 2>&1 &&
					count writer_killed ;;
			5) $CAL_STANDIN_CTL fault refresh status --status 500 --count 1 && count standin_500 ;;
			6) $CAL_STANDIN_CTL fault refresh status --status 429 --count 1 && count standin_429 ;;
			7) $CAL_STANDIN_CTL fault refresh reset --count 1 && count standin_reset ;;
			8) $CAL_STANDIN_CTL latency $((RANDOM % 800)) && count latency ;;
			9) if [ $((SECONDS - last_crash)) -ge 90 ]; then
					restart_server
					count immediate_shutdown
					last_crash=$SECONDS
				fi ;;
		esac
	done
}

: >"$dir/faults"
: >"$dir/crashes"
pids=""
for k in $(seq 1 "$sessions"); do
	worker "$k" &
	pids="$pids $!"
done
job_loop &
pids="$pids $!"
chaos &
pids="$pids $!"
for p in $pids; do wait "$p"; done

# --- the verdict ---------------------------------------------------------
# What Cal.com saw, kept; then its faults cleared (force refresh still fails).
$CAL_STANDIN_CTL requests >"$dir/requests.json"
forced_before=$($CAL_STANDIN_CTL calls force_refresh | sed 's/force_refresh=//')
refreshes=$($CAL_STANDIN_CTL calls refresh | sed 's/refresh=//')
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
end_orphans 0
cpsql main "$db" -At -c "SELECT ok FROM cal_refresh_check() WHERE \"check\" = 'journal'" >/dev/null
cpsql main "$db" -At -c "SELECT count(*) FROM generate_series($first_user, $((first_user + users - 1))) i,
	cal_refresh_user_tokens('01S' || i)" >/dev/null 2>&1
not_current=$(cpsql main "$db" -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\" FROM $table" |
	$CAL_STANDIN_CTL check-current)
summary=$(tail -1 <<<"$not_current")
lost_users=$(head -n -1 <<<"$not_current" | awk '{print $1}' | sort -u)

# A lost user is an immediate shutdown's when its last pair was issued
# (its last refresh answered 200) while the server went down: answered
# after the stop (the request was on the wire), or at most the window
# before it (a pair handed over and not yet written and flushed).
crash_lost=0
unexplained=0
for u in $lost_users; do
	[[ $u =~ ^[0-9]+$ ]] || continue
	read -r sent answered < <("$CAL_PYTHON" - "$dir/requests.json" "$u" <<'PY'
import json, sys
reqs = json.load(open(sys.argv[1]))["requests"]
ok = [r for r in reqs if str(r.get("user_id")) == sys.argv[2]
      and r.get("status") == 200 and r.get("endpoint") in ("refresh", "force_refresh")]
last = max(ok, key=lambda r: r["t"]) if ok else None
print(int(last["t"] * 1000) if last else 0,
      int(last.get("answered", last["t"]) * 1000) if last else 0)
PY
)
	explained=no
	while read -r crash stopped; do
		[ -n "$crash" ] || continue
		if [ "$sent" -gt 0 ] && [ "$sent" -le "$stopped" ] &&
			[ "$answered" -ge $((crash - crash_window_ms)) ]; then
			if [ "$answered" -ge "$crash" ]; then
				echo "soak: user $u lost at an immediate shutdown: its request was on the wire"
			else
				echo "soak: user $u lost at an immediate shutdown, answered $((crash - answered)) ms before it"
			fi
			explained=yes
			break
		fi
	done <"$dir/crashes"
	if [ "$explained" = yes ]; then
		crash_lost=$((crash_lost + 1))
	else
		unexplained=$((unexplained + 1))
		echo "soak: user $u lost, not at a shutdown (last pair sent at $sent, answered at $answered ms)"
	fi
done
forced=$($CAL_STANDIN_CTL calls force_refresh | sed 's/force_refresh=//')
$CAL_STANDIN_CTL issued-tokens >"$dir/issued"
tokens_in_log=$(grep -c -F -f "$dir/issued" "$log" || true)
crashed=$(grep -c 'terminated by signal' "$log" || true)

echo "soak: seed $seed, $minutes min: $refreshes refreshes sent; faults injected:"
sort "$dir/faults" | uniq -c | sed 's/^/soak:   /'
echo "soak: rows: $summary"
echo "soak: lost at an immediate shutdown, within the window: $crash_lost"
echo "soak: lost otherwise: $unexplained"
echo "soak: force refreshes sent: $forced_before during the soak, $forced in the final pass"
echo "soak: tokens in the server log: $tokens_in_log; backends crashed: $crashed"
[ "$unexplained" -eq 0 ] && [ "$tokens_in_log" -eq 0 ] && [ "$crashed" -eq 0 ]
