/*-------------------------------------------------------------------------
 *
 * check_report.h
 *		What the files of cal_refresh_check() share: the state the checks
 *		fill in as they go, and how a check becomes a row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CHECK_REPORT_H
#define CHECK_REPORT_H

#include "utils/tuplestore.h"

#include "cal_refresh.h"
#include "token_store.h"
#include "app_table.h"

typedef enum CheckOk
{
	CHECK_FAILED,
	CHECK_PASSED,
	CHECK_NOT_MADE				/* ok is NULL */
} CheckOk;

/* What the checks learn as they go, and where their rows go. */
typedef struct CheckState
{
	Tuplestorestate *store;
	TupleDesc	desc;
	CalSettings settings;
	Oid			extension_schema;
	Oid			role;			/* whose privileges; InvalidOid: no such role */
	const char *role_name;
	const char *os_user;		/* the server's OS user, for chown hints */
	const char *calcom_blocked; /* why Cal.com is not asked, or NULL */
	AppTableReport table;
	bool		counted;		/* counts holds the table's rows */
	const char *not_counted;	/* else why not */
	TokenRowCounts counts;
} CheckState;

/* in check_report.c */
extern void check_emit(CheckState *cs, const char *check, CheckOk ok,
					   const char *detail, const char *hint);
extern void check_skip(CheckState *cs, const char *check, const char *why);

#endif							/* CHECK_REPORT_H */
