/*-------------------------------------------------------------------------
 *
 * journal_store.h
 *		cal_refresh_journal: the pairs Cal.com issued, kept until the row
 *		holds them or newer ones.  Knows nothing of HTTP or of the worker.
 *
 * Its statements run as the table's owner (callers need no privilege on
 * it) with search_path pinned.  Every function takes the schema the
 * extension lives in; without the table (objects older than 1.2, or a
 * table of that name that is not the extension's) they do nothing.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOURNAL_STORE_H
#define JOURNAL_STORE_H

#include "datatype/timestamp.h"
#include "storage/itemptr.h"

#include "journal_codec.h"

/* One entry as read from the table. */
typedef struct JournalStoreEntry
{
	int			user_index;		/* into the users asked for */
	ItemPointerData tid;		/* where it is, to delete it */
	JournalEntry entry;			/* strings palloc'd; no table_name */
	bool		unusable;		/* a hand-edited entry: never adopted */
	TimestampTz issued_at;		/* 0: not known */
} JournalStoreEntry;

/* in journal_store.c */
extern bool journal_store_exists(Oid schema);
extern bool journal_store_insert(Oid schema, const JournalEntry *entries,
								 int n);
extern JournalStoreEntry *journal_store_read(Oid schema,
											 const char *table_name,
											 const char *const *users, int n,
											 int *n_found);
extern char **journal_store_users(Oid schema, const char *table_name, int *n);
extern void journal_store_delete(Oid schema, const ItemPointerData *tids,
								 int n, bool wait);
extern void journal_store_forget(Oid schema, const char *table_name,
								 const char *const *users, int n);

#endif							/* JOURNAL_STORE_H */
