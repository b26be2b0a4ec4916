/*-------------------------------------------------------------------------
 *
 * cal_error.c
 *		The table of error codes (cal_error.h), as data.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "cal_error.h"

#define CAL_ERROR_ROW(code, name, sqlstate, backs_off, service, stem) \
	{name, sqlstate, backs_off, service, stem},

static const CalErrorDesc cal_errors[CAL_ERROR_COUNT] = {
	{NULL, 0, false, false, NULL},
	CAL_ERROR_TABLE(CAL_ERROR_ROW)
};

/* The row of a code; CAL_ERROR_NONE's for one out of range. */
const CalErrorDesc *
cal_error(CalError code)
{
	if ((int) code < 0 || code >= CAL_ERROR_COUNT)
		return &cal_errors[CAL_ERROR_NONE];
	return &cal_errors[code];
}

/* The error_code callers see, or NULL for no error. */
const char *
cal_error_name(CalError code)
{
	return cal_error(code)->name;
}
