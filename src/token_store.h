/*-------------------------------------------------------------------------
 *
 * token_store.h
 *		SPI access to the application's "CalendarIntegration" table.
 *		Knows nothing of HTTP.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOKEN_STORE_H
#define TOKEN_STORE_H

#include "datatype/timestamp.h"

/* One user's row, as read under its row lock. */
typedef struct TokenRow
{
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
	TOKEN_STORE_BUSY			/* row lock not had in time */
} TokenStoreStatus;

/*
 * Parses cal_refresh.table_name ("schema.table", either part optionally
 * double-quoted) without raising or allocating: a GUC check hook uses it.
 * schema and table must have room for NAMEDATALEN bytes.
 */
extern bool token_store_parse_table_name(const char *value, char *schema,
										 char *table);

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

/* Writes new tokens to the user's row, taking its row lock if not held. */
extern TokenStoreStatus token_store_write(const char *table_name,
										  const TokenUpdate *update,
										  char **problem);

#endif							/* TOKEN_STORE_H */
