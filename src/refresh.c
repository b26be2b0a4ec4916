/*-------------------------------------------------------------------------
 *
 * refresh.c
 *		The refresh policy, read top to bottom: lock the user's row, refresh
 *		with the stored refresh token, fall back to force refresh when that
 *		token is unusable or its fate unknown, store the new pair in the
 *		caller's transaction, report.
 *
 * Refresh tokens are single-use.  The row lock is taken before the token
 * is read, so two sessions never spend the same token; the new pair is
 * written in the same transaction that holds the lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/timestamp.h"

#include "refresh.h"
#include "token_store.h"

/* Cal.com's access tokens live an hour; used when a server omits expiry. */
#define CAL_ACCESS_TOKEN_LIFETIME_USECS (60 * USECS_PER_MINUTE)

/* Cal.com user ids are 32-bit integers. */
#define CAL_MAX_USER_ID PG_INT32_MAX

void
refresh_set_failure(CalResult *result, const char *error_code,
					const char *error)
{
	result->success = false;
	result->error_code = error_code;
	result->error = error;
	ereport(LOG,
			(errmsg("cal_refresh: tokens of user \"%s\" not refreshed (%s): %s",
					result->user_ulid ? result->user_ulid : "", error_code,
					error)));
}

/* The result of a token_store call that did not succeed. */
static void
refresh_set_store_failure(CalResult *result, TokenStoreStatus status,
						  char *problem)
{
	if (status == TOKEN_STORE_TABLE_INVALID)
		refresh_set_failure(result, CAL_ERR_TABLE_INVALID, problem);
	else if (status == TOKEN_STORE_BUSY)
		refresh_set_failure(result, CAL_ERR_BUSY,
							"another session held the row lock for longer "
							"than cal_refresh.lock_timeout");
	else
		refresh_set_failure(result, CAL_ERR_USER_NOT_FOUND,
							psprintf("no row for user \"%s\"",
									 result->user_ulid));
}

static const char *
refresh_error_code(CalOutcome outcome)
{
	switch (outcome)
	{
		case CAL_REJECTED:
			return CAL_ERR_CALCOM_REJECTED;
		case CAL_UNAVAILABLE:
			return CAL_ERR_CALCOM_UNAVAILABLE;
		case CAL_NETWORK_ERROR:
			return CAL_ERR_NETWORK_ERROR;
		case CAL_TIMEOUT:
			return CAL_ERR_TIMEOUT;
		case CAL_OK:
		case CAL_BAD_RESPONSE:
			break;
	}
	return CAL_ERR_BAD_RESPONSE;
}

/* The result of a failed Cal.com call, which decides the error_code. */
static void
refresh_set_call_failure(CalResult *result, const CalCallResult *call,
						 const char *error)
{
	refresh_set_failure(result, refresh_error_code(call->outcome), error);
	result->over_size_cap = call->outcome == CAL_BAD_RESPONSE &&
		call->body_over_cap;
}

/*
 * After a failed refresh, is the stored refresh token unusable or its fate
 * unknown?  Then only force refresh can help.  Not after 401/403 (force
 * would fail the same way), 429 (wait instead), or when nothing was sent.
 */
static bool
refresh_should_fall_back(const CalCallResult *call)
{
	switch (call->outcome)
	{
		case CAL_REJECTED:
			return call->http_status == 400 || call->http_status == 404;
		case CAL_BAD_RESPONSE:
			return call->http_status >= 200 && call->http_status < 300;
		case CAL_TIMEOUT:
		case CAL_NETWORK_ERROR:
			return call->request_sent;
		case CAL_UNAVAILABLE:
			return call->http_status == 502 || call->http_status == 504;
		case CAL_OK:
			break;
	}
	return false;
}

static TimestampTz
refresh_ms_to_timestamptz(double ms)
{
	return (TimestampTz) ms * 1000 -
		(TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/* One Cal.com call, logged at DEBUG1 without any secret. */
static void
refresh_call(const RefreshConfig *config, CalEndpoint endpoint,
			 const char *user_ulid, const TokenRow *row, CalCallResult *call)
{
	if (endpoint == CAL_ENDPOINT_REFRESH)
		calcom_client_refresh(&config->client, row->refresh_token, call);
	else
		calcom_client_force_refresh(&config->client,
									(long) row->managed_user_id, call);
	ereport(DEBUG1,
			(errmsg_internal("cal_refresh: %s for user \"%s\": HTTP %ld in %d ms, %d attempt(s)%s%s",
							 calcom_endpoint_name(endpoint), user_ulid,
							 call->http_status, call->elapsed_ms, call->attempts,
							 call->outcome == CAL_OK ? "" : ": ",
							 call->outcome == CAL_OK ? "" : call->message)));
}

/* A result carrying the token already stored in the row. */
static void
refresh_set_stored(CalResult *result, const TokenRow *row)
{
	result->success = true;
	result->method = NULL;
	result->access_token = row->access_token;
	result->has_access_expiry = true;
	result->access_expires_at = row->access_expires_at;
}

/* Writes a new pair to the row and fills the result either way. */
static void
refresh_write(const char *table_name, const TokenUpdate *update,
			  const char *method, CalResult *result)
{
	char	   *problem = NULL;
	TokenStoreStatus status = token_store_write(table_name, update, &problem);

	if (status != TOKEN_STORE_OK)
	{
		refresh_set_store_failure(result, status, problem);
		return;
	}
	result->success = true;
	result->method = method;
	result->access_token = pstrdup(update->access_token);
	result->has_access_expiry = true;
	result->access_expires_at = update->access_expires_at;
	result->has_refresh_expiry = update->has_refresh_expiry;
	result->refresh_expires_at = update->refresh_expires_at;
}

/* Stores the pair Cal.com just issued. */
static void
refresh_store(const RefreshConfig *config, const char *user_ulid,
			  const CalTokens *tokens, const char *method, CalResult *result)
{
	TokenUpdate update;

	update.user_ulid = user_ulid;
	update.access_token = tokens->access_token;
	update.refresh_token = tokens->refresh_token;
	update.access_expires_at = tokens->has_access_expiry ?
		refresh_ms_to_timestamptz(tokens->access_expires_ms) :
		GetCurrentTimestamp() + CAL_ACCESS_TOKEN_LIFETIME_USECS;
	update.has_refresh_expiry = tokens->has_refresh_expiry;
	update.refresh_expires_at = tokens->has_refresh_expiry ?
		refresh_ms_to_timestamptz(tokens->refresh_expires_ms) : 0;
	refresh_write(config->table_name, &update, method, result);
}

/*
 * Refreshes the user whose row we hold locked: the regular refresh with
 * the stored token, force refresh where the fallback rules say so, then
 * the new pair stored in the row.
 */
static void
refresh_locked_row(const RefreshConfig *config, const char *user_ulid,
				   const TokenRow *row, CalResult *result)
{
	CalCallResult *call = palloc0(sizeof(CalCallResult));
	const char *why_force;
	bool		has_usable_token = calcom_token_is_plausible(row->refresh_token);
	bool		has_usable_user_id = row->has_managed_user_id &&
		row->managed_user_id > 0 && row->managed_user_id <= CAL_MAX_USER_ID;

	/* The regular refresh, when there is a token to spend. */
	if (has_usable_token)
	{
		refresh_call(config, CAL_ENDPOINT_REFRESH, user_ulid, row, call);
		if (call->outcome == CAL_OK)
		{
			refresh_store(config, user_ulid, &call->tokens, "refresh", result);
			explicit_bzero(call, sizeof(CalCallResult));
			return;
		}
		if (!refresh_should_fall_back(call))
		{
			refresh_set_call_failure(result, call,
									 psprintf("refresh failed: %s",
											  call->message));
			return;
		}
		why_force = psprintf("refresh failed: %s", call->message);
	}
	else if (row->refresh_token == NULL || row->refresh_token[0] == '\0')
		why_force = "no refresh token is stored";
	else
		why_force = "the stored refresh token is malformed";

	/* Force refresh, which needs Cal.com's numeric user id. */
	if (!has_usable_user_id)
	{
		const char *code = (has_usable_token || row->has_managed_user_id) ?
		CAL_ERR_NO_MANAGED_USER_ID : CAL_ERR_NO_REFRESH_TOKEN;

		refresh_set_failure(result, code,
							psprintf("%s, and force refresh is impossible: %s",
									 why_force,
									 row->has_managed_user_id ?
									 "\"calManagedUserId\" is not a valid Cal.com user id" :
									 "no \"calManagedUserId\" is stored"));
		return;
	}
	ereport(LOG,
			(errmsg("cal_refresh: %s for user \"%s\"; trying force refresh",
					why_force, user_ulid),
			 (has_usable_token && (call->http_status == 400 ||
								   call->http_status == 404)) ?
			 errdetail("The stored refresh token was already used: a transaction "
					   "that stored its successor may have rolled back, or "
					   "another client spent it.") : 0));
	refresh_call(config, CAL_ENDPOINT_FORCE_REFRESH, user_ulid, row, call);
	if (call->outcome == CAL_OK)
		refresh_store(config, user_ulid, &call->tokens, "force_refresh", result);
	else
		refresh_set_call_failure(result, call,
								 psprintf("%s; force refresh failed: %s",
										  why_force, call->message));
	explicit_bzero(call, sizeof(CalCallResult));
}

/* True when the row's access token stays valid until at least `until`. */
static bool
refresh_token_valid_until(const TokenRow *row, TimestampTz until)
{
	return row->access_token != NULL && row->access_token[0] != '\0' &&
		row->has_access_expiry && row->access_expires_at >= until;
}

void
refresh_user_tokens(const RefreshConfig *config, const char *user_ulid,
					CalResult *result)
{
	TokenRow	row;
	TokenStoreStatus status;
	char	   *problem = NULL;

	result->user_ulid = user_ulid;
	if (config->config_error_code != NULL)
	{
		refresh_set_failure(result, config->config_error_code,
							config->config_error);
		return;
	}
	/* Lock the row before reading the refresh token. */
	status = token_store_lock_row(config->table_name, user_ulid,
								  config->lock_timeout_ms, &row, &problem);
	if (status != TOKEN_STORE_OK)
		refresh_set_store_failure(result, status, problem);
	else
		refresh_locked_row(config, user_ulid, &row, result);
}

void
refresh_access_token(const RefreshConfig *config, const char *user_ulid,
					 int64 min_validity_us, CalResult *result,
					 bool *stored_token_returned)
{
	TokenRow	row;
	TokenRow	locked;
	TokenStoreStatus status;
	char	   *problem = NULL;
	TimestampTz now = GetCurrentTimestamp();

	result->user_ulid = user_ulid;
	*stored_token_returned = false;

	/* Fast path: no lock while the stored token is good for long enough. */
	status = token_store_read_row(config->table_name, user_ulid, &row, &problem);
	if (status != TOKEN_STORE_OK)
	{
		refresh_set_store_failure(result, status, problem);
		return;
	}
	if (refresh_token_valid_until(&row, now + min_validity_us))
	{
		refresh_set_stored(result, &row);
		return;
	}

	/* A refresh must be storable: refuse before any lock or HTTP call. */
	PreventCommandIfReadOnly("cal_access_token() with a token to refresh");
	if (config->config_error_code != NULL)
		refresh_set_failure(result, config->config_error_code,
							config->config_error);
	else
	{
		status = token_store_lock_row(config->table_name, user_ulid,
									  config->lock_timeout_ms, &locked,
									  &problem);
		if (status != TOKEN_STORE_OK)
			refresh_set_store_failure(result, status, problem);
		else if (refresh_token_valid_until(&locked,
										   GetCurrentTimestamp() + min_validity_us))
		{
			/* Refreshed by the session whose lock we waited for. */
			refresh_set_stored(result, &locked);
			return;
		}
		else
		{
			row = locked;
			refresh_locked_row(config, user_ulid, &row, result);
		}
	}

	/* Better a token that still works than none at all. */
	if (!result->success &&
		refresh_token_valid_until(&row, GetCurrentTimestamp()))
	{
		*stored_token_returned = true;
		result->access_token = row.access_token;
		result->has_access_expiry = true;
		result->access_expires_at = row.access_expires_at;
	}
}

void
refresh_store_given_tokens(const char *table_name, const char *user_ulid,
						   const char *access_token, const char *refresh_token,
						   TimestampTz access_expires_at,
						   bool has_refresh_expiry,
						   TimestampTz refresh_expires_at, CalResult *result)
{
	TokenUpdate update;

	result->user_ulid = user_ulid;
	update.user_ulid = user_ulid;
	update.access_token = access_token;
	update.refresh_token = refresh_token;
	update.access_expires_at = access_expires_at;
	update.has_refresh_expiry = has_refresh_expiry;
	update.refresh_expires_at = refresh_expires_at;
	refresh_write(table_name, &update, "update", result);
}
