#!/usr/bin/env bash
# TLS is always verified: against a stand-in serving https with a
# certificate from a private CA, a refresh fails (network_error, nothing
# sent) until cal_refresh.ca_file names that CA; then it succeeds.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

tls=$CAL_WORK/tls
install -d -m 755 "$tls"
(
	cd "$tls"
	# The extensions a strict verifier (Python 3.13's default) demands.
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
		-subj "/CN=cal_refresh test CA" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
		-subj "/CN=localhost" 2>/dev/null
	printf '%s\n' 'subjectAltName=DNS:localhost' 'basicConstraints=critical,CA:FALSE' \
		'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' \
		'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid:always' >san.ext
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
		-out server.pem -days 2 -extfile san.ext 2>/dev/null
	chmod 644 ca.pem
)

"$CAL_PYTHON" "$CAL_TOP/test/calcom_standin.py" --client-id "$CAL_CLIENT_ID" \
	--secret-file "$CAL_WORK/standin.secret" --port-file "$tls/port" \
	--tls-cert "$tls/server.pem" --tls-key "$tls/server.key" >"$tls/standin.log" 2>&1 &
tls_pid=$!
trap 'kill "$tls_pid" 2>/dev/null || true; wait "$tls_pid" 2>/dev/null || true' EXIT
export CAL_STANDIN_CA=$tls/ca.pem
CAL_STANDIN_URL=https://localhost:1 $CAL_STANDIN_CTL wait-port "$tls/port" --timeout 15
tls_url=https://localhost:$(cat "$tls/port")
tls_ctl() { CAL_STANDIN_URL=$tls_url $CAL_STANDIN_CTL "$@"; }
tls_ctl seed 1101 rt-seed-1101

db=t_tls
make_test_db "$db"
cpsql main "$db" >/dev/null <<'SQL'
INSERT INTO public."CalendarIntegration" VALUES ('01TLS', 'a', 'rt-seed-1101', now(), 1101);
SQL

call() {
	cpsql main "$db" -At -F '|' -c "SET cal_refresh.api_url = '$tls_url'" \
		-c "SET cal_refresh.max_retries = 0" "$@" \
		-c "SELECT coalesce(error_code, 'ok'), coalesce(method, ''), error
			FROM cal_refresh_user_tokens('01TLS')" | grep -v '^SET$'
}

out=$(call)
like "$out" '^network_error\|\|refresh failed: .*(certificate|SSL)' \
	"an unknown CA is refused ($out)"
is "$(tls_ctl calls)" "refresh=0 force_refresh=0" "nothing reached the server"

out=$(call -c "SET cal_refresh.ca_file = '$tls/ca.pem'")
is "$out" "ok|refresh|" "with cal_refresh.ca_file naming the CA, the refresh succeeds"
is "$(tls_ctl calls)" "refresh=1 force_refresh=0" "one refresh over TLS"

# The name must match too: the certificate is for localhost, not 127.0.0.1.
out=$(call -c "SET cal_refresh.ca_file = '$tls/ca.pem'" \
	-c "SET cal_refresh.api_url = 'https://127.0.0.1:$(cat "$tls/port")'")
like "$out" '^network_error\|\|refresh failed: .*(certificate|SSL|match)' \
	"a certificate for another name is refused ($out)"
is "$(tls_ctl calls)" "refresh=1 force_refresh=0" "...and nothing more reached the server"
t_done
