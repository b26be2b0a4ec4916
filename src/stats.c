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
#include "journal_buffer.h"
#include "stats.h"

/* One endpoint and outcome. */
typedef struct StatsRequests
{
	int64		requests;
	int64		total_us;
	int64		max_us;
} StatsRequests;

typedef struct StatsShared
{
	slock_t		mutex;
	TimestampTz stats_reset;
	StatsRequests requests[CAL_ENDPOINT_COUNT][CAL_OUTCOME_COUNT];
	int64		refreshed_users;	/* a new pair stored, however had */
	int64		force_refreshes;	/* users force refresh was asked for */
	int64		journal_recoveries; /* of them, pairs the journal gave */
	int64		throttled;		/* 429 answers */
	int64		retries;		/* requests that repeated an earlier one */
	int64		slot_wait_us;	/* waiting for the request budget */
	int64		unjournaled;	/* pairs the journal could not take */
	int64		writer_failures;	/* journal writers that could not start */
} StatsShared;

bool		stats_track = true;

static StatsShared *stats_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(cal_refresh_stats_requests);
PG_FUNCTION_INFO_V1(cal_refresh_stats_counts);
PG_FUNCTION_INFO_V1(cal_refresh_stats_reset);

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
	memset((char *) shared + offsetof(StatsShared, requests), 0,
		   sizeof(StatsShared) - offsetof(StatsShared, requests));
	shared->stats_reset = now;
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

/* Counting is on, and there is somewhere to count (the library preloaded). */
static inline bool
stats_counting(void)
{
	return stats_track && stats_shared != NULL;
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
	cell = &stats_shared->requests[endpoint][outcome];
	SpinLockAcquire(&stats_shared->mutex);
	cell->requests++;
	cell->total_us += elapsed_us;
	cell->max_us = Max(cell->max_us, elapsed_us);
	stats_shared->retries += retry ? 1 : 0;
	stats_shared->throttled += throttled ? 1 : 0;
	SpinLockRelease(&stats_shared->mutex);
}

/* A request waited this long for a slot of the cluster's budget. */
void
stats_count_slot_wait(int64 wait_us)
{
	if (!stats_counting() || wait_us <= 0)
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->slot_wait_us += wait_us;
	SpinLockRelease(&stats_shared->mutex);
}

/* The policy fell back to force refresh for one user. */
void
stats_count_force_refresh(void)
{
	if (!stats_counting())
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->force_refreshes++;
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
	stats_shared->refreshed_users += refreshed;
	stats_shared->journal_recoveries += recovered;
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
	stats_shared->unjournaled += pairs;
	SpinLockRelease(&stats_shared->mutex);
}

/* A journal writer could not be started (no background worker slot). */
void
stats_count_writer_start_failure(void)
{
	if (!stats_counting())
		return;
	SpinLockAcquire(&stats_shared->mutex);
	stats_shared->writer_failures++;
	SpinLockRelease(&stats_shared->mutex);
}

/* The views read shared memory: without the preloaded library, none. */
static void
stats_require_shared(void)
{
	if (stats_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cal_refresh statistics are not available"),
				 errdetail("The library was not loaded at server start."),
				 errhint("Add cal_refresh to shared_preload_libraries and restart the server.")));
}

static double
stats_ms(int64 us)
{
	return (double) us / 1000.0;
}

/*
 * cal_refresh_stats_requests() returns setof (endpoint text, outcome text,
 * requests bigint, total_ms, mean_ms, max_ms double precision): one row
 * per endpoint and outcome that had a request.
 */
Datum
cal_refresh_stats_requests(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StatsRequests copy[CAL_ENDPOINT_COUNT][CAL_OUTCOME_COUNT];
	int			e;
	int			o;

	stats_require_shared();
	InitMaterializedSRF(fcinfo, 0);
	SpinLockAcquire(&stats_shared->mutex);
	memcpy(copy, stats_shared->requests, sizeof(copy));
	SpinLockRelease(&stats_shared->mutex);

	for (e = 0; e < CAL_ENDPOINT_COUNT; e++)
		for (o = 0; o < CAL_OUTCOME_COUNT; o++)
		{
			const StatsRequests *cell = &copy[e][o];
			Datum		values[6];
			bool		nulls[6] = {false};

			if (cell->requests == 0)
				continue;
			values[0] = CStringGetTextDatum(calcom_endpoint_name((CalEndpoint) e));
			values[1] = CStringGetTextDatum(calcom_outcome_name((CalOutcome) o));
			values[2] = Int64GetDatum(cell->requests);
			values[3] = Float8GetDatum(stats_ms(cell->total_us));
			values[4] = Float8GetDatum(stats_ms(cell->total_us) /
									   (double) cell->requests);
			values[5] = Float8GetDatum(stats_ms(cell->max_us));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
								 values, nulls);
		}
	return (Datum) 0;
}

/*
 * cal_refresh_stats_counts() returns (stats_reset timestamptz,
 * refreshed_users, force_refreshes, journal_recoveries, throttled,
 * retries bigint, slot_wait_ms double precision) and, from 1.4 on,
 * (unjournaled_pairs, journal_writer_failures, journal_pending bigint):
 * as many as the installed objects' row type has.
 */
Datum
cal_refresh_stats_counts(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	StatsShared copy;
	TimestampTz oldest;
	Datum		values[10];
	bool		nulls[10] = {false};

	stats_require_shared();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE ||
		(tupdesc->natts != 7 && tupdesc->natts != 10))
		elog(ERROR, "return type must be a row type of 7 or 10 columns");
	SpinLockAcquire(&stats_shared->mutex);
	memcpy(&copy, stats_shared, sizeof(copy));
	SpinLockRelease(&stats_shared->mutex);

	values[0] = TimestampTzGetDatum(copy.stats_reset);
	values[1] = Int64GetDatum(copy.refreshed_users);
	values[2] = Int64GetDatum(copy.force_refreshes);
	values[3] = Int64GetDatum(copy.journal_recoveries);
	values[4] = Int64GetDatum(copy.throttled);
	values[5] = Int64GetDatum(copy.retries);
	values[6] = Float8GetDatum(stats_ms(copy.slot_wait_us));
	values[7] = Int64GetDatum(copy.unjournaled);
	values[8] = Int64GetDatum(copy.writer_failures);
	values[9] = Int64GetDatum(journal_buffer_pending(InvalidOid, &oldest));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values,
													  nulls)));
}

/* cal_refresh_stats_reset() returns the time of the reset. */
Datum
cal_refresh_stats_reset(PG_FUNCTION_ARGS)
{
	TimestampTz reset_at = GetCurrentTimestamp();

	stats_require_shared();
	SpinLockAcquire(&stats_shared->mutex);
	stats_zero(stats_shared, reset_at);
	SpinLockRelease(&stats_shared->mutex);
	PG_RETURN_TIMESTAMPTZ(reset_at);
}
