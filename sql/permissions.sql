-- Privileges: nothing is open to PUBLIC; the grant of README is enough.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset

-- No function of the extension is executable by PUBLIC.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
FROM pg_proc p
JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'cal_refresh'
ORDER BY p.proname;

SELECT seed_row('01PERM', 301, 'rt-seed-301');
\! $CAL_STANDIN_CTL seed 301 rt-seed-301

-- A role without the grant cannot execute (even with table privileges).
SET ROLE cal_stranger;
SELECT success FROM cal_refresh_user_tokens('01PERM');
SELECT success FROM cal_update_tokens('01PERM', 'a', 'b', now());
SELECT success FROM cal_update_tokens_ms('01PERM', 'a', 'b', 1);
RESET ROLE;

-- The application role with the documented grant can.
SET ROLE cal_app;
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01PERM') r;
RESET ROLE;

-- Table privileges still apply: the functions run as the caller.
REVOKE UPDATE ON public."CalendarIntegration" FROM cal_app;
SET ROLE cal_app;
SELECT success FROM cal_update_tokens('01PERM', 'a', 'b', now());
RESET ROLE;
GRANT UPDATE ON public."CalendarIntegration" TO cal_app;
\! $CAL_STANDIN_CTL calls refresh --user 301
