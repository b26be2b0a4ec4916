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

/*
 * Columns of cal_token_result: 9 since 1.2 (recovered_from_journal), 8
 * before; the library serves both.
 */
#define CAL_RESULT_COLUMNS 9

/*
 * Fills *config from the settings, for the SQL function being called.
 * Returns false, with the failure in *result, when the library was not
 * preloaded; a missing or unsafe Cal.com configuration is noted in
 * config->config_error_code instead, for refresh.c to report when it
 * needs to call Cal.com.  need_calcom false (cal_update_tokens) skips the
 * Cal.com settings and the secret file.
 */
extern bool cal_settings_to_config(FunctionCallInfo fcinfo,
								   RefreshConfig *config, bool need_calcom,
								   CalResult *result);

/* The settings cal_refresh_check() inspects, as they stand. */
typedef struct CalSettings
{
	bool		preloaded;		/* loaded from shared_preload_libraries */
	const char *client_id;
	const char *secret_key_file;
	const char *api_url;
	const char *table_name;
	int			max_requests_per_minute;	/* the flow's default resolved */
	CalFlow		flow;
} CalSettings;

extern void cal_settings_read(CalSettings *settings);
extern int	cal_error_sqlstate(const char *error_code, bool over_size_cap);
extern int	cal_requests_per_minute(void);
extern void cal_client_config(const char *secret, CalClientConfig *client);

/* Raises 22004 when argument argno, called name, is NULL. */
extern void cal_arg_not_null(FunctionCallInfo fcinfo, int argno,
							 const char *name);

/*
 * An interval argument measuring time before a token's expiry, in
 * microseconds: NULL is 22004, outside 0 to the flow's token lifetime
 * less 5 minutes (55 or 25) 22023, with why the limit matters in the
 * detail.
 */
extern int64 cal_token_window_arg(FunctionCallInfo fcinfo, int argno,
								  const char *name, const char *why);

/* A cal_token_result row's values, for a row type of natts columns. */
extern void cal_result_values(const CalResult *result, int natts,
							  Datum *values, bool *nulls);

/* cal_refresh.job_max_runtime, in milliseconds. */
extern int	cal_job_max_runtime(void);

#endif							/* CAL_REFRESH_H */
