#!/usr/bin/env bash
# The journal when what is around it fails: a client that goes away and a
# transaction_timeout while a request is on the wire, a database that
# refuses the writer's connection, a writer that cannot write or is killed
# over and over, a row hidden by row-level security when the job prunes,
# and a cancel that lands while a batch writes a log line.  In each,
# no pair Cal.com issued is lost: the next call recovers it with no force
# refresh, which fails for good throughout.  Stand-in users 7600-7999.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_jfault
make_test_db "$db"
trap '$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
table='public."CalendarIntegration"'
log=$CAL_WORK/main/server.log

fresh() { standin_force_fails; }
# seed_user DB ID: the row of user 01F<ID> holds the stand-in's current token
# (not due: batches leave it alone).
seed_user() {
	$CAL_STANDIN_CTL seed "$2" "rt-jf-$2"
	cpsql main "$1" -c "INSERT INTO $table VALUES ('01F$2', 'a', 'rt-jf-$2', now() + interval '1 hour', $2)
		ON CONFLICT (\"userUlid\") DO UPDATE SET \"calRefreshToken\" = 'rt-jf-$2'" >/dev/null
}
# recovered DB ID WHAT: the next refresh of 01F<ID> recovers the pair the
# journal kept, sends no force refresh, and leaves the row current.
recovered() {
	local out rt
	$CAL_STANDIN_CTL latency 0
	out=$(cpsql main "$1" -At -F '|' -c "SELECT method, recovered_from_journal
		FROM cal_refresh_user_tokens('01F$2')")
	is "$out" "refresh|t" "$3: the next call recovers the pair from the journal"
	rt=$(cpsql main "$1" -At -c "SELECT \"calRefreshToken\" FROM $table WHERE \"userUlid\" = '01F$2'")
	is "$($CAL_STANDIN_CTL is-current "$2" "$rt")" current "$3: the row ends current"
	is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "$3: no force refresh"
}
# client NAME SQL...: a psql of its own in the background (its pid in
# $client), the statements from a file, as session NAME.
client() {
	local name=$1
	shift
	printf '%s\n' "SET application_name = '$name';" "$@" >"$CAL_WORK/$name.sql"
	"$PG_BIN/psql" -X -At -h "$MAIN_HOST" -p "$MAIN_PORT" -U postgres -d "$db" \
		-f "$CAL_WORK/$name.sql" >"$CAL_WORK/$name.out" 2>&1 &
	client=$!
}
on_the_wire() { in_flight "$db" "$1" "$2"; }
backend_pid() {
	cpsql main "$db" -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$1'"
}
gone() {
	poll_until "$db" "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1"
}
# drained DB: the hand-overs in shared memory are all committed (bounded).
# cal_refresh_check() starts the database's writer if none runs.
drained() {
	cpsql main "$1" -At -c "SELECT ok FROM cal_refresh_check() WHERE \"check\" = 'journal'" >/dev/null
	poll_until "$1" "SELECT journal_pending = 0 FROM cal_refresh_stats_info"
}

# --- a client that goes away while its refresh is on the wire -------------
# client_connection_check_interval notices it within 100 ms; the hold keeps
# the session up until the answer came and was handed over (the grace is
# 5 s, the answer takes 1.5 s), then it ends.
fresh
seed_user "$db" 7601
$CAL_STANDIN_CTL latency 1500
client f_client "SET client_connection_check_interval = '100ms';" \
	"SET cal_refresh.cancel_grace = '5s';" \
	"SELECT method FROM cal_refresh_user_tokens('01F7601');"
on_the_wire f_client 1 || not_ok "the request went out"
pid=$(backend_pid f_client)
kill -9 "$client"
wait "$client" 2>/dev/null || true
gone "$pid" || not_ok "the session ended"
like "$(grep "\[$pid\]" "$log" | grep -c 'connection to client lost' || true)" '^[1-9]' \
	"the lost client ended the session (connection to client lost)"
like "$(grep "\[$pid\]" "$log" | grep 'cancel held back' || true)" 'cancel held back' \
	"...once the answer on the wire was had"
recovered "$db" 7601 "a client gone mid-request"

# --- transaction_timeout (PostgreSQL 17 on) --------------------------------
if [ "$(cpsql main "$db" -At -c "SHOW server_version_num")" -ge 170000 ]; then
	fresh
	seed_user "$db" 7602
	$CAL_STANDIN_CTL latency 1500
	client f_txn "SET transaction_timeout = '500ms';" "SET cal_refresh.cancel_grace = '5s';" \
		"SELECT method FROM cal_refresh_user_tokens('01F7602');"
	on_the_wire f_txn 1 || not_ok "the request went out"
	pid=$(backend_pid f_txn)
	wait "$client" 2>/dev/null || true
	gone "$pid" || not_ok "the session ended"
	like "$(cat "$CAL_WORK/f_txn.out")" "transaction timeout" \
		"transaction_timeout ended the session, after the answer"
	recovered "$db" 7602 "transaction_timeout mid-request"
else
	ok "# SKIP transaction_timeout exists from PostgreSQL 17 on"
fi

# --- a database that refuses the writer's connection -----------------------
# No call waits for a writer that cannot come: the pairs are safe in shared
# memory, found by the next call; once connections are allowed again, a
# writer comes up and commits them.  A batch stores all its pairs.
db2=t_jfault_conn
make_test_db "$db2"
fresh
for i in 7610 7611 7612; do seed_user "$db2" $i; done
$CAL_STANDIN_CTL seed-many 7700 20 rt-jf
cpsql main "$db2" -c "INSERT INTO $table SELECT '01FB' || i, 'a', 'rt-jf-' || i,
	now() - interval '1 minute', i FROM generate_series(7700, 7719) i" >/dev/null
# ALTER DATABASE from another database: the session must stay connected.
export JF_PSQL="$PG_BIN/psql -X -q -h $MAIN_HOST -p $MAIN_PORT -U postgres -d postgres"
out=$(cpsql main "$db2" -At -F '|' <<'SQL'
\! $JF_PSQL -c 'ALTER DATABASE t_jfault_conn ALLOW_CONNECTIONS false'
\! $JF_PSQL -c 'SELECT 1'  >/dev/null
CREATE TEMP TABLE took (what text, ms numeric);
CREATE FUNCTION pg_temp.timed(what text, call text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE call;
	INSERT INTO took VALUES (what, extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
BEGIN;
SELECT pg_temp.timed('first', $q$SELECT cal_refresh_user_tokens('01F7610')$q$);
ROLLBACK;
SELECT pg_temp.timed('second', $q$SELECT cal_refresh_user_tokens('01F7612')$q$);
SELECT 'batch=' || count(*) FILTER (WHERE success) FROM cal_refresh_expiring_tokens();
\! $JF_PSQL -c 'ALTER DATABASE t_jfault_conn ALLOW_CONNECTIONS true'
BEGIN;
SELECT pg_temp.timed('third', $q$SELECT cal_refresh_user_tokens('01F7611')$q$);
ROLLBACK;
SELECT 'slowest=' || max(ms) FROM took;
SQL
)
like "$out" "slowest=[0-9]" "three calls timed"
slowest=$(sed -n 's/^slowest=\([0-9]*\).*/\1/p' <<<"$out")
[ -n "$slowest" ] && [ "$slowest" -lt 1000 ] &&
	ok "no call waited for a writer that could not connect (slowest ${slowest} ms)" ||
	not_ok "no call waited for a writer that could not connect" "slowest: ${slowest:-?} ms"
like "$out" "batch=20" "a batch of 20 stores all 20 pairs while no writer can connect"
is "$(cpsql main "$db2" -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
	FROM $table WHERE \"userUlid\" LIKE '01FB%'" | $CAL_STANDIN_CTL check-current | tail -1)" \
	"20 current, 0 not current" "...and every one of them is current"
like "$(grep -c 'is not currently accepting connections' "$log" || true)" '^[1-9]' \
	"the writer was refused its connection"
recovered "$db2" 7610 "a rollback while no writer could connect"
drained "$db2" || not_ok "a writer came up once connections were allowed"
is "$(cpsql main "$db2" -At -c "SELECT count(*) FROM cal_refresh_journal WHERE user_ulid = '01F7611'")" 1 \
	"once connections are allowed, a writer commits the rolled-back pair"
recovered "$db2" 7611 "a rollback after connections were allowed again"

# --- a writer that cannot write --------------------------------------------
# Every INSERT into the journal fails: the writer keeps the hand-over in
# shared memory and tries again; the pair is found there meanwhile.
fresh
seed_user "$db" 7620
cpsql main "$db" -c "ALTER TABLE cal_refresh_journal ADD CONSTRAINT jf_refuse CHECK (false) NOT VALID" >/dev/null
out=$(cpsql main "$db" -At -c "BEGIN" -c "SELECT method FROM cal_refresh_user_tokens('01F7620')" \
	-c "ROLLBACK" 2>&1)
is "$out" "refresh" "the refresh returned, without a warning"
for _ in $(seq 1 500); do
	grep -q 'entries not written, to be tried again' "$log" && break
	sleep 0.01
done
like "$(grep 'entries not written, to be tried again' "$log" | tail -1)" "violates check constraint" \
	"the writer's failure is logged, and it will try again"
recovered "$db" 7620 "a writer that cannot write"
cpsql main "$db" -c "ALTER TABLE cal_refresh_journal DROP CONSTRAINT jf_refuse" >/dev/null
drained "$db" || not_ok "the waiting hand-overs were written once the journal took them"
ok "the hand-overs kept in shared memory are written once the journal takes them"

# --- a writer killed over and over -----------------------------------------
# 40 refreshes rolled back while a loop terminates the writer every 20 ms:
# each request has one owner at a time, so none is lost or torn.
fresh
$CAL_STANDIN_CTL seed-many 7800 40 rt-jk
cpsql main "$db" -c "INSERT INTO $table SELECT '01FK' || i, 'a', 'rt-jk-' || i, now(), i
	FROM generate_series(7800, 7839) i" >/dev/null
(
	for _ in $(seq 1 150); do
		cpsql main "$db" -At -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE backend_type = 'cal_refresh journal writer'" >/dev/null 2>&1 || true
		sleep 0.02
	done
) &
killer=$!
cpsql main "$db" -At >/dev/null <<'SQL'
DO $$ BEGIN FOR i IN 7800..7839 LOOP
	BEGIN
		PERFORM cal_refresh_user_tokens('01FK' || i);
		RAISE EXCEPTION 'roll back';
	EXCEPTION WHEN raise_exception THEN NULL;
	END;
END LOOP; END $$;
SQL
wait "$killer" || true
drained "$db" || not_ok "the hand-overs drained"
out=$(cpsql main "$db" -At -c "SELECT count(*) FILTER (WHERE r.recovered_from_journal)
	FROM generate_series(7800, 7839) i, cal_refresh_user_tokens('01FK' || i) r")
is "$out" 40 "all 40 rolled-back pairs are recovered, the writer killed throughout"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "...and no force refresh was needed"
is "$(grep -c 'could not be read and is dropped' "$log" || true)" 0 "no hand-over was torn"

# --- the job's pruning and a row hidden by row-level security --------------
# The table belongs to a lesser role, RLS is forced, a policy hides one user
# unless the session says otherwise; the job, run by a superuser as the
# table's owner, does not see that row, and must not prune its entries.
db3=t_jfault_rls
cpsql main postgres -c "CREATE DATABASE $db3" >/dev/null
cpsql main "$db3" >/dev/null <<SQL
CREATE EXTENSION cal_refresh;
CREATE ROLE jf_owner;
CREATE TABLE $table ("userUlid" text PRIMARY KEY, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
ALTER TABLE $table OWNER TO jf_owner;
ALTER TABLE $table ENABLE ROW LEVEL SECURITY;
ALTER TABLE $table FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON $table USING ("userUlid" <> '01F7630'
	OR current_setting('jf.tenant', true) = 'hidden');
SQL
fresh
$CAL_STANDIN_CTL seed 7630 rt-jf-7630
cpsql main "$db3" -c "SET jf.tenant = 'hidden'" -c "INSERT INTO $table VALUES
	('01F7630', 'a', 'rt-jf-7630', now(), 7630)" >/dev/null
cpsql main "$db3" -c "SET jf.tenant = 'hidden'" -c "BEGIN" \
	-c "SELECT method FROM cal_refresh_user_tokens('01F7630')" -c "ROLLBACK" >/dev/null
drained "$db3" || not_ok "the hand-over was written"
cpsql main "$db3" -c "CALL cal_refresh_expiring_tokens_job()" >/dev/null
is "$(cpsql main "$db3" -At -c "SELECT count(*) FROM cal_refresh_journal WHERE user_ulid = '01F7630'")" 1 \
	"the job kept the entry of a row it could not see"
out=$(cpsql main "$db3" -At -F '|' -c "SET jf.tenant = 'hidden'" -c "SELECT method,
	recovered_from_journal FROM cal_refresh_user_tokens('01F7630')")
is "$out" "refresh|t" "the tenant's next refresh recovers the pair from the journal"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "...with no force refresh"

# --- a cancel while a batch logs a user's failure ---------------------------
# A log line runs CHECK_FOR_INTERRUPTS when it is written: from the first
# request sent to the hand-over, none may raise.  A cluster of its own logs
# into a pipe whose reader the test stops: a batch of two due users, one
# refreshed and one failing (a token Cal.com does not know, no managed user
# id: a LOG line), blocks writing that line.  The cancel arrives then, and
# the pipe is drained: the cancel must not raise before the refreshed
# user's pair is handed over.
CAL_BEFORE_START='mkfifo -m 666 "$1/../server.log"
	cat "$1/../server.log" >>"$1/../pipe.log" & echo $! >"$1/../reader.pid"' \
	cluster_start logpipe yes "log_min_messages = log" "log_checkpoints = off"
trap 'kill -CONT "$(cat "$CAL_WORK/logpipe/reader.pid")" 2>/dev/null; cluster_stop logpipe;
	$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
cpsql logpipe postgres >/dev/null <<SQL
CREATE EXTENSION cal_refresh;
CREATE TABLE $table ("userUlid" text PRIMARY KEY, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO $table VALUES ('01FLA', 'a', 'rt-jf-7650', now() - interval '1 minute', 7650),
	('01FLB', 'a', 'rt-unknown-7651', now() - interval '1 minute', NULL);
SQL
fresh
$CAL_STANDIN_CTL seed 7650 rt-jf-7650
$CAL_STANDIN_CTL latency 300
"$PG_BIN/psql" -X -At -h "$LOGPIPE_HOST" -p "$LOGPIPE_PORT" -U postgres -d postgres \
	-c "SET application_name = 'f_logpipe'" \
	-c "SELECT count(*) FROM cal_refresh_expiring_tokens()" >"$CAL_WORK/f_logpipe.out" 2>&1 &
client=$!
for _ in $(seq 1 500); do
	[ "$($CAL_STANDIN_CTL calls refresh)" = "refresh=2" ] && break
	sleep 0.01
done
pid=$(cpsql logpipe postgres -At -c "SELECT pid FROM pg_stat_activity
	WHERE application_name = 'f_logpipe'")
reader=$(cat "$CAL_WORK/logpipe/reader.pid")
kill -STOP "$reader"
# Fill the pipe without blocking: the next line logged blocks its writer.
"$CAL_PYTHON" - "$CAL_WORK/logpipe/server.log" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
try:
    while True:
        os.write(fd, b"\n" * 4096)
except BlockingIOError:
    pass
os.close(fd)
PY
blocked=no
for _ in $(seq 1 500); do
	[[ "$(cat "/proc/$pid/wchan" 2>/dev/null)" == *pipe_write* ]] && { blocked=yes; break; }
	sleep 0.01
done
is "$blocked" yes "the batch blocks writing the failing user's log line"
cpsql logpipe postgres -c "SELECT pg_cancel_backend($pid)" >/dev/null
kill -CONT "$reader"
wait "$client" || true
like "$(cat "$CAL_WORK/f_logpipe.out")" "canceling statement due to user request" \
	"the cancel takes effect once the line is written"
$CAL_STANDIN_CTL latency 0
out=$(cpsql logpipe postgres -At -F '|' -c "SELECT method, recovered_from_journal
	FROM cal_refresh_user_tokens('01FLA')")
is "$out" "refresh|t" "the refreshed user's pair was handed over before the cancel raised"
is "$($CAL_STANDIN_CTL calls force_refresh)" "force_refresh=0" "...and no force refresh was needed"
cluster_stop logpipe
is "$(grep -c 'terminated by signal' "$log" || true)" 0 "no backend crashed"
t_done
