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

#include "storage/itemptr.h"

/*
 * What the journal holds for one user: the entries seen, and the newest
 * pair when the row is stale.
 */
typedef struct JournalPair
{
	int			n_seen;			/* entries of the user ... */
	ItemPointerData *seen;		/* ... where they are */
	bool		found;			/* the row is stale: the newest pair */
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
 * For each of n users of table_name whose row holds the refresh token
 * with the SHA-256 at row_token_sha256 + i * PG_SHA256_DIGEST_LENGTH
 * (has_row_token[i] false: none): when the journal shows that token
 * superseded, pairs[i] gets the newest journaled pair, in the caller's
 * memory.  One statement.
 */
extern void journal_store_find(Oid schema, const char *table_name,
							   const char *const *users,
							   const uint8 *row_token_sha256,
							   const bool *has_row_token, int n,
							   JournalPair *pairs);

/* The users of table_name with entries (palloc'd; *n of them). */
extern char **journal_store_users(Oid schema, const char *table_name, int *n);

/*
 * Deletes, in this transaction (so that a rollback keeps them), the
 * entries journal_store_find saw for the n users: their rows now hold a
 * newer pair than any of those.  Without wait, an entry another open
 * transaction is deleting is left to it.
 */
extern void journal_store_forget_seen(Oid schema, const JournalPair *pairs,
									  int n, bool wait);

/*
 * Deletes every entry of the n users: their rows now hold the newest pair,
 * in this transaction (so a rollback keeps the entries).  One statement.
 */
extern void journal_store_forget(Oid schema, const char *table_name,
								 const char *const *users, int n);

#endif							/* JOURNAL_STORE_H */
