#!/usr/bin/env bash
# A server that does not preload cal_refresh: every call fails with
# config_insecure, because a role could have set the api_url or table_name
# placeholders before the library loaded.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

cluster_start nopreload no
trap 'cluster_stop nopreload' EXIT

cpsql nopreload postgres -c "CREATE DATABASE t" >/dev/null
cpsql nopreload t >/dev/null <<'SQL'
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO public."CalendarIntegration" VALUES ('01NP', 'a', 'rt-seed-601', now(), 601);
CREATE ROLE mallory LOGIN;
GRANT SELECT, UPDATE ON public."CalendarIntegration" TO mallory;
GRANT EXECUTE ON FUNCTION cal_update_tokens(text, text, text, timestamptz, timestamptz) TO mallory;
SQL

out=$(cpsql nopreload t -At -c "SELECT error_code FROM cal_update_tokens('01NP', 'a', 'b', now())")
is "$out" "config_insecure" "update on a server without the preload: config_insecure"

out=$(cpsql nopreload t -At -c "SELECT error FROM cal_update_tokens('01NP', 'a', 'b', now())")
like "$out" "shared_preload_libraries" "the message names the fix"

# The attack the rule prevents: an unprivileged role sets the table
# placeholder before the library loads.
out=$(cpsql nopreload t -At -U mallory \
	-c "SET cal_refresh.table_name = 'public.evil'" \
	-c "SELECT error_code FROM cal_update_tokens('01NP', 'a', 'b', now())")
is "$out" "config_insecure" "a placeholder set before loading changes nothing"

out=$(cpsql nopreload t -At -c "SELECT \"calRefreshToken\" FROM public.\"CalendarIntegration\"")
is "$out" "rt-seed-601" "the row is unchanged"
t_done
