/*-------------------------------------------------------------------------
 *
 * app_table.c
 *		Finding and checking the application's table, and preparing the
 *		statements cal_refresh runs on it.
 *
 * The table belongs to the application: we never create or alter it.  It
 * is found from cal_refresh.table_name without consulting search_path (a
 * temporary table of the same name cannot stand in for it), its columns
 * are checked once per session and its statements prepared then.  The
 * cache is dropped when the table or any schema changes.
 *
 * Expiry columns may be timestamptz, timestamp (UTC, as Prisma writes
 * them) or bigint milliseconds; the SQL converts, the C code sees
 * timestamptz only.  Tokens always travel as parameters, never in the
 * query text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "spi_pinned.h"
#include "app_table.h"

static AppTable app_table;
static bool callbacks_registered = false;

/* The statements, and the text each saved plan was prepared from. */
typedef enum TokenStatement
{
	STATEMENT_READ,
	STATEMENT_LOCK,
	STATEMENT_TRY_LOCK,
	STATEMENT_WRITE,
	STATEMENT_DUE,
	STATEMENT_STATUS,
	STATEMENT_COUNT
} TokenStatement;

static char *statement_sql[STATEMENT_COUNT];

#define COL_USER_ULID "userUlid"
#define COL_ACCESS_TOKEN "calAccessToken"
#define COL_REFRESH_TOKEN "calRefreshToken"
#define COL_ACCESS_EXPIRY "calAccessTokenExpiresAt"
#define COL_MANAGED_USER_ID "calManagedUserId"
#define COL_REFRESH_EXPIRY "calRefreshTokenExpiresAt"
#define COL_UPDATED_AT "updatedAt"

/* Milliseconds since the Unix epoch of 0001-01-01 and of 10000-01-01. */
#define EXPIRY_MS_MIN INT64CONST(-62135596800000)
#define EXPIRY_MS_MAX INT64CONST(253402300800000)

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

/*
 * Parses cal_refresh.table_name ("schema.table", either part optionally
 * double-quoted) without raising or allocating: a GUC check hook uses it.
 * schema and table must have room for NAMEDATALEN bytes.
 */
bool
app_table_parse_name(const char *value, char *schema, char *table)
{
	const char *p = value;

	if (value == NULL || strlen(value) >= 2 * NAMEDATALEN + 8)
		return false;
	if (!parse_identifier(&p, schema) || *p++ != '.')
		return false;
	return parse_identifier(&p, table) && *p == '\0';
}

static void
app_table_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == app_table.relid)
		app_table.valid = false;
}

static void
app_table_invalidate_all(Datum arg, int cacheid, uint32 hashvalue)
{
	app_table.valid = false;
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

/*
 * Could an UPDATE of the table leave a check for commit time?  Its
 * deferrable constraints and constraint triggers can.  (Checks an
 * application trigger leaves on other tables are not looked for: probing
 * for them would run every trigger twice, and a trigger may act outside
 * the transaction.)
 */
static bool
has_deferred_checks(Relation rel)
{
	TriggerDesc *triggers = rel->trigdesc;
	int			i;

	for (i = 0; triggers != NULL && i < triggers->numtriggers; i++)
		if (triggers->triggers[i].tgdeferrable)
			return true;
	return false;
}

/* Is there a valid, non-partial unique index on exactly that column? */
static bool
has_unique_index_on(Relation rel, AttrNumber attnum)
{
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
	return found;
}

/*
 * SQL reading an expiry column as timestamptz.  Milliseconds outside the
 * years 1..9999 read as -infinity or infinity: to_timestamp() would raise
 * on them, and one absurd row must not fail a batch or the status of
 * everyone.
 */
static void
append_expiry_read(StringInfo sql, const char *column, ExpiryKind kind)
{
	const char *col = quote_identifier(column);

	if (kind == EXPIRY_TIMESTAMP)
		appendStringInfo(sql, "(%s AT TIME ZONE 'UTC')", col);
	else if (kind == EXPIRY_MILLISECONDS)
		appendStringInfo(sql,
						 "(CASE WHEN %s < " INT64_FORMAT " THEN '-infinity'::timestamptz"
						 " WHEN %s >= " INT64_FORMAT " THEN 'infinity'::timestamptz"
						 " ELSE to_timestamp(%s::float8 / 1000) END)",
						 col, EXPIRY_MS_MIN, col, EXPIRY_MS_MAX, col);
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

/*
 * Keeps *plan prepared from sql.  A plan whose text has not changed since
 * the last check is kept as it is: PostgreSQL replans it when the table
 * changes, and it may be running right now (a trigger on the table calling
 * cal_refresh), so it must not be freed under its executor.
 */
static void
save_statement(TokenStatement which, SPIPlanPtr *plan, const char *sql,
			   int nargs, Oid *argtypes, int cursor_options)
{
	if (*plan != NULL && statement_sql[which] != NULL &&
		strcmp(statement_sql[which], sql) == 0)
		return;
	if (*plan != NULL)
		SPI_freeplan(*plan);
	*plan = NULL;
	if (statement_sql[which] != NULL)
		pfree(statement_sql[which]);
	statement_sql[which] = NULL;
	*plan = spi_pinned_prepare_saved(sql, nargs, argtypes, cursor_options);
	statement_sql[which] = MemoryContextStrdup(TopMemoryContext, sql);
}

/* The SELECT list every row statement shares (see app_table.h). */
static void
append_row_columns(StringInfo sql, const AppTable *t)
{
	appendStringInfo(sql, "SELECT %s::text, %s::text, ",
					 quote_identifier(COL_ACCESS_TOKEN),
					 quote_identifier(COL_REFRESH_TOKEN));
	append_expiry_read(sql, COL_ACCESS_EXPIRY, t->access_expiry);
	if (t->has_managed_user_id)
		appendStringInfo(sql, ", %s::int8",
						 quote_identifier(COL_MANAGED_USER_ID));
	else
		appendStringInfoString(sql, ", NULL::int8");
}

/*
 * The rows due for a refresh: access token expiring before $1 (or of
 * unknown expiry), key not NULL (a NULL key names nobody) and after $2 (NULL: from the start) in "C" order, not
 * among the users $3, at most $4 of them, each locked unless another
 * session holds it.  The expiry is compared in the column's own type, so
 * an index on it can serve.
 */
static void
prepare_due_statement(const char *qualified_name)
{
	AppTable *t = &app_table;
	StringInfoData sql;
	Oid			types[4] = {TIMESTAMPTZOID, TEXTOID, TEXTARRAYOID, INT8OID};
	const char *key = quote_identifier(COL_USER_ULID);
	const char *expiry = quote_identifier(COL_ACCESS_EXPIRY);

	initStringInfo(&sql);
	append_row_columns(&sql, t);
	appendStringInfo(&sql, ", %s::text FROM %s WHERE (%s < ",
					 key, qualified_name, expiry);
	append_expiry_write(&sql, 1, t->access_expiry);
	appendStringInfo(&sql, " OR %s IS NULL)"
					 " AND %s IS NOT NULL"
					 " AND ($2 IS NULL OR %s COLLATE pg_catalog.\"C\" > $2)"
					 " AND %s <> ALL ($3)"
					 " ORDER BY %s COLLATE pg_catalog.\"C\" LIMIT $4"
					 " FOR UPDATE SKIP LOCKED",
					 expiry, key, key, key, key);
	save_statement(STATEMENT_DUE, &t->due_plan, sql.data, 4, types, 0);
	pfree(sql.data);
}

/*
 * Every user with its expiry and, from the arrays $1..$6 (the columns of
 * cal_refresh_failure), its failures: the rows of cal_refresh_status(),
 * failing users first, then by expiry.
 */
static void
prepare_status_statement(const char *qualified_name)
{
	AppTable *t = &app_table;
	StringInfoData sql;
	StringInfoData expiry;
	Oid			types[6] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	INT4ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};

	initStringInfo(&expiry);
	append_expiry_read(&expiry, COL_ACCESS_EXPIRY, t->access_expiry);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT u.%s::text, %s, CASE WHEN isfinite(%s) THEN %s - now() END, "
					 "f.error_code, f.error, "
					 "f.last_failure_at, f.failures, f.next_attempt_at "
					 "FROM %s u LEFT JOIN unnest($1, $2, $3, $4, $5, $6) "
					 "AS f(user_ulid, error_code, error, failures, "
					 "last_failure_at, next_attempt_at) "
					 "ON f.user_ulid = u.%s::text "
					 "ORDER BY f.failures IS NULL, 2 NULLS FIRST, "
					 "u.%s COLLATE pg_catalog.\"C\"",
					 quote_identifier(COL_USER_ULID), expiry.data, expiry.data,
					 expiry.data, qualified_name, quote_identifier(COL_USER_ULID),
					 quote_identifier(COL_USER_ULID));
	save_statement(STATEMENT_STATUS, &t->status_plan, sql.data, 6, types, 0);
	pfree(expiry.data);
	pfree(sql.data);
}

/* Builds and prepares every statement on the table. */
static void
prepare_statements(const char *qualified_name)
{
	AppTable *t = &app_table;
	StringInfoData sql;
	Oid			lock_types[1] = {TEXTOID};
	Oid			write_types[5] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID};

	initStringInfo(&sql);
	append_row_columns(&sql, t);
	appendStringInfo(&sql, " FROM %s WHERE %s = $1",
					 qualified_name, quote_identifier(COL_USER_ULID));
	save_statement(STATEMENT_READ, &t->read_plan, sql.data, 1, lock_types, 0);
	appendStringInfoString(&sql, " FOR UPDATE");
	save_statement(STATEMENT_LOCK, &t->lock_plan, sql.data, 1, lock_types, 0);
	appendStringInfoString(&sql, " SKIP LOCKED");
	save_statement(STATEMENT_TRY_LOCK, &t->try_lock_plan, sql.data, 1,
				   lock_types, 0);

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
	/* It carries tokens: a generic plan keeps them out of every plan. */
	save_statement(STATEMENT_WRITE, &t->write_plan, sql.data, 5, write_types,
				   CURSOR_OPT_GENERIC_PLAN);
	pfree(sql.data);

	prepare_due_statement(qualified_name);
	prepare_status_statement(qualified_name);
}

/*
 * What each column of the table must be, in the order the checks run (and
 * report): required ones first.  problem is the message for a column that
 * does not fit, with %s for the table's qualified name; the three text
 * columns share one.
 */
static const AppColumnSpec column_specs[APP_TABLE_COLUMNS] = {
	{COL_USER_ULID, COLUMN_TEXT, true,
		"table %s needs text columns \"" COL_USER_ULID "\", \""
		COL_ACCESS_TOKEN "\" and \"" COL_REFRESH_TOKEN "\""},
	{COL_ACCESS_TOKEN, COLUMN_TEXT, true,
		"table %s needs text columns \"" COL_USER_ULID "\", \""
		COL_ACCESS_TOKEN "\" and \"" COL_REFRESH_TOKEN "\""},
	{COL_REFRESH_TOKEN, COLUMN_TEXT, true,
		"table %s needs text columns \"" COL_USER_ULID "\", \""
		COL_ACCESS_TOKEN "\" and \"" COL_REFRESH_TOKEN "\""},
	{COL_ACCESS_EXPIRY, COLUMN_EXPIRY, true,
		"table %s needs a column \"" COL_ACCESS_EXPIRY "\" of type timestamptz, "
		"timestamp or bigint (milliseconds)"},
	{COL_MANAGED_USER_ID, COLUMN_INTEGER, false,
		"column \"" COL_MANAGED_USER_ID "\" of table %s must be an integer"},
	{COL_REFRESH_EXPIRY, COLUMN_EXPIRY, false,
		"column \"" COL_REFRESH_EXPIRY "\" of table %s must be timestamptz, "
		"timestamp or bigint"},
	{COL_UPDATED_AT, COLUMN_TIMESTAMP, false,
		"column \"" COL_UPDATED_AT "\" of table %s must be timestamptz or "
		"timestamp"},
};

/* The name of a column the extension knows. */
const char *
app_table_column_name(AppColumn column)
{
	return column_specs[column].name;
}

/* Does a column of base type type fit kind?  *expiry says how it is read. */
static bool
column_fits(AppColumnKind kind, Oid type, ExpiryKind *expiry)
{
	*expiry = expiry_kind(type);
	switch (kind)
	{
		case COLUMN_TEXT:
			return is_text_type(type);
		case COLUMN_INTEGER:
			return type == INT2OID || type == INT4OID || type == INT8OID;
		case COLUMN_EXPIRY:
			return *expiry != EXPIRY_NONE;
		case COLUMN_TIMESTAMP:
			return *expiry == EXPIRY_TIMESTAMPTZ || *expiry == EXPIRY_TIMESTAMP;
	}
	return false;
}

/* Each column of column_specs as the table has it. */
static void
inspect_columns(Oid relid, AppTableReport *report)
{
	int			i;

	for (i = 0; i < APP_TABLE_COLUMNS; i++)
	{
		const AppColumnSpec *spec = &column_specs[i];
		AppColumnReport *column = &report->columns[i];
		AttrNumber	attnum = get_attnum(relid, spec->name);
		Oid			collation;

		column->spec = spec;
		column->expiry = EXPIRY_NONE;
		column->type = InvalidOid;
		column->typmod = -1;
		if (attnum == InvalidAttrNumber)
		{
			column->state = APP_COLUMN_ABSENT;
			continue;
		}
		get_atttypetypmodcoll(relid, attnum, &column->type, &column->typmod,
							  &collation);
		column->state = column_fits(spec->kind, getBaseType(column->type),
									&column->expiry) ?
			APP_COLUMN_FITS : APP_COLUMN_WRONG_TYPE;
	}
}

/*
 * What the relation itself holds: the unique index on the key, whether the
 * key is NOT NULL, deferred checks, and the owner.
 */
static void
inspect_relation(Oid relid, AppTableReport *report)
{
	Relation	rel = table_open(relid, AccessShareLock);
	AttrNumber	key = get_attnum(relid, COL_USER_ULID);

	if (key != InvalidAttrNumber)
	{
		report->has_key_index = has_unique_index_on(rel, key);
		report->key_not_null =
			TupleDescAttr(RelationGetDescr(rel), key - 1)->attnotnull;
	}
	report->has_deferred_checks = has_deferred_checks(rel);
	report->owner = rel->rd_rel->relowner;
	table_close(rel, AccessShareLock);
}

/*
 * Looks at the table table_name names, without raising for anything it
 * finds: the one set of checks behind app_table_get and
 * cal_refresh_check().  report->problem holds the first reason the
 * extension cannot use the table, or NULL when it can.
 */
void
app_table_inspect(const char *table_name, AppTableReport *report)
{
	Oid			nspid;
	char		relkind;
	int			i;

	memset(report, 0, sizeof(*report));
	if (!app_table_parse_name(table_name, report->schema, report->table))
	{
		report->problem = psprintf("cal_refresh.table_name \"%s\" is not of "
								   "the form schema.table", table_name);
		return;
	}
	report->parsed = true;
	report->qualified_name = quote_qualified_identifier(report->schema,
														report->table);
	nspid = get_namespace_oid(report->schema, true);
	report->relid = OidIsValid(nspid) ?
		get_relname_relid(report->table, nspid) : InvalidOid;
	if (!OidIsValid(report->relid))
	{
		report->problem = psprintf("table %s does not exist",
								   report->qualified_name);
		return;
	}
	relkind = get_rel_relkind(report->relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
	{
		report->problem = psprintf("%s is not a table", report->qualified_name);
		return;
	}
	report->is_table = true;
	inspect_columns(report->relid, report);
	inspect_relation(report->relid, report);
	for (i = 0; i < APP_TABLE_COLUMNS && report->problem == NULL; i++)
	{
		const AppColumnReport *column = &report->columns[i];

		if (column->state == APP_COLUMN_WRONG_TYPE ||
			(column->state == APP_COLUMN_ABSENT && column->spec->required))
			report->problem = psprintf(column->spec->problem,
									   report->qualified_name);
	}
	if (report->problem == NULL && !report->has_key_index)
		report->problem = psprintf("column \"%s\" of table %s needs a unique "
								   "index", COL_USER_ULID,
								   report->qualified_name);
}

/*
 * The table named by table_name, checked, with its statements prepared;
 * cached until the table or a schema changes.  Must run inside SPI with
 * search_path pinned.  NULL, with *problem set, when the table does not
 * fit.
 */
const AppTable *
app_table_get(const char *table_name, char **problem)
{
	AppTable *t = &app_table;
	AppTableReport report;

	if (t->valid && strcmp(t->table_name, table_name) == 0)
		return t;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(app_table_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, app_table_invalidate_all,
									  (Datum) 0);
		callbacks_registered = true;
	}
	/* Check again from scratch; the prepared statements stay (see below). */
	t->valid = false;
	t->table_name[0] = '\0';
	t->relid = InvalidOid;

	app_table_inspect(table_name, &report);
	if (report.problem != NULL)
	{
		*problem = report.problem;
		return NULL;
	}
	t->access_expiry = report.columns[APP_COLUMN_ACCESS_EXPIRY].expiry;
	t->has_managed_user_id =
		report.columns[APP_COLUMN_MANAGED_USER_ID].state == APP_COLUMN_FITS;
	t->refresh_expiry = report.columns[APP_COLUMN_REFRESH_EXPIRY].expiry;
	t->updated_at = report.columns[APP_COLUMN_UPDATED_AT].expiry;
	t->has_deferred_checks = report.has_deferred_checks;
	t->owner = report.owner;

	prepare_statements(report.qualified_name);
	strlcpy(t->table_name, table_name, sizeof(t->table_name));
	t->relid = report.relid;
	t->valid = true;
	return t;
}

/*
 * SQL counting, among the rows the caller can see, those no refresh can
 * serve, in the order of TokenRowCounts: all rows; rows without a key;
 * rows with neither a refresh token nor a managed user id; expiries that
 * are NULL, infinite (or, in milliseconds, outside the years 1..9999), or
 * absurd: before 2000, or more than a day ahead, which no access token
 * Cal.com issues lives (such a row is taken for valid, and never
 * refreshed).
 */
char *
app_table_count_sql(const AppTable *t, bool force_refresh)
{
	StringInfoData sql;
	StringInfoData expiry;
	const char *refresh = quote_identifier(COL_REFRESH_TOKEN);

	initStringInfo(&expiry);
	append_expiry_read(&expiry, COL_ACCESS_EXPIRY, t->access_expiry);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT count(*), count(*) FILTER (WHERE %s IS NULL), "
					 "count(*) FILTER (WHERE (%s IS NULL OR %s = '')",
					 quote_identifier(COL_USER_ULID), refresh, refresh);
	if (t->has_managed_user_id && force_refresh)
		appendStringInfo(&sql, " AND %s IS NULL",
						 quote_identifier(COL_MANAGED_USER_ID));
	appendStringInfo(&sql, "), count(*) FILTER (WHERE %s IS NULL), "
					 "count(*) FILTER (WHERE NOT isfinite(%s)), "
					 "count(*) FILTER (WHERE isfinite(%s) AND (%s < "
					 "'2000-01-01 00:00+00'::timestamptz OR %s > now() + "
					 "interval '1 day')) FROM %s",
					 quote_identifier(COL_ACCESS_EXPIRY), expiry.data,
					 expiry.data, expiry.data, expiry.data,
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(t->relid)),
												get_rel_name(t->relid)));
	pfree(expiry.data);
	return sql.data;
}
