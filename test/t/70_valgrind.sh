#!/usr/bin/env bash
# A short suite against a server running under valgrind: refreshes, force
# refreshes, failures over HTTP, a timeout and a cancel, one user at a time
# and in concurrent batches.  No backend may
# report a definite leak from cal_refresh (curl, cJSON and our own malloc'd
# memory; palloc'd memory is the memory test's business).  `make valgrind`
# runs this alone.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

vgdir=$CAL_WORK/valgrind
install -d -m 777 "$vgdir"
wrapper=$vgdir/postgres
# PostgreSQL writes WAL pages whose padding it never initialises (its own
# valgrind.supp says so too); our statements may flush WAL (a full buffer).
cat >"$vgdir/postgres.supp" <<'SUPP'
{
   postgres-wal-page-padding
   Memcheck:Param
   pwrite64(buf)
   ...
   fun:XLogFlush
}
SUPP
cat >"$wrapper" <<WRAP
#!/bin/sh
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite \\
	--errors-for-leak-kinds=definite --num-callers=30 \\
	--suppressions=$vgdir/postgres.supp \\
	--log-file=$vgdir/vg.%p.log $PG_BIN/postgres "\$@"
WRAP
chmod 755 "$wrapper"

CAL_POSTGRES_BIN=$wrapper cluster_start vg yes
trap 'cluster_stop vg' EXIT
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 951 rt-seed-951
for i in $(seq 960 969); do $CAL_STANDIN_CTL seed "$i" "rt-seed-$i"; done
$CAL_STANDIN_CTL seed-many 3001 300 rt-vgr

cpsql vg postgres -v ON_ERROR_STOP=0 >"$vgdir/session.out" 2>&1 <<'SQL'
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO public."CalendarIntegration" VALUES
	('01VG', 'a', 'rt-seed-951', now(), 951),
	('01VGBAD', 'a', 'rt-not-issued', now(), 99999);
SELECT count(*) FILTER (WHERE (cal_refresh_user_tokens('01VG')).success) AS ok
FROM generate_series(1, 20);
SELECT count(*) FILTER (WHERE NOT (cal_refresh_user_tokens('01VGBAD')).success) AS failed
FROM generate_series(1, 20);
\! $CAL_STANDIN_CTL fault any huge --count 2
SELECT error_code FROM cal_refresh_user_tokens('01VG');
\! $CAL_STANDIN_CTL fault any malformed --count 2
SELECT error_code FROM cal_refresh_user_tokens('01VG');
SET cal_refresh.timeout = '1s';
\! $CAL_STANDIN_CTL fault refresh hang
SELECT error_code FROM cal_refresh_user_tokens('01VG');
\! $CAL_STANDIN_CTL fault refresh hang
SET statement_timeout = '500ms';
SELECT error_code FROM cal_refresh_user_tokens('01VG');
RESET statement_timeout;
SELECT method FROM cal_refresh_user_tokens('01VG');
SELECT * FROM cal_update_tokens('01VG', 'a', 'b', now());
-- Batches: eleven users side by side (01VGBAD backs off by now), the job
-- procedure's commits, a batch cut short by statement_timeout.
INSERT INTO public."CalendarIntegration"
SELECT '01VGB' || i, 'a', 'rt-seed-' || i, now(), i FROM generate_series(960, 969) i;
SELECT 'batch=' || count(*) FILTER (WHERE success) || '/' || count(*)
FROM cal_refresh_expiring_tokens(max_users => 20);
UPDATE public."CalendarIntegration" SET "calAccessTokenExpiresAt" = now();
CALL cal_refresh_expiring_tokens_job(batch_size => 3);
SELECT count(*) AS status_rows FROM cal_refresh_status();
-- 300 users, of which one late in key order is refused by the table: its
-- refusal message outlives the SPI session that caught it.
CREATE TABLE public.vg_many (LIKE public."CalendarIntegration" INCLUDING ALL);
INSERT INTO public.vg_many
SELECT '01VGR' || lpad(i::text, 3, '0'), 'a', 'rt-vgr-' || (3000 + i), now(), 3000 + i
FROM generate_series(1, 300) i;
CREATE FUNCTION public.vg_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW."userUlid" = '01VGR297' THEN
		RAISE EXCEPTION 'refused by the application for %', NEW."userUlid";
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER vg_refuse BEFORE UPDATE ON public.vg_many
	FOR EACH ROW EXECUTE FUNCTION public.vg_refuse();
SET cal_refresh.table_name = 'public.vg_many';
SELECT 'many=' || count(*) FILTER (WHERE success) || '/' || count(*) ||
	' refused=' || string_agg(user_ulid || ': ' || error, ',') FILTER (WHERE NOT success)
FROM cal_refresh_expiring_tokens(max_users => 400);
RESET cal_refresh.table_name;
UPDATE public."CalendarIntegration" SET "calAccessTokenExpiresAt" = now();
\! $CAL_STANDIN_CTL fault refresh hang --count 3
SET statement_timeout = '500ms';
SELECT count(*) FROM cal_refresh_expiring_tokens();
RESET statement_timeout;
-- The journal: a rollback and its recovery; a cancel held back while the
-- answer comes; the job's pruning.
\! $CAL_STANDIN_CTL reset
\! $CAL_STANDIN_CTL seed 951 rt-vg-journal
UPDATE public."CalendarIntegration" SET "calRefreshToken" = 'rt-vg-journal'
WHERE "userUlid" = '01VG';
BEGIN;
SELECT method FROM cal_refresh_user_tokens('01VG');
ROLLBACK;
SELECT 'recovered=' || recovered_from_journal FROM cal_refresh_user_tokens('01VG');
\! $CAL_STANDIN_CTL latency 1500
SET cal_refresh.cancel_grace = '5s';
SET statement_timeout = '1s';
SELECT method FROM cal_refresh_user_tokens('01VG');
RESET statement_timeout;
\! $CAL_STANDIN_CTL latency 0
SELECT method FROM cal_refresh_user_tokens('01VG');
CALL cal_refresh_expiring_tokens_job();
SELECT 'stats=' || sum(requests) FILTER (WHERE outcome = 'ok') FROM cal_refresh_stats;
SELECT 'info=' || (refreshed_users > 0) FROM cal_refresh_stats_info;
SELECT cal_refresh_stats_reset() IS NOT NULL;
SELECT 'check=' || count(*) FROM cal_refresh_check();
\! $CAL_STANDIN_CTL seed 960 rt-vg-o2
UPDATE public."CalendarIntegration" SET "calRefreshToken" = 'rt-vg-o2',
	"calAccessTokenExpiresAt" = now() - interval '1 minute' WHERE "userUlid" = '01VGB960';
SET cal_refresh.flow = oauth2;
SELECT 'oauth2=' || method FROM cal_refresh_user_tokens('01VGB960');
\! $CAL_STANDIN_CTL oauth2 --wrapped
SELECT 'wrapped=' || method FROM cal_refresh_user_tokens('01VGB960');
\! $CAL_STANDIN_CTL fault oauth2_token status --status 400
SELECT 'grant=' || error_code FROM cal_refresh_user_tokens('01VGB960');
SELECT 'o2check=' || count(*) FROM cal_refresh_check();
RESET cal_refresh.flow;
SQL
like "$(cat "$vgdir/session.out")" "ok.*20.*failed.*20" "the suite ran under valgrind"
like "$(cat "$vgdir/session.out")" "batch=11/11" "...batches too"
like "$(cat "$vgdir/session.out")" "many=299/300 refused=01VGR297: the new tokens could not be stored \(Cal.com has rotated them\): refused by the application for 01VGR297" \
	"...a batch of 300 with a user late in key order refused, its message intact"
like "$(cat "$vgdir/session.out")" "canceling statement due to statement timeout" \
	"...and a batch cancelled half way"
like "$(cat "$vgdir/session.out")" "recovered=true" "...and a pair recovered from the journal"
like "$(cat "$vgdir/session.out")" "stats=[1-9].*info=true" "...and the statistics read and reset"
like "$(cat "$vgdir/session.out")" "check=24.*oauth2=refresh.*wrapped=refresh.*grant=calcom_rejected.*o2check=24" \
	"...and cal_refresh_check and the OAuth2 flow"
cluster_stop vg
trap - EXIT

n_logs=$(ls "$vgdir"/vg.*.log 2>/dev/null | wc -l)
like "$n_logs" '^[1-9][0-9]*$' "valgrind wrote its logs ($n_logs processes)"
# Valgrind's reports are blocks of lines ending in an empty "==PID== "
# line; keep those whose stack passes through our code (PostgreSQL itself,
# not built for valgrind, reports a few of its own).
ours="cal_refresh\\.so|$(cd "$CAL_TOP/src" && ls -- */*.c | sed 's|.*/||; s/\./\\./' | paste -sd'|')"
reports=$(awk -v ours="$ours" '
	/^==[0-9]+== $/ { if (keep) printf "%s", block; block = ""; keep = 0; next }
	{ block = block $0 "\n"; if ($0 ~ ours) keep = 1 }' "$vgdir"/vg.*.log)
is "$(grep -c 'definitely lost' <<<"$reports" || true)" 0 \
	"no definite leak through cal_refresh"
is "$(grep -c -E 'Invalid (read|write|free)|uninitialised|Conditional jump' <<<"$reports" || true)" 0 \
	"no invalid access or uninitialised use in cal_refresh"
[ -n "$reports" ] && printf '# %s\n' "$(head -c 3000 <<<"$reports")"
t_done
