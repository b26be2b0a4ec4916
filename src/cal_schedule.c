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
cal_raise_batch_failure(const char *error_code, const char *error)
{
	ereport(ERROR,
			(errcode(cal_error_sqlstate(error_code, false)),
			 errmsg("cannot refresh expiring tokens: %s", error),
			 errdetail("error_code: %s", error_code)));
}

/*
 * Settings for a batch, or a raise when the library was not preloaded; a
 * missing client id or secret comes back from refresh_expiring_tokens.
 */
static void
cal_batch_config(FunctionCallInfo fcinfo, RefreshConfig *config)
{
	CalResult	result = {0};

	if (!cal_settings_to_config(fcinfo, config, true, &result))
		cal_raise_batch_failure(result.error_code, result.error);
}

/*
 * cal_refresh_expiring_tokens(within interval, max_users int)
 * returns setof cal_token_result: one transaction, one row per user.
 */
Datum
cal_refresh_expiring_tokens(PG_FUNCTION_ARGS)
{
	int64		within_us = cal_token_window_arg(fcinfo, 0, "within", CAL_WITHIN_WHY);
	int			max_users = cal_users_arg(fcinfo, 1, "max_users");
	TupleDesc	desc;
	Tuplestorestate *store;
	MemoryContext work_context;
	MemoryContext caller_context;
	RefreshConfig config;
	RefreshBatchResult batch;
	int			i;

	PreventCommandIfReadOnly("cal_refresh_expiring_tokens()");
	InitMaterializedSRF(fcinfo, 0);
	store = ((ReturnSetInfo *) fcinfo->resultinfo)->setResult;
	desc = ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc;
	work_context = AllocSetContextCreate(CurrentMemoryContext,
										 "cal_refresh batch call",
										 ALLOCSET_DEFAULT_SIZES);
	caller_context = MemoryContextSwitchTo(work_context);

	cal_batch_config(fcinfo, &config);
	/* As a job's batch, it starts no user once job_max_runtime is over. */
	refresh_expiring_tokens(&config, GetCurrentTimestamp() + within_us, NULL,
							max_users, cal_job_max_runtime(), &batch);
	if (batch.error_code != NULL)
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
cal_prune(FunctionCallInfo fcinfo, MemoryContext job_context)
{
	MemoryContext prune_context = AllocSetContextCreate(job_context,
														"cal_refresh pruning",
														ALLOCSET_DEFAULT_SIZES);
	RefreshConfig config;
	int			pruned;

	MemoryContextSwitchTo(prune_context);
	cal_batch_config(fcinfo, &config);
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

/*
 * procedure cal_refresh_expiring_tokens_job(within interval, batch_size int)
 *
 * Batches of cal_refresh_expiring_tokens, each committed, walking the keys
 * in "C" order; stops after a short batch (nothing left) or, before a new
 * batch, once cal_refresh.job_max_runtime has passed.
 */
Datum
cal_refresh_expiring_tokens_job(PG_FUNCTION_ARGS)
{
	int64		within_us = cal_token_window_arg(fcinfo, 0, "within", CAL_WITHIN_WHY);
	int			batch_size = cal_users_arg(fcinfo, 1, "batch_size");
	bool		nonatomic = fcinfo->context != NULL &&
		IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	TimestampTz started = GetCurrentTimestamp();
	MemoryContext job_context;
	char	   *after_user = NULL;
	const char *stopped_because = "no due user is left";
	bool		calcom_failing = false;
	int			n_batches = 0;
	int			due = 0;
	int			refreshed = 0;
	int			forced = 0;
	int			failed = 0;
	int			not_started = 0;

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

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	/* SPI's procedure context outlives the commits. */
	job_context = CurrentMemoryContext;

	cal_prune(fcinfo, job_context);

	for (;;)
	{
		MemoryContext batch_context;
		TimestampTz batch_started = GetCurrentTimestamp();
		long		time_left_ms = cal_job_max_runtime() -
			TimestampDifferenceMilliseconds(started, batch_started);
		RefreshConfig config;
		RefreshBatchResult batch;

		if (n_batches > 0 && time_left_ms <= 0)
		{
			stopped_because = "cal_refresh.job_max_runtime has passed";
			break;
		}
		batch_context = AllocSetContextCreate(job_context, "cal_refresh job batch",
											  ALLOCSET_DEFAULT_SIZES);
		MemoryContextSwitchTo(batch_context);

		cal_batch_config(fcinfo, &config);
		/* Within a batch too, no user starts once the time is up. */
		refresh_expiring_tokens(&config, batch_started + within_us, after_user,
								batch_size, (int) Max(time_left_ms, 0), &batch);
		if (batch.error_code != NULL)
			cal_raise_batch_failure(batch.error_code, batch.error);
		n_batches++;
		due += batch.n_results;
		refreshed += batch.refreshed;
		forced += batch.forced;
		failed += batch.failed;
		not_started += batch.not_started;
		ereport(LOG,
				(errmsg("cal_refresh: job batch %d: %d due, %d refreshed, %d forced, %d failed in %ld ms",
						n_batches, batch.n_results, batch.refreshed,
						batch.forced, batch.failed,
						TimestampDifferenceMilliseconds(batch_started,
														GetCurrentTimestamp())),
				 batch.not_started > 0 ?
				 errdetail("%d not started: %s; they are due again next run.",
						   batch.not_started,
						   batch.calcom_failing != NULL ? "Cal.com is failing" :
						   "cal_refresh.job_max_runtime had passed") : 0));
		if (batch.n_results > 0)
		{
			if (after_user != NULL)
				pfree(after_user);
			after_user = MemoryContextStrdup(job_context,
											 batch.results[batch.n_results - 1].user_ulid);
		}

		if (batch.calcom_failing != NULL)
		{
			/* No batch after this one would fare better: end the run. */
			ereport(LOG,
					(errmsg("cal_refresh: Cal.com is failing (%s); the job stops "
							"this run", batch.calcom_failing),
					 errdetail("Users not tried are due again next run; none "
							   "of them is backed off.")));
			stopped_because = "Cal.com is failing";
			calcom_failing = true;
		}

		MemoryContextSwitchTo(job_context);
		MemoryContextDelete(batch_context);
		SPI_commit();
		/* Reading a toasted value needs a snapshot; the commit took ours. */
		EnsurePortalSnapshotExists();
		if (batch.n_results < batch_size || calcom_failing)
			break;
	}

	ereport(LOG,
			(errmsg("cal_refresh: job done: %d batches, %d due, %d refreshed, %d forced, %d failed in %ld ms",
					n_batches, due, refreshed, forced, failed,
					TimestampDifferenceMilliseconds(started,
													GetCurrentTimestamp())),
			 not_started > 0 ?
			 errdetail("Stopped because %s; %d not started.", stopped_because,
					   not_started) :
			 errdetail("Stopped because %s.", stopped_because)));
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
	RefreshConfig config;
	CalResult	result = {0};
	Datum		failures[FAILURE_STORE_COLUMNS];
	char	   *problem = NULL;

	InitMaterializedSRF(fcinfo, 0);
	if (!cal_settings_to_config(fcinfo, &config, false, &result))
		cal_raise_batch_failure(result.error_code, result.error);
	failure_store_read_all(config.extension_schema, failures);
	if (token_store_status(config.table_name, failures, rsinfo->setResult,
						   &problem) !=
		TOKEN_STORE_OK)
		ereport(ERROR,
				(errcode(cal_error_sqlstate(CAL_ERR_TABLE_INVALID, false)),
				 errmsg("cannot show the status of tokens: %s", problem),
				 errdetail("error_code: %s", CAL_ERR_TABLE_INVALID)));
	return (Datum) 0;
}
