#!/usr/bin/env bash
# make bench: cal_refresh against what users would do instead, measured in
# one run against the local stand-in.
#   app:    bench/node/refresh.js, the job done from the application (npm pg
#           and Node's fetch), as the original server action did it
#   plpy:   bench/plpython/refresh.sql, the job done in the database by hand
#           (PL/Python, urllib, json)
# Each does the same reads and writes, sends the same headers and follows
# the same fallback rule as the extension.
#   1. one user, no latency: 1,000 refreshes one after another, each
#      committed, from one Node client (the extension and PL/Python through
#      SELECT, app-side in code), and the bare round trip (Node fetch; curl
#      on one connection); medians of alternating rounds
#   2. batches, 50 ms latency: 400 and 2,000 due users at concurrency 32,
#      against the floor ceil(N / concurrency) x latency
#   3. concurrency sweep 1 .. 128 at 400 users: a table and a plot
#   4. backend RSS before and after 10,000 refreshes in one session
# Writes bench/results/latest.md, sweep.tsv and sweep.png.  Run by hand
# (test/harness.sh installs Node's pg, PL/Python and gnuplot); not part of
# make test.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

ROUNDS=${BENCH_ROUNDS:-5}               # single-user rounds of SINGLE_CALLS
SINGLE_CALLS=${BENCH_SINGLE_CALLS:-1000}
BATCH_ROUNDS=${BENCH_BATCH_ROUNDS:-3}
BATCH_SIZES=${BENCH_BATCH_SIZES:-"400 2000"}
SWEEP_USERS=${BENCH_SWEEP_USERS:-400}
SWEEP=${BENCH_SWEEP:-"1 4 16 32 64 128"}
MEM_CALLS=${BENCH_MEM_CALLS:-10000}
LATENCY_MS=50
CONCURRENCY=32 # the extension's default max_concurrency
BATCH_USERS=2000 # rows per table; the largest batch
NODE_DIR=$CAL_TOP/bench/node
RESULTS=$CAL_TOP/bench/results
mkdir -p "$RESULTS"
out=$CAL_WORK/alternatives
mkdir -p "$out"

# One database per implementation, each with the same table and its own
# stand-in users (the extension's id base, +10,000 for app, +20,000 for
# PL/Python): batch users BASE.., the single user BASE+5000, refresh tokens
# rt-DB-ID.
declare -A BASE=([ext]=10000 [app]=20000 [plpy]=30000)
setup_db() {
	local impl=$1 base=${BASE[$1]}
	cpsql main postgres -c "CREATE DATABASE b_$impl" >/dev/null
	cpsql main "b_$impl" >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION cal_refresh;
-- Benchmarks run without the request budget (the stand-in has no limit).
ALTER DATABASE b_$impl SET cal_refresh.max_requests_per_minute = 0;
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calRefreshTokenExpiresAt" timestamptz,
	"calManagedUserId" int, "updatedAt" timestamptz);
INSERT INTO public."CalendarIntegration"
SELECT '01B' || i, 'a', 'rt-$impl-' || i, now() + interval '1 hour', NULL, i, now()
FROM generate_series($base, $base + $BATCH_USERS - 1) i;
INSERT INTO public."CalendarIntegration"
VALUES ('01S', 'a', 'rt-$impl-$((base + 5000))', now() + interval '1 hour', NULL, $((base + 5000)), now());
SQL
	$CAL_STANDIN_CTL seed-many "$base" "$BATCH_USERS" "rt-$impl"
	$CAL_STANDIN_CTL seed-many "$((base + 5000))" 1 "rt-$impl"
}

$CAL_STANDIN_CTL reset
trap '$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
for impl in ext app plpy; do setup_db "$impl"; done
cpsql main b_plpy -f "$CAL_TOP/bench/plpython/refresh.sql" >/dev/null
cpsql main b_plpy >/dev/null <<'SQL'
CREATE FUNCTION bench_python_version() RETURNS text LANGUAGE plpython3u
AS $$ import sys; return sys.version.split()[0] $$;
SQL
# The client's own share of each SQL call: a function that does nothing.
cpsql main b_ext >/dev/null <<'SQL'
CREATE FUNCTION bench_noop(text, OUT success boolean) LANGUAGE sql AS 'SELECT true';
SQL

# The Node client reaches the cluster through libpq's variables and the
# stand-in through the harness's.
node_run() { # DB ARGS...: prints "ok=N ms=X"
	local db=$1
	shift
	PGHOST=$MAIN_HOST PGPORT=$MAIN_PORT PGUSER=postgres PGDATABASE=$db \
		CAL_SECRET_FILE=$CAL_SECRET_FILE node "$NODE_DIR/refresh.js" "$@"
}
# check_ms WANT "ok=N ms=X" WHAT: prints X, or fails when fewer than WANT
# succeeded (a failing refresh must not pass for a fast one).
check_ms() {
	local want=$1 line=$2 what=$3 ok ms
	ok=$(sed -n 's/^ok=\([0-9]*\) .*/\1/p' <<<"$line")
	ms=$(sed -n 's/.* ms=\([0-9.]*\)$/\1/p' <<<"$line")
	[ "$ok" = "$want" ] || { echo "bench: $what: $ok of $want refreshes succeeded" >&2; exit 1; }
	echo "$ms"
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# --- 1. one user, no latency --------------------------------------------

# curl's floor: SINGLE_CALLS refreshes on one kept-alive connection, each
# with its own seeded token (curl cannot feed one answer into the next
# request).  The config holds the secret: it lives in the run's scratch dir.
curl_cfg=$out/curl.cfg
curl_first=41000
(
	umask 077
	secret=$(cat "$CAL_SECRET_FILE")
	for i in $(seq "$curl_first" $((curl_first + SINGLE_CALLS - 1))); do
		printf 'url = "%s/v2/oauth/%s/refresh"\n' "$CAL_STANDIN_URL" "$CAL_CLIENT_ID"
		printf 'header = "Content-Type: application/json"\n'
		printf 'header = "x-cal-secret-key: %s"\nheader = "x-cal-client-id: %s"\n' "$secret" "$CAL_CLIENT_ID"
		printf 'data = "{\\"refreshToken\\":\\"rt-curl-%s\\"}"\n' "$i"
		printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
		[ "$i" = $((curl_first + SINGLE_CALLS - 1)) ] || echo next
	done >"$curl_cfg"
)
curl_round() {
	local t0 t1 n
	$CAL_STANDIN_CTL seed-many "$curl_first" "$SINGLE_CALLS" rt-curl
	t0=$(date +%s%N)
	n=$(curl -s --noproxy '*' -K "$curl_cfg" | grep -c '^200$' || true)
	t1=$(date +%s%N)
	echo "ok=$n ms=$(((t1 - t0) / 1000000))"
}
http_round() {
	$CAL_STANDIN_CTL seed 40000 rt-http
	node_run b_app http "$SINGLE_CALLS" rt-http
}
single_round() { # IMPL: prints "ok=N ms=X"
	case $1 in
	ext) node_run b_ext sql-single "$SINGLE_CALLS" 01S cal_refresh_user_tokens ;;
	noop) node_run b_ext sql-single "$SINGLE_CALLS" 01S bench_noop ;;
	app) node_run b_app app-single "$SINGLE_CALLS" 01S ;;
	plpy) node_run b_plpy sql-single "$SINGLE_CALLS" 01S bench_py_refresh_user_tokens ;;
	http) http_round ;;
	curl) curl_round ;;
	esac
}

declare -A single
single_impls="ext app plpy http curl noop"
for _ in $(seq 1 "$ROUNDS"); do
	for impl in $single_impls; do
		single[$impl]+="$(check_ms "$SINGLE_CALLS" "$(single_round "$impl")" "single $impl") "
	done
done
for impl in $single_impls; do log "single $impl, ms per $SINGLE_CALLS: ${single[$impl]}"; done
declare -A single_ms
for impl in $single_impls; do
	# shellcheck disable=SC2086
	single_ms[$impl]=$(printf '%s\n' ${single[$impl]} | median)
done

# --- 2 and 3. batches at 50 ms --------------------------------------------

# make_due IMPL N: exactly the first N batch users (in key order) are due.
make_due() {
	cpsql main "b_$1" -c "UPDATE public.\"CalendarIntegration\" SET \"calAccessTokenExpiresAt\" =
		CASE WHEN \"userUlid\" <= (SELECT max(u) FROM (SELECT \"userUlid\" u
			FROM public.\"CalendarIntegration\" WHERE \"userUlid\" LIKE '01B%'
			ORDER BY 1 LIMIT $2) s)
		THEN now() - interval '1 minute' ELSE now() + interval '1 hour' END
		WHERE \"userUlid\" LIKE '01B%'" -c "VACUUM public.\"CalendarIntegration\"" >/dev/null
}
# batch_ms IMPL N CONCURRENCY: one batch of N due users; prints milliseconds
# (the extension and PL/Python measured on the server, app-side in Node).
# IMPL http: the same requests from Node without any database, which shows
# what the stand-in and the machine allow.
batch_ms() {
	local impl=$1 n=$2 c=$3 line
	[ "$impl" = http ] || make_due "$impl" "$n"
	case $impl in
	http)
		$CAL_STANDIN_CTL seed-many 42000 "$n" rt-hb
		line=$(node_run b_app http-batch "$n" "$c" rt-hb 42000) ;;
	ext) line=$(cpsql main b_ext -At -F ' ' -c "SET cal_refresh.max_concurrency = $c" -c "
		SELECT 'ok=' || count(*) FILTER (WHERE success), 'ms=' ||
			round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000, 1)
		FROM cal_refresh_expiring_tokens(max_users => $n)" | grep -v '^SET$') ;;
	plpy) line=$(cpsql main b_plpy -At -F ' ' -c "
		SELECT count(*) FROM bench_py_refresh_expiring_tokens(within => '-1 year')" -c "
		SELECT 'ok=' || count(*) FILTER (WHERE success), 'ms=' ||
			round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000, 1)
		FROM bench_py_refresh_expiring_tokens(max_users => $n, concurrency => $c)" | sed 1d) ;;
	app) line=$(node_run b_app app-batch "$n" "$c") ;;
	esac
	check_ms "$n" "$line" "batch $impl $n at $c"
}
floor_ms() { echo $(((($1 + $2 - 1) / $2) * LATENCY_MS)); }

$CAL_STANDIN_CTL latency "$LATENCY_MS"
declare -A batch_med
for n in $BATCH_SIZES; do
	declare -A runs=()
	for _ in $(seq 1 "$BATCH_ROUNDS"); do
		for impl in ext app plpy http; do runs[$impl]+="$(batch_ms "$impl" "$n" "$CONCURRENCY") "; done
	done
	for impl in ext app plpy http; do
		# shellcheck disable=SC2086
		batch_med[$impl,$n]=$(printf '%s\n' ${runs[$impl]} | median)
	done
	log "batch $n: ext ${runs[ext]}; app ${runs[app]}; plpy ${runs[plpy]}; http ${runs[http]}"
done

sweep_tsv=$RESULTS/sweep.tsv
{
	printf '# %s due users, stand-in latency %s ms; milliseconds for one batch\n' "$SWEEP_USERS" "$LATENCY_MS"
	printf 'concurrency\tfloor\tcal_refresh\tnode_app\tplpython\tbare_http\n'
	for c in $SWEEP; do
		e=$(batch_ms ext "$SWEEP_USERS" "$c")
		a=$(batch_ms app "$SWEEP_USERS" "$c")
		p=$(batch_ms plpy "$SWEEP_USERS" "$c")
		h=$(batch_ms http "$SWEEP_USERS" "$c")
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$(floor_ms "$SWEEP_USERS" "$c")" "$e" "$a" "$p" "$h"
		log "sweep $c: ext $e, app $a, plpy $p, http $h"
	done
} >"$sweep_tsv.tmp"
mv "$sweep_tsv.tmp" "$sweep_tsv"
$CAL_STANDIN_CTL latency 0

gnuplot <<GP
set terminal pngcairo size 800,500 font ",10" noenhanced
set output "$RESULTS/sweep.png"
set title "One batch of $SWEEP_USERS due users, stand-in latency $LATENCY_MS ms"
set xlabel "concurrency"
set ylabel "milliseconds (log scale)"
set logscale x 2
set logscale y 10
set xrange [0.8:160]
set xtics (${SWEEP// /, })
set ytics (100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
set key top right
set grid
plot "$sweep_tsv" using 1:3 with linespoints lw 2 title "cal_refresh_expiring_tokens", \
     "" using 1:4 with linespoints lw 2 title "app-side (Node pg + fetch)", \
     "" using 1:5 with linespoints lw 2 title "PL/Python (urllib)", \
     "" using 1:6 with linespoints lw 1 dt 3 title "requests alone (Node fetch, no database)", \
     "" using 1:2 with lines dt 2 lc rgb "black" title "floor: ceil(N / concurrency) x latency"
GP

# --- 4. memory ---------------------------------------------------------------

# rss DB FUNCTION: one session: the backend's VmRSS and RssAnon (kB, from
# /proc/PID/status) fresh, after 100 warm-up refreshes, and after MEM_CALLS
# more, each committed.  Prints "fresh_rss fresh_anon warm_rss warm_anon
# after_rss after_anon".
rss() {
	cpsql main "$1" -At -F ' ' <<SQL | grep -v '^$'
SET client_min_messages = error;
CREATE TEMP TABLE rss (at text, vmrss int, anon int);
CREATE TEMP TABLE failed (n int DEFAULT 0);
INSERT INTO failed VALUES (0);
CREATE FUNCTION pg_temp.snap(at text) RETURNS void LANGUAGE sql AS \$\$
	INSERT INTO rss SELECT at, (regexp_match(s, 'VmRSS:\s+(\d+)'))[1]::int,
		(regexp_match(s, 'RssAnon:\s+(\d+)'))[1]::int
	FROM pg_read_file('/proc/' || pg_backend_pid() || '/status') s \$\$;
SELECT pg_temp.snap('fresh');
DO \$\$ BEGIN FOR i IN 1..100 LOOP
	UPDATE failed SET n = n + 1 WHERE NOT (SELECT success FROM $2('01S'));
	COMMIT; END LOOP; END \$\$;
SELECT pg_temp.snap('warm');
DO \$\$ BEGIN FOR i IN 1..$MEM_CALLS LOOP
	UPDATE failed SET n = n + 1 WHERE NOT (SELECT success FROM $2('01S'));
	COMMIT; END LOOP; END \$\$;
SELECT pg_temp.snap('after');
SELECT CASE WHEN n = 0 THEN string_agg(vmrss || ' ' || anon, ' ' ORDER BY ord)
	ELSE 'failed ' || n END
FROM (SELECT *, array_position(ARRAY['fresh', 'warm', 'after'], at) ord FROM rss) r, failed
GROUP BY n;
SQL
}
mem_ext=$(rss b_ext cal_refresh_user_tokens)
mem_plpy=$(rss b_plpy bench_py_refresh_user_tokens)
for m in "$mem_ext" "$mem_plpy"; do
	[[ $m =~ ^[0-9\ ]+$ ]] || { echo "bench: memory run: $m" >&2; exit 1; }
done

# --- the report ---------------------------------------------------------------

pg_version=$(cpsql main b_ext -At -c "SHOW server_version")
ext_version=$(cpsql main b_ext -At -c "SELECT extversion FROM pg_extension WHERE extname = 'cal_refresh'")
py_version=$(cpsql main b_plpy -At -c "SELECT bench_python_version()")
node_version=$(node --version)
pg_npm=$(node -p "require('$NODE_DIR/node_modules/pg/package.json').version")
curl_version=$(curl --version | head -1 | awk '{print $2}')
libcurl_version=$(curl --version | head -1 | sed -n 's/.*libcurl\/\([^ ]*\).*/\1/p')
standin_python=$("$CAL_PYTHON" -c 'import platform; print(platform.python_version())')
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)

{
	echo "# make bench: cal_refresh against the alternatives"
	echo
	echo "Written by \`bench/alternatives.sh\` ($(date -u +%Y-%m-%d)). Every figure comes from one run"
	echo "against the local Cal.com stand-in; ratios are what carries over to other machines."
	echo
	echo "## Machine and versions"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| CPUs | $(nproc) × $cpu_model |"
	echo "| memory | $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) |"
	echo "| PostgreSQL | $pg_version (cal_refresh $ext_version, libcurl $libcurl_version) |"
	echo "| Node.js | $node_version, npm pg $pg_npm |"
	echo "| PL/Python | Python $py_version |"
	echo "| curl | $curl_version |"
	echo "| stand-in | Python $standin_python (test/calcom_standin.py) |"
	echo
	awk -v rounds="$ROUNDS" -v calls="$SINGLE_CALLS" -v e="${single_ms[ext]}" \
		-v a="${single_ms[app]}" -v p="${single_ms[plpy]}" -v h="${single_ms[http]}" \
		-v c="${single_ms[curl]}" -v z="${single_ms[noop]}" 'BEGIN {
		printf "## One user, no latency: %d refreshes one after another\n\n", calls
		printf "Median of %d alternating rounds. Each refresh is committed on its own and driven\n", rounds
		printf "by one Node client (pg), which calls the SQL function or does the job itself\n"
		printf "(app-side), after 2,000 untimed calls in the same process (a warm server). curl\n"
		printf "sends its requests on one connection, each with a token of its own.\n\n"
		printf "| | ms per refresh | × cal_refresh | × bare round trip (curl) |\n|---|---:|---:|---:|\n"
		printf "| cal_refresh_user_tokens | %.3f | 1.00 | %.2f |\n", e / calls, e / c
		printf "| app-side (Node pg + fetch) | %.3f | %.2f | %.2f |\n", a / calls, a / e, a / c
		printf "| PL/Python by hand (urllib) | %.3f | %.2f | %.2f |\n", p / calls, p / e, p / c
		printf "| bare round trip, curl, one connection | %.3f | %.2f | 1.00 |\n", c / calls, c / e
		printf "| bare round trip, Node fetch | %.3f | %.2f | %.2f |\n", h / calls, h / e, h / c
		printf "| Node pg calling a function that does nothing | %.3f | %.2f | %.2f |\n\n", z / calls, z / e, z / c
		printf "The last line is the client'"'"'s own share of each SQL call; without it a refresh\n"
		printf "costs %.3f ms in cal_refresh and %.3f ms in PL/Python.\n\n", (e - z) / calls, (p - z) / calls
	}'
	echo "## Batches: stand-in latency $LATENCY_MS ms, concurrency $CONCURRENCY"
	echo
	echo "Median of $BATCH_ROUNDS runs each; floor = ceil(N / $CONCURRENCY) × $LATENCY_MS ms. \"Requests alone\" sends"
	echo "the same requests from Node in the same chunks, without any database: what the"
	echo "stand-in and the machine allow."
	echo
	echo "| due users | floor ms | requests alone ms | cal_refresh ms | app-side ms | PL/Python ms | cal_refresh / floor | app-side / cal_refresh | PL/Python / cal_refresh |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for n in $BATCH_SIZES; do
		awk -v n="$n" -v f="$(floor_ms "$n" "$CONCURRENCY")" -v e="${batch_med[ext,$n]}" \
			-v a="${batch_med[app,$n]}" -v p="${batch_med[plpy,$n]}" -v h="${batch_med[http,$n]}" 'BEGIN {
			printf "| %d | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", n, f, h, e, a, p, e / f, a / e, p / e }'
	done
	echo
	echo "## Concurrency sweep: $SWEEP_USERS due users, latency $LATENCY_MS ms"
	echo
	echo "One run per point (\`sweep.tsv\`, plotted in \`sweep.png\`)."
	echo
	echo "| concurrency | floor ms | requests alone ms | cal_refresh ms | app-side ms | PL/Python ms | cal_refresh / floor | app-side / cal_refresh | PL/Python / cal_refresh |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk -F '\t' '!/^#/ && $1 != "concurrency" {
		printf "| %d | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", $1, $2, $6, $3, $4, $5, $3 / $2, $4 / $3, $5 / $3 }' "$sweep_tsv"
	echo
	echo "## Backend memory over $MEM_CALLS refreshes"
	echo
	echo "One session each; kB from /proc/PID/status of the backend (pg_backend_pid()):"
	echo "fresh, after 100 warm-up refreshes, after $MEM_CALLS more. VmRSS counts the shared"
	echo "buffers the backend has touched; RssAnon is its private memory."
	echo
	echo "| | VmRSS fresh | VmRSS warm | VmRSS after | RssAnon warm | RssAnon after | RssAnon growth |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for pair in "cal_refresh_user_tokens:$mem_ext" "PL/Python by hand:$mem_plpy"; do
		read -r fr _ wr wa ar aa <<<"${pair#*:}"
		echo "| ${pair%%:*} | $fr | $wr | $ar | $wa | $aa | $((aa - wa)) |"
	done
} >"$RESULTS/latest.md.tmp"
mv "$RESULTS/latest.md.tmp" "$RESULTS/latest.md"
cat "$RESULTS/latest.md"
