-- Retries (cal_refresh.max_retries): refresh and force refresh are re-sent
-- after the service's trouble (429, 5xx, a body that is not JSON, a lost
-- connection, a timeout).  Re-sending a refresh token Cal.com may have
-- spent only earns a 400, and the fallback follows.  No retry waits past
-- cal_refresh.timeout.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
SELECT seed_row('01RETRY', 131, 'rt-seed-131');
\! $CAL_STANDIN_CTL seed 131 rt-seed-131
SHOW cal_refresh.max_retries;

-- 429 with Retry-After: 1 is honoured, then the refresh goes through.
\! $CAL_STANDIN_CTL fault refresh status --status 429 --retry-after 1
SELECT clock_timestamp() AS t0 \gset
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
SELECT clock_timestamp() - :'t0'::timestamptz BETWEEN interval '1 s' AND interval '3 s'
	AS waited_retry_after;
\! $CAL_STANDIN_CTL calls --user 131

-- Cal.com's own 429 has no Retry-After but X-RateLimit-Reset-Default
-- (seconds): waited out, twice, then it succeeds.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 429 --count 2 --reset 1
SELECT clock_timestamp() AS t0 \gset
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
SELECT clock_timestamp() - :'t0'::timestamptz BETWEEN interval '2 s' AND interval '4 s'
	AS waited_resets;
\! $CAL_STANDIN_CTL calls --user 131

-- A 429 naming neither (a proxy's page): Cal.com's block lasts 60 s, so
-- no retry fits in cal_refresh.timeout.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh html --status 429
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131

-- 429 for good: max_retries + 1 attempts, then calcom_unavailable, and no
-- force refresh (waiting is the answer to a rate limit).
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 429 --count 3 --retry-after 0
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131
SET cal_refresh.max_retries = 0;
\! $CAL_STANDIN_CTL fault refresh status --status 429
SELECT (outcome(r)).error_code FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131
RESET cal_refresh.max_retries;

-- A Retry-After beyond cal_refresh.timeout is not waited for.
\! $CAL_STANDIN_CTL reset
SET cal_refresh.timeout = '2s';
\! $CAL_STANDIN_CTL fault refresh status --status 429 --retry-after 30
SELECT clock_timestamp() AS t0 \gset
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '1 s' AS returned_at_once;
RESET cal_refresh.timeout;
\! $CAL_STANDIN_CTL calls --user 131

-- A 503 with Retry-After: 1 is retried after a second, and succeeds.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 503 --retry-after 1
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131
-- 502 and a maintenance page for good: retried, then calcom_unavailable,
-- and no force refresh into an outage.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 502 --count 3
SELECT (outcome(r)).error_code FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh html --status 200 --count 3
SELECT (outcome(r)).error_code, (outcome(r)).error FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131

-- Force refresh is retried after 5xx and after a reset.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 400
\! $CAL_STANDIN_CTL fault force_refresh status --status 503
\! $CAL_STANDIN_CTL fault force_refresh reset
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131

-- A refresh whose connection dies after the request went out is never
-- re-sent by libcurl's own reconnect of a kept-alive connection; our own
-- retry re-sends it, meets a 400 (Cal.com had spent the token), and force
-- refresh takes over: two refresh calls seen, not three.
\! $CAL_STANDIN_CTL reset
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh reset --apply
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01RETRY') r;
\! $CAL_STANDIN_CTL calls --user 131

-- Nothing sent (connection refused): retried, then network_error, and no
-- force refresh.
SET cal_refresh.api_url = 'http://127.0.0.1:1';
SELECT (outcome(r)).error_code, (outcome(r)).error ~ 'Could not connect|Connection refused|Failed to connect' AS refused
FROM cal_refresh_user_tokens('01RETRY') r;
RESET cal_refresh.api_url;
