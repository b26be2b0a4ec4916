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
 * Entries are written by the journal writer (journal_writer.c) in a
 * transaction of its own, and deleted by the transaction that stores the
 * pair in the row, so that a rollback keeps them.  Tokens always travel as
 * parameters of generic plans.  The table is used only as a member of the
 * extension (spi_pinned_extension_table).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "journal_store.h"
#include "spi_pinned.h"

#define JOURNAL_TABLE "cal_refresh_journal"

/* Its columns, as the 1.2 script creates them (checked on each lookup). */
#define JOURNAL_ATT_ID 1
#define JOURNAL_ATT_TABLE_NAME 2
#define JOURNAL_ATT_USER_ULID 3
#define JOURNAL_ATT_SPENT 4
#define JOURNAL_ATT_ACCESS_TOKEN 5
#define JOURNAL_ATT_REFRESH_TOKEN 6
#define JOURNAL_ATT_ACCESS_EXPIRY 7
#define JOURNAL_ATT_REFRESH_EXPIRY 8
#define JOURNAL_ATT_ISSUED_AT 9

static const struct
{
	const char *name;
	Oid			type;
	AttrNumber	attnum;
}			journal_columns[] =
{
	{"id", INT8OID, JOURNAL_ATT_ID},
	{"table_name", TEXTOID, JOURNAL_ATT_TABLE_NAME},
	{"user_ulid", TEXTOID, JOURNAL_ATT_USER_ULID},
	{"spent_token_sha256", BYTEAOID, JOURNAL_ATT_SPENT},
	{"access_token", TEXTOID, JOURNAL_ATT_ACCESS_TOKEN},
	{"refresh_token", TEXTOID, JOURNAL_ATT_REFRESH_TOKEN},
	{"access_token_expires_at", TIMESTAMPTZOID, JOURNAL_ATT_ACCESS_EXPIRY},
	{"refresh_token_expires_at", TIMESTAMPTZOID, JOURNAL_ATT_REFRESH_EXPIRY},
	{"issued_at", TIMESTAMPTZOID, JOURNAL_ATT_ISSUED_AT},
};

/* Does the table have the columns read directly, where expected? */
static bool
journal_store_layout_ok(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	size_t		i;

	for (i = 0; i < lengthof(journal_columns); i++)
	{
		Form_pg_attribute att;

		if (journal_columns[i].attnum > desc->natts)
			return false;
		att = TupleDescAttr(desc, journal_columns[i].attnum - 1);
		if (att->attisdropped || att->atttypid != journal_columns[i].type ||
			strcmp(NameStr(att->attname), journal_columns[i].name) != 0)
			return false;
	}
	return true;
}

typedef struct JournalTable
{
	Oid			relid;
	Oid			owner;
	SPIPlanPtr	insert_plan;
	SPIPlanPtr	forget_plan;
} JournalTable;

static JournalTable journal_table;

static void
journal_store_prepare_all(const char *table)
{
	JournalTable *t = &journal_table;
	Oid			insert_types[7] = {TEXTARRAYOID, TEXTARRAYOID, BYTEAARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID,
	TIMESTAMPTZARRAYOID};
	Oid			forget_types[2] = {TEXTOID, TEXTARRAYOID};

	t->insert_plan = spi_pinned_prepare_saved(psprintf(
		"INSERT INTO %s (table_name, user_ulid, spent_token_sha256, "
		"access_token, refresh_token, access_token_expires_at, "
		"refresh_token_expires_at) "
		"SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7)",
		table), 7, insert_types,
		CURSOR_OPT_GENERIC_PLAN);
	t->forget_plan = spi_pinned_prepare_saved(psprintf(
		"DELETE FROM %s WHERE table_name = $1 AND user_ulid = ANY ($2)",
		table), 2, forget_types, CURSOR_OPT_GENERIC_PLAN);
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
		SPIPlanPtr *plans[] = {&t->insert_plan, &t->forget_plan};
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

/* An array of elemtype of the n elems, NULL where nulls[i]. */
static Datum
journal_array(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval,
											  typalign));
}

/* A text[] of n strings, NULL ones as NULL elements. */
static Datum
journal_text_array(const char *const *strings, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = strings[i] == NULL;
		elems[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strings[i]);
	}
	return journal_array(elems, nulls, n, TEXTOID);
}

/* A timestamptz[] of n values, those without has[i] as NULL. */
static Datum
journal_time_array(const TimestampTz *times, const bool *has, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = has != NULL && !has[i];
		elems[i] = TimestampTzGetDatum(times[i]);
	}
	return journal_array(elems, nulls, n, TIMESTAMPTZOID);
}

/* A bytea[] of n SHA-256 digests, those without has[i] as NULL. */
static Datum
journal_sha256_array(const uint8 *digests, const bool *has, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		bytea	   *digest = palloc(VARHDRSZ + JOURNAL_DIGEST_LEN);

		SET_VARSIZE(digest, VARHDRSZ + JOURNAL_DIGEST_LEN);
		memcpy(VARDATA(digest), digests + i * JOURNAL_DIGEST_LEN,
			   JOURNAL_DIGEST_LEN);
		nulls[i] = !has[i];
		elems[i] = PointerGetDatum(digest);
	}
	return journal_array(elems, nulls, n, BYTEAOID);
}

/* Wipes a text[] built here that held tokens, once its statement ran. */
static void
journal_wipe_array(Datum array)
{
	explicit_bzero(DatumGetPointer(array), VARSIZE(DatumGetPointer(array)));
}

/*
 * Inserts the entries in one statement, in the current transaction.
 * Returns false when the extension has no journal.
 */
bool
journal_store_insert(Oid schema, const JournalEntry *entries, int n)
{
	SpiPinned	session;
	const char **tables = palloc(sizeof(char *) * Max(n, 1));
	const char **users = palloc(sizeof(char *) * Max(n, 1));
	const char **access_tokens = palloc(sizeof(char *) * Max(n, 1));
	const char **refresh_tokens = palloc(sizeof(char *) * Max(n, 1));
	uint8	   *spent = palloc(JOURNAL_DIGEST_LEN * Max(n, 1));
	bool	   *has_spent = palloc(sizeof(bool) * Max(n, 1));
	TimestampTz *access = palloc(sizeof(TimestampTz) * Max(n, 1));
	TimestampTz *refresh = palloc(sizeof(TimestampTz) * Max(n, 1));
	bool	   *has_refresh = palloc(sizeof(bool) * Max(n, 1));
	Datum		args[7];
	int			rc;
	int			i;

	if (!journal_store_begin(schema, &session))
		return false;
	for (i = 0; i < n; i++)
	{
		tables[i] = entries[i].table_name;
		users[i] = entries[i].user_ulid;
		memcpy(spent + i * JOURNAL_DIGEST_LEN, entries[i].spent_sha256,
			   JOURNAL_DIGEST_LEN);
		has_spent[i] = entries[i].has_spent;
		access_tokens[i] = entries[i].access_token;
		refresh_tokens[i] = entries[i].refresh_token;
		access[i] = entries[i].access_expires_at;
		refresh[i] = entries[i].refresh_expires_at;
		has_refresh[i] = entries[i].has_refresh_expiry;
	}
	args[0] = journal_text_array(tables, n);
	args[1] = journal_text_array(users, n);
	args[2] = journal_sha256_array(spent, has_spent, n);
	args[3] = journal_text_array(access_tokens, n);
	args[4] = journal_text_array(refresh_tokens, n);
	args[5] = journal_time_array(access, NULL, n);
	args[6] = journal_time_array(refresh, has_refresh, n);
	rc = SPI_execute_plan(journal_table.insert_plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	journal_wipe_array(args[3]);
	journal_wipe_array(args[4]);
	spi_pinned_end(&session);
	return true;
}

static bool
journal_store_is_btree(Oid indexid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(indexid));
	bool		btree;

	if (!HeapTupleIsValid(tuple))
		return false;
	btree = ((Form_pg_class) GETSTRUCT(tuple))->relam == BTREE_AM_OID;
	ReleaseSysCache(tuple);
	return btree;
}

/*
 * The index on (table_name, user_ulid): the lookup probes it directly, the
 * cheapest way to ask for a user's few entries.  Found once, and again when
 * the table's index list no longer holds it (REINDEX CONCURRENTLY, a drop
 * and re-create): a valid, ready, whole btree index only.
 */
static Oid
journal_store_user_index(Relation rel)
{
	static Oid	known_relid = InvalidOid;
	static Oid	known_index = InvalidOid;
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	if (RelationGetRelid(rel) == known_relid &&
		list_member_oid(indexes, known_index))
	{
		list_free(indexes);
		return known_index;
	}
	known_relid = InvalidOid;
	foreach(lc, indexes)
	{
		HeapTuple	tuple = SearchSysCache1(INDEXRELID,
											ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;
		bool		fits;

		if (!HeapTupleIsValid(tuple))
			continue;
		index = (Form_pg_index) GETSTRUCT(tuple);
		fits = index->indisvalid && index->indisready && index->indislive &&
			heap_attisnull(tuple, Anum_pg_index_indpred, NULL) &&
			index->indnkeyatts >= 2 &&
			index->indkey.values[0] == JOURNAL_ATT_TABLE_NAME &&
			index->indkey.values[1] == JOURNAL_ATT_USER_ULID;
		ReleaseSysCache(tuple);
		if (fits && journal_store_is_btree(lfirst_oid(lc)))
		{
			known_index = lfirst_oid(lc);
			known_relid = RelationGetRelid(rel);
			break;
		}
	}
	list_free(indexes);
	if (!OidIsValid(known_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cal_refresh_journal has no index on (table_name, user_ulid)"),
				 errhint("Reinstall the extension.")));
	return known_index;
}

/*
 * Opens the journal, checking that it has the columns read directly; NULL
 * when the extension's objects have none (older than 1.2).
 */
static Relation
journal_store_open(Oid schema, LOCKMODE lockmode)
{
	Oid			relid = spi_pinned_extension_table(schema, JOURNAL_TABLE);
	Relation	rel;

	if (!OidIsValid(relid))
		return NULL;
	rel = table_open(relid, lockmode);
	if (!journal_store_layout_ok(rel))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cal_refresh_journal does not have the columns this library expects"),
				 errhint("ALTER EXTENSION cal_refresh UPDATE.")));
	return rel;
}

/* A copy of one column's text, or NULL. */
static char *
journal_store_text(HeapTuple tuple, TupleDesc desc, AttrNumber attnum)
{
	bool		isnull;
	Datum		value = heap_getattr(tuple, attnum, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/* One entry as read, into *found. */
static void
journal_store_read_entry(HeapTuple tuple, TupleDesc desc, int user_index,
						 const char *user, JournalStoreEntry *found)
{
	JournalEntry *e = &found->entry;
	bool		isnull;
	Datum		value;

	memset(found, 0, sizeof(*found));
	found->user_index = user_index;
	found->tid = tuple->t_self;
	e->user_ulid = user;
	value = heap_getattr(tuple, JOURNAL_ATT_SPENT, desc, &isnull);
	if (!isnull)
	{
		bytea	   *digest = DatumGetByteaPP(value);

		/* A digest of another length supersedes nothing. */
		e->has_spent = true;
		if (VARSIZE_ANY_EXHDR(digest) == JOURNAL_DIGEST_LEN)
			memcpy(e->spent_sha256, VARDATA_ANY(digest), JOURNAL_DIGEST_LEN);
		else
			found->unusable = true;
	}
	e->access_token = journal_store_text(tuple, desc, JOURNAL_ATT_ACCESS_TOKEN);
	e->refresh_token = journal_store_text(tuple, desc, JOURNAL_ATT_REFRESH_TOKEN);
	value = heap_getattr(tuple, JOURNAL_ATT_ACCESS_EXPIRY, desc, &isnull);
	/* The columns are NOT NULL; a hand-edited entry is not adopted. */
	found->unusable |= isnull || e->access_token == NULL ||
		e->refresh_token == NULL;
	e->access_expires_at = isnull ? 0 : DatumGetTimestampTz(value);
	value = heap_getattr(tuple, JOURNAL_ATT_REFRESH_EXPIRY, desc, &isnull);
	e->has_refresh_expiry = !isnull;
	e->refresh_expires_at = isnull ? 0 : DatumGetTimestampTz(value);
	value = heap_getattr(tuple, JOURNAL_ATT_ISSUED_AT, desc, &isnull);
	found->issued_at = isnull ? 0 : DatumGetTimestampTz(value);
}

/*
 * Every entry of the n users of table_name, in the caller's memory (their
 * tokens are the caller's to wipe), *n_found of them, each user's in the
 * order they were written.  Read with the latest snapshot, not the
 * transaction's: under REPEATABLE READ an entry a writer committed since
 * is still to be seen.
 */
JournalStoreEntry *
journal_store_read(Oid schema, const char *table_name,
				   const char *const *users, int n, int *n_found)
{
	JournalStoreEntry *found = NULL;
	int			capacity = 0;
	Relation	rel;
	Snapshot	snapshot;
	Datum		table_datum;
	Oid			index;
	int			i;

	*n_found = 0;
	if (n == 0 || (rel = journal_store_open(schema, AccessShareLock)) == NULL)
		return NULL;
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	table_datum = CStringGetTextDatum(table_name);
	index = journal_store_user_index(rel);
	for (i = 0; i < n; i++)
	{
		ScanKeyData keys[2];
		SysScanDesc scan;
		HeapTuple	tuple;

		ScanKeyEntryInitialize(&keys[0], 0, JOURNAL_ATT_TABLE_NAME,
							   BTEqualStrategyNumber, InvalidOid,
							   DEFAULT_COLLATION_OID, F_TEXTEQ, table_datum);
		ScanKeyEntryInitialize(&keys[1], 0, JOURNAL_ATT_USER_ULID,
							   BTEqualStrategyNumber, InvalidOid,
							   DEFAULT_COLLATION_OID, F_TEXTEQ,
							   CStringGetTextDatum(users[i]));
		scan = systable_beginscan(rel, index, true, snapshot, 2, keys);
		while ((tuple = systable_getnext(scan)) != NULL)
		{
			if (*n_found == capacity)
			{
				capacity = Max(8, capacity * 2);
				found = found == NULL ?
					palloc(sizeof(JournalStoreEntry) * capacity) :
					repalloc(found, sizeof(JournalStoreEntry) * capacity);
			}
			journal_store_read_entry(tuple, RelationGetDescr(rel), i,
									 users[i], &found[(*n_found)++]);
		}
		systable_endscan(scan);
	}
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return found;
}

/* The users of table_name with entries (palloc'd; *n of them). */
char	  **
journal_store_users(Oid schema, const char *table_name, int *n)
{
	Relation	rel;
	Relation	index;
	Snapshot	snapshot;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	  **users = NULL;
	char	   *last = NULL;
	int			capacity = 0;

	*n = 0;
	if ((rel = journal_store_open(schema, AccessShareLock)) == NULL)
		return NULL;
	ScanKeyEntryInitialize(&key, 0, JOURNAL_ATT_TABLE_NAME,
						   BTEqualStrategyNumber, InvalidOid,
						   DEFAULT_COLLATION_OID, F_TEXTEQ,
						   CStringGetTextDatum(table_name));
	/* In index order: a user's entries follow one another. */
	index = index_open(journal_store_user_index(rel), AccessShareLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan_ordered(rel, index, snapshot, 1, &key);
	while ((tuple = systable_getnext_ordered(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		value = heap_getattr(tuple, JOURNAL_ATT_USER_ULID,
										 RelationGetDescr(rel), &isnull);
		char	   *user;

		if (isnull)
			continue;
		user = TextDatumGetCString(value);
		if (last != NULL && strcmp(last, user) == 0)
			continue;
		if (*n == capacity)
		{
			capacity = Max(16, capacity * 2);
			users = users == NULL ? palloc(sizeof(char *) * capacity) :
				repalloc(users, sizeof(char *) * capacity);
		}
		users[(*n)++] = last = user;
	}
	systable_endscan_ordered(scan);
	UnregisterSnapshot(snapshot);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);
	return users;
}

/*
 * Deletes the entries at the n tids, in this transaction (so that a
 * rollback keeps them).  Without wait, an entry another open transaction
 * is deleting is left to it; one someone else deleted meanwhile is gone
 * all the same.
 */
void
journal_store_delete(Oid schema, const ItemPointerData *tids, int n,
					 bool wait)
{
	Relation	rel;
	Snapshot	snapshot;
	int			i;

	if (n == 0 || (rel = journal_store_open(schema, RowExclusiveLock)) == NULL)
		return;
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	for (i = 0; i < n; i++)
	{
		TM_FailureData failure;
		ItemPointerData tid = tids[i];

		(void) table_tuple_delete(rel, &tid, GetCurrentCommandId(true),
								  snapshot, InvalidSnapshot, wait, &failure,
								  false);
	}
	UnregisterSnapshot(snapshot);
	table_close(rel, RowExclusiveLock);
	CommandCounterIncrement();
}

/*
 * Deletes every entry of the n users, whose rows now hold the newest pair,
 * in this transaction (so a rollback keeps the entries).  One statement,
 * with the latest snapshot: entries a writer just committed go too.
 */
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
	/* The latest snapshot: the entries just committed by the writer too. */
	rc = SPI_execute_snapshot(journal_table.forget_plan, args, NULL,
							  GetLatestSnapshot(), InvalidSnapshot, false,
							  false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	spi_pinned_end(&session);
}

/*
 * Is there a journal: a table of the name in schema that is a member of
 * the extension (objects older than 1.2 have none)?
 */
bool
journal_store_exists(Oid schema)
{
	return OidIsValid(spi_pinned_extension_table(schema, JOURNAL_TABLE));
}
