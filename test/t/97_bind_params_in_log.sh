#!/usr/bin/env bash
# README's advice for cal_update_tokens, tested as written: with
# log_statement = 'all' for the application's role and its statements sent
# over the extended protocol (bind parameters, as node-postgres sends
# them), the tokens stay out of the server log once the role has
# log_parameter_max_length = 0.  Without that setting they are logged:
# the advice is what keeps them out.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_bindlog
make_test_db "$db"
log=$CAL_WORK/main/server.log
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration" VALUES ('01BIND', 'a', 'b', now(), 1);
CREATE ROLE bind_app LOGIN;
CREATE ROLE bind_bare LOGIN;
GRANT SELECT, UPDATE ON public."CalendarIntegration" TO bind_app, bind_bare;
GRANT EXECUTE ON FUNCTION cal_update_tokens(text, text, text, timestamptz, timestamptz)
	TO bind_app, bind_bare;
ALTER ROLE bind_app SET log_statement = 'all';
ALTER ROLE bind_bare SET log_statement = 'all';
SQL
# README's block, as written.
readme_sql 97_bind_params_in_log.sh | sed 's/\bapp\b/bind_app/g' |
	cpsql main "$db" >/dev/null

# send ROLE ACCESS REFRESH: cal_update_tokens over the extended protocol.
send() {
	printf '%s\n' "SELECT success FROM cal_update_tokens('01BIND', :at, :rt, now() + interval '1 hour');" \
		>"$CAL_WORK/bind.sql"
	"$PG_BIN/pgbench" -n -M extended -t 1 -h "$MAIN_HOST" -p "$MAIN_PORT" -U "$1" \
		-D at="$2" -D rt="$3" -f "$CAL_WORK/bind.sql" "$db" >/dev/null 2>&1
}
send bind_app at-bind-secret-1 rt-bind-secret-1
send bind_bare at-bind-secret-2 rt-bind-secret-2
is "$(cpsql main "$db" -At -c "SELECT \"calRefreshToken\" FROM public.\"CalendarIntegration\"")" \
	rt-bind-secret-2 "both roles stored their tokens"
like "$(grep -c 'cal_update_tokens(' "$log" || true)" '^[1-9]' "log_statement logged the calls"
is "$(grep -c 'bind-secret-1' "$log" || true)" 0 \
	"with README's setting, no token of the role reaches the log"
like "$(grep -c 'rt-bind-secret-2' "$log" || true)" '^[1-9]' \
	"without it, log_statement logs the bind parameters (the advice is needed)"
t_done
