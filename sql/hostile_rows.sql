-- Hostile rows and roles: a NULL key, infinite and absurd expiries, a
-- read-only caller, a table owned by a less trusted role, and constraints
-- checked only at COMMIT.  Each case gets a clean outcome: no crash, no
-- escalation, and no pair lost to a refusal that comes late.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
SET cal_refresh.max_retries = 0;
DELETE FROM cal_refresh_failure;
CREATE SCHEMA hostile;

-- A NULL "userUlid" (the key is unique but not NOT NULL) is nobody: a
-- batch never takes it, and the real users beside it are refreshed.
CREATE TABLE hostile.null_keys (
	"userUlid" text UNIQUE,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz,
	"calManagedUserId" integer
);
INSERT INTO hostile.null_keys VALUES
	(NULL, 'at-old', 'rt-seed-1601', now() - interval '1 minute', 1601),
	('01NK_A', 'at-old', 'rt-seed-1602', now() - interval '1 minute', 1602),
	(NULL, 'at-old', NULL, NULL, NULL),
	('01NK_B', 'at-old', 'rt-seed-1603', now() - interval '1 minute', 1603);
\! for i in 1601 1602 1603; do $CAL_STANDIN_CTL seed $i rt-seed-$i; done
SET cal_refresh.table_name = 'hostile.null_keys';
SELECT user_ulid, success, method FROM cal_refresh_expiring_tokens();
CALL cal_refresh_expiring_tokens_job();
SELECT "userUlid", "calAccessToken" <> 'at-old' AS refreshed
FROM hostile.null_keys ORDER BY 1 NULLS FIRST, "calRefreshToken" NULLS FIRST;
SELECT user_ulid, expires_in IS NULL AS no_expires_in
FROM cal_refresh_status() ORDER BY 1 NULLS FIRST, 2;
\! $CAL_STANDIN_CTL calls

-- Infinite and absurd expiries: -infinity or a value before the year 1 is
-- due; infinity or one past the year 9999 is never due and shows in the
-- status; no single row fails a batch, the status or cal_access_token.
CREATE TABLE hostile.ms_expiry (
	"userUlid" text PRIMARY KEY,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" bigint,
	"calManagedUserId" integer
);
INSERT INTO hostile.ms_expiry VALUES
	('01MS_MIN', 'at-old', 'rt-seed-1611', -9223372036854775808, 1611),
	('01MS_MAX', 'at-max', 'rt-seed-1612', 9223372036854775807, 1612),
	('01MS_OK', 'at-old', 'rt-seed-1613', 0, 1613);
\! for i in 1611 1612 1613; do $CAL_STANDIN_CTL seed $i rt-seed-$i; done
SET cal_refresh.table_name = 'hostile.ms_expiry';
SELECT user_ulid, CASE WHEN isfinite(access_token_expires_at) THEN 'finite'
	ELSE access_token_expires_at::text END AS expires_at, expires_in IS NULL AS no_expires_in
FROM cal_refresh_status() ORDER BY 1;
SELECT user_ulid, success, method FROM cal_refresh_expiring_tokens();
SELECT cal_access_token('01MS_MAX');

CREATE TABLE hostile.ts_expiry (
	"userUlid" text PRIMARY KEY,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamp,
	"calManagedUserId" integer
);
INSERT INTO hostile.ts_expiry VALUES
	('01TS_NEG', 'at-old', 'rt-seed-1621', '-infinity', 1621),
	('01TS_POS', 'at-inf', 'rt-seed-1622', 'infinity', 1622),
	('01TS_OLD', 'at-old', 'rt-seed-1623', '0100-01-01', 1623);
\! for i in 1621 1622 1623; do $CAL_STANDIN_CTL seed $i rt-seed-$i; done
SET cal_refresh.table_name = 'hostile.ts_expiry';
SELECT user_ulid, CASE WHEN isfinite(access_token_expires_at) THEN 'finite'
	ELSE access_token_expires_at::text END AS expires_at, expires_in IS NULL AS no_expires_in
FROM cal_refresh_status() ORDER BY 1;
SELECT user_ulid, success, method FROM cal_refresh_expiring_tokens();
SELECT cal_access_token('01TS_POS');
RESET cal_refresh.table_name;

-- An absurd interval is refused, not overflowed.
SELECT try($$SELECT cal_access_token('01X', interval '178000000 years')$$);
SELECT try($$SELECT cal_access_token('01X', interval '-178000000 years 1 minute')$$);
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens(interval '2147483647 days')$$);

-- Read-only: a token that still works is served, with a WARNING that says
-- why it was not refreshed; one that no longer works raises 25006.
SELECT seed_row('01RO', 1631, 'rt-seed-1631');
UPDATE public."CalendarIntegration" SET "calAccessToken" = 'at-ro',
	"calAccessTokenExpiresAt" = now() AT TIME ZONE 'UTC' + interval '1 minute'
WHERE "userUlid" = '01RO';
SELECT seed_row('01RO_EXPIRED', 1632, 'rt-seed-1632');
\! $CAL_STANDIN_CTL reset
BEGIN READ ONLY;
SELECT cal_access_token('01RO');
SELECT try($$SELECT cal_access_token('01RO_EXPIRED')$$);
ROLLBACK;
\! $CAL_STANDIN_CTL calls

-- A table whose owner is not a superuser: a superuser's call runs the
-- owner's trigger as the owner, in a security-restricted operation, so
-- the trigger cannot make its owner a superuser; another role's call runs
-- it as that role, as any UPDATE would.
CREATE ROLE cal_owner;
GRANT USAGE ON SCHEMA hostile TO cal_owner, cal_app;
CREATE TABLE hostile.owned (
	"userUlid" text PRIMARY KEY,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz,
	"calManagedUserId" integer
);
CREATE TABLE hostile.trigger_log (user_ulid text, run_as name, superuser boolean,
	escalated text);
CREATE FUNCTION hostile.on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	escalated text := 'no';
BEGIN
	IF NEW."userUlid" = '01OWN_ESCALATE' THEN
		BEGIN
			EXECUTE 'ALTER ROLE cal_owner SUPERUSER';
			escalated := 'yes';
		EXCEPTION WHEN OTHERS THEN
			escalated := SQLSTATE;
		END;
	END IF;
	INSERT INTO hostile.trigger_log
	SELECT NEW."userUlid", current_user, r.rolsuper, escalated
	FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
	RETURN NEW;
END
$$;
CREATE TRIGGER on_update BEFORE UPDATE ON hostile.owned
	FOR EACH ROW EXECUTE FUNCTION hostile.on_update();
ALTER TABLE hostile.owned OWNER TO cal_owner;
ALTER TABLE hostile.trigger_log OWNER TO cal_owner;
ALTER FUNCTION hostile.on_update() OWNER TO cal_owner;
GRANT SELECT, UPDATE ON hostile.owned TO cal_app;
GRANT INSERT ON hostile.trigger_log TO cal_app;
INSERT INTO hostile.owned VALUES
	('01OWN_SU', 'at-old', 'rt-seed-1641', now() - interval '1 minute', 1641),
	('01OWN_ESCALATE', 'at-old', 'rt-seed-1642', now() - interval '1 minute', 1642),
	('01OWN_APP', 'at-old', 'rt-seed-1643', now() - interval '1 minute', 1643),
	('01OWN_JOB', 'at-old', 'rt-seed-1644', now() - interval '1 minute', 1644);
\! for i in 1641 1642 1643 1644; do $CAL_STANDIN_CTL seed $i rt-seed-$i; done
SET cal_refresh.table_name = 'hostile.owned';
SELECT (outcome(r)).success, (outcome(r)).method
FROM cal_refresh_user_tokens('01OWN_SU') r;
SELECT (outcome(r)).success, (outcome(r)).method
FROM cal_refresh_user_tokens('01OWN_ESCALATE') r;
SET ROLE cal_app;
SELECT (outcome(r)).success, (outcome(r)).method
FROM cal_refresh_user_tokens('01OWN_APP') r;
RESET ROLE;
CALL cal_refresh_expiring_tokens_job();
SELECT * FROM hostile.trigger_log ORDER BY user_ulid;
SELECT rolsuper FROM pg_roles WHERE rolname = 'cal_owner';
RESET cal_refresh.table_name;

-- A constraint checked at COMMIT (a deferred constraint trigger) refuses
-- one user: inside a batch only that user fails, and the pairs of the
-- others survive the COMMIT; for a single call, the refusal comes from
-- the call itself rather than from the caller's COMMIT.
CREATE TABLE hostile.deferred (
	"userUlid" text PRIMARY KEY,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz,
	"calManagedUserId" integer
);
CREATE FUNCTION hostile.refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW."userUlid" LIKE '%REFUSED' AND NEW."calAccessToken" <> 'at-old' THEN
		RAISE EXCEPTION 'refused at commit for %', NEW."userUlid";
	END IF;
	RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER UPDATE ON hostile.deferred
	DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW EXECUTE FUNCTION hostile.refuse_at_commit();
INSERT INTO hostile.deferred VALUES
	('01DF_A', 'at-old', 'rt-seed-1651', now() - interval '1 minute', 1651),
	('01DF_REFUSED', 'at-old', 'rt-seed-1652', now() - interval '1 minute', 1652),
	('01DF_Z', 'at-old', 'rt-seed-1653', now() - interval '1 minute', 1653),
	('01DF_ONE', 'at-old', 'rt-seed-1654', now() - interval '1 minute', 1654),
	('01DF_ONE_REFUSED', 'at-old', 'rt-seed-1655', now() - interval '1 minute', 1655);
\! for i in 1651 1652 1653 1654 1655; do $CAL_STANDIN_CTL seed $i rt-seed-$i; done
SET cal_refresh.table_name = 'hostile.deferred';
SELECT (outcome(r)).success, (outcome(r)).method
FROM cal_refresh_user_tokens('01DF_ONE') r;
SELECT try($$SELECT cal_refresh_user_tokens('01DF_ONE_REFUSED')$$);
DELETE FROM hostile.deferred WHERE "userUlid" LIKE '01DF_ONE%';
CALL cal_refresh_expiring_tokens_job();
SELECT "userUlid", "calAccessToken" <> 'at-old' AS refreshed
FROM hostile.deferred ORDER BY 1;
SELECT user_ulid, error_code, error FROM cal_refresh_failure
WHERE user_ulid LIKE '01DF%';
-- A deferred check the caller left pending is not ours to judge: the
-- pair is stored, and the caller's COMMIT decides as before.
BEGIN;
UPDATE hostile.deferred SET "calAccessToken" = 'at-pending'
WHERE "userUlid" = '01DF_REFUSED';
UPDATE hostile.deferred SET "calAccessTokenExpiresAt" = now() - interval '1 minute'
WHERE "userUlid" = '01DF_A';
SELECT (outcome(r)).success, (outcome(r)).method
FROM cal_refresh_user_tokens('01DF_A') r;
ROLLBACK;
RESET cal_refresh.table_name;
DELETE FROM cal_refresh_failure;

-- A deferred unique constraint that the given tokens break is refused by
-- the call, not at COMMIT, and its detail (which would show the token) is
-- not shown.
CREATE TABLE hostile.deferred_unique (
	"userUlid" text PRIMARY KEY,
	"calAccessToken" text UNIQUE DEFERRABLE INITIALLY DEFERRED,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz
);
INSERT INTO hostile.deferred_unique VALUES
	('01DU_A', 'at-taken', 'rt-a', now()), ('01DU_B', 'at-free', 'rt-b', now());
SET cal_refresh.table_name = 'hostile.deferred_unique';
\set VERBOSITY default
SELECT success FROM cal_update_tokens('01DU_B', 'at-taken', 'rt-new', now() + interval '1 hour');
\set VERBOSITY terse
SELECT "userUlid", "calAccessToken" FROM hostile.deferred_unique ORDER BY 1;
RESET cal_refresh.table_name;
