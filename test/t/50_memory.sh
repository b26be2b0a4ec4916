#!/usr/bin/env bash
# 5,000 succeeding and failing calls in one backend, then 2,000 users in
# concurrent batches and job runs: neither its memory contexts nor its
# private resident memory grow beyond a small bound
# (palloc'd memory shows in the contexts; curl's and cJSON's malloc'd
# memory in RssAnon, which unlike VmRSS leaves out shared buffers).
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_memory
make_test_db "$db"
cpsql main "$db" >/dev/null <<'SQL'
-- 01MEM refreshes; 01BAD fails twice over HTTP (refresh 400, force 404).
INSERT INTO public."CalendarIntegration" VALUES
	('01MEM', 'a', 'rt-seed-901', now(), 901),
	('01BAD', 'a', 'rt-not-issued', now(), 99999);
-- 20 users for the batches, not due until the batch phase makes them so.
INSERT INTO public."CalendarIntegration"
SELECT '01MB' || i, 'a', 'rt-seed-' || i, now() + interval '1 hour', i
FROM generate_series(910, 929) i;
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 901 rt-seed-901
for i in $(seq 910 929); do $CAL_STANDIN_CTL seed "$i" "rt-seed-$i"; done

batch="SELECT count(*) FILTER (WHERE r.success) AS ok, count(*) FILTER (WHERE NOT r.success) AS failed
FROM generate_series(1, 100) i,
	 LATERAL cal_refresh_user_tokens(CASE WHEN i % 2 = 0 THEN '01MEM' ELSE '01BAD' END) r;"
measure="SELECT 'ctx=' || sum(total_bytes) FROM pg_backend_memory_contexts;
\\! echo rss=\$(awk '/^RssAnon/ {print \$2}' /proc/\$BPID/status)"

script=$CAL_WORK/memory.sql
{
	echo "\\set QUIET on"
	echo "SET cal_refresh.max_retries = 0;"
	echo "SELECT pg_backend_pid() AS pid \\gset"
	echo "\\setenv BPID :pid"
	# warm up: caches, the curl handle, the connection
	for _ in 1 2; do echo "$batch"; done
	echo "$measure"
	for _ in $(seq 1 50); do echo "$batch"; done
	echo "$measure"
} >"$script"

out=$(cpsql main "$db" -At -F ' ' -f "$script")
ctx=($(sed -n 's/^ctx=//p' <<<"$out"))
rss=($(sed -n 's/^rss=//p' <<<"$out"))
calls=$(grep -E '^[0-9]+ [0-9]+$' <<<"$out" | awk '{ok += $1; bad += $2} END {print ok, bad}')

is "$calls" "2600 2600" "5,200 calls: half succeed, half fail over HTTP"
is "$($CAL_STANDIN_CTL calls)" "refresh=5200 force_refresh=2600" "every call reached the stand-in"

# check_growth FIRST SECOND WHAT: contexts by at most 64 kB, RSS by 1 MB.
check_growth() {
	local a=$1 b=$2 what=$3 grow_ctx grow_rss
	grow_ctx=$(( ${ctx[b]:-0} - ${ctx[a]:-0} ))
	grow_rss=$(( ${rss[b]:-0} - ${rss[a]:-0} ))
	[ -n "${ctx[b]:-}" ] && [ "$grow_ctx" -le 65536 ] &&
		ok "memory contexts grew by at most 64 kB over $what ($grow_ctx bytes: ${ctx[a]} -> ${ctx[b]})" ||
		not_ok "memory contexts grew by at most 64 kB over $what" "${ctx[*]:-}"
	[ -n "${rss[b]:-}" ] && [ "$grow_rss" -le 1024 ] &&
		ok "private (anonymous) RSS grew by at most 1 MB over $what ($grow_rss kB: ${rss[a]} -> ${rss[b]} kB)" ||
		not_ok "private (anonymous) RSS grew by at most 1 MB over $what" "${rss[*]:-}"
}
check_growth 0 1 "5,000 calls"

# --- batches: 20 users at a time, concurrently, and the job procedure ----
due="UPDATE public.\"CalendarIntegration\" SET \"calAccessTokenExpiresAt\" = now()
WHERE \"userUlid\" LIKE '01MB%';"
batch="$due
SELECT 'batch=' || count(*) FILTER (WHERE success) FROM cal_refresh_expiring_tokens(max_users => 20);"
job="$due
CALL cal_refresh_expiring_tokens_job(batch_size => 7);"
{
	echo "\\set QUIET on"
	echo "SET cal_refresh.max_retries = 0;"
	echo "SELECT pg_backend_pid() AS pid \\gset"
	echo "\\setenv BPID :pid"
	for _ in 1 2; do echo "$batch"; echo "$job"; done
	echo "$measure"
	for _ in $(seq 1 50); do echo "$batch"; echo "$job"; done
	echo "$measure"
} >"$script"
$CAL_STANDIN_CTL reset
out=$(cpsql main "$db" -At -F ' ' -f "$script")
ctx=($(sed -n 's/^ctx=//p' <<<"$out"))
rss=($(sed -n 's/^rss=//p' <<<"$out"))
is "$(grep -c '^batch=20$' <<<"$out")" 52 "52 batches of 20 users, every user refreshed"
is "$($CAL_STANDIN_CTL calls)" "refresh=2080 force_refresh=0" \
	"...and 52 job runs: 2,080 refreshes reached the stand-in"
check_growth 0 1 "1,000 users in batches and 1,000 in job runs"
t_done
