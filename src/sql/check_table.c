/*-------------------------------------------------------------------------
 *
 * check_table.c
 *		cal_refresh_check()'s rows about the application's table: found,
 *		its columns with their types as used, the key, the rows no refresh
 *		can serve, and the privileges a role needs on it and on our
 *		functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "check_table.h"
#include "compat.h"

/* A function the application or the scheduled refresh calls. */
typedef struct CheckFunction
{
	const char *name;
	const char *signature;		/* as GRANT names it */
	bool		procedure;
	int			nargs;
	Oid			argtypes[5];
} CheckFunction;

static const CheckFunction application_functions[] = {
	{"cal_access_token", "(text, interval)", false, 2, {TEXTOID, INTERVALOID}},
	{"cal_refresh_user_tokens", "(text)", false, 1, {TEXTOID}},
	{"cal_update_tokens", "(text, text, text, timestamptz, timestamptz)", false,
	5, {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}},
	{"cal_update_tokens_ms", "(text, text, text, bigint, bigint)", false,
	5, {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID}},
};

static const CheckFunction scheduled_functions[] = {
	{"cal_refresh_expiring_tokens", "(interval, integer)", false, 2,
	{INTERVALOID, INT4OID}},
	{"cal_refresh_expiring_tokens_job", "(interval, integer)", true, 2,
	{INTERVALOID, INT4OID}},
	{"cal_refresh_status", "()", false, 0, {InvalidOid}},
};

/* The table cal_refresh.table_name names, and whether it is one. */
static void
check_table(CheckState *cs)
{
	AppTableReport *t = &cs->table;

	app_table_inspect(cs->settings.table_name, t);
	if (t->is_table)
		check_emit(cs, "table", CHECK_PASSED, t->qualified_name, NULL);
	else
		check_emit(cs, "table", CHECK_FAILED, t->problem,
				   "Point cal_refresh.table_name at the application's table: "
				   "ALTER SYSTEM SET cal_refresh.table_name = "
				   "'schema.\"Table\"'; SELECT pg_reload_conf();");
}

/* What a column of each kind may be, and the type to turn it into. */
static void
check_column_kind(AppColumnKind kind, const char **wanted,
				  const char **suggested)
{
	switch (kind)
	{
		case COLUMN_TEXT:
			*wanted = "text or varchar";
			*suggested = "text";
			return;
		case COLUMN_INTEGER:
			*wanted = "smallint, integer or bigint";
			*suggested = "integer";
			return;
		case COLUMN_EXPIRY:
			*wanted = "timestamptz, timestamp or bigint (milliseconds)";
			*suggested = "timestamptz";
			return;
		case COLUMN_TIMESTAMP:
			*wanted = "timestamptz or timestamp";
			*suggested = "timestamptz";
			return;
	}
}

/* How the extension uses a column that fits, after its type. */
static const char *
check_column_use(const AppColumnReport *column)
{
	if (column->expiry == EXPIRY_TIMESTAMP)
		return ", read and written as UTC";
	if (column->expiry == EXPIRY_MILLISECONDS)
		return ", milliseconds since 1970-01-01 UTC";
	if (strcmp(column->spec->name, "userUlid") == 0)
		return ": the key";
	return "";
}

/* What an optional column's absence costs. */
static const char *
check_column_absence(const AppColumnSpec *spec, CalFlow flow)
{
	if (spec->kind == COLUMN_INTEGER && flow == CAL_FLOW_OAUTH2)
		return "absent (optional): the OAuth2 flow does not use it";
	if (spec->kind == COLUMN_INTEGER)
		return "absent (optional): no force refresh, so a spent refresh "
			"token cannot be replaced";
	if (spec->kind == COLUMN_TIMESTAMP)
		return "absent (optional): not maintained";
	return "absent (optional): the refresh token's expiry is not stored";
}

/* One row per column the extension knows, with its type as used. */
static void
check_columns(CheckState *cs)
{
	int			i;

	for (i = 0; i < APP_TABLE_COLUMNS; i++)
	{
		const AppColumnReport *c = &cs->table.columns[i];
		char	   *check;
		const char *wanted = "";
		const char *suggested = "";

		check = psprintf("column \"%s\"", app_table_column_name((AppColumn) i));
		if (!cs->table.is_table)
		{
			check_skip(cs, check, "no table");
			continue;
		}
		check_column_kind(c->spec->kind, &wanted, &suggested);
		if (c->state == APP_COLUMN_FITS)
			check_emit(cs, check, CHECK_PASSED,
					   psprintf("%s%s", format_type_with_typemod(c->type, c->typmod),
								check_column_use(c)),
					   NULL);
		else if (c->state == APP_COLUMN_ABSENT && !c->spec->required)
			check_emit(cs, check, CHECK_PASSED, check_column_absence(c->spec, cs->settings.flow),
					   NULL);
		else if (c->state == APP_COLUMN_ABSENT)
			check_emit(cs, check, CHECK_FAILED, psprintf("missing: %s needed",
														 wanted),
					   psprintf("ALTER TABLE %s ADD COLUMN %s %s;",
								cs->table.qualified_name,
								quote_identifier(c->spec->name), suggested));
		else
			check_emit(cs, check, CHECK_FAILED,
					   psprintf("%s: %s needed", format_type_be(c->type), wanted),
					   psprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING "
								"<a conversion of the old values>;",
								cs->table.qualified_name,
								quote_identifier(c->spec->name), suggested));
	}
}

/*
 * Counts the rows no refresh can serve, when the table fits and the
 * caller may read it (row-level security may still hide rows).
 */
static void
check_count_rows(CheckState *cs)
{
	char	   *problem = NULL;

	if (cs->table.problem != NULL)
		cs->not_counted = "the table does not fit";
	else if (pg_class_aclcheck(cs->table.relid, GetUserId(), ACL_SELECT) !=
			 ACLCHECK_OK)
		cs->not_counted = "this role may not SELECT from the table";
	else if (cal_namespace_aclcheck(get_rel_namespace(cs->table.relid),
									GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		cs->not_counted = "this role may not use the table's schema";
	else if (token_store_count_unusable(cs->settings.table_name,
										cs->settings.flow != CAL_FLOW_OAUTH2,
										&cs->counts, &problem) != TOKEN_STORE_OK)
		cs->not_counted = psprintf("counting failed: %s", problem);
	else
		cs->counted = true;
}

/* The unique index and NOT NULL on the key. */
static void
check_key(CheckState *cs)
{
	const AppTableReport *t = &cs->table;
	bool		has_key = t->is_table &&
		t->columns[APP_COLUMN_USER_ULID].state != APP_COLUMN_ABSENT;

	if (!has_key)
		check_skip(cs, "unique index on \"userUlid\"", "no \"userUlid\" column");
	else
		check_emit(cs, "unique index on \"userUlid\"",
				   t->has_key_index ? CHECK_PASSED : CHECK_FAILED,
				   t->has_key_index ? "present" :
				   "missing: a refresh must find exactly one row",
				   psprintf("CREATE UNIQUE INDEX ON %s (\"userUlid\");",
							t->qualified_name));
	if (!has_key)
		check_skip(cs, "\"userUlid\" NOT NULL", "no \"userUlid\" column");
	else if (t->key_not_null)
		check_emit(cs, "\"userUlid\" NOT NULL", CHECK_PASSED, "NOT NULL", NULL);
	else
		check_emit(cs, "\"userUlid\" NOT NULL", CHECK_FAILED,
				   cs->counted ?
				   psprintf("nullable; rows without a key (never refreshed): "
							INT64_FORMAT, cs->counts.no_key) :
				   "nullable: a row without a key is never refreshed",
				   psprintf("DELETE FROM %s WHERE \"userUlid\" IS NULL; "
							"ALTER TABLE %s ALTER COLUMN \"userUlid\" SET "
							"NOT NULL;",
							t->qualified_name, t->qualified_name));
}

/* Rows without tokens, and rows whose expiry no refresh can trust. */
static void
check_rows(CheckState *cs)
{
	const TokenRowCounts *n = &cs->counts;
	int64		bad_expiry = n->null_expiry + n->infinite_expiry + n->absurd_expiry;

	if (!cs->counted)
	{
		check_skip(cs, "rows without tokens", cs->not_counted);
		check_skip(cs, "rows with unusable expiry", cs->not_counted);
		return;
	}
	if (cs->settings.flow == CAL_FLOW_OAUTH2)
		check_emit(cs, "rows without tokens",
				   n->no_tokens == 0 ? CHECK_PASSED : CHECK_FAILED,
				   psprintf(INT64_FORMAT " of " INT64_FORMAT " rows have no "
							"refresh token", n->no_tokens, n->rows),
				   psprintf("Those users must authorize the application again; "
							"store each new pair with cal_update_tokens(). Find "
							"them with SELECT \"userUlid\" FROM %s WHERE "
							"\"calRefreshToken\" IS NULL;",
							cs->table.qualified_name));
	else
		check_emit(cs, "rows without tokens",
				   n->no_tokens == 0 ? CHECK_PASSED : CHECK_FAILED,
				   psprintf(INT64_FORMAT " of " INT64_FORMAT " rows have "
							"neither a refresh token nor a \"calManagedUserId\"",
							n->no_tokens, n->rows),
				   psprintf("Store a pair for each with cal_update_tokens(), or "
							"their \"calManagedUserId\" so that force refresh "
							"can; find them with SELECT \"userUlid\" FROM %s "
							"WHERE \"calRefreshToken\" IS NULL%s;",
							cs->table.qualified_name,
							cs->table.columns[APP_COLUMN_MANAGED_USER_ID].state ==
							APP_COLUMN_FITS ?
							" AND \"calManagedUserId\" IS NULL" : ""));
	check_emit(cs, "rows with unusable expiry",
			   bad_expiry == 0 ? CHECK_PASSED : CHECK_FAILED,
			   psprintf(INT64_FORMAT " of " INT64_FORMAT " rows: " INT64_FORMAT
						" NULL, " INT64_FORMAT " infinite, " INT64_FORMAT
						" absurd (before 2000, or more than a day ahead)",
						bad_expiry, n->rows, n->null_expiry,
						n->infinite_expiry, n->absurd_expiry),
			   "Store each user's real expiry with cal_update_tokens() (it "
			   "takes Cal.com's); a row whose expiry lies far ahead passes for "
			   "valid and is never refreshed, while NULL or a past expiry gets "
			   "it refreshed by the next job run.");
}

/*
 * Which of the functions the role may not execute, as GRANT statements
 * (NULL: none missing); a function that does not exist asks for the
 * extension's update.
 */
static char *
check_missing_grants(CheckState *cs, const CheckFunction *functions, int n,
					 StringInfo missing)
{
	StringInfoData grants;
	char	   *schema = get_namespace_name(cs->extension_schema);
	int			i;

	initStringInfo(&grants);
	for (i = 0; i < n; i++)
	{
		const CheckFunction *f = &functions[i];
		Oid			oid = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
										  CStringGetDatum(f->name),
										  PointerGetDatum(buildoidvector(f->argtypes,
																		 f->nargs)),
										  ObjectIdGetDatum(cs->extension_schema));

		if (!OidIsValid(oid))
		{
			appendStringInfo(missing, "%s%s%s (not installed)",
							 missing->len > 0 ? ", " : "", f->name, f->signature);
			appendStringInfo(&grants, "%sALTER EXTENSION cal_refresh UPDATE;",
							 grants.len > 0 ? " " : "");
			continue;
		}
		if (cal_proc_aclcheck(oid, cs->role, ACL_EXECUTE) == ACLCHECK_OK)
			continue;
		appendStringInfo(missing, "%s%s%s", missing->len > 0 ? ", " : "",
						 f->name, f->signature);
		appendStringInfo(&grants, "%sGRANT EXECUTE ON %s %s.%s%s TO %s;",
						 grants.len > 0 ? " " : "",
						 f->procedure ? "PROCEDURE" : "FUNCTION",
						 quote_identifier(schema), f->name, f->signature,
						 quote_identifier(cs->role_name));
	}
	return grants.len > 0 ? grants.data : NULL;
}

/* EXECUTE on one group of functions. */
static void
check_execute(CheckState *cs, const char *check, const CheckFunction *functions,
			  int n)
{
	StringInfoData missing;
	char	   *grants;

	if (!OidIsValid(cs->role))
	{
		check_emit(cs, check, CHECK_FAILED,
				   psprintf("role \"%s\" does not exist", cs->role_name),
				   "Name an existing role, or leave the argument out to check "
				   "your own.");
		return;
	}
	initStringInfo(&missing);
	grants = check_missing_grants(cs, functions, n, &missing);
	if (grants == NULL)
		check_emit(cs, check, CHECK_PASSED,
				   psprintf("%s may execute all %d", cs->role_name, n), NULL);
	else
		check_emit(cs, check, CHECK_FAILED,
				   psprintf("%s may not execute %s", cs->role_name,
							missing.data),
				   grants);
}

/* EXECUTE on the functions, SELECT and UPDATE on the table. */
void
check_privileges(CheckState *cs)
{
	bool		can_usage;
	bool		can_select;
	bool		can_update;

	check_execute(cs, "EXECUTE (application)", application_functions,
				  lengthof(application_functions));
	check_execute(cs, "EXECUTE (scheduled refresh)", scheduled_functions,
				  lengthof(scheduled_functions));
	if (!cs->table.is_table)
	{
		check_skip(cs, "SELECT, UPDATE on the table", "no table");
		return;
	}
	if (!OidIsValid(cs->role))
	{
		check_emit(cs, "SELECT, UPDATE on the table", CHECK_FAILED,
				   psprintf("role \"%s\" does not exist", cs->role_name),
				   "Name an existing role, or leave the argument out to check "
				   "your own.");
		return;
	}
	can_usage = cal_namespace_aclcheck(get_rel_namespace(cs->table.relid),
									   cs->role, ACL_USAGE) == ACLCHECK_OK;
	can_select = pg_class_aclcheck(cs->table.relid, cs->role, ACL_SELECT) ==
		ACLCHECK_OK;
	can_update = pg_class_aclcheck(cs->table.relid, cs->role, ACL_UPDATE) ==
		ACLCHECK_OK;
	check_emit(cs, "SELECT, UPDATE on the table",
			   can_usage && can_select && can_update ? CHECK_PASSED : CHECK_FAILED,
			   psprintf("on %s, %s may %s%s", cs->table.qualified_name,
						cs->role_name,
						can_select && can_update ? "SELECT and UPDATE" :
						can_select ? "SELECT, not UPDATE (the row lock needs "
						"UPDATE)" : can_update ? "UPDATE, not SELECT" :
						"neither SELECT nor UPDATE",
						can_usage ? "" : "; no USAGE on its schema"),
			   psprintf("%sGRANT SELECT, UPDATE ON %s TO %s;",
						can_usage ? "" :
						psprintf("GRANT USAGE ON SCHEMA %s TO %s; ",
								 quote_identifier(cs->table.schema),
								 quote_identifier(cs->role_name)),
						cs->table.qualified_name,
						quote_identifier(cs->role_name)));
}

/* The table, its columns, its key and its rows, in that order. */
void
check_table_all(CheckState *cs)
{
	check_table(cs);
	check_columns(cs);
	check_count_rows(cs);
	check_key(cs);
	check_rows(cs);
}
