-- cal_update_tokens and cal_update_tokens_ms: storing tokens the caller
-- already has, into every supported expiry column type.
\set VERBOSITY terse

SELECT seed_row('01UPD', 401, 'rt-seed-401');

-- timestamp(3) columns (Prisma): stored as UTC whatever the session zone.
SET timezone = 'America/New_York';
SELECT success, user_ulid, method, access_token, access_token_expires_at,
	   refresh_token_expires_at, error_code
FROM cal_update_tokens('01UPD', 'at-new', 'rt-new',
					   '2030-01-02 03:04:05+00', '2031-01-01 00:00:00+00');
SELECT "calAccessToken", "calRefreshToken", "calAccessTokenExpiresAt",
	   "calRefreshTokenExpiresAt", "updatedAt" > '2000-01-01' AS updated
FROM public."CalendarIntegration" WHERE "userUlid" = '01UPD';
RESET timezone;

-- Without a refresh-token expiry the stored one is kept.
SELECT success, refresh_token_expires_at
FROM cal_update_tokens('01UPD', 'at-2', 'rt-2', '2030-06-01 00:00:00+00');
SELECT "calRefreshTokenExpiresAt" FROM public."CalendarIntegration"
WHERE "userUlid" = '01UPD';

-- Cal.com's millisecond numbers.
SELECT success, method, access_token_expires_at AT TIME ZONE 'UTC' AS at_utc,
	   refresh_token_expires_at AT TIME ZONE 'UTC' AS rt_utc
FROM cal_update_tokens_ms('01UPD', 'at-ms', 'rt-ms', 1893456000000, 1924992000123);
SELECT "calAccessTokenExpiresAt", "calRefreshTokenExpiresAt"
FROM public."CalendarIntegration" WHERE "userUlid" = '01UPD';

-- An unknown user is a result, not an error; nothing is written.
SELECT success, error_code, error FROM cal_update_tokens('01NOBODY', 'a', 'b', now());

-- timestamptz columns, no optional columns, varchar key.
CREATE TABLE public.tok_tz (
	"userUlid" varchar(26) PRIMARY KEY,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz,
	"calRefreshTokenExpiresAt" timestamptz
);
INSERT INTO public.tok_tz VALUES ('01TZ', 'a', 'b', NULL, NULL);
SET cal_refresh.table_name = 'public.tok_tz';
SELECT success, method FROM cal_update_tokens('01TZ', 'at-tz', 'rt-tz',
	'2030-01-02 03:04:05+00', '2031-01-01 00:00:00+00');
SELECT "calAccessToken", "calRefreshToken",
	   "calAccessTokenExpiresAt" AT TIME ZONE 'UTC' AS at_utc,
	   "calRefreshTokenExpiresAt" AT TIME ZONE 'UTC' AS rt_utc
FROM public.tok_tz;

-- bigint millisecond columns.
CREATE TABLE public.tok_ms (
	"userUlid" text UNIQUE,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" bigint,
	"calRefreshTokenExpiresAt" bigint,
	"updatedAt" timestamptz
);
INSERT INTO public.tok_ms VALUES ('01MS', 'a', 'b', 0, 0, NULL);
SET cal_refresh.table_name = 'public.tok_ms';
SELECT success, method FROM cal_update_tokens('01MS', 'at-ms', 'rt-ms',
	'2030-01-02 03:04:05.678+00', '2031-01-01 00:00:00+00');
SELECT success FROM cal_update_tokens_ms('01MS', 'at-ms2', 'rt-ms2', 1893456000000);
SELECT "calAccessToken", "calRefreshToken", "calAccessTokenExpiresAt",
	   "calRefreshTokenExpiresAt", "updatedAt" IS NOT NULL AS updated
FROM public.tok_ms;
RESET cal_refresh.table_name;

-- Misuse raises: NULL is 22004, empty or implausible values 22023; no
-- message ever repeats a token.
SELECT try(statement) FROM (VALUES
	($$SELECT cal_update_tokens(NULL, 'a', 'b', now())$$),
	($$SELECT cal_update_tokens('', 'a', 'b', now())$$),
	($$SELECT cal_update_tokens('01UPD', NULL, 'b', now())$$),
	($$SELECT cal_update_tokens('01UPD', 'a', '', now())$$),
	($$SELECT cal_update_tokens('01UPD', 'a', 'b', NULL)$$),
	($$SELECT cal_update_tokens('01UPD', 'a', 'b', 'infinity')$$),
	($$SELECT cal_update_tokens('01UPD', 'a', 'b', now(), '-infinity')$$),
	($$SELECT cal_update_tokens('01UPD', 'secret a', 'c', now())$$),
	($$SELECT cal_update_tokens('01UPD', 'a', E'secret\nc', now())$$),
	($$SELECT cal_update_tokens('01UPD', 'a', repeat('x', 5000), now())$$),
	($$SELECT cal_update_tokens(repeat('u', 2000), 'a', 'b', now())$$),
	($$SELECT cal_update_tokens(E'01\tUPD', 'a', 'b', now())$$),
	($$SELECT cal_update_tokens_ms('01UPD', 'a', 'b', -1)$$),
	($$SELECT cal_update_tokens_ms('01UPD', 'a', 'b', 0)$$),
	($$SELECT cal_update_tokens_ms('01UPD', 'a', 'b', 9223372036854775807)$$),
	($$SELECT cal_update_tokens_ms('01UPD', 'a', 'b', 1893456000000, -5)$$),
	($$SELECT cal_update_tokens_ms('01UPD', 'a', 'b', NULL)$$),
	-- An untyped NULL expiry is not ambiguous: the two names differ.
	($$SELECT cal_update_tokens('01UPD', 'a', 'b', NULL, NULL)$$),
	($$SELECT cal_update_tokens_ms('01UPD', 'a', 'b', NULL, NULL)$$)
) AS v(statement);
\set VERBOSITY terse

-- None of the rejected calls changed the row.
SELECT "calAccessToken", "calRefreshToken" FROM public."CalendarIntegration"
WHERE "userUlid" = '01UPD';

-- When the application's own constraint rejects the new tokens, the error
-- does not show the failing row (it would hold them).
CREATE TABLE public.tok_checked (
	"userUlid" text PRIMARY KEY,
	"calAccessToken" text,
	"calRefreshToken" text CHECK (length("calRefreshToken") < 10),
	"calAccessTokenExpiresAt" timestamptz
);
INSERT INTO public.tok_checked VALUES ('01CHK', 'a', 'b', now());
SET cal_refresh.table_name = 'public.tok_checked';
\set VERBOSITY default
SELECT cal_update_tokens('01CHK', 'secret-access', 'secret-refresh-token', now());
\set VERBOSITY terse
RESET cal_refresh.table_name;

-- A refresh token never comes back in the result.
SELECT count(*) AS result_columns_named_refresh_token
FROM pg_attribute
WHERE attrelid = 'cal_token_result'::regclass AND attname = 'refresh_token';
