-- The application's table: found without search_path, checked column by
-- column, with an error naming what is missing.  Nothing is ever created.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset

-- A table that does not exist.
SET cal_refresh.table_name = 'public.nope';
SELECT (outcome(r)).* FROM cal_update_tokens('01X', 'a', 'b', now()) r;
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;
SET cal_refresh.table_name = 'no_schema."CalendarIntegration"';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;

-- Missing required columns, wrong types, no unique key, not a table.
CREATE TABLE public.t_missing ("userUlid" text UNIQUE, "calAccessToken" text);
SET cal_refresh.table_name = 'public.t_missing';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;

CREATE TABLE public.t_no_expiry ("userUlid" text UNIQUE, "calAccessToken" text,
	"calRefreshToken" text);
SET cal_refresh.table_name = 'public.t_no_expiry';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;

CREATE TABLE public.t_bad_expiry ("userUlid" text UNIQUE, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" date);
SET cal_refresh.table_name = 'public.t_bad_expiry';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;

CREATE TABLE public.t_bad_user_id ("userUlid" text UNIQUE, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz,
	"calManagedUserId" text);
SET cal_refresh.table_name = 'public.t_bad_user_id';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;

CREATE TABLE public.t_not_unique ("userUlid" text, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz);
SET cal_refresh.table_name = 'public.t_not_unique';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;

-- Adding the unique key fixes it in the same session: the check re-runs.
CREATE UNIQUE INDEX ON public.t_not_unique ("userUlid");
SELECT (outcome(r)).* FROM cal_update_tokens('01X', 'a', 'b', now()) r;

CREATE VIEW public.v_tokens AS SELECT * FROM public."CalendarIntegration";
SET cal_refresh.table_name = 'public.v_tokens';
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01X') r;

-- Dropping a column the extension needs is noticed at the next call.
SET cal_refresh.table_name = 'public.t_not_unique';
ALTER TABLE public.t_not_unique DROP COLUMN "calRefreshToken";
SELECT (outcome(r)).* FROM cal_update_tokens('01X', 'a', 'b', now()) r;
RESET cal_refresh.table_name;

-- A temporary table named "CalendarIntegration" cannot stand in for the
-- real one, whatever search_path says: the victim's row is refreshed in
-- the real table, and the temporary table stays untouched.
SELECT seed_row('01VICTIM', 501, 'rt-seed-501');
\! $CAL_STANDIN_CTL seed 501 rt-seed-501
CREATE TEMP TABLE "CalendarIntegration" (LIKE public."CalendarIntegration");
CREATE UNIQUE INDEX ON pg_temp."CalendarIntegration" ("userUlid");
INSERT INTO pg_temp."CalendarIntegration" (id, "userUlid", "calRefreshToken",
	"calManagedUserId", "updatedAt")
VALUES (1, '01VICTIM', 'rt-attacker', 501, now()),
	   (2, '01ATTACKER', 'rt-attacker', 501, now());
SET search_path = pg_temp, public;
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01ATTACKER') r;
SELECT (outcome(r)).* FROM cal_refresh_user_tokens('01VICTIM') r;
SELECT "calRefreshToken", "calAccessToken" IS NULL AS untouched
FROM pg_temp."CalendarIntegration" ORDER BY "userUlid";
RESET search_path;
SELECT (row_state('01VICTIM')).*;
DROP TABLE pg_temp."CalendarIntegration";
\! $CAL_STANDIN_CTL calls
