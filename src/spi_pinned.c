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
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "spi_pinned.h"

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

void
spi_pinned_end(SpiPinned *session)
{
	if (session->switched_user)
		SetUserIdAndSecContext(session->saved_user,
							   session->saved_sec_context);
	AtEOXact_GUC(true, session->guc_nest_level);
	SPI_finish();
}

Oid
spi_pinned_begin_as_owner(Oid schema, const char *table, Oid known_relid,
						  Oid *owner, SpiPinned *session)
{
	Oid			relid = get_relname_relid(table, schema);

	if (!OidIsValid(relid))
		return InvalidOid;
	if (relid != known_relid)
	{
		HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(tuple))
			return InvalidOid;
		*owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
		ReleaseSysCache(tuple);
	}
	spi_pinned_begin(session, *owner);
	return relid;
}

SPIPlanPtr
spi_pinned_prepare_kept(const char *sql, int nargs, Oid *argtypes,
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
