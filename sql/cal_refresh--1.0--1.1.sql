/* cal_refresh--1.0--1.1.sql: scheduled refresh at scale */

\echo Use "ALTER EXTENSION cal_refresh UPDATE TO '1.1'" to load this file. \quit

-- One row per user whose last refresh failed.  The extension's functions
-- read and write it as its owner; nobody else needs it, so it is closed to
-- PUBLIC.  pg_dump keeps its rows (pg_extension_config_dump).
CREATE TABLE @extschema@.cal_refresh_failure (
	user_ulid text PRIMARY KEY,
	error_code text NOT NULL,
	error text NOT NULL,
	failures integer NOT NULL CHECK (failures > 0),
	last_failure_at timestamptz NOT NULL,
	next_attempt_at timestamptz NOT NULL
);
REVOKE ALL ON TABLE @extschema@.cal_refresh_failure FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cal_refresh_failure', '');

-- Refreshes, concurrently and in one transaction, the users whose access
-- token expires within `within`, at most max_users of them.
CREATE FUNCTION @extschema@.cal_refresh_expiring_tokens(
	within interval DEFAULT '10 minutes',
	max_users integer DEFAULT 1000)
RETURNS SETOF @extschema@.cal_token_result
AS 'MODULE_PATHNAME', 'cal_refresh_expiring_tokens'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The same in batches of batch_size, committing after each: for pg_cron,
--   SELECT cron.schedule('cal-refresh', '*/5 * * * *',
--                        'CALL cal_refresh_expiring_tokens_job()');
CREATE PROCEDURE @extschema@.cal_refresh_expiring_tokens_job(
	within interval DEFAULT '10 minutes',
	batch_size integer DEFAULT 100)
AS 'MODULE_PATHNAME', 'cal_refresh_expiring_tokens_job'
LANGUAGE C;

-- Every user's expiry and failures, failing users first.  A function, not
-- a view: the table comes from cal_refresh.table_name.
CREATE FUNCTION @extschema@.cal_refresh_status()
RETURNS TABLE (
	user_ulid text,
	access_token_expires_at timestamptz,
	expires_in interval,
	last_error_code text,
	last_error text,
	last_failure_at timestamptz,
	failures integer,
	next_attempt_at timestamptz)
AS 'MODULE_PATHNAME', 'cal_refresh_status'
LANGUAGE C STABLE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION @extschema@.cal_refresh_expiring_tokens(interval, integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE @extschema@.cal_refresh_expiring_tokens_job(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cal_refresh_status() FROM PUBLIC;
