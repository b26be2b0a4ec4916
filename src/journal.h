/*-------------------------------------------------------------------------
 *
 * journal.h
 *		Handing the pairs Cal.com issues to the journal writer, a
 *		background worker that commits them in a transaction of its own
 *		before the backend returns or stores them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include "datatype/timestamp.h"
#include "fmgr.h"

/* One pair, and the refresh token the row held when it was asked for. */
typedef struct JournalEntry
{
	const char *table_name;		/* cal_refresh.table_name */
	const char *user_ulid;
	const char *spent_token;	/* NULL: the row held none */
	const char *access_token;
	const char *refresh_token;
	TimestampTz access_expires_at;
	bool		has_refresh_expiry;
	TimestampTz refresh_expires_at;
} JournalEntry;

/* From _PG_init while preloading: shared memory for the hand-over. */
extern void journal_init(void);

/*
 * Has the entries committed to cal_refresh_journal (in the extension's
 * schema) by this database's
 * writer (started on first use), waiting for its acknowledgement
 * interruptibly.  Returns false, with *why, when no writer could take them
 * (none can start, no free worker slot, the extension's table is missing):
 * the caller goes on without the journal.
 */
extern bool journal_write(Oid schema, const JournalEntry *entries, int n,
						  const char **why);

/* The writer's main function (a dynamic background worker). */
extern PGDLLEXPORT void cal_refresh_journal_main(Datum arg);

#endif							/* JOURNAL_H */
