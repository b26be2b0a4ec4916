-- Tokens and transactions: Cal.com rotates the pair when it answers, but
-- the row changes only if the caller's transaction commits.  A rollback
-- leaves a spent refresh token in the row; the next call recovers through
-- force refresh on its own and ends with the pair Cal.com considers current.
\set VERBOSITY terse
SET cal_refresh.max_retries = 0;
\! $CAL_STANDIN_CTL reset
SELECT seed_row('01TX', 171, 'rt-seed-171');
\! $CAL_STANDIN_CTL seed 171 rt-seed-171

-- Refresh, then ROLLBACK.
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01TX');
ROLLBACK;
\! $CAL_STANDIN_CTL token-state rt-seed-171
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01TX') r;
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration" WHERE "userUlid" = '01TX' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 171 "$RT"
\! $CAL_STANDIN_CTL calls --user 171

-- Refresh inside a savepoint that is rolled back: the same.
\! $CAL_STANDIN_CTL reset
BEGIN;
SAVEPOINT s;
SELECT method FROM cal_refresh_user_tokens('01TX');
ROLLBACK TO SAVEPOINT s;
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01TX') r;
COMMIT;
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration" WHERE "userUlid" = '01TX' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 171 "$RT"
\! $CAL_STANDIN_CTL calls --user 171

-- Inside a longer transaction the new pair is visible to that transaction
-- at once (other sessions wait on the row lock until COMMIT: see
-- test/t/35_concurrency.sh).
BEGIN;
SELECT access_token AS at FROM cal_refresh_user_tokens('01TX') \gset
SELECT "calAccessToken" = :'at' AS visible_in_transaction
FROM public."CalendarIntegration" WHERE "userUlid" = '01TX';
COMMIT;

-- Read-only: 25006 before any call to Cal.com.
\! $CAL_STANDIN_CTL reset
BEGIN;
SET TRANSACTION READ ONLY;
SELECT try($$SELECT cal_refresh_user_tokens('01TX')$$);
ROLLBACK;
SET default_transaction_read_only = on;
SELECT try($$SELECT cal_refresh_user_tokens('01TX')$$);
SELECT try($$SELECT cal_update_tokens('01TX', 'a', 'b', now())$$);
RESET default_transaction_read_only;
\! $CAL_STANDIN_CTL calls

-- Two-phase commit: the new pair waits in the prepared transaction, with
-- the row lock.  COMMIT PREPARED stores it; ROLLBACK PREPARED is a
-- rollback like any other, and the next call recovers.
\! $CAL_STANDIN_CTL reset
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01TX');
PREPARE TRANSACTION 'cal_refresh_2pc';
COMMIT PREPARED 'cal_refresh_2pc';
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration" WHERE "userUlid" = '01TX' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 171 "$RT"
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01TX');
PREPARE TRANSACTION 'cal_refresh_2pc';
ROLLBACK PREPARED 'cal_refresh_2pc';
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01TX') r;
\! $CAL_STANDIN_CTL calls --user 171

-- Serializable: a refresh works like anywhere else when nobody competes.
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01TX') r;
COMMIT;
