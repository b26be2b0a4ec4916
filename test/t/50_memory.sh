#!/usr/bin/env bash
# 5,000 succeeding and failing calls in one backend: neither its memory
# contexts nor its private resident memory grow beyond a small bound
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
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 901 rt-seed-901

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
grow_ctx=$(( ${ctx[1]:-0} - ${ctx[0]:-0} ))
grow_rss=$(( ${rss[1]:-0} - ${rss[0]:-0} ))
[ "${#ctx[@]}" = 2 ] && [ "$grow_ctx" -le 65536 ] &&
	ok "memory contexts grew by at most 64 kB over 5,000 calls ($grow_ctx bytes: ${ctx[0]} -> ${ctx[1]})" ||
	not_ok "memory contexts grew by at most 64 kB over 5,000 calls" "${ctx[*]:-}"
[ "${#rss[@]}" = 2 ] && [ "$grow_rss" -le 1024 ] &&
	ok "private (anonymous) RSS grew by at most 1 MB over 5,000 calls ($grow_rss kB: ${rss[0]} -> ${rss[1]} kB)" ||
	not_ok "private (anonymous) RSS grew by at most 1 MB over 5,000 calls" "${rss[*]:-}"
t_done
