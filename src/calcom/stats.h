/*-------------------------------------------------------------------------
 *
 * stats.h
 *		Cluster-wide counters of what cal_refresh asked of Cal.com and how
 *		it went, in shared memory (the cal_refresh_stats views).
 *
 *-------------------------------------------------------------------------
 */
#ifndef STATS_H
#define STATS_H

#include "datatype/timestamp.h"

#include "calcom_types.h"

/* One endpoint and outcome. */
typedef struct StatsRequests
{
	int64		requests;
	int64		total_us;
	int64		max_us;
} StatsRequests;

typedef struct StatsCounters
{
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
} StatsCounters;

/* in stats.c */
extern void stats_init(void);
extern bool stats_read(StatsCounters *copy);
extern bool stats_reset(TimestampTz reset_at);
extern void stats_count_request(CalEndpoint endpoint, CalOutcome outcome,
								int64 elapsed_us, bool retry, bool throttled);
extern void stats_count_slot_wait(int64 wait_us);
extern void stats_count_force_refresh(void);
extern void stats_count_stored(int refreshed, int recovered);
extern void stats_count_unjournaled(int pairs);
extern void stats_count_writer_start_failure(void);

#endif							/* STATS_H */
