-- Force refresh: when it is used, when it is not, and both failing.
\set VERBOSITY terse
-- Retries have their own test (retries.sql): here each fault is seen once.
SET cal_refresh.max_retries = 0;
\! $CAL_STANDIN_CTL reset

-- The stored refresh token was already spent (say by a transaction that
-- rolled back): refresh gets 400, force refresh recovers.
SELECT seed_row('01BOB', 111, 'rt-seed-111');
\! $CAL_STANDIN_CTL seed 111 rt-seed-111
\! $CAL_STANDIN_CTL try-refresh rt-seed-111
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
SELECT (row_state('01BOB')).*;
SELECT "calRefreshToken" AS rt FROM public."CalendarIntegration"
WHERE "userUlid" = '01BOB' \gset
\setenv RT :rt
\! $CAL_STANDIN_CTL is-current 111 "$RT"
\! $CAL_STANDIN_CTL calls --user 111

-- A refresh whose response was lost after Cal.com rotated the pair
-- (reset once sent): the refresh is retried, the retry meets a 400 (the
-- token is spent), and force refresh recovers.  Without a retry it fails,
-- and the next call recovers the same way.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh reset --apply
SET cal_refresh.max_retries = 1;
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
SET cal_refresh.max_retries = 0;
\! $CAL_STANDIN_CTL calls --user 111
\! $CAL_STANDIN_CTL fault refresh reset --apply
SELECT (outcome(r)).error_code FROM cal_refresh_user_tokens('01BOB') r;
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL calls --user 111

-- 404 (a lost race at Cal.com) also falls back.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 404
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01BOB') r;
-- A 200 whose JSON cannot be used leaves the token's fate unknown: fall back.
\! $CAL_STANDIN_CTL fault refresh truncated --apply
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh missing_field
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL calls --user 111

-- Not after 401 (configuration), 429 (wait instead), nor after the
-- service's trouble: 5xx, and a 200 that is not JSON at all (a maintenance
-- page); those are retried instead (retries.sql).
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 401
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh status --status 403
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh status --status 429
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh status --status 500
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh status --status 502
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh status --status 503
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh status --status 504
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh html --status 200
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL fault refresh malformed
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
\! $CAL_STANDIN_CTL calls --user 111
-- ...and the row still holds a token Cal.com accepts.
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01BOB') r;

-- Both failing: the code is force refresh's, the message names both.
\! $CAL_STANDIN_CTL reset
SELECT "calRefreshToken" AS before_rt FROM public."CalendarIntegration"
WHERE "userUlid" = '01BOB' \gset
\! $CAL_STANDIN_CTL fault refresh status --status 400
\! $CAL_STANDIN_CTL fault force_refresh status --status 500
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01BOB') r;
SELECT "calRefreshToken" = :'before_rt' AS row_unchanged
FROM public."CalendarIntegration" WHERE "userUlid" = '01BOB';
\! $CAL_STANDIN_CTL calls --user 111

-- A NULL stored refresh token goes straight to force refresh.
SELECT seed_row('01CAROL', 112, NULL);
\! $CAL_STANDIN_CTL seed 112 rt-seed-112
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01CAROL') r;
\! $CAL_STANDIN_CTL calls --user 112
\! $CAL_STANDIN_CTL token-state rt-seed-112

-- Without "calManagedUserId", no force refresh: no_managed_user_id,
-- saying why the refresh failed; with neither: no_refresh_token.
SELECT seed_row('01DAVE', NULL, 'rt-seed-unknown');
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01DAVE') r;
SELECT seed_row('01ERIN', NULL, NULL);
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01ERIN') r;
-- A managed user id that cannot be Cal.com's is not sent.
SELECT seed_row('01FRANK', -5, NULL);
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01FRANK') r;
-- A stored refresh token that is not a token is not sent either.
SELECT seed_row('01GRACE', 113, E'bad\r\nX-Injected: 1');
\! $CAL_STANDIN_CTL seed 113 rt-seed-113
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01GRACE') r;
\! $CAL_STANDIN_CTL calls --user 113

-- A managed user Cal.com does not know: force refresh's 404.
SELECT seed_row('01HEIDI', 99999, NULL);
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01HEIDI') r;
