/* cal_refresh--1.2--1.3.sql: tools for DBAs */

\echo Use "ALTER EXTENSION cal_refresh UPDATE TO '1.3'" to load this file. \quit

-- What a DBA runs first: one row per check of the set-up, in a fixed
-- order, never raising for what it finds.  ok is NULL when a check could
-- not be made; hint names the fix of a failed one.  The privilege checks
-- are those of role (the caller's own by default).  It may send one
-- read-only request to Cal.com.
CREATE FUNCTION @extschema@.cal_refresh_check(role name DEFAULT CURRENT_USER)
RETURNS TABLE ("check" text, ok boolean, detail text, hint text)
AS 'MODULE_PATHNAME', 'cal_refresh_check'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION @extschema@.cal_refresh_check(name) FROM PUBLIC;

COMMENT ON FUNCTION @extschema@.cal_refresh_check(name) IS
'One row per check of the set-up (preload, settings, secret file, Cal.com, table, rows, privileges of role, request budget, pg_cron job): ok, what was found, and the fix.';

-- Requests to Cal.com since the last reset, cluster-wide (shared memory):
-- one row per endpoint and outcome ('ok' or the error_code).
CREATE FUNCTION @extschema@.cal_refresh_stats_requests(
	OUT endpoint text,
	OUT outcome text,
	OUT requests bigint,
	OUT total_ms double precision,
	OUT mean_ms double precision,
	OUT max_ms double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'cal_refresh_stats_requests'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.cal_refresh_stats AS
	SELECT * FROM @extschema@.cal_refresh_stats_requests();

CREATE FUNCTION @extschema@.cal_refresh_stats_counts(
	OUT stats_reset timestamptz,
	OUT refreshed_users bigint,
	OUT force_refreshes bigint,
	OUT journal_recoveries bigint,
	OUT throttled bigint,
	OUT retries bigint,
	OUT slot_wait_ms double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'cal_refresh_stats_counts'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.cal_refresh_stats_info AS
	SELECT * FROM @extschema@.cal_refresh_stats_counts();

CREATE FUNCTION @extschema@.cal_refresh_stats_reset()
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'cal_refresh_stats_reset'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

-- The counters hold no token and no user: readable by the monitoring role,
-- as PostgreSQL's own statistics are.  Resetting is the superuser's.
REVOKE ALL ON FUNCTION @extschema@.cal_refresh_stats_requests() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cal_refresh_stats_counts() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cal_refresh_stats_reset() FROM PUBLIC;
REVOKE ALL ON @extschema@.cal_refresh_stats FROM PUBLIC;
REVOKE ALL ON @extschema@.cal_refresh_stats_info FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.cal_refresh_stats_requests() TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION @extschema@.cal_refresh_stats_counts() TO pg_read_all_stats;
GRANT SELECT ON @extschema@.cal_refresh_stats TO pg_read_all_stats;
GRANT SELECT ON @extschema@.cal_refresh_stats_info TO pg_read_all_stats;

-- What \dx+, \df+, \dT+, \dt+ and \dv+ show.
COMMENT ON TYPE @extschema@.cal_token_result IS
	'What every cal_refresh call returns: success, the access token and its expiry, or error_code and error (never the refresh token)';
COMMENT ON FUNCTION @extschema@.cal_refresh_user_tokens(text) IS
	'Refreshes one user''s Cal.com tokens now (for managed users with force refresh as fallback), stores the new pair in the row, returns the result';
COMMENT ON FUNCTION @extschema@.cal_update_tokens(text, text, text, timestamptz, timestamptz) IS
	'Stores tokens the caller already has in the user''s row';
COMMENT ON FUNCTION @extschema@.cal_update_tokens_ms(text, text, text, bigint, bigint) IS
	'Stores tokens the caller already has, expiries in milliseconds since the epoch as Cal.com returns them';
COMMENT ON FUNCTION @extschema@.cal_access_token(text, interval) IS
	'A user''s access token valid for at least min_validity, refreshed first when needed; raises on failure';
COMMENT ON FUNCTION @extschema@.cal_refresh_expiring_tokens(interval, integer) IS
	'Refreshes, concurrently, up to max_users users whose access token expires within the interval';
COMMENT ON PROCEDURE @extschema@.cal_refresh_expiring_tokens_job(interval, integer) IS
	'The scheduled refresh (pg_cron): every user whose access token expires within the interval, in committed batches';
COMMENT ON FUNCTION @extschema@.cal_refresh_status() IS
	'Every user''s token expiry and recorded failures, failing users first';
COMMENT ON TABLE @extschema@.cal_refresh_failure IS
	'Users whose last refresh failed, with the backoff of the scheduled refresh; the extension''s own, closed to every role';
COMMENT ON TABLE @extschema@.cal_refresh_journal IS
	'Every pair Cal.com issued, committed before it is used, until the row holds it or a newer one; holds tokens, closed to every role';
COMMENT ON FUNCTION @extschema@.cal_refresh_stats_requests() IS
	'Requests to Cal.com since the last reset, per endpoint and outcome (the cal_refresh_stats view)';
COMMENT ON VIEW @extschema@.cal_refresh_stats IS
	'Requests to Cal.com since the last reset, per endpoint and outcome, with their latency';
COMMENT ON FUNCTION @extschema@.cal_refresh_stats_counts() IS
	'Cluster-wide counts since the last reset (the cal_refresh_stats_info view)';
COMMENT ON VIEW @extschema@.cal_refresh_stats_info IS
	'Since when cal_refresh_stats counts, and cluster-wide counts: users refreshed, force refreshes, journal recoveries, 429s, retries, waits for request slots';
COMMENT ON FUNCTION @extschema@.cal_refresh_stats_reset() IS
	'Resets cal_refresh_stats and cal_refresh_stats_info; returns the time of the reset';
COMMENT ON SEQUENCE @extschema@.cal_refresh_journal_id_seq IS
	'Numbers cal_refresh_journal''s entries';
