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
