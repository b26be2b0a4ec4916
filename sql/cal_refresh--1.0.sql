/* cal_refresh--1.0.sql */

\echo Use "CREATE EXTENSION cal_refresh" to load this file. \quit

-- One result type for every call.  It carries the access token, which
-- callers need, and never the refresh token, which stays in the table.
CREATE TYPE @extschema@.cal_token_result AS (
	success boolean,
	user_ulid text,
	method text,					-- 'refresh' | 'force_refresh' | 'update'
	access_token text,
	access_token_expires_at timestamptz,
	refresh_token_expires_at timestamptz,
	error_code text,
	error text
);

-- Not STRICT: a NULL argument raises 22004 instead of silently returning NULL.
CREATE FUNCTION @extschema@.cal_refresh_user_tokens(user_ulid text)
RETURNS @extschema@.cal_token_result
AS 'MODULE_PATHNAME', 'cal_refresh_user_tokens'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cal_update_tokens(
	user_ulid text,
	access_token text,
	refresh_token text,
	access_token_expires_at timestamptz,
	refresh_token_expires_at timestamptz DEFAULT NULL)
RETURNS @extschema@.cal_token_result
AS 'MODULE_PATHNAME', 'cal_update_tokens'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Cal.com returns expiries as milliseconds since the epoch.  A separate
-- name, not an overload: an untyped NULL expiry would be ambiguous.
CREATE FUNCTION @extschema@.cal_update_tokens_ms(
	user_ulid text,
	access_token text,
	refresh_token text,
	access_token_expires_at bigint,
	refresh_token_expires_at bigint DEFAULT NULL)
RETURNS @extschema@.cal_token_result
AS 'MODULE_PATHNAME', 'cal_update_tokens_ms'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The access token an application query needs: the stored one while it
-- stays valid for min_validity, else refreshed (one refresh for a burst).
CREATE FUNCTION @extschema@.cal_access_token(
	user_ulid text,
	min_validity interval DEFAULT '2 minutes')
RETURNS text
AS 'MODULE_PATHNAME', 'cal_access_token'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Nothing is open to PUBLIC: grant EXECUTE to the application role.
REVOKE ALL ON FUNCTION @extschema@.cal_refresh_user_tokens(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cal_update_tokens(text, text, text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cal_update_tokens_ms(text, text, text, bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cal_access_token(text, interval) FROM PUBLIC;
