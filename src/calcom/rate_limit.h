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

/* in rate_limit.c */
extern void rate_limit_init(void);
extern int64 rate_limit_reserve(int per_minute, int64 deadline_us,
								int64 *earliest_us);
extern void rate_limit_release(int per_minute, int64 slot_us);
extern void rate_limit_feedback(int per_minute, bool throttled,
								int pause_ms, int remaining);
extern int64 rate_limit_now_us(void);

#endif							/* RATE_LIMIT_H */
