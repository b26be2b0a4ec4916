-- The in-database reference for bench/alternatives.sh: the job cal_refresh
-- does, written by hand in PL/Python with urllib and json.  Same reads and
-- writes as the extension (lock the row, refresh, fall back to force
-- refresh, update the row in the caller's transaction), same headers, same
-- fallback rule.  Unlike the extension it neither retries nor keeps failure
-- bookkeeping (nothing fails in a benchmark), and urllib opens a new
-- connection for every request: it has no keep-alive.
--
-- It reads cal_refresh's own settings (URL, client id, secret file), so
-- that both talk to the same server with the same secret.

CREATE EXTENSION IF NOT EXISTS plpython3u;

-- The shared code, kept in GD for the session: plans, the HTTP call, the
-- fallback rule.  Only bench_py_refresh_pair runs in worker threads, so it
-- touches no plpy function.
CREATE FUNCTION bench_py_init() RETURNS void LANGUAGE plpython3u AS $py$
import json
import socket
import time
import types
import urllib.error
import urllib.parse
import urllib.request

TABLE = 'public."CalendarIntegration"'
TIMEOUT_S = 10  # cal_refresh.timeout's default
ACCESS_LIFETIME_MS = 60 * 60 * 1000  # assumed when Cal.com names no expiry


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None  # a 3xx is an error: the secret goes to one host only


# No proxy for these calls, as the extension bypasses one for loopback.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)

plan_settings = plpy.prepare(
    "SELECT current_setting('cal_refresh.api_url') AS url,"
    " current_setting('cal_refresh.client_id') AS client_id,"
    " current_setting('cal_refresh.secret_key_file') AS secret_file")
plan_lock = plpy.prepare(
    f'SELECT "calRefreshToken", "calManagedUserId" FROM {TABLE}'
    ' WHERE "userUlid" = $1 FOR UPDATE', ["text"])
plan_due = plpy.prepare(
    f'SELECT "userUlid", "calRefreshToken", "calManagedUserId" FROM {TABLE}'
    ' WHERE "calAccessTokenExpiresAt" < now() + $1'
    ' ORDER BY "userUlid" LIMIT $2 FOR UPDATE SKIP LOCKED', ["interval", "int"])
plan_store = plpy.prepare(
    f'UPDATE {TABLE} SET "calAccessToken" = $2, "calRefreshToken" = $3,'
    ' "calAccessTokenExpiresAt" = to_timestamp($4 / 1000),'
    ' "calRefreshTokenExpiresAt" = coalesce(to_timestamp($5 / 1000), "calRefreshTokenExpiresAt"),'
    ' "updatedAt" = now() WHERE "userUlid" = $1',
    ["text", "text", "text", "float8", "float8"])


def config():
    """URL, client id and headers; the secret file is read on every call, as the
    extension checks its file on every call."""
    s = plpy.execute(plan_settings)[0]
    with open(s["secret_file"], encoding="utf-8") as f:
        secret = f.read().rstrip("\r\n")
    return {"url": s["url"].rstrip("/"), "client": urllib.parse.quote(s["client_id"], safe=""),
            "headers": {"Content-Type": "application/json", "x-cal-secret-key": secret,
                        "x-cal-client-id": s["client_id"]}}


def tokens_of(raw):
    """The new pair from a 200 body, or None when it is unusable."""
    try:
        data = json.loads(raw)["data"]
        access, refresh = data["accessToken"], data["refreshToken"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(access, str) or not isinstance(refresh, str):
        return None

    def ms(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return {"access": access, "refresh": refresh,
            "access_expires_ms": ms(data.get("accessTokenExpiresAt")),
            "refresh_expires_ms": ms(data.get("refreshTokenExpiresAt"))}


def call(cfg, path, body):
    """One endpoint: ("ok", tokens), ("fallback", code) when force refresh applies,
    or ("fail", code).  The extension's rule: fall back after 400, 404, 5xx, an
    unusable 200, or a timeout or reset once sent; not after 401/403, 429, or
    nothing sent."""
    request = urllib.request.Request(cfg["url"] + path, data=body, headers=cfg["headers"],
                                     method="POST")
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except urllib.error.URLError as e:
        if isinstance(e.reason, (ConnectionRefusedError, socket.gaierror)):
            return ("fail", "network_error")  # nothing was sent
        return ("fallback", "network_error")
    except (TimeoutError, ConnectionError):
        return ("fallback", "timeout")
    if status == 200:
        tokens = tokens_of(raw)
        return ("ok", tokens) if tokens else ("fallback", "bad_response")
    if status in (400, 404):
        return ("fallback", "calcom_rejected")
    if status >= 500:
        return ("fallback", "calcom_unavailable")
    return ("fail", "calcom_unavailable" if status == 429 else "calcom_rejected")


def refresh_pair(cfg, refresh_token, managed_user_id):
    """(success, method, tokens, error_code): refresh, else force refresh."""
    if refresh_token is not None:
        kind, value = call(cfg, f"/v2/oauth/{cfg['client']}/refresh",
                           json.dumps({"refreshToken": refresh_token}).encode())
        if kind == "ok":
            return (True, "refresh", value, None)
        if kind == "fail":
            return (False, None, None, value)
    if managed_user_id is None:
        return (False, None, None, "no_managed_user_id")
    kind, value = call(cfg, f"/v2/oauth-clients/{cfg['client']}/users/"
                            f"{int(managed_user_id)}/force-refresh", None)
    if kind == "ok":
        return (True, "force_refresh", value, None)
    return (False, None, None, value)


def store(ulid, t):
    expires = t["access_expires_ms"]
    if expires is None:
        expires = time.time() * 1000 + ACCESS_LIFETIME_MS
    plpy.execute(plan_store, [ulid, t["access"], t["refresh"], expires, t["refresh_expires_ms"]])


GD["cal_py"] = types.SimpleNamespace(config=config, refresh_pair=refresh_pair, store=store,
                                     plan_lock=plan_lock, plan_due=plan_due)
$py$;

-- cal_refresh_user_tokens by hand.
CREATE FUNCTION bench_py_refresh_user_tokens(user_ulid text,
	OUT success boolean, OUT method text, OUT access_token text, OUT error_code text)
LANGUAGE plpython3u AS $py$
if "cal_py" not in GD:
    plpy.execute("SELECT bench_py_init()")
lib = GD["cal_py"]
cfg = lib.config()
rows = plpy.execute(lib.plan_lock, [user_ulid])
if not rows:
    return (False, None, None, "user_not_found")
ok, method, tokens, code = lib.refresh_pair(cfg, rows[0]["calRefreshToken"],
                                            rows[0]["calManagedUserId"])
if ok:
    lib.store(user_ulid, tokens)
return (ok, method, tokens["access"] if ok else None, code)
$py$;

-- cal_refresh_expiring_tokens by hand: the due rows locked in one
-- statement, their HTTP calls in a pool of `concurrency` threads, each row
-- written (in this thread: plpy is not thread-safe) as its answer arrives.
CREATE FUNCTION bench_py_refresh_expiring_tokens(within interval DEFAULT '10 minutes',
	max_users int DEFAULT 1000, concurrency int DEFAULT 32)
RETURNS TABLE (user_ulid text, success boolean, method text, error_code text)
LANGUAGE plpython3u AS $py$
from concurrent.futures import ThreadPoolExecutor

if "cal_py" not in GD:
    plpy.execute("SELECT bench_py_init()")
lib = GD["cal_py"]
cfg = lib.config()
rows = list(plpy.execute(lib.plan_due, [within, max_users]))
out = []
with ThreadPoolExecutor(max_workers=concurrency) as pool:
    answers = pool.map(lambda r: lib.refresh_pair(cfg, r["calRefreshToken"],
                                                  r["calManagedUserId"]), rows)
    for row, (ok, method, tokens, code) in zip(rows, answers):
        if ok:
            lib.store(row["userUlid"], tokens)
        out.append((row["userUlid"], ok, method, code))
return out
$py$;
