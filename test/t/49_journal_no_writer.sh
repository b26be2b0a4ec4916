#!/usr/bin/env bash
# The journal without a writer, and without dynamic shared memory, each in
# a cluster of its own.  With max_worker_processes = 0 no writer can ever
# start: a rolled-back pair is still recovered (the hand-over waits in
# shared memory), cal_refresh_check() says why no writer runs, and once
# that memory is full the pairs that did not fit are said, counted and
# stored in their rows all the same.  With /dev/shm full (a tiny tmpfs under
# mmap dynamic shared memory; needs root), a batch too large for one
# request's bytes is handed over a few pairs at a time.  Force refresh fails
# for good throughout.  Stand-in users 8000-8399.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

table='public."CalendarIntegration"'
trap 'cluster_stop nowriter; cluster_stop shmfull; $CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
fresh() { standin_force_fails; }
# make_db CLUSTER: database t_nw on the cluster, with the extension and table.
make_db() {
	cpsql "$1" postgres -c "CREATE DATABASE t_nw" >/dev/null
	cpsql "$1" t_nw >/dev/null <<SQL
CREATE EXTENSION cal_refresh;
CREATE TABLE $table ("userUlid" text PRIMARY KEY, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
SQL
}

# --- no background worker slot at all --------------------------------------
cluster_start nowriter yes "max_worker_processes = 0" "max_connections = 5"
make_db nowriter
fresh
$CAL_STANDIN_CTL seed-many 8000 80 rt-nw
cpsql nowriter t_nw -c "INSERT INTO $table SELECT '01NW' || i, 'a', 'rt-nw-' || i, now(), i
	FROM generate_series(8000, 8079) i" >/dev/null

out=$(cpsql nowriter t_nw -At -F '|' -c "SELECT ok, detail FROM cal_refresh_check()
	WHERE \"check\" = 'journal'")
like "$out" "^f\|no journal writer can start: no free background worker slot" \
	"cal_refresh_check() says no journal writer can start, and why"
out=$(cpsql nowriter t_nw -At -c "BEGIN" -c "SELECT method FROM cal_refresh_user_tokens('01NW8000')" \
	-c "ROLLBACK" 2>&1)
is "$out" "refresh" "a refresh with no writer to be had returns, without a warning"
out=$(cpsql nowriter t_nw -At -F '|' -c "SELECT method, recovered_from_journal
	FROM cal_refresh_user_tokens('01NW8000')")
is "$out" "refresh|t" "its rolled-back pair is recovered: the hand-over waited in shared memory"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "...with no force refresh"
like "$(cpsql nowriter t_nw -At -c "SELECT journal_writer_failures FROM cal_refresh_stats_info")" \
	'^[1-9]' "cal_refresh_stats_info counts the writers that could not start"

# Rolled-back refreshes of 79 users, one hand-over each, until the shared
# memory of this small server (5 connections) is full.
out=$(cpsql nowriter t_nw -At 2>&1 <<'SQL'
DO $$ BEGIN FOR i IN 8001..8079 LOOP
	BEGIN
		PERFORM cal_refresh_user_tokens('01NW' || i);
		RAISE EXCEPTION 'roll back';
	EXCEPTION WHEN raise_exception THEN NULL;
	END;
END LOOP; END $$;
SELECT 'unjournaled=' || unjournaled_pairs FROM cal_refresh_stats_info;
SQL
)
like "$out" "WARNING:  cal_refresh: 1 new pair\(s\) not journaled: the journal's shared memory is full" \
	"a pair the full buffer cannot take is said with a WARNING"
unjournaled=$(sed -n 's/^unjournaled=//p' <<<"$out")
like "$unjournaled" '^[1-9][0-9]*$' "cal_refresh_stats_info counts the pairs not journaled ($unjournaled)"
out=$(cpsql nowriter t_nw -At -c "SELECT count(*) FILTER (WHERE r.recovered_from_journal),
	count(*) FILTER (WHERE NOT r.success)
	FROM generate_series(8001, 8079) i, cal_refresh_user_tokens('01NW' || i) r" 2>/dev/null)
is "$out" "$((79 - unjournaled))|$unjournaled" \
	"every pair the buffer took is recovered; exactly those counted are lost"
cluster_stop nowriter

# --- no room in /dev/shm for a batch's segment ------------------------------
if [ "$(id -u)" -ne 0 ]; then
	ok "# SKIP a full /dev/shm needs root to mount a small tmpfs"
	t_done
fi
# The mount comes before the start: every backend attaches the segments the
# server makes there as it starts.  Once it runs, a file fills what is left.
CAL_BEFORE_START="mount -t tmpfs -o size=4m,mode=0700,uid=$(id -u "$PG_OS_USER") \
	cal_shmfull \"\$1/pg_dynshmem\"" \
	cluster_start shmfull yes "dynamic_shared_memory_type = mmap" "max_connections = 20"
dd if=/dev/zero of="$SHMFULL_DATA/pg_dynshmem/cal_filler" bs=4k >/dev/null 2>&1 || true
is "$(df --output=avail -k "$SHMFULL_DATA/pg_dynshmem" | tail -1 | tr -d ' ')" 0 \
	"the server's dynamic shared memory is full"
trap 'umount -l "$SHMFULL_DATA/pg_dynshmem" 2>/dev/null || true; cluster_stop shmfull; $CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
make_db shmfull
fresh
$CAL_STANDIN_CTL seed-many 8100 300 rt-shm
cpsql shmfull t_nw -c "INSERT INTO $table SELECT '01SHM' || i, 'a', 'rt-shm-' || i,
	now() - interval '1 minute', i FROM generate_series(8100, 8399) i" >/dev/null
out=$(cpsql shmfull t_nw -At -c "BEGIN" \
	-c "SELECT count(*) FILTER (WHERE success) FROM cal_refresh_expiring_tokens(max_users => 300)" \
	-c "ROLLBACK" 2>&1)
is "$out" 300 "a batch of 300 succeeds with no room for its segment, and raises nothing"
like "$(grep 'not handed over in one segment' "$CAL_WORK/shmfull/server.log" | tail -1)" \
	"new pairs not handed over in one segment: could not" \
	"the failed segment is logged, by its message only"
out=$(cpsql shmfull t_nw -At -c "SELECT count(*) FILTER (WHERE recovered_from_journal)
	FROM cal_refresh_expiring_tokens(max_users => 300)")
is "$out" 300 "all 300 rolled-back pairs are recovered: handed over a few at a time"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "...with no force refresh"
is "$(cpsql shmfull t_nw -At -c "SELECT unjournaled_pairs FROM cal_refresh_stats_info")" 0 \
	"no pair went un-journaled"
t_done
