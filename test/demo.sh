#!/usr/bin/env bash
# `make demo`: one managed user, an expired token, one refresh.  Run by
# test/harness.sh once the stand-in and a cluster are up.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

user_json=$($CAL_STANDIN_CTL create-user "demo@example.com" --name "Demo User")
cpsql main postgres -c "CREATE DATABASE demo" >/dev/null
cpsql main demo -v user_json="$user_json" <<'SQL'
\set QUIET on
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" (
	"userUlid" text PRIMARY KEY,
	"calAccessToken" text NOT NULL,
	"calRefreshToken" text NOT NULL,
	"calAccessTokenExpiresAt" timestamp(3) NOT NULL,
	"calManagedUserId" integer,
	"updatedAt" timestamp(3) NOT NULL DEFAULT now()
);
-- The tokens Cal.com returned when the managed user was created.
INSERT INTO public."CalendarIntegration"
SELECT '01JDEMO0000000000000000000', u->>'accessToken', u->>'refreshToken',
	   to_timestamp((u->>'accessTokenExpiresAt')::bigint / 1000.0) AT TIME ZONE 'UTC',
	   (u->>'id')::int
FROM (SELECT :'user_json'::json AS u) s;
-- Pretend the hour has passed: the access token has expired.
UPDATE public."CalendarIntegration"
SET "calAccessTokenExpiresAt" = now() AT TIME ZONE 'UTC' - interval '5 minutes';
CREATE VIEW shown AS
SELECT "userUlid", '…' || right("calAccessToken", 8) AS access_token,
	   '…' || right("calRefreshToken", 8) AS refresh_token,
	   "calAccessTokenExpiresAt" AS access_expires_utc, "updatedAt"
FROM public."CalendarIntegration";
\echo
\echo '== before: the access token has expired'
TABLE shown;
\echo '== SELECT * FROM cal_refresh_user_tokens(...)'
\pset expanded on
SELECT success, user_ulid, method, '…' || right(access_token, 8) AS access_token,
	   access_token_expires_at, refresh_token_expires_at, error_code, error
FROM cal_refresh_user_tokens('01JDEMO0000000000000000000');
\pset expanded off
\echo '== after: a new pair, valid for an hour'
TABLE shown;
\echo '== what a DBA opens first: SELECT * FROM cal_refresh_status()'
\pset expanded on
SELECT * FROM cal_refresh_status();
SQL
echo "Cal.com stand-in calls: $($CAL_STANDIN_CTL calls)"
