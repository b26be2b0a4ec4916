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

/* The columns the extension knows, in the order they are checked. */
typedef enum TokenColumn
{
	TOKEN_COLUMN_USER_ULID,
	TOKEN_COLUMN_ACCESS_TOKEN,
	TOKEN_COLUMN_REFRESH_TOKEN,
	TOKEN_COLUMN_ACCESS_EXPIRY,
	TOKEN_COLUMN_MANAGED_USER_ID,
	TOKEN_COLUMN_REFRESH_EXPIRY,
	TOKEN_COLUMN_UPDATED_AT,
	TOKEN_TABLE_COLUMNS
} TokenColumn;

/* The types a column may have. */
typedef enum TokenColumnKind
{
	COLUMN_TEXT,				/* text or varchar */
	COLUMN_INTEGER,				/* smallint, integer or bigint */
	COLUMN_EXPIRY,				/* timestamptz, timestamp or bigint ms */
	COLUMN_TIMESTAMP			/* timestamptz or timestamp */
} TokenColumnKind;

/* One row of the table of columns (token_table.c). */
typedef struct TokenColumnSpec
{
	const char *name;
	TokenColumnKind kind;
	bool		required;
	const char *problem;		/* format: the table's name for %s */
} TokenColumnSpec;

typedef enum TokenColumnState
{
	TOKEN_COLUMN_FITS,
	TOKEN_COLUMN_ABSENT,
	TOKEN_COLUMN_WRONG_TYPE
} TokenColumnState;

typedef struct TokenColumnReport
{
	const TokenColumnSpec *spec;
	TokenColumnState state;
	Oid			type;			/* as declared (a domain, say) */
	int32		typmod;
	ExpiryKind	expiry;			/* how an expiry column is read */
} TokenColumnReport;

/* What token_table_inspect found; problem is NULL when the table fits. */
typedef struct TokenTableReport
{
	bool		parsed;			/* table_name is schema.table */
	char		schema[NAMEDATALEN];
	char		table[NAMEDATALEN];
	const char *qualified_name;
	Oid			relid;			/* InvalidOid: no such relation */
	bool		is_table;		/* a table or a partitioned table */
	TokenColumnReport columns[TOKEN_TABLE_COLUMNS];
	bool		has_key_index;
	bool		key_not_null;
	bool		has_deferred_checks;
	Oid			owner;
	char	   *problem;
} TokenTableReport;

/*
 * Parses cal_refresh.table_name ("schema.table", either part optionally
 * double-quoted) without raising or allocating: a GUC check hook uses it.
 * schema and table must have room for NAMEDATALEN bytes.
 */
extern bool token_table_parse_name(const char *value, char *schema,
								   char *table);

extern const char *token_table_column_name(TokenColumn column);
extern void token_table_inspect(const char *table_name,
								TokenTableReport *report);
extern const TokenTable *token_table_get(const char *table_name,
										 char **problem);
extern char *token_table_count_sql(const TokenTable *table,
								   bool force_refresh);

#endif							/* TOKEN_TABLE_H */
