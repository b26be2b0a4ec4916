#!/usr/bin/env bash
# The extension's own tables are used only as members of the extension.
# With the objects still at 1.0 or 1.1 (no journal, or no failure table
# yet), a role with CREATE on the extension's schema plants a table of
# that name: it must receive no pair, feed no pair into a user's row, and
# be handed no failure.  Stand-in users 2800-2809.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

table='public."CalendarIntegration"'
trap '$CAL_STANDIN_CTL reset >/dev/null 2>&1 || true' EXIT
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 2801 rt-plant-2801
$CAL_STANDIN_CTL seed 2802 rt-plant-2802

cpsql main postgres -c "CREATE DATABASE t_plant1" -c "CREATE DATABASE t_plant0" >/dev/null
cpsql main postgres -c "CREATE ROLE mallory" >/dev/null 2>&1 || true

# 1.1: a planted cal_refresh_journal, with an entry that would hand the
# victim mallory's pair.
cpsql main t_plant1 >/dev/null <<SQL
CREATE EXTENSION cal_refresh VERSION '1.1';
CREATE TABLE $table ("userUlid" text PRIMARY KEY, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO $table VALUES ('01PLANT', 'a', 'rt-plant-2801', now(), 2801);
GRANT CREATE ON SCHEMA public TO mallory;
SET ROLE mallory;
CREATE TABLE public.cal_refresh_journal (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, table_name text NOT NULL,
	user_ulid text NOT NULL, spent_token_sha256 bytea, access_token text NOT NULL,
	refresh_token text NOT NULL, access_token_expires_at timestamptz NOT NULL,
	refresh_token_expires_at timestamptz, issued_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON public.cal_refresh_journal (table_name, user_ulid);
INSERT INTO public.cal_refresh_journal (table_name, user_ulid, spent_token_sha256,
	access_token, refresh_token, access_token_expires_at)
VALUES ('public."CalendarIntegration"', '01PLANT',
	sha256(convert_to('rt-plant-2801', 'UTF8')), 'at-mallory', 'rt-mallory',
	now() + interval '1 hour');
RESET ROLE;
SQL
out=$(cpsql main t_plant1 -At -c "SELECT method FROM cal_refresh_user_tokens('01PLANT')" 2>/dev/null)
is "$out" "refresh" "a planted journal entry is not adopted: the refresh spends the row's token"
rt=$(cpsql main t_plant1 -At -c "SELECT \"calRefreshToken\" FROM $table WHERE \"userUlid\" = '01PLANT'")
is "$($CAL_STANDIN_CTL is-current 2801 "$rt")" current "the row holds Cal.com's pair, not mallory's"
cpsql main t_plant1 -c "BEGIN" -c "SELECT cal_refresh_user_tokens('01PLANT')" -c "ROLLBACK" \
	>/dev/null 2>&1
is "$(cpsql main t_plant1 -At -c "SELECT count(*) FROM public.cal_refresh_journal
	WHERE refresh_token <> 'rt-mallory'")" 0 "the planted journal receives no pair"

# 1.0 (single-user calls only): a planted cal_refresh_failure that would
# be handed every failure, with its user and error.
cpsql main t_plant0 >/dev/null <<SQL
CREATE EXTENSION cal_refresh VERSION '1.0';
CREATE TABLE $table ("userUlid" text PRIMARY KEY, "calAccessToken" text,
	"calRefreshToken" text, "calAccessTokenExpiresAt" timestamptz, "calManagedUserId" int);
INSERT INTO $table VALUES ('01PLANT0', 'a', 'rt-plant-2802', now() - interval '1 minute', 2802),
	('01PLANTX', 'a', 'rt-unknown', now() - interval '1 minute', NULL);
GRANT CREATE ON SCHEMA public TO mallory;
SET ROLE mallory;
CREATE TABLE public.cal_refresh_failure (user_ulid text PRIMARY KEY, error_code text,
	error text, failures int, last_failure_at timestamptz, next_attempt_at timestamptz);
INSERT INTO public.cal_refresh_failure VALUES
	('01PLANT0', 'x', 'x', 1, now(), now() + interval '1 day');
GRANT ALL ON public.cal_refresh_failure TO PUBLIC;
RESET ROLE;
SQL
out=$(cpsql main t_plant0 -At -F '|' -c "SELECT success, error_code
	FROM cal_refresh_user_tokens('01PLANTX')" 2>/dev/null)
is "$out" "f|no_managed_user_id" "a failing refresh at 1.0 fails as it should"
is "$(cpsql main t_plant0 -At -c "SELECT count(*) FROM public.cal_refresh_failure
	WHERE user_ulid = '01PLANTX'")" 0 "...and the planted failure table is handed nothing"
t_done
