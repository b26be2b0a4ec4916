/*-------------------------------------------------------------------------
 *
 * check_report.c
 *		How a check of cal_refresh_check() becomes a row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "check_report.h"

/* Adds one row; hint is kept only for a failed check. */
void
check_emit(CheckState *cs, const char *check, CheckOk ok, const char *detail,
		   const char *hint)
{
	Datum		values[4];
	bool		nulls[4] = {false, ok == CHECK_NOT_MADE, detail == NULL,
	hint == NULL || ok == CHECK_PASSED};

	values[0] = CStringGetTextDatum(check);
	values[1] = BoolGetDatum(ok == CHECK_PASSED);
	values[2] = detail != NULL ? CStringGetTextDatum(detail) : (Datum) 0;
	values[3] = nulls[3] ? (Datum) 0 : CStringGetTextDatum(hint);
	tuplestore_putvalues(cs->store, cs->desc, values, nulls);
}

/* A row that could not be checked, because of what came before. */
void
check_skip(CheckState *cs, const char *check, const char *why)
{
	check_emit(cs, check, CHECK_NOT_MADE, psprintf("not checked: %s", why),
			   NULL);
}
