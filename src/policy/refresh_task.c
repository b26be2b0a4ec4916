/*-------------------------------------------------------------------------
 *
 * refresh_task.c
 *		One user's refresh through Cal.com: the regular refresh, the
 *		fallback to force refresh when the stored token is unusable or its
 *		fate unknown, and the failure it ends in, if any.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "refresh_task.h"
#include "stats.h"

/* Cal.com's access tokens live an hour; used when a server omits expiry. */
#define CAL_ACCESS_TOKEN_LIFETIME_USECS (60 * USECS_PER_MINUTE)

/* Cal.com user ids are 32-bit integers. */
#define CAL_MAX_USER_ID PG_INT32_MAX

/*
 * The result of a refresh that failed with error_code, error saying why;
 * logged.  Whether the failure backs the user off, should it be recorded,
 * is the code's (cal_error.h).
 */
void
refresh_set_failure(TokenResult *result, CalError error_code,
					const char *error)
{
	result->success = false;
	result->error_code = error_code;
	result->error = error;
	result->backs_off = cal_error(error_code)->backs_off;
	ereport(LOG,
			(errmsg("cal_refresh: tokens of user \"%s\" not refreshed (%s): %s",
					result->user_ulid ? result->user_ulid : "",
					cal_error_name(error_code), error)));
}

/* The result of a token_store call that did not succeed. */
void
refresh_set_store_failure(TokenResult *result, TokenStoreStatus status,
						  char *problem)
{
	if (status == TOKEN_STORE_TABLE_INVALID)
		refresh_set_failure(result, CAL_ERROR_TABLE_INVALID, problem);
	else if (status == TOKEN_STORE_BUSY)
		refresh_set_failure(result, CAL_ERROR_BUSY,
							cal_error(CAL_ERROR_BUSY)->stem);
	else
		refresh_set_failure(result, CAL_ERROR_USER_NOT_FOUND,
							psprintf("%s \"%s\"",
									 cal_error(CAL_ERROR_USER_NOT_FOUND)->stem,
									 result->user_ulid));
}

/*
 * The result of a failed Cal.com call, which decides the error_code
 * (calcom_call_error).  It is recorded when a request for the user went
 * out.
 */
static void
refresh_set_call_failure(RefreshTask *task, const CalCallResult *call,
						 const char *error)
{
	TokenResult  *result = task->result;

	if (call->not_started)
	{
		/* Its batch stopped before its turn: nothing to log or record. */
		result->success = false;
		result->error_code = calcom_call_error(call);
		result->error = error;
		task->not_started = true;
		return;
	}
	refresh_set_failure(result, calcom_call_error(call), error);
	result->over_size_cap = call->outcome == CAL_BAD_RESPONSE &&
		call->body_over_cap;
	result->recorded = task->sent;
}

/*
 * Where force refresh would follow, the OAuth2 flow has nothing: the
 * refresh token is spent or was never good, and only the user can mend it.
 */
#define CAL_OAUTH2_NO_FORCE \
	"; the OAuth2 flow has no force refresh: the user must authorize the application again"

/*
 * After a failed refresh, is the stored refresh token unusable?  Then only
 * force refresh can help: after a 400 or 404 (the token is spent, or
 * unknown), or a 200 whose body cannot be used (Cal.com may have rotated
 * the pair).  Not after 401/403 (force would fail the same way), nor after
 * the service's trouble (429, 5xx, a non-JSON body, a lost connection, a
 * timeout): the refresh was retried, and should Cal.com have spent the
 * token meanwhile, the next attempt's 400 leads here.  Forcing during an
 * outage would only double the requests into it.
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
		case CAL_UNAVAILABLE:
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

/* Keeps the pair Cal.com just issued, to be stored with the others. */
static void
refresh_task_take_pair(RefreshTask *task, const CalTokens *tokens,
				  const char *method)
{
	TokenUpdate *update = &task->update;

	update->user_ulid = task->row.user_ulid;
	update->access_token = pstrdup(tokens->access_token);
	update->refresh_token = pstrdup(tokens->refresh_token);
	update->access_expires_at = tokens->has_access_expiry ?
		refresh_ms_to_timestamptz(tokens->access_expires_ms) :
		GetCurrentTimestamp() + CAL_ACCESS_TOKEN_LIFETIME_USECS;
	update->has_refresh_expiry = tokens->has_refresh_expiry;
	update->refresh_expires_at = tokens->has_refresh_expiry ?
		refresh_ms_to_timestamptz(tokens->refresh_expires_ms) : 0;
	task->has_update = true;
	task->issued = true;
	task->method = method;
}

/*
 * The task's refresh token is unusable or its fate unknown: queue force
 * refresh, which needs Cal.com's numeric user id, or fail (with the failed
 * refresh's outcome when there was one).
 */
static void
refresh_task_force(CalBatch *batch, RefreshTask *task,
				   const CalCallResult *failed_refresh)
{
	const TokenRow *row = &task->row;
	bool		has_usable_token = calcom_token_is_plausible(row->refresh_token);

	/* The policy's one branch on the flow: OAuth2 has no fallback. */
	if (!calcom_flow(calcom_batch_flow(batch))->has_force_refresh)
	{
		char	   *error = psprintf("%s%s", task->why_force, CAL_OAUTH2_NO_FORCE);

		if (failed_refresh != NULL)
			refresh_set_call_failure(task, failed_refresh, error);
		else
		{
			refresh_set_failure(task->result, CAL_ERROR_NO_REFRESH_TOKEN, error);
			task->result->recorded = true;
		}
		return;
	}

	if (!row->has_managed_user_id || row->managed_user_id <= 0 ||
		row->managed_user_id > CAL_MAX_USER_ID)
	{
		refresh_set_failure(task->result,
							(has_usable_token || row->has_managed_user_id) ?
							CAL_ERROR_NO_MANAGED_USER_ID : CAL_ERROR_NO_REFRESH_TOKEN,
							psprintf("%s, and force refresh is impossible: %s",
									 task->why_force,
									 row->has_managed_user_id ?
									 "\"calManagedUserId\" is not a valid Cal.com user id" :
									 "no \"calManagedUserId\" is stored"));
		task->result->recorded = true;
		return;
	}
	ereport(LOG,
			(errmsg("cal_refresh: %s for user \"%s\"; trying force refresh",
					task->why_force, row->user_ulid),
			 task->token_spent ?
			 errdetail("The stored refresh token was already used: a transaction "
					   "that stored its successor may have rolled back, or "
					   "another client spent it.") : 0));
	calcom_batch_add_force_refresh(batch, (long) row->managed_user_id, task);
}

/* Starts a locked row's refresh: the regular one, when there is a token. */
void
refresh_task_start(CalBatch *batch, RefreshTask *task)
{
	const char *token = task->row.refresh_token;

	if (calcom_token_is_plausible(token))
		calcom_batch_add_refresh(batch, token, task);
	else
	{
		task->why_force = (token == NULL || token[0] == '\0') ?
			"no refresh token is stored" :
			"the stored refresh token is malformed";
		refresh_task_force(batch, task, NULL);
	}
}

/* One of the task's Cal.com calls ended: store, fall back, or fail. */
void
refresh_task_call_done(CalBatch *batch, RefreshTask *task,
					   const CalCallResult *call)
{
	const char *user_ulid = task->row.user_ulid;
	bool		was_refresh = call->endpoint != CAL_ENDPOINT_FORCE_REFRESH;

	ereport(DEBUG1,
			(errmsg_internal("cal_refresh: %s for user \"%s\": HTTP %ld in %d ms, %d attempt(s)%s%s",
							 calcom_endpoint_name(call->endpoint), user_ulid,
							 call->http_status, call->elapsed_ms, call->attempts,
							 call->outcome == CAL_OK ? "" : ": ",
							 call->outcome == CAL_OK ? "" : call->message)));
	task->sent |= call->attempts > 0;
	if (call->outcome == CAL_OK)
	{
		refresh_task_take_pair(task, &call->tokens,
							   was_refresh ? "refresh" : "force_refresh");
		task->forced = !was_refresh;
	}
	else if (!was_refresh)
		refresh_set_call_failure(task, call,
								 psprintf("%s; force refresh failed: %s",
										  task->why_force, call->message));
	else if (!refresh_should_fall_back(call))
		refresh_set_call_failure(task, call,
								 psprintf("refresh failed: %s", call->message));

	else
	{
		task->why_force = psprintf("refresh failed: %s", call->message);
		task->token_spent = call->http_status == 400 ||
			call->http_status == 404;
		refresh_task_force(batch, task, call);
	}
}
