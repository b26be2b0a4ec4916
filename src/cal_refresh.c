/*-------------------------------------------------------------------------
 *
 * cal_refresh.c
 *		Module entry: settings (GUCs) and the SQL-callable functions.
 *
 * This file turns settings and arguments into plain structs, hands them to
 * refresh.c, and turns what comes back into a cal_token_result row.
 * Misuse (a NULL or malformed argument) raises; every operational failure
 * comes back as success = false with a stable error_code.  The scheduled
 * refresh's entry points are in cal_schedule.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cal_refresh.h"
#include "calcom_parse.h"
#include "compat.h"
#include "curl_wait.h"
#include "journal.h"
#include "rate_limit.h"
#include "secret_file.h"
#include "stats.h"
#include "token_table.h"

PG_MODULE_MAGIC;

/*
 * The window ahead of a token's expiry stays this much shorter than the
 * flow's token lifetime (60 minutes, or 30 for OAuth2): a window as long
 * would always refresh.
 */
#define CAL_TOKEN_WINDOW_MARGIN_MINUTES 5

/* A user key longer than this is not a key. */
#define CAL_USER_ULID_MAX 1024

/* Millisecond expiries must fall between the epoch and the year 10000. */
#define CAL_EXPIRY_MAX_MS INT64CONST(253402300800000)

/* Settings; see README.md for their meaning. */
static char *cal_client_id = NULL;
static char *cal_secret_key_file = NULL;
static char *cal_api_url = NULL;
static char *cal_table_name = NULL;
static char *cal_ca_file = NULL;
static int	cal_timeout_ms = 10000;
static int	cal_connect_timeout_ms = 3000;
static int	cal_max_retries = 2;
static int	cal_lock_timeout_ms = 5000;
static int	cal_max_requests_per_minute = -1;
static int	cal_flow = CAL_FLOW_MANAGED_USER;

static const struct config_enum_entry cal_flow_options[] = {
	{"managed_user", CAL_FLOW_MANAGED_USER, false},
	{"oauth2", CAL_FLOW_OAUTH2, false},
	{NULL, 0, false}
};
static int	cal_max_concurrency = 32;
static int	cal_job_max_runtime_ms = 4 * 60 * 1000;
static int	cal_cancel_grace_ms = 1000;

/*
 * Only a library loaded at server start protects api_url and table_name
 * with their SUSET context from a session's first statement; loaded later,
 * any role could have set placeholders first.
 */
static bool loaded_at_server_start = false;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(cal_refresh_user_tokens);
PG_FUNCTION_INFO_V1(cal_update_tokens);
PG_FUNCTION_INFO_V1(cal_update_tokens_ms);
PG_FUNCTION_INFO_V1(cal_access_token);

static bool
check_client_id(char **newval, void **extra, GucSource source)
{
	if (!calcom_client_id_is_valid(*newval))
	{
		GUC_check_errdetail("A client id may hold only letters, digits, \"-\" "
							"and \"_\", at most 128 of them.");
		return false;
	}
	return true;
}

static bool
check_api_url(char **newval, void **extra, GucSource source)
{
	const char *why;

	if (!calcom_url_is_acceptable(*newval, &why))
	{
		GUC_check_errdetail("%s", why);
		return false;
	}
	return true;
}

static bool
check_table_name(char **newval, void **extra, GucSource source)
{
	char		schema[NAMEDATALEN];
	char		table[NAMEDATALEN];

	if (!token_table_parse_name(*newval, schema, table))
	{
		GUC_check_errdetail("The table must be given as schema.table, "
							"for example public.\"CalendarIntegration\".");
		return false;
	}
	return true;
}

void
_PG_init(void)
{
	loaded_at_server_start = process_shared_preload_libraries_in_progress;

	DefineCustomStringVariable("cal_refresh.client_id",
							   "Cal.com OAuth client id of the platform.",
							   NULL,
							   &cal_client_id,
							   "",
							   PGC_SUSET,
							   0,
							   check_client_id, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.secret_key_file",
							   "File holding the Cal.com OAuth client secret.",
							   "Owned by the server's user with mode 0600, or by "
							   "root with mode 0640; re-read when replaced.",
							   &cal_secret_key_file,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.api_url",
							   "Base URL of the Cal.com API.",
							   "https only, except http to a loopback host.",
							   &cal_api_url,
							   "https://api.cal.com",
							   PGC_SUSET,
							   0,
							   check_api_url, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.table_name",
							   "Schema-qualified table holding the tokens.",
							   "Resolved without search_path.",
							   &cal_table_name,
							   "public.\"CalendarIntegration\"",
							   PGC_SUSET,
							   0,
							   check_table_name, NULL, NULL);
	DefineCustomStringVariable("cal_refresh.ca_file",
							   "Extra CA bundle for a Cal.com behind a private CA.",
							   "Certificates are always verified.",
							   &cal_ca_file,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.timeout",
							"Time limit of one Cal.com endpoint's attempt.",
							"Connect, TLS, request and response included.",
							&cal_timeout_ms,
							10000, 100, 300000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.connect_timeout",
							"Time limit for connecting to Cal.com.",
							NULL,
							&cal_connect_timeout_ms,
							3000, 100, 300000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.max_retries",
							"Retries of one Cal.com endpoint after 429, 5xx or a "
							"failed connection.",
							"A refresh is re-sent only when Cal.com cannot have "
							"spent its token.",
							&cal_max_retries,
							2, 0, 10,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.lock_timeout",
							"How long a refresh waits for another session's "
							"refresh of the same user.",
							"After this the call fails with error_code busy; "
							"0 waits as long as lock_timeout allows.",
							&cal_lock_timeout_ms,
							5000, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("cal_refresh.flow",
							 "How the application's users authorized it with Cal.com.",
							 "managed_user: platform managed users (refresh, then "
							 "force refresh); oauth2: Cal.com's OAuth2 token endpoint.",
							 &cal_flow,
							 CAL_FLOW_MANAGED_USER,
							 cal_flow_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.max_requests_per_minute",
							"Requests to Cal.com per minute, for the whole cluster.",
							"-1 follows cal_refresh.flow: 400 for managed users (Cal.com "
							"allows 500 per OAuth client), 100 for OAuth2 (120 per "
							"client IP); 0 lifts the limit.",
							&cal_max_requests_per_minute,
							-1, -1, 100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.max_concurrency",
							"Users a batch refreshes at once.",
							"Their requests run side by side; "
							"cal_refresh.max_requests_per_minute still paces them.",
							&cal_max_concurrency,
							32, 1, CURL_WAIT_MAX_TRANSFERS,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.cancel_grace",
							"How long a cancelled refresh waits for the answers "
							"of requests already sent.",
							"Cal.com rotates a pair when it answers; waiting lets "
							"the pair be journaled.  0 cancels at once.",
							&cal_cancel_grace_ms,
							1000, 0, 10000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("cal_refresh.job_max_runtime",
							"Time after which a scheduled refresh starts no "
							"further batch and no further user.",
							"Applies to cal_refresh_expiring_tokens_job and to "
							"each cal_refresh_expiring_tokens call.",
							&cal_job_max_runtime_ms,
							4 * 60 * 1000, 1000, 24 * 60 * 60 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("cal_refresh.track_stats",
							 "Counts requests to Cal.com in cal_refresh_stats.",
							 "Off stops counting; what was counted stays.",
							 &stats_track,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("cal_refresh");

	if (loaded_at_server_start)
	{
		rate_limit_init();
		journal_init();
		stats_init();
	}
	calcom_client_init();
}

int
cal_job_max_runtime(void)
{
	return cal_job_max_runtime_ms;
}

bool
cal_settings_to_config(FunctionCallInfo fcinfo, RefreshConfig *config,
					   bool need_calcom, CalResult *result)
{
	const char *secret;
	char	   *problem;

	memset(config, 0, sizeof(*config));
	if (!loaded_at_server_start)
	{
		refresh_set_failure(result, CAL_ERR_CONFIG_INSECURE,
							"cal_refresh is not in shared_preload_libraries: "
							"add it there and restart the server");
		return false;
	}
	config->table_name = cal_table_name;
	config->lock_timeout_ms = cal_lock_timeout_ms;
	config->max_concurrency = cal_max_concurrency;
	/* Our functions live in the extension's schema, and so does its table. */
	config->extension_schema = get_func_namespace(fcinfo->flinfo->fn_oid);
	if (!need_calcom)
		return true;

	if (cal_client_id == NULL || cal_client_id[0] == '\0')
	{
		config->config_error_code = CAL_ERR_CONFIG_MISSING;
		config->config_error = "cal_refresh.client_id is not set";
		return true;
	}
	/* An OAuth2 public client has no secret: no file is then no error. */
	if (cal_flow == CAL_FLOW_OAUTH2 &&
		(cal_secret_key_file == NULL || cal_secret_key_file[0] == '\0'))
	{
		cal_client_config("", &config->client);
		return true;
	}
	switch (secret_file_get(cal_secret_key_file, &secret, &problem))
	{
		case SECRET_FILE_OK:
			break;
		case SECRET_FILE_MISSING:
			config->config_error_code = CAL_ERR_CONFIG_MISSING;
			config->config_error = problem;
			return true;
		case SECRET_FILE_INSECURE:
			config->config_error_code = CAL_ERR_CONFIG_INSECURE;
			config->config_error = problem;
			return true;
	}
	cal_client_config(secret, &config->client);
	return true;
}

/* cal_refresh.max_requests_per_minute, -1 being the flow's default. */
int
cal_requests_per_minute(void)
{
	return cal_max_requests_per_minute >= 0 ? cal_max_requests_per_minute :
		calcom_flow((CalFlow) cal_flow)->requests_per_minute;
}

/* The Cal.com client's settings, with the secret read from its file. */
void
cal_client_config(const char *secret, CalClientConfig *client)
{
	client->api_url = cal_api_url;
	client->client_id = cal_client_id;
	client->secret_key = secret;
	client->ca_file = cal_ca_file;
	client->timeout_ms = cal_timeout_ms;
	client->connect_timeout_ms = cal_connect_timeout_ms;
	client->max_retries = cal_max_retries;
	client->max_requests_per_minute = cal_requests_per_minute();
	client->cancel_grace_ms = cal_cancel_grace_ms;
	client->flow = (CalFlow) cal_flow;
}

/*
 * The settings as they stand, unchecked, for cal_refresh_check(), which
 * reports what is wrong with them instead of failing on the first.
 */
void
cal_settings_read(CalSettings *settings)
{
	settings->preloaded = loaded_at_server_start;
	settings->client_id = cal_client_id != NULL ? cal_client_id : "";
	settings->secret_key_file = cal_secret_key_file != NULL ?
		cal_secret_key_file : "";
	settings->api_url = cal_api_url != NULL ? cal_api_url : "";
	settings->table_name = cal_table_name != NULL ? cal_table_name : "";
	settings->max_requests_per_minute = cal_requests_per_minute();
	settings->flow = (CalFlow) cal_flow;
}

void
cal_arg_not_null(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

int64
cal_token_window_arg(FunctionCallInfo fcinfo, int argno, const char *name,
					 const char *why)
{
	const CalFlowDesc *flow = calcom_flow((CalFlow) cal_flow);
	int			max_minutes = flow->access_token_minutes -
		CAL_TOKEN_WINDOW_MARGIN_MINUTES;
	Interval   *window;
	int64		window_us;

	cal_arg_not_null(fcinfo, argno, name);
	window = PG_GETARG_INTERVAL_P(argno);
	/* Checked: an absurd (or, since PostgreSQL 17, infinite) interval. */
	if (pg_mul_s64_overflow((int64) window->month * DAYS_PER_MONTH +
							window->day, USECS_PER_DAY, &window_us) ||
		pg_add_s64_overflow(window_us, window->time, &window_us) ||
		window_us < 0 || window_us > max_minutes * USECS_PER_MINUTE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 0 and %d minutes", name, max_minutes),
				 errdetail("Cal.com access tokens live %d minutes (cal_refresh.flow = %s); %s.",
						   flow->access_token_minutes, flow->name, why)));
	return window_us;
}

/* A required text argument: NULL is 22004, empty or oversized 22023. */
static char *
cal_text_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *value;

	cal_arg_not_null(fcinfo, argno, name);
	value = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name)));
	return value;
}

static char *
cal_user_ulid_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *user_ulid = cal_text_arg(fcinfo, argno, "user_ulid");
	const char *p;

	if (strlen(user_ulid) > CAL_USER_ULID_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user_ulid is longer than %d bytes", CAL_USER_ULID_MAX)));
	for (p = user_ulid; *p != '\0'; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("user_ulid contains control characters")));
	return user_ulid;
}

/* A token argument; its value never appears in a message. */
static char *
cal_token_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *token = cal_text_arg(fcinfo, argno, name);

	if (!calcom_token_is_plausible(token))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not a Cal.com token", name),
				 errdetail("A token is 1 to %d printable ASCII characters "
						   "without spaces.", CAL_TOKEN_MAX)));
	return token;
}

/*
 * An expiry argument, as timestamptz or as Cal.com's milliseconds since
 * the epoch: NULL is 22004, an infinite or absurd value 22023.
 */
static TimestampTz
cal_expiry_arg(FunctionCallInfo fcinfo, int argno, const char *name,
			   bool milliseconds)
{
	int64		ms;

	cal_arg_not_null(fcinfo, argno, name);
	if (!milliseconds)
	{
		TimestampTz value = PG_GETARG_TIMESTAMPTZ(argno);

		if (TIMESTAMP_NOT_FINITE(value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be a finite timestamp", name)));
		return value;
	}
	ms = PG_GETARG_INT64(argno);
	if (ms <= 0 || ms >= CAL_EXPIRY_MAX_MS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be milliseconds since 1970-01-01, "
						"between 1 and %lld",
						name, (long long) CAL_EXPIRY_MAX_MS - 1)));
	return ms * 1000 -
		(TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

void
cal_result_values(const CalResult *result, int natts, Datum *values,
				  bool *nulls)
{
	if (natts != CAL_RESULT_COLUMNS && natts != CAL_RESULT_COLUMNS - 1)
		elog(ERROR, "cal_token_result has %d columns", natts);
	memset(nulls, true, sizeof(bool) * CAL_RESULT_COLUMNS);
	if (natts == CAL_RESULT_COLUMNS)
	{
		values[8] = BoolGetDatum(result->recovered);
		nulls[8] = false;
	}
	values[0] = BoolGetDatum(result->success);
	nulls[0] = false;
#define CAL_SET_TEXT(i, s) \
	do { if ((s) != NULL) { values[i] = CStringGetTextDatum(s); nulls[i] = false; } } while (0)
	CAL_SET_TEXT(1, result->user_ulid);
	CAL_SET_TEXT(2, result->method);
	CAL_SET_TEXT(3, result->access_token);
	CAL_SET_TEXT(6, result->error_code);
	CAL_SET_TEXT(7, result->error);
#undef CAL_SET_TEXT
	if (result->has_access_expiry)
	{
		values[4] = TimestampTzGetDatum(result->access_expires_at);
		nulls[4] = false;
	}
	if (result->has_refresh_expiry)
	{
		values[5] = TimestampTzGetDatum(result->refresh_expires_at);
		nulls[5] = false;
	}
}

static Datum
cal_result_datum(FunctionCallInfo fcinfo, const CalResult *result)
{
	TupleDesc	desc;
	Datum		values[CAL_RESULT_COLUMNS];
	bool		nulls[CAL_RESULT_COLUMNS];

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	cal_result_values(result, desc->natts, values, nulls);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/*
 * Work happens in a context of its own, deleted after the result row is
 * built, so a loop of calls in one statement does not accumulate memory.
 */
static MemoryContext
cal_begin_call(void)
{
	return MemoryContextSwitchTo(AllocSetContextCreate(CurrentMemoryContext,
													   "cal_refresh call",
													   ALLOCSET_SMALL_SIZES));
}

static Datum
cal_end_call(FunctionCallInfo fcinfo, MemoryContext caller_context,
			 const CalResult *result)
{
	MemoryContext work_context = MemoryContextSwitchTo(caller_context);
	Datum		datum = cal_result_datum(fcinfo, result);

	MemoryContextDelete(work_context);
	return datum;
}

/* cal_refresh_user_tokens(user_ulid text) returns cal_token_result */
Datum
cal_refresh_user_tokens(PG_FUNCTION_ARGS)
{
	MemoryContext caller_context = cal_begin_call();
	char	   *user_ulid = cal_user_ulid_arg(fcinfo, 0);
	CalResult	result = {0};
	RefreshConfig config;

	/* Tokens Cal.com rotates must be storable: refuse before any call. */
	PreventCommandIfReadOnly("cal_refresh_user_tokens()");

	result.user_ulid = user_ulid;
	if (cal_settings_to_config(fcinfo, &config, true, &result))
		refresh_user_tokens(&config, user_ulid, &result);
	PG_RETURN_DATUM(cal_end_call(fcinfo, caller_context, &result));
}

/* Shared by cal_update_tokens and cal_update_tokens_ms. */
static Datum
cal_update_tokens_common(FunctionCallInfo fcinfo, bool milliseconds)
{
	MemoryContext caller_context = cal_begin_call();
	char	   *user_ulid = cal_user_ulid_arg(fcinfo, 0);
	char	   *access_token = cal_token_arg(fcinfo, 1, "access_token");
	char	   *refresh_token = cal_token_arg(fcinfo, 2, "refresh_token");
	TimestampTz access_expires_at;
	TimestampTz refresh_expires_at = 0;
	bool		has_refresh_expiry = !PG_ARGISNULL(4);
	CalResult	result = {0};
	RefreshConfig config;

	access_expires_at = cal_expiry_arg(fcinfo, 3, "access_token_expires_at",
									   milliseconds);
	if (has_refresh_expiry)
		refresh_expires_at = cal_expiry_arg(fcinfo, 4,
											"refresh_token_expires_at",
											milliseconds);
	PreventCommandIfReadOnly(milliseconds ? "cal_update_tokens_ms()" :
							 "cal_update_tokens()");

	result.user_ulid = user_ulid;
	if (cal_settings_to_config(fcinfo, &config, false, &result))
		refresh_store_given_tokens(&config, user_ulid, access_token,
								   refresh_token, access_expires_at,
								   has_refresh_expiry, refresh_expires_at,
								   &result);
	explicit_bzero(refresh_token, strlen(refresh_token));
	PG_RETURN_DATUM(cal_end_call(fcinfo, caller_context, &result));
}

/*
 * cal_update_tokens(user_ulid, access_token, refresh_token,
 *					 access_token_expires_at timestamptz,
 *					 refresh_token_expires_at timestamptz default null)
 */
Datum
cal_update_tokens(PG_FUNCTION_ARGS)
{
	return cal_update_tokens_common(fcinfo, false);
}

/* The same with Cal.com's millisecond expiries. */
Datum
cal_update_tokens_ms(PG_FUNCTION_ARGS)
{
	return cal_update_tokens_common(fcinfo, true);
}

/*
 * The SQLSTATE for a failure's error_code, the one mapping every function
 * that raises uses (cal_access_token, the batch and status functions).
 */
int
cal_error_sqlstate(const char *error_code, bool over_size_cap)
{
	if (strcmp(error_code, CAL_ERR_BUSY) == 0)
		return ERRCODE_LOCK_NOT_AVAILABLE;
	if (strcmp(error_code, CAL_ERR_USER_NOT_FOUND) == 0)
		return ERRCODE_NO_DATA_FOUND;
	if (over_size_cap)
		return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	if (strcmp(error_code, CAL_ERR_CALCOM_REJECTED) == 0 ||
		strcmp(error_code, CAL_ERR_CALCOM_UNAVAILABLE) == 0 ||
		strcmp(error_code, CAL_ERR_NETWORK_ERROR) == 0 ||
		strcmp(error_code, CAL_ERR_TIMEOUT) == 0 ||
		strcmp(error_code, CAL_ERR_BAD_RESPONSE) == 0)
		return ERRCODE_SYSTEM_ERROR;	/* 58000, never class 08 */
	/* configuration, table or row not fit for a refresh */
	return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
}

/*
 * cal_access_token(user_ulid text, min_validity interval) returns text:
 * what an application query calls before each Cal.com request.
 */
Datum
cal_access_token(PG_FUNCTION_ARGS)
{
	MemoryContext caller_context = cal_begin_call();
	char	   *user_ulid = cal_user_ulid_arg(fcinfo, 0);
	int64		min_validity_us;
	CalResult	result = {0};
	RefreshConfig config;
	StoredTokenReason stored_token = STORED_TOKEN_NONE;
	MemoryContext work_context;
	text	   *token;

	min_validity_us = cal_token_window_arg(fcinfo, 1, "min_validity",
										   "a longer min_validity could never be met");

	result.user_ulid = user_ulid;
	if (cal_settings_to_config(fcinfo, &config, true, &result))
		refresh_access_token(&config, user_ulid, min_validity_us, &result,
							 &stored_token);

	if (stored_token == STORED_TOKEN_READ_ONLY)
		ereport(WARNING,
				(errmsg("returning the stored access token of user \"%s\" "
						"without refreshing it: the transaction is read-only",
						user_ulid),
				 errdetail("It expires at %s, sooner than min_validity asks.",
						   timestamptz_to_str(result.access_expires_at)),
				 errhint("Call cal_access_token() in a read-write transaction "
						 "on the primary to refresh it ahead of expiry.")));
	else if (stored_token == STORED_TOKEN_REFRESH_FAILED)
		ereport(WARNING,
				(errmsg("returning the stored access token of user \"%s\": "
						"refreshing it failed",
						user_ulid),
				 errdetail("%s: %s", result.error_code, result.error)));
	else if (!result.success)
		ereport(ERROR,
				(errcode(cal_error_sqlstate(result.error_code,
											result.over_size_cap)),
				 errmsg("could not get a Cal.com access token for user \"%s\"",
						user_ulid),
				 errdetail("%s: %s", result.error_code, result.error)));

	work_context = MemoryContextSwitchTo(caller_context);
	token = cstring_to_text(result.access_token);
	MemoryContextDelete(work_context);
	PG_RETURN_TEXT_P(token);
}
