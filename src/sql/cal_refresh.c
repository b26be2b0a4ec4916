/*-------------------------------------------------------------------------
 *
 * cal_refresh.c
 *		Module entry: settings (GUCs) and the SQL-callable functions.
 *
 * This file turns arguments (and, through settings.c, settings) into plain
 * structs, hands them to refresh.c, and turns what comes back into a
 * cal_token_result row.
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
#include "journal.h"
#include "rate_limit.h"
#include "stats.h"

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

void		_PG_init(void);

PG_FUNCTION_INFO_V1(cal_refresh_user_tokens);
PG_FUNCTION_INFO_V1(cal_update_tokens);
PG_FUNCTION_INFO_V1(cal_update_tokens_ms);
PG_FUNCTION_INFO_V1(cal_access_token);

/*
 * At load: the settings, and, when preloading, the shared memory of the
 * request budget, the journal and the statistics.
 */
void
_PG_init(void)
{
	settings_define();
	if (process_shared_preload_libraries_in_progress)
	{
		rate_limit_init();
		journal_init();
		stats_init();
	}
	calcom_client_init();
}

/*
 * The configuration of a refresh for the SQL function being called (its
 * schema is the extension's); see settings_refresh_config.
 */
bool
cal_refresh_config(FunctionCallInfo fcinfo, const CalSettings *settings,
				   bool need_calcom, RefreshConfig *config,
				   TokenResult *result)
{
	/* Our functions live in the extension's schema, and so does its table. */
	return settings_refresh_config(settings,
								   get_func_namespace(fcinfo->flinfo->fn_oid),
								   need_calcom, config, result);
}

/* Raises 22004 when argument argno, called name, is NULL. */
void
cal_arg_not_null(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/*
 * An interval argument measuring time before a token's expiry, in
 * microseconds: NULL is 22004, outside 0 to the flow's token lifetime
 * less 5 minutes (55 or 25) 22023, with why the limit matters in the
 * detail.
 */
int64
cal_token_window_arg(FunctionCallInfo fcinfo, int argno, const char *name,
					 const char *why, CalFlow flow_in_use)
{
	const CalFlowDesc *flow = calcom_flow(flow_in_use);
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

/* A cal_token_result row's values, for a row type of natts columns. */
void
cal_result_values(const TokenResult *result, int natts, Datum *values,
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
	CAL_SET_TEXT(6, cal_error_name(result->error_code));
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
cal_result_datum(FunctionCallInfo fcinfo, const TokenResult *result)
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
			 const TokenResult *result)
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
	TokenResult result = {0};
	RefreshConfig config;
	CalSettings settings;

	/* Tokens Cal.com rotates must be storable: refuse before any call. */
	PreventCommandIfReadOnly("cal_refresh_user_tokens()");

	result.user_ulid = user_ulid;
	settings_snapshot(&settings);
	if (cal_refresh_config(fcinfo, &settings, true, &config, &result))
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
	TokenResult result = {0};
	RefreshConfig config;
	CalSettings settings;

	access_expires_at = cal_expiry_arg(fcinfo, 3, "access_token_expires_at",
									   milliseconds);
	if (has_refresh_expiry)
		refresh_expires_at = cal_expiry_arg(fcinfo, 4,
											"refresh_token_expires_at",
											milliseconds);
	PreventCommandIfReadOnly(milliseconds ? "cal_update_tokens_ms()" :
							 "cal_update_tokens()");

	result.user_ulid = user_ulid;
	settings_snapshot(&settings);
	if (cal_refresh_config(fcinfo, &settings, false, &config, &result))
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
 * The SQLSTATE of a failure for a function that raises it: its error
 * code's (cal_error.h), but 54000 for an answer over the size cap.
 */
int
cal_error_sqlstate(CalError error_code, bool over_size_cap)
{
	if (over_size_cap && error_code == CAL_ERROR_BAD_RESPONSE)
		return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	return cal_error(error_code)->sqlstate;
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
	TokenResult result = {0};
	RefreshConfig config;
	CalSettings settings;
	StoredTokenReason stored_token = STORED_TOKEN_NONE;
	MemoryContext work_context;
	text	   *token;

	settings_snapshot(&settings);
	min_validity_us = cal_token_window_arg(fcinfo, 1, "min_validity",
										   "a longer min_validity could never be met",
										   settings.flow);

	result.user_ulid = user_ulid;
	if (cal_refresh_config(fcinfo, &settings, true, &config, &result))
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
				 errdetail("%s: %s", cal_error_name(result.error_code),
						   result.error)));
	else if (!result.success)
		ereport(ERROR,
				(errcode(cal_error_sqlstate(result.error_code,
											result.over_size_cap)),
				 errmsg("could not get a Cal.com access token for user \"%s\"",
						user_ulid),
				 errdetail("%s: %s", cal_error_name(result.error_code),
						   result.error)));

	work_context = MemoryContextSwitchTo(caller_context);
	token = cstring_to_text(result.access_token);
	MemoryContextDelete(work_context);
	PG_RETURN_TEXT_P(token);
}
