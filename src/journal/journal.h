/*-------------------------------------------------------------------------
 *
 * journal.h
 *		The journal as the refresh policy sees it: requests that may issue
 *		pairs run protected, the pairs they issued are handed over before
 *		anything can lose them, and a lookup finds the pair a row lost.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include "datatype/timestamp.h"
#include "storage/itemptr.h"

#include "journal_codec.h"

/*
 * What the journal holds for one user: the table's entries seen (to be
 * deleted once the row holds a newer pair), those of them that are too
 * old to matter, and the newest pair when the row is stale.
 */
typedef struct JournalPair
{
	int			n_seen;
	ItemPointerData *seen;
	int			n_expired;		/* of the seen: refresh token expired */
	ItemPointerData *expired;
	bool		found;			/* the row is stale: the newest pair */
	char	   *access_token;
	char	   *refresh_token;
	TimestampTz access_expires_at;
	bool		has_refresh_expiry;
	TimestampTz refresh_expires_at;
} JournalPair;

/*
 * Requests that may issue pairs: send runs them, returning true when pairs
 * wait to be handed over before it goes on, false once done; issued
 * returns the pairs issued and not yet handed over (palloc'd; n of them);
 * store stores them all in their rows, and says whether every one was.
 */
typedef struct JournalIssuer
{
	bool		(*send) (void *arg);
	JournalEntry *(*issued) (void *arg, int *n);
	bool		(*store) (void *arg);
	void	   *arg;
} JournalIssuer;

/* in journal.c */
extern void journal_init(void);
extern void journal_protect(Oid schema, const JournalIssuer *issuer);
extern void journal_lookup(Oid schema, const char *table_name,
						   const char *const *users,
						   const uint8 *row_token_sha256,
						   const bool *has_row_token, int n,
						   JournalPair *pairs);
extern void journal_forget_seen(Oid schema, const JournalPair *pairs, int n,
								bool wait);
extern void journal_forget_expired(Oid schema, const JournalPair *pairs,
								   int n);
extern void journal_forget_users(Oid schema, const char *table_name,
								 const char *const *users, int n);
extern char **journal_users(Oid schema, const char *table_name, int *n);
extern bool journal_check(Oid schema, char **detail, char **hint);
extern void journal_token_sha256(const char *token,
								 uint8 digest[JOURNAL_DIGEST_LEN]);

#endif							/* JOURNAL_H */
