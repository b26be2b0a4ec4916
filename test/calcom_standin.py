#!/usr/bin/env python3
"""Local stand-in for Cal.com's token API (API v2): managed users and the OAuth2 flow.

Serves the routes of shared/calcom-api.md (refresh, force refresh, create and get a managed user,
the list of managed users that cal_refresh_check() asks for, and the OAuth2 token endpoint) on
127.0.0.1, with Cal.com's rotation rules, error envelope and rate-limit headers, plus a control
interface under /_control/ (loopback, no secret) that tests use to seed deterministic tokens,
inject faults, add latency, enforce a rate limit and read counters.

    calcom_standin.py --client-id ID --secret-file FILE --port-file FILE [--port 0] [--verbose]

The port it listens on is written to FILE (atomically) once it accepts connections; SIGTERM or
SIGINT stops it with exit status 0.  Standard library only.  Nothing it prints can hold a secret or
a token: request headers, bodies and query strings are never logged.
"""

import argparse
import copy
import hmac
import itertools
import json
import math
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

JSON_TYPE = "application/json; charset=utf-8"
TOKEN_PREFIX = "eyJhbGciOiJIUzI1NiJ9"  # base64url of {"alg":"HS256"}: tokens look like JWTs
ACCESS_LIFETIME_S = 60 * 60
REFRESH_LIFETIME_S = 365 * 24 * 60 * 60
OAUTH2_ACCESS_LIFETIME_S = 30 * 60  # the OAuth2 flow's tokens: expires_in 1800
OAUTH2_REFRESH_LIFETIME_S = 30 * 24 * 60 * 60
# The fields the OAuth2 token endpoint's validation pipe allows; any other is a 400.
OAUTH2_FIELDS = ("grant_type", "client_id", "client_secret", "code", "redirect_uri",
                 "code_verifier", "refresh_token")
FIRST_USER_ID = 1001
DEFAULT_RATE_LIMIT = 500  # Cal.com's per-client limit, reported while no limit is enforced
RATE_WINDOW_S = 60
HANG_MAX_S = 120
HUGE_PADDING_BYTES = 1_500_000
REDIRECT_TARGET = "http://127.0.0.1:1/elsewhere"

ENDPOINTS = ("refresh", "force_refresh", "create_user", "get_user", "list_users",
             "oauth2_token")
USER_ENDPOINTS = ("refresh", "force_refresh", "oauth2_token")  # the calls counted per user
FAULT_KINDS = (
    "status", "html", "malformed", "truncated", "no_data", "missing_field", "no_expiry",
    "wrong_types", "huge", "redirect", "hang", "reset", "reset_mid_body", "latency", "echo",
)

# (method, path pattern, endpoint name); patterns must match the whole path.
API_ROUTES = (
    ("POST", re.compile(r"/v2/oauth/(?P<client>[^/]+)/refresh"), "refresh"),
    ("POST", re.compile(r"/v2/oauth-clients/(?P<client>[^/]+)/users/(?P<user>[^/]+)/force-refresh"),
     "force_refresh"),
    ("POST", re.compile(r"/v2/oauth-clients/(?P<client>[^/]+)/users"), "create_user"),
    ("GET", re.compile(r"/v2/oauth-clients/(?P<client>[^/]+)/users/(?P<user>[^/]+)"), "get_user"),
    ("GET", re.compile(r"/v2/oauth-clients/(?P<client>[^/]+)/users"), "list_users"),
    ("POST", re.compile(r"/v2/auth/oauth2/token"), "oauth2_token"),
)
DEFAULT_PAGE = 50  # the users a list returns without ?limit= (Cal.com's controller)

# error.code and error.message for a `status` fault, as Cal.com's exception filter words them.
STATUS_ERRORS = {
    400: ("BadRequestException", "Bad Request"),
    401: ("UnauthorizedException", "Unauthorized"),
    403: ("ForbiddenException", "Forbidden resource"),
    404: ("NOT_FOUND", "Record to delete does not exist."),
    409: ("ConflictException", "Conflict"),
    429: ("ThrottlerException", "ThrottlerException: Too Many Requests"),
    498: ("TokenExpiredException", "ACCESS_TOKEN_IS_EXPIRED"),
}

PROXY_ERROR_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)

# Handler instances are per connection; next() on a count is atomic under the GIL.
connection_ids = itertools.count(1)


class ApiError(Exception):
    """A Cal.com error response: status, error.code, error.message and optional details."""

    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class OAuth2Error(Exception):
    """An RFC 6749 error of the OAuth2 token endpoint: {"error", "error_description"}."""

    def __init__(self, status, error, description):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class ControlError(Exception):
    """A bad request to the control interface (answered 400, or 404 when not_found)."""

    def __init__(self, message, not_found=False):
        super().__init__(message)
        self.status = 404 if not_found else 400


@dataclass
class Token:
    kind: str  # "access" or "refresh"
    user_id: int
    expires_at_ms: int
    valid: bool = True

    def is_current(self):
        return self.valid and self.expires_at_ms > time.time() * 1000


@dataclass
class User:
    profile: dict  # Cal.com's user object, as the API returns it
    tokens: list = field(default_factory=list)  # every token value ever issued to the user


@dataclass
class Fault:
    endpoint: str  # an endpoint name or "any"
    kind: str
    remaining: int  # -1: until reset
    status: int | None
    retry_after: str | None  # the Retry-After header's text, verbatim (absurd values included)
    latency_ms: int
    apply: bool  # run the real operation first, then deliver the fault instead of its reply
    field: str
    reset: int | None = None  # X-RateLimit-Reset-Default of a status fault (seconds)
    escape: bool = False  # echo: every character but letters and digits as a JSON \\u escape

    def matches(self, endpoint):
        return self.endpoint in ("any", endpoint)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: list = field(default_factory=list)
    payload: object = None  # the decoded JSON body, kept so that faults can distort it
    from_calcom: bool = True  # carries Cal.com's request-id and rate-limit headers


def json_bytes(value):
    return json.dumps(value, separators=(",", ":")).encode()


def json_reply(status, payload, from_calcom=True):
    return Reply(status, json_bytes(payload), payload=payload, from_calcom=from_calcom)


def iso_now():
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def error_reply(error, path):
    """Cal.com's error envelope for an ApiError."""
    body = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return json_reply(error.status, {"status": "error", "timestamp": iso_now(), "path": path,
                                     "error": body})


def validation_error(prop, constraint, message):
    """The 400 that Cal.com's validation pipe gives for a bad body field."""
    details = {"errors": [{"property": prop, "constraints": {constraint: message}}]}
    return ApiError(400, "BadRequestException", message, details)


def new_token():
    """An opaque, JWT-shaped, unique token (no claims: clients must not decode it)."""
    return f"{TOKEN_PREFIX}.{secrets.token_urlsafe(24)}.{secrets.token_urlsafe(16)}"


def new_pair():
    """A fresh access and refresh token with their expiries, in Cal.com's response shape."""
    now = time.time()
    return {"accessToken": new_token(), "refreshToken": new_token(),
            "accessTokenExpiresAt": access_expiry_ms(now),
            "refreshTokenExpiresAt": refresh_expiry_ms(now)}


def new_oauth2_pair():
    """A fresh OAuth2 pair in the token endpoint's shape (expiry only as expires_in)."""
    return {"access_token": new_token(), "token_type": "bearer", "refresh_token": new_token(),
            "expires_in": OAUTH2_ACCESS_LIFETIME_S, "scope": "BOOKING_READ BOOKING_WRITE"}


def oauth2_error_reply(error):
    return Reply(error.status, json_bytes({"error": error.error,
                                           "error_description": error.description}),
                 headers=[("Cache-Control", "no-store")],
                 payload={"error": error.error, "error_description": error.description})


def access_expiry_ms(now):
    """Cal.com truncates the access token's expiry to the minute."""
    return int((now + ACCESS_LIFETIME_S) // 60 * 60 * 1000)


def refresh_expiry_ms(now):
    return int((now + REFRESH_LIFETIME_S) * 1000)


def pagination_arg(query, name, default, minimum):
    """One ?limit= or ?offset= value; a bad one is the validation pipe's 400."""
    values = query.get(name)
    if not values:
        return default
    if not re.fullmatch(r"[0-9]+", values[-1]) or int(values[-1]) < minimum:
        raise validation_error(name, "min", f"{name} must not be less than {minimum}")
    return int(values[-1])


def parse_user_id(text):
    """Cal.com's ParseIntPipe on the userId path parameter."""
    if not re.fullmatch(r"[0-9]+", text or ""):
        raise ApiError(400, "BadRequestException", "Validation failed (numeric string is expected)")
    return int(text)


def slugify(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class StandinState:
    """Users, tokens, faults and counters; one lock guards all of it.

    Every public method takes the lock itself, so an operation such as a refresh (check the
    token, spend it, issue a new pair) is atomic: of two requests presenting the same refresh
    token at once, the first wins and the other gets 400 "Invalid refresh token".
    """

    def __init__(self, client_id):
        self.client_id = client_id
        self.lock = threading.Lock()
        self.users = {}  # id -> User
        self.tokens = {}  # value -> Token, spent ones included
        self.issued = {}  # every token value ever handed out, in order (a dict as ordered set)
        self._clear_run_state()

    def _clear_run_state(self):
        """Forget faults, latency, rate limit and counters (what a test run sets up)."""
        self.faults = []
        self.oauth2_public = False  # a public client: no client_secret asked for
        self.oauth2_wrapped = False  # answer {"status":"success","data":{...}}, as one version does
        self.latency_ms = 0
        self.rate_per_minute = 0
        self.rate_window = deque()  # monotonic arrival times of API calls in the last minute
        self.calls = dict.fromkeys(ENDPOINTS, 0)
        self.calls_by_user = {}
        self.responses = Counter()
        self.connections = set()  # ids of connections that carried an API call
        self.requests = []

    # --- tokens (callers hold the lock) ---

    def _register(self, value, kind, user_id, expires_at_ms):
        """Record a token as valid for the user (seeding may re-register a known value)."""
        previous = self.tokens.get(value)
        if previous is None or previous.user_id != user_id:
            if previous is not None:
                self.users[previous.user_id].tokens.remove(value)
            self.users[user_id].tokens.append(value)
        self.tokens[value] = Token(kind, user_id, expires_at_ms)
        self.issued[value] = None

    def _issue_pair(self, user_id):
        pair = new_pair()
        self._register(pair["accessToken"], "access", user_id, pair["accessTokenExpiresAt"])
        self._register(pair["refreshToken"], "refresh", user_id, pair["refreshTokenExpiresAt"])
        return pair

    def _void_user_tokens(self, user_id):
        for value in self.users[user_id].tokens:
            self.tokens[value].valid = False

    def _new_user(self, user_id, email, body):
        """Add a user whose profile takes the optional fields of a create request's body."""
        profile = {
            "id": user_id,
            "email": email,
            "username": f"{slugify(email)}-{slugify(self.client_id)}",
            "name": body.get("name"),
            "timeZone": body.get("timeZone", "Europe/London"),
            "weekStart": body.get("weekStart", "Sunday"),
            "createdDate": iso_now(),
            "timeFormat": body.get("timeFormat", 12),
            "defaultScheduleId": None,
            "locale": body.get("locale", "en"),
        }
        self.users[user_id] = User(profile)
        return profile

    def _known_user(self, text):
        user_id = parse_user_id(text)
        if user_id not in self.users:
            raise ApiError(404, "NotFoundException",
                           f"User with ID {user_id} is not part of this OAuth client.")
        return user_id

    # --- Cal.com operations: return the response's data or raise ApiError ---

    def refresh(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("refreshToken"), str):
            raise validation_error("refreshToken", "isString", "refreshToken must be a string")
        with self.lock:
            token = self.tokens.get(body["refreshToken"])
            if token is None or token.kind != "refresh" or not token.is_current():
                raise ApiError(400, "BadRequestException", "Invalid refresh token")
            token.valid = False
            return self._issue_pair(token.user_id)

    def force_refresh(self, user_text):
        with self.lock:
            user_id = self._known_user(user_text)
            self._void_user_tokens(user_id)
            return self._issue_pair(user_id)

    def oauth2_token(self, body, client_id, secret):
        """POST /v2/auth/oauth2/token with grant_type=refresh_token: the client is checked
        (a confidential one must send its secret), then the token; rotation revokes every refresh
        token of that user, with no grace period.  Returns (pair, wrapped)."""
        if not isinstance(body, dict):
            raise OAuth2Error(400, "invalid_request", "body must be JSON or form-encoded")
        unknown = sorted(set(body) - set(OAUTH2_FIELDS))
        if unknown:
            raise OAuth2Error(400, "invalid_request", f"property {unknown[0]} should not exist")
        if any(not isinstance(body.get(name, ""), str) for name in OAUTH2_FIELDS):
            raise OAuth2Error(400, "invalid_request", "every field must be a string")
        if body.get("grant_type") not in ("authorization_code", "refresh_token"):
            raise OAuth2Error(400, "unsupported_grant_type", "unsupported_grant_type")
        if body["grant_type"] != "refresh_token" or not body.get("refresh_token"):
            raise OAuth2Error(400, "invalid_request", "invalid_request")
        given_client = body.get("client_id") or ""
        if not hmac.compare_digest(given_client.encode(), client_id.encode()):
            raise OAuth2Error(401, "invalid_client", "client_not_found")
        with self.lock:
            if not self.oauth2_public:
                given_secret = body.get("client_secret") or ""
                if not given_secret or not hmac.compare_digest(given_secret.encode(),
                                                               secret.encode()):
                    raise OAuth2Error(401, "invalid_client", "invalid_client_credentials")
            token = self.tokens.get(body["refresh_token"])
            if token is None or token.kind != "refresh":
                raise OAuth2Error(400, "invalid_grant", "invalid_refresh_token")
            if not token.is_current():
                raise OAuth2Error(400, "invalid_grant", "refresh_token_revoked")
            user_id = token.user_id
            for value in self.users[user_id].tokens:
                if self.tokens[value].kind == "refresh":
                    self.tokens[value].valid = False
            pair = new_oauth2_pair()
            now = time.time()
            self._register(pair["access_token"], "access", user_id,
                           int((now + OAUTH2_ACCESS_LIFETIME_S) * 1000))
            self._register(pair["refresh_token"], "refresh", user_id,
                           int((now + OAUTH2_REFRESH_LIFETIME_S) * 1000))
            return pair, self.oauth2_wrapped

    def set_oauth2_client(self, public, wrapped):
        with self.lock:
            self.oauth2_public, self.oauth2_wrapped = public, wrapped

    def create_user(self, body):
        body = body if isinstance(body, dict) else {}
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise validation_error("email", "isEmail", "email must be an email")
        for name in ("name", "timeZone"):
            if name in body and not isinstance(body[name], str):
                raise validation_error(name, "isString", f"{name} must be a string")
        with self.lock:
            if any(u.profile["email"].lower() == email.lower() for u in self.users.values()):
                raise ApiError(409, "ConflictException",
                               "User with the provided e-mail already exists.")
            user_id = max([FIRST_USER_ID - 1, *self.users]) + 1
            profile = self._new_user(user_id, email, body)
            return {"user": profile, **self._issue_pair(user_id)}

    def get_user(self, user_text):
        with self.lock:
            return self.users[self._known_user(user_text)].profile

    def list_users(self, query):
        """The client's managed users by id, a page of them: ?limit= and ?offset= as Cal.com's
        Pagination validates them (whole numbers, limit at least 1)."""
        limit = pagination_arg(query, "limit", DEFAULT_PAGE, 1)
        offset = pagination_arg(query, "offset", 0, 0)
        with self.lock:
            ordered = [self.users[i].profile for i in sorted(self.users)]
        return ordered[offset:offset + limit]

    def decoy_pair(self):
        """Tokens for a distorted success body when no real operation ran.  They were never
        valid, so token_state calls them unknown, but they are listed as issued: a test that
        looks for leaked tokens must look for these too."""
        pair = new_pair()
        with self.lock:
            self.issued[pair["accessToken"]] = None
            self.issued[pair["refreshToken"]] = None
        return pair

    def decoy_oauth2_pair(self):
        """decoy_pair's OAuth2 counterpart, in the shape the endpoint answers now."""
        pair = new_oauth2_pair()
        with self.lock:
            self.issued[pair["access_token"]] = None
            self.issued[pair["refresh_token"]] = None
            wrapped = self.oauth2_wrapped
        return {"status": "success", "data": pair} if wrapped else pair

    def owner_of(self, value):
        with self.lock:
            token = self.tokens.get(value) if isinstance(value, str) else None
            return token.user_id if token else None

    # --- rate limit, faults, latency ---

    def admit(self):
        """Count an API call in the rolling window; False when it goes over the limit.

        One window for all: the stand-in serves one OAuth client and every caller is on
        127.0.0.1, so Cal.com's per-client and per-IP buckets are the same bucket here."""
        now = time.monotonic()
        with self.lock:
            while self.rate_window and self.rate_window[0] <= now - RATE_WINDOW_S:
                self.rate_window.popleft()
            if self.rate_per_minute and len(self.rate_window) >= self.rate_per_minute:
                return False
            self.rate_window.append(now)
            return True

    def rate_headers(self):
        with self.lock:
            limit = self.rate_per_minute or DEFAULT_RATE_LIMIT
            remaining = max(0, limit - len(self.rate_window))
            reset = RATE_WINDOW_S
            if self.rate_window:
                reset = max(1, math.ceil(self.rate_window[0] + RATE_WINDOW_S - time.monotonic()))
        return [("X-RateLimit-Limit-Default", str(limit)),
                ("X-RateLimit-Remaining-Default", str(remaining)),
                ("X-RateLimit-Reset-Default", str(reset))]

    def take_fault(self, endpoint):
        """The first queued fault matching the endpoint, used up by one call."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(endpoint):
                    if fault.remaining > 0:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def fixed_latency_s(self):
        with self.lock:
            return self.latency_ms / 1000

    # --- bookkeeping ---

    def record_arrival(self, endpoint, user_id, connection_id):
        """Count an API call; returns its request-log entry, whose status is set on reply."""
        entry = {"t": time.time(), "endpoint": endpoint or "unknown", "user_id": user_id,
                 "status": None}
        with self.lock:
            self.requests.append(entry)
            self.connections.add(connection_id)
            if endpoint:
                self.calls[endpoint] += 1
            if endpoint in USER_ENDPOINTS and user_id is not None:
                per_user = self.calls_by_user.setdefault(str(user_id),
                                                         dict.fromkeys(USER_ENDPOINTS, 0))
                per_user[endpoint] += 1
        return entry

    def record_response(self, entry, status):
        """Note a reply's status, and when it left (after any latency)."""
        with self.lock:
            entry["status"] = status
            entry["answered"] = time.time()
            self.responses[str(status)] += 1

    # --- control interface ---

    def reset(self, drop_users):
        with self.lock:
            self._clear_run_state()
            if drop_users:
                self.users.clear()
                self.tokens.clear()

    def seed(self, user_id, refresh_token, access_token, email):
        """Make refresh_token (and access_token) the user's only valid tokens, as if just issued."""
        now = time.time()
        with self.lock:
            if user_id not in self.users:
                self._new_user(user_id, email or f"user{user_id}@standin.test", {})
            self._void_user_tokens(user_id)
            self._register(refresh_token, "refresh", user_id, refresh_expiry_ms(now))
            if access_token is not None:
                self._register(access_token, "access", user_id, access_expiry_ms(now))

    def add_fault(self, fault):
        with self.lock:
            self.faults.append(fault)

    def set_latency(self, ms):
        with self.lock:
            self.latency_ms = ms

    def set_rate_limit(self, per_minute):
        with self.lock:
            self.rate_per_minute = per_minute

    def stats(self):
        with self.lock:
            return {"calls": dict(self.calls),
                    "calls_by_user": copy.deepcopy(self.calls_by_user),
                    "responses": dict(self.responses),
                    "connections": len(self.connections)}

    def user_tokens(self, user_id):
        with self.lock:
            if user_id not in self.users:
                raise ControlError(f"no user {user_id}", not_found=True)
            current = [(v, self.tokens[v]) for v in self.users[user_id].tokens
                       if self.tokens[v].is_current()]
            return {"id": user_id,
                    "valid_refresh_tokens": [v for v, t in current if t.kind == "refresh"],
                    "valid_access_tokens": [v for v, t in current if t.kind == "access"]}

    def token_state(self, value):
        with self.lock:
            token = self.tokens.get(value)
            if token is None:
                return {"state": "unknown", "user_id": None}
            return {"state": "current" if token.is_current() else "spent",
                    "user_id": token.user_id, "expires_at_ms": token.expires_at_ms}

    def issued_tokens(self):
        with self.lock:
            return {"tokens": list(self.issued)}

    def request_log(self):
        with self.lock:
            return {"requests": [dict(entry) for entry in self.requests]}


# --- control interface: request parsing ---

REQUIRED = object()


def int_arg(args, name, default=REQUIRED, minimum=0):
    if name not in args:
        if default is REQUIRED:
            raise ControlError(f"{name} is required")
        return default
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ControlError(f"{name} must be an integer >= {minimum}")
    return value


def optional_str_arg(args, name):
    value = args.get(name)
    if value is not None and not isinstance(value, str):
        raise ControlError(f"{name} must be a string")
    return value


def fault_from_args(args):
    endpoint = args.get("endpoint", "any")
    if endpoint not in ("any", *ENDPOINTS):
        raise ControlError(f"endpoint must be one of any, {', '.join(ENDPOINTS)}")
    kind = args.get("kind")
    if kind not in FAULT_KINDS:
        raise ControlError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    count = int_arg(args, "count", 1, minimum=-1)
    if count == 0:
        raise ControlError("count must be -1 (until reset) or positive")
    status = int_arg(args, "status", 502 if kind == "html" else 500, minimum=100)
    retry_after = args.get("retry_after")
    if retry_after is not None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, (int, str)):
            raise ControlError("retry_after must be an integer or a string")
        retry_after = str(retry_after)
        if not re.fullmatch(r"[\x20-\x7e]*", retry_after):
            raise ControlError("retry_after must be printable ASCII")
    return Fault(endpoint, kind, count, status, retry_after,
                 int_arg(args, "latency_ms", 0), bool(args.get("apply", False)),
                 optional_str_arg(args, "field") or "accessToken",
                 int_arg(args, "reset", None), bool(args.get("escape", False)))


def seed_from_args(args):
    """The arguments of StandinState.seed, checked, from one seed request (or seed_many entry)."""
    if not isinstance(args, dict):
        raise ControlError("a seed must be a JSON object")
    refresh_token = optional_str_arg(args, "refresh_token")
    if not refresh_token:
        raise ControlError("refresh_token is required")
    return (int_arg(args, "user_id", minimum=1), refresh_token,
            optional_str_arg(args, "access_token"), optional_str_arg(args, "email"))


def control_post(state, name, args):
    if name == "reset":
        state.reset(bool(args.get("users", False)))
    elif name == "seed":
        state.seed(*seed_from_args(args))
    elif name == "seed_many":
        # {"seeds": [seed, ...]}: one request for a thousand users; all are checked before any
        # is seeded, so a bad entry changes nothing.
        seeds = args.get("seeds")
        if not isinstance(seeds, list):
            raise ControlError("seeds must be a list")
        for seed in [seed_from_args(entry) for entry in seeds]:
            state.seed(*seed)
        return {"ok": True, "seeded": len(seeds)}
    elif name == "fault":
        state.add_fault(fault_from_args(args))
    elif name == "latency":
        state.set_latency(int_arg(args, "ms"))
    elif name == "rate_limit":
        state.set_rate_limit(int_arg(args, "per_minute"))
    elif name == "oauth2":
        state.set_oauth2_client(bool(args.get("public", False)), bool(args.get("wrapped", False)))
    else:
        raise ControlError(f"no control endpoint POST {name}", not_found=True)
    return {"ok": True}


def control_get(state, name, query):
    if name == "stats":
        return state.stats()
    if name.startswith("user/"):
        return state.user_tokens(parse_control_int(name[len("user/"):]))
    if name == "token_state":
        return state.token_state(query.get("token", [""])[0])
    if name == "issued_tokens":
        return state.issued_tokens()
    if name == "requests":
        return state.request_log()
    raise ControlError(f"no control endpoint GET {name}", not_found=True)


def parse_control_int(text):
    if not text.isdigit():
        raise ControlError("user id must be an integer")
    return int(text)


def control_reply(state, method, url, body):
    """Answer a /_control/ request; JSON in, JSON out, no Cal.com headers."""
    parts = urlsplit(url)
    name = parts.path[len("/_control/"):]
    try:
        if method == "GET":
            return json_reply(200, control_get(state, name, parse_qs(parts.query)), False)
        if method != "POST":
            raise ControlError(f"method {method} not allowed", not_found=True)
        try:
            args = json.loads(body) if body.strip() else {}
        except ValueError:
            raise ControlError("body is not JSON") from None
        if not isinstance(args, dict):
            raise ControlError("body must be a JSON object")
        return json_reply(200, control_post(state, name, args), False)
    except ControlError as error:
        return json_reply(error.status, {"error": str(error)}, False)


# --- Cal.com API: routing and fault distortions ---

@dataclass
class ApiRequest:
    url: str  # as received, for the error envelope's "path"
    endpoint: str | None  # None: no such route
    client_id: str | None
    user_text: str | None  # the userId path parameter
    secret: str | None
    body: object  # decoded JSON (or form), or None when absent or not JSON
    raw_body: bytes = b""  # as received


def route_api(method, path):
    for route_method, pattern, endpoint in API_ROUTES:
        match = pattern.fullmatch(path)
        if match and method == route_method:
            groups = match.groupdict()
            return endpoint, groups.get("client"), groups.get("user")
    return None, None, None


def decode_json(body):
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def decode_body(body, content_type):
    """A JSON body, or a form-encoded one (the OAuth2 token endpoint takes both) as a dict whose
    repeated fields are lists (so that they fail the string check)."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return None
        return {name: values[0] if len(values) == 1 else values
                for name, values in fields.items()}
    return decode_json(body)


def status_fault(fault, url, endpoint=None):
    if endpoint == "oauth2_token" and fault.status in (400, 401):
        # The token endpoint's own errors are RFC 6749 bodies.
        error = ("invalid_grant", "invalid_refresh_token") if fault.status == 400 else \
            ("invalid_client", "invalid_client_credentials")
        return oauth2_error_reply(OAuth2Error(fault.status, *error))
    code, message = STATUS_ERRORS.get(fault.status, ("HttpException", "Http Exception"))
    if fault.status >= 500:
        code, message = "InternalServerErrorException", "Internal server error"
    reply = error_reply(ApiError(fault.status, code, message), url)
    if fault.retry_after is not None:
        reply.headers.append(("Retry-After", fault.retry_after))
    if fault.reset is not None:
        reply.headers.append(("X-RateLimit-Reset-Default", str(fault.reset)))
    return reply


def json_escaped(text):
    """A JSON string literal of text with every character but letters, digits and spaces written
    as a \\u escape (surrogate pairs beyond the BMP): the raw bytes never hold text's
    punctuation, so only a client that decodes the JSON sees what it says."""
    out = []
    for char in text:
        if char.isascii() and (char.isalnum() or char == " "):
            out.append(char)
        else:
            for unit in struct.unpack(f"<{len(char.encode('utf-16-le')) // 2}H",
                                      char.encode("utf-16-le")):
                out.append(f"\\u{unit:04x}")
    return '"' + "".join(out) + '"'



def distort(kind, payload, fault_field):
    """A success body made unusable the way `kind` says (payload is a private copy).  An OAuth2
    body (bare or wrapped) has snake_case fields: the fault's field is named as in either."""
    data = payload.get("data", {}) if "status" in payload else payload
    if not isinstance(data, dict):  # a list's page: only whole-body faults apply
        data = {}
    oauth2 = "access_token" in data
    if oauth2:
        fault_field = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), fault_field)
    if kind == "missing_field":
        data.pop(fault_field, None)
    elif kind == "no_expiry":
        for name in ("accessTokenExpiresAt", "refreshTokenExpiresAt", "expires_in"):
            data.pop(name, None)
    elif kind == "wrong_types" and oauth2:
        data["expires_in"] = str(data.get("expires_in"))
        data["access_token"] = 123456789
    elif kind == "wrong_types":
        data["accessTokenExpiresAt"] = str(data.get("accessTokenExpiresAt"))
        data["accessToken"] = 123456789
    elif kind == "huge":
        payload["padding"] = "x" * HUGE_PADDING_BYTES
    body = json_bytes(payload)
    if kind == "truncated":
        body = body[:len(body) // 2]
    return Reply(200, body)


class StandinHandler(BaseHTTPRequestHandler):
    """One instance per TCP connection; handles its keep-alive requests in turn."""

    protocol_version = "HTTP/1.1"
    # Responses go out through an unbuffered writer, each in one sendall(): with TCP_NODELAY
    # this avoids the ~40 ms Nagle/delayed-ACK stall of a header-then-body write.
    wbufsize = 0

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self.connection_id = next(connection_ids)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        """Silenced: the default logs request lines, whose query strings may carry tokens."""

    def _dispatch(self):
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path.startswith("/_control/"):
            self._send(control_reply(self.server.state, self.command, self.path, body))
        else:
            self._handle_api(path, body)

    # Every method goes through one dispatcher: an unknown method gets Cal.com's 404 envelope.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _read_body(self):
        """The request body, or None after answering a request we cannot frame."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(json_reply(411, {"error": "send a Content-Length"}, False))
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(json_reply(400, {"error": "bad Content-Length"}, False))
            return None
        return self.rfile.read(length)

    # --- Cal.com API ---

    def _handle_api(self, path, body):
        state = self.server.state
        endpoint, client_id, user_text = route_api(self.command, path)
        request = ApiRequest(self.path, endpoint, client_id, user_text,
                             self.headers.get("x-cal-secret-key"),
                             decode_body(body, self.headers.get("Content-Type", "")),
                             body)
        entry = state.record_arrival(endpoint, self._user_of(request), self.connection_id)
        latency_s = state.fixed_latency_s()
        if latency_s:
            # Not sleep(0): that still gives up the GIL, which costs more than the whole
            # reply when other threads are busy (it showed in the benchmarks).
            time.sleep(latency_s)
        fault = state.take_fault(endpoint) if endpoint else None
        if fault is None:
            self._send(self._serve(request), entry)
        else:
            self._deliver_fault(fault, request, entry)

    def _user_of(self, request):
        """The user a call is about, for per-user counters: the token's owner, or the path id."""
        if request.endpoint == "refresh" and isinstance(request.body, dict):
            return self.server.state.owner_of(request.body.get("refreshToken"))
        if request.endpoint == "oauth2_token" and isinstance(request.body, dict):
            return self.server.state.owner_of(request.body.get("refresh_token"))
        if request.user_text and request.user_text.isdigit():
            return int(request.user_text)
        return None

    def _serve(self, request):
        """What Cal.com would answer: rate limit, then authentication, then the operation."""
        state = self.server.state
        try:
            if not state.admit():
                raise ApiError(429, "ThrottlerException", "ThrottlerException: Too Many Requests")
            if request.endpoint is None:
                path = urlsplit(request.url).path
                raise ApiError(404, "NOT_FOUND", f"Cannot {self.command} {path}")
            if request.endpoint == "oauth2_token":
                return self._serve_oauth2(request)
            self._authenticate(request)
            if request.endpoint == "refresh":
                return json_reply(200, {"status": "success", "data": state.refresh(request.body)})
            if request.endpoint == "force_refresh":
                data = state.force_refresh(request.user_text)
                return json_reply(200, {"status": "success", "data": data})
            if request.endpoint == "create_user":
                return json_reply(201, {"status": "success",
                                        "data": state.create_user(request.body)})
            if request.endpoint == "list_users":
                query = parse_qs(urlsplit(request.url).query)
                return json_reply(200, {"status": "success", "data": state.list_users(query)})
            return json_reply(200, {"status": "success", "data": state.get_user(request.user_text)})
        except ApiError as error:
            return error_reply(error, request.url)

    def _serve_oauth2(self, request):
        """The OAuth2 token endpoint authenticates by the body, not by a header."""
        try:
            pair, wrapped = self.server.state.oauth2_token(request.body, self.server.client_id,
                                                           self.server.secret)
        except OAuth2Error as error:
            return oauth2_error_reply(error)
        payload = {"status": "success", "data": pair} if wrapped else pair
        reply = json_reply(200, payload)
        reply.headers.append(("Cache-Control", "no-store"))
        return reply

    def _authenticate(self, request):
        server = self.server
        if request.secret is None:
            raise ApiError(401, "UnauthorizedException", "Missing x-cal-secret-key header")
        # compare_digest on both: the answer's timing must not tell how much of a guess was right
        client_ok = hmac.compare_digest(request.client_id.encode(), server.client_id.encode())
        secret_ok = hmac.compare_digest(request.secret.encode(), server.secret.encode())
        if not client_ok:
            raise ApiError(401, "UnauthorizedException", "OAuth client not found")
        if not secret_ok:
            raise ApiError(401, "UnauthorizedException", "Invalid OAuth client secret")

    def _deliver_fault(self, fault, request, entry):
        real = self._serve(request) if fault.apply else None
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        kind = fault.kind
        if kind == "hang":
            self._hang()
        elif kind == "reset":
            self._reset()
        elif kind == "reset_mid_body":
            self._send(Reply(200, json_bytes(self._success_payload(real, request))), entry,
                       partial=True)
            self._reset()
        elif kind in ("latency", "no_expiry"):
            # These answer with the real operation's outcome (no_expiry as an older deployment
            # would: valid tokens, no expiry fields), so they run it unless apply already did.
            real = real or self._serve(request)
            if kind == "no_expiry" and real.status < 300:
                real = distort(kind, copy.deepcopy(real.payload), fault.field)
            self._send(real, entry)
        else:
            self._send(self._simple_fault(fault, request, real), entry)

    def _simple_fault(self, fault, request, real):
        """The reply for a fault that answers with one whole (if wrong) HTTP response."""
        kind = fault.kind
        if kind == "status":
            return status_fault(fault, request.url, request.endpoint)
        if kind == "html":
            reason = self._reason(fault.status)
            page = PROXY_ERROR_PAGE.format(status=fault.status, reason=reason).encode()
            return Reply(fault.status, page, "text/html", from_calcom=False)
        if kind == "redirect":
            return Reply(302, b"", None, [("Location", REDIRECT_TARGET)], from_calcom=False)
        if kind == "malformed":
            return Reply(200, b"<<this is not JSON>> {status: success")
        if kind == "no_data":
            return json_reply(200, {"status": "success"})
        if kind == "echo":
            # A careless proxy or WAF quoting the request back, credentials and all, after a
            # long preamble (so a client that truncates before checking would miss it); with
            # escape, JSON-escaped as a server may legally write it.
            # A form body (the OAuth2 token endpoint, secret included) is quoted
            # as it came, percent-encoded.
            quoted = (request.raw_body.decode("latin-1") if request.endpoint == "oauth2_token"
                      else json.dumps(request.body, ensure_ascii=False))
            message = ("request rejected by policy; " * 8 + f"x-cal-secret-key={request.secret} "
                       f"body={quoted}")
            if not fault.escape:
                return json_reply(fault.status, {"status": "error", "error": {
                    "code": "BadRequestException", "message": message}})
            body = ('{"status":"error","error":{"code":"BadRequestException","message":'
                    + json_escaped(message) + "}}")
            return Reply(fault.status, body.encode("ascii"))
        return distort(kind, self._success_payload(real, request), fault.field)

    def _success_payload(self, real, request):
        """The success body a fault distorts: the real one when the operation ran and succeeded,
        otherwise one with decoy tokens that were never valid."""
        if real is not None and real.status < 300:
            return copy.deepcopy(real.payload)
        if request.endpoint == "oauth2_token":
            return self.server.state.decoy_oauth2_pair()
        return {"status": "success", "data": self.server.state.decoy_pair()}

    def _hang(self):
        """Read nothing more and answer nothing until the client closes or HANG_MAX_S pass."""
        self.close_connection = True
        deadline = time.monotonic() + HANG_MAX_S
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], left)
            try:
                if readable and not self.connection.recv(65536):
                    return
            except OSError:
                return

    def _reset(self):
        """Abort the connection with an RST (SO_LINGER 0) instead of an orderly FIN."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # drops the file's reference, so that close() really closes the fd
        self.connection.close()

    # --- output ---

    def _send(self, reply, entry=None, partial=False):
        """Write the whole response in one write (or, when partial, all but half the body)."""
        head = [f"{self.protocol_version} {reply.status} {self._reason(reply.status)}"]
        headers = list(reply.headers)
        if reply.content_type:
            headers.append(("Content-Type", reply.content_type))
        if reply.from_calcom:
            headers.append(("X-Request-Id", os.urandom(16).hex()))
            given = {name.lower() for name, _ in headers}
            headers.extend(h for h in self.server.state.rate_headers()
                           if h[0].lower() not in given)
        headers.append(("Content-Length", str(len(reply.body))))
        if self.close_connection:
            headers.append(("Connection", "close"))
        head.extend(f"{name}: {value}" for name, value in headers)
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body
        if partial:
            data = data[:len(data) - len(reply.body) // 2]
        if entry is not None:
            self.server.state.record_response(entry, reply.status)
        self.wfile.write(data)
        if self.server.verbose:
            print(f"{self.command} {urlsplit(self.path).path} {reply.status}", file=sys.stderr)

    def _reason(self, status):
        return self.responses.get(status, ("Unknown",))[0]


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True  # a hanging connection must never hold up shutdown
    request_queue_size = 128  # the default backlog of 5 drops SYNs when many clients connect

    def __init__(self, port, client_id, secret, verbose, tls_context=None):
        self.client_id, self.secret, self.verbose = client_id, secret, verbose
        self.tls_context = tls_context
        self.state = StandinState(client_id)
        super().__init__(("127.0.0.1", port), StandinHandler)

    def get_request(self):
        """Serve TLS when a certificate was given; the handshake happens in the handler's
        thread (on first read), so a stalled client cannot block accept()."""
        sock, address = super().get_request()
        if self.tls_context is not None:
            sock = self.tls_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, address

    def server_bind(self):
        """Bind without HTTPServer's reverse DNS lookup of the address, which can stall."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        """Report a handler failure by type and place only: its message could quote a token."""
        exc_type, _, tb = sys.exc_info()
        if issubclass(exc_type, (ConnectionError, TimeoutError)):
            return  # the client went away; nothing to report
        where = traceback.extract_tb(tb)[-1]
        print(f"calcom_standin: {exc_type.__name__} in {where.name} line {where.lineno}",
              file=sys.stderr)


def write_port_file(path, port):
    """Write the port so that a reader sees either nothing or the whole number."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as out:
        out.write(f"{port}\n")
    os.replace(tmp, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Local stand-in for Cal.com's token API.")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--secret-file", required=True,
                        help="file holding the OAuth client secret (read once, at start)")
    parser.add_argument("--port-file", required=True,
                        help="where to write the port once listening")
    parser.add_argument("--port", type=int, default=0, help="0 (default): any free port")
    parser.add_argument("--tls-cert", help="serve https with this certificate (PEM) ...")
    parser.add_argument("--tls-key", help="... and this key")
    parser.add_argument("--verbose", action="store_true",
                        help="log method, path and status of each response to stderr")
    return parser.parse_args(argv)


def read_secret(path):
    """The secret, from a file rather than the command line, where ps would show it."""
    with open(path, encoding="ascii") as f:
        return f.read().rstrip("\r\n")


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    # Handlers go in before the port is published, so a prompt SIGTERM still exits cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    tls_context = None
    if args.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)
    server = StandinServer(args.port, args.client_id, read_secret(args.secret_file),
                           args.verbose, tls_context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    write_port_file(args.port_file, server.server_address[1])
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
