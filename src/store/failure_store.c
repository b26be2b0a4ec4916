/*-------------------------------------------------------------------------
 *
 * failure_store.c
 *		cal_refresh_failure: one row per user whose last refresh failed.
 *
 * Scheduled runs skip a user until its next_attempt_at: one minute after
 * the first failure, doubling with each further one up to six hours, so a
 * user that cannot be refreshed is not sent to Cal.com every few minutes.
 * Failures that are not the user's own (Cal.com down, say) are recorded
 * without that wait, and the doubling starts over after them.  A success
 * deletes the row.
 *
 * The table belongs to the extension and is closed to PUBLIC; the
 * statements here run as its owner (spi_pinned.c), so an application role
 * that may refresh a user needs no privilege on it.  They are prepared
 * once per session and again when the table is replaced.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "failure_store.h"
#include "spi_pinned.h"

#define FAILURE_TABLE "cal_refresh_failure"

/* Where the table is and the statements on it, valid for relid. */
typedef struct FailureTable
{
	Oid			relid;
	Oid			owner;
	SPIPlanPtr	record_plan;
	SPIPlanPtr	clear_plan;
	SPIPlanPtr	backed_off_plan;
	SPIPlanPtr	read_all_plan;
	SPIPlanPtr	users_plan;
} FailureTable;

static FailureTable failure_table;

static void
failure_store_prepare_all(const char *table)
{
	FailureTable *t = &failure_table;
	Oid			record_types[5] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	BOOLOID};
	Oid			text_array_type[1] = {TEXTARRAYOID};
	Oid			time_type[1] = {TIMESTAMPTZOID};

	/*
	 * The backoff doubles the previous one, so a failure that did not back
	 * off (the previous wait is zero) starts the doubling over at a minute.
	 */
	t->record_plan = spi_pinned_prepare_saved(psprintf(
		"INSERT INTO %s AS f (user_ulid, error_code, error, failures, "
		"last_failure_at, next_attempt_at) "
		"VALUES ($1, $2, $3, 1, $4, "
		"CASE WHEN $5 THEN $4 + interval '1 minute' ELSE $4 END) "
		"ON CONFLICT (user_ulid) DO UPDATE SET "
		"error_code = excluded.error_code, error = excluded.error, "
		"failures = f.failures + 1, last_failure_at = $4, "
		"next_attempt_at = CASE WHEN $5 THEN $4 + "
		"least(greatest((f.next_attempt_at - f.last_failure_at) * 2, "
		"interval '1 minute'), interval '6 hours') ELSE $4 END",
		table), 5, record_types, 0);
	t->clear_plan = spi_pinned_prepare_saved(psprintf(
		"DELETE FROM %s WHERE user_ulid = ANY ($1)", table), 1, text_array_type,
		CURSOR_OPT_GENERIC_PLAN);
	t->backed_off_plan = spi_pinned_prepare_saved(psprintf(
		"SELECT coalesce(array_agg(user_ulid), '{}') FROM %s "
		"WHERE next_attempt_at > $1", table), 1, time_type, 0);
	t->users_plan = spi_pinned_prepare_saved(psprintf(
		"SELECT coalesce(array_agg(user_ulid), '{}') FROM %s", table),
		0, NULL, 0);
	t->read_all_plan = spi_pinned_prepare_saved(psprintf(
		"SELECT coalesce(array_agg(user_ulid ORDER BY user_ulid), '{}'), "
		"coalesce(array_agg(error_code ORDER BY user_ulid), '{}'), "
		"coalesce(array_agg(error ORDER BY user_ulid), '{}'), "
		"coalesce(array_agg(failures ORDER BY user_ulid), '{}'), "
		"coalesce(array_agg(last_failure_at ORDER BY user_ulid), '{}'), "
		"coalesce(array_agg(next_attempt_at ORDER BY user_ulid), '{}') "
		"FROM %s", table), 0, NULL, 0);
}

/*
 * Finds the table in the extension's schema and starts an SPI session as
 * its owner.  Returns false, with no session, when there is no table.
 */
static bool
failure_store_begin(Oid schema, SpiPinned *session)
{
	FailureTable *t = &failure_table;
	Oid			relid = spi_pinned_begin_as_owner(schema, FAILURE_TABLE, t->relid,
												  &t->owner, session);

	if (!OidIsValid(relid))
		return false;
	if (relid != t->relid)
	{
		SPIPlanPtr *plans[] = {&t->record_plan, &t->clear_plan,
		&t->backed_off_plan, &t->read_all_plan, &t->users_plan};
		size_t		i;

		for (i = 0; i < lengthof(plans); i++)
		{
			if (*plans[i] != NULL)
				SPI_freeplan(*plans[i]);
			*plans[i] = NULL;
		}
		t->relid = InvalidOid;
		failure_store_prepare_all(quote_qualified_identifier(get_namespace_name(schema),
															 FAILURE_TABLE));
		t->relid = relid;
	}
	return true;
}

/* The table must be there for the calls that need it. */
static void
failure_store_begin_required(Oid schema, SpiPinned *session)
{
	if (!failure_store_begin(schema, session))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is missing",
						quote_qualified_identifier(get_namespace_name(schema),
												   FAILURE_TABLE)),
				 errhint("Run ALTER EXTENSION cal_refresh UPDATE.")));
}

/*
 * Records one more failure of the user, at now.  With back_off, the next
 * scheduled attempt waits twice as long as the last backoff (at least 1
 * minute, at most 6 hours); without, it may come at once.  Without the table (the
 * library is newer than the extension's objects) nothing is recorded.
 */
void
failure_store_record(Oid schema, const char *user_ulid, const char *error_code,
					 const char *error, bool back_off)
{
	SpiPinned	session;
	Datum		args[5];
	int			rc;

	if (!failure_store_begin(schema, &session))
		return;
	args[0] = CStringGetTextDatum(user_ulid);
	args[1] = CStringGetTextDatum(error_code);
	args[2] = CStringGetTextDatum(error);
	args[3] = TimestampTzGetDatum(GetCurrentTimestamp());
	args[4] = BoolGetDatum(back_off);
	rc = SPI_execute_plan(failure_table.record_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	spi_pinned_end(&session);
}

/* Forgets the failures of n users: they succeeded.  One statement. */
void
failure_store_clear(Oid schema, const char *const *user_ulids, int n)
{
	SpiPinned	session;
	Datum	   *ulids;
	Datum		args[1];
	int			rc;
	int			i;

	if (n == 0 || !failure_store_begin(schema, &session))
		return;
	ulids = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		ulids[i] = CStringGetTextDatum(user_ulids[i]);
	args[0] = PointerGetDatum(construct_array(ulids, n, TEXTOID, -1, false,
											  TYPALIGN_INT));
	rc = SPI_execute_plan(failure_table.clear_plan, args, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	spi_pinned_end(&session);
}

/* Runs a one-row aggregate statement and copies its arrays out of SPI. */
static void
failure_store_fetch_arrays(SPIPlanPtr plan, Datum *args, Datum *columns,
						   int ncolumns, MemoryContext caller_context)
{
	int			rc = SPI_execute_plan(plan, args, NULL, false, 1);
	int			i;

	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	for (i = 0; i < ncolumns; i++)
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, i + 1,
										  &isnull);
		MemoryContext spi_context;

		if (isnull)				/* coalesce() makes it impossible */
			elog(ERROR, "cal_refresh_failure aggregate returned NULL");
		spi_context = MemoryContextSwitchTo(caller_context);
		columns[i] = datumCopy(value, false, -1);
		MemoryContextSwitchTo(spi_context);
	}
}

/* The users whose next attempt is still to come, as text[] ('{}': none). */
Datum
failure_store_backed_off(Oid schema)
{
	MemoryContext caller_context = CurrentMemoryContext;
	SpiPinned	session;
	Datum		args[1];
	Datum		users;

	failure_store_begin_required(schema, &session);
	args[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	failure_store_fetch_arrays(failure_table.backed_off_plan, args, &users, 1,
							   caller_context);
	spi_pinned_end(&session);
	return users;
}

/*
 * Every record, column by column, as arrays of the same length: user_ulid
 * text[], error_code text[], error text[], failures int4[],
 * last_failure_at timestamptz[], next_attempt_at timestamptz[].
 */
void
failure_store_read_all(Oid schema, Datum columns[FAILURE_STORE_COLUMNS])
{
	MemoryContext caller_context = CurrentMemoryContext;
	SpiPinned	session;

	failure_store_begin_required(schema, &session);
	failure_store_fetch_arrays(failure_table.read_all_plan, NULL, columns,
							   FAILURE_STORE_COLUMNS, caller_context);
	spi_pinned_end(&session);
}

/* The users with a record (*n_users = 0 without the table). */
/*
 * The users with a record, in no particular order (none without the
 * table), for pruning those whose row is gone.
 */
char	  **
failure_store_users(Oid schema, int *n_users)
{
	MemoryContext caller_context = CurrentMemoryContext;
	SpiPinned	session;
	Datum		users;
	Datum	   *elements;
	char	  **user_ulids;
	int			i;

	*n_users = 0;
	if (!failure_store_begin(schema, &session))
		return NULL;
	failure_store_fetch_arrays(failure_table.users_plan, NULL, &users, 1,
							   caller_context);
	spi_pinned_end(&session);
	deconstruct_array(DatumGetArrayTypeP(users), TEXTOID, -1, false,
					  TYPALIGN_INT, &elements, NULL, n_users);
	user_ulids = palloc(sizeof(char *) * Max(*n_users, 1));
	for (i = 0; i < *n_users; i++)
		user_ulids[i] = TextDatumGetCString(elements[i]);
	return user_ulids;
}
