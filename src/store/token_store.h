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

/* Rows no refresh can serve, as app_table_count_sql counts them. */
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

/* in token_store.c */
extern TokenStoreStatus token_store_read_row(const char *table_name,
											 const char *user_ulid,
											 TokenRow *row, char **problem);
extern TokenStoreStatus token_store_lock_row(const char *table_name,
											 const char *user_ulid,
											 int lock_timeout_ms,
											 TokenRow *row, char **problem);
extern void token_store_write_all(const char *table_name,
								  const TokenUpdate *updates, int n,
								  bool isolate, TokenStoreStatus *statuses,
								  char **problems);
extern TokenStoreStatus token_store_lock_due(const char *table_name,
											 TimestampTz expiring_before,
											 const char *after_user,
											 Datum skip_users, int max_rows,
											 TokenRow **rows, int *n_rows,
											 char **problem);
extern TokenStoreStatus token_store_status(const char *table_name,
										   const Datum *failure_columns,
										   Tuplestorestate *store,
										   char **problem);
extern TokenStoreStatus token_store_count_unusable(const char *table_name,
												   bool force_refresh,
												   TokenRowCounts *counts,
												   char **problem);

#endif							/* TOKEN_STORE_H */
