-- Shared fixtures for the pg_regress tests: the extension, the application's
-- table as Prisma creates it, roles, and a helper that seeds a user both in
-- the table and in the Cal.com stand-in.
\set VERBOSITY terse
CREATE EXTENSION cal_refresh;

-- The table as a Prisma schema creates it: timestamp(3) without time zone.
CREATE TABLE public."CalendarIntegration" (
	id serial PRIMARY KEY,
	"userUlid" text NOT NULL UNIQUE,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamp(3),
	"calRefreshTokenExpiresAt" timestamp(3),
	"calManagedUserId" integer,
	"updatedAt" timestamp(3) NOT NULL DEFAULT '2000-01-01'
);

-- The application role gets what README says it needs.
CREATE ROLE cal_app LOGIN;
CREATE ROLE cal_stranger LOGIN;
GRANT SELECT, UPDATE ON public."CalendarIntegration" TO cal_app, cal_stranger;
GRANT EXECUTE ON FUNCTION cal_refresh_user_tokens(text),
	cal_update_tokens(text, text, text, timestamptz, timestamptz),
	cal_update_tokens_ms(text, text, text, bigint, bigint) TO cal_app;

-- (Re)creates a user's row with an expired access token and the given
-- refresh token; the stand-in is seeded separately with \! ... seed.
CREATE FUNCTION seed_row(ulid text, managed_id integer, refresh_token text)
RETURNS void LANGUAGE sql AS $$
	DELETE FROM public."CalendarIntegration" WHERE "userUlid" = ulid;
	INSERT INTO public."CalendarIntegration"
		("userUlid", "calAccessToken", "calRefreshToken",
		 "calAccessTokenExpiresAt", "calRefreshTokenExpiresAt",
		 "calManagedUserId")
	VALUES (ulid, 'at-old-' || ulid, refresh_token,
			now() AT TIME ZONE 'UTC' - interval '1 minute',
			'2001-01-01', managed_id);
$$;

-- A result without the parts that change between runs.
CREATE FUNCTION outcome(r cal_token_result)
RETURNS TABLE (success boolean, method text, error_code text, error text,
			   has_access_token boolean, access_valid_55min boolean,
			   refresh_valid_300d boolean)
LANGUAGE sql AS $$
	SELECT r.success, r.method, r.error_code,
		   regexp_replace(regexp_replace(r.error, '"/[^"]*"', '"<path>"', 'g'),
						  '[0-9]+ ms', 'N ms', 'g'),
		   r.access_token IS NOT NULL,
		   r.access_token_expires_at > now() + interval '55 minutes',
		   r.refresh_token_expires_at > now() + interval '300 days';
$$;

-- The stored row, reduced to what tests compare.
CREATE FUNCTION row_state(ulid text)
RETURNS TABLE (access_token_changed boolean, refresh_token text,
			   access_valid_55min boolean, refresh_valid_300d boolean,
			   updated_recently boolean)
LANGUAGE sql AS $$
	SELECT "calAccessToken" <> 'at-old-' || ulid,
		   CASE WHEN "calRefreshToken" LIKE 'rt-seed-%' THEN "calRefreshToken"
				ELSE '<rotated>' END,
		   "calAccessTokenExpiresAt" > now() AT TIME ZONE 'UTC' + interval '55 minutes',
		   "calRefreshTokenExpiresAt" > now() AT TIME ZONE 'UTC' + interval '300 days',
		   "updatedAt" > now() AT TIME ZONE 'UTC' - interval '1 minute'
	FROM public."CalendarIntegration" WHERE "userUlid" = ulid;
$$;

-- Runs a statement; returns 'ok' or its SQLSTATE and message, so misuse
-- tests show the SQLSTATE callers can rely on.
CREATE FUNCTION try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

\! $CAL_STANDIN_CTL reset
SELECT extname, extversion FROM pg_extension WHERE extname = 'cal_refresh';
