-- cal_refresh_check(): one row per check, in a fixed order, never raising
-- for what it finds; a failed check says what was found and names the
-- fix.  First a working set-up (every row ok), then each breakage.
-- (The preload, an unset secret file and files only root can make are
-- checked in test/t/20_not_preloaded.sh and 22_check.sh.)
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
\getenv os_user CAL_PG_OS_USER
SELECT set_config('regress.os_user', :'os_user', false) IS NOT NULL AS os_user_set;

-- What changes between runs goes: the secret file's path, the stand-in's
-- address, the server's OS user, timings.
CREATE FUNCTION mask(t text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(regexp_replace(regexp_replace(
		replace(replace(t, current_setting('cal_refresh.secret_key_file'), '<secret file>'),
				current_setting('cal_refresh.api_url'), '<api_url>'),
		'(-o|chown|chgrp|OS user) ' || current_setting('regress.os_user') || '\M',
		'\1 <os user>', 'g'),
		'[0-9]+ ms', 'N ms', 'g'),
		'port [0-9]+', 'port N', 'g');
$$;
CREATE FUNCTION check_report(who name DEFAULT CURRENT_USER)
RETURNS TABLE ("check" text, ok boolean, detail text, hint text)
LANGUAGE sql AS $$
	SELECT c."check", c.ok, mask(c.detail), mask(c.hint) FROM cal_refresh_check(who) c;
$$;

-- A working set-up: a table as Prisma makes it, rows with tokens, the
-- grants README asks for, a request budget under Cal.com's limit.  And a
-- look-alike cron.job (a plain table shaped like pg_cron 1.4's, which any
-- role that may create a schema could make): it is not pg_cron's, so it is
-- not read.  47_pg_cron checks that row against the real pg_cron.
CREATE SCHEMA chk;
CREATE TABLE chk.tokens (
	id serial PRIMARY KEY,
	"userUlid" text NOT NULL UNIQUE,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamp(3),
	"calRefreshTokenExpiresAt" timestamp(3),
	"calManagedUserId" integer,
	"updatedAt" timestamp(3) NOT NULL DEFAULT now()
);
INSERT INTO chk.tokens ("userUlid", "calAccessToken", "calRefreshToken",
	"calAccessTokenExpiresAt", "calManagedUserId")
VALUES ('01CHK1', 'at-1', 'rt-1', now() AT TIME ZONE 'UTC' + interval '30 minutes', 901),
	   ('01CHK2', 'at-2', NULL, now() AT TIME ZONE 'UTC' - interval '5 minutes', 902);
CREATE SCHEMA cron;
CREATE TABLE cron.job (jobid bigserial PRIMARY KEY, schedule text NOT NULL,
	command text NOT NULL, database text NOT NULL DEFAULT current_database(),
	username text NOT NULL DEFAULT current_user, active boolean NOT NULL DEFAULT true);
INSERT INTO cron.job (schedule, command)
VALUES ('*/5 * * * *', 'CALL cal_refresh_expiring_tokens_job()');
SET cal_refresh.table_name = 'chk.tokens';
SET cal_refresh.max_requests_per_minute = 400;
SELECT * FROM check_report();
-- It asked Cal.com once, read-only.
\! $CAL_STANDIN_CTL calls list_users
\! $CAL_STANDIN_CTL calls

-- The client id unset: said so, and Cal.com is not asked.
\! $CAL_STANDIN_CTL reset
SET cal_refresh.client_id = '';
SELECT * FROM check_report() WHERE "check" IN ('client_id', 'calcom_connection', 'calcom_credentials');
RESET cal_refresh.client_id;
\! $CAL_STANDIN_CTL calls list_users

-- The secret file: too open, absent, a directory, empty, two words; its
-- content never shows.  Then a secret Cal.com refuses.
\! cp -p "$CAL_SECRET_FILE" "$CAL_SECRET_FILE.orig"
\! chmod 0640 "$CAL_SECRET_FILE"
SELECT * FROM check_report() WHERE "check" IN ('secret_key_file', 'calcom_credentials');
\! chmod 0600 "$CAL_SECRET_FILE" && mv "$CAL_SECRET_FILE" "$CAL_SECRET_FILE.away"
SELECT * FROM check_report() WHERE "check" = 'secret_key_file';
\! mkdir -m 0700 "$CAL_SECRET_FILE"
SELECT * FROM check_report() WHERE "check" = 'secret_key_file';
\! rmdir "$CAL_SECRET_FILE"
\! : > "$CAL_SECRET_FILE" && chmod 0600 "$CAL_SECRET_FILE" && chown "$CAL_PG_OS_USER" "$CAL_SECRET_FILE"
SELECT * FROM check_report() WHERE "check" = 'secret_key_file';
\! printf 'two words\n' > "$CAL_SECRET_FILE"
SELECT * FROM check_report() WHERE "check" = 'secret_key_file';
\! printf 'not-the-secret\n' > "$CAL_SECRET_FILE"
SELECT * FROM check_report() WHERE "check" IN ('secret_key_file', 'calcom_connection', 'calcom_credentials');
\! cp -p "$CAL_SECRET_FILE.orig" "$CAL_SECRET_FILE.new" && mv -T "$CAL_SECRET_FILE.new" "$CAL_SECRET_FILE" && rm -f "$CAL_SECRET_FILE.orig" "$CAL_SECRET_FILE.away"
SELECT count(*) AS mentions_of_the_secret FROM check_report() r
WHERE concat(r.detail, r.hint) LIKE '%' || pg_read_file(current_setting('cal_refresh.secret_key_file')) || '%'
   OR concat(r.detail, r.hint) LIKE '%not-the-secret%';

-- Nothing listens: no connection, and the credentials are not checked.
SET cal_refresh.api_url = 'http://127.0.0.1:1';
SELECT "check", ok, detail ~ '^no connection to <api_url>: ' AS says_so, hint
FROM check_report() WHERE "check" IN ('api_url', 'calcom_connection', 'calcom_credentials');
RESET cal_refresh.api_url;

-- Cal.com's own answers, injected by the stand-in: each with its hint.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault list_users status --status 503
\! $CAL_STANDIN_CTL fault list_users status --status 404
\! $CAL_STANDIN_CTL fault list_users html --status 502
\! $CAL_STANDIN_CTL fault list_users malformed
\! $CAL_STANDIN_CTL fault list_users redirect
\! $CAL_STANDIN_CTL fault list_users status --status 429 --reset 1
SELECT * FROM check_report() WHERE "check" LIKE 'calcom%';
SELECT * FROM check_report() WHERE "check" LIKE 'calcom%';
SELECT * FROM check_report() WHERE "check" LIKE 'calcom%';
SELECT * FROM check_report() WHERE "check" LIKE 'calcom%';
SELECT * FROM check_report() WHERE "check" LIKE 'calcom%';
SELECT * FROM check_report() WHERE "check" LIKE 'calcom%';
-- After the 429 every session waits for Cal.com's reset (1 s here); the
-- next check does too.
SELECT * FROM check_report() WHERE "check" LIKE 'calcom%';
-- One attempt each, no retry.
\! $CAL_STANDIN_CTL calls list_users

-- No such table, and a view: the table's rows are not checked.
SET cal_refresh.table_name = 'chk.nope';
SELECT * FROM check_report() WHERE "check" ~ '^(table|column "userUlid"|unique|rows|SELECT)';
CREATE VIEW chk.v AS SELECT * FROM chk.tokens;
SET cal_refresh.table_name = 'chk.v';
SELECT * FROM check_report() WHERE "check" = 'table';

-- A table that fits nowhere: every column and the key said so, each with
-- its fix.
CREATE TABLE chk.bad ("userUlid" text, "calAccessToken" text,
	"calAccessTokenExpiresAt" date, "calManagedUserId" text,
	"calRefreshTokenExpiresAt" timestamptz);
INSERT INTO chk.bad VALUES (NULL, 'x', NULL, NULL, NULL);
SET cal_refresh.table_name = 'chk.bad';
SELECT * FROM check_report() WHERE "check" ~ '^(table|column|unique|"userUlid"|rows)';

-- Bigint expiries, no optional columns, a nullable key: the columns fit;
-- rows without tokens or with expiries no refresh can trust are counted.
CREATE TABLE chk.ms ("userUlid" text UNIQUE, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" bigint);
INSERT INTO chk.ms VALUES
	('01OK', 'a', 'r', (extract(epoch FROM now()) * 1000)::bigint),
	('01NOTOKEN', 'a', NULL, (extract(epoch FROM now()) * 1000)::bigint),
	('01NULLEXP', 'a', 'r', NULL),
	('01INF', 'a', 'r', 9223372036854775807),
	('01YEAR', 'a', 'r', (extract(epoch FROM now() + interval '1 year') * 1000)::bigint),
	('01OLD', 'a', 'r', 0),
	(NULL, 'a', 'r', 0);
SET cal_refresh.table_name = 'chk.ms';
SELECT * FROM check_report() WHERE "check" ~ '^(column|unique|"userUlid"|rows)';

-- A row-level security policy that raises while rows are counted: the
-- error is reported in the row, and the other checks still come (cron.job
-- is not pg_cron's: not read).
CREATE FUNCTION chk.refuse() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'policy refuses'; END $$;
ALTER TABLE chk.ms ENABLE ROW LEVEL SECURITY;
CREATE POLICY refuse ON chk.ms USING (chk.refuse());
GRANT USAGE ON SCHEMA chk TO cal_app;
GRANT SELECT, UPDATE ON chk.ms TO cal_app;
GRANT EXECUTE ON FUNCTION cal_refresh_check(name) TO cal_app;
SET ROLE cal_app;
SELECT * FROM check_report() WHERE "check" ~ '^(rows|SELECT|max_requests|pg_cron)';
RESET ROLE;
REVOKE EXECUTE ON FUNCTION cal_refresh_check(name) FROM cal_app;
SET cal_refresh.table_name = 'chk.tokens';

-- Another role's privileges: cal_app was granted three of the four
-- application functions in setup, and no UPDATE here; a stranger none,
-- nor USAGE on the schema; a role that does not exist.
GRANT SELECT ON chk.tokens TO cal_app;
SELECT * FROM check_report('cal_app') WHERE "check" ~ '^(EXECUTE|SELECT)';
SELECT * FROM check_report('cal_stranger') WHERE "check" ~ '^(EXECUTE|SELECT)';
SELECT * FROM check_report('no_such_role') WHERE "check" ~ '^(EXECUTE|SELECT)';

-- The request budget: unlimited, or over Cal.com's limit.
SET cal_refresh.max_requests_per_minute = 0;
SELECT * FROM check_report() WHERE "check" = 'max_requests_per_minute';
SET cal_refresh.max_requests_per_minute = 600;
SELECT * FROM check_report() WHERE "check" = 'max_requests_per_minute';
RESET cal_refresh.max_requests_per_minute;

-- A look-alike cron.job owned by a lesser role, with a forced policy that
-- would run that role's code: not pg_cron's, never read, so the policy
-- never runs.
CREATE ROLE chk_cron_owner;
GRANT USAGE ON SCHEMA cron TO chk_cron_owner;
ALTER TABLE cron.job OWNER TO chk_cron_owner;
CREATE FUNCTION cron.whoami() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'policy run by %', current_user; END $$;
ALTER TABLE cron.job ENABLE ROW LEVEL SECURITY;
ALTER TABLE cron.job FORCE ROW LEVEL SECURITY;
CREATE POLICY whoami ON cron.job USING (cron.whoami());
SELECT * FROM check_report() WHERE "check" = 'pg_cron job';
-- Nor for a DBA who is no superuser and may read it.
GRANT USAGE ON SCHEMA cron TO cal_app;
GRANT SELECT ON cron.job TO cal_app;
GRANT EXECUTE ON FUNCTION cal_refresh_check(name) TO cal_app;
SET ROLE cal_app;
SELECT * FROM check_report() WHERE "check" = 'pg_cron job';
RESET ROLE;
REVOKE EXECUTE ON FUNCTION cal_refresh_check(name) FROM cal_app;
REVOKE ALL ON SCHEMA cron FROM cal_app;
-- A view of that name is no table: not read at all.
DROP TABLE cron.job;
CREATE VIEW cron.job AS SELECT 'x'::text AS command, 'x'::text AS database,
	cron.whoami() AS active, 'x'::text AS schedule;
SELECT * FROM check_report() WHERE "check" = 'pg_cron job';
DROP SCHEMA cron CASCADE;
DROP ROLE chk_cron_owner;
SELECT * FROM check_report() WHERE "check" = 'pg_cron job';

-- Every row, in order, whatever is broken: the same checks each time.
SET cal_refresh.table_name = 'chk.nope';
SET cal_refresh.client_id = '';
SELECT count(*), string_agg("check", ' | ') FROM cal_refresh_check();
RESET cal_refresh.client_id;
RESET cal_refresh.table_name;
DROP SCHEMA chk CASCADE;
