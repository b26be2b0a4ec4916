/*-------------------------------------------------------------------------
 *
 * refresh.c
 *		The refresh policy.  So far: storing tokens the caller already has.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "refresh.h"
#include "token_store.h"

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

void
refresh_store_given_tokens(const char *table_name, const char *user_ulid,
						   const char *access_token, const char *refresh_token,
						   TimestampTz access_expires_at,
						   bool has_refresh_expiry,
						   TimestampTz refresh_expires_at, CalResult *result)
{
	TokenUpdate update;
	char	   *problem = NULL;

	result->user_ulid = user_ulid;
	update.user_ulid = user_ulid;
	update.access_token = access_token;
	update.refresh_token = refresh_token;
	update.access_expires_at = access_expires_at;
	update.has_refresh_expiry = has_refresh_expiry;
	update.refresh_expires_at = refresh_expires_at;

	switch (token_store_write(table_name, &update, &problem))
	{
		case TOKEN_STORE_OK:
			result->success = true;
			result->method = "update";
			result->access_token = access_token;
			result->has_access_expiry = true;
			result->access_expires_at = access_expires_at;
			result->has_refresh_expiry = has_refresh_expiry;
			result->refresh_expires_at = refresh_expires_at;
			break;
		case TOKEN_STORE_TABLE_INVALID:
			refresh_set_failure(result, CAL_ERR_TABLE_INVALID, problem);
			break;
		case TOKEN_STORE_NOT_FOUND:
			refresh_set_failure(result, CAL_ERR_USER_NOT_FOUND,
								psprintf("no row for user \"%s\"", user_ulid));
			break;
	}
}
