-- Tokens and transactions: Cal.com rotates the pair when it answers, but
-- the row changes only if the caller's transaction commits.  Every pair
-- is journaled first, in a transaction of its own, so a rollback leaves a
-- spent refresh token in the row but loses nothing: the next call adopts
-- the journaled pair and ends with the pair Cal.com considers current.
-- Force refresh fails here for good, so that it cannot hide a loss.
\set VERBOSITY terse
SET cal_refresh.max_retries = 0;
\! $CAL_STANDIN_CTL reset
SELECT seed_row('01TX', 171, 'rt-seed-171');
\! $CAL_STANDIN_CTL seed 171 rt-seed-171
\! $CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1

-- Refresh, then ROLLBACK.
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01TX');
ROLLBACK;
\! $CAL_STANDIN_CTL token-state rt-seed-171
SELECT (outcome(r)).method, r.recovered_from_journal
FROM cal_refresh_user_tokens('01TX') r;
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration" WHERE "userUlid" = '01TX' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 171 "$RT"
\! $CAL_STANDIN_CTL calls --user 171

-- Three rollbacks in a row: the chain resolves to the newest pair.
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01TX');
ROLLBACK;
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01TX');
ROLLBACK;
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01TX');
ROLLBACK;
SELECT (outcome(r)).method, r.recovered_from_journal
FROM cal_refresh_user_tokens('01TX') r;
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration" WHERE "userUlid" = '01TX' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 171 "$RT"
-- Once the row holds the newest pair, no entry supersedes it, and the
-- committed refresh's own pair was never written: its row held it at
-- COMMIT (what the rollbacks left, the next refresh or the job deletes).
SELECT count(*) FILTER (WHERE j.spent_token_sha256 =
           sha256(convert_to(c."calRefreshToken", 'UTF8'))) AS superseding,
       count(*) FILTER (WHERE j.refresh_token = c."calRefreshToken") AS of_the_row
FROM cal_refresh_journal j JOIN public."CalendarIntegration" c ON c."userUlid" = j.user_ulid
WHERE j.user_ulid = '01TX';

-- cal_access_token, then ROLLBACK: the next cal_access_token returns the
-- access token Cal.com issued, from the journal, without any request.
UPDATE public."CalendarIntegration"
SET "calAccessTokenExpiresAt" = now() AT TIME ZONE 'UTC' - interval '1 minute'
WHERE "userUlid" = '01TX';
BEGIN;
SELECT md5(cal_access_token('01TX')) AS issued_md5 \gset
ROLLBACK;
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
SELECT md5(cal_access_token('01TX')) = :'issued_md5' AS same_access_token;
\! $CAL_STANDIN_CTL calls --user 171
SELECT md5("calAccessToken") = :'issued_md5' AS stored FROM public."CalendarIntegration"
WHERE "userUlid" = '01TX';

-- Refresh inside a savepoint that is rolled back: the same.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
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
\! $CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
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
\! $CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1
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
