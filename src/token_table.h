/*-------------------------------------------------------------------------
 *
 * token_table.h
 *		Finding and checking the application's "CalendarIntegration" table,
 *		and the statements cal_refresh runs on it.  Knows nothing of HTTP.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TOKEN_TABLE_H
#define TOKEN_TABLE_H

#include "executor/spi.h"

typedef enum ExpiryKind
{
	EXPIRY_NONE,				/* optional column absent */
	EXPIRY_TIMESTAMPTZ,
	EXPIRY_TIMESTAMP,			/* without time zone: UTC */
	EXPIRY_MILLISECONDS			/* bigint since the Unix epoch */
} ExpiryKind;

/*
 * What we learnt about the table, and its prepared statements.  The row
 * statements select the access token, the refresh token, the access
 * expiry as timestamptz and the managed user id as int8, in that order;
 * due_plan adds the user's key as a fifth column.
 */
typedef struct TokenTable
{
	bool		valid;
	char		table_name[2 * NAMEDATALEN + 8];	/* setting it came from */
	Oid			relid;
	Oid			owner;			/* statements may run as this role */
	bool		has_deferred_checks;	/* see token_store_write_all */
	ExpiryKind	access_expiry;
	ExpiryKind	refresh_expiry;
	bool		has_managed_user_id;
	ExpiryKind	updated_at;		/* EXPIRY_MILLISECONDS is not accepted */
	SPIPlanPtr	read_plan;		/* $1 user: the row, no lock */
	SPIPlanPtr	try_lock_plan;	/* ... FOR UPDATE SKIP LOCKED */
	SPIPlanPtr	lock_plan;		/* ... FOR UPDATE */
	SPIPlanPtr	write_plan;		/* $1 user, $2..$5 tokens and expiries */
	SPIPlanPtr	due_plan;		/* see token_store_lock_due */
	SPIPlanPtr	status_plan;	/* see token_store_status */
} TokenTable;

/*
 * Parses cal_refresh.table_name ("schema.table", either part optionally
 * double-quoted) without raising or allocating: a GUC check hook uses it.
 * schema and table must have room for NAMEDATALEN bytes.
 */
extern bool token_table_parse_name(const char *value, char *schema,
								   char *table);

/*
 * The table named by table_name, checked, with its statements prepared;
 * cached until the table or a schema changes.  Must run inside SPI with
 * search_path pinned.  NULL, with *problem set, when the table does not
 * fit.
 */
extern const TokenTable *token_table_get(const char *table_name,
										 char **problem);

#endif							/* TOKEN_TABLE_H */
