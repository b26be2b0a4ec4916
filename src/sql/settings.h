/*-------------------------------------------------------------------------
 *
 * settings.h
 *		Every setting of cal_refresh, read at one moment, and the
 *		configuration of each layer filled from them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SETTINGS_H
#define SETTINGS_H

#include "refresh.h"

/* Every setting, as settings_snapshot found it. */
typedef struct CalSettings
{
	bool		preloaded;		/* the library was loaded at server start */
	const char *client_id;
	const char *secret_key_file;
	const char *api_url;
	const char *table_name;
	const char *ca_file;
	int			timeout_ms;
	int			connect_timeout_ms;
	int			max_retries;
	int			lock_timeout_ms;
	CalFlow		flow;
	int			max_requests_per_minute;	/* the flow's default resolved */
	int			max_concurrency;
	int			job_max_runtime_ms;
	int			cancel_grace_ms;
	bool		track_stats;
} CalSettings;

/* in settings.c */
extern void settings_define(void);
extern void settings_snapshot(CalSettings *settings);
extern void settings_client_config(const CalSettings *settings,
								   const char *secret,
								   CalClientConfig *client);
extern bool settings_refresh_config(const CalSettings *settings,
									Oid extension_schema, bool need_calcom,
									RefreshConfig *config,
									TokenResult *result);

#endif							/* SETTINGS_H */
