#!/usr/bin/env bash
# The journal across processes: two databases of one cluster, each with
# its own writer; and a whole server stopped with -m immediate after the
# call returned, before COMMIT.  Force refresh fails for good throughout,
# so that only the journal can recover the pairs.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 2501 rt-j1
$CAL_STANDIN_CTL seed 2502 rt-j2
$CAL_STANDIN_CTL seed 2503 rt-j3
for db in t_journal1 t_journal2; do make_test_db "$db"; done
cpsql main t_journal1 -c "INSERT INTO public.\"CalendarIntegration\" VALUES
	('01J1', 'at-old', 'rt-j1', now(), 2501), ('01J3', 'at-old', 'rt-j3', now(), 2503)" >/dev/null
cpsql main t_journal2 -c "INSERT INTO public.\"CalendarIntegration\" VALUES
	('01J2', 'at-old', 'rt-j2', now(), 2502)" >/dev/null
$CAL_STANDIN_CTL fault force_refresh status --status 500 --count -1

# Two databases: a refresh rolled back in each, then recovered in each.
for pair in t_journal1:01J1:2501 t_journal2:01J2:2502; do
	IFS=: read -r db user id <<<"$pair"
	cpsql main "$db" -At -c "BEGIN" -c "SELECT method FROM cal_refresh_user_tokens('$user')" \
		-c "ROLLBACK" >/dev/null
	# The writer starts without anyone waiting for it; it commits the pair.
	poll_until "$db" "SELECT count(*) = 1 FROM cal_refresh_journal WHERE user_ulid = '$user'" ||
		not_ok "$db: the pair reached the journal"
	is "$(cpsql main "$db" -At -c "SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'cal_refresh journal writer' AND datname = current_database()")" 1 \
		"$db: its own journal writer took the pair"
done
for pair in t_journal1:01J1:2501 t_journal2:01J2:2502; do
	IFS=: read -r db user id <<<"$pair"
	out=$(cpsql main "$db" -At -F '|' -c "SELECT method, recovered_from_journal
		FROM cal_refresh_user_tokens('$user')")
	is "$out" "refresh|t" "$db: the rolled-back pair is recovered from the journal"
	rt=$(cpsql main "$db" -At -c "SELECT \"calRefreshToken\" FROM public.\"CalendarIntegration\"
		WHERE \"userUlid\" = '$user'")
	is "$($CAL_STANDIN_CTL is-current "$id" "$rt")" current "$db: the row ends current"
done

# A server stopped with -m immediate after the call returned, before the
# caller's COMMIT.  The test clusters commit asynchronously
# (synchronous_commit = off): the entry is durable once the WAL is flushed
# past it.  The test does not wait for the WAL writer: a CHECKPOINT
# flushes the WAL past the entry (waiting for the flush LSN to reach the
# insert LSN could wait on records the WAL writer leaves for later, such as
# the background writer's snapshot of running transactions).
cpsql main t_journal1 -At >/dev/null 2>&1 <<'SQL' &
SET application_name = 'cal_crash';
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01J3');
SELECT pg_sleep(60);
COMMIT;
SQL
crashed=$!
poll_until t_journal1 "SELECT count(*) = 1 FROM pg_stat_activity
	WHERE application_name = 'cal_crash' AND query LIKE '%pg_sleep%'"
# The call returned once the pair was handed over; the writer commits it.
poll_until t_journal1 "SELECT count(*) = 1 FROM cal_refresh_journal WHERE user_ulid = '01J3'" ||
	not_ok "the writer committed the entry"
lsn=$(cpsql main t_journal1 -At -c "SELECT pg_current_wal_insert_lsn()")
cpsql main t_journal1 -At -c "CHECKPOINT" >/dev/null
is "$(cpsql main t_journal1 -At -c "SELECT pg_current_wal_flush_lsn() >= '$lsn'")" t \
	"the WAL is flushed past the entry"
as_pg "$PG_BIN/pg_ctl" -D "$MAIN_DATA" -m immediate -w stop >/dev/null
wait "$crashed" 2>/dev/null || true
as_pg "$PG_BIN/pg_ctl" -D "$MAIN_DATA" -l "$CAL_WORK/main/server.log" -w -t 120 \
	-p "${CAL_POSTGRES_BIN:-$PG_BIN/postgres}" start >/dev/null
is "$(cpsql main t_journal1 -At -c "SELECT \"calRefreshToken\" FROM public.\"CalendarIntegration\"
	WHERE \"userUlid\" = '01J3'")" rt-j3 "after the crash, the row holds the spent token"
out=$(cpsql main t_journal1 -At -F '|' -c "SELECT method, recovered_from_journal
	FROM cal_refresh_user_tokens('01J3')")
is "$out" "refresh|t" "the pair issued before the crash is recovered from the journal"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "no force refresh was sent"
cpsql main t_journal1 -c "CALL cal_refresh_expiring_tokens_job()" >/dev/null
is "$(cpsql main t_journal1 -At -c "SELECT count(*) FROM cal_refresh_journal")" 0 \
	"the journal ends empty once the rows are current and the job has run"

# 10,000 refreshes, each in its own transaction as an application makes
# them, over 100 users: a refresh that commits writes nothing to the
# journal (its row holds the pair at COMMIT).  Then 8,000 more, every
# other one rolled back: the writer commits each rolled-back pair, the next
# refresh adopts it, the journal keeps at most one entry per user, the
# job's pruning leaves it empty once the rows are current, and the
# writer's private memory does not grow.
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 2600 100 rt-10k
make_test_db t_journal3
cpsql main t_journal3 -c "INSERT INTO public.\"CalendarIntegration\"
	SELECT '01K' || i, 'a', 'rt-10k-' || i, now(), i FROM generate_series(2600, 2699) i" >/dev/null
loop="DO \$\$ BEGIN FOR i IN 1..10000 LOOP
	PERFORM cal_refresh_user_tokens('01K' || (2600 + i % 100)); COMMIT; END LOOP; END \$\$;"
out=$(cpsql main t_journal3 -At <<SQL
$loop
SELECT 'entries=' || count(*) FROM cal_refresh_journal;
SQL
)
is "$($CAL_STANDIN_CTL calls)" "refresh=10000 force_refresh=0" "10,000 refreshes, no force refresh"
is "$(sed -n 's/^entries=//p' <<<"$out")" 0 "a refresh that commits writes nothing to the journal"
# rolled N: N rounds of a refresh rolled back, then one that commits.
rolled="DO \$\$ BEGIN FOR i IN 1..:n LOOP
	BEGIN
		PERFORM cal_refresh_user_tokens('01K' || (2600 + i % 100));
		RAISE EXCEPTION 'roll back';
	EXCEPTION WHEN raise_exception THEN NULL;
	END;
	COMMIT;
	PERFORM cal_refresh_user_tokens('01K' || (2600 + i % 100)); COMMIT;
END LOOP; END \$\$;"
out=$(cpsql main t_journal3 -At <<SQL
${rolled//:n/1000}
SELECT pid AS writer FROM pg_stat_activity WHERE backend_type = 'cal_refresh journal writer'
	AND datname = current_database() \gset
\setenv WPID :writer
\! echo rss=\$(awk '/^RssAnon/ {print \$2}' /proc/\$WPID/status)
${rolled//:n/3000}
\! echo rss=\$(awk '/^RssAnon/ {print \$2}' /proc/\$WPID/status)
DO \$\$ BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN (SELECT journal_pending = 0 FROM cal_refresh_stats_info);
		PERFORM pg_sleep(0.01);
	END LOOP;
END \$\$;
SELECT 'users=' || count(DISTINCT user_ulid) || ' most=' || max(n)
FROM (SELECT user_ulid, count(*) AS n FROM cal_refresh_journal GROUP BY 1) e;
SQL
)
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "8,000 more, half rolled back: no force refresh"
like "$(sed -n 's/^users=//p' <<<"$out")" "most=1$" \
	"the journal holds at most one entry per user"
rss=($(sed -n 's/^rss=//p' <<<"$out"))
grow=$(( ${rss[1]:-99999} - ${rss[0]:-0} ))
[ -n "${rss[1]:-}" ] && [ "$grow" -le 512 ] &&
	ok "the writer's private memory grew by at most 512 kB over 3,000 entries ($grow kB)" ||
	not_ok "the writer's private memory grew by at most 512 kB over 3,000 entries" "${rss[*]:-}"
before=$(cpsql main t_journal3 -At -c "SELECT count(*) FROM cal_refresh_journal")
cpsql main t_journal3 -c "CALL cal_refresh_expiring_tokens_job()" >/dev/null
is "$(cpsql main t_journal3 -At -c "SELECT count(*) FROM cal_refresh_journal")" 0 \
	"after the job's pruning the journal is empty"
is "$(cpsql main t_journal3 -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
	FROM public.\"CalendarIntegration\" WHERE \"userUlid\" LIKE '01K%'" |
	$CAL_STANDIN_CTL check-current | tail -1)" "100 current, 0 not current" "every row is current"
like "$(grep 'journal entries pruned' "$CAL_WORK/main/server.log" | tail -1)" \
	"job: $before journal entries pruned" "the job's pruning is logged ($before entries)"
$CAL_STANDIN_CTL reset
t_done
