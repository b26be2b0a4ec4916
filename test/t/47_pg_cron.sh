#!/usr/bin/env bash
# The job procedure under real pg_cron (1.4, background workers), in a
# cluster of its own that preloads both libraries: a job scheduled every
# minute runs CALL cal_refresh_expiring_tokens_job(), succeeds, and leaves
# every due row fresh and current.  pg_cron has no seconds syntax, so this
# waits for the next minute boundary (up to ~75 s).  Stand-in users 6000-6999.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

# CAL_CRON_COMMAND='SELECT 1' checks the pg_cron mechanics alone.
job_command=${CAL_CRON_COMMAND:-CALL cal_refresh_expiring_tokens_job()}

cluster_start cron yes "shared_preload_libraries = 'cal_refresh,pg_cron'" \
	"cron.database_name = 'postgres'" "cron.use_background_workers = on"
cleanup() {
	cluster_stop cron
	$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true
}
trap cleanup EXIT
table='public."CalendarIntegration"'

is "$(cpsql cron postgres -At -c "SHOW shared_preload_libraries")" "cal_refresh,pg_cron" \
	"the later shared_preload_libraries line wins: both libraries preloaded"

# 20 due users and 3 that are not (30 minutes left).
cpsql cron postgres >/dev/null <<SQL
CREATE EXTENSION pg_cron;
CREATE EXTENSION cal_refresh;
CREATE TABLE $table ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO $table
SELECT '01CRON' || i, 'a', 'rt-47-' || i, now() - interval '1 minute', i
FROM generate_series(6000, 6019) i;
INSERT INTO $table
SELECT '01CRONK' || i, 'at-keep', 'rt-47k-' || i, now() + interval '30 minutes', i
FROM generate_series(6100, 6102) i;
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 6000 20 rt-47
$CAL_STANDIN_CTL seed-many 6100 3 rt-47k

jobid=$(cpsql cron postgres -At -v cmd="$job_command" <<'SQL'
SELECT cron.schedule('cal-refresh', '* * * * *', :'cmd');
SQL
)
like "$jobid" '^[0-9]+$' "the job is scheduled every minute (job $jobid)"

# Poll for a finished run: the first fires at the next minute boundary.
start=$SECONDS
finished=""
while [ $((SECONDS - start)) -lt 75 ]; do
	finished=$(cpsql cron postgres -At -F '|' -c "SELECT status, return_message
		FROM cron.job_run_details WHERE jobid = $jobid
		AND status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1")
	[ -n "$finished" ] && break
	sleep 0.5
done
waited=$((SECONDS - start))
cpsql cron postgres -At -c "SELECT cron.unschedule('cal-refresh')" >/dev/null
like "$finished" '.' "pg_cron ran the job within 75 s (after $waited s)"
is "${finished%%|*}" succeeded "the run succeeded (${finished#*|})"
is "$(cpsql cron postgres -At -c "SELECT command FROM cron.job_run_details
	WHERE jobid = $jobid ORDER BY runid LIMIT 1")" "$job_command" "...running $job_command"

is "$(cpsql cron postgres -At -c "SELECT count(*) FROM $table
	WHERE \"userUlid\" LIKE '01CRON6%' AND \"calAccessTokenExpiresAt\" > now() + interval '50 minutes'")" \
	20 "every due row is fresh"
is "$(cpsql cron postgres -At -F ' ' -c "SELECT \"calManagedUserId\", \"calRefreshToken\"
	FROM $table" | $CAL_STANDIN_CTL check-current | tail -1)" "23 current, 0 not current" \
	"every row holds the refresh token the stand-in considers current"
is "$(cpsql cron postgres -At -c "SELECT count(*) FROM $table
	WHERE \"userUlid\" LIKE '01CRONK%' AND \"calAccessToken\" = 'at-keep'
	AND \"calRefreshToken\" = 'rt-47k-' || \"calManagedUserId\"")" 3 \
	"the rows not due are untouched"
is "$($CAL_STANDIN_CTL calls)" "refresh=20 force_refresh=0" "the stand-in saw one refresh per due user"
done_line=$(grep -a 'LOG:  cal_refresh: job done' "$CAL_WORK/cron/server.log" |
	sed 's/.*cal_refresh: //; s/ in [0-9]* ms$//' | head -1 || true)
is "$done_line" "job done: 1 batches, 20 due, 20 refreshed, 0 forced, 0 failed" \
	"the cron cluster's log has the job's done line"

# README's pg_cron block, as written: our job every 5 minutes, and the
# cleanup of pg_cron's own history beside it, whose command must run.
cpsql cron postgres -c "DROP EXTENSION pg_cron" >/dev/null
cron_sql=$(readme_sql 47_pg_cron.sh)
out=$(printf '%s\n' "$cron_sql" | cpsql cron postgres 2>&1 >/dev/null) && status=ok || status=failed
is "$status" ok "README's pg_cron block runs as written${out:+: $out}"
is "$(cpsql cron postgres -At -F ' ' -c "SELECT jobname, schedule FROM cron.job ORDER BY jobname")" \
	"cal-refresh */5 * * * *
cron-history-cleanup 17 3 * * *" "...scheduling our job and the history cleanup"
# cal_refresh_check() reads pg_cron's own cron.job: the job is found,
# then not once it is inactive.
is "$(cpsql cron postgres -At -F '|' -c "SELECT ok, detail FROM cal_refresh_check()
	WHERE \"check\" = 'pg_cron job'")" \
	"t|active jobs of this database calling cal_refresh_expiring_tokens: 1 (schedule */5 * * * *)" \
	"cal_refresh_check() finds the job in pg_cron's cron.job"
cpsql cron postgres -c "SELECT cron.alter_job(jobid, active := false) FROM cron.job
	WHERE jobname = 'cal-refresh'" >/dev/null
is "$(cpsql cron postgres -At -F '|' -c "SELECT ok, detail FROM cal_refresh_check()
	WHERE \"check\" = 'pg_cron job'")" \
	"f|no active job in cron.job calls cal_refresh_expiring_tokens in this database" \
	"...and says so once it is inactive"
cleanup_command=$(cpsql cron postgres -At -c "SELECT command FROM cron.job
	WHERE jobname = 'cron-history-cleanup'")
cpsql cron postgres -c "INSERT INTO cron.job_run_details (jobid, runid, command,
	status, start_time, end_time) VALUES (0, 0, 'old', 'succeeded',
	now() - interval '8 days', now() - interval '8 days')" >/dev/null
before=$(cpsql cron postgres -At -c "SELECT count(*) FROM cron.job_run_details")
cpsql cron postgres -c "$cleanup_command" >/dev/null
after=$(cpsql cron postgres -At -c "SELECT count(*) FROM cron.job_run_details")
is "$((before - after))" 1 "the cleanup's command deletes the runs older than 7 days, and only those"
cpsql cron postgres -c "SELECT cron.unschedule(jobname) FROM cron.job" >/dev/null
t_done
