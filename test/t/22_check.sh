#!/usr/bin/env bash
# cal_refresh_check() on what sql/check.sql cannot set up: an unset secret
# file (a server setting) and, as root, files owned by another user or by
# root with too open a mode.  Each breakage is a failed row whose hint
# names the fix; Cal.com is not asked.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

cluster_start chk yes "cal_refresh.secret_key_file = ''"
trap 'cluster_stop chk; rm -f "$CAL_WORK/chk.key"' EXIT
$CAL_STANDIN_CTL reset
cpsql chk postgres -c "CREATE EXTENSION cal_refresh" >/dev/null

row() {
	cpsql chk postgres -At -F '|' \
		-c "SELECT coalesce(ok::text, 'null'), detail, coalesce(hint, '') FROM cal_refresh_check() WHERE \"check\" = '$1'"
}

out=$(row secret_key_file)
is "$out" "false|cal_refresh.secret_key_file is not set|Set cal_refresh.secret_key_file in postgresql.conf to a file holding the OAuth client secret, then SELECT pg_reload_conf();" \
	"unset secret file: failed, the hint names the setting"
like "$(row calcom_credentials)" "^null\|not checked: the secret key file is not usable" \
	"unset secret file: Cal.com is not asked"
out=$(row shared_preload_libraries)
like "$out" "^true\|" "the preload row passes on a preloading server"

set_key() {
	cpsql chk postgres -c "ALTER SYSTEM SET cal_refresh.secret_key_file = '$1'" \
		-c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.3
}

if [ "$(id -u)" -eq 0 ]; then
	key=$CAL_WORK/chk.key
	cp "$CAL_SECRET_FILE" "$key"
	chown nobody "$key"
	chmod 0600 "$key"
	set_key "$key"
	out=$(row secret_key_file)
	is "$out" "false|secret key file \"$key\" must be owned by the database server's user or by root|chown $PG_OS_USER '$key' && chmod 0600 '$key'" \
		"a file owned by another user: the hint is chown and chmod"
	chown root:"$PG_OS_USER" "$key"
	chmod 0644 "$key"
	out=$(row secret_key_file)
	is "$out" "false|secret key file \"$key\" is owned by root and allows more than group read; it must be mode 0640 or less|chmod 0640 '$key' (root-owned: the group may read, nobody else)" \
		"root's file readable by the world: the hint is chmod 0640"
	chmod 0640 "$key"
	like "$(row secret_key_file)" "^true\|" "root:postgres 0640 passes"
	like "$(row calcom_credentials)" "^true\|" "... and Cal.com accepts the secret"
else
	ok "# skip files owned by others need root"
fi
is "$($CAL_STANDIN_CTL calls refresh) $($CAL_STANDIN_CTL calls force_refresh)" \
	"refresh=0 force_refresh=0" "the check refreshed nothing"
t_done
