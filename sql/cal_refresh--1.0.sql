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
