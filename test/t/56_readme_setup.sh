#!/usr/bin/env bash
# README's install-and-grant block, run as written in a fresh database,
# then every function an application uses, called as the role it grants:
# none may fail for want of a privilege.  The block is read from README.md
# each run, so the test follows the documentation.  Stand-in user 5601.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=readme_setup
cleanup() {
	cpsql main postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
	cpsql main postgres -c "DROP ROLE IF EXISTS app" >/dev/null 2>&1 || true
}
trap cleanup EXIT
setup_sql=$(readme_sql 56_readme_setup.sh)
like "$setup_sql" 'CREATE EXTENSION cal_refresh' "README.md has the marked set-up block"

# The application's side, as Prisma makes it; the role the block grants.
cpsql main postgres -c "CREATE DATABASE $db" -c "CREATE ROLE app LOGIN" >/dev/null
cpsql main $db >/dev/null <<'SQL'
CREATE TABLE public."CalendarIntegration" (
	id serial PRIMARY KEY,
	"userUlid" text NOT NULL UNIQUE,
	"calAccessToken" text,
	"calRefreshToken" text,
	"calAccessTokenExpiresAt" timestamp(3),
	"calRefreshTokenExpiresAt" timestamp(3),
	"calManagedUserId" integer);
INSERT INTO public."CalendarIntegration" ("userUlid", "calAccessToken",
	"calRefreshToken", "calAccessTokenExpiresAt", "calManagedUserId")
VALUES ('01README', 'at-old', 'rt-seed-5601', '2000-01-01', 5601);
SQL
$CAL_STANDIN_CTL reset
$CAL_STANDIN_CTL seed 5601 rt-seed-5601

out=$(printf '%s\n' "$setup_sql" | cpsql main $db 2>&1) && status=ok || status=failed
is "$status" ok "README's block runs as written${out:+: $out}"

# Each call an application makes, as app.
as_app() {
	cpsql main $db -At -U app -c "$1" 2>&1 || true
}
is "$(as_app "SELECT success FROM cal_refresh_user_tokens('01README')")" t \
	"app may call cal_refresh_user_tokens"
is "$(as_app "SELECT cal_access_token('01README') IS NOT NULL")" t \
	"app may call cal_access_token"
is "$(as_app "SELECT success FROM cal_update_tokens('01README', 'at-app',
	'rt-from-app', now() + interval '1 hour')")" t "app may call cal_update_tokens"
is "$(as_app "SELECT success FROM cal_update_tokens_ms('01README', 'at-app',
	'rt-from-app-2', (extract(epoch FROM now()) * 1000)::bigint + 3600000,
	NULL)")" t "app may call cal_update_tokens_ms"

# ... and nothing more: the extension's own tables stay closed.
like "$(as_app "SELECT count(*) FROM cal_refresh_journal")" 'permission denied' \
	"app cannot read the journal"
like "$(as_app "SELECT count(*) FROM cal_refresh_failure")" 'permission denied' \
	"app cannot read the failure records"
t_done
