/*-------------------------------------------------------------------------
 *
 * journal_store.c
 *		cal_refresh_journal: one row per pair Cal.com issued.
 *
 * An entry records the table and user, the pair, and the SHA-256 of the
 * refresh token the row held when the pair was asked for: the token it
 * supersedes.  A row whose refresh token some entry supersedes is stale
 * (the transaction that stored the successor did not commit), and the
 * user's newest entry is the pair Cal.com considers current: refreshes of
 * a user are serialised by its row lock, so entries follow one chain.
 *
 * Entries are written by the journal writer (journal.c) in a transaction
 * of its own, and deleted by the transaction that stores the pair in the
 * row, so that a rollback keeps them.  Tokens always travel as parameters
 * of generic plans.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "journal_store.h"
#include "spi_pinned.h"

#define JOURNAL_TABLE "cal_refresh_journal"

typedef struct JournalTable
{
	Oid			relid;
	Oid			owner;
	SPIPlanPtr	insert_plan;
	SPIPlanPtr	find_plan;
	SPIPlanPtr	forget_plan;
} JournalTable;

static JournalTable journal_table;

static void
journal_store_prepare_all(const char *table)
{
	JournalTable *t = &journal_table;
	Oid			insert_types[7] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID,
	TIMESTAMPTZARRAYOID};
	Oid			find_types[3] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
	Oid			forget_types[2] = {TEXTOID, TEXTARRAYOID};

	t->insert_plan = spi_pinned_prepare_kept(psprintf(
		"INSERT INTO %s (table_name, user_ulid, spent_token_sha256, "
		"access_token, refresh_token, access_token_expires_at, "
		"refresh_token_expires_at) "
		"SELECT e.t, e.u, CASE WHEN e.s IS NOT NULL "
		"THEN sha256(convert_to(e.s, 'UTF8')) END, e.a, e.r, e.ae, e.re "
		"FROM unnest($1, $2, $3, $4, $5, $6, $7) AS e(t, u, s, a, r, ae, re)",
		table), 7, insert_types,
		CURSOR_OPT_GENERIC_PLAN);
	t->find_plan = spi_pinned_prepare_kept(psprintf(
		"SELECT u.i, j.access_token, j.refresh_token, "
		"j.access_token_expires_at, j.refresh_token_expires_at "
		"FROM unnest($2, $3) WITH ORDINALITY AS u(user_ulid, token, i) "
		"CROSS JOIN LATERAL (SELECT * FROM %s n "
		"WHERE n.table_name = $1 AND n.user_ulid = u.user_ulid "
		"ORDER BY n.id DESC LIMIT 1) j "
		"WHERE EXISTS (SELECT FROM %s s "
		"WHERE s.table_name = $1 AND s.user_ulid = u.user_ulid "
		"AND s.spent_token_sha256 IS NOT DISTINCT FROM "
		"sha256(convert_to(u.token, 'UTF8')))", table, table),
		3, find_types, CURSOR_OPT_GENERIC_PLAN);
	t->forget_plan = spi_pinned_prepare_kept(psprintf(
		"DELETE FROM %s WHERE table_name = $1 AND user_ulid = ANY ($2)",
		table), 2, forget_types, 0);
}

/*
 * Finds the table in the extension's schema and starts an SPI session as
 * its owner.  Returns false, with no session, when there is no table.
 */
static bool
journal_store_begin(Oid schema, SpiPinned *session)
{
	JournalTable *t = &journal_table;
	Oid			relid = spi_pinned_begin_as_owner(schema, JOURNAL_TABLE, t->relid,
												  &t->owner, session);

	if (!OidIsValid(relid))
		return false;
	if (relid != t->relid)
	{
		SPIPlanPtr *plans[] = {&t->insert_plan, &t->find_plan, &t->forget_plan};
		size_t		i;

		for (i = 0; i < lengthof(plans); i++)
		{
			if (*plans[i] != NULL)
				SPI_freeplan(*plans[i]);
			*plans[i] = NULL;
		}
		t->relid = InvalidOid;
		journal_store_prepare_all(quote_qualified_identifier(get_namespace_name(schema),
															 JOURNAL_TABLE));
		t->relid = relid;
	}
	return true;
}

/* A text[] of n strings, NULL ones as NULL elements. */
static Datum
journal_text_array(const char *const *strings, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = strings[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strings[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

/* A timestamptz[] of n values, those without has[i] as NULL. */
static Datum
journal_time_array(const TimestampTz *times, const bool *has, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = has != NULL && !has[i];
		elems[i] = TimestampTzGetDatum(times[i]);
	}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TIMESTAMPTZOID, sizeof(TimestampTz),
											  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* Wipes a text[] built here that held tokens, once its statement ran. */
static void
journal_wipe_array(Datum array)
{
	explicit_bzero(DatumGetPointer(array), VARSIZE(DatumGetPointer(array)));
}

bool
journal_store_insert(Oid schema, const JournalEntry *entries, int n)
{
	SpiPinned	session;
	const char **columns[5];
	TimestampTz *access = palloc(sizeof(TimestampTz) * Max(n, 1));
	TimestampTz *refresh = palloc(sizeof(TimestampTz) * Max(n, 1));
	bool	   *has_refresh = palloc(sizeof(bool) * Max(n, 1));
	Datum		args[7];
	int			rc;
	int			c;
	int			i;

	if (!journal_store_begin(schema, &session))
		return false;
	for (c = 0; c < 5; c++)
		columns[c] = palloc(sizeof(char *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		columns[0][i] = entries[i].table_name;
		columns[1][i] = entries[i].user_ulid;
		columns[2][i] = entries[i].spent_token;
		columns[3][i] = entries[i].access_token;
		columns[4][i] = entries[i].refresh_token;
		access[i] = entries[i].access_expires_at;
		refresh[i] = entries[i].refresh_expires_at;
		has_refresh[i] = entries[i].has_refresh_expiry;
	}
	for (c = 0; c < 5; c++)
		args[c] = journal_text_array(columns[c], n);
	args[5] = journal_time_array(access, NULL, n);
	args[6] = journal_time_array(refresh, has_refresh, n);
	rc = SPI_execute_plan(journal_table.insert_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	for (c = 2; c < 5; c++)
		journal_wipe_array(args[c]);
	spi_pinned_end(&session);
	return true;
}

void
journal_store_find(Oid schema, const char *table_name,
				   const char *const *users, const char *const *row_tokens,
				   int n, JournalPair *pairs)
{
	MemoryContext caller_context = CurrentMemoryContext;
	SpiPinned	session;
	Datum		args[3];
	int			rc;
	uint64		r;

	memset(pairs, 0, sizeof(JournalPair) * n);
	if (n == 0 || !journal_store_begin(schema, &session))
		return;
	args[0] = CStringGetTextDatum(table_name);
	args[1] = journal_text_array(users, n);
	args[2] = journal_text_array(row_tokens, n);
	/*
	 * The latest snapshot, not the transaction's: under REPEATABLE READ an
	 * entry another session's writer committed since is still to be seen.
	 */
	rc = SPI_execute_snapshot(journal_table.find_plan, args, NULL,
							  GetLatestSnapshot(), InvalidSnapshot, true,
							  false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		i = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull)) - 1;
		JournalPair *pair;
		MemoryContext spi_context;
		Datum		value;

		if (isnull || i < 0 || i >= n)
			continue;
		pair = &pairs[i];
		spi_context = MemoryContextSwitchTo(caller_context);
		pair->found = true;
		pair->access_token = TextDatumGetCString(SPI_getbinval(tuple, desc, 2, &isnull));
		pair->refresh_token = TextDatumGetCString(SPI_getbinval(tuple, desc, 3, &isnull));
		pair->access_expires_at =
			DatumGetTimestampTz(SPI_getbinval(tuple, desc, 4, &isnull));
		value = SPI_getbinval(tuple, desc, 5, &isnull);
		pair->has_refresh_expiry = !isnull;
		pair->refresh_expires_at = isnull ? 0 : DatumGetTimestampTz(value);
		MemoryContextSwitchTo(spi_context);
	}
	journal_wipe_array(args[2]);
	spi_pinned_end(&session);
}

void
journal_store_forget(Oid schema, const char *table_name,
					 const char *const *users, int n)
{
	SpiPinned	session;
	Datum		args[2];
	int			rc;

	if (n == 0 || !journal_store_begin(schema, &session))
		return;
	args[0] = CStringGetTextDatum(table_name);
	args[1] = journal_text_array(users, n);
	rc = SPI_execute_plan(journal_table.forget_plan, args, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	spi_pinned_end(&session);
}

bool
journal_store_exists(Oid schema)
{
	return OidIsValid(get_relname_relid(JOURNAL_TABLE, schema));
}
