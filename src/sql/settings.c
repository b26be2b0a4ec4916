/*-------------------------------------------------------------------------
 *
 * settings.c
 *		Every setting (GUC) of cal_refresh: its variable, its definition,
 *		the hook that guards its value, and one snapshot of them all from
 *		which the configuration of each layer is filled.
 *
 * Values leave this file one way: settings_snapshot copies them into a
 * CalSettings, and the settings_*_config functions turn that into the
 * plain structs the layers below are handed (they read no GUC).  Adding a
 * setting: its variable and definition here, its field in CalSettings and
 * the config struct of its consumer, README's settings table, a test.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "app_table.h"
#include "calcom_parse.h"
#include "curl_wait.h"
#include "secret_file.h"
#include "settings.h"

/* The settings' variables; README.md's settings table says what each does. */
static char *client_id = NULL;
static char *secret_key_file = NULL;
static char *api_url = NULL;
static char *table_name = NULL;
static char *ca_file = NULL;
static int	timeout_ms = 10000;
static int	connect_timeout_ms = 3000;
static int	max_retries = 2;
static int	lock_timeout_ms = 5000;
static int	max_requests_per_minute = -1;
static int	flow = CAL_FLOW_MANAGED_USER;
static int	max_concurrency = 32;
static int	job_max_runtime_ms = 4 * 60 * 1000;
static int	cancel_grace_ms = 1000;
static bool track_stats = true;

static const struct config_enum_entry flow_options[] = {
	{"managed_user", CAL_FLOW_MANAGED_USER, false},
	{"oauth2", CAL_FLOW_OAUTH2, false},
	{NULL, 0, false}
};

/*
 * Only a library loaded at server start protects api_url and table_name
 * with their SUSET context from a session's first statement; loaded later,
 * any role could have set placeholders first.
 */
static bool loaded_at_server_start = false;

/* Guards cal_refresh.client_id: what Cal.com's client ids are made of. */
static bool
settings_accept_client_id(char **newval, void **extra, GucSource source)
{
	if (!calcom_client_id_is_valid(*newval))
	{
		GUC_check_errdetail("A client id may hold only letters, digits, \"-\" "
							"and \"_\", at most 128 of them.");
		return false;
	}
	return true;
}

/* Guards cal_refresh.api_url: https, or http to a loopback host. */
static bool
settings_accept_api_url(char **newval, void **extra, GucSource source)
{
	const char *why;

	if (!calcom_url_is_acceptable(*newval, &why))
	{
		GUC_check_errdetail("%s", why);
		return false;
	}
	return true;
}

/* Guards cal_refresh.table_name: exactly schema.table, parsed without raising. */
static bool
settings_accept_table_name(char **newval, void **extra, GucSource source)
{
	char		schema[NAMEDATALEN];
	char		table[NAMEDATALEN];

	if (!app_table_parse_name(*newval, schema, table))
	{
		GUC_check_errdetail("The table must be given as schema.table, "
							"for example public.\"CalendarIntegration\".");
		return false;
	}
	return true;
}

/*
 * Defines every setting and reserves the prefix, so that a misspelt one
 * is an error; from _PG_init.  Notes whether the library is being
 * preloaded.
 */
void
settings_define(void)
{
	loaded_at_server_start = process_shared_preload_libraries_in_progress;

	DefineCustomStringVariable("cal_refresh.client_id",
							   "Cal.com OAuth client id of the platform.",
							   NULL,
							   &client_id,
							   "",
							   PGC_SUSET,
							   0,
							   settings_accept_client_id, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.secret_key_file",
							   "File holding the Cal.com OAuth client secret.",
							   "Owned by the server's user with mode 0600, or by "
							   "root with mode 0640; re-read when replaced.",
							   &secret_key_file,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.api_url",
							   "Base URL of the Cal.com API.",
							   "https only, except http to a loopback host.",
							   &api_url,
							   "https://api.cal.com",
							   PGC_SUSET,
							   0,
							   settings_accept_api_url, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.table_name",
							   "Schema-qualified table holding the tokens.",
							   "Resolved without search_path.",
							   &table_name,
							   "public.\"CalendarIntegration\"",
							   PGC_SUSET,
							   0,
							   settings_accept_table_name, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.ca_file",
							   "Extra CA bundle for a Cal.com behind a private CA.",
							   "Certificates are always verified.",
							   &ca_file,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.timeout",
							"Time limit of one Cal.com endpoint's attempt.",
							"Connect, TLS, request and response included.",
							&timeout_ms,
							10000, 100, 300000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.connect_timeout",
							"Time limit for connecting to Cal.com.",
							NULL,
							&connect_timeout_ms,
							3000, 100, 300000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.max_retries",
							"Retries of one Cal.com endpoint after 429, 5xx or a "
							"failed connection.",
							"A refresh is re-sent only when Cal.com cannot have "
							"spent its token.",
							&max_retries,
							2, 0, 10,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.lock_timeout",
							"How long a refresh waits for another session's "
							"refresh of the same user.",
							"After this the call fails with error_code busy; "
							"0 waits as long as lock_timeout allows.",
							&lock_timeout_ms,
							5000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("cal_refresh.flow",
							 "How the application's users authorized it with Cal.com.",
							 "managed_user: platform managed users (refresh, then "
							 "force refresh); oauth2: Cal.com's OAuth2 token endpoint.",
							 &flow,
							 CAL_FLOW_MANAGED_USER,
							 flow_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.max_requests_per_minute",
							"Requests to Cal.com per minute, for the whole cluster.",
							"-1 follows cal_refresh.flow: 400 for managed users (Cal.com "
							"allows 500 per OAuth client), 100 for OAuth2 (120 per "
							"client IP); 0 lifts the limit.",
							&max_requests_per_minute,
							-1, -1, 100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.max_concurrency",
							"Users a batch refreshes at once.",
							"Their requests run side by side; "
							"cal_refresh.max_requests_per_minute still paces them.",
							&max_concurrency,
							32, 1, CURL_WAIT_MAX_TRANSFERS,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.cancel_grace",
							"How long a cancelled refresh waits for the answers "
							"of requests already sent.",
							"Cal.com rotates a pair when it answers; waiting lets "
							"the pair be journaled.  0 cancels at once.",
							&cancel_grace_ms,
							1000, 0, 10000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.job_max_runtime",
							"Time after which a scheduled refresh starts no "
							"further batch and no further user.",
							"Applies to cal_refresh_expiring_tokens_job and to "
							"each cal_refresh_expiring_tokens call.",
							&job_max_runtime_ms,
							4 * 60 * 1000, 1000, 24 * 60 * 60 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("cal_refresh.track_stats",
							 "Counts requests to Cal.com in cal_refresh_stats.",
							 "Off stops counting; what was counted stays.",
							 &track_stats,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("cal_refresh");
}

/*
 * Copies every setting as it stands now into *settings (the flow's
 * default request budget resolved), for one call to use throughout.
 */
void
settings_snapshot(CalSettings *settings)
{
	settings->preloaded = loaded_at_server_start;
	settings->client_id = client_id != NULL ? client_id : "";
	settings->secret_key_file = secret_key_file != NULL ? secret_key_file : "";
	settings->api_url = api_url != NULL ? api_url : "";
	settings->table_name = table_name != NULL ? table_name : "";
	settings->ca_file = ca_file != NULL ? ca_file : "";
	settings->timeout_ms = timeout_ms;
	settings->connect_timeout_ms = connect_timeout_ms;
	settings->max_retries = max_retries;
	settings->lock_timeout_ms = lock_timeout_ms;
	settings->flow = (CalFlow) flow;
	settings->max_requests_per_minute = max_requests_per_minute >= 0 ?
		max_requests_per_minute :
		calcom_flow((CalFlow) flow)->requests_per_minute;
	settings->max_concurrency = max_concurrency;
	settings->job_max_runtime_ms = job_max_runtime_ms;
	settings->cancel_grace_ms = cancel_grace_ms;
	settings->track_stats = track_stats;
}

/* The Cal.com client's configuration, with the secret read from its file. */
void
settings_client_config(const CalSettings *settings, const char *secret,
					   CalClientConfig *client)
{
	client->api_url = settings->api_url;
	client->client_id = settings->client_id;
	client->secret_key = secret;
	client->ca_file = settings->ca_file;
	client->timeout_ms = settings->timeout_ms;
	client->connect_timeout_ms = settings->connect_timeout_ms;
	client->max_retries = settings->max_retries;
	client->max_requests_per_minute = settings->max_requests_per_minute;
	client->cancel_grace_ms = settings->cancel_grace_ms;
	client->flow = settings->flow;
	client->track_stats = settings->track_stats;
}

/*
 * The configuration of a refresh, from the settings, for a function of
 * the extension in extension_schema.  Returns false, with the failure in
 * *result, when the library was not preloaded; a missing or unsafe
 * Cal.com configuration is noted in config->config_error_code instead,
 * for refresh.c to report when it needs to call Cal.com.  need_calcom
 * false (cal_update_tokens) skips the Cal.com settings and the secret
 * file.
 */
bool
settings_refresh_config(const CalSettings *settings, Oid extension_schema,
						bool need_calcom, RefreshConfig *config,
						TokenResult *result)
{
	const char *secret;
	char	   *problem;

	memset(config, 0, sizeof(*config));
	if (!settings->preloaded)
	{
		refresh_set_failure(result, CAL_ERROR_CONFIG_INSECURE,
							"cal_refresh is not in shared_preload_libraries: "
							"add it there and restart the server");
		return false;
	}
	config->table_name = settings->table_name;
	config->lock_timeout_ms = settings->lock_timeout_ms;
	config->max_concurrency = settings->max_concurrency;
	config->extension_schema = extension_schema;
	config->client.track_stats = settings->track_stats;
	if (!need_calcom)
		return true;

	if (settings->client_id[0] == '\0')
	{
		config->config_error_code = CAL_ERROR_CONFIG_MISSING;
		config->config_error = "cal_refresh.client_id is not set";
		return true;
	}
	/* An OAuth2 public client has no secret: no file is then no error. */
	if (settings->flow == CAL_FLOW_OAUTH2 && settings->secret_key_file[0] == '\0')
	{
		settings_client_config(settings, "", &config->client);
		return true;
	}
	switch (secret_file_get(settings->secret_key_file, &secret, &problem))
	{
		case SECRET_FILE_OK:
			break;
		case SECRET_FILE_MISSING:
			config->config_error_code = CAL_ERROR_CONFIG_MISSING;
			config->config_error = problem;
			return true;
		case SECRET_FILE_INSECURE:
			config->config_error_code = CAL_ERROR_CONFIG_INSECURE;
			config->config_error = problem;
			return true;
	}
	settings_client_config(settings, secret, &config->client);
	return true;
}
