-- The OAuth2 flow (cal_refresh.flow = oauth2): the same table and calls,
-- refreshed at Cal.com's OAuth2 token endpoint.  Its tokens live 30
-- minutes; rotation revokes every refresh token of the user, with no grace
-- period and no force refresh: invalid_grant is final for the user, and
-- the journal is the only protection against a lost pair.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
SET cal_refresh.flow = oauth2;
SHOW cal_refresh.flow;
-- Only a superuser may change it, like api_url.
SET ROLE cal_app;
SET cal_refresh.flow = managed_user;
RESET ROLE;

-- A refresh: one call to the token endpoint, none to the managed-user
-- routes; method 'refresh' as in the other flow; the access token lives
-- 30 minutes, and Cal.com gives no refresh-token expiry.
SELECT seed_row('01O2', 701, 'rt-seed-701');
\! $CAL_STANDIN_CTL seed 701 rt-seed-701
SELECT r.success, r.method, r.error_code,
	   r.access_token_expires_at BETWEEN now() + interval '29 minutes'
									 AND clock_timestamp() + interval '30 minutes'
		   AS lives_30_min,
	   r.refresh_token_expires_at IS NULL AS no_refresh_expiry
FROM cal_refresh_user_tokens('01O2') r;
\! $CAL_STANDIN_CTL calls --user 701
\! $CAL_STANDIN_CTL token-state rt-seed-701
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration" WHERE "userUlid" = '01O2' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 701 "$RT"

-- Cal.com's versions wrap the answer in {"status","data"} or not: both do.
\! $CAL_STANDIN_CTL oauth2 --wrapped
SELECT success, method FROM cal_refresh_user_tokens('01O2');
\! $CAL_STANDIN_CTL oauth2

-- cal_access_token: the stored token while it lasts min_validity; asked
-- for longer, a refresh.  min_validity and within stop 5 minutes short of
-- the flow's 30-minute lifetime.
SELECT cal_access_token('01O2') = "calAccessToken" AS stored_token
FROM public."CalendarIntegration" WHERE "userUlid" = '01O2';
UPDATE public."CalendarIntegration"
SET "calAccessTokenExpiresAt" = now() AT TIME ZONE 'UTC' + interval '10 minutes'
WHERE "userUlid" = '01O2';
SELECT cal_access_token('01O2', '25 minutes') IS NOT NULL AS refreshed;
\! $CAL_STANDIN_CTL calls --user 701
SELECT try($$SELECT cal_access_token('01O2', '26 minutes')$$);
SELECT try($$SELECT count(*) FROM cal_refresh_expiring_tokens('26 minutes')$$);
SET cal_refresh.flow = managed_user;
SELECT try($$SELECT cal_access_token('01O2', '26 minutes') IS NOT NULL$$);
SET cal_refresh.flow = oauth2;

-- invalid_grant: final for the user.  Never retried, never a force
-- refresh; recorded as the user's own failure, with a backoff.
SELECT seed_row('01O2BAD', 702, 'rt-unknown-702');
DELETE FROM cal_refresh_failure;
SELECT (outcome(r)).success, (outcome(r)).error_code, (outcome(r)).error
FROM cal_refresh_user_tokens('01O2BAD') r;
\! $CAL_STANDIN_CTL calls
SELECT user_ulid, failures, next_attempt_at > last_failure_at AS backs_off
FROM cal_refresh_failure;

-- invalid_client (the secret, the client id): the configuration's fault,
-- recorded without a backoff.
\! $CAL_STANDIN_CTL fault oauth2_token status --status 401
SELECT (outcome(r)).error_code, (outcome(r)).error FROM cal_refresh_user_tokens('01O2') r;
SELECT user_ulid, next_attempt_at = last_failure_at AS retried_next_run
FROM cal_refresh_failure WHERE user_ulid = '01O2';
DELETE FROM cal_refresh_failure;

-- Nothing stored to refresh with: no call, no force refresh.
SELECT seed_row('01O2NONE', 703, NULL);
\! $CAL_STANDIN_CTL reset
SELECT (outcome(r)).error_code, (outcome(r)).error FROM cal_refresh_user_tokens('01O2NONE') r;
\! $CAL_STANDIN_CTL calls

-- A rollback loses nothing: the pair is journaled, and the next call
-- adopts it instead of presenting a revoked token (which would be final).
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01O2');
ROLLBACK;
SELECT (outcome(r)).method, r.recovered_from_journal FROM cal_refresh_user_tokens('01O2') r;
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration" WHERE "userUlid" = '01O2' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 701 "$RT"
\! $CAL_STANDIN_CTL calls --user 701

-- Batches and the job, as in the other flow (on a table of their own).
CREATE SCHEMA o2;
CREATE TABLE o2."CalendarIntegration" (LIKE public."CalendarIntegration" INCLUDING ALL);
INSERT INTO o2."CalendarIntegration" ("userUlid", "calAccessToken",
	"calRefreshToken", "calAccessTokenExpiresAt", "calManagedUserId")
SELECT '01O2B' || i, 'at-old', 'rt-seed-' || (710 + i), '2001-01-01', 710 + i
FROM generate_series(1, 3) i;
SET cal_refresh.table_name = 'o2."CalendarIntegration"';
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL seed 711 rt-seed-711
\! $CAL_STANDIN_CTL seed 712 rt-seed-712
\! $CAL_STANDIN_CTL seed 713 rt-seed-713
SELECT user_ulid, success, method FROM cal_refresh_expiring_tokens() ORDER BY 1;
UPDATE o2."CalendarIntegration" SET "calAccessTokenExpiresAt" = '2001-01-01';
CALL cal_refresh_expiring_tokens_job();
SELECT count(*) AS fresh FROM o2."CalendarIntegration"
WHERE "calAccessTokenExpiresAt" > now() AT TIME ZONE 'UTC' + interval '25 minutes';
\! $CAL_STANDIN_CTL calls
RESET cal_refresh.table_name;
DROP SCHEMA o2 CASCADE;

-- The request budget follows the flow: Cal.com counts the token endpoint
-- per client IP (120 a minute), so the default (-1) is 100, not 400.
SET cal_refresh.max_requests_per_minute = -1;
SELECT ok, detail FROM cal_refresh_check() WHERE "check" = 'max_requests_per_minute';
SET cal_refresh.flow = managed_user;
SELECT ok, detail FROM cal_refresh_check() WHERE "check" = 'max_requests_per_minute';
SET cal_refresh.flow = oauth2;
RESET cal_refresh.max_requests_per_minute;
-- cal_refresh_check proves the credentials with a refresh token that is
-- none: invalid_grant means Cal.com accepted the client.
\! $CAL_STANDIN_CTL reset
SELECT ok, detail FROM cal_refresh_check() WHERE "check" = 'calcom_credentials';
\! $CAL_STANDIN_CTL fault oauth2_token status --status 401
SELECT ok, detail FROM cal_refresh_check() WHERE "check" = 'calcom_credentials';
-- Statistics name the endpoint.
SELECT DISTINCT endpoint FROM cal_refresh_stats WHERE endpoint LIKE 'oauth2%';

DELETE FROM public."CalendarIntegration" WHERE "userUlid" LIKE '01O2%';
DELETE FROM cal_refresh_failure;
RESET cal_refresh.flow;
\! $CAL_STANDIN_CTL reset
