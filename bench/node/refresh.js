#!/usr/bin/env node
// The app-side reference for bench/alternatives.sh: the job cal_refresh does,
// written as an application would write it, with the npm package pg and
// Node's built-in fetch.  Same reads and writes as the extension (lock the
// row, refresh, fall back to force refresh, update the row in the same
// transaction), same headers, same fallback rule.  Unlike the extension it
// neither retries nor keeps failure bookkeeping: nothing fails in a benchmark.
//
//   node refresh.js app-single N ULID       N refreshes of one user, one after another
//   node refresh.js app-batch N CONCURRENCY one batch of at most N due users
//   node refresh.js sql-single N ULID FUNC  N calls of SELECT ... FROM FUNC(ULID), so
//                                           that in-database functions are timed by
//                                           the same client
//   node refresh.js http N TOKEN            N bare refreshes, each with the token the
//                                           previous one returned (the round trip alone)
//   node refresh.js http-batch N CONCURRENCY PREFIX FIRST_ID
//                                           the batch's requests alone, with the tokens
//                                           PREFIX-FIRST_ID ..: what the server and the
//                                           machine allow, without any database
// Each mode first warms up for CAL_BENCH_WARMUP (2,000) calls, untimed.
//
// Prints "ok=<successes> ms=<elapsed>"; the connection to PostgreSQL is made
// before the clock starts.  The database comes from PGHOST, PGPORT, PGUSER and
// PGDATABASE; Cal.com from CAL_STANDIN_URL, CAL_CLIENT_ID and CAL_SECRET_FILE.
'use strict';

const fs = require('node:fs');
const { Client } = require('pg');

const TABLE = 'public."CalendarIntegration"';
const TIMEOUT_MS = 10000; // cal_refresh.timeout's default
const ACCESS_LIFETIME_MS = 60 * 60 * 1000; // assumed when Cal.com names no expiry
const WARMUP_CALLS = Number.parseInt(process.env.CAL_BENCH_WARMUP || '2000', 10);

const apiUrl = (process.env.CAL_STANDIN_URL || '').replace(/\/+$/, '');
const clientId = process.env.CAL_CLIENT_ID || '';
const secret = fs.readFileSync(process.env.CAL_SECRET_FILE, 'utf8').replace(/[\r\n]+$/, '');
const headers = {
  'Content-Type': 'application/json',
  'x-cal-secret-key': secret,
  // puts the call in Cal.com's per-client rate bucket (calcom-api.md)
  'x-cal-client-id': clientId,
};

// One POST; returns {status, body} or, when no answer came, {sent, error}.
async function post(path, body) {
  try {
    const res = await fetch(apiUrl + path, {
      method: 'POST', headers, body, redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    // Refused or unresolvable: the request never left, so the stored token is
    // still good.  Anything else (timeout, reset) leaves its fate unknown.
    const code = err.cause && err.cause.code;
    return { sent: !['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(code), error: err.name };
  }
}

// The new pair from a 200 body, or null when it is unusable.
function tokensOf(text) {
  let data;
  try {
    data = JSON.parse(text).data;
  } catch {
    return null;
  }
  if (!data || typeof data.accessToken !== 'string' || typeof data.refreshToken !== 'string') {
    return null;
  }
  const ms = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    accessToken: data.accessToken,
    refreshToken: data.refreshToken,
    accessTokenExpiresAt: ms(data.accessTokenExpiresAt) ?? Date.now() + ACCESS_LIFETIME_MS,
    refreshTokenExpiresAt: ms(data.refreshTokenExpiresAt),
  };
}

// One endpoint's outcome: {tokens}, or {fallback: true} when force refresh
// applies, or {errorCode} when it does not.  The rule is the extension's:
// fall back after 400, 404, 5xx, an unusable 200, or a timeout or reset once
// sent; not after 401/403 (configuration), 429 (wait), or nothing sent.
async function call(path, body) {
  const r = await post(path, body);
  if (r.status === undefined) {
    return r.sent ? { fallback: true, errorCode: 'network_error' } : { errorCode: 'network_error' };
  }
  if (r.status === 200) {
    const tokens = tokensOf(r.body);
    return tokens ? { tokens } : { fallback: true, errorCode: 'bad_response' };
  }
  if (r.status === 400 || r.status === 404) return { fallback: true, errorCode: 'calcom_rejected' };
  if (r.status >= 500) return { fallback: true, errorCode: 'calcom_unavailable' };
  return { errorCode: r.status === 429 ? 'calcom_unavailable' : 'calcom_rejected' };
}

// Refresh with the stored token; force refresh when that token is unusable.
async function refreshPair(row) {
  if (row.calRefreshToken !== null) {
    const r = await call(`/v2/oauth/${encodeURIComponent(clientId)}/refresh`,
      JSON.stringify({ refreshToken: row.calRefreshToken }));
    if (r.tokens) return { success: true, method: 'refresh', tokens: r.tokens };
    if (!r.fallback) return { success: false, errorCode: r.errorCode };
  }
  if (row.calManagedUserId === null) return { success: false, errorCode: 'no_managed_user_id' };
  const f = await call(`/v2/oauth-clients/${encodeURIComponent(clientId)}/users/` +
    `${row.calManagedUserId}/force-refresh`, undefined);
  if (f.tokens) return { success: true, method: 'force_refresh', tokens: f.tokens };
  return { success: false, errorCode: f.errorCode };
}

async function store(db, ulid, t) {
  await db.query(`UPDATE ${TABLE} SET "calAccessToken" = $2, "calRefreshToken" = $3,
      "calAccessTokenExpiresAt" = to_timestamp($4::float8 / 1000),
      "calRefreshTokenExpiresAt" = coalesce(to_timestamp($5::float8 / 1000), "calRefreshTokenExpiresAt"),
      "updatedAt" = now()
    WHERE "userUlid" = $1`,
  [ulid, t.accessToken, t.refreshToken, t.accessTokenExpiresAt, t.refreshTokenExpiresAt]);
}

// cal_refresh_user_tokens, app-side: the row stays locked from the read to
// the write, so two callers never spend the same refresh token.
async function refreshUserTokens(db, ulid) {
  await db.query('BEGIN');
  try {
    const { rows } = await db.query(`SELECT "calRefreshToken", "calManagedUserId"
      FROM ${TABLE} WHERE "userUlid" = $1 FOR UPDATE`, [ulid]);
    const result = rows.length ? await refreshPair(rows[0])
      : { success: false, errorCode: 'user_not_found' };
    if (result.success) await store(db, ulid, result.tokens);
    await db.query('COMMIT');
    return result;
  } catch (err) {
    await db.query('ROLLBACK');
    throw err;
  }
}

// cal_refresh_expiring_tokens, app-side: one transaction, the due rows locked
// (skipping rows another session holds), refreshed CONCURRENCY at a time.
async function refreshExpiringTokens(db, maxUsers, concurrency) {
  await db.query('BEGIN');
  try {
    const { rows } = await db.query(`SELECT "userUlid", "calRefreshToken", "calManagedUserId"
      FROM ${TABLE} WHERE "calAccessTokenExpiresAt" < now() + interval '10 minutes'
      ORDER BY "userUlid" LIMIT $1 FOR UPDATE SKIP LOCKED`, [maxUsers]);
    // One connection runs one statement at a time: writes queue up behind
    // each other while the chunk's other requests are still out.
    let writes = Promise.resolve();
    const results = [];
    for (let i = 0; i < rows.length; i += concurrency) {
      const chunk = rows.slice(i, i + concurrency);
      results.push(...await Promise.all(chunk.map(async (row) => {
        const r = await refreshPair(row);
        if (r.success) await (writes = writes.then(() => store(db, row.userUlid, r.tokens)));
        return r;
      })));
    }
    await db.query('COMMIT');
    return results;
  } catch (err) {
    await db.query('ROLLBACK');
    throw err;
  }
}

// The bare round trip: the same POST, no database; returns the next token.
async function bareRefresh(token) {
  const r = await call(`/v2/oauth/${encodeURIComponent(clientId)}/refresh`,
    JSON.stringify({ refreshToken: token }));
  return r.tokens ? r.tokens.refreshToken : null;
}

// The batch's HTTP calls alone, in the same chunks.
async function bareBatch(n, concurrency, prefix, firstId) {
  const tokens = Array.from({ length: n }, (_, i) => `${prefix}-${firstId + i}`);
  let ok = 0;
  for (let i = 0; i < n; i += concurrency) {
    const answers = await Promise.all(tokens.slice(i, i + concurrency).map((t) =>
      call(`/v2/oauth/${encodeURIComponent(clientId)}/refresh`,
        JSON.stringify({ refreshToken: t }))));
    ok += answers.filter((r) => r.tokens).length;
  }
  return ok;
}

// Untimed warm-up of a batch run's code paths, as in a long-lived server:
// refreshes with a token the server refuses (400, changes nothing), 100 at a
// time, and as many small queries.
async function warmUpBatch(db) {
  for (let i = 0; i < WARMUP_CALLS; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, WARMUP_CALLS - i) }, async () => {
      await post(`/v2/oauth/${encodeURIComponent(clientId)}/refresh`,
        JSON.stringify({ refreshToken: 'warm-up' }));
    }));
    for (let j = 0; db && j < 100; j++) await db.query('SELECT $1::text', ['warm-up']);
  }
}

// One step of a single-user mode: resolves to true on success.
function singleStep(mode, db, args) {
  if (mode === 'app-single') {
    return async () => (await refreshUserTokens(db, args[0])).success;
  }
  if (mode === 'sql-single') {
    if (!/^[a-z_][a-z0-9_]*$/.test(args[1] || '')) throw new Error('FUNC must be a plain name');
    const sql = `SELECT success FROM ${args[1]}($1)`;
    return async () => (await db.query(sql, [args[0]])).rows[0].success;
  }
  let token = args[0];
  return async () => (token = await bareRefresh(token)) !== null;
}

async function main() {
  const [mode, nText, ...args] = process.argv.slice(2);
  const n = Number.parseInt(nText, 10);
  const modes = ['app-single', 'sql-single', 'http', 'app-batch', 'http-batch'];
  if (!(n > 0) || !modes.includes(mode)) throw new Error('usage: see the head of refresh.js');
  const db = mode.startsWith('http') ? null : new Client();
  if (db) await db.connect();
  let ok = 0;
  let start;
  if (mode.endsWith('-batch')) {
    const concurrency = Number.parseInt(args[0], 10);
    await warmUpBatch(db);
    start = process.hrtime.bigint();
    if (mode === 'app-batch') {
      ok = (await refreshExpiringTokens(db, n, concurrency)).filter((r) => r.success).length;
    } else {
      ok = await bareBatch(n, concurrency, args[1], Number.parseInt(args[2], 10));
    }
  } else {
    // Untimed calls first: a long-lived application has its connections open,
    // its code compiled by the JIT (fetch takes a few thousand calls to reach
    // its pace here) and the function's session state (plans, interpreter)
    // ready.
    const step = singleStep(mode, db, args);
    for (let i = 0; i < WARMUP_CALLS; i++) {
      if (!await step()) throw new Error('a warm-up refresh failed');
    }
    start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) ok += (await step()) ? 1 : 0;
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (db) await db.end();
  console.log(`ok=${ok} ms=${ms.toFixed(1)}`);
}

main().catch((err) => {
  // err.message may quote a query, never a token: tokens travel as parameters
  console.error(`refresh.js: ${err.message}`);
  process.exit(1);
});
