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

#include "calcom_client.h"

/* cal_refresh.track_stats: counting on (the default) or off. */
extern bool stats_track;

extern void stats_init(void);

extern void stats_count_request(CalEndpoint endpoint, CalOutcome outcome,
								int64 elapsed_us, bool retry, bool throttled);
extern void stats_count_slot_wait(int64 wait_us);
extern void stats_count_force_refresh(void);
extern void stats_count_stored(int refreshed, int recovered);
extern void stats_count_unjournaled(int pairs);
extern void stats_count_writer_start_failure(void);

#endif							/* STATS_H */
