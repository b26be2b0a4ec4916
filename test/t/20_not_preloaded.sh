#!/usr/bin/env bash
# A server that does not preload cal_refresh: every call fails with
# config_insecure before any HTTP call, because a role could have set the
# api_url or table_name placeholders before the library loaded.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

cluster_start nopreload no
trap 'cluster_stop nopreload' EXIT
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 601 rt-seed-601

cpsql nopreload postgres -c "CREATE DATABASE t" >/dev/null
cpsql nopreload t >/dev/null <<'SQL'
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO public."CalendarIntegration" VALUES ('01NP', 'a', 'rt-seed-601', now(), 601);
CREATE ROLE mallory LOGIN;
GRANT SELECT, UPDATE ON public."CalendarIntegration" TO mallory;
GRANT EXECUTE ON FUNCTION cal_refresh_user_tokens(text) TO mallory;
SQL

out=$(cpsql nopreload t -At -c "SELECT error_code FROM cal_refresh_user_tokens('01NP')")
is "$out" "config_insecure" "refresh on a server without the preload: config_insecure"

out=$(cpsql nopreload t -At -c "SELECT error_code FROM cal_update_tokens('01NP', 'a', 'b', now())")
is "$out" "config_insecure" "update on a server without the preload: config_insecure"

out=$(cpsql nopreload t -At -c "SELECT error FROM cal_refresh_user_tokens('01NP')")
like "$out" "shared_preload_libraries" "the message names the fix"

# The attack the rule prevents: an unprivileged role sets the placeholder
# before the library loads.  It must not get the secret sent anywhere.
out=$(cpsql nopreload t -At -U mallory \
	-c "SET cal_refresh.api_url = 'http://127.0.0.1:1'" \
	-c "SELECT error_code FROM cal_refresh_user_tokens('01NP')")
is "$out" "config_insecure" "a placeholder set before loading changes nothing"

# cal_refresh_check() says what is wrong and how to fix it, and sends the
# secret nowhere either.
out=$(cpsql nopreload t -At -F '|' -c "SELECT ok, hint FROM cal_refresh_check() WHERE \"check\" = 'shared_preload_libraries'")
is "$out" "f|ALTER SYSTEM SET shared_preload_libraries = 'cal_refresh'; then restart the server." \
	"cal_refresh_check: the preload row fails, its hint names the setting"
# A role that may not read shared_preload_libraries gets the advice without
# its value, and no error.
cpsql nopreload t -c "GRANT EXECUTE ON FUNCTION cal_refresh_check(name) TO mallory" >/dev/null
out=$(cpsql nopreload t -At -F '|' -U mallory -c "SELECT ok, hint FROM cal_refresh_check() WHERE \"check\" = 'shared_preload_libraries'" 2>&1)
is "$out" "f|Add cal_refresh to shared_preload_libraries, keeping the libraries listed there; then restart the server." \
	"cal_refresh_check as a role that may not read the setting: advice without its value"
out=$(cpsql nopreload t -At -F '|' -c "SELECT coalesce(ok::text, 'null'), detail FROM cal_refresh_check() WHERE \"check\" = 'calcom_credentials'")
is "$out" "null|not checked: cal_refresh is not in shared_preload_libraries" \
	"cal_refresh_check: Cal.com is not asked without the preload"

is "$($CAL_STANDIN_CTL calls refresh) $($CAL_STANDIN_CTL calls force_refresh) $($CAL_STANDIN_CTL calls list_users)" \
	"refresh=0 force_refresh=0 list_users=0" "no call reached Cal.com"

# The statistics live in shared memory that only a preloaded library has:
# asking for them says so, with the fix.
out=$(cpsql nopreload t -At -v VERBOSITY=verbose -c "SELECT * FROM cal_refresh_stats" 2>&1 || true)
like "$out" "55000: cal_refresh statistics are not available" "cal_refresh_stats without the preload: 55000"
like "$out" "shared_preload_libraries" "...and the hint names the fix"
out=$(cpsql nopreload t -At -c "SELECT \"calRefreshToken\" FROM public.\"CalendarIntegration\"")
is "$out" "rt-seed-601" "the row is unchanged"
t_done
