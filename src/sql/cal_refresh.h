/*-------------------------------------------------------------------------
 *
 * cal_refresh.h
 *		What the SQL entry points share: settings turned into a
 *		RefreshConfig, and cal_token_result rows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAL_REFRESH_H
#define CAL_REFRESH_H

#include "access/tupdesc.h"
#include "fmgr.h"
#include "utils/tuplestore.h"

#include "refresh.h"
#include "settings.h"

/*
 * Columns of cal_token_result: 9 since 1.2 (recovered_from_journal), 8
 * before; the library serves both.
 */
#define CAL_RESULT_COLUMNS 9

/* in cal_refresh.c */
extern bool cal_refresh_config(FunctionCallInfo fcinfo,
							   const CalSettings *settings,
							   bool need_calcom, RefreshConfig *config,
							   TokenResult *result);
extern int	cal_error_sqlstate(CalError error_code, bool over_size_cap);
extern void cal_arg_not_null(FunctionCallInfo fcinfo, int argno,
							 const char *name);
extern int64 cal_token_window_arg(FunctionCallInfo fcinfo, int argno,
								  const char *name, const char *why,
								  CalFlow flow);
extern void cal_result_values(const TokenResult *result, int natts,
							  Datum *values, bool *nulls);

#endif							/* CAL_REFRESH_H */
