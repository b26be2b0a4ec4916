/*-------------------------------------------------------------------------
 *
 * rate_limit.c
 *		The cluster-wide request budget, in shared memory.
 *
 * Cal.com allows 500 requests a minute per OAuth client, shared by every
 * session and job of the cluster, so the budget lives in shared memory
 * (the library is preloaded).  It is a generic cell rate algorithm: one
 * "theoretical arrival time" advanced by 60/rate seconds per request, with
 * a burst of RATE_LIMIT_BURST.  A request that must wait reserves its slot
 * first and then sleeps, so waiters are served in order without holding
 * any lock while they sleep.
 *
 * The backlog is a number of requests, so when the rate changes (a reload,
 * or a session's own setting) what is booked ahead is rescaled to the new
 * interval: a minute booked at 1 a minute is a tenth of a second at 600.
 * Cal.com's pauses (a 429) are time, not requests, and are kept apart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "compat.h"
#include "rate_limit.h"

/* When Cal.com says fewer than this many requests remain, slow down. */
#define RATE_LIMIT_LOW_REMAINING 10

/*
 * No 429 pauses the cluster for longer, whatever the server said: Cal.com's
 * own block lasts a minute.
 */
#define RATE_LIMIT_PAUSE_MAX_US INT64CONST(60 * 1000 * 1000)

typedef struct RateLimitShared
{
	slock_t		mutex;
	int64		next_slot_us;	/* when the next request may go, burst aside */
	int64		interval_us;	/* the spacing next_slot_us was booked at */
	int64		paused_until_us;	/* no request before this (a 429) */
} RateLimitShared;

static RateLimitShared *rate_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Microseconds on the monotonic clock every backend shares. */
int64
rate_limit_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
rate_limit_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(RateLimitShared)));
}

static void
rate_limit_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rate_shared = ShmemInitStruct("cal_refresh rate limit",
								  sizeof(RateLimitShared), &found);
	if (!found)
	{
		SpinLockInit(&rate_shared->mutex);
		rate_shared->next_slot_us = 0;
		rate_shared->interval_us = 0;
		rate_shared->paused_until_us = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init while preloading: asks for the shared memory. */
void
rate_limit_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rate_limit_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = rate_limit_shmem_startup;
}

/*
 * Reserves a slot for one request at per_minute requests a minute (0: no
 * limit).  Returns the microseconds to wait before sending it, or -1 when
 * that wait would pass deadline_us: then nothing is reserved and
 * *earliest_us says when the next slot comes.  Times are on
 * rate_limit_now_us()'s clock.
 */
int64
rate_limit_reserve(int per_minute, int64 deadline_us, int64 *earliest_us)
{
	int64		interval_us;
	int64		now_us;
	int64		slot_us;

	*earliest_us = 0;
	if (per_minute <= 0 || rate_shared == NULL)
		return 0;
	interval_us = INT64CONST(60000000) / per_minute;
	now_us = rate_limit_now_us();

	SpinLockAcquire(&rate_shared->mutex);
	/* Requests booked ahead at another rate, spaced at this one. */
	if (rate_shared->interval_us != interval_us &&
		rate_shared->next_slot_us > now_us && rate_shared->interval_us > 0)
		rate_shared->next_slot_us = now_us +
			(int64) ((double) (rate_shared->next_slot_us - now_us) *
					 (double) interval_us /
					 (double) rate_shared->interval_us);
	rate_shared->interval_us = interval_us;
	slot_us = Max(rate_shared->next_slot_us, now_us);
	*earliest_us = Max(slot_us - (RATE_LIMIT_BURST - 1) * interval_us,
					   rate_shared->paused_until_us);
	if (*earliest_us > deadline_us)
	{
		SpinLockRelease(&rate_shared->mutex);
		return -1;
	}
	rate_shared->next_slot_us = Max(slot_us, *earliest_us) + interval_us;
	SpinLockRelease(&rate_shared->mutex);

	return Max(*earliest_us - now_us, 0);
}

/*
 * What Cal.com said of its own limit: after a 429, every session pauses
 * for pause_ms (never more than a minute); when
 * X-RateLimit-Remaining-Default runs low, requests are spaced further
 * apart.  remaining is -1 when absent.
 */
void
rate_limit_feedback(int per_minute, bool throttled, int pause_ms,
					int remaining)
{
	int64		now_us;
	int64		interval_us;

	if (per_minute <= 0 || rate_shared == NULL)
		return;
	now_us = rate_limit_now_us();
	interval_us = INT64CONST(60000000) / per_minute;
	if (throttled)
	{
		int64		until_us = now_us + Min(Max(pause_ms, 0) * INT64CONST(1000),
											RATE_LIMIT_PAUSE_MAX_US);

		SpinLockAcquire(&rate_shared->mutex);
		rate_shared->paused_until_us = Max(rate_shared->paused_until_us,
										   until_us);
		SpinLockRelease(&rate_shared->mutex);
	}
	else if (remaining >= 0 && remaining < RATE_LIMIT_LOW_REMAINING)
	{
		/* Few left: book as many requests' worth of spacing as are missing. */
		int64		until_us;

		SpinLockAcquire(&rate_shared->mutex);
		if (rate_shared->interval_us > 0)
			interval_us = rate_shared->interval_us;
		until_us = now_us + interval_us * (RATE_LIMIT_LOW_REMAINING - remaining);
		rate_shared->next_slot_us = Max(rate_shared->next_slot_us, until_us);
		rate_shared->interval_us = interval_us;
		SpinLockRelease(&rate_shared->mutex);
	}
}

/*
 * Gives back a slot reserved for slot_us (rate_limit_reserve's now + its
 * wait) whose request will never be sent: a cancelled or failed call must
 * not keep the budget it booked ahead from everyone else.  The backlog
 * shrinks by one request; a slot whose time has passed is gone anyway.
 */
void
rate_limit_release(int per_minute, int64 slot_us)
{
	int64		now_us;

	if (per_minute <= 0 || rate_shared == NULL)
		return;
	now_us = rate_limit_now_us();
	if (slot_us <= now_us)
		return;					/* its time has passed: nothing to give back */
	SpinLockAcquire(&rate_shared->mutex);
	if (rate_shared->next_slot_us > now_us)
		rate_shared->next_slot_us = Max(rate_shared->next_slot_us -
										rate_shared->interval_us, now_us);
	SpinLockRelease(&rate_shared->mutex);
}
