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

#include "common/sha2.h"
#include "datatype/timestamp.h"
#include "fmgr.h"

/*
 * One pair, and the SHA-256 of the refresh token the row held when it was
 * asked for: the token it supersedes.
 */
typedef struct JournalEntry
{
	const char *table_name;		/* cal_refresh.table_name */
	const char *user_ulid;
	bool		has_spent;		/* false: the row held no token */
	uint8		spent_sha256[PG_SHA256_DIGEST_LENGTH];
	const char *access_token;
	const char *refresh_token;
	TimestampTz access_expires_at;
	bool		has_refresh_expiry;
	TimestampTz refresh_expires_at;
} JournalEntry;

/* From _PG_init while preloading: shared memory for the hand-over. */
extern void journal_init(void);

/*
 * Hands the entries to this database's writer (started on first use), to
 * be committed to cal_refresh_journal in the extension's schema, without
 * waiting.  From then on they are written whatever becomes of this
 * backend.  Returns false, with *why, when no writer can take them (none
 * can start, no free worker slot): the caller goes on without the journal.
 */
extern bool journal_hand_over(Oid schema, const JournalEntry *entries, int n,
							  const char **why);

/*
 * Waits, interruptibly, until the writer has committed what was handed
 * over last (the same arguments again: a writer that exited as they
 * arrived gets them once more).  Returns false, with *why, when they were
 * not written.
 */
extern void journal_wait_unacknowledged(void);
extern bool journal_await(Oid schema, const JournalEntry *entries, int n,
						  const char **why);

/* The SHA-256 of a token, as entries record the token they supersede. */
extern void journal_token_sha256(const char *token,
								 uint8 digest[PG_SHA256_DIGEST_LENGTH]);

/* The writer's main function (a dynamic background worker). */
extern PGDLLEXPORT void cal_refresh_journal_main(Datum arg);

#endif							/* JOURNAL_H */
