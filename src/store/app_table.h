/*-------------------------------------------------------------------------
 *
 * app_table.h
 *		Finding and checking the application's "CalendarIntegration" table,
 *		and the statements cal_refresh runs on it.  Knows nothing of HTTP.
 *
 *-------------------------------------------------------------------------
 */
#ifndef APP_TABLE_H
#define APP_TABLE_H

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
typedef struct AppTable
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
} AppTable;

/* The columns the extension knows, in the order they are checked. */
typedef enum AppColumn
{
	APP_COLUMN_USER_ULID,
	APP_COLUMN_ACCESS_TOKEN,
	APP_COLUMN_REFRESH_TOKEN,
	APP_COLUMN_ACCESS_EXPIRY,
	APP_COLUMN_MANAGED_USER_ID,
	APP_COLUMN_REFRESH_EXPIRY,
	APP_COLUMN_UPDATED_AT,
	APP_TABLE_COLUMNS
} AppColumn;

/* The types a column may have. */
typedef enum AppColumnKind
{
	COLUMN_TEXT,				/* text or varchar */
	COLUMN_INTEGER,				/* smallint, integer or bigint */
	COLUMN_EXPIRY,				/* timestamptz, timestamp or bigint ms */
	COLUMN_TIMESTAMP			/* timestamptz or timestamp */
} AppColumnKind;

/* One row of the table of columns (app_table.c). */
typedef struct AppColumnSpec
{
	const char *name;
	AppColumnKind kind;
	bool		required;
	const char *problem;		/* format: the table's name for %s */
} AppColumnSpec;

typedef enum AppColumnState
{
	APP_COLUMN_FITS,
	APP_COLUMN_ABSENT,
	APP_COLUMN_WRONG_TYPE
} AppColumnState;

typedef struct AppColumnReport
{
	const AppColumnSpec *spec;
	AppColumnState state;
	Oid			type;			/* as declared (a domain, say) */
	int32		typmod;
	ExpiryKind	expiry;			/* how an expiry column is read */
} AppColumnReport;

/* What app_table_inspect found; problem is NULL when the table fits. */
typedef struct AppTableReport
{
	bool		parsed;			/* table_name is schema.table */
	char		schema[NAMEDATALEN];
	char		table[NAMEDATALEN];
	const char *qualified_name;
	Oid			relid;			/* InvalidOid: no such relation */
	bool		is_table;		/* a table or a partitioned table */
	AppColumnReport columns[APP_TABLE_COLUMNS];
	bool		has_key_index;
	bool		key_not_null;
	bool		has_deferred_checks;
	Oid			owner;
	char	   *problem;
} AppTableReport;

/* in app_table.c */
extern bool app_table_parse_name(const char *value, char *schema,
								   char *table);
extern const char *app_table_column_name(AppColumn column);
extern void app_table_inspect(const char *table_name,
								AppTableReport *report);
extern const AppTable *app_table_get(const char *table_name,
										 char **problem);
extern char *app_table_count_sql(const AppTable *table,
								   bool force_refresh);

#endif							/* APP_TABLE_H */
