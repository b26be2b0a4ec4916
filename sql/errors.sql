-- Every error code of cal_refresh_user_tokens, each leaving the row as it
-- was; misuse raises with a SQLSTATE.
\set VERBOSITY terse
-- Retries have their own test (retries.sql): here each fault is seen once.
SET cal_refresh.max_retries = 0;
\! $CAL_STANDIN_CTL reset
SELECT seed_row('01IVAN', 121, 'rt-seed-121');
\! $CAL_STANDIN_CTL seed 121 rt-seed-121

CREATE FUNCTION row_is_untouched() RETURNS boolean LANGUAGE sql AS $$
	SELECT "calRefreshToken" = 'rt-seed-121'
		   AND "calAccessToken" = 'at-old-01IVAN'
		   AND "updatedAt" = '2000-01-01'
	FROM public."CalendarIntegration" WHERE "userUlid" = '01IVAN';
$$;

-- config_missing: no client id.
SET cal_refresh.client_id = '';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
RESET cal_refresh.client_id;

-- user_not_found
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01NOSUCHUSER') r;

-- calcom_rejected (401: a client id Cal.com does not know)
SET cal_refresh.client_id = 'someone-else';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
RESET cal_refresh.client_id;

-- calcom_unavailable (503 is not a reason to spend a force refresh)
\! $CAL_STANDIN_CTL fault refresh status --status 503
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
SELECT row_is_untouched();

-- network_error: nothing listens there; nothing was sent, so no fallback.
SET cal_refresh.api_url = 'http://127.0.0.1:1';
SELECT success, method, error_code FROM cal_refresh_user_tokens('01IVAN') r;
RESET cal_refresh.api_url;

-- timeout: refresh hangs, each attempt is cut at cal_refresh.timeout, and
-- no force refresh follows (the service is in trouble, not the token).
SET cal_refresh.timeout = '300ms';
\! $CAL_STANDIN_CTL fault any hang
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
RESET cal_refresh.timeout;
SELECT row_is_untouched();

-- bad_response from both endpoints: the row keeps its tokens.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault any missing_field --count 2
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
\! $CAL_STANDIN_CTL fault any wrong_types --count 2
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
\! $CAL_STANDIN_CTL fault any no_data --count 2
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
\! $CAL_STANDIN_CTL fault any huge --count 2
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
\! $CAL_STANDIN_CTL fault any truncated --count 2
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
-- A redirect is never followed (the secret would go elsewhere).
\! $CAL_STANDIN_CTL fault refresh redirect
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
-- A proxy's HTML error page is a clean error too.
\! $CAL_STANDIN_CTL fault refresh html --status 503
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
SELECT row_is_untouched();
\! $CAL_STANDIN_CTL calls --user 121

-- Misuse raises: 22004 for NULL, 22023 for what cannot be a user key.
SELECT try(statement) FROM (VALUES
	($$SELECT cal_refresh_user_tokens(NULL)$$),
	($$SELECT cal_refresh_user_tokens('')$$),
	($$SELECT cal_refresh_user_tokens(repeat('x', 1025))$$),
	($$SELECT cal_refresh_user_tokens(E'01\nIVAN')$$)
) AS v(statement);
SELECT row_is_untouched();

-- After all that, the stored token still works.
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01IVAN') r;
