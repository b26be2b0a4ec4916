/* cal_refresh--1.1--1.2.sql: the journal of issued pairs */

\echo Use "ALTER EXTENSION cal_refresh UPDATE TO '1.2'" to load this file. \quit

-- Every pair Cal.com issues, written and committed by the extension's
-- background worker before the pair is returned or stored, so that a
-- caller's transaction that does not commit loses nothing: the next
-- refresh adopts the newest pair whose predecessor the row still holds.
-- spent_token_sha256 is the SHA-256 of the refresh token the row held when
-- the pair was asked for (the one it supersedes).  An entry goes once the
-- row holds its pair or a newer one.  It holds tokens: closed to every
-- role, the extension's functions and worker reach it as its owner, and
-- pg_dump leaves it out (its entries only matter for the running cluster,
-- and a dump must not carry live tokens).
CREATE TABLE @extschema@.cal_refresh_journal (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	table_name text NOT NULL,
	user_ulid text NOT NULL,
	spent_token_sha256 bytea,
	access_token text NOT NULL,
	refresh_token text NOT NULL,
	access_token_expires_at timestamptz NOT NULL,
	refresh_token_expires_at timestamptz,
	issued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON @extschema@.cal_refresh_journal (table_name, user_ulid);
REVOKE ALL ON TABLE @extschema@.cal_refresh_journal FROM PUBLIC;

-- Whether the row's pair was recovered from the journal by this call.
ALTER TYPE @extschema@.cal_token_result ADD ATTRIBUTE recovered_from_journal boolean;
