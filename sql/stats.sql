-- Statistics: cal_refresh_stats counts every HTTP request by endpoint and
-- outcome, cal_refresh_stats_info the cluster-wide counts, both since
-- cal_refresh_stats_reset().  The counts must equal what the stand-in saw.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset

-- The stand-in's own log, as cal_refresh_stats would count it: an answer's
-- status class gives the outcome, no answer at all a network error.
CREATE FUNCTION standin_counts(log json)
RETURNS TABLE (endpoint text, outcome text, requests bigint)
LANGUAGE sql AS $$
	SELECT e->>'endpoint',
		   CASE WHEN e->>'status' IS NULL THEN 'network_error'
				WHEN (e->>'status')::int BETWEEN 200 AND 299 THEN 'ok'
				WHEN (e->>'status')::int = 429 OR (e->>'status')::int >= 500
					THEN 'calcom_unavailable'
				ELSE 'calcom_rejected' END,
		   count(*)
	FROM json_array_elements(log->'requests') e
	GROUP BY 1, 2;
$$;

SELECT seed_row('01STATS_A', 601, 'rt-seed-601');
SELECT seed_row('01STATS_B', 602, 'rt-unknown-602');
SELECT seed_row('01STATS_C', NULL, 'rt-unknown-603');
\! $CAL_STANDIN_CTL seed 601 rt-seed-601
\! $CAL_STANDIN_CTL seed 602 rt-seed-602

SELECT cal_refresh_stats_reset() <= now() + interval '1 minute' AS reset_returns_its_time;
SELECT count(*) AS rows_after_reset FROM cal_refresh_stats;
SELECT refreshed_users, force_refreshes, journal_recoveries, throttled, retries,
	   slot_wait_ms, stats_reset > now() - interval '1 minute' AS reset_recently
FROM cal_refresh_stats_info;

-- A known mix: a plain refresh; one after a 500 and one after a 429 (each
-- retried once); a rejected refresh that force refresh repairs; a rejected
-- one that cannot be repaired (no managed user id); a connection reset
-- retried.
SELECT (outcome(r)).success, (outcome(r)).method FROM cal_refresh_user_tokens('01STATS_A') r;
\! $CAL_STANDIN_CTL fault refresh status --status 500
SELECT (outcome(r)).success, (outcome(r)).method FROM cal_refresh_user_tokens('01STATS_A') r;
\! $CAL_STANDIN_CTL fault refresh status --status 429 --retry-after 0
SELECT (outcome(r)).success, (outcome(r)).method FROM cal_refresh_user_tokens('01STATS_A') r;
SELECT (outcome(r)).success, (outcome(r)).method FROM cal_refresh_user_tokens('01STATS_B') r;
SELECT (outcome(r)).success, (outcome(r)).error_code FROM cal_refresh_user_tokens('01STATS_C') r;
\! $CAL_STANDIN_CTL fault refresh reset
SELECT (outcome(r)).success, (outcome(r)).method FROM cal_refresh_user_tokens('01STATS_A') r;

SELECT endpoint, outcome, requests, total_ms >= max_ms AS total_covers_max,
	   max_ms > 0 AS timed, mean_ms = total_ms / requests AS mean_is_mean
FROM cal_refresh_stats ORDER BY 1, 2;
SELECT refreshed_users, force_refreshes, journal_recoveries, throttled, retries
FROM cal_refresh_stats_info;

-- What the stand-in saw, side by side: every row agrees.
\set standin_log `$CAL_STANDIN_CTL requests`
SELECT coalesce(s.endpoint, c.endpoint) AS endpoint,
	   coalesce(s.outcome, c.outcome) AS outcome,
	   s.requests AS standin_saw, c.requests AS counted
FROM standin_counts(:'standin_log') s
FULL JOIN cal_refresh_stats c USING (endpoint, outcome)
ORDER BY 1, 2;
SELECT (SELECT count(*) FROM json_array_elements(:'standin_log'::json->'requests') e
		WHERE e->>'status' = '429') =
	   (SELECT throttled FROM cal_refresh_stats_info) AS throttled_agrees;

-- cal_refresh.track_stats = off counts nothing; only a superuser sets it.
SET cal_refresh.track_stats = off;
SELECT success FROM cal_refresh_user_tokens('01STATS_A');
RESET cal_refresh.track_stats;
SELECT sum(requests) AS requests_still FROM cal_refresh_stats;
SET ROLE cal_app;
SET cal_refresh.track_stats = off;
RESET ROLE;

-- Reset: everything zero again, stats_reset moves.
SELECT stats_reset AS before_reset FROM cal_refresh_stats_info \gset
SELECT pg_sleep(0.01);
SELECT cal_refresh_stats_reset() > :'before_reset' AS reset_moves;
SELECT count(*) AS rows_after_reset FROM cal_refresh_stats;
SELECT refreshed_users + force_refreshes + journal_recoveries + throttled
	   + retries AS counts_after_reset, slot_wait_ms
FROM cal_refresh_stats_info;

-- Readable by pg_read_all_stats, as PostgreSQL's own statistics; closed
-- to other roles; reset by superusers only.
SET ROLE cal_stranger;
SELECT try('SELECT * FROM cal_refresh_stats');
SELECT try('SELECT * FROM cal_refresh_stats_info');
RESET ROLE;
GRANT pg_read_all_stats TO cal_stranger;
SET ROLE cal_stranger;
SELECT try('SELECT * FROM cal_refresh_stats');
SELECT try('SELECT * FROM cal_refresh_stats_info');
SELECT try('SELECT cal_refresh_stats_reset()');
RESET ROLE;
REVOKE pg_read_all_stats FROM cal_stranger;

DROP FUNCTION standin_counts(json);
