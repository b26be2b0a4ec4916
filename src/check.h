/*-------------------------------------------------------------------------
 *
 * check.h
 *		What the two files of cal_refresh_check() share: the state the
 *		checks fill in as they go, and how a check becomes a row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CHECK_H
#define CHECK_H

#include "utils/tuplestore.h"

#include "cal_refresh.h"
#include "token_store.h"
#include "token_table.h"

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
	TokenTableReport table;
	bool		counted;		/* counts holds the table's rows */
	const char *not_counted;	/* else why not */
	TokenRowCounts counts;
} CheckState;

extern void check_emit(CheckState *cs, const char *check, CheckOk ok,
					   const char *detail, const char *hint);
extern void check_skip(CheckState *cs, const char *check, const char *why);

/* check_table.c: the table, its columns, key and rows; then privileges. */
extern void check_table_all(CheckState *cs);
extern void check_privileges(CheckState *cs);

#endif							/* CHECK_H */
