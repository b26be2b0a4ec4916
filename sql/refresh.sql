-- The regular refresh, end to end against the Cal.com stand-in.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset

SELECT seed_row('01ALICE', 101, 'rt-seed-101');
\! $CAL_STANDIN_CTL seed 101 rt-seed-101

-- One call: Cal.com rotates the pair, the row holds the new one.
SELECT (outcome(r)).*, r.user_ulid FROM cal_refresh_user_tokens('01ALICE') r;
SELECT (row_state('01ALICE')).*;
\! $CAL_STANDIN_CTL calls --user 101

-- The old refresh token is spent; the stored one is Cal.com's current one.
\! $CAL_STANDIN_CTL token-state rt-seed-101
SELECT "calRefreshToken" AS rt, "calAccessToken" AS stored_at
FROM public."CalendarIntegration" WHERE "userUlid" = '01ALICE' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 101 "$RT"

-- The access token returned is the one stored; the expiry matches too.
SELECT access_token AS new_at, access_token_expires_at AS new_exp
FROM cal_refresh_user_tokens('01ALICE') \gset
SELECT "calAccessToken" = :'new_at' AS returned_is_stored,
	   "calAccessTokenExpiresAt" AT TIME ZONE 'UTC' = :'new_exp'::timestamptz
		   AS expiry_is_stored
FROM public."CalendarIntegration" WHERE "userUlid" = '01ALICE';

-- One connection per backend, kept alive: later calls open no new one.
\! $CAL_STANDIN_CTL reset
SELECT count(*) FILTER (WHERE (cal_refresh_user_tokens('01ALICE')).success) AS ok
FROM generate_series(1, 3);
\! $CAL_STANDIN_CTL connections

-- Each call spends the token it read and stores the next: ten in a row.
SELECT count(*) FILTER (WHERE (cal_refresh_user_tokens('01ALICE')).success) AS ok
FROM generate_series(1, 10);
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration"
WHERE "userUlid" = '01ALICE' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 101 "$RT"
\! $CAL_STANDIN_CTL calls --user 101

-- The new pair is written in the caller's transaction: a rollback keeps
-- the old row (the next call then needs force refresh: see fallback).
BEGIN;
SELECT success, method FROM cal_refresh_user_tokens('01ALICE');
ROLLBACK;
SELECT "calRefreshToken" = :'rt' AS row_kept_old_token
FROM public."CalendarIntegration" WHERE "userUlid" = '01ALICE';

-- A read-only transaction refuses before any call to Cal.com.
\! $CAL_STANDIN_CTL reset
BEGIN READ ONLY;
SELECT success FROM cal_refresh_user_tokens('01ALICE');
ROLLBACK;
BEGIN READ ONLY;
SELECT success FROM cal_update_tokens('01ALICE', 'a', 'b', now());
ROLLBACK;
\! $CAL_STANDIN_CTL calls

-- An older Cal.com that sends no expiries: an hour is assumed for the
-- access token, the stored refresh-token expiry is kept.
SELECT seed_row('01OLD', 102, 'rt-seed-102');
\! $CAL_STANDIN_CTL seed 102 rt-seed-102
\! $CAL_STANDIN_CTL fault refresh no_expiry
SELECT (outcome(r)).*, r.refresh_token_expires_at IS NULL AS no_rt_expiry
FROM cal_refresh_user_tokens('01OLD') r;
SELECT "calRefreshTokenExpiresAt" FROM public."CalendarIntegration"
WHERE "userUlid" = '01OLD';
