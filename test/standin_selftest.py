#!/usr/bin/env python3
"""Self-test of the Cal.com stand-in (calcom_standin.py) and its CLI (standin_ctl.py).

Starts the stand-in on a free port, checks the API contract of shared/calcom-api.md, every fault
kind, the control interface, the CLI, keep-alive speed and a clean SIGTERM exit.  Prints one line
per failed check and ends with 'N passed, N failed'; exits 1 on any failure.
"""

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
CLIENT_ID = "selftest-client"
SECRET = "selftest-secret-" + secrets.token_hex(8)


class Results:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return ok


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    def code(self):
        return self.json["error"]["code"]

    def data(self):
        return self.json["data"]


class Api:
    """Calls to the stand-in under test, on a new connection unless one is passed in."""

    def __init__(self, port, port_file, secret_file):
        self.port, self.port_file, self.secret_file = port, port_file, secret_file

    def connect(self, timeout=5):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def call(self, method, path, payload=None, headers=None, conn=None, timeout=5):
        own = conn is None
        conn = conn or self.connect(timeout)
        body = None if payload is None else json.dumps(payload).encode()
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            if own:
                conn.close()

    def api(self, method, path, payload=None, secret=SECRET, **kw):
        headers = {"x-cal-client-id": CLIENT_ID}
        if secret is not None:
            headers["x-cal-secret-key"] = secret
        return self.call(method, path, payload, headers, **kw)

    def refresh(self, token, **kw):
        return self.api("POST", f"/v2/oauth/{CLIENT_ID}/refresh", {"refreshToken": token}, **kw)

    def force(self, user_id, **kw):
        return self.api("POST", f"/v2/oauth-clients/{CLIENT_ID}/users/{user_id}/force-refresh",
                        **kw)

    def create_user(self, email, **kw):
        return self.api("POST", f"/v2/oauth-clients/{CLIENT_ID}/users",
                        {"email": email, "name": "Self Test", "timeZone": "Europe/Paris"}, **kw)

    def oauth2(self, refresh_token, form=False, secret=SECRET, client_id=CLIENT_ID, **extra):
        """POST /v2/auth/oauth2/token, form-encoded or JSON; no secret header."""
        fields = {"grant_type": "refresh_token", "client_id": client_id,
                  "refresh_token": refresh_token, **extra}
        if secret is not None:
            fields["client_secret"] = secret
        conn = self.connect()
        try:
            if form:
                conn.request("POST", "/v2/auth/oauth2/token", body=urlencode(fields).encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            else:
                conn.request("POST", "/v2/auth/oauth2/token", body=json.dumps(fields).encode(),
                             headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            conn.close()

    def control(self, method, name, payload=None):
        response = self.call(method, f"/_control/{name}", payload)
        assert response.status == 200, (name, response.status, response.body)
        return response.json

    def fault(self, endpoint, kind, **options):
        self.control("POST", "fault", {"endpoint": endpoint, "kind": kind, **options})

    def state(self, token):
        return self.control("GET", f"token_state?token={token}")["state"]

    def new_user(self):
        """A fresh user: (id, access token, refresh token)."""
        data = self.create_user(f"u{secrets.token_hex(6)}@example.com").data()
        return data["user"]["id"], data["accessToken"], data["refreshToken"]


# --- the API contract ---

def test_create_and_get_user(api, r):
    email = f"create-{secrets.token_hex(4)}@example.com"
    created = api.create_user(email)
    r.check("create user: 201", created.status == 201, created.status)
    data = created.data()
    user = data["user"]
    r.check("create user: ids start at 1001", user["id"] >= 1001, user["id"])
    r.check("create user: user fields", set(user) >= {
        "id", "email", "username", "name", "timeZone", "weekStart", "createdDate", "timeFormat",
        "defaultScheduleId", "locale"} and user["timeZone"] == "Europe/Paris")
    r.check("create user: token fields",
            all(isinstance(data[k], str) for k in ("accessToken", "refreshToken"))
            and all(isinstance(data[k], int)
                    for k in ("accessTokenExpiresAt", "refreshTokenExpiresAt")))
    r.check("create user: access expiry truncated to the minute, ~60 min ahead",
            data["accessTokenExpiresAt"] % 60000 == 0
            and 3540 <= data["accessTokenExpiresAt"] / 1000 - time.time() <= 3600)
    r.check("create user: refresh expiry ~1 year ahead",
            abs(data["refreshTokenExpiresAt"] / 1000 - time.time() - 365 * 86400) < 60)
    again = api.create_user(email)
    r.check("create user: duplicate e-mail is 409", again.status == 409
            and again.code() == "ConflictException", again.status)
    fetched = api.api("GET", f"/v2/oauth-clients/{CLIENT_ID}/users/{user['id']}")
    r.check("get user: 200 with the user", fetched.status == 200 and fetched.data() == user)
    missing = api.api("GET", f"/v2/oauth-clients/{CLIENT_ID}/users/999999")
    r.check("get user: unknown is 404", missing.status == 404, missing.status)


def test_list_users(api, r):
    """GET /v2/oauth-clients/{clientId}/users: the read-only call cal_refresh_check() makes."""
    api.new_user()
    api.new_user()
    path = f"/v2/oauth-clients/{CLIENT_ID}/users"
    one = api.api("GET", f"{path}?limit=1&offset=0")
    r.check("list users: 200 with a list of one", one.status == 200
            and one.json["status"] == "success" and isinstance(one.data(), list)
            and len(one.data()) == 1, one.body)
    first, second = api.api("GET", f"{path}?limit=2").data()
    r.check("list users: in id order, paged by offset", first["id"] < second["id"]
            and api.api("GET", f"{path}?limit=1&offset=1").data() == [second])
    r.check("list users: the same user objects as get",
            api.api("GET", f"{path}/{first['id']}").data() == first)
    for query in ("limit=0", "limit=x", "offset=-1"):
        bad = api.api("GET", f"{path}?{query}")
        r.check(f"list users: {query} is 400", bad.status == 400
                and bad.code() == "BadRequestException", bad.status)
    wrong = api.api("GET", f"{path}?limit=1", secret="wrong")
    r.check("list users: wrong secret is 401 in the envelope", wrong.status == 401
            and wrong.code() == "UnauthorizedException"
            and wrong.json["path"] == f"{path}?limit=1", wrong.body)
    r.check("list users: no secret is 401",
            api.api("GET", f"{path}?limit=1", secret=None).status == 401)
    other = api.api("GET", "/v2/oauth-clients/other-client/users?limit=1")
    r.check("list users: another client is 401", other.status == 401, other.status)
    r.check("list users: POST to the same path still creates",
            api.create_user(f"l{secrets.token_hex(4)}@example.com").status == 201)
    api.fault("list_users", "status", status=503)
    r.check("list users: a status fault applies",
            api.api("GET", f"{path}?limit=1").status == 503)
    api.fault("list_users", "html", status=502)
    page = api.api("GET", f"{path}?limit=1")
    r.check("list users: an html fault applies", page.status == 502 and page.json is None)
    for kind in ("missing_field", "malformed"):
        api.fault("list_users", kind)
        r.check(f"list users: a {kind} fault answers 200",
                api.api("GET", f"{path}?limit=1").status == 200)
    r.check("list users: faults used up", api.api("GET", f"{path}?limit=1").status == 200)


def test_refresh_rotates(api, r):
    user_id, access, refresh = api.new_user()
    first = api.refresh(refresh)
    r.check("refresh: 200", first.status == 200 and first.json["status"] == "success",
            first.status)
    data = first.data()
    r.check("refresh: new pair differs", data["refreshToken"] != refresh
            and data["accessToken"] != access)
    reused = api.refresh(refresh)
    r.check("refresh: spent token is 400 Invalid refresh token", reused.status == 400
            and reused.code() == "BadRequestException"
            and reused.json["error"]["message"] == "Invalid refresh token", reused.body)
    r.check("refresh: new token works", api.refresh(data["refreshToken"]).status == 200)
    r.check("refresh: old access token stays valid", api.state(access) == "current")
    r.check("refresh: access token is no refresh token", api.refresh(access).status == 400)
    r.check("refresh: unknown token is 400", api.refresh("no-such-token").status == 400)


def test_refresh_validation(api, r):
    for label, payload in (("missing", {}), ("not a string", {"refreshToken": 42})):
        response = api.api("POST", f"/v2/oauth/{CLIENT_ID}/refresh", payload)
        r.check(f"refresh validation ({label}): 400 with details.errors",
                response.status == 400 and response.code() == "BadRequestException"
                and isinstance(response.json["error"]["details"]["errors"], list), response.body)


def test_force_refresh(api, r):
    user_id, access, refresh = api.new_user()
    forced = api.force(user_id)
    r.check("force refresh: 200 with all four fields", forced.status == 200 and set(
        forced.data()) == {"accessToken", "refreshToken", "accessTokenExpiresAt",
                           "refreshTokenExpiresAt"}, forced.status)
    r.check("force refresh: old refresh token void", api.refresh(refresh).status == 400)
    r.check("force refresh: old access token void", api.state(access) == "spent")
    r.check("force refresh: new refresh token works",
            api.refresh(forced.data()["refreshToken"]).status == 200)
    bad = api.force("abc")
    r.check("force refresh: non-numeric id is 400", bad.status == 400, bad.status)
    unknown = api.force(424242)
    r.check("force refresh: unknown user is 404 with Cal.com's message", unknown.status == 404
            and unknown.json["error"]["message"]
            == "User with ID 424242 is not part of this OAuth client.", unknown.body)


def test_oauth2_token(api, r):
    """The OAuth2 flow's token endpoint: RFC 6749 bodies, rotation without grace, 30 minutes."""
    user_id, _, refresh = api.new_user()
    other_refresh = api.refresh(refresh).data()["refreshToken"]
    api.control("POST", "seed", {"user_id": user_id, "refresh_token": "rt-o2-a"})
    first = api.oauth2("rt-o2-a")
    body = first.json
    r.check("oauth2: 200, bare object", first.status == 200 and set(body) == {
        "access_token", "token_type", "refresh_token", "expires_in", "scope"}, first.body)
    r.check("oauth2: bearer, 1800 s, no-store", body["token_type"] == "bearer"
            and body["expires_in"] == 1800
            and first.headers.get("Cache-Control") == "no-store")
    expires_at_ms = api.control("GET", f"token_state?token={body['access_token']}")[
        "expires_at_ms"]
    r.check("oauth2: the access token lives 30 minutes",
            1790 <= expires_at_ms / 1000 - time.time() <= 1800, expires_at_ms)
    second = api.oauth2(body["refresh_token"], form=True)
    r.check("oauth2: form-encoded body works too", second.status == 200, second.body)
    reused = api.oauth2(body["refresh_token"])
    r.check("oauth2: a rotated token is 400 invalid_grant refresh_token_revoked",
            reused.status == 400 and reused.json == {
                "error": "invalid_grant", "error_description": "refresh_token_revoked"},
            reused.body)
    unknown = api.oauth2("no-such-token")
    r.check("oauth2: unknown token is 400 invalid_grant invalid_refresh_token",
            unknown.status == 400 and unknown.json["error_description"] ==
            "invalid_refresh_token", unknown.body)
    current = second.json["refresh_token"]
    r.check("oauth2: rotation revoked every refresh token of the user",
            api.state(other_refresh) != "current" and api.state(current) == "current")
    for label, kwargs, status, error in (
            ("no secret", {"secret": None}, 401, "invalid_client"),
            ("wrong secret", {"secret": "wrong"}, 401, "invalid_client"),
            ("other client", {"client_id": "other"}, 401, "invalid_client"),
            ("unknown field", {"scope": "x"}, 400, "invalid_request"),
            ("other grant", {"grant_type": "password"}, 400, "unsupported_grant_type")):
        response = api.oauth2(current, **kwargs)
        r.check(f"oauth2: {label} is {status} {error}", response.status == status
                and response.json["error"] == error, response.body)
    r.check("oauth2: refused calls spent nothing", api.state(current) == "current")
    api.control("POST", "oauth2", {"public": True, "wrapped": True})
    public = api.oauth2(current, secret=None)
    r.check("oauth2: a public client needs no secret; the wrapped shape",
            public.status == 200 and public.json["status"] == "success"
            and public.json["data"]["expires_in"] == 1800, public.body)
    api.fault("oauth2_token", "status", status=400)
    faulted = api.oauth2(public.json["data"]["refresh_token"], secret=None)
    r.check("oauth2: a 400 fault answers as the endpoint does", faulted.status == 400
            and faulted.json["error"] == "invalid_grant", faulted.body)
    api.fault("oauth2_token", "missing_field", field="refresh_token", apply=True)
    missing = api.oauth2(public.json["data"]["refresh_token"], secret=None)
    r.check("oauth2: missing_field distorts the snake_case body",
            missing.status == 200 and "refresh_token" not in missing.json["data"]
            and "access_token" in missing.json["data"], missing.body)
    calls = api.control("GET", "stats")["calls"]
    r.check("oauth2: calls counted", calls["oauth2_token"] == 12, calls)


def test_authentication(api, r):
    _, _, refresh = api.new_user()
    wrong = api.refresh(refresh, secret="wrong")
    r.check("auth: wrong secret is 401 UnauthorizedException", wrong.status == 401
            and wrong.code() == "UnauthorizedException", wrong.status)
    r.check("auth: envelope fields", set(wrong.json) == {"status", "timestamp", "path", "error"}
            and wrong.json["status"] == "error"
            and wrong.json["path"] == f"/v2/oauth/{CLIENT_ID}/refresh")
    r.check("auth: no secret is 401", api.refresh(refresh, secret=None).status == 401)
    other = api.api("POST", "/v2/oauth/other-client/refresh", {"refreshToken": refresh})
    r.check("auth: wrong client id is 401", other.status == 401, other.status)
    r.check("auth: failed calls spent nothing", api.state(refresh) == "current")
    r.check("auth: the secret is not echoed", SECRET.encode() not in wrong.body)


def test_unknown_route_and_headers(api, r):
    response = api.api("GET", "/v2/nothing-here")
    r.check("unknown route: 404 NOT_FOUND", response.status == 404
            and response.code() == "NOT_FOUND", response.status)
    for name in ("X-Request-Id", "X-RateLimit-Limit-Default", "X-RateLimit-Remaining-Default",
                 "X-RateLimit-Reset-Default"):
        r.check(f"headers: {name} present", response.headers.get(name) is not None)


# --- control interface ---

def test_seed_and_token_state(api, r):
    api.control("POST", "seed", {"user_id": 101, "refresh_token": "rt-seed-101",
                                 "access_token": "at-seed-101"})
    user = api.control("GET", "user/101")
    r.check("seed: the given tokens are the user's valid ones",
            user["valid_refresh_tokens"] == ["rt-seed-101"]
            and user["valid_access_tokens"] == ["at-seed-101"], user)
    rotated = api.refresh("rt-seed-101")
    r.check("seed: seeded token refreshes", rotated.status == 200, rotated.status)
    state = api.control("GET", "token_state?token=rt-seed-101")
    r.check("token_state: spent, with its user", {k: state[k] for k in ("state", "user_id")} == {"state": "spent",
                                                            "user_id": 101},
            state)
    r.check("token_state: unknown", api.state("never-issued") == "unknown")
    api.control("POST", "seed", {"user_id": 101, "refresh_token": "rt-seed-101"})
    r.check("seed: re-seeding revives the token and voids the rest",
            api.control("GET", "user/101")["valid_refresh_tokens"] == ["rt-seed-101"]
            and api.state(rotated.data()["refreshToken"]) == "spent")
    issued = api.control("GET", "issued_tokens")["tokens"]
    r.check("issued_tokens: lists seeded and issued tokens",
            "rt-seed-101" in issued and rotated.data()["refreshToken"] in issued)
    bad = api.call("POST", "/_control/fault", {"endpoint": "refresh", "kind": "nonsense"})
    r.check("control: bad fault kind is 400", bad.status == 400, bad.status)


def test_seed_many(api, r):
    """One request seeds many users, with seed's rules; a bad entry seeds none of them."""
    api.control("POST", "seed", {"user_id": 311, "refresh_token": "rt-old-311"})
    answer = api.control("POST", "seed_many", {"seeds": [
        {"user_id": 310 + i, "refresh_token": f"rt-many-{310 + i}"} for i in range(3)]})
    r.check("seed_many: answers the count", answer == {"ok": True, "seeded": 3}, answer)
    users = [api.control("GET", f"user/{310 + i}")["valid_refresh_tokens"] for i in range(3)]
    r.check("seed_many: each user holds only its token", users == [
        ["rt-many-310"], ["rt-many-311"], ["rt-many-312"]], users)
    r.check("seed_many: an earlier token is voided", api.state("rt-old-311") == "spent")
    r.check("seed_many: seeded tokens refresh", api.refresh("rt-many-312").status == 200)
    bad = api.call("POST", "/_control/seed_many", {"seeds": [
        {"user_id": 320, "refresh_token": "rt-many-320"}, {"user_id": 321}]})
    r.check("seed_many: an entry without refresh_token is 400", bad.status == 400, bad.status)
    r.check("seed_many: ... and nothing was seeded", api.state("rt-many-320") == "unknown")
    bad = api.call("POST", "/_control/seed_many", {"seeds": "rt-many-330"})
    r.check("seed_many: seeds must be a list", bad.status == 400, bad.status)


# --- faults ---

def test_fault_status(api, r):
    _, _, refresh = api.new_user()
    api.fault("refresh", "status", status=503)
    response = api.refresh(refresh)
    r.check("fault status 503: InternalServerErrorException", response.status == 503
            and response.code() == "InternalServerErrorException", response.status)
    r.check("fault status: nothing rotated", api.state(refresh) == "current")
    api.fault("refresh", "status", status=429, retry_after=7)
    response = api.refresh(refresh)
    r.check("fault status 429: ThrottlerException with Retry-After", response.status == 429
            and response.code() == "ThrottlerException"
            and response.headers.get("Retry-After") == "7", response.status)
    api.fault("refresh", "status", status=429, retry_after="9223372039002259", reset=2)
    response = api.refresh(refresh)
    r.check("fault status 429: Retry-After verbatim, one X-RateLimit-Reset-Default",
            response.headers.get("Retry-After") == "9223372039002259"
            and response.headers.get_all("X-RateLimit-Reset-Default") == ["2"],
            dict(response.headers))
    api.fault("refresh", "status", status=429)
    response = api.refresh(refresh)
    r.check("fault status 429 plain: no Retry-After, a reset header",
            "Retry-After" not in response.headers
            and response.headers.get("X-RateLimit-Reset-Default", "").isdigit(),
            dict(response.headers))


def test_fault_bodies(api, r):
    _, _, refresh = api.new_user()

    def faulty(kind, **options):
        api.fault("refresh", kind, **options)
        return api.refresh(refresh)

    echo = faulty("echo", status=400, escape=True)
    r.check("fault echo escape: the secret only once decoded", echo.status == 400
            and SECRET.encode() not in echo.body and refresh.encode() not in echo.body
            and SECRET in echo.json["error"]["message"]
            and refresh in echo.json["error"]["message"], echo.body[:80])
    html = faulty("html")
    r.check("fault html: 502 text/html", html.status == 502 and html.json is None
            and html.headers.get("Content-Type").startswith("text/html"), html.status)
    malformed = faulty("malformed")
    r.check("fault malformed: 200, not JSON", malformed.status == 200 and malformed.json is None)
    truncated = faulty("truncated")
    r.check("fault truncated: 200, cut JSON, honest Content-Length", truncated.status == 200
            and truncated.json is None and truncated.body.startswith(b'{"status":"success"')
            and int(truncated.headers["Content-Length"]) == len(truncated.body))
    no_data = faulty("no_data")
    r.check("fault no_data", no_data.status == 200 and no_data.json == {"status": "success"})
    missing = faulty("missing_field")
    r.check("fault missing_field: no accessToken", missing.status == 200
            and "accessToken" not in missing.data() and "refreshToken" in missing.data())
    no_refresh = faulty("missing_field", field="refreshToken")
    r.check("fault missing_field: configurable field", "refreshToken" not in no_refresh.data()
            and "accessToken" in no_refresh.data())
    wrong = faulty("wrong_types")
    r.check("fault wrong_types", wrong.status == 200
            and isinstance(wrong.data()["accessTokenExpiresAt"], str)
            and isinstance(wrong.data()["accessToken"], int))
    huge = faulty("huge")
    r.check("fault huge: ~1.5 MB of valid JSON", huge.status == 200 and huge.json is not None
            and len(huge.body) > 1_400_000, len(huge.body))
    redirect = faulty("redirect")
    r.check("fault redirect: 302 elsewhere", redirect.status == 302
            and redirect.headers.get("Location") == "http://127.0.0.1:1/elsewhere")
    r.check("body faults: nothing rotated", api.state(refresh) == "current")
    issued = api.control("GET", "issued_tokens")["tokens"]
    decoy = missing.data()["refreshToken"]
    r.check("body faults: decoy tokens are listed as issued but never valid",
            decoy in issued and api.state(decoy) == "unknown")


def test_fault_no_expiry(api, r):
    user_id, _, refresh = api.new_user()
    api.fault("refresh", "no_expiry")
    response = api.refresh(refresh)
    data = response.data()
    r.check("fault no_expiry: tokens without expiries", response.status == 200
            and "accessTokenExpiresAt" not in data and "refreshTokenExpiresAt" not in data)
    r.check("fault no_expiry: real rotation", api.state(refresh) == "spent"
            and api.state(data["refreshToken"]) == "current")


def test_fault_apply(api, r):
    user_id, _, refresh = api.new_user()
    api.fault("refresh", "status", status=502, apply=True)
    response = api.refresh(refresh)
    valid = api.control("GET", f"user/{user_id}")["valid_refresh_tokens"]
    r.check("fault apply: 502 delivered", response.status == 502, response.status)
    r.check("fault apply: the presented token was spent anyway", api.state(refresh) == "spent"
            and len(valid) == 1 and valid[0] != refresh)
    forced = api.force(user_id)
    r.check("fault apply: force refresh recovers", forced.status == 200
            and api.refresh(forced.data()["refreshToken"]).status == 200)
    _, _, refresh = api.new_user()
    api.fault("refresh", "truncated", apply=True)
    response = api.refresh(refresh)
    r.check("fault apply truncated: cut body of the real rotation",
            response.json is None and api.state(refresh) == "spent")


def test_fault_count_and_endpoint(api, r):
    user_id, _, refresh = api.new_user()
    api.fault("refresh", "status", status=500, count=2)
    statuses = [api.refresh(refresh).status for _ in range(3)]
    r.check("fault count 2: two faults, then normal", statuses == [500, 500, 200], statuses)
    api.fault("force_refresh", "status", status=503)
    user_id, _, refresh = api.new_user()
    r.check("fault endpoint: refresh unaffected by a force_refresh fault",
            api.refresh(refresh).status == 200)
    r.check("fault endpoint: force_refresh gets it", api.force(user_id).status == 503)
    api.fault("any", "status", status=500, count=-1)
    statuses = [api.force(user_id).status for _ in range(3)]
    api.control("POST", "reset")
    r.check("fault count -1: until reset", statuses == [500] * 3
            and api.force(user_id).status == 200, statuses)


def test_fault_hang(api, r):
    _, _, refresh = api.new_user()
    api.fault("refresh", "hang")
    # A hung request on a raw socket must not hold up a request on another connection.
    hung = socket.create_connection(("127.0.0.1", api.port))
    body = json.dumps({"refreshToken": refresh}).encode()
    hung.sendall(f"POST /v2/oauth/{CLIENT_ID}/refresh HTTP/1.1\r\nHost: x\r\n"
                 f"x-cal-secret-key: {SECRET}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                 + body)
    time.sleep(0.1)
    r.check("fault hang: other requests still served",
            api.call("GET", "/_control/stats").status == 200)
    hung.settimeout(0.3)
    try:
        hung.recv(1)
        r.check("fault hang: nothing answered", False)
    except TimeoutError:
        r.check("fault hang: nothing answered", True)
    hung.close()
    api.fault("refresh", "hang")
    start = time.monotonic()
    try:
        api.refresh(refresh, timeout=1)
        r.check("fault hang: client times out", False, "got a response")
    except TimeoutError:
        r.check("fault hang: client times out after 1 s", 0.9 < time.monotonic() - start < 2)
    r.check("fault hang: nothing rotated", api.state(refresh) == "current")


def test_fault_reset(api, r):
    _, _, refresh = api.new_user()
    for kind in ("reset", "reset_mid_body"):
        api.fault("refresh", kind)
        try:
            api.refresh(refresh)
            r.check(f"fault {kind}: connection error", False, "got a response")
        except (ConnectionError, http.client.HTTPException) as error:
            # a real RST, not an orderly close (which http.client reports as RemoteDisconnected)
            r.check(f"fault {kind}: connection error",
                    not isinstance(error, http.client.RemoteDisconnected), repr(error))
    api.fault("refresh", "reset", apply=True)
    try:
        api.refresh(refresh)
    except ConnectionError:
        pass
    r.check("fault reset apply: token spent", api.state(refresh) == "spent")


def test_latency(api, r):
    _, _, refresh = api.new_user()
    api.fault("refresh", "latency", latency_ms=300)
    start = time.monotonic()
    response = api.refresh(refresh)
    r.check("fault latency: slow but real", time.monotonic() - start >= 0.3
            and response.status == 200 and api.state(refresh) == "spent")
    api.control("POST", "latency", {"ms": 100})
    start = time.monotonic()
    api.call("GET", "/v2/nothing-here")
    r.check("fixed latency: applied", time.monotonic() - start >= 0.1)
    api.control("POST", "reset")
    start = time.monotonic()
    api.call("GET", "/v2/nothing-here")
    r.check("fixed latency: reset clears it", time.monotonic() - start < 0.1)


def test_rate_limit(api, r):
    _, _, refresh = api.new_user()
    api.control("POST", "reset")
    api.control("POST", "rate_limit", {"per_minute": 3})
    responses = [api.api("GET", f"/v2/oauth-clients/{CLIENT_ID}/users/1001") for _ in range(4)]
    remaining = [x.headers["X-RateLimit-Remaining-Default"] for x in responses]
    r.check("rate limit: 4th call is 429 ThrottlerException", [x.status for x in responses]
            == [200, 200, 200, 429] and responses[3].code() == "ThrottlerException")
    r.check("rate limit: remaining header counts down", remaining == ["2", "1", "0", "0"],
            remaining)
    r.check("rate limit: limit header", responses[0].headers["X-RateLimit-Limit-Default"] == "3")
    api.control("POST", "reset")
    r.check("rate limit: reset lifts it", api.refresh(refresh).status == 200)


def test_race(api, r):
    """The same refresh token twice at once: one wins, the other gets 400."""
    outcomes = set()
    for _ in range(20):
        _, _, refresh = api.new_user()
        barrier, statuses = threading.Barrier(2), []
        conns = [api.connect(), api.connect()]
        for conn in conns:
            conn.connect()

        def go(conn):
            barrier.wait()
            statuses.append(api.refresh(refresh, conn=conn).status)

        threads = [threading.Thread(target=go, args=(conn,)) for conn in conns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for conn in conns:
            conn.close()
        outcomes.add(tuple(sorted(statuses)))
    r.check("race: first wins, the other gets 400", outcomes == {(200, 400)}, outcomes)


def test_stats(api, r):
    user_id, _, refresh = api.new_user()
    api.control("POST", "reset")
    conn = api.connect()
    new = api.refresh(refresh, conn=conn).data()["refreshToken"]
    api.refresh(refresh, conn=conn)
    api.force(user_id, conn=conn)
    conn.close()
    stats = api.control("GET", "stats")
    r.check("stats: calls", stats["calls"] == {"refresh": 2, "force_refresh": 1,
                                               "create_user": 0, "get_user": 0,
                                               "list_users": 0, "oauth2_token": 0}, stats)
    r.check("stats: calls by user, spent token attributed",
            stats["calls_by_user"] == {str(user_id): {"refresh": 2, "force_refresh": 1,
                                                      "oauth2_token": 0}}, stats)
    r.check("stats: responses", stats["responses"] == {"200": 2, "400": 1}, stats)
    r.check("stats: one connection", stats["connections"] == 1, stats)
    log = api.control("GET", "requests")["requests"]
    r.check("requests: endpoints, users, statuses in arrival order",
            [(e["endpoint"], e["user_id"], e["status"]) for e in log]
            == [("refresh", user_id, 200), ("refresh", user_id, 400),
                ("force_refresh", user_id, 200)]
            and log[0]["t"] <= log[1]["t"] <= log[2]["t"], log)
    r.check("stats: the new token was voided by force", api.state(new) == "spent")


def test_keepalive_speed(api, r):
    """200 sequential refreshes on one connection: catches the 40 ms Nagle stall."""
    api.control("POST", "reset")
    api.control("POST", "seed", {"user_id": 202, "refresh_token": "rt-speed"})
    conn, token, ok = api.connect(), "rt-speed", True
    start = time.perf_counter()
    for _ in range(200):
        response = api.refresh(token, conn=conn)
        ok = ok and response.status == 200
        token = response.data()["refreshToken"]
    average_ms = (time.perf_counter() - start) / 200 * 1000
    conn.close()
    r.check("keep-alive: all 200 refreshes succeeded", ok)
    r.check("keep-alive: under 10 ms per refresh", average_ms < 10, f"{average_ms:.1f} ms")
    r.check("keep-alive: one connection", api.control("GET", "stats")["connections"] == 1)
    print(f"keep-alive: {average_ms:.2f} ms per refresh")


# --- the CLI ---

def test_cli(api, r):
    env = {**os.environ, "CAL_STANDIN_URL": f"http://127.0.0.1:{api.port}",
           "CAL_CLIENT_ID": CLIENT_ID, "CAL_SECRET_FILE": api.secret_file,
           "http_proxy": "http://127.0.0.1:1", "HTTP_PROXY": "http://127.0.0.1:1"}

    def ctl(*args, environ=env, stdin=None):
        done = subprocess.run([sys.executable, str(HERE / "standin_ctl.py"), *args], env=environ,
                              capture_output=True, text=True, timeout=30, input=stdin)
        return done.returncode, done.stdout, done.stderr

    def expect(args, output, rc=0, stdin=None):
        got = ctl(*args, stdin=stdin)
        r.check(f"cli {' '.join(args)}", got[:2] == (rc, output), got)

    expect(["reset"], "")
    expect(["seed", "101", "rt-seed-101", "--access-token", "at-seed-101"], "")
    expect(["token-state", "rt-seed-101"], "current\n")
    expect(["is-current", "101", "rt-seed-101"], "current\n")
    expect(["is-current", "102", "rt-seed-101"], "not current (another user's)\n")
    expect(["try-refresh", "rt-seed-101"], "200 ok\n")
    expect(["try-refresh", "rt-seed-101"], "400 BadRequestException\n")
    expect(["token-state", "rt-seed-101"], "spent\n")
    expect(["is-current", "101", "rt-seed-101"], "not current (spent)\n")
    expect(["token-state", "never-issued"], "unknown\n")
    expect(["calls"], "refresh=2 force_refresh=0\n")
    expect(["calls", "--user", "101"], "refresh=2 force_refresh=0\n")
    expect(["calls", "refresh"], "refresh=2\n")
    expect(["connections"], "2\n")
    expect(["fault", "refresh", "status", "--status", "503", "--count", "1"], "")
    expect(["try-refresh", "x"], "503 InternalServerErrorException\n")
    expect(["fault", "refresh", "html"], "")
    expect(["try-refresh", "x"], "502 not_json\n")
    expect(["fault", "refresh", "reset"], "")
    expect(["try-refresh", "x"], "error connection\n")
    expect(["fault", "refresh", "status", "--status", "429", "--retry-after", "3", "--apply"],
           "")
    expect(["try-refresh", "x"], "429 ThrottlerException\n")
    expect(["seed-many", "401", "3", "rt-many"], "")
    expect(["is-current", "403", "rt-many-403"], "current\n")
    expect(["try-refresh", "rt-many-402"], "200 ok\n")
    expect(["check-current"], "401 not current (another user's)\n402 not current (spent)\n"
           "404 not current (unknown)\n2 current, 3 not current\n",
           stdin="401 rt-many-401\n\n403 rt-many-403\n401 rt-many-403\n402 rt-many-402\n"
                 "404 rt-never-issued\n")
    expect(["check-current"], "0 current, 0 not current\n", stdin="")
    rc, _, err = ctl("check-current", stdin="401\n")
    r.check("cli check-current: a bad line is an error", rc == 1 and "line 1" in err, err)
    rc, _, err = ctl("seed-many", "405", "0", "rt-many")
    r.check("cli seed-many: COUNT 0 is an error", rc == 1 and "COUNT" in err, err)
    expect(["latency", "0"], "")
    expect(["rate-limit", "0"], "")
    rc, out, _ = ctl("create-user", "cli@example.com", "--name", "Cli")
    line = json.loads(out) if rc == 0 else {}
    r.check("cli create-user: one JSON line in order", rc == 0 and list(line) == [
        "id", "accessToken", "refreshToken", "accessTokenExpiresAt", "refreshTokenExpiresAt"],
            out)
    rc, _, err = ctl("create-user", "cli@example.com")
    r.check("cli create-user: duplicate fails", rc == 1 and "409" in err, err)
    rc, out, _ = ctl("issued-tokens")
    r.check("cli issued-tokens", rc == 0 and line.get("refreshToken") in out.splitlines())
    rc, out, _ = ctl("requests")
    r.check("cli requests: JSON", rc == 0 and "requests" in json.loads(out))
    start = time.monotonic()
    expect(["wait-port", api.port_file], "")
    r.check("cli wait-port: quick when up", time.monotonic() - start < 5)
    expect(["wait-port", api.port_file + ".absent", "--timeout", "0.3"], "", rc=1)
    rc, _, err = ctl("fault", "refresh", "nonsense")
    r.check("cli fault: bad kind is an error", rc == 1 and "kind" in err, err)
    no_url = {k: v for k, v in env.items() if k != "CAL_STANDIN_URL"}
    rc, _, err = ctl("reset", environ=no_url)
    r.check("cli: missing CAL_STANDIN_URL is an error", rc == 1 and "CAL_STANDIN_URL" in err)


# --- running it all ---

def start_server(workdir):
    port_file = os.path.join(workdir, "port")
    output = open(os.path.join(workdir, "server.out"), "w+b")
    process = subprocess.Popen(
        [sys.executable, str(HERE / "calcom_standin.py"), "--client-id", CLIENT_ID,
         "--secret-file", os.path.join(workdir, "secret"), "--port-file", port_file],
        stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the stand-in did not start")
        time.sleep(0.02)
    with open(port_file, encoding="ascii") as f:
        return process, output, port_file, int(f.read())


def stop_server(api, r, process, output):
    # A connection left hanging must not keep the server from exiting.
    api.fault("refresh", "hang")
    hung = socket.create_connection(("127.0.0.1", api.port))
    hung.sendall(f"POST /v2/oauth/{CLIENT_ID}/refresh HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 2\r\n\r\n{}".encode())
    time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        code = "still running after 5 s"
    hung.close()
    r.check("shutdown: SIGTERM exits 0", code == 0, code)
    output.seek(0)
    printed = output.read()
    r.check("server printed nothing (no secrets, tokens or tracebacks)", printed == b"",
            printed[:300])


def run_one(test, api, r):
    """Run a test from a clean slate; an exception fails it without stopping the others."""
    try:
        api.control("POST", "reset")
        test(api, r)
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        where = traceback.extract_tb(error.__traceback__)[-1]
        r.check(f"{test.__name__} ran to the end", False,
                f"{error!r} at line {where.lineno}")


def main():
    r = Results()
    with tempfile.TemporaryDirectory() as workdir:
        secret_file = os.path.join(workdir, "secret")
        with open(secret_file, "w", encoding="utf-8") as f:
            f.write(SECRET + "\n")
        process, output, port_file, port = start_server(workdir)
        api = Api(port, port_file, secret_file)
        tests = [test_create_and_get_user, test_list_users, test_refresh_rotates,
                 test_refresh_validation, test_force_refresh, test_oauth2_token,
                 test_authentication, test_unknown_route_and_headers,
                 test_seed_and_token_state, test_seed_many, test_fault_status, test_fault_bodies,
                 test_fault_no_expiry, test_fault_apply, test_fault_count_and_endpoint,
                 test_fault_hang, test_fault_reset, test_latency, test_rate_limit, test_race,
                 test_stats, test_keepalive_speed, test_cli]
        try:
            for test in tests:
                run_one(test, api, r)
        finally:
            stop_server(api, r, process, output)
            output.close()
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
