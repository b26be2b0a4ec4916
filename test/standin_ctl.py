#!/usr/bin/env python3
"""Command-line control of the Cal.com stand-in (test/calcom_standin.py), for test scripts.

The stand-in's address comes from CAL_STANDIN_URL (http://127.0.0.1:PORT).  The output is made to
sit in pg_regress expected files: it never holds timings or ports, and holds tokens only where
printing one is the subcommand's purpose (create-user, and the token listings).  Errors go to
stderr with exit status 1.  Run with --help for the subcommands.
"""

import argparse
import http.client
import json
import os
import ssl
import sys
import time
from urllib.parse import quote, urlsplit

TIMEOUT_S = 10


class CtlError(Exception):
    """A failure worth one line on stderr and exit status 1."""


def standin_address():
    url = os.environ.get("CAL_STANDIN_URL")
    if not url:
        raise CtlError("CAL_STANDIN_URL is not set")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
        raise CtlError("CAL_STANDIN_URL must look like http://127.0.0.1:PORT")
    return parts.hostname, parts.port


def http_call(method, path, payload=None, headers=None, address=None, timeout=TIMEOUT_S):
    """One request; returns (status, decoded JSON or None).  http.client never uses a proxy,
    so http_proxy in the environment cannot divert these loopback calls."""
    host, port = address or standin_address()
    body = None if payload is None else json.dumps(payload).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if urlsplit(os.environ.get("CAL_STANDIN_URL", "")).scheme == "https":
        # A stand-in serving TLS (the TLS test): trust the test CA only.
        context = ssl.create_default_context(cafile=os.environ.get("CAL_STANDIN_CA"))
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, None


def control(method, name, payload=None):
    """Call /_control/NAME and return its JSON answer, or raise CtlError."""
    try:
        status, answer = http_call(method, f"/_control/{name}", payload)
    except OSError as error:
        raise CtlError(f"cannot reach the stand-in: {type(error).__name__}") from None
    if status != 200:
        message = answer.get("error") if isinstance(answer, dict) else None
        raise CtlError(f"{name}: HTTP {status} {message or ''}".rstrip())
    return answer


def client_credentials():
    """The OAuth client id and secret, from CAL_CLIENT_ID and the file CAL_SECRET_FILE names."""
    client_id, secret_file = os.environ.get("CAL_CLIENT_ID"), os.environ.get("CAL_SECRET_FILE")
    if not client_id or not secret_file:
        raise CtlError("CAL_CLIENT_ID and CAL_SECRET_FILE must be set")
    try:
        with open(secret_file, encoding="utf-8") as f:
            secret = f.read().rstrip("\r\n")
    except OSError as error:
        raise CtlError(f"cannot read CAL_SECRET_FILE: {error.strerror}") from None
    return client_id, {"x-cal-secret-key": secret, "x-cal-client-id": client_id}


def error_code(answer):
    error = answer.get("error") if isinstance(answer, dict) else None
    return error.get("code") if isinstance(error, dict) else None


# --- subcommands: each takes the parsed arguments and prints its result ---

def cmd_reset(args):
    control("POST", "reset", {"users": args.users})


def cmd_seed(args):
    payload = {"user_id": args.user_id, "refresh_token": args.refresh_token}
    if args.access_token is not None:
        payload["access_token"] = args.access_token
    control("POST", "seed", payload)


def cmd_seed_many(args):
    """Users FIRST_ID .. FIRST_ID+COUNT-1, each holding the refresh token PREFIX-<id>."""
    if args.count < 1:
        raise CtlError("COUNT must be at least 1")
    seeds = [{"user_id": user_id, "refresh_token": f"{args.prefix}-{user_id}"}
             for user_id in range(args.first_id, args.first_id + args.count)]
    control("POST", "seed_many", {"seeds": seeds})


def cmd_latency(args):
    control("POST", "latency", {"ms": args.ms})


def cmd_rate_limit(args):
    control("POST", "rate_limit", {"per_minute": args.per_minute})


def cmd_fault(args):
    payload = {"endpoint": args.endpoint, "kind": args.kind, "count": args.count,
               "apply": args.apply}
    for name in ("status", "retry_after", "latency_ms", "field", "reset"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    if args.escape:
        payload["escape"] = True
    control("POST", "fault", payload)


def cmd_calls(args):
    stats = control("GET", "stats")
    if args.user is None:
        counts = stats["calls"]
    else:
        counts = stats["calls_by_user"].get(str(args.user), {})
    names = [args.endpoint] if args.endpoint else ["refresh", "force_refresh"]
    if not args.endpoint and counts.get("oauth2_token", 0) > 0:
        names.append("oauth2_token")  # the OAuth2 flow's calls, listed once there are any
    print(" ".join(f"{name}={counts.get(name, 0)}" for name in names))


def cmd_oauth2(args):
    control("POST", "oauth2", {"public": args.public, "wrapped": args.wrapped})


def cmd_connections(args):
    print(control("GET", "stats")["connections"])


def token_state(token):
    return control("GET", f"token_state?token={quote(token, safe='')}")


def cmd_token_state(args):
    print(token_state(args.token)["state"])


def current_state(user_id, token):
    """'current' when TOKEN is the user's only valid refresh token, else 'not current (why)'."""
    info = token_state(token)
    if info["state"] != "current":
        return f"not current ({info['state']})"
    if info["user_id"] != user_id:
        return "not current (another user's)"
    if control("GET", f"user/{user_id}")["valid_refresh_tokens"] != [token]:
        return "not current (not the only valid one)"
    return "current"


def cmd_is_current(args):
    print(current_state(args.user_id, args.token))


def cmd_check_current(args):
    """is-current for every 'USER_ID TOKEN' line on stdin (e.g. psql -At -F ' ' output): one
    line per pair that is not current, then 'N current, M not current'."""
    good = bad = 0
    for number, line in enumerate(sys.stdin, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise CtlError(f"stdin line {number}: expected USER_ID TOKEN")
        user_id, token = int(fields[0]), fields[1]
        try:  # the common case in one request: the user's only valid refresh token is TOKEN
            quick = control("GET", f"user/{user_id}")["valid_refresh_tokens"] == [token]
        except CtlError:
            quick = False  # no such user: current_state says why
        state = "current" if quick else current_state(user_id, token)
        if state == "current":
            good += 1
        else:
            bad += 1
            print(f"{user_id} {state}")
    print(f"{good} current, {bad} not current")


def cmd_create_user(args):
    client_id, headers = client_credentials()
    name = args.name or args.email.split("@")[0]
    payload = {"email": args.email, "name": name, "timeZone": "Europe/London"}
    try:
        status, answer = http_call("POST", f"/v2/oauth-clients/{quote(client_id, safe='')}/users",
                                   payload, headers)
    except OSError as error:
        raise CtlError(f"create-user: {type(error).__name__}") from None
    if status != 201 or not isinstance(answer, dict):
        raise CtlError(f"create-user: HTTP {status} {error_code(answer) or ''}".rstrip())
    try:
        data = answer["data"]
        line = {"id": data["user"]["id"]}
        for key in ("accessToken", "refreshToken", "accessTokenExpiresAt",
                    "refreshTokenExpiresAt"):
            line[key] = data[key]
    except (KeyError, TypeError):
        raise CtlError("create-user: the response lacks the user or a token field") from None
    print(json.dumps(line, separators=(",", ":")))


def cmd_try_refresh(args):
    """Prints '<status> <error.code>' or '<status> ok'; a transport failure prints
    'error timeout' or 'error connection', and a body that is not JSON '<status> not_json'."""
    client_id, headers = client_credentials()
    try:
        status, answer = http_call("POST", f"/v2/oauth/{quote(client_id, safe='')}/refresh",
                                   {"refreshToken": args.token}, headers)
    except TimeoutError:
        print("error timeout")
        return
    except (OSError, http.client.HTTPException):
        print("error connection")
        return
    if answer is None:
        print(f"{status} not_json")
    else:
        print(f"{status} {error_code(answer) or 'ok'}")


def cmd_wait_port(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            with open(args.file, encoding="ascii") as f:
                port = int(f.read())
            host = urlsplit(os.environ.get("CAL_STANDIN_URL", "")).hostname or "127.0.0.1"
            status, _ = http_call("GET", "/_control/stats", address=(host, port), timeout=1)
            if status == 200:
                return
        except (OSError, ValueError, http.client.HTTPException):
            pass  # not written yet, or not listening yet
        time.sleep(0.05)
    raise CtlError(f"no stand-in answered within {args.timeout} s")


def cmd_issued_tokens(args):
    for token in control("GET", "issued_tokens")["tokens"]:
        print(token)


def cmd_requests(args):
    print(json.dumps(control("GET", "requests")))


def build_parser():
    parser = argparse.ArgumentParser(prog="standin_ctl.py",
                                     description="Control the local Cal.com stand-in.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    def add(name, func, help_text):
        command = sub.add_parser(name, help=help_text)
        command.set_defaults(func=func)
        return command

    add("reset", cmd_reset, "clear faults, latency, rate limit and counters").add_argument(
        "--users", action="store_true", help="drop every user and token too")
    seed = add("seed", cmd_seed, "make REFRESH_TOKEN the user's only valid refresh token")
    seed.add_argument("user_id", type=int, metavar="USER_ID")
    seed.add_argument("refresh_token", metavar="REFRESH_TOKEN")
    seed.add_argument("--access-token")
    many = add("seed-many", cmd_seed_many,
               "seed users FIRST_ID .. FIRST_ID+COUNT-1 with refresh tokens PREFIX-<id>")
    many.add_argument("first_id", type=int, metavar="FIRST_ID")
    many.add_argument("count", type=int, metavar="COUNT")
    many.add_argument("prefix", metavar="PREFIX")
    add("latency", cmd_latency, "add MS of latency to every API call").add_argument(
        "ms", type=int, metavar="MS")
    add("rate-limit", cmd_rate_limit, "enforce N API calls a minute (0: off)").add_argument(
        "per_minute", type=int, metavar="N")
    fault = add("fault", cmd_fault, "give the next matching calls a fault")
    fault.add_argument("endpoint", metavar="ENDPOINT",
                       choices=["refresh", "force_refresh", "create_user", "get_user",
                                "list_users", "oauth2_token", "any"])
    fault.add_argument("kind", metavar="KIND")
    fault.add_argument("--status", type=int)
    fault.add_argument("--count", type=int, default=1, help="-1: until reset")
    fault.add_argument("--retry-after", help="the Retry-After header's text, verbatim")
    fault.add_argument("--reset", type=int,
                       help="X-RateLimit-Reset-Default of a status fault, in seconds")
    fault.add_argument("--escape", action="store_true",
                       help="echo: JSON-escape every character but letters and digits")
    fault.add_argument("--latency-ms", type=int)
    fault.add_argument("--apply", action="store_true",
                       help="perform the real operation, then deliver the fault")
    fault.add_argument("--field")
    oauth2 = add("oauth2", cmd_oauth2,
                 "how the OAuth2 token endpoint behaves (until reset): the client's type, the "
                 "response's shape")
    oauth2.add_argument("--public", action="store_true", help="a public client: no secret")
    oauth2.add_argument("--wrapped", action="store_true",
                        help='answer {"status":"success","data":{...}} instead of the bare object')
    calls = add("calls", cmd_calls, "print call counts")
    calls.add_argument("endpoint", nargs="?", metavar="ENDPOINT",
                       choices=["refresh", "force_refresh", "create_user", "get_user",
                                "list_users"])
    calls.add_argument("--user", type=int)
    add("connections", cmd_connections, "print the number of connections that carried API calls")
    add("token-state", cmd_token_state, "print current, spent or unknown").add_argument(
        "token", metavar="TOKEN")
    current = add("is-current", cmd_is_current, "is TOKEN the user's only valid refresh token?")
    current.add_argument("user_id", type=int, metavar="USER_ID")
    current.add_argument("token", metavar="TOKEN")
    add("check-current", cmd_check_current,
        "is-current for each 'USER_ID TOKEN' line on stdin; print the misses and a count")
    create = add("create-user", cmd_create_user, "create a managed user; print its tokens")
    create.add_argument("email", metavar="EMAIL")
    create.add_argument("--name")
    add("try-refresh", cmd_try_refresh, "refresh with TOKEN; print the status and error code"
        ).add_argument("token", metavar="TOKEN")
    wait = add("wait-port", cmd_wait_port, "wait until the stand-in in FILE answers")
    wait.add_argument("file", metavar="FILE")
    wait.add_argument("--timeout", type=float, default=10)
    add("issued-tokens", cmd_issued_tokens, "print every token ever issued, one a line")
    add("requests", cmd_requests, "print the request log as JSON")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CtlError as error:
        print(f"standin_ctl: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
