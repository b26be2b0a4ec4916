#!/usr/bin/env bash
# A hostile or failing server: a retried 503, an outage behind a
# maintenance page (circuit breaker, no backoff), credentials echoed back
# JSON-escaped, absurd and missing rate-limit headers, calls cancelled
# while they hold a request slot, and a proxy in the server's environment.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_hostile
make_test_db "$db"

# --- a 503 with Retry-After: 1 is retried, and the refresh succeeds ------
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 1701 rt-seed-1701
cpsql main "$db" -c "INSERT INTO public.\"CalendarIntegration\" VALUES
	('01RETRY', 'at-old', 'rt-seed-1701', now(), 1701)" >/dev/null
$CAL_STANDIN_CTL fault refresh status --status 503 --retry-after 1
out=$(cpsql main "$db" -At -F '|' -c "SELECT success, method, coalesce(error, '')
	FROM cal_refresh_user_tokens('01RETRY')")
is "$out" "t|refresh|" "a 503 with Retry-After: 1 ends success = true, method = 'refresh'"
is "$($CAL_STANDIN_CTL calls)" "refresh=2 force_refresh=0" "after one retry, and no force refresh"

# --- an outage: a maintenance page (HTTP 200, text/html) on both ---------
# endpoints.  The job's breaker stops it after a handful of failures: at
# most two requests per concurrent slot, nobody backed off, one LOG line;
# once Cal.com is back, the next run refreshes everyone.
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 2001 150 rt-out
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration"
SELECT '01OUT' || lpad(i::text, 3, '0'), 'at-old', 'rt-out-' || (2000 + i),
	   now() - interval '1 minute', 2000 + i
FROM generate_series(1, 150) i;
SQL
$CAL_STANDIN_CTL fault any html --status 200 --count -1
log_file=$CAL_WORK/main/server.log
log_start=$(wc -l <"$log_file")
cpsql main "$db" -c "SET cal_refresh.max_concurrency = 32" \
	-c "CALL cal_refresh_expiring_tokens_job(batch_size => 50)" >/dev/null
sent=$(( $($CAL_STANDIN_CTL calls | sed 's/[a-z_]*=//g; s/ /+/g') ))
[ "$sent" -le 64 ] && ok "the outage cost $sent requests (at most 2 per slot of 32)" ||
	not_ok "the outage cost at most 64 requests" "sent: $sent"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "no force refresh into an outage"
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM cal_refresh_failure
	WHERE user_ulid LIKE '01OUT%' AND next_attempt_at > now()")" 0 "nobody is backed off"
is "$(cpsql main "$db" -At -c "SELECT count(*) <= 32 FROM cal_refresh_failure
	WHERE user_ulid LIKE '01OUT%'")" t "users not tried are not recorded"
run_log=$(tail -n +"$((log_start + 1))" "$log_file")
is "$(grep -c 'Cal.com is failing (.*); the job stops this run' <<<"$run_log")" 1 \
	"one LOG line says Cal.com is failing"
like "$(grep 'Cal.com is failing (' <<<"$run_log")" 'non-JSON body' "it says how"
is "$(grep -c 'job batch 2:' <<<"$run_log" || true)" 0 "the job started no second batch"
$CAL_STANDIN_CTL reset
cpsql main "$db" -c "CALL cal_refresh_expiring_tokens_job(batch_size => 50)" >/dev/null
is "$(cpsql main "$db" -At -c "SELECT count(*) FROM public.\"CalendarIntegration\"
	WHERE \"userUlid\" LIKE '01OUT%' AND \"calAccessToken\" <> 'at-old'")" 150 \
	"after the outage, the next run refreshes all 150"
is "$($CAL_STANDIN_CTL calls)" "refresh=150 force_refresh=0" "with one request each"

# --- credentials echoed back JSON-escaped (\/, \u0022, \\, ...) ----------
# The secret and the refresh token hold / + " \ ; the server writes every
# such character as a \u escape, so the raw body never holds them.  The
# description is withheld from the result, the log and the status.
$CAL_STANDIN_CTL reset
saved_secret=$CAL_WORK/secret.saved
cp -p "$CAL_SECRET_FILE" "$saved_secret"
special_secret='s3cr/et+"with\back\\slash-'$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$special_secret" >"$CAL_SECRET_FILE"
cpsql main "$db" -c "INSERT INTO public.\"CalendarIntegration\" VALUES
	('01ECHO', 'at-old', \$\$rt/+\"\\x-echo\$\$, now(), NULL)" >/dev/null
log_start=$(wc -l <"$log_file")
$CAL_STANDIN_CTL fault refresh echo --status 400 --escape
out=$(cpsql main "$db" -At -F '|' -c "SELECT error_code, error FROM cal_refresh_user_tokens('01ECHO')")
is "$out" "no_managed_user_id|refresh failed: HTTP 400: error description withheld: it quoted a credential, and force refresh is impossible: no \"calManagedUserId\" is stored" \
	"an escaped echo of the secret is withheld"
$CAL_STANDIN_CTL fault any echo --status 503 --escape --count -1
cpsql main "$db" -c "UPDATE public.\"CalendarIntegration\" SET \"calAccessTokenExpiresAt\" = now()
	WHERE \"userUlid\" = '01ECHO'" -c "DELETE FROM cal_refresh_failure" >/dev/null
out=$(cpsql main "$db" -At -F '|' -c "SELECT user_ulid, error FROM cal_refresh_expiring_tokens()
	WHERE user_ulid = '01ECHO'")
like "$out" '^01ECHO\|refresh failed: HTTP 503: error description withheld: it quoted a credential' \
	"in a batch too"
status=$(cpsql main "$db" -At -c "SELECT last_error FROM cal_refresh_status() WHERE user_ulid = '01ECHO'")
like "$status" 'withheld' "cal_refresh_status() shows the withheld description"
run_log=$(tail -n +"$((log_start + 1))" "$log_file")
is "$(grep -c -F -e 's3cr/et' -e 'rt/+' <<<"$run_log" || true)" 0 \
	"neither the secret nor the token reaches the log"
is "$(grep -c -F 'request rejected by policy' <<<"$run_log$out$status" || true)" 0 \
	"nor does any of the echo"
# The OAuth2 flow sends the secret in a form body, percent-encoded
# (s3cr%2Fet%2B%22...): a proxy quoting that body back is withheld too.
$CAL_STANDIN_CTL reset
cpsql main "$db" -c "UPDATE public.\"CalendarIntegration\" SET \"calRefreshToken\" = \$\$rt/+\"\\x-echo\$\$
	WHERE \"userUlid\" = '01ECHO'" -c "DELETE FROM cal_refresh_failure" >/dev/null
log_start=$(wc -l <"$log_file")
$CAL_STANDIN_CTL fault oauth2_token echo --status 400
out=$(cpsql main "$db" -At -F '|' -c "SET cal_refresh.flow = oauth2" \
	-c "SELECT error_code, error FROM cal_refresh_user_tokens('01ECHO')" | grep -v '^SET$')
like "$out" '^calcom_rejected\|refresh failed: HTTP 400: error description withheld: it quoted a credential' \
	"OAuth2: an echo of the form body, secret percent-encoded, is withheld"
run_log=$(tail -n +"$((log_start + 1))" "$log_file")
is "$(grep -c -F -e 's3cr' -e 'rt%2F' -e 'rt/+' <<<"$run_log$out" || true)" 0 \
	"...and neither the secret nor the token reaches the log, in any encoding"
cp -p "$saved_secret" "$CAL_SECRET_FILE"
$CAL_STANDIN_CTL reset

# --- rate-limit headers, on a cluster of their own (a pause outlives a ---
# test in shared memory, so each case restarts it).
cluster_start rl yes "cal_refresh.max_requests_per_minute = 6000"
rl_restart() {
	as_pg "$PG_BIN/pg_ctl" -D "$RL_DATA" -w -t 60 -m fast restart \
		-l "$CAL_WORK/rl/server.log" >/dev/null
}
cpsql rl postgres >/dev/null <<'SQL'
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO public."CalendarIntegration"
SELECT '01RL' || i, 'at-old', 'rt-rl-' || (1710 + i), now(), 1710 + i
FROM generate_series(1, 9) i;
CREATE ROLE rl_app LOGIN;
GRANT SELECT, UPDATE ON public."CalendarIntegration" TO rl_app;
GRANT EXECUTE ON FUNCTION cal_refresh_user_tokens(text) TO rl_app;
SQL
for i in $(seq 1 9); do $CAL_STANDIN_CTL seed $((1710 + i)) "rt-rl-$((1710 + i))"; done

# refresh_after_429 USER TIMEOUT: error_code (or ok) and elapsed ms of a
# refresh with that cal_refresh.timeout.
refresh_with_timeout() {
	cpsql rl postgres -At -F '|' -c "SET cal_refresh.timeout = '$2'" \
		-c "SELECT coalesce(error_code, 'ok') FROM cal_refresh_user_tokens('$1')" |
		grep -v '^SET$'
}
elapsed_ms() {
	local start=$EPOCHREALTIME out
	out=$("$@")
	printf '%s %d\n' "$out" "$(( (${EPOCHREALTIME/./} - ${start/./}) / 1000 ))"
}

# An absurd Retry-After pauses the cluster for a minute at most: a refresh
# given 64 s may wait for its slot, one given 50 s may not.
$CAL_STANDIN_CTL fault refresh status --status 429 --retry-after 9223372039002259
is "$(refresh_with_timeout 01RL1 10s)" "calcom_unavailable" "a 429 with an absurd Retry-After"
out=$(refresh_with_timeout 01RL2 50s)
is "$out" "timeout" "then a refresh that may wait 50 s finds no slot"
cpsql rl postgres -At -c "SET cal_refresh.timeout = '64s'" \
	-c "SELECT error_code FROM cal_refresh_user_tokens('01RL2')" >/dev/null 2>&1 &
waiter=$!
# waiting_for_slot: true once the call sleeps in its wait for a slot;
# false as soon as it has ended instead.
waiting_for_slot() {
	local _
	for _ in $(seq 1 500); do
		[ "$(cpsql rl postgres -At -c "SELECT count(*) FROM pg_stat_activity
			WHERE query LIKE '%cal_refresh_user_tokens(''01RL2'')%'
			AND wait_event_type = 'Extension' AND pid <> pg_backend_pid()")" = 1 ] &&
			return 0
		kill -0 "$waiter" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}
if waiting_for_slot; then
	ok "one that may wait 64 s waits for its slot: the pause is at most about 60 s"
else
	not_ok "one that may wait 64 s waits for its slot: the pause is at most about 60 s"
fi
cpsql rl postgres -At -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE query LIKE '%cal_refresh_user_tokens(''01RL2'')%' AND pid <> pg_backend_pid()" >/dev/null
wait "$waiter" 2>/dev/null || true

# Cal.com's own 429 names no Retry-After but X-RateLimit-Reset-Default
# (seconds): everyone waits that long, then goes on.
rl_restart
$CAL_STANDIN_CTL fault refresh status --status 429 --reset 2
out=$(cpsql rl postgres -At -c "SET cal_refresh.max_retries = 0" \
	-c "SELECT error_code FROM cal_refresh_user_tokens('01RL3')" | grep -v '^SET$')
is "$out" "calcom_unavailable" "a 429 naming a reset in 2 s (not retried here)"
read -r code ms < <(elapsed_ms refresh_with_timeout 01RL4 10s)
is "$code" ok "the next refresh succeeds"
[ "$ms" -ge 1500 ] && [ "$ms" -lt 4000 ] && ok "after waiting out the 2 s ($ms ms)" ||
	not_ok "after waiting out the 2 s" "took $ms ms"

# A 429 naming neither (a proxy's): Cal.com blocks for 60 s, so does the
# cluster; a refresh that may wait 10 s fails at once, sending nothing.
rl_restart
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL fault refresh html --status 429
is "$(refresh_with_timeout 01RL5 10s)" "calcom_unavailable" "a 429 without any reset"
read -r code ms < <(elapsed_ms refresh_with_timeout 01RL6 10s)
is "$code" timeout "the next refresh gets no slot within its 10 s"
[ "$ms" -lt 1000 ] && ok "and says so at once ($ms ms)" || not_ok "and says so at once" "took $ms ms"
is "$($CAL_STANDIN_CTL calls refresh)" "refresh=1" "nothing more was sent"

# Calls cancelled while they wait for their slot give it back: one role's
# 150 cancelled calls at 400 a minute do not starve the next caller.
rl_restart
$CAL_STANDIN_CTL reset
{
	echo "SET cal_refresh.max_requests_per_minute = 400;"
	echo "SET statement_timeout = '5ms';"
	for _ in $(seq 1 150); do echo "SELECT cal_refresh_user_tokens('01RL7');"; done
} | cpsql rl postgres -At -v ON_ERROR_STOP=0 >"$CAL_WORK/hoard.out" 2>&1 || true
cancelled=$(grep -c 'canceling statement due to statement timeout' "$CAL_WORK/hoard.out" || true)
[ "$cancelled" -ge 100 ] && ok "$cancelled of 150 calls were cancelled" ||
	not_ok "at least 100 of 150 calls were cancelled" "cancelled: $cancelled"
out=$(cpsql rl postgres -At -F '|' -c "SET cal_refresh.max_requests_per_minute = 400" -c "SET ROLE rl_app" \
	-c "SELECT success, coalesce(error, '') FROM cal_refresh_user_tokens('01RL8')" 2>&1 |
	grep -v '^SET$' || true)
is "$out" "t|" "the next caller still gets a slot"
cluster_stop rl

# --- a proxy in the server's environment never sees a loopback call -----
proxy_log=$CAL_WORK/proxy.connections
: >"$proxy_log"
"$CAL_PYTHON" - "$CAL_WORK/proxy.port" "$proxy_log" <<'PY' &
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(120)
while True:
    try:
        c, _ = s.accept()
    except OSError:
        break
    with open(sys.argv[2], "a") as log:
        log.write("connection\n")
    c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    c.close()
PY
proxy_pid=$!
for _ in $(seq 1 500); do [ -s "$CAL_WORK/proxy.port" ] && break; sleep 0.01; done
proxy=http://127.0.0.1:$(cat "$CAL_WORK/proxy.port")
http_proxy=$proxy HTTP_PROXY=$proxy https_proxy=$proxy HTTPS_PROXY=$proxy ALL_PROXY=$proxy \
	cluster_start px yes
cpsql px postgres >/dev/null <<'SQL'
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO public."CalendarIntegration" VALUES ('01PX', 'a', 'rt-px', now(), NULL);
SQL
for url in http://127.0.0.2:1 http://127.1.2.3:1 http://localhost:1 'http://[::1]:1'; do
	out=$(cpsql px postgres -At -c "SET cal_refresh.api_url = '$url'" \
		-c "SELECT error_code FROM cal_refresh_user_tokens('01PX')" | grep -v '^SET$')
	is "$out" network_error "$url: straight to the (closed) port"
done
is "$(wc -l <"$proxy_log")" 0 "the proxy saw no connection"
cluster_stop px
kill "$proxy_pid" 2>/dev/null || true
wait "$proxy_pid" 2>/dev/null || true
t_done
