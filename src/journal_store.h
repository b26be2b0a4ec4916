/*-------------------------------------------------------------------------
 *
 * journal_store.h
 *		cal_refresh_journal: the pairs Cal.com issued, kept until the row
 *		holds them or newer ones.  Knows nothing of HTTP or of the worker.
 *
 * Its statements run as the table's owner (callers need no privilege on
 * it) with search_path pinned.  Every function takes the schema the
 * extension lives in; without the table (objects older than 1.2) they do
 * nothing.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOURNAL_STORE_H
#define JOURNAL_STORE_H

#include "journal.h"

/* The newest journaled pair of a user, when its row is stale. */
typedef struct JournalPair
{
	bool		found;
	char	   *access_token;
	char	   *refresh_token;
	TimestampTz access_expires_at;
	bool		has_refresh_expiry;
	TimestampTz refresh_expires_at;
} JournalPair;

/* Is there a journal (the extension's objects are 1.2 or newer)? */
extern bool journal_store_exists(Oid schema);

/*
 * Inserts the entries in one statement, in the current transaction.
 * Returns false when the extension's objects have no journal.
 */
extern bool journal_store_insert(Oid schema, const JournalEntry *entries,
								 int n);

/*
 * For each of n users of table_name whose row holds row_tokens[i] (NULL:
 * none): when the journal shows that token superseded, pairs[i] gets the
 * newest journaled pair, in the caller's memory.  One statement.
 */
extern void journal_store_find(Oid schema, const char *table_name,
							   const char *const *users,
							   const char *const *row_tokens, int n,
							   JournalPair *pairs);

/*
 * Deletes every entry of the n users: their rows now hold the newest pair,
 * in this transaction (so a rollback keeps the entries).  One statement.
 */
extern void journal_store_forget(Oid schema, const char *table_name,
								 const char *const *users, int n);

#endif							/* JOURNAL_STORE_H */
