/*-------------------------------------------------------------------------
 *
 * refresh.h
 *		The refresh policy.  So far: storing tokens the caller has.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REFRESH_H
#define REFRESH_H

#include "datatype/timestamp.h"


/* Stable error codes of cal_token_result, as documented in README. */
#define CAL_ERR_CONFIG_INSECURE "config_insecure"
#define CAL_ERR_TABLE_INVALID "table_invalid"
#define CAL_ERR_USER_NOT_FOUND "user_not_found"

/* One row of cal_token_result. */
typedef struct CalResult
{
	bool		success;
	const char *user_ulid;
	const char *method;			/* "refresh", "force_refresh", "update" */
	const char *access_token;
	bool		has_access_expiry;
	TimestampTz access_expires_at;
	bool		has_refresh_expiry;
	TimestampTz refresh_expires_at;
	const char *error_code;
	const char *error;
} CalResult;

extern void refresh_set_failure(CalResult *result, const char *error_code,
								const char *error);

/* cal_update_tokens(): store tokens the caller already has. */
extern void refresh_store_given_tokens(const char *table_name,
									   const char *user_ulid,
									   const char *access_token,
									   const char *refresh_token,
									   TimestampTz access_expires_at,
									   bool has_refresh_expiry,
									   TimestampTz refresh_expires_at,
									   CalResult *result);

#endif							/* REFRESH_H */
