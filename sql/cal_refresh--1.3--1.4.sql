/* cal_refresh--1.3--1.4.sql: the journal under faults */

\echo Use "ALTER EXTENSION cal_refresh UPDATE TO '1.4'" to load this file. \quit

-- Three more counts: pairs the journal could not take (they lived only in
-- their caller's transaction), journal writers that could not start, and
-- hand-overs waiting in shared memory to be committed by a writer.
DROP VIEW @extschema@.cal_refresh_stats_info;
DROP FUNCTION @extschema@.cal_refresh_stats_counts();

CREATE FUNCTION @extschema@.cal_refresh_stats_counts(
	OUT stats_reset timestamptz,
	OUT refreshed_users bigint,
	OUT force_refreshes bigint,
	OUT journal_recoveries bigint,
	OUT throttled bigint,
	OUT retries bigint,
	OUT slot_wait_ms double precision,
	OUT unjournaled_pairs bigint,
	OUT journal_writer_failures bigint,
	OUT journal_pending bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'cal_refresh_stats_counts'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW @extschema@.cal_refresh_stats_info AS
	SELECT * FROM @extschema@.cal_refresh_stats_counts();

REVOKE ALL ON FUNCTION @extschema@.cal_refresh_stats_counts() FROM PUBLIC;
REVOKE ALL ON @extschema@.cal_refresh_stats_info FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.cal_refresh_stats_counts() TO pg_read_all_stats;
GRANT SELECT ON @extschema@.cal_refresh_stats_info TO pg_read_all_stats;

COMMENT ON FUNCTION @extschema@.cal_refresh_stats_counts() IS
	'Cluster-wide counts since the last reset (the cal_refresh_stats_info view)';
COMMENT ON VIEW @extschema@.cal_refresh_stats_info IS
	'Since when cal_refresh_stats counts, and cluster-wide counts: users refreshed, force refreshes, journal recoveries, 429s, retries, waits for request slots, pairs not journaled, writers that could not start, hand-overs not yet written';
COMMENT ON TABLE @extschema@.cal_refresh_journal IS
	'Every pair Cal.com issued, handed over before it can be lost and committed by the journal writer, until the row holds it or a newer one; holds tokens, closed to every role';
