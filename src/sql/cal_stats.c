/*-------------------------------------------------------------------------
 *
 * cal_stats.c
 *		The SQL functions behind cal_refresh_stats, cal_refresh_stats_info
 *		and cal_refresh_stats_reset(), over the counters of stats.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "journal_buffer.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(cal_refresh_stats_requests);
PG_FUNCTION_INFO_V1(cal_refresh_stats_counts);
PG_FUNCTION_INFO_V1(cal_refresh_stats_reset);

/*
 * The counters, into *copy: the views read shared memory, and without the
 * preloaded library there is none.
 */
static void
stats_require(StatsCounters *copy)
{
	if (!stats_read(copy))
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
	StatsCounters counters;
	StatsRequests copy[CAL_ENDPOINT_COUNT][CAL_OUTCOME_COUNT];
	int			e;
	int			o;

	stats_require(&counters);
	InitMaterializedSRF(fcinfo, 0);
	memcpy(copy, counters.requests, sizeof(copy));

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
	StatsCounters copy;
	TimestampTz oldest;
	Datum		values[10];
	bool		nulls[10] = {false};

	stats_require(&copy);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE ||
		(tupdesc->natts != 7 && tupdesc->natts != 10))
		elog(ERROR, "return type must be a row type of 7 or 10 columns");

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
	StatsCounters unused;

	stats_require(&unused);
	stats_reset(reset_at);
	PG_RETURN_TIMESTAMPTZ(reset_at);
}
