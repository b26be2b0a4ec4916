#!/usr/bin/env bash
# The fault matrix: every failure the stand-in can stage, on each endpoint.
# Each case asserts the error_code, whether force refresh was tried (the
# fallback rules of README: only after 400, 404 or an unusable 200), that
# the row is unchanged, and that the backend still answers.  The OAuth2
# flow's token endpoint gets the same faults and its own errors
# (invalid_grant, invalid_client): it has no force refresh to fall back to.  The service's
# trouble (429, 5xx, non-JSON, resets, timeouts) is retried: once, it
# heals; for good, it fails without a force refresh.
set -euo pipefail
. "$CAL_TOP/test/lib.sh"

db=t_faults
make_test_db "$db"

# run_case ENDPOINT NAME "FAULT ARGS" "SETTINGS" EXPECTED FORCE_TRIED ERROR_REGEX
#   ENDPOINT refresh: the row holds a valid refresh token, and force refresh
#     answers 401 for good, so a fallback shows as calcom_rejected with a
#     force call; ENDPOINT force: no refresh token is stored, so the call
#     goes straight to force refresh, which gets the fault; ENDPOINT oauth2:
#     cal_refresh.flow = oauth2, the refresh goes to the token endpoint.
#   EXPECTED: an error_code, or "ok" (the call succeeds, the row changes).
run_case() {
	local endpoint=$1 name=$2 fault=$3 settings=$4 expected=$5 force_tried=$6 regex=$7
	local rt=rt-seed-801 before after out code error calls
	$CAL_STANDIN_CTL reset
	$CAL_STANDIN_CTL seed 801 "$rt"
	[ "$endpoint" = force ] && rt=""
	# A new world: Cal.com, the row and the journal start over.
	cpsql main "$db" -c "DELETE FROM public.\"CalendarIntegration\"" \
		-c "DELETE FROM cal_refresh_journal" \
		-c "INSERT INTO public.\"CalendarIntegration\" VALUES
			('01F', 'at-old', NULLIF('$rt', ''), now(), 801)" >/dev/null
	[ "$endpoint" = refresh ] && $CAL_STANDIN_CTL fault force_refresh status --status 401 --count -1
	# shellcheck disable=SC2086
	[ -n "$fault" ] && $CAL_STANDIN_CTL fault $fault
	before=$(cpsql main "$db" -At -c "SELECT t::text FROM public.\"CalendarIntegration\" t")
	out=$(cpsql main "$db" -At -F '|' -c "$settings" \
		-c "SELECT coalesce(error_code, 'ok'), error FROM cal_refresh_user_tokens('01F')" \
		-c "SELECT 'alive'" 2>&1 | grep -v -e '^SET$' -e '^RESET$')
	after=$(cpsql main "$db" -At -c "SELECT t::text FROM public.\"CalendarIntegration\" t")
	code=${out%%|*}
	error=$(head -1 <<<"${out#*|}")
	calls=$($CAL_STANDIN_CTL calls force_refresh)

	local label="$endpoint: $name"
	is "$code" "$expected" "$label: error_code"
	if [ "$force_tried" = yes ]; then
		[ "$calls" != force_refresh=0 ] && ok "$label: force refresh tried" ||
			not_ok "$label: force refresh tried" "$calls"
	else
		is "$calls" force_refresh=0 "$label: force refresh not tried"
	fi
	if [ "$expected" = ok ]; then
		[ "$before" != "$after" ] && ok "$label: row updated" || not_ok "$label: row updated"
	else
		is "$after" "$before" "$label: row unchanged"
		like "$error" "$regex" "$label: error says why"
	fi
	like "$out" 'alive$' "$label: the backend answers after"
}

refused="SET cal_refresh.api_url = 'http://127.0.0.1:1'"
short="SET cal_refresh.timeout = '500ms'"
none="RESET cal_refresh.timeout"
o2="SET cal_refresh.flow = oauth2; $none"
o2short="SET cal_refresh.flow = oauth2; $short"
o2refused="SET cal_refresh.flow = oauth2; $refused"

#        endpoint name                    fault                                   settings  expected           force  error regex
run_case refresh "latency under timeout" "refresh latency --latency-ms 100"       "$short"  ok                 no     ''
run_case refresh "latency over timeout"  "refresh latency --latency-ms 1500"      "$short"  timeout            no     '^refresh failed: timed out .* while waiting for the response'
run_case refresh "hang"                  "refresh hang"                           "$short"  timeout            no     '^refresh failed: timed out'
run_case refresh "connection refused"    ""                                       "$refused" network_error     no     '^refresh failed: .*(connect|refused)'
run_case refresh "reset once, retried"   "refresh reset"                          "$none"   ok                 no     ''
run_case refresh "reset for good"        "refresh reset --count -1"               "$none"   network_error      no     '^refresh failed: (Recv failure: Connection reset|connection lost after the request was sent)'
run_case refresh "reset mid-body once"   "refresh reset_mid_body"                 "$none"   ok                 no     ''
run_case refresh "reset mid-body"        "refresh reset_mid_body --count -1"      "$none"   network_error      no     '^refresh failed: '
run_case refresh "400"                   "refresh status --status 400"            "$none"   calcom_rejected    yes    '^refresh failed: HTTP 400'
run_case refresh "401"                   "refresh status --status 401"            "$none"   calcom_rejected    no     '^refresh failed: HTTP 401'
run_case refresh "404"                   "refresh status --status 404"            "$none"   calcom_rejected    yes    '^refresh failed: HTTP 404'
run_case refresh "429"                   "refresh status --status 429 --count -1" "$none"   calcom_unavailable no     '^refresh failed: HTTP 429'
run_case refresh "429 Retry-After"       "refresh status --status 429 --count -1 --retry-after 1" "$none" calcom_unavailable no '^refresh failed: HTTP 429'
run_case refresh "500 once, retried"     "refresh status --status 500"            "$none"   ok                 no     ''
run_case refresh "500"                   "refresh status --status 500 --count -1" "$none"   calcom_unavailable no     '^refresh failed: HTTP 500'
run_case refresh "502"                   "refresh status --status 502 --count -1" "$none"   calcom_unavailable no     '^refresh failed: HTTP 502'
run_case refresh "503"                   "refresh status --status 503 --count -1" "$none"   calcom_unavailable no     '^refresh failed: HTTP 503'
run_case refresh "504"                   "refresh status --status 504 --count -1" "$none"   calcom_unavailable no     '^refresh failed: HTTP 504'
run_case refresh "HTML 502 page"         "refresh html --status 502 --count -1"   "$none"   calcom_unavailable no     '^refresh failed: HTTP 502: non-JSON body'
run_case refresh "maintenance page"      "refresh html --status 200 --count -1"   "$none"   calcom_unavailable no     '^refresh failed: HTTP 200: non-JSON body'
run_case refresh "truncated JSON"        "refresh truncated"                      "$none"   calcom_rejected    yes    '^refresh failed: HTTP 200: response is not JSON'
run_case refresh "malformed, not JSON"   "refresh malformed --count -1"           "$none"   calcom_unavailable no     '^refresh failed: HTTP 200: non-JSON body'
run_case refresh "JSON without data"     "refresh no_data"                        "$none"   calcom_rejected    yes    '^refresh failed: HTTP 200: response has no "data"'
run_case refresh "missing field"         "refresh missing_field"                  "$none"   calcom_rejected    yes    '^refresh failed: HTTP 200: response has no usable "accessToken"'
run_case refresh "wrong types"           "refresh wrong_types"                    "$none"   calcom_rejected    yes    '^refresh failed: HTTP 200: response has no usable'
run_case refresh "1 MB body"             "refresh huge"                           "$none"   calcom_rejected    yes    '^refresh failed: HTTP 200: response body larger than 64 kB'
run_case refresh "redirect"              "refresh redirect"                       "$none"   bad_response       no     '^refresh failed: HTTP 302: redirects are not followed$'

run_case force   "latency under timeout" "force_refresh latency --latency-ms 100" "$short"  ok                 yes    ''
run_case force   "latency over timeout"  "force_refresh latency --latency-ms 1500 --count -1" "$short" timeout yes   'force refresh failed: timed out'
run_case force   "hang"                  "force_refresh hang --count -1"          "$short"  timeout            yes    'force refresh failed: timed out'
run_case force   "connection refused"    ""                                       "$refused" network_error     no     'force refresh failed: .*(connect|refused)'
run_case force   "reset after request"   "force_refresh reset --count -1"         "$none"   network_error      yes    'force refresh failed: '
run_case force   "reset mid-body"        "force_refresh reset_mid_body --count -1" "$none"  network_error      yes    'force refresh failed: '
run_case force   "400"                   "force_refresh status --status 400"      "$none"   calcom_rejected    yes    'force refresh failed: HTTP 400'
run_case force   "401"                   "force_refresh status --status 401"      "$none"   calcom_rejected    yes    'force refresh failed: HTTP 401'
run_case force   "404"                   "force_refresh status --status 404"      "$none"   calcom_rejected    yes    'force refresh failed: HTTP 404'
run_case force   "429"                   "force_refresh status --status 429 --count -1" "$none" calcom_unavailable yes 'force refresh failed: HTTP 429'
run_case force   "429 Retry-After"       "force_refresh status --status 429 --count -1 --retry-after 1" "$none" calcom_unavailable yes 'force refresh failed: HTTP 429'
run_case force   "500"                   "force_refresh status --status 500 --count -1" "$none" calcom_unavailable yes 'force refresh failed: HTTP 500'
run_case force   "502"                   "force_refresh status --status 502 --count -1" "$none" calcom_unavailable yes 'force refresh failed: HTTP 502'
run_case force   "503"                   "force_refresh status --status 503 --count -1" "$none" calcom_unavailable yes 'force refresh failed: HTTP 503'
run_case force   "HTML 502 page"         "force_refresh html --status 502 --count -1" "$none" calcom_unavailable yes 'force refresh failed: HTTP 502: non-JSON body'
run_case force   "truncated JSON"        "force_refresh truncated"                "$none"   bad_response       yes    'force refresh failed: HTTP 200: response is not JSON'
run_case force   "malformed, not JSON"   "force_refresh malformed --count -1"     "$none"   calcom_unavailable yes    'force refresh failed: HTTP 200: non-JSON body'
run_case force   "JSON without data"     "force_refresh no_data"                  "$none"   bad_response       yes    'force refresh failed: HTTP 200: response has no "data"'
run_case force   "missing field"         "force_refresh missing_field"            "$none"   bad_response       yes    'force refresh failed: HTTP 200: response has no usable'
run_case force   "wrong types"           "force_refresh wrong_types"              "$none"   bad_response       yes    'force refresh failed: HTTP 200: response has no usable'
run_case force   "1 MB body"             "force_refresh huge"                     "$none"   bad_response       yes    'force refresh failed: HTTP 200: response body larger than 64 kB'
run_case force   "redirect"              "force_refresh redirect"                 "$none"   bad_response       yes    'force refresh failed: HTTP 302: redirects are not followed$'

run_case oauth2  "answered"              ""                                       "$o2"     ok                 no     ''
run_case oauth2  "latency over timeout"  "oauth2_token latency --latency-ms 1500" "$o2short" timeout           no     '^refresh failed: timed out .* while waiting for the response'
run_case oauth2  "hang"                  "oauth2_token hang"                      "$o2short" timeout           no     '^refresh failed: timed out'
run_case oauth2  "connection refused"    ""                                       "$o2refused" network_error   no     '^refresh failed: .*(connect|refused)'
run_case oauth2  "reset once, retried"   "oauth2_token reset"                     "$o2"     ok                 no     ''
run_case oauth2  "reset for good"        "oauth2_token reset --count -1"          "$o2"     network_error      no     '^refresh failed: '
run_case oauth2  "invalid_grant"         "oauth2_token status --status 400"       "$o2"     calcom_rejected    no     '^refresh failed: HTTP 400: invalid_grant: invalid_refresh_token; the OAuth2 flow has no force refresh: the user must authorize the application again$'
run_case oauth2  "invalid_client"        "oauth2_token status --status 401"       "$o2"     calcom_rejected    no     '^refresh failed: HTTP 401: invalid_client: invalid_client_credentials$'
run_case oauth2  "429"                   "oauth2_token status --status 429 --count -1" "$o2" calcom_unavailable no    '^refresh failed: HTTP 429'
run_case oauth2  "500 once, retried"     "oauth2_token status --status 500"       "$o2"     ok                 no     ''
run_case oauth2  "500"                   "oauth2_token status --status 500 --count -1" "$o2" calcom_unavailable no    '^refresh failed: HTTP 500'
run_case oauth2  "HTML 502 page"         "oauth2_token html --status 502 --count -1" "$o2"  calcom_unavailable no     '^refresh failed: HTTP 502: non-JSON body'
run_case oauth2  "maintenance page"      "oauth2_token html --status 200 --count -1" "$o2"  calcom_unavailable no     '^refresh failed: HTTP 200: non-JSON body'
run_case oauth2  "truncated JSON"        "oauth2_token truncated"                 "$o2"     bad_response       no     '^refresh failed: HTTP 200: response is not JSON; the OAuth2 flow has no force refresh'
run_case oauth2  "JSON without tokens"   "oauth2_token no_data"                   "$o2"     bad_response       no     '^refresh failed: HTTP 200: response is not a token object'
run_case oauth2  "missing field"         "oauth2_token missing_field --field access_token" "$o2" bad_response  no     '^refresh failed: HTTP 200: response has no usable "access_token"'
run_case oauth2  "no expires_in"         "oauth2_token no_expiry"                 "$o2"     bad_response       no     '^refresh failed: HTTP 200: response has an unusable "expires_in"'
run_case oauth2  "wrong types"           "oauth2_token wrong_types"               "$o2"     bad_response       no     '^refresh failed: HTTP 200: response has no usable "access_token"'
run_case oauth2  "1 MB body"             "oauth2_token huge"                      "$o2"     bad_response       no     '^refresh failed: HTTP 200: response body larger than 64 kB'
run_case oauth2  "redirect"              "oauth2_token redirect"                  "$o2"     bad_response       no     '^refresh failed: HTTP 302: redirects are not followed$'
# The secret travels in the body here: a proxy quoting the body back must
# not get it into the error, the log or the failure records.
run_case oauth2  "body echoed back"      "oauth2_token echo --status 400"         "$o2"     calcom_rejected    no     '^refresh failed: HTTP 400: error description withheld: it quoted a credential'
run_case oauth2  "body echoed, escaped"  "oauth2_token echo --status 400 --escape" "$o2"     calcom_rejected    no     '^refresh failed: HTTP 400: error description withheld: it quoted a credential'
t_done
