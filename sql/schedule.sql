-- The scheduled refresh: cal_refresh_expiring_tokens, the job procedure,
-- failure bookkeeping with backoff, and cal_refresh_status().  A table of
-- its own (cal_refresh.table_name), so that the rows other tests leave
-- behind are not due here.
\set VERBOSITY terse
\! $CAL_STANDIN_CTL reset
SET cal_refresh.max_retries = 0;
-- Earlier tests' failures are of no interest here.
DELETE FROM cal_refresh_failure;

CREATE SCHEMA sched;
CREATE TABLE sched."CalendarIntegration" (
	"userUlid" varchar(32) PRIMARY KEY,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" bigint,		-- Cal.com's milliseconds
	"calManagedUserId" bigint
);
SET cal_refresh.table_name = 'sched."CalendarIntegration"';

-- expires_in: minutes from now (NULL: unknown expiry).
CREATE FUNCTION sched.seed(ulid text, managed_id bigint, refresh_token text,
						   expires_in integer)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO sched."CalendarIntegration" VALUES
		(ulid, 'at-old', refresh_token,
		 (extract(epoch FROM now() + expires_in * interval '1 minute') * 1000)::bigint,
		 managed_id);
$$;
CREATE FUNCTION sched.fresh(ulid text) RETURNS boolean LANGUAGE sql AS $$
	SELECT "calAccessToken" <> 'at-old'
		   AND "calAccessTokenExpiresAt" > extract(epoch FROM now() + interval '55 minutes') * 1000
	FROM sched."CalendarIntegration" WHERE "userUlid" = ulid;
$$;

-- Misuse raises, with the SQLSTATE callers can rely on.
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens(NULL)$$);
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens('56 minutes')$$);
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens('-1 minute')$$);
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens(max_users => 0)$$);
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens(max_users => 10001)$$);
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens(max_users => NULL)$$);
SELECT try($$CALL cal_refresh_expiring_tokens_job(batch_size => 0)$$);
-- The job commits after each batch: inside a transaction block it refuses.
BEGIN;
CALL cal_refresh_expiring_tokens_job();
ROLLBACK;
-- Problems of configuration raise (55000) instead of failing every user.
SET cal_refresh.client_id = '';
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens()$$);
RESET cal_refresh.client_id;
SET cal_refresh.table_name = 'sched.missing';
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens()$$);
SELECT try($$SELECT * FROM cal_refresh_status()$$);
SET cal_refresh.table_name = 'sched."CalendarIntegration"';
BEGIN READ ONLY;
SELECT try($$SELECT * FROM cal_refresh_expiring_tokens()$$);
ROLLBACK;

-- Who is due: expired, expiring within `within`, or of unknown expiry;
-- not a token with time left, and each at most max_users at a time, in
-- the "C" order of the key (lower case sorts after upper case).
SELECT sched.seed('01EXPIRED', 501, 'rt-seed-501', -5);
SELECT sched.seed('01SOON', 502, 'rt-seed-502', 3);
SELECT sched.seed('01LATER', 503, 'rt-seed-503', 45);
SELECT sched.seed('01UNKNOWN', 504, 'rt-seed-504', NULL);
SELECT sched.seed('01lower', 505, 'rt-seed-505', -1);
\! for i in 501 502 503 504 505; do $CAL_STANDIN_CTL seed $i rt-seed-$i; done
UPDATE sched."CalendarIntegration" SET "calAccessTokenExpiresAt" = NULL
WHERE "userUlid" = '01UNKNOWN';

SELECT user_ulid, (outcome(r)).success, (outcome(r)).method,
	   (outcome(r)).access_valid_55min
FROM cal_refresh_expiring_tokens(max_users => 2) r;
SELECT user_ulid, success, method
FROM cal_refresh_expiring_tokens(within => '10 minutes') r;
SELECT "userUlid", sched.fresh("userUlid") FROM sched."CalendarIntegration"
ORDER BY 1;
\! $CAL_STANDIN_CTL calls
-- Nothing is due any more.
SELECT count(*) FROM cal_refresh_expiring_tokens();

-- A user that cannot be refreshed: Cal.com knows neither its refresh
-- token (400) nor its managed user id (404).  It fails, and backs off.
SELECT sched.seed('01BROKEN', 599, 'rt-unknown', -5);
SELECT user_ulid, success, method, error_code, error
FROM cal_refresh_expiring_tokens();
SELECT user_ulid, last_error_code, last_error, failures,
	   next_attempt_at - last_failure_at AS backoff,
	   expires_in < interval '0' AS expired
FROM cal_refresh_status() WHERE failures IS NOT NULL;
-- The next batch does not try it (no call reaches Cal.com) ...
\! $CAL_STANDIN_CTL reset
SELECT count(*) FROM cal_refresh_expiring_tokens();
\! $CAL_STANDIN_CTL calls
-- ... but a person asking for this user gets a real attempt, which
-- counts: two failures, a two-minute backoff.
SELECT success, error_code FROM cal_refresh_user_tokens('01BROKEN');
\! $CAL_STANDIN_CTL calls
SELECT failures, next_attempt_at - last_failure_at AS backoff
FROM cal_refresh_status() WHERE user_ulid = '01BROKEN';
-- Each backoff doubles the last one, up to six hours and no further.
UPDATE cal_refresh_failure SET failures = 40,
	last_failure_at = now() - interval '5 hours',
	next_attempt_at = now() - interval '1 hour'
WHERE user_ulid = '01BROKEN';
SELECT success FROM cal_refresh_user_tokens('01BROKEN');
SELECT failures, next_attempt_at - last_failure_at AS backoff
FROM cal_refresh_status() WHERE user_ulid = '01BROKEN';
-- Once the stand-in knows the user, a success clears the record.
\! $CAL_STANDIN_CTL seed 599 rt-unknown
SELECT success, method FROM cal_refresh_user_tokens('01BROKEN');
SELECT count(*) FROM cal_refresh_failure;

-- Trouble on Cal.com's side (a 503, no fallback) is recorded but does not
-- back off: the next run tries again.
UPDATE sched."CalendarIntegration" SET "calAccessTokenExpiresAt" = 0
WHERE "userUlid" = '01EXPIRED';
\! $CAL_STANDIN_CTL fault refresh status --status 503
SELECT user_ulid, success, error_code FROM cal_refresh_expiring_tokens();
SELECT user_ulid, last_error_code, failures,
	   next_attempt_at = last_failure_at AS retried_next_run
FROM cal_refresh_status() WHERE failures IS NOT NULL;
SELECT user_ulid, success, method FROM cal_refresh_expiring_tokens();
SELECT count(*) FROM cal_refresh_failure;

-- cal_update_tokens stores tokens the application had issued itself: the
-- user's failures no longer matter.
INSERT INTO cal_refresh_failure VALUES
	('01LATER', 'calcom_rejected', 'x', 3, now(), now() + interval '1 hour');
SELECT success FROM cal_update_tokens('01LATER', 'at-new', 'rt-new', now() + interval '1 hour');
SELECT count(*) FROM cal_refresh_failure;

-- The job: batches of 2, each committed, walking the keys once.  A user
-- failing in a batch is not visited again in the same run.
\! $CAL_STANDIN_CTL reset
UPDATE sched."CalendarIntegration" SET "calAccessTokenExpiresAt" = 0;
SELECT sched.seed('01BROKEN2', 598, 'rt-unknown2', -5);
-- The job also prunes the failure records of users whose row is gone (the
-- application deleted them): nothing else would ever clear them.
INSERT INTO cal_refresh_failure VALUES
	('01GONE', 'calcom_rejected', 'x', 2, now(), now() + interval '1 hour');
CALL cal_refresh_expiring_tokens_job(batch_size => 2);
SELECT count(*) AS gone_users_records FROM cal_refresh_failure
WHERE user_ulid = '01GONE';
SELECT "userUlid", sched.fresh("userUlid") FROM sched."CalendarIntegration"
ORDER BY "userUlid" COLLATE "C";
\! $CAL_STANDIN_CTL calls
SELECT user_ulid, failures FROM cal_refresh_status() WHERE failures IS NOT NULL;

-- cal_refresh_status(): every user, failing ones first, then by expiry.
SELECT user_ulid, expires_in > interval '55 minutes' AS fresh,
	   last_error_code IS NOT NULL AS failing
FROM cal_refresh_status() ORDER BY failing DESC, user_ulid COLLATE "C";
SELECT user_ulid AS listed_first FROM cal_refresh_status() LIMIT 1;

-- The job walks the keys once per run: users failing without backoff (a
-- 503) are not taken again by the next batch.  Three due users, batches of
-- two: each is tried exactly once, and the run ends on the short batch.
UPDATE sched."CalendarIntegration" SET "calAccessTokenExpiresAt" =
	(extract(epoch FROM now() + interval '1 hour') * 1000)::bigint;
DELETE FROM cal_refresh_failure;
UPDATE sched."CalendarIntegration" SET "calAccessTokenExpiresAt" = 0
WHERE "userUlid" IN ('01EXPIRED', '01SOON', '01UNKNOWN');
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL fault refresh status --status 503 --count -1
SET cal_refresh.job_max_runtime = '3s';
CALL cal_refresh_expiring_tokens_job(batch_size => 2);
RESET cal_refresh.job_max_runtime;
\! $CAL_STANDIN_CTL calls
SELECT user_ulid, last_error_code, failures FROM cal_refresh_status()
WHERE failures IS NOT NULL ORDER BY 1;
\! $CAL_STANDIN_CTL reset
DELETE FROM cal_refresh_failure;

-- A pair the application's table refuses (here a trigger) fails that user
-- alone: the users around it in the batch keep their new pairs.
CREATE FUNCTION sched.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW."userUlid" = '01SOON' THEN
		RAISE EXCEPTION 'refused by the application';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER refuse BEFORE UPDATE ON sched."CalendarIntegration"
	FOR EACH ROW EXECUTE FUNCTION sched.refuse();
SELECT "calRefreshToken" AS soon_rt FROM sched."CalendarIntegration"
WHERE "userUlid" = '01SOON' \gset
SELECT user_ulid, success, method, error_code, error
FROM cal_refresh_expiring_tokens();
SELECT "userUlid", sched.fresh("userUlid"),
	   "calRefreshToken" = :'soon_rt' AS kept_old_token
FROM sched."CalendarIntegration"
WHERE "userUlid" IN ('01EXPIRED', '01SOON', '01UNKNOWN') ORDER BY 1;
SELECT user_ulid, last_error_code, failures,
	   next_attempt_at - last_failure_at AS backoff
FROM cal_refresh_status() WHERE failures IS NOT NULL;
DROP TRIGGER refuse ON sched."CalendarIntegration";
DELETE FROM cal_refresh_failure;

-- A trigger on the table may itself refresh another user, even after a
-- schema change has invalidated what the extension knows of the table:
-- the statement being run is not freed under its feet.  (Triggers run
-- with the extension's pinned search_path: they name things in full.)
CREATE FUNCTION sched.cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW."userUlid" = '01EXPIRED' THEN
		CREATE SCHEMA sched_scratch;
		DROP SCHEMA sched_scratch;
		PERFORM public.cal_refresh_user_tokens('01UNKNOWN');
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER cascade AFTER UPDATE ON sched."CalendarIntegration"
	FOR EACH ROW EXECUTE FUNCTION sched.cascade();
UPDATE sched."CalendarIntegration" SET "calAccessTokenExpiresAt" = 0
WHERE "userUlid" IN ('01EXPIRED', '01SOON');
\! $CAL_STANDIN_CTL reset
SELECT user_ulid, success, method FROM cal_refresh_expiring_tokens();
SELECT success, method FROM cal_refresh_user_tokens('01EXPIRED');
\! $CAL_STANDIN_CTL calls
SELECT "userUlid", sched.fresh("userUlid") FROM sched."CalendarIntegration"
WHERE "userUlid" IN ('01EXPIRED', '01SOON', '01UNKNOWN') ORDER BY 1;
DROP TRIGGER cascade ON sched."CalendarIntegration";

-- Privileges: the application role may record failures without any
-- privilege on cal_refresh_failure, which stays closed to it.
DELETE FROM cal_refresh_failure;
GRANT USAGE ON SCHEMA sched TO cal_app;
GRANT SELECT, UPDATE ON sched."CalendarIntegration" TO cal_app;
SET ROLE cal_app;
SELECT success, error_code FROM cal_refresh_user_tokens('01BROKEN2');
SELECT try($$SELECT count(*) FROM cal_refresh_failure$$);
SELECT try($$SELECT count(*) FROM cal_refresh_status()$$);
SELECT try($$SELECT count(*) FROM cal_refresh_expiring_tokens()$$);
RESET ROLE;
SELECT user_ulid, failures FROM cal_refresh_failure;
-- With EXECUTE granted, the batch runs with the caller's privileges on
-- the application's table.
GRANT EXECUTE ON FUNCTION cal_refresh_status(),
	cal_refresh_expiring_tokens(interval, integer) TO cal_app;
REVOKE UPDATE ON sched."CalendarIntegration" FROM cal_app;
SET ROLE cal_app;
SELECT count(*) FROM cal_refresh_status();
SELECT try($$SELECT count(*) FROM cal_refresh_expiring_tokens()$$);
RESET ROLE;
REVOKE ALL ON FUNCTION cal_refresh_status(),
	cal_refresh_expiring_tokens(interval, integer) FROM cal_app;
REVOKE ALL ON sched."CalendarIntegration" FROM cal_app;
REVOKE USAGE ON SCHEMA sched FROM cal_app;

-- pg_dump keeps the failure records with the extension.
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) t(oid)
JOIN pg_class c ON c.oid = t.oid WHERE e.extname = 'cal_refresh';

DELETE FROM cal_refresh_failure;
RESET cal_refresh.table_name;
DROP SCHEMA sched CASCADE;
\! $CAL_STANDIN_CTL reset
