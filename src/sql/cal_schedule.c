/*-------------------------------------------------------------------------
 *
 * cal_schedule.c
 *		The SQL entry points of the scheduled refresh:
 *		cal_refresh_expiring_tokens(), the procedure
 *		cal_refresh_expiring_tokens_job() meant for pg_cron, and
 *		cal_refresh_status().
 *
 * A batch locks the rows due for a refresh with SKIP LOCKED and refreshes
 * them concurrently (refresh.c).  The procedure runs batches one after
 * the other, committing after each: a cancel or an error late in a run
 * keeps every batch before it.  It walks the table in the "C" order of
 * "userUlid", so each row is visited at most once per run, however often
 * it fails.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cal_refresh.h"
#include "failure_store.h"
#include "prune.h"
#include "token_store.h"

#define CAL_WITHIN_WHY "a longer window would refresh every token on every run"

/* Users one call locks and holds until its transaction ends. */
#define CAL_BATCH_MAX_USERS 10000

PG_FUNCTION_INFO_V1(cal_refresh_expiring_tokens);
PG_FUNCTION_INFO_V1(cal_refresh_expiring_tokens_job);
PG_FUNCTION_INFO_V1(cal_refresh_status);

/* A count of users: 22004 if NULL, 22023 outside 1..CAL_BATCH_MAX_USERS. */
static int
cal_users_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	int32		value;

	cal_arg_not_null(fcinfo, argno, name);
	value = PG_GETARG_INT32(argno);
	if (value < 1 || value > CAL_BATCH_MAX_USERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 1 and %d", name,
						CAL_BATCH_MAX_USERS),
				 errdetail("Every user of a batch stays locked until its "
						   "transaction ends.")));
	return value;
}

/*
 * A batch cannot try any user: the configuration or the table is at fault,
 * not a user, so it raises (a scheduled job then shows as failed) rather
 * than return a row per user.
 */
static void
cal_raise_batch_failure(CalError error_code, const char *error)
{
	ereport(ERROR,
			(errcode(cal_error_sqlstate(error_code, false)),
			 errmsg("cannot refresh expiring tokens: %s", error),
			 errdetail("error_code: %s", cal_error_name(error_code))));
}

/*
 * Settings for a batch, or a raise when the library was not preloaded; a
 * missing client id or secret comes back from refresh_expiring_tokens.
 */
static void
cal_batch_config(FunctionCallInfo fcinfo, const CalSettings *settings,
				 bool need_calcom, RefreshConfig *config)
{
	TokenResult result = {0};

	if (!cal_refresh_config(fcinfo, settings, need_calcom, config, &result))
		cal_raise_batch_failure(result.error_code, result.error);
}

/*
 * cal_refresh_expiring_tokens(within interval, max_users int)
 * returns setof cal_token_result: one transaction, one row per user.
 */
Datum
cal_refresh_expiring_tokens(PG_FUNCTION_ARGS)
{
	CalSettings settings;
	int64		within_us;
	int			max_users = cal_users_arg(fcinfo, 1, "max_users");
	TupleDesc	desc;
	Tuplestorestate *store;
	MemoryContext work_context;
	MemoryContext caller_context;
	RefreshConfig config;
	RefreshBatchResult batch;
	int			i;

	settings_snapshot(&settings);
	within_us = cal_token_window_arg(fcinfo, 0, "within", CAL_WITHIN_WHY,
									 settings.flow);
	PreventCommandIfReadOnly("cal_refresh_expiring_tokens()");
	InitMaterializedSRF(fcinfo, 0);
	store = ((ReturnSetInfo *) fcinfo->resultinfo)->setResult;
	desc = ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc;
	work_context = AllocSetContextCreate(CurrentMemoryContext,
										 "cal_refresh batch call",
										 ALLOCSET_DEFAULT_SIZES);
	caller_context = MemoryContextSwitchTo(work_context);

	cal_batch_config(fcinfo, &settings, true, &config);
	/* As a job's batch, it starts no user once job_max_runtime is over. */
	refresh_expiring_tokens(&config, GetCurrentTimestamp() + within_us, NULL,
							max_users, settings.job_max_runtime_ms, &batch);
	if (batch.error_code != CAL_ERROR_NONE)
		cal_raise_batch_failure(batch.error_code, batch.error);
	for (i = 0; i < batch.n_results; i++)
	{
		Datum		values[CAL_RESULT_COLUMNS];
		bool		nulls[CAL_RESULT_COLUMNS];

		cal_result_values(&batch.results[i], desc->natts, values, nulls);
		tuplestore_putvalues(store, desc, values, nulls);
	}

	MemoryContextSwitchTo(caller_context);
	MemoryContextDelete(work_context);
	return (Datum) 0;
}

/*
 * Each run first deletes the journal's entries no row needs any more (so
 * the journal holds at most about one entry per user refreshed since the
 * last run) and the failure records of users whose row is gone, and
 * commits that.
 */
static void
cal_prune(FunctionCallInfo fcinfo, const CalSettings *settings,
		  MemoryContext job_context)
{
	MemoryContext prune_context = AllocSetContextCreate(job_context,
														"cal_refresh pruning",
														ALLOCSET_DEFAULT_SIZES);
	RefreshConfig config;
	int			pruned;

	MemoryContextSwitchTo(prune_context);
	cal_batch_config(fcinfo, settings, true, &config);
	pruned = prune_journal(&config);
	if (pruned > 0)
		ereport(LOG,
				(errmsg("cal_refresh: job: %d journal entries pruned", pruned),
				 errdetail("Their rows hold those pairs or newer ones.")));
	pruned = prune_failures(&config);
	if (pruned > 0)
		ereport(LOG,
				(errmsg("cal_refresh: job: %d failure records pruned", pruned),
				 errdetail("Their users have no row in the table any more.")));
	MemoryContextSwitchTo(job_context);
	MemoryContextDelete(prune_context);
	SPI_commit();
	EnsurePortalSnapshotExists();
}

/* What the job's batches did, for its last LOG line. */
typedef struct JobTally
{
	int			batches;
	int			due;
	int			refreshed;
	int			forced;
	int			failed;
	int			not_started;
	const char *stopped_because;
} JobTally;

/* The job commits after each batch: only CALL, outside a transaction. */
static void
cal_job_require_own_transactions(FunctionCallInfo fcinfo)
{
	bool		nonatomic = fcinfo->context != NULL &&
		IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;

	/* Without its commits, a late error would lose every batch: refuse. */
	if (!nonatomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("cal_refresh_expiring_tokens_job() must be called "
						"with CALL outside a transaction block"),
				 errdetail("It commits after each batch."),
				 errhint("For one batch in a transaction of your own, use "
						 "cal_refresh_expiring_tokens().")));
	PreventCommandIfReadOnly("cal_refresh_expiring_tokens_job()");
}

/* One batch's LOG line, and its counts added to the tally. */
static void
cal_job_count_batch(const RefreshBatchResult *batch, TimestampTz started,
					JobTally *tally)
{
	tally->batches++;
	tally->due += batch->n_results;
	tally->refreshed += batch->refreshed;
	tally->forced += batch->forced;
	tally->failed += batch->failed;
	tally->not_started += batch->not_started;
	ereport(LOG,
			(errmsg("cal_refresh: job batch %d: %d due, %d refreshed, %d forced, %d failed in %ld ms",
					tally->batches, batch->n_results, batch->refreshed,
					batch->forced, batch->failed,
					TimestampDifferenceMilliseconds(started,
													GetCurrentTimestamp())),
			 batch->not_started > 0 ?
			 errdetail("%d not started: %s; they are due again next run.",
					   batch->not_started,
					   batch->calcom_failing != NULL ? "Cal.com is failing" :
					   "cal_refresh.job_max_runtime had passed") : 0));
	if (batch->calcom_failing != NULL)
	{
		/* No batch after this one would fare better: the run ends. */
		ereport(LOG,
				(errmsg("cal_refresh: Cal.com is failing (%s); the job stops "
						"this run", batch->calcom_failing),
				 errdetail("Users not tried are due again next run; none "
						   "of them is backed off.")));
		tally->stopped_because = "Cal.com is failing";
	}
}

/*
 * Runs one batch of up to batch_size users due within within_us, with
 * keys after *after_user, starting none after time_left_ms, in a memory
 * context of its own, and commits it.  Moves *after_user on (in
 * job_context) and tallies.  Returns whether another batch should follow.
 */
static bool
cal_job_run_batch(FunctionCallInfo fcinfo, const CalSettings *settings,
				  int64 within_us, int batch_size, long time_left_ms,
				  MemoryContext job_context, char **after_user,
				  JobTally *tally)
{
	MemoryContext batch_context = AllocSetContextCreate(job_context,
														"cal_refresh job batch",
														ALLOCSET_DEFAULT_SIZES);
	TimestampTz started = GetCurrentTimestamp();
	RefreshConfig config;
	RefreshBatchResult batch;
	bool		more;

	MemoryContextSwitchTo(batch_context);
	cal_batch_config(fcinfo, settings, true, &config);
	/* Within a batch too, no user starts once the time is up. */
	refresh_expiring_tokens(&config, started + within_us, *after_user,
							batch_size, (int) Max(time_left_ms, 0), &batch);
	if (batch.error_code != CAL_ERROR_NONE)
		cal_raise_batch_failure(batch.error_code, batch.error);
	cal_job_count_batch(&batch, started, tally);
	if (batch.n_results > 0 && *after_user != NULL)
		pfree(*after_user);
	if (batch.n_results > 0)
		*after_user = MemoryContextStrdup(job_context,
										  batch.results[batch.n_results - 1].user_ulid);
	more = batch.n_results == batch_size && batch.calcom_failing == NULL;

	MemoryContextSwitchTo(job_context);
	MemoryContextDelete(batch_context);
	SPI_commit();
	/* Reading a toasted value needs a snapshot; the commit took ours. */
	EnsurePortalSnapshotExists();
	return more;
}

/*
 * procedure cal_refresh_expiring_tokens_job(within interval, batch_size int)
 *
 * Prunes, then runs batches of cal_refresh_expiring_tokens, each
 * committed, walking the keys in "C" order; stops after a short batch
 * (nothing left), when Cal.com is failing, or, before a new batch, once
 * cal_refresh.job_max_runtime has passed.
 */
Datum
cal_refresh_expiring_tokens_job(PG_FUNCTION_ARGS)
{
	CalSettings settings;
	int64		within_us;
	int			batch_size = cal_users_arg(fcinfo, 1, "batch_size");
	TimestampTz started = GetCurrentTimestamp();
	MemoryContext job_context;
	char	   *after_user = NULL;
	JobTally	tally = {0, 0, 0, 0, 0, 0, "no due user is left"};

	settings_snapshot(&settings);
	within_us = cal_token_window_arg(fcinfo, 0, "within", CAL_WITHIN_WHY,
									 settings.flow);
	cal_job_require_own_transactions(fcinfo);
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	/* SPI's procedure context outlives the commits. */
	job_context = CurrentMemoryContext;

	cal_prune(fcinfo, &settings, job_context);
	for (;;)
	{
		long		time_left_ms = settings.job_max_runtime_ms -
			TimestampDifferenceMilliseconds(started, GetCurrentTimestamp());

		if (tally.batches > 0 && time_left_ms <= 0)
		{
			tally.stopped_because = "cal_refresh.job_max_runtime has passed";
			break;
		}
		if (!cal_job_run_batch(fcinfo, &settings, within_us, batch_size,
							   time_left_ms, job_context, &after_user, &tally))
			break;
	}

	ereport(LOG,
			(errmsg("cal_refresh: job done: %d batches, %d due, %d refreshed, %d forced, %d failed in %ld ms",
					tally.batches, tally.due, tally.refreshed, tally.forced,
					tally.failed,
					TimestampDifferenceMilliseconds(started,
													GetCurrentTimestamp())),
			 tally.not_started > 0 ?
			 errdetail("Stopped because %s; %d not started.",
					   tally.stopped_because, tally.not_started) :
			 errdetail("Stopped because %s.", tally.stopped_because)));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * cal_refresh_status() returns table (user_ulid, access_token_expires_at,
 * expires_in, last_error_code, last_error, last_failure_at, failures,
 * next_attempt_at): every user of the table, failing ones first.
 */
Datum
cal_refresh_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CalSettings settings;
	RefreshConfig config;
	Datum		failures[FAILURE_STORE_COLUMNS];
	char	   *problem = NULL;

	InitMaterializedSRF(fcinfo, 0);
	settings_snapshot(&settings);
	cal_batch_config(fcinfo, &settings, false, &config);
	failure_store_read_all(config.extension_schema, failures);
	if (token_store_status(config.table_name, failures, rsinfo->setResult,
						   &problem) !=
		TOKEN_STORE_OK)
		ereport(ERROR,
				(errcode(cal_error_sqlstate(CAL_ERROR_TABLE_INVALID, false)),
				 errmsg("cannot show the status of tokens: %s", problem),
				 errdetail("error_code: %s",
						   cal_error_name(CAL_ERROR_TABLE_INVALID))));
	return (Datum) 0;
}
