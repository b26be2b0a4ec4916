/*-------------------------------------------------------------------------
 *
 * token_store.c
 *		Reading, locking and writing tokens in the application's table
 *		over SPI.
 *
 * app_table.c finds the table and prepares the statements; here they
 * run, with search_path pinned (spi_pinned.c) and with the caller's own
 * privileges on the table.  Tokens always travel as parameters, never in
 * the query text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "spi_pinned.h"
#include "token_store.h"
#include "app_table.h"

/* What replaces an error's detail that would show a row with its tokens. */
#define HIDDEN_ROW_DETAIL "The new row is not shown: it holds tokens."

/* Rows of cal_refresh_status() fetched from the cursor at a time. */
#define STATUS_FETCH_ROWS 1000

/* The copy of one selected row (see app_table.h for its columns). */
static void
token_store_copy_row(HeapTuple tuple, TupleDesc desc, TokenRow *row)
{
	Datum		value;
	bool		isnull;

	value = SPI_getbinval(tuple, desc, 1, &isnull);
	row->access_token = isnull ? NULL : TextDatumGetCString(value);
	value = SPI_getbinval(tuple, desc, 2, &isnull);
	row->refresh_token = isnull ? NULL : TextDatumGetCString(value);
	value = SPI_getbinval(tuple, desc, 3, &isnull);
	row->has_access_expiry = !isnull;
	row->access_expires_at = isnull ? 0 : DatumGetTimestampTz(value);
	value = SPI_getbinval(tuple, desc, 4, &isnull);
	row->has_managed_user_id = !isnull;
	row->managed_user_id = isnull ? 0 : DatumGetInt64(value);
}

/* Runs the read or lock statement and copies the row out of SPI. */
static TokenStoreStatus
token_store_fetch(SPIPlanPtr plan, const char *user_ulid,
				  MemoryContext caller_context, TokenRow *row)
{
	Datum		args[1];
	int			rc;
	MemoryContext spi_context;

	args[0] = CStringGetTextDatum(user_ulid);
	rc = SPI_execute_plan(plan, args, NULL, false, 2);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return TOKEN_STORE_NOT_FOUND;

	/* The row outlives SPI: copy it into the caller's memory. */
	spi_context = MemoryContextSwitchTo(caller_context);
	row->user_ulid = pstrdup(user_ulid);
	token_store_copy_row(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, row);
	MemoryContextSwitchTo(spi_context);
	return TOKEN_STORE_OK;
}

/* The waiting lock of token_store_lock_with_timeout, run in a subtransaction. */
typedef struct LockAttempt
{
	const AppTable *table;
	const char *user_ulid;
	int			lock_timeout_ms;
	MemoryContext caller_context;
	TokenRow   *row;
	TokenStoreStatus status;
} LockAttempt;

static void
token_store_lock_attempt(void *arg)
{
	LockAttempt *attempt = (LockAttempt *) arg;
	char		value[32];

	snprintf(value, sizeof(value), "%d", attempt->lock_timeout_ms);
	(void) set_config_option("lock_timeout", value, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	attempt->status = token_store_fetch(attempt->table->lock_plan,
										attempt->user_ulid,
										attempt->caller_context, attempt->row);
}

/*
 * Locks the user's row.  Uncontended, one SKIP LOCKED statement does it.
 * Otherwise (locked elsewhere, or absent) the waiting statement runs; when
 * our cal_refresh.lock_timeout is shorter than PostgreSQL's lock_timeout,
 * it runs in a subtransaction with lock_timeout lowered to ours, so that
 * our timeout can be caught and reported as TOKEN_STORE_BUSY; a shorter
 * lock_timeout of the session's own still raises 55P03, as asked.
 */
static TokenStoreStatus
token_store_lock_with_timeout(const AppTable *table, const char *user_ulid,
							  int lock_timeout_ms,
							  MemoryContext caller_context, TokenRow *row)
{
	LockAttempt attempt = {table, user_ulid, lock_timeout_ms, caller_context,
	row, TOKEN_STORE_OK};
	ErrorData  *error;
	TokenStoreStatus status;

	status = token_store_fetch(table->try_lock_plan, user_ulid,
							   caller_context, row);
	if (status == TOKEN_STORE_OK)
		return status;
	if (lock_timeout_ms <= 0 ||
		(LockTimeout != 0 && lock_timeout_ms >= LockTimeout))
		return token_store_fetch(table->lock_plan, user_ulid,
								 caller_context, row);

	error = spi_pinned_in_subtransaction(token_store_lock_attempt, &attempt,
										  true, CurrentMemoryContext);
	if (error == NULL)
		return attempt.status;
	if (error->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
		ReThrowError(error);
	FreeErrorData(error);
	return TOKEN_STORE_BUSY;
}

/*
 * Starts SPI (search_path pinned) and finds the table.  NULL, with
 * *problem set in the caller's memory, when it does not fit; the session
 * must be ended either way.
 *
 * Statements run with the caller's rights, as any DML would, but for one
 * case: a superuser's call (a pg_cron job, a DBA in psql) on a table whose
 * owner is not one runs as that owner in a security-restricted operation,
 * as VACUUM and REINDEX do (CVE-2022-1552).  Otherwise the owner's
 * triggers, defaults, CHECK and index-expression functions would run as
 * superuser.  A superuser passes every privilege check, so nothing the
 * caller could not do is done; row-level security then applies as it
 * would to the owner.
 */
static const AppTable *
token_store_begin(const char *table_name, SpiPinned *session, char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	const AppTable *table;

	spi_pinned_begin(session, InvalidOid);
	table = app_table_get(table_name, problem);
	if (table == NULL)
		*problem = MemoryContextStrdup(caller_context, *problem);
	else
		spi_pinned_run_as_reader(session, table->owner);
	return table;
}

/* The user's row, read plainly (lock_timeout_ms < 0) or locked. */
static TokenStoreStatus
token_store_get_row(const char *table_name, const char *user_ulid,
					int lock_timeout_ms, TokenRow *row, char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	TokenStoreStatus status;
	SpiPinned	session;
	const AppTable *table;

	memset(row, 0, sizeof(*row));
	table = token_store_begin(table_name, &session, problem);
	if (table == NULL)
		status = TOKEN_STORE_TABLE_INVALID;
	else if (lock_timeout_ms < 0)
		status = token_store_fetch(table->read_plan, user_ulid,
								   caller_context, row);
	else
		status = token_store_lock_with_timeout(table, user_ulid,
											   lock_timeout_ms,
											   caller_context, row);
	spi_pinned_end(&session);
	return status;
}

/* The user's row as it is now, without a lock. */
TokenStoreStatus
token_store_read_row(const char *table_name, const char *user_ulid,
					 TokenRow *row, char **problem)
{
	return token_store_get_row(table_name, user_ulid, -1, row, problem);
}

/*
 * SELECT ... FOR UPDATE of the user's row, waiting at most lock_timeout_ms
 * (0: no limit of ours) for another session's lock.
 */
TokenStoreStatus
token_store_lock_row(const char *table_name, const char *user_ulid,
					 int lock_timeout_ms, TokenRow *row, char **problem)
{
	return token_store_get_row(table_name, user_ulid, Max(lock_timeout_ms, 0),
							   row, problem);
}

/*
 * Runs the UPDATE.  Should the application's constraints or triggers
 * reject it, PostgreSQL's error would show the new row ("Failing row
 * contains ..."), tokens included: the error goes on without that detail.
 */
static int
token_store_execute_write(SPIPlanPtr plan, Datum *args, const char *nulls)
{
	MemoryContext context = CurrentMemoryContext;
	volatile int rc = 0;

	PG_TRY();
	{
		rc = SPI_execute_plan(plan, args, nulls, false, 0);
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		if (error->detail != NULL)
			error->detail = pstrdup(HIDDEN_ROW_DETAIL);
		error->detail_log = NULL;
		ReThrowError(error);
	}
	PG_END_TRY();
	return rc;
}

/* Writes one user's new tokens; NOT_FOUND when the row is gone. */
static TokenStoreStatus
token_store_write_row(const AppTable *table, const TokenUpdate *update)
{
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			rc;

	args[0] = CStringGetTextDatum(update->user_ulid);
	args[1] = CStringGetTextDatum(update->access_token);
	args[2] = CStringGetTextDatum(update->refresh_token);
	args[3] = TimestampTzGetDatum(update->access_expires_at);
	args[4] = TimestampTzGetDatum(update->refresh_expires_at);
	if (!update->has_refresh_expiry)
		nulls[4] = 'n';
	rc = token_store_execute_write(table->write_plan, args, nulls);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	/* The token copies SPI made die with its memory in SPI_finish. */
	explicit_bzero(VARDATA(DatumGetPointer(args[1])),
				   VARSIZE(DatumGetPointer(args[1])) - VARHDRSZ);
	explicit_bzero(VARDATA(DatumGetPointer(args[2])),
				   VARSIZE(DatumGetPointer(args[2])) - VARHDRSZ);
	return SPI_processed == 0 ? TOKEN_STORE_NOT_FOUND : TOKEN_STORE_OK;
}

/*
 * Some of a write_all's rows, written in a subtransaction.  With
 * checks_now, the constraints deferred to commit are checked at once
 * instead (SET CONSTRAINTS ALL IMMEDIATE), so that a row they refuse is
 * refused here and not at commit; checks_set says whether that step went
 * through (it also runs the checks the caller left pending).
 */
typedef struct WriteAttempt
{
	const AppTable *table;
	const TokenUpdate *updates;
	int			n;
	TokenStoreStatus *statuses;
	bool		checks_now;
	bool		checks_set;
} WriteAttempt;

static void
token_store_write_attempt(void *arg)
{
	WriteAttempt *attempt = (WriteAttempt *) arg;
	int			i;

	if (attempt->checks_now)
	{
		int			rc = SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0);

		if (rc != SPI_OK_UTILITY)
			elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
		attempt->checks_set = true;
	}
	for (i = 0; i < attempt->n; i++)
		attempt->statuses[i] = token_store_write_row(attempt->table,
													 &attempt->updates[i]);
}

/* How a write attempt ended. */
typedef enum WriteOutcome
{
	WRITE_DONE,					/* written (or, probing, would be) */
	WRITE_REFUSED,				/* the table refused a row */
	WRITE_UNCHECKED				/* probing was impossible: see below */
} WriteOutcome;

/*
 * Writes the rows in a subtransaction, or with probe only checks them,
 * deferred constraints included, and rolls back.  A cancel goes on; any
 * other error is the table refusing a row, and *error gets it, copied into
 * error_context.  A probe whose SET CONSTRAINTS failed (a check the caller
 * had left pending) is WRITE_UNCHECKED.
 */
static WriteOutcome
token_store_try_write(const AppTable *table, const TokenUpdate *updates,
					  int n, bool probe, TokenStoreStatus *statuses,
					  MemoryContext error_context, ErrorData **error)
{
	WriteAttempt attempt = {table, updates, n, statuses, probe, false};

	*error = spi_pinned_in_subtransaction(token_store_write_attempt, &attempt,
										   !probe, error_context);
	if (*error == NULL)
		return WRITE_DONE;
	if ((*error)->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(*error);
	if (probe && !attempt.checks_set)
	{
		FreeErrorData(*error);
		*error = NULL;
		return WRITE_UNCHECKED;
	}
	/* A deferred check raised at SET CONSTRAINTS may show the row too. */
	if ((*error)->detail != NULL)
		(*error)->detail = MemoryContextStrdup(error_context, HIDDEN_ROW_DETAIL);
	(*error)->detail_log = NULL;
	return WRITE_REFUSED;
}

/*
 * One user's pair for a person waiting: the table's error goes to them.
 * Checks deferred to commit are made now, by a probe first, so that a pair
 * the table would refuse at COMMIT is refused by this call instead.
 */
static void
token_store_write_one(const AppTable *table, const TokenUpdate *update,
					  TokenStoreStatus *status)
{
	ErrorData  *error;

	if (table->has_deferred_checks &&
		token_store_try_write(table, update, 1, true, status,
							  CurrentMemoryContext, &error) == WRITE_REFUSED)
		ReThrowError(error);
	*status = token_store_write_row(table, update);
}

/*
 * The rows of a batch, each refused row left out alone (REFUSED, with the
 * error's message in error_context).  One subtransaction when nothing is
 * refused, two when there are deferred checks (a probe, then the writes);
 * after a refusal, again row by row.
 */
static void
token_store_write_isolated(const AppTable *table,
						   const TokenUpdate *updates, int n,
						   TokenStoreStatus *statuses, char **problems,
						   MemoryContext error_context)
{
	bool		probe = table->has_deferred_checks;
	ErrorData  *error;
	WriteOutcome outcome = WRITE_DONE;
	int			i;

	if (probe)
	{
		outcome = token_store_try_write(table, updates, n, true, statuses,
										error_context, &error);
		if (outcome == WRITE_UNCHECKED)
			probe = false;
	}
	if (outcome != WRITE_REFUSED)
		outcome = token_store_try_write(table, updates, n, false, statuses,
										error_context, &error);
	if (outcome == WRITE_DONE)
		return;

	/* Something was refused, and nothing stored: again, row by row. */
	for (i = 0; i < n; i++)
	{
		if (probe)
			outcome = token_store_try_write(table, &updates[i], 1, true,
											&statuses[i], error_context,
											&error);
		if (!probe || outcome != WRITE_REFUSED)
			outcome = token_store_try_write(table, &updates[i], 1, false,
											&statuses[i], error_context,
											&error);
		if (outcome == WRITE_REFUSED)
		{
			statuses[i] = TOKEN_STORE_REFUSED;
			problems[i] = error->message;
		}
	}
}

/*
 * Writes new tokens to n users' rows, taking their row locks if not held;
 * statuses[i] says how each went, problems[i] why not (TABLE_INVALID,
 * REFUSED).  Without isolate, an error the table raises goes to the
 * caller.  With it, the rows are written in one subtransaction; should the
 * table refuse one (a trigger, a constraint, a row-level security policy),
 * they are written again one by one and only the rows refused are left
 * out, as REFUSED with the error's message (never its detail, which would
 * show the row).  A cancel is never caught.
 */
void
token_store_write_all(const char *table_name, const TokenUpdate *updates,
					  int n, bool isolate, TokenStoreStatus *statuses,
					  char **problems)
{
	MemoryContext caller_context = CurrentMemoryContext;
	SpiPinned	session;
	const AppTable *table;
	char	   *problem = NULL;
	int			i;

	memset(problems, 0, sizeof(char *) * n);
	table = token_store_begin(table_name, &session, &problem);
	if (table == NULL)
	{
		for (i = 0; i < n; i++)
		{
			statuses[i] = TOKEN_STORE_TABLE_INVALID;
			problems[i] = problem;
		}
	}
	else if (isolate)
		token_store_write_isolated(table, updates, n, statuses, problems,
								   caller_context);
	else
		for (i = 0; i < n; i++)
			token_store_write_one(table, &updates[i], &statuses[i]);
	spi_pinned_end(&session);
}

/*
 * Locks up to max_rows rows whose access token expires before
 * expiring_before (or has no expiry), with keys after after_user (NULL:
 * from the start) in "C" collation order, skipping the users of the text[]
 * skip_users and every row another session has locked.  *rows gets them
 * in key order.
 */
TokenStoreStatus
token_store_lock_due(const char *table_name, TimestampTz expiring_before,
					 const char *after_user, Datum skip_users, int max_rows,
					 TokenRow **rows, int *n_rows, char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	TokenStoreStatus status = TOKEN_STORE_OK;
	SpiPinned	session;
	const AppTable *table;

	*rows = NULL;
	*n_rows = 0;
	table = token_store_begin(table_name, &session, problem);
	if (table == NULL)
		status = TOKEN_STORE_TABLE_INVALID;
	else
	{
		Datum		args[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		int			rc;
		uint64		i;
		MemoryContext spi_context;

		args[0] = TimestampTzGetDatum(expiring_before);
		args[1] = after_user != NULL ? CStringGetTextDatum(after_user) : (Datum) 0;
		if (after_user == NULL)
			nulls[1] = 'n';
		args[2] = skip_users;
		args[3] = Int64GetDatum(max_rows);
		rc = SPI_execute_plan(table->due_plan, args, nulls, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s",
				 SPI_result_code_string(rc));

		/* The rows outlive SPI: copy them into the caller's memory. */
		spi_context = MemoryContextSwitchTo(caller_context);
		*rows = palloc0(sizeof(TokenRow) * Max(SPI_processed, 1));
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[i];
			TokenRow   *row = &(*rows)[*n_rows];
			bool		isnull;
			Datum		key = SPI_getbinval(tuple, SPI_tuptable->tupdesc, 5,
											&isnull);

			/* The statement takes no NULL key; a row without one is nobody. */
			if (isnull)
				continue;
			token_store_copy_row(tuple, SPI_tuptable->tupdesc, row);
			row->user_ulid = TextDatumGetCString(key);
			(*n_rows)++;
		}
		MemoryContextSwitchTo(spi_context);
	}
	spi_pinned_end(&session);
	return status;
}

/*
 * Puts a cal_refresh_status() row for every user into store, joined with
 * failure_columns (the arrays of failure_store_read_all).
 */
TokenStoreStatus
token_store_status(const char *table_name, const Datum *failure_columns,
				   Tuplestorestate *store, char **problem)
{
	TokenStoreStatus status = TOKEN_STORE_OK;
	SpiPinned	session;
	const AppTable *table;

	table = token_store_begin(table_name, &session, problem);
	if (table == NULL)
		status = TOKEN_STORE_TABLE_INVALID;
	else
	{
		Portal		cursor;

		/* A cursor, so that a big table is not held in SPI memory twice. */
		cursor = SPI_cursor_open(NULL, table->status_plan,
								 (Datum *) failure_columns, NULL, true);
		for (;;)
		{
			uint64		i;

			SPI_cursor_fetch(cursor, true, STATUS_FETCH_ROWS);
			if (SPI_processed == 0)
				break;
			for (i = 0; i < SPI_processed; i++)
				tuplestore_puttuple(store, SPI_tuptable->vals[i]);
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(cursor);
	}
	spi_pinned_end(&session);
	return status;
}

/* The count of token_store_count_unusable, run in a subtransaction. */
typedef struct CountAttempt
{
	const AppTable *table;
	bool		force_refresh;
	TokenRowCounts *counts;
} CountAttempt;

static void
token_store_count_attempt(void *arg)
{
	CountAttempt *attempt = (CountAttempt *) arg;
	char	   *sql = app_table_count_sql(attempt->table,
												attempt->force_refresh);
	int64	   *fields[6];
	int			rc;
	int			i;

	fields[0] = &attempt->counts->rows;
	fields[1] = &attempt->counts->no_key;
	fields[2] = &attempt->counts->no_tokens;
	fields[3] = &attempt->counts->null_expiry;
	fields[4] = &attempt->counts->infinite_expiry;
	fields[5] = &attempt->counts->absurd_expiry;
	rc = SPI_execute(sql, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	for (i = 0; i < (int) lengthof(fields); i++)
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, i + 1,
										  &isnull);

		*fields[i] = isnull ? 0 : DatumGetInt64(value);
	}
	pfree(sql);
}

/*
 * Counts the rows of the table (those the caller may see) that no refresh
 * can serve, for cal_refresh_check(); with force_refresh, a row without a
 * refresh token but with a managed user id can be served.  The table's row-level security
 * policies may raise: such an error is caught in a subtransaction and its
 * message (never its detail) comes back in *problem, as REFUSED; a cancel
 * is never caught.  TABLE_INVALID when the table does not fit.
 */
TokenStoreStatus
token_store_count_unusable(const char *table_name, bool force_refresh,
						   TokenRowCounts *counts, char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	TokenStoreStatus status = TOKEN_STORE_OK;
	SpiPinned	session;
	const AppTable *table;

	memset(counts, 0, sizeof(*counts));
	table = token_store_begin(table_name, &session, problem);
	if (table == NULL)
		status = TOKEN_STORE_TABLE_INVALID;
	else
	{
		CountAttempt attempt = {table, force_refresh, counts};
		ErrorData  *error;

		error = spi_pinned_in_subtransaction(token_store_count_attempt,
											  &attempt, false, caller_context);
		if (error != NULL)
		{
			if (error->sqlerrcode == ERRCODE_QUERY_CANCELED)
				ReThrowError(error);
			*problem = MemoryContextStrdup(caller_context, error->message);
			FreeErrorData(error);
			status = TOKEN_STORE_REFUSED;
		}
	}
	spi_pinned_end(&session);
	return status;
}
