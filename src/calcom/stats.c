/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Counters of Cal.com requests and their outcomes since the last
 *		reset, shared by every backend (cal_refresh_stats,
 *		cal_refresh_stats_info, cal_refresh_stats_reset()).
 *
 * One spinlock guards them all: a count is a handful of additions, taken
 * once per HTTP request, next to which the request itself is a thousand
 * times longer.  They live in shared memory only, as PostgreSQL's own
 * statistics of a server that stopped uncleanly: a restart starts them
 * afresh, and stats_reset says since when.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "stats.h"

typedef struct StatsShared
{
	slock_t		mutex;
	StatsCounters counters;
} StatsShared;

static StatsShared *stats_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(StatsShared)));
}

/* Everything zero but the lock; reset at now. */
static void
stats_zero(StatsShared *shared, TimestampTz now)
{
	memset(&shared->counters, 0, sizeof(shared->counters));
	shared->counters.stats_reset = now;
}

static void
stats_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats_shared = ShmemInitStruct("cal_refresh stats", sizeof(StatsShared),
								   &found);
	if (!found)
	{
		SpinLockInit(&stats_shared->mutex);
		stats_zero(stats_shared, GetCurrentTimestamp());
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init while preloading: asks for the shared memory. */
void
stats_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/*
 * There is somewhere to count (the library preloaded).  Whether to count
 * requests at all (cal_refresh.track_stats) is the callers' to say: their
 * configuration carries it.
 */
static inline bool
stats_counting(void)
{
	return stats_shared != NULL;
}

/* One HTTP request ended (an answer, a failure or a timeout). */
void
stats_count_request(CalEndpoint endpoint, CalOutcome outcome,
					int64 elapsed_us, bool retry, bool throttled)
{
	StatsRequests *cell;

	if (!stats_counting() || (int) endpoint >= CAL_ENDPOINT_COUNT ||
		(int) outcome >= CAL_OUTCOME_COUNT)
		return;
	elapsed_us = Max(elapsed_us, 0);
	cell = &stats_shared->counters.requests[endpoint][outcome];
	SpinLockAcquire(&stats_shared->mutex);
	cell->requests++;
	cell->total_us += elapsed_us;
	cell->max_us = Max(cell->max_us, elapsed_us);
	stats_shared->counters.retries += retry ? 1 : 0;
	stats_shared->counters.throttled += throttled ? 1 : 0;
	SpinLockRelease(&stats_shared->mutex);
}

/* A request waited this long for a slot of the cluster's budget. */
void
stats_count_slot_wait(int64 wait_us)
{
	if (!stats_counting() || wait_us <= 0)
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->counters.slot_wait_us += wait_us;
	SpinLockRelease(&stats_shared->mutex);
}

/* The policy fell back to force refresh for one user. */
void
stats_count_force_refresh(void)
{
	if (!stats_counting())
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->counters.force_refreshes++;
	SpinLockRelease(&stats_shared->mutex);
}

/*
 * New pairs stored for refreshed users, recovered of them from the journal
 * (pairs a caller's transaction had lost).
 */
void
stats_count_stored(int refreshed, int recovered)
{
	if (!stats_counting() || (refreshed == 0 && recovered == 0))
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->counters.refreshed_users += refreshed;
	stats_shared->counters.journal_recoveries += recovered;
	SpinLockRelease(&stats_shared->mutex);
}

/*
 * Pairs Cal.com issued that the journal could not take (they live only in
 * the caller's transaction).
 */
void
stats_count_unjournaled(int pairs)
{
	if (!stats_counting() || pairs <= 0)
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->counters.unjournaled += pairs;
	SpinLockRelease(&stats_shared->mutex);
}

/* A journal writer could not be started (no background worker slot). */
void
stats_count_writer_start_failure(void)
{
	if (!stats_counting())
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->counters.writer_failures++;
	SpinLockRelease(&stats_shared->mutex);
}

/*
 * Copies the counters into *copy; false when there are none (the library
 * was not loaded at server start).
 */
bool
stats_read(StatsCounters *copy)
{
	if (stats_shared == NULL)
		return false;
	SpinLockAcquire(&stats_shared->mutex);
	*copy = stats_shared->counters;
	SpinLockRelease(&stats_shared->mutex);
	return true;
}

/*
 * Zeroes every counter, the reset dated reset_at; false when there are
 * none.
 */
bool
stats_reset(TimestampTz reset_at)
{
	if (stats_shared == NULL)
		return false;
	SpinLockAcquire(&stats_shared->mutex);
	stats_zero(stats_shared, reset_at);
	SpinLockRelease(&stats_shared->mutex);
	return true;
}
