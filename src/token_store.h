/*-------------------------------------------------------------------------
 *
 * token_store.h
 *		Reading, locking and writing tokens in the application's
 *		"CalendarIntegration" table.  Knows nothing of HTTP.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOKEN_STORE_H
#define TOKEN_STORE_H

#include "datatype/timestamp.h"
#include "utils/tuplestore.h"

/* One user's row, as read (under its row lock, where it will be written). */
typedef struct TokenRow
{
	char	   *user_ulid;
	char	   *access_token;	/* NULL when the column is NULL */
	char	   *refresh_token;	/* NULL when the column is NULL */
	bool		has_access_expiry;
	TimestampTz access_expires_at;
	bool		has_managed_user_id;
	int64		managed_user_id;
} TokenRow;

/* What to write for one user. */
typedef struct TokenUpdate
{
	const char *user_ulid;
	const char *access_token;
	const char *refresh_token;
	TimestampTz access_expires_at;
	bool		has_refresh_expiry; /* else the column keeps its value */
	TimestampTz refresh_expires_at;
} TokenUpdate;

typedef enum TokenStoreStatus
{
	TOKEN_STORE_OK,
	TOKEN_STORE_TABLE_INVALID,	/* missing table, column or unique key */
	TOKEN_STORE_NOT_FOUND,		/* no row for that user */
	TOKEN_STORE_BUSY,			/* row lock not had in time */
	TOKEN_STORE_REFUSED			/* a trigger, constraint or policy said no */
} TokenStoreStatus;

/* The user's row as it is now, without a lock. */
extern TokenStoreStatus token_store_read_row(const char *table_name,
											 const char *user_ulid,
											 TokenRow *row, char **problem);

/*
 * SELECT ... FOR UPDATE of the user's row, waiting at most lock_timeout_ms
 * (0: no limit of ours) for another session's lock.
 */
extern TokenStoreStatus token_store_lock_row(const char *table_name,
											 const char *user_ulid,
											 int lock_timeout_ms,
											 TokenRow *row, char **problem);

/*
 * Writes new tokens to n users' rows, taking their row locks if not held;
 * statuses[i] says how each went, problems[i] why not (TABLE_INVALID,
 * REFUSED).  Without isolate, an error the table raises goes to the
 * caller.  With it, the rows are written in one subtransaction; should the
 * table refuse one (a trigger, a constraint, a row-level security policy),
 * they are written again one by one and only the rows refused are left
 * out, as REFUSED with the error's message (never its detail, which would
 * show the row).  A cancel is never caught.
 */
extern void token_store_write_all(const char *table_name,
								  const TokenUpdate *updates, int n,
								  bool isolate, TokenStoreStatus *statuses,
								  char **problems);

/*
 * Locks up to max_rows rows whose access token expires before
 * expiring_before (or has no expiry), with keys after after_user (NULL:
 * from the start) in "C" collation order, skipping the users of the text[]
 * skip_users and every row another session has locked.  *rows gets them
 * in key order.
 */
extern TokenStoreStatus token_store_lock_due(const char *table_name,
											 TimestampTz expiring_before,
											 const char *after_user,
											 Datum skip_users, int max_rows,
											 TokenRow **rows, int *n_rows,
											 char **problem);

/*
 * Puts a cal_refresh_status() row for every user into store, joined with
 * failure_columns (the arrays of failure_store_read_all).
 */
extern TokenStoreStatus token_store_status(const char *table_name,
										   const Datum *failure_columns,
										   Tuplestorestate *store,
										   char **problem);

/* Rows no refresh can serve, as token_table_count_sql counts them. */
typedef struct TokenRowCounts
{
	int64		rows;
	int64		no_key;
	int64		no_tokens;		/* no refresh token (nor, when it can help,
								 * a managed user id) */
	int64		null_expiry;
	int64		infinite_expiry;
	int64		absurd_expiry;
} TokenRowCounts;

extern TokenStoreStatus token_store_count_unusable(const char *table_name,
												   bool force_refresh,
												   TokenRowCounts *counts,
												   char **problem);

#endif							/* TOKEN_STORE_H */
