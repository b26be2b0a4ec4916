/*-------------------------------------------------------------------------
 *
 * rate_limit.h
 *		One request budget for the whole cluster: Cal.com limits requests
 *		per OAuth client, whichever session or job sends them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef RATE_LIMIT_H
#define RATE_LIMIT_H

/* Requests that may go back to back before spacing applies. */
#define RATE_LIMIT_BURST 2

/* From _PG_init while preloading: asks for the shared memory. */
extern void rate_limit_init(void);

/*
 * Reserves a slot for one request at per_minute requests a minute (0: no
 * limit).  Returns the microseconds to wait before sending it, or -1 when
 * that wait would pass deadline_us: then nothing is reserved and
 * *earliest_us says when the next slot comes.  Times are on
 * rate_limit_now_us()'s clock.
 */
extern int64 rate_limit_reserve(int per_minute, int64 deadline_us,
								int64 *earliest_us);

/*
 * Gives back a slot reserved for slot_us (rate_limit_reserve's now + its
 * wait) whose request will never be sent: a cancelled or failed call must
 * not keep the budget it booked ahead from everyone else.  The backlog
 * shrinks by one request; a slot whose time has passed is gone anyway.
 */
extern void rate_limit_release(int per_minute, int64 slot_us);

/*
 * What Cal.com said of its own limit: after a 429, every session pauses
 * for pause_ms (never more than a minute); when
 * X-RateLimit-Remaining-Default runs low, requests are spaced further
 * apart.  remaining is -1 when absent.
 */
extern void rate_limit_feedback(int per_minute, bool throttled,
								int pause_ms, int remaining);

/* Microseconds on the monotonic clock every backend shares. */
extern int64 rate_limit_now_us(void);

#endif							/* RATE_LIMIT_H */
