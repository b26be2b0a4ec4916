#!/usr/bin/env bash
# The cluster-wide request budget (cal_refresh.max_requests_per_minute):
# two sessions share it; a 429 pauses every session; a request that cannot
# get a slot within cal_refresh.timeout fails at once, sending nothing.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_rate
make_test_db "$db"
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration"
SELECT '01R' || lpad(i::text, 2, '0'), 'a', 'rt-seed-' || (1400 + i), now(), 1400 + i
FROM generate_series(1, 32) i;
CREATE ROLE rate_app;
SQL
$CAL_STANDIN_CTL reset
for i in $(seq 1 32); do $CAL_STANDIN_CTL seed $((1400 + i)) "rt-seed-$((1400 + i))"; done

is "$(cpsql main "$db" -At -c "SELECT boot_val FROM pg_settings WHERE name = 'cal_refresh.max_requests_per_minute'")" \
	-1 "the default budget is the flow's"
is "$(cpsql main "$db" -At -c "SET cal_refresh.max_requests_per_minute = -1" \
	-c "SELECT detail FROM cal_refresh_check() WHERE \"check\" = 'max_requests_per_minute'")" \
	"400 a minute for the whole cluster; Cal.com allows 500 per OAuth client" \
	"...400 requests a minute for managed users"
out=$(cpsql main "$db" -At -v ON_ERROR_STOP=0 -c "SET ROLE rate_app" \
	-c "SET cal_refresh.max_requests_per_minute = 0" 2>&1 || true)
like "$out" "permission denied to set parameter" "only a superuser may lift the limit"

# Two sessions, 15 refreshes each, at 600 a minute between them.
session() {
	cpsql main "$db" -At -c "SET cal_refresh.max_requests_per_minute = 600" \
		-c "SELECT count(*) FILTER (WHERE (cal_refresh_user_tokens(u)).success)
			FROM unnest(string_to_array('$1', ',')) u" | grep -v '^SET$'
}
s1=$(seq -f '01R%02g' 1 15 | paste -sd,)
s2=$(seq -f '01R%02g' 16 30 | paste -sd,)
session "$s1" >"$CAL_WORK/rate1.out" &
p1=$!
session "$s2" >"$CAL_WORK/rate2.out" &
p2=$!
wait "$p1" "$p2"
is "$(cat "$CAL_WORK/rate1.out")+$(cat "$CAL_WORK/rate2.out")" "15+15" "all 30 refreshes succeeded"
stats=$($CAL_STANDIN_CTL requests | "$CAL_PYTHON" -c '
import json, sys
times = sorted(r["t"] for r in json.load(sys.stdin)["requests"] if r["endpoint"] == "refresh")
most = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
print(len(times), most, round(times[-1] - times[0], 2))')
read -r n most span <<<"$stats"
is "$n" 30 "the stand-in saw 30 refreshes"
# 10 a second plus the burst of 2, give or take a few ms of scheduling.
[ "$most" -le 12 ] && ok "at most ~11 in any one second ($most)" ||
	not_ok "at most ~11 in any one second ($most)"
awk -v s="$span" 'BEGIN { exit !(s >= 2.5) }' &&
	ok "spaced over at least 2.5 s, as 600 a minute requires ($span s)" ||
	not_ok "spaced over at least 2.5 s, as 600 a minute requires ($span s)"

# A 429 with Retry-After: 2 in one session pauses the next session too.
$CAL_STANDIN_CTL fault refresh status --status 429 --retry-after 2
out=$(cpsql main "$db" -At -c "SET cal_refresh.max_requests_per_minute = 600" \
	-c "SET cal_refresh.max_retries = 0" \
	-c "SELECT error_code FROM cal_refresh_user_tokens('01R31')" | grep -v '^SET$')
is "$out" calcom_unavailable "the 429 is reported"
out=$(cpsql main "$db" -At -c "SET cal_refresh.max_requests_per_minute = 600" \
	-c "SELECT (r).method, clock_timestamp() - statement_timestamp() >= interval '1.5 s'
		FROM (SELECT cal_refresh_user_tokens('01R32') r) s" | grep -v '^SET$')
is "$out" "refresh|t" "another session waited out Cal.com's Retry-After"

# No slot before cal_refresh.timeout: fail at once, nothing sent.  The
# requests just booked at 600 a minute count at the new rate too (the
# backlog is rescaled), so the second request may already find no slot.
$CAL_STANDIN_CTL reset
out=$(cpsql main "$db" -At -F '|' -c "SET cal_refresh.max_requests_per_minute = 1" \
	-c "SET cal_refresh.timeout = '1s'" \
	-c "SELECT (cal_refresh_user_tokens('01R01')).success" \
	-c "SELECT (cal_refresh_user_tokens('01R01')).success" \
	-c "\\timing on" \
	-c "SELECT error_code, error FROM cal_refresh_user_tokens('01R01')" | grep -v '^SET$')
like "$out" $'^t\n[tf]\ntimeout\\|refresh failed: no request slot within cal_refresh.timeout' \
	"the third request in a minute at 1 a minute times out"
ms=$(sed -n 's/^Time: \([0-9]*\)\..*/\1/p' <<<"$out" | head -1)
[ "${ms:-9999}" -lt 200 ] && ok "...at once, without waiting ($ms ms)" ||
	not_ok "...at once, without waiting ($ms ms)"
sent=$(head -2 <<<"$out" | grep -c '^t$')
is "$($CAL_STANDIN_CTL calls)" "refresh=$sent force_refresh=0" \
	"only the requests that had slots were sent ($sent)"

# What 1 a minute booked (a minute or two ahead) is a backlog of requests,
# spaced at the new rate when the rate changes: at 600 a minute, a fifth of
# a second, not minutes (nor a timeout for want of a slot).
out=$(cpsql main "$db" -At -c "SET cal_refresh.max_requests_per_minute = 600" \
	-c "\\timing on" -c "SELECT (cal_refresh_user_tokens('01R02')).success" | grep -v '^SET$')
like "$out" '^t' "a session at 600 a minute right after: its refresh succeeds"
ms=$(sed -n 's/^Time: \([0-9]*\)\..*/\1/p' <<<"$out" | head -1)
[ "${ms:-9999}" -lt 1000 ] && ok "...without waiting out the slow rate's bookings ($ms ms)" ||
	not_ok "...without waiting out the slow rate's bookings ($ms ms)"
t_done
