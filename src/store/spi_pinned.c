/*-------------------------------------------------------------------------
 *
 * spi_pinned.c
 *		SPI sessions with search_path pinned, optionally as another role.
 *
 * Every statement cal_refresh runs names its tables schema-qualified; its
 * operators and functions are found through search_path, so that is
 * pinned to pg_catalog (pg_temp last, or it would be searched first for
 * types) as a GUC nest level, the way postgres_fdw sets its transmission
 * modes.  Statements on the extension's own bookkeeping run as the owner
 * of that table, so that callers need no privilege on it; they run as a
 * security-restricted operation, as REFRESH MATERIALIZED VIEW does.  An
 * error undoes both with the (sub)transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "spi_pinned.h"

/*
 * SPI_connect with search_path pinned.  With run_as valid, statements run
 * as that role in a security-restricted operation until spi_pinned_end.
 */
void
spi_pinned_begin(SpiPinned *session, Oid run_as)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	session->guc_nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	/*
	 * auto_explain (PostgreSQL 16 on) logs the parameters of the statements
	 * it explains, and ours carry tokens: none of them, for our statements.
	 */
	if (GetConfigOption("auto_explain.log_parameter_max_length", true, false) != NULL)
		(void) set_config_option("auto_explain.log_parameter_max_length", "0",
								 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	session->switched_user = false;
	if (OidIsValid(run_as))
		spi_pinned_run_as(session, run_as);
}

/*
 * From here to spi_pinned_end, statements run as run_as in a
 * security-restricted operation (the session must not have switched yet).
 */
void
spi_pinned_run_as(SpiPinned *session, Oid run_as)
{
	Assert(!session->switched_user);
	GetUserIdAndSecContext(&session->saved_user, &session->saved_sec_context);
	SetUserIdAndSecContext(run_as, session->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	session->switched_user = true;
}

/* Ends the session: the user and search_path as they were, SPI_finish. */
void
spi_pinned_end(SpiPinned *session)
{
	if (session->switched_user)
		SetUserIdAndSecContext(session->saved_user,
							   session->saved_sec_context);
	AtEOXact_GUC(true, session->guc_nest_level);
	SPI_finish();
}

/* The extension's own table in schema (a member of it), or InvalidOid. */
/*
 * The relid of the extension's own table called table in schema, or
 * InvalidOid when there is none, or when a table of that name is not a
 * member of the cal_refresh extension: a role with CREATE on the schema
 * could have planted it, to be handed every pair written or to feed pairs
 * into users' rows.  The members found are remembered (a pg_depend probe
 * per statement would be a cost on every refresh).
 */
Oid
spi_pinned_extension_table(Oid schema, const char *table)
{
	static Oid	members[4];
	static int	next_member = 0;
	Oid			relid = get_relname_relid(table, schema);
	Oid			extension;
	int			i;

	if (!OidIsValid(relid))
		return InvalidOid;
	for (i = 0; i < (int) lengthof(members); i++)
		if (members[i] == relid)
			return relid;
	extension = get_extension_oid("cal_refresh", true);
	if (!OidIsValid(extension) ||
		getExtensionOfObject(RelationRelationId, relid) != extension)
		return InvalidOid;
	members[next_member] = relid;
	next_member = (next_member + 1) % (int) lengthof(members);
	return relid;
}

/*
 * For the extension's own tables: starts a session as the owner of table
 * in schema, and returns its relid, or InvalidOid (no session) when there
 * is no such table.  *owner caches the owner of known_relid; a different
 * relid (the table is new to the caller, or was replaced) is looked up,
 * and the caller prepares its statements again.
 */
Oid
spi_pinned_begin_as_owner(Oid schema, const char *table, Oid known_relid,
						  Oid *owner, SpiPinned *session)
{
	Oid			relid = spi_pinned_extension_table(schema, table);

	if (!OidIsValid(relid))
		return InvalidOid;
	if (relid != known_relid)
	{
		*owner = spi_pinned_rel_owner(relid);
		if (!OidIsValid(*owner))
			return InvalidOid;
	}
	spi_pinned_begin(session, *owner);
	return relid;
}

/* A relation's owner, or InvalidOid when there is no such relation. */
Oid
spi_pinned_rel_owner(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Statements on a table of the application's run with the caller's rights,
 * but for a superuser's call on a table a lesser role owns: that runs as
 * the owner, security-restricted, as VACUUM and REINDEX do
 * (CVE-2022-1552), so that none of the owner's code runs as superuser.
 */
void
spi_pinned_run_as_reader(SpiPinned *session, Oid owner)
{
	if (superuser() && !superuser_arg(owner))
		spi_pinned_run_as(session, owner);
}

/*
 * A statement prepared once and kept for the session (SPI_keepplan).
 * CURSOR_OPT_GENERIC_PLAN in cursor_options keeps parameter values out of
 * every plan (a custom plan folds them in, and debug_print_plan or
 * auto_explain would print them): for statements that carry a token.
 */
SPIPlanPtr
spi_pinned_prepare_saved(const char *sql, int nargs, Oid *argtypes,
						int cursor_options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * Runs fn(arg) in a subtransaction, kept when keep is true and fn
 * succeeded, rolled back otherwise.  NULL when fn succeeded, else its
 * error, copied into error_context, for the caller to judge (a cancel
 * must be re-raised).
 */
ErrorData *
spi_pinned_in_subtransaction(void (*fn) (void *arg), void *arg, bool keep,
							 MemoryContext error_context)
{
	ResourceOwner owner = CurrentResourceOwner;
	MemoryContext context = CurrentMemoryContext;
	ErrorData  *volatile error = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		fn(arg);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(error_context);
		error = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(context);
	CurrentResourceOwner = owner;
	return error;
}
