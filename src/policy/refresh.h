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

/* One row of cal_token_result. */
typedef struct TokenResult
{
	bool		success;
	const char *user_ulid;
	const char *method;			/* "refresh", "force_refresh", "update" */
	const char *access_token;
	bool		has_access_expiry;
	TimestampTz access_expires_at;
	bool		has_refresh_expiry;
	TimestampTz refresh_expires_at;
	CalError	error_code;
	const char *error;
	bool		recovered;		/* the row's pair came from the journal */
	bool		over_size_cap;	/* the failing response was over the cap */
	bool		recorded;		/* the failure goes to cal_refresh_failure */
	bool		backs_off;		/* ... with a backoff: the user's own */
} TokenResult;

/* Everything a refresh needs, already read from settings. */
typedef struct RefreshConfig
{
	CalClientConfig client;
	const char *table_name;
	int			lock_timeout_ms;	/* 0: wait as long as PostgreSQL does */
	int			max_concurrency;	/* users refreshed at once by a batch */
	Oid			extension_schema;	/* where cal_refresh_failure lives */
	/* Set when a Cal.com call is impossible (client id, secret file). */
	CalError	config_error_code;
	const char *config_error;
} RefreshConfig;

/* Why cal_access_token() returns a token it did not refresh in time. */
typedef enum StoredTokenReason
{
	STORED_TOKEN_NONE,			/* the token is fresh enough, or refreshed */
	STORED_TOKEN_REFRESH_FAILED,	/* the result says why */
	STORED_TOKEN_READ_ONLY		/* nothing could be stored */
} StoredTokenReason;

/* What one batch of scheduled refreshes did. */
typedef struct RefreshBatchResult
{
	TokenResult  *results;		/* one per user, in "C" order of the key */
	int			n_results;
	int			refreshed;		/* succeeded through refresh */
	int			forced;			/* succeeded through force refresh */
	int			failed;
	int			not_started;	/* the batch stopped before their turn */
	/* Set when the batch stopped because Cal.com is failing: why. */
	const char *calcom_failing;
	/* Set when no user could be tried (configuration, table). */
	CalError	error_code;
	const char *error;
} RefreshBatchResult;

/* in refresh_task.c */
extern void refresh_set_failure(TokenResult *result, CalError error_code,
								const char *error);

/* in refresh.c */
extern void refresh_user_tokens(const RefreshConfig *config,
								const char *user_ulid, TokenResult *result);
extern void refresh_access_token(const RefreshConfig *config,
								 const char *user_ulid, int64 min_validity_us,
								 TokenResult *result,
								 StoredTokenReason *stored_token);
extern void refresh_expiring_tokens(const RefreshConfig *config,
									TimestampTz expiring_before,
									const char *after_user, int max_users,
									int start_within_ms,
									RefreshBatchResult *batch);
extern void refresh_store_given_tokens(const RefreshConfig *config,
									   const char *user_ulid,
									   const char *access_token,
									   const char *refresh_token,
									   TimestampTz access_expires_at,
									   bool has_refresh_expiry,
									   TimestampTz refresh_expires_at,
									   TokenResult *result);

#endif							/* REFRESH_H */
