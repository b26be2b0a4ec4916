-- cal_access_token: the stored token while it stays valid for
-- min_validity (no lock, no HTTP); else lock, re-check, refresh; a failed
-- refresh still returns a token that has not expired, with a WARNING.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
SELECT seed_row('01TOK', 161, 'rt-seed-161');
\! $CAL_STANDIN_CTL seed 161 rt-seed-161
GRANT EXECUTE ON FUNCTION cal_access_token(text, interval) TO cal_app;

-- Valid for 30 more minutes: returned as stored, nothing sent.
SELECT success FROM cal_update_tokens('01TOK', 'at-stored', 'rt-seed-161',
	now() + interval '30 minutes');
SELECT cal_access_token('01TOK');
SELECT cal_access_token('01TOK', '29 minutes');
\! $CAL_STANDIN_CTL calls

-- Asked to last longer than it will: refreshed, and the new token is the
-- one stored in the row.
SELECT cal_access_token('01TOK', '45 minutes') AS new_token \gset
SELECT :'new_token' = "calAccessToken" AS returned_is_stored,
	   :'new_token' <> 'at-stored' AS changed
FROM public."CalendarIntegration" WHERE "userUlid" = '01TOK';
\! $CAL_STANDIN_CTL calls
-- ...after which the fresh token is served without a call.
SELECT cal_access_token('01TOK') = :'new_token' AS same_token;
\! $CAL_STANDIN_CTL calls

-- The refresh fails (503) but the stored token has a minute left: it is
-- returned, with a WARNING saying why.
SELECT success FROM cal_update_tokens('01TOK', 'at-one-minute',
	(SELECT "calRefreshToken" FROM public."CalendarIntegration" WHERE "userUlid" = '01TOK'),
	now() + interval '1 minute');
\! $CAL_STANDIN_CTL fault refresh status --status 503
SET cal_refresh.max_retries = 0;
\set VERBOSITY default
SELECT cal_access_token('01TOK');
\set VERBOSITY terse

-- Expired and the refresh fails: 58000 (never class 08), row unchanged.
UPDATE public."CalendarIntegration" SET "calAccessTokenExpiresAt" = '2001-01-01'
WHERE "userUlid" = '01TOK';
\! $CAL_STANDIN_CTL fault refresh status --status 503
SELECT try($$SELECT cal_access_token('01TOK')$$);
SELECT "calAccessToken" FROM public."CalendarIntegration" WHERE "userUlid" = '01TOK';
RESET cal_refresh.max_retries;
-- ...and with Cal.com back, the expired token is refreshed.
SELECT cal_access_token('01TOK') <> 'at-one-minute' AS refreshed;

-- Other failures and their SQLSTATEs.
SELECT try(statement) FROM (VALUES
	($$SELECT cal_access_token(NULL)$$),
	($$SELECT cal_access_token('01TOK', NULL)$$),
	($$SELECT cal_access_token('01TOK', '-1 minute')$$),
	($$SELECT cal_access_token('01TOK', '56 minutes')$$),
	($$SELECT cal_access_token('01TOK', '1 day')$$),
	($$SELECT cal_access_token('')$$),
	($$SELECT cal_access_token('01NOBODY')$$)
) AS v(statement);
SELECT seed_row('01TOKNONE', NULL, NULL);
SELECT try($$SELECT cal_access_token('01TOKNONE')$$);

-- Without a client id, a valid stored token is still served; an expired
-- one cannot be refreshed (55000).
SET cal_refresh.client_id = '';
SELECT cal_access_token('01TOK') IS NOT NULL AS served;
UPDATE public."CalendarIntegration" SET "calAccessTokenExpiresAt" = '2001-01-01'
WHERE "userUlid" = '01TOK';
SELECT try($$SELECT cal_access_token('01TOK')$$);
RESET cal_refresh.client_id;
SELECT cal_access_token('01TOK') IS NOT NULL AS refreshed_again;

-- Read-only transactions (and standbys) get the stored token while it
-- still works, with a WARNING when it could not be refreshed ahead of
-- min_validity; cal_refresh_user_tokens is refused with 25006 before any
-- call (hostile_rows.sql: an expired token read-only).
UPDATE public."CalendarIntegration"
SET "calAccessTokenExpiresAt" = now() AT TIME ZONE 'UTC' + interval '30 minutes'
WHERE "userUlid" = '01TOK';
\! $CAL_STANDIN_CTL reset
BEGIN READ ONLY;
SELECT cal_access_token('01TOK') IS NOT NULL AS served_read_only;
SELECT try($$SELECT cal_access_token('01TOK', '45 minutes')$$);
ROLLBACK;
SET default_transaction_read_only = on;
SELECT try($$SELECT cal_access_token('01TOK', '45 minutes')$$);
SELECT try($$SELECT cal_refresh_user_tokens('01TOK')$$);
RESET default_transaction_read_only;
\! $CAL_STANDIN_CTL calls

-- The application role with the documented grant.
SET ROLE cal_app;
SELECT cal_access_token('01TOK') IS NOT NULL AS app_role_served;
RESET ROLE;
