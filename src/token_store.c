/*-------------------------------------------------------------------------
 *
 * token_store.c
 *		Reading and writing tokens in the application's table over SPI.
 *
 * The table belongs to the application: we never create or alter it.  It
 * is found from cal_refresh.table_name without consulting search_path (a
 * temporary table of the same name cannot stand in for it), its columns
 * are checked once per session and the two statements we run are prepared
 * then.  The cache is dropped when the table or any schema changes.
 *
 * Every statement runs with search_path pinned to pg_catalog, so no role
 * can slip its own operators or functions into our queries, and tokens
 * always travel as parameters, never in the query text.
 *
 * Expiry columns may be timestamptz, timestamp (UTC, as Prisma writes
 * them) or bigint milliseconds; the SQL converts, the C code sees
 * timestamptz only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "storage/proc.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "token_store.h"

typedef enum ExpiryKind
{
	EXPIRY_NONE,				/* optional column absent */
	EXPIRY_TIMESTAMPTZ,
	EXPIRY_TIMESTAMP,			/* without time zone: UTC */
	EXPIRY_MILLISECONDS			/* bigint since the Unix epoch */
} ExpiryKind;

/* What we learnt about the table, valid until an invalidation. */
typedef struct TokenTable
{
	bool		valid;
	char		table_name[2 * NAMEDATALEN + 8];	/* setting it came from */
	Oid			relid;
	ExpiryKind	access_expiry;
	ExpiryKind	refresh_expiry;
	bool		has_managed_user_id;
	ExpiryKind	updated_at;		/* EXPIRY_MILLISECONDS is not accepted */
	SPIPlanPtr	read_plan;		/* the row, no lock */
	SPIPlanPtr	try_lock_plan;	/* the row, FOR UPDATE SKIP LOCKED */
	SPIPlanPtr	lock_plan;		/* the row, FOR UPDATE */
	SPIPlanPtr	write_plan;
} TokenTable;

static TokenTable token_table;
static bool callbacks_registered = false;

#define COL_USER_ULID "userUlid"
#define COL_ACCESS_TOKEN "calAccessToken"
#define COL_REFRESH_TOKEN "calRefreshToken"
#define COL_ACCESS_EXPIRY "calAccessTokenExpiresAt"
#define COL_MANAGED_USER_ID "calManagedUserId"
#define COL_REFRESH_EXPIRY "calRefreshTokenExpiresAt"
#define COL_UPDATED_AT "updatedAt"

/*
 * Reads one identifier at *p into out (NAMEDATALEN bytes): "quoted" with ""
 * escapes, or bare and folded to lower case as the SQL parser would.
 */
static bool
parse_identifier(const char **p, char *out)
{
	const char *s = *p;
	int			len = 0;

	if (*s == '"')
	{
		for (s++;; s++)
		{
			if (*s == '\0')
				return false;
			if (*s == '"')
			{
				if (s[1] != '"')
					break;
				s++;
			}
			if (len >= NAMEDATALEN - 1)
				return false;
			out[len++] = *s;
		}
		s++;
	}
	else
	{
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  *s == '_' || IS_HIGHBIT_SET(*s)))
			return false;
		for (; (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			 (*s >= '0' && *s <= '9') || *s == '_' || *s == '$' ||
			 IS_HIGHBIT_SET(*s); s++)
		{
			if (len >= NAMEDATALEN - 1)
				return false;
			out[len++] = (char) ((*s >= 'A' && *s <= 'Z') ? *s + ('a' - 'A') : *s);
		}
	}
	out[len] = '\0';
	*p = s;
	return len > 0;
}

bool
token_store_parse_table_name(const char *value, char *schema, char *table)
{
	const char *p = value;

	if (value == NULL || strlen(value) >= 2 * NAMEDATALEN + 8)
		return false;
	if (!parse_identifier(&p, schema) || *p++ != '.')
		return false;
	return parse_identifier(&p, table) && *p == '\0';
}

static void
token_store_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == token_table.relid)
		token_table.valid = false;
}

static void
token_store_invalidate_all(Datum arg, int cacheid, uint32 hashvalue)
{
	token_table.valid = false;
}

/* The column's base type, or InvalidOid when there is no such column. */
static Oid
column_type(Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);

	if (attnum == InvalidAttrNumber)
		return InvalidOid;
	return getBaseType(get_atttype(relid, attnum));
}

static ExpiryKind
expiry_kind(Oid type)
{
	switch (type)
	{
		case TIMESTAMPTZOID:
			return EXPIRY_TIMESTAMPTZ;
		case TIMESTAMPOID:
			return EXPIRY_TIMESTAMP;
		case INT8OID:
			return EXPIRY_MILLISECONDS;
		default:
			return EXPIRY_NONE;
	}
}

static bool
is_text_type(Oid type)
{
	return type == TEXTOID || type == VARCHAROID;
}

/* Is there a valid, non-partial unique index on exactly that column? */
static bool
has_unique_index_on(Oid relid, AttrNumber attnum)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		HeapTuple	tuple = SearchSysCache1(INDEXRELID,
											ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;

		if (!HeapTupleIsValid(tuple))
			continue;
		index = (Form_pg_index) GETSTRUCT(tuple);
		if (index->indisunique && index->indisvalid &&
			index->indnkeyatts == 1 && index->indkey.values[0] == attnum &&
			heap_attisnull(tuple, Anum_pg_index_indpred, NULL))
			found = true;
		ReleaseSysCache(tuple);
	}
	list_free(indexes);
	table_close(rel, AccessShareLock);
	return found;
}

/* SQL reading an expiry column as timestamptz. */
static void
append_expiry_read(StringInfo sql, const char *column, ExpiryKind kind)
{
	const char *col = quote_identifier(column);

	if (kind == EXPIRY_TIMESTAMP)
		appendStringInfo(sql, "(%s AT TIME ZONE 'UTC')", col);
	else if (kind == EXPIRY_MILLISECONDS)
		appendStringInfo(sql, "to_timestamp(%s::float8 / 1000)", col);
	else
		appendStringInfoString(sql, col);
}

/* SQL turning timestamptz parameter $n into the column's type. */
static void
append_expiry_write(StringInfo sql, int param, ExpiryKind kind)
{
	if (kind == EXPIRY_TIMESTAMP)
		appendStringInfo(sql, "($%d AT TIME ZONE 'UTC')", param);
	else if (kind == EXPIRY_MILLISECONDS)
		appendStringInfo(sql, "(extract(epoch FROM $%d) * 1000)::int8", param);
	else
		appendStringInfo(sql, "$%d", param);
}

static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/* Builds and prepares the row-lock and update statements. */
static void
prepare_statements(const char *qualified_name)
{
	TokenTable *t = &token_table;
	StringInfoData sql;
	Oid			lock_types[1] = {TEXTOID};
	Oid			write_types[5] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID};

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s::text, %s::text, ",
					 quote_identifier(COL_ACCESS_TOKEN),
					 quote_identifier(COL_REFRESH_TOKEN));
	append_expiry_read(&sql, COL_ACCESS_EXPIRY, t->access_expiry);
	if (t->has_managed_user_id)
		appendStringInfo(&sql, ", %s::int8",
						 quote_identifier(COL_MANAGED_USER_ID));
	else
		appendStringInfoString(&sql, ", NULL::int8");
	appendStringInfo(&sql, " FROM %s WHERE %s = $1",
					 qualified_name, quote_identifier(COL_USER_ULID));
	t->read_plan = prepare_kept(sql.data, 1, lock_types);
	appendStringInfoString(&sql, " FOR UPDATE");
	t->lock_plan = prepare_kept(sql.data, 1, lock_types);
	appendStringInfoString(&sql, " SKIP LOCKED");
	t->try_lock_plan = prepare_kept(sql.data, 1, lock_types);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s SET %s = $2, %s = $3, %s = ",
					 qualified_name, quote_identifier(COL_ACCESS_TOKEN),
					 quote_identifier(COL_REFRESH_TOKEN),
					 quote_identifier(COL_ACCESS_EXPIRY));
	append_expiry_write(&sql, 4, t->access_expiry);
	if (t->refresh_expiry != EXPIRY_NONE)
	{
		appendStringInfo(&sql, ", %s = COALESCE(",
						 quote_identifier(COL_REFRESH_EXPIRY));
		append_expiry_write(&sql, 5, t->refresh_expiry);
		appendStringInfo(&sql, ", %s)", quote_identifier(COL_REFRESH_EXPIRY));
	}
	if (t->updated_at == EXPIRY_TIMESTAMPTZ)
		appendStringInfo(&sql, ", %s = now()", quote_identifier(COL_UPDATED_AT));
	else if (t->updated_at == EXPIRY_TIMESTAMP)
		appendStringInfo(&sql, ", %s = (now() AT TIME ZONE 'UTC')",
						 quote_identifier(COL_UPDATED_AT));
	appendStringInfo(&sql, " WHERE %s = $1", quote_identifier(COL_USER_ULID));
	t->write_plan = prepare_kept(sql.data, 5, write_types);
	pfree(sql.data);
}

/*
 * Finds and checks the table, preparing statements on first use.  Must run
 * inside SPI with search_path pinned.  Returns false with *problem set
 * when the table does not fit.
 */
static bool
token_store_resolve(const char *table_name, char **problem)
{
	TokenTable *t = &token_table;
	char		schema[NAMEDATALEN];
	char		table[NAMEDATALEN];
	Oid			nspid;
	Oid			relid;
	Oid			type;
	char		relkind;

	if (t->valid && strcmp(t->table_name, table_name) == 0)
		return true;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(token_store_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, token_store_invalidate_all,
									  (Datum) 0);
		callbacks_registered = true;
	}
	if (t->read_plan != NULL)
		SPI_freeplan(t->read_plan);
	if (t->lock_plan != NULL)
		SPI_freeplan(t->lock_plan);
	if (t->try_lock_plan != NULL)
		SPI_freeplan(t->try_lock_plan);
	if (t->write_plan != NULL)
		SPI_freeplan(t->write_plan);
	memset(t, 0, sizeof(*t));

	if (!token_store_parse_table_name(table_name, schema, table))
	{
		*problem = psprintf("cal_refresh.table_name \"%s\" is not of the form "
							"schema.table", table_name);
		return false;
	}
	nspid = get_namespace_oid(schema, true);
	relid = OidIsValid(nspid) ? get_relname_relid(table, nspid) : InvalidOid;
	if (!OidIsValid(relid))
	{
		*problem = psprintf("table %s does not exist",
							quote_qualified_identifier(schema, table));
		return false;
	}
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
	{
		*problem = psprintf("%s is not a table",
							quote_qualified_identifier(schema, table));
		return false;
	}

	if (!is_text_type(column_type(relid, COL_USER_ULID)) ||
		!is_text_type(column_type(relid, COL_ACCESS_TOKEN)) ||
		!is_text_type(column_type(relid, COL_REFRESH_TOKEN)))
	{
		*problem = psprintf("table %s needs text columns \"%s\", \"%s\" and \"%s\"",
							quote_qualified_identifier(schema, table),
							COL_USER_ULID, COL_ACCESS_TOKEN, COL_REFRESH_TOKEN);
		return false;
	}
	t->access_expiry = expiry_kind(column_type(relid, COL_ACCESS_EXPIRY));
	if (t->access_expiry == EXPIRY_NONE)
	{
		*problem = psprintf("table %s needs a column \"%s\" of type timestamptz, "
							"timestamp or bigint (milliseconds)",
							quote_qualified_identifier(schema, table),
							COL_ACCESS_EXPIRY);
		return false;
	}

	/* Optional columns: absent is fine, present with a wrong type is not. */
	type = column_type(relid, COL_MANAGED_USER_ID);
	t->has_managed_user_id = OidIsValid(type);
	if (OidIsValid(type) && type != INT2OID && type != INT4OID && type != INT8OID)
	{
		*problem = psprintf("column \"%s\" of table %s must be an integer",
							COL_MANAGED_USER_ID,
							quote_qualified_identifier(schema, table));
		return false;
	}
	type = column_type(relid, COL_REFRESH_EXPIRY);
	t->refresh_expiry = expiry_kind(type);
	if (OidIsValid(type) && t->refresh_expiry == EXPIRY_NONE)
	{
		*problem = psprintf("column \"%s\" of table %s must be timestamptz, "
							"timestamp or bigint",
							COL_REFRESH_EXPIRY,
							quote_qualified_identifier(schema, table));
		return false;
	}
	type = column_type(relid, COL_UPDATED_AT);
	t->updated_at = expiry_kind(type);
	if (OidIsValid(type) && (t->updated_at == EXPIRY_NONE ||
							 t->updated_at == EXPIRY_MILLISECONDS))
	{
		*problem = psprintf("column \"%s\" of table %s must be timestamptz or "
							"timestamp",
							COL_UPDATED_AT,
							quote_qualified_identifier(schema, table));
		return false;
	}

	if (!has_unique_index_on(relid, get_attnum(relid, COL_USER_ULID)))
	{
		*problem = psprintf("column \"%s\" of table %s needs a unique index",
							COL_USER_ULID,
							quote_qualified_identifier(schema, table));
		return false;
	}

	prepare_statements(quote_qualified_identifier(schema, table));
	strlcpy(t->table_name, table_name, sizeof(t->table_name));
	t->relid = relid;
	t->valid = true;
	return true;
}

/* SPI session with search_path pinned; returns the GUC nest level. */
static int
token_store_begin(void)
{
	int			nest_level;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nest_level = NewGUCNestLevel();
	/* pg_temp listed last, or it would be searched first for types. */
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nest_level;
}

static void
token_store_end(int nest_level)
{
	AtEOXact_GUC(true, nest_level);
	SPI_finish();
}

/* Runs the read or lock statement and copies the row out of SPI. */
static TokenStoreStatus
token_store_fetch(SPIPlanPtr plan, const char *user_ulid,
				  MemoryContext caller_context, TokenRow *row)
{
	Datum		args[1];
	int			rc;
	HeapTuple	tuple;
	TupleDesc	desc;
	MemoryContext spi_context;
	Datum		value;
	bool		isnull;

	args[0] = CStringGetTextDatum(user_ulid);
	rc = SPI_execute_plan(plan, args, NULL, false, 2);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return TOKEN_STORE_NOT_FOUND;

	/* The row outlives SPI: copy it into the caller's memory. */
	tuple = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	spi_context = MemoryContextSwitchTo(caller_context);
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
	MemoryContextSwitchTo(spi_context);
	return TOKEN_STORE_OK;
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
token_store_lock_with_timeout(const char *user_ulid, int lock_timeout_ms,
							  MemoryContext caller_context, TokenRow *row)
{
	ResourceOwner owner = CurrentResourceOwner;
	MemoryContext context = CurrentMemoryContext;
	volatile TokenStoreStatus status;
	bool		ours_is_shorter = lock_timeout_ms > 0 &&
		(LockTimeout == 0 || lock_timeout_ms < LockTimeout);

	status = token_store_fetch(token_table.try_lock_plan, user_ulid,
							   caller_context, row);
	if (status == TOKEN_STORE_OK)
		return status;
	if (!ours_is_shorter)
		return token_store_fetch(token_table.lock_plan, user_ulid,
								 caller_context, row);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		char		value[32];

		snprintf(value, sizeof(value), "%d", lock_timeout_ms);
		(void) set_config_option("lock_timeout", value, PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
								 false);
		status = token_store_fetch(token_table.lock_plan, user_ulid,
								   caller_context, row);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(context);
		CurrentResourceOwner = owner;
		if (error->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(error);
		FreeErrorData(error);
		status = TOKEN_STORE_BUSY;
	}
	PG_END_TRY();
	return status;
}

/* The user's row, read plainly (lock_timeout_ms < 0) or locked. */
static TokenStoreStatus
token_store_get_row(const char *table_name, const char *user_ulid,
					int lock_timeout_ms, TokenRow *row, char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	TokenStoreStatus status;
	int			nest_level;

	memset(row, 0, sizeof(*row));
	nest_level = token_store_begin();
	if (!token_store_resolve(table_name, problem))
	{
		*problem = MemoryContextStrdup(caller_context, *problem);
		status = TOKEN_STORE_TABLE_INVALID;
	}
	else if (lock_timeout_ms < 0)
		status = token_store_fetch(token_table.read_plan, user_ulid,
								   caller_context, row);
	else
		status = token_store_lock_with_timeout(user_ulid, lock_timeout_ms,
											   caller_context, row);
	token_store_end(nest_level);
	return status;
}

TokenStoreStatus
token_store_read_row(const char *table_name, const char *user_ulid,
					 TokenRow *row, char **problem)
{
	return token_store_get_row(table_name, user_ulid, -1, row, problem);
}

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
token_store_execute_write(Datum *args, const char *nulls)
{
	MemoryContext context = CurrentMemoryContext;
	volatile int rc = 0;

	PG_TRY();
	{
		rc = SPI_execute_plan(token_table.write_plan, args, nulls, false, 0);
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		if (error->detail != NULL)
			error->detail = pstrdup("The new row is not shown: it holds tokens.");
		error->detail_log = NULL;
		ReThrowError(error);
	}
	PG_END_TRY();
	return rc;
}

TokenStoreStatus
token_store_write(const char *table_name, const TokenUpdate *update,
				  char **problem)
{
	MemoryContext caller_context = CurrentMemoryContext;
	TokenStoreStatus status = TOKEN_STORE_OK;
	int			nest_level;

	nest_level = token_store_begin();
	if (!token_store_resolve(table_name, problem))
	{
		*problem = MemoryContextStrdup(caller_context, *problem);
		status = TOKEN_STORE_TABLE_INVALID;
	}
	else
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
		rc = token_store_execute_write(args, nulls);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "SPI_execute_plan failed: %s",
				 SPI_result_code_string(rc));
		if (SPI_processed == 0)
			status = TOKEN_STORE_NOT_FOUND;
		/* The token copies SPI made die with its memory in SPI_finish. */
		explicit_bzero(VARDATA(DatumGetPointer(args[1])),
					   VARSIZE(DatumGetPointer(args[1])) - VARHDRSZ);
		explicit_bzero(VARDATA(DatumGetPointer(args[2])),
					   VARSIZE(DatumGetPointer(args[2])) - VARHDRSZ);
	}
	token_store_end(nest_level);
	return status;
}
