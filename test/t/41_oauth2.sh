#!/usr/bin/env bash
# The OAuth2 flow in a cluster configured for it, as README's migration
# says: cal_refresh.flow = 'oauth2' in postgresql.conf, and no secret file
# (a public client, which sends no client_secret).  Then what only the
# journal protects under OAuth2 (no force refresh): a statement_timeout
# while the answer is on the wire waits for it, journals the pair, and the
# next call recovers it instead of presenting a revoked refresh token,
# which would be final.  Stand-in users 4100-4199.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

# The later lines win: no secret file at all.
cluster_start oauth yes "cal_refresh.flow = 'oauth2'" "cal_refresh.secret_key_file = ''"
cleanup() {
	cluster_stop oauth
	$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true
}
trap cleanup EXIT
table='public."CalendarIntegration"'
cpsql oauth postgres >/dev/null <<SQL
CREATE EXTENSION cal_refresh;
CREATE TABLE $table ("userUlid" text PRIMARY KEY, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz);
INSERT INTO $table VALUES ('01PUB', 'a', 'rt-41-4101', now() - interval '1 minute'),
	('01CANCEL', 'a', 'rt-41-4102', now() - interval '1 minute');
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 4101 rt-41-4101
$CAL_STANDIN_CTL seed 4102 rt-41-4102

is "$(cpsql oauth postgres -At -c "SHOW cal_refresh.flow")" oauth2 "the server's flow is oauth2"
is "$(cpsql oauth postgres -At -c "SHOW cal_refresh.max_requests_per_minute")" 0 \
	"(the suite lifts the request budget)"

# A confidential client's secret is asked for and not sent: invalid_client.
out=$(cpsql oauth postgres -At -F '|' -c "SELECT error_code, error FROM cal_refresh_user_tokens('01PUB')")
is "$out" "calcom_rejected|refresh failed: HTTP 401: invalid_client: invalid_client_credentials" \
	"without a secret file, a confidential client is refused (no secret sent)"
# A public client: no secret needed, the refresh goes through, and there is
# no "calManagedUserId" column to need.
$CAL_STANDIN_CTL oauth2 --public
out=$(cpsql oauth postgres -At -F '|' -c "SELECT success, method FROM cal_refresh_user_tokens('01PUB')")
is "$out" "t|refresh" "a public client refreshes without a secret file"
rt=$(cpsql oauth postgres -At -c "SELECT \"calRefreshToken\" FROM $table WHERE \"userUlid\" = '01PUB'")
is "$($CAL_STANDIN_CTL is-current 4101 "$rt")" current "...and the row holds the current pair"
is "$(cpsql oauth postgres -At -F '|' -c "SELECT ok, detail FROM cal_refresh_check()
	WHERE \"check\" IN ('secret_key_file', 'calcom_credentials') ORDER BY 1")" \
	"t|not set: a public OAuth2 client, which sends no client_secret
t|POST /v2/auth/oauth2/token with a refresh token that is none: invalid_grant, so Cal.com accepts the client id and secret" \
	"cal_refresh_check: a public client needs no secret file, and its credentials work"

# statement_timeout with the answer on the wire: the grace waits for it.
$CAL_STANDIN_CTL latency 600
start=$(date +%s%N)
out=$(cpsql oauth postgres -At -v ON_ERROR_STOP=0 -c "SET cal_refresh.cancel_grace = '3s'" \
	-c "SET statement_timeout = '200ms'" \
	-c "SELECT method FROM cal_refresh_user_tokens('01CANCEL')" 2>&1 || true)
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
like "$out" "canceling statement due to statement timeout" "the timeout still cancels the call"
[ "$elapsed" -ge 500 ] && ok "...after the answer arrived ($elapsed ms)" ||
	not_ok "...after the answer arrived ($elapsed ms)"
is "$($CAL_STANDIN_CTL token-state rt-41-4102)" spent "Cal.com rotated the pair (the stored token is revoked)"
$CAL_STANDIN_CTL latency 0
out=$(cpsql oauth postgres -At -F '|' -c "SELECT success, method, recovered_from_journal
	FROM cal_refresh_user_tokens('01CANCEL')")
is "$out" "t|refresh|t" "the next call recovers the journaled pair"
rt=$(cpsql oauth postgres -At -c "SELECT \"calRefreshToken\" FROM $table WHERE \"userUlid\" = '01CANCEL'")
is "$($CAL_STANDIN_CTL is-current 4102 "$rt")" current "...and the row ends current: nothing was lost"
is "$(cpsql oauth postgres -At -c "SELECT count(*) FROM cal_refresh_failure")" 0 \
	"...with no failure recorded"

# With no grace the pair is lost, and under OAuth2 that is final.
cpsql oauth postgres -c "UPDATE $table SET \"calAccessTokenExpiresAt\" = now() - interval '1 minute'
	WHERE \"userUlid\" = '01CANCEL'" >/dev/null
$CAL_STANDIN_CTL latency 600
cpsql oauth postgres -At -v ON_ERROR_STOP=0 -c "SET cal_refresh.cancel_grace = 0" \
	-c "SET statement_timeout = '200ms'" \
	-c "SELECT method FROM cal_refresh_user_tokens('01CANCEL')" >/dev/null 2>&1 || true
poll_until_standin() {
	for _ in $(seq 1 300); do
		[ "$($CAL_STANDIN_CTL token-state "$1")" = spent ] && return 0
		sleep 0.01
	done
	return 1
}
poll_until_standin "$rt" && ok "Cal.com rotated after the cancel" || not_ok "Cal.com rotated after the cancel"
$CAL_STANDIN_CTL latency 0
out=$(cpsql oauth postgres -At -F '|' -c "SELECT error_code, error FROM cal_refresh_user_tokens('01CANCEL')")
is "$out" "calcom_rejected|refresh failed: HTTP 400: invalid_grant: refresh_token_revoked; the OAuth2 flow has no force refresh: the user must authorize the application again" \
	"cal_refresh.cancel_grace = 0: the pair is lost, and the error says the user must authorize again"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "no force refresh was ever sent"
t_done
