/*-------------------------------------------------------------------------
 *
 * refresh.h
 *		The refresh policy: lock the row, refresh, fall back to force
 *		refresh, store.  Joins calcom_client and token_store.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REFRESH_H
#define REFRESH_H

#include "datatype/timestamp.h"

#include "calcom_client.h"

/* Stable error codes of cal_token_result, as documented in README. */
#define CAL_ERR_CONFIG_MISSING "config_missing"
#define CAL_ERR_CONFIG_INSECURE "config_insecure"
#define CAL_ERR_TABLE_INVALID "table_invalid"
#define CAL_ERR_USER_NOT_FOUND "user_not_found"
#define CAL_ERR_NO_REFRESH_TOKEN "no_refresh_token"
#define CAL_ERR_NO_MANAGED_USER_ID "no_managed_user_id"
#define CAL_ERR_BUSY "busy"
/* ... and those of Cal.com calls, in calcom_client.h */

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
	bool		recovered;		/* the row's pair came from the journal */
	bool		over_size_cap;	/* the failing response was over the cap */
	bool		recorded;		/* the failure goes to cal_refresh_failure */
	bool		backs_off;		/* ... with a backoff: the user's own */
} CalResult;

/* Everything a refresh needs, already read from settings. */
typedef struct RefreshConfig
{
	CalClientConfig client;
	const char *table_name;
	int			lock_timeout_ms;	/* 0: wait as long as PostgreSQL does */
	int			max_concurrency;	/* users refreshed at once by a batch */
	Oid			extension_schema;	/* where cal_refresh_failure lives */
	/* Set when a Cal.com call is impossible (client id, secret file). */
	const char *config_error_code;
	const char *config_error;
} RefreshConfig;

extern void refresh_set_failure(CalResult *result, const char *error_code,
								const char *error);

/* cal_refresh_user_tokens(): the whole refresh of one user. */
extern void refresh_user_tokens(const RefreshConfig *config,
								const char *user_ulid, CalResult *result);

/* Why cal_access_token() returns a token it did not refresh in time. */
typedef enum StoredTokenReason
{
	STORED_TOKEN_NONE,			/* the token is fresh enough, or refreshed */
	STORED_TOKEN_REFRESH_FAILED,	/* the result says why */
	STORED_TOKEN_READ_ONLY		/* nothing could be stored */
} StoredTokenReason;

/*
 * cal_access_token(): the stored access token when it stays valid for
 * min_validity_us; else lock, re-check, refresh.  When no refresh can be
 * had (it failed, or the transaction is read-only) but the stored token
 * has not expired, the result carries that token and *stored_token says
 * why it was not refreshed.
 */
extern void refresh_access_token(const RefreshConfig *config,
								 const char *user_ulid, int64 min_validity_us,
								 CalResult *result,
								 StoredTokenReason *stored_token);

/* What one batch of scheduled refreshes did. */
typedef struct RefreshBatchResult
{
	CalResult  *results;		/* one per user, in "C" order of the key */
	int			n_results;
	int			refreshed;		/* succeeded through refresh */
	int			forced;			/* succeeded through force refresh */
	int			failed;
	int			not_started;	/* the batch stopped before their turn */
	/* Set when the batch stopped because Cal.com is failing: why. */
	const char *calcom_failing;
	/* Set when no user could be tried (configuration, table). */
	const char *error_code;
	const char *error;
} RefreshBatchResult;

/*
 * cal_refresh_expiring_tokens() and each batch of the job: locks at most
 * max_users rows whose access token expires before expiring_before, with
 * keys after after_user (NULL: from the start), skipping rows locked
 * elsewhere and users backing off; refreshes them concurrently; stores
 * each new pair; records failures.  A user whose turn has not come within
 * start_within_ms (-1: no limit) fails as a timeout, with nothing sent.
 */
extern void refresh_expiring_tokens(const RefreshConfig *config,
									TimestampTz expiring_before,
									const char *after_user, int max_users,
									int start_within_ms,
									RefreshBatchResult *batch);

/* cal_update_tokens(): store tokens the caller already has. */
extern void refresh_store_given_tokens(const RefreshConfig *config,
									   const char *user_ulid,
									   const char *access_token,
									   const char *refresh_token,
									   TimestampTz access_expires_at,
									   bool has_refresh_expiry,
									   TimestampTz refresh_expires_at,
									   CalResult *result);

#endif							/* REFRESH_H */
