-- Hostile arguments and rows: each gets its documented error, sends
-- nothing malformed to Cal.com (here: nothing at all, unless said), and
-- changes no row.
\set VERBOSITY terse
SET cal_refresh.max_retries = 0;
\! $CAL_STANDIN_CTL reset
SELECT seed_row('01HOST', 151, 'rt-seed-151');
\! $CAL_STANDIN_CTL seed 151 rt-seed-151

CREATE FUNCTION table_digest() RETURNS text LANGUAGE sql AS $$
	SELECT md5(string_agg(t::text, ',' ORDER BY t."userUlid"))
	FROM public."CalendarIntegration" t;
$$;
SELECT table_digest() AS digest_before \gset

-- Arguments.
SELECT try(statement) FROM (VALUES
	($$SELECT cal_refresh_user_tokens(NULL)$$),
	($$SELECT cal_refresh_user_tokens('')$$),
	($$SELECT cal_refresh_user_tokens(repeat('A', 1024 * 1024))$$),
	($$SELECT cal_refresh_user_tokens(E'01HOST\x01')$$),
	($$SELECT cal_refresh_user_tokens(E'01HOST\r\nX-Injected: 1')$$),
	($$SELECT cal_update_tokens('01HOST', repeat('a', 1024 * 1024), 'b', now())$$),
	($$SELECT cal_update_tokens('01HOST', 'a', E'b\x7f', now())$$),
	($$SELECT cal_update_tokens('01HOST', 'a', E'b\tc', now())$$),
	($$SELECT cal_update_tokens('01HOST', 'a', 'b', 'infinity')$$),
	($$SELECT cal_update_tokens_ms('01HOST', 'a', 'b', -1)$$),
	($$SELECT cal_update_tokens_ms('01HOST', 'a', 'b', 253402300800000)$$),
	($$SELECT cal_update_tokens_ms('01HOST', 'a', 'b', 1893456000000, -9223372036854775808)$$)
) AS v(statement);

-- Keys that are text, however odd: no such row, nothing sent.
SELECT k AS user_ulid, r.error_code, r.error
FROM (VALUES
	($$'; DROP TABLE public."CalendarIntegration"; --$$),
	('../../etc/passwd'),
	('01HOST%2F..%2Fforce-refresh'),
	('01HOST/../1/force-refresh'),
	(E'01HOST\\'),
	('ünïcødé-ключ'),
	('01host'),
	(' 01HOST')
) AS v(k), LATERAL cal_refresh_user_tokens(k) r;
\! $CAL_STANDIN_CTL calls
SELECT table_digest() = :'digest_before' AS no_row_changed;

-- Rows.  A key with quotes is looked up as it is (parameters, not text).
INSERT INTO public."CalendarIntegration" ("userUlid", "calRefreshToken",
	"calManagedUserId")
VALUES ($$O'Brien"; --$$, NULL, NULL),
	   ('01NEGATIVE', NULL, -1),
	   ('01ZERO', NULL, 0),
	   ('01EMPTY_RT', '', NULL),
	   ('01HUGE_RT', repeat('r', 100 * 1024), NULL),
	   ('01CRLF_RT', E'rt\r\nX-Injected: 1', NULL),
	   ('01SPACE_RT', 'rt seed', NULL);
SELECT table_digest() AS digest_before \gset
SELECT k AS user_ulid, r.error_code, r.error
FROM (VALUES ($$O'Brien"; --$$), ('01NEGATIVE'), ('01ZERO'), ('01EMPTY_RT'),
			 ('01HUGE_RT'), ('01CRLF_RT'), ('01SPACE_RT')) AS v(k),
	 LATERAL cal_refresh_user_tokens(k) r;
\! $CAL_STANDIN_CTL calls
SELECT table_digest() = :'digest_before' AS no_row_changed;

-- A managed user id beyond Cal.com's 32-bit ids (bigint column) is not sent.
CREATE TABLE public.big_ids ("userUlid" text PRIMARY KEY, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz,
	"calManagedUserId" bigint);
INSERT INTO public.big_ids VALUES ('01BIG', 'a', NULL, now(), 1099511627776),
	('01BIGNEG', 'a', NULL, now(), -9223372036854775808);
SET cal_refresh.table_name = 'public.big_ids';
SELECT k AS user_ulid, r.error_code, r.error
FROM (VALUES ('01BIG'), ('01BIGNEG')) AS v(k), LATERAL cal_refresh_user_tokens(k) r;
RESET cal_refresh.table_name;
\! $CAL_STANDIN_CTL calls

-- A refresh token with JSON's special characters and path characters is
-- printable, so it is sent, escaped: Cal.com parses the body and answers
-- "Invalid refresh token" (400), not a validation error; no row changes.
INSERT INTO public."CalendarIntegration" ("userUlid", "calRefreshToken",
	"calManagedUserId")
VALUES ('01JSON_RT', 'rt"},"x":{"\\u0041/../%2F', NULL);
SELECT table_digest() AS digest_before \gset
SELECT error_code, error FROM cal_refresh_user_tokens('01JSON_RT');
\! $CAL_STANDIN_CTL calls
SELECT table_digest() = :'digest_before' AS no_row_changed;

-- A server (a careless proxy, say) that quotes the request back, secret
-- and refresh token included, after a long preamble: its text is withheld.
\! $CAL_STANDIN_CTL fault any echo --status 400 --count 2
SELECT error_code, error FROM cal_refresh_user_tokens('01HOST');

-- After all that, the seeded user still refreshes.
SELECT (outcome(r)).method FROM cal_refresh_user_tokens('01HOST') r;
