#!/usr/bin/env bash
# Plans never carry tokens: on a server that logs every nested statement's
# plan verbosely (auto_explain) and prints every plan (debug_print_plan),
# refreshes one at a time, in batches, through the job and
# cal_update_tokens leave no token in the log.  A kept plan run as a
# custom plan would fold the new tokens into it as constants.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

cluster_start plans yes "shared_preload_libraries = 'cal_refresh,auto_explain'" \
	"auto_explain.log_min_duration = 0" "auto_explain.log_nested_statements = on" \
	"auto_explain.log_verbose = on" "auto_explain.log_analyze = on" \
	"debug_print_plan = on" "log_min_messages = log"
trap 'cluster_stop plans' EXIT
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed-many 1801 20 rt-plan

cpsql plans postgres >"$CAL_WORK/plans.out" 2>&1 <<'SQL'
CREATE EXTENSION cal_refresh;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO public."CalendarIntegration"
SELECT '01PL' || lpad(i::text, 2, '0'), 'at-old', 'rt-plan-' || (1800 + i), now(), 1800 + i
FROM generate_series(1, 20) i;
SELECT count(*) FILTER (WHERE (cal_refresh_user_tokens('01PL01')).success) AS single
FROM generate_series(1, 8);
SELECT 'batch=' || count(*) FILTER (WHERE success) FROM cal_refresh_expiring_tokens();
UPDATE public."CalendarIntegration" SET "calAccessTokenExpiresAt" = now();
CALL cal_refresh_expiring_tokens_job(batch_size => 7);
SELECT count(*) FILTER (WHERE (cal_update_tokens('01PL02', 'at-' || md5(i || 'plans'),
	'rt-' || md5(i || 'plans'), now() + interval '1 hour')).success) AS updates
FROM generate_series(1, 8) i;
SQL
# The tokens given to cal_update_tokens; the statement's own text does not
# hold them, only the way to compute them.
cpsql plans postgres -At -c "SELECT p || md5(i || 'plans') FROM generate_series(1, 8) i,
	unnest('{at-,rt-}'::text[]) p" >"$CAL_WORK/plans.given"
like "$(cat "$CAL_WORK/plans.out")" "single.*8.*batch=19.*updates.*8" "the refreshes ran"
log_file=$CAL_WORK/plans/server.log
like "$(grep -c 'Query Text: UPDATE' "$log_file" || true)" '^[1-9][0-9]*$' \
	"auto_explain logged the extension's UPDATEs"
like "$(grep -c ':planTree' "$log_file" || true)" '^[1-9][0-9]*$' "debug_print_plan printed plans"
tokens=$CAL_WORK/plans.tokens
{ $CAL_STANDIN_CTL issued-tokens; cat "$CAL_WORK/plans.given"; } >"$tokens"
is "$(grep -c -F -f "$tokens" "$log_file" || true)" 0 "no token in any logged plan"
cluster_stop plans
trap - EXIT
t_done
