-- An upgrade from 1.0, as an earlier release installed it: the new library
-- serves the old objects, and ALTER EXTENSION ... UPDATE adds the rest.
-- Runs last: it drops the extension (CASCADE: the fixtures that use its
-- type go with it; the application's table stays).
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
SET client_min_messages = warning;
DROP EXTENSION cal_refresh CASCADE;
RESET client_min_messages;
SELECT count(*) > 0 AS application_table_kept FROM public."CalendarIntegration";

CREATE EXTENSION cal_refresh VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'cal_refresh';

-- 1.0's functions work with the new library; without 1.1's failure table
-- there is simply no bookkeeping.
SELECT seed_row('01UPGRADE', 141, 'rt-seed-141');
SELECT seed_row('01UPBROKEN', 142, 'rt-unknown-142');
\! $CAL_STANDIN_CTL seed 141 rt-seed-141
SELECT success, method FROM cal_refresh_user_tokens('01UPGRADE');
SELECT success, error_code FROM cal_refresh_user_tokens('01UPBROKEN');

ALTER EXTENSION cal_refresh UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'cal_refresh';
-- (Without the row and array types PostgreSQL makes along with a table or
-- type: from 17 on they are listed as members too.)
SELECT pg_describe_object(d.classid, d.objid, 0) AS object
FROM pg_depend d
LEFT JOIN pg_type t ON d.classid = 'pg_type'::regclass AND t.oid = d.objid
LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cal_refresh')
  AND (t.oid IS NULL OR (t.typcategory <> 'A' AND coalesce(c.relkind, 'c') = 'c'))
ORDER BY 1;

-- Now failures are recorded, and the new functions answer.
SELECT success, error_code FROM cal_refresh_user_tokens('01UPBROKEN');
SELECT user_ulid, failures FROM cal_refresh_failure;
SELECT user_ulid, failures FROM cal_refresh_status() WHERE failures IS NOT NULL;

-- One update path; a fresh install of 1.4 runs the same five scripts, so
-- the objects of an updated and of a fresh 1.4 cannot differ (Makefile).
SELECT source, target, path FROM pg_extension_update_paths('cal_refresh')
WHERE path IS NOT NULL ORDER BY 1, 2;
