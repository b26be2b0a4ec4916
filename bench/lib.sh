# Shared by the benchmarks in bench/: a database of their own with the
# extension at a given version, and the median of a column of numbers.
# Sourced after test/lib.sh.

# bench_db DB VERSION FIRST_ID N PREFIX DUE: database DB with the extension
# at VERSION and N users 01<PREFIX>1.. holding the stand-in's tokens
# rt-<PREFIX>-<id> (ids FIRST_ID..), due when DUE is "due", and a table
# cal_token_result_log for the calls' successes.
bench_db() {
	local db=$1 version=$2 first=$3 n=$4 prefix=$5 due=${6:-}
	local expiry="now() + interval '1 hour'"
	[ "$due" = due ] && expiry="now() - interval '1 minute'"
	cpsql main postgres -c "CREATE DATABASE $db" >/dev/null
	cpsql main "$db" >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION cal_refresh VERSION '$version';
CREATE TABLE public."CalendarIntegration" ("userUlid" text PRIMARY KEY,
	"calAccessToken" text, "calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO public."CalendarIntegration"
SELECT '01$prefix' || (i - $first + 1), 'a', 'rt-$prefix-' || i, $expiry, i
FROM generate_series($first, $first + $n - 1) i;
-- Each call's success, so that a failing refresh cannot pass for a fast one.
CREATE UNLOGGED TABLE cal_token_result_log (success boolean);
SQL
	$CAL_STANDIN_CTL seed-many "$first" "$n" "rt-$prefix"
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
