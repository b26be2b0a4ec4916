#!/usr/bin/env bash
# A real hot standby of the main cluster: cal_access_token serves a token
# that is still good, and anything that would refresh raises 25006 before
# a call to Cal.com.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_standby
make_test_db "$db"
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration" VALUES
	('01SB', 'at-standby', 'rt-seed-1301', now() + interval '30 minutes', 1301),
	('01SB_EXPIRED', 'at-gone', 'rt-seed-1302', now() - interval '1 minute', 1302);
SQL

dir=$CAL_WORK/standby
install -d -m 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown "$PG_OS_USER" "$dir"
as_pg "$PG_BIN/pg_basebackup" -h "$MAIN_HOST" -p "$MAIN_PORT" -U postgres \
	-D "$dir/data" -R -X stream -c fast >"$dir/basebackup.log" 2>&1
port=$(free_port)
printf "port = %s\nunix_socket_directories = '%s'\n" "$port" "$dir" |
	as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
trap 'as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true' EXIT
STANDBY_HOST=$dir STANDBY_PORT=$port

is "$(cpsql standby "$db" -At -c 'SELECT pg_is_in_recovery()')" t "the standby is in recovery"
$CAL_STANDIN_CTL reset
is "$(cpsql standby "$db" -At -c "SELECT cal_access_token('01SB')")" "at-standby" \
	"cal_access_token serves a good token on the standby"
out=$(cpsql standby "$db" -At -c "SELECT cal_access_token('01SB', '45 minutes')" 2>&1)
like "$out" 'WARNING:  returning the stored access token of user "01SB" without refreshing it: the transaction is read-only' \
	"a token short of min_validity is served with a WARNING on the standby"
like "$out" 'at-standby$' "... the stored one"
out=$(cpsql standby "$db" -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
SELECT cal_access_token('01SB_EXPIRED');
\echo sqlstate=:LAST_ERROR_SQLSTATE
SELECT cal_refresh_user_tokens('01SB');
\echo sqlstate=:LAST_ERROR_SQLSTATE
SQL
)
is "$(grep -c 'sqlstate=25006' <<<"$out")" 2 "a needed refresh of an expired token raises 25006 on the standby"
is "$($CAL_STANDIN_CTL calls)" "refresh=0 force_refresh=0" "nothing was sent to Cal.com"
t_done
