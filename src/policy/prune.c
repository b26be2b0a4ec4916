/*-------------------------------------------------------------------------
 *
 * prune.c
 *		What the scheduled job deletes before its batches, so that the
 *		extension's own tables hold only what still matters: journal
 *		entries no row needs, failure records of users who are gone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "failure_store.h"
#include "journal.h"
#include "prune.h"
#include "token_store.h"

/*
 * Reads the n users' rows as they are now, without a lock; has_row[i]
 * says whether user i has one.  False when the table does not fit (the
 * batches will say why).
 */
static bool
prune_read_rows(const RefreshConfig *config, char **users, int n,
				TokenRow *rows, bool *has_row)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		char	   *problem = NULL;
		TokenStoreStatus status = token_store_read_row(config->table_name,
													   users[i], &rows[i],
													   &problem);

		if (status == TOKEN_STORE_TABLE_INVALID)
			return false;
		has_row[i] = status == TOKEN_STORE_OK;
	}
	return true;
}

/*
 * Deletes the journal's entries that no row needs any more: those of users
 * whose row was seen holding their pair or a newer one (no entry
 * supersedes its token).  A row not seen may be hidden by row-level
 * security rather than gone: its entries stay, unless past any use (their
 * refresh token expired, or over a year old).  Returns how many went.  In
 * the caller's transaction.
 */
int
prune_journal(const RefreshConfig *config)
{
	int			n_users;
	char	  **users;
	uint8	   *digests;
	bool	   *has_token;
	bool	   *has_row;
	TokenRow   *rows;
	JournalPair *pairs;
	JournalPair *obsolete;
	int			n_obsolete = 0;
	int			n_unseen = 0;
	int			n_entries = 0;
	int			i;

	if (!OidIsValid(config->extension_schema))
		return 0;
	users = journal_users(config->extension_schema, config->table_name,
						  &n_users);
	if (n_users == 0)
		return 0;
	digests = palloc(JOURNAL_DIGEST_LEN * n_users);
	has_token = palloc(sizeof(bool) * n_users);
	has_row = palloc(sizeof(bool) * n_users);
	pairs = palloc(sizeof(JournalPair) * n_users);
	obsolete = palloc(sizeof(JournalPair) * n_users);
	rows = palloc(sizeof(TokenRow) * n_users);
	if (!prune_read_rows(config, users, n_users, rows, has_row))
		return 0;
	for (i = 0; i < n_users; i++)
	{
		has_token[i] = has_row[i] && rows[i].refresh_token != NULL;
		if (has_token[i])
			journal_token_sha256(rows[i].refresh_token,
								 digests + i * JOURNAL_DIGEST_LEN);
	}
	journal_lookup(config->extension_schema, config->table_name,
				   (const char *const *) users, digests, has_token, n_users,
				   pairs);
	for (i = 0; i < n_users; i++)
	{
		if (!has_row[i])
		{
			n_entries += pairs[i].n_expired;
			pairs[n_unseen++] = pairs[i];
		}
		else if (!pairs[i].found)
		{
			n_entries += pairs[i].n_seen;
			obsolete[n_obsolete++] = pairs[i];
		}
	}
	/* Not waiting for an application's open transaction: the next run will. */
	journal_forget_expired(config->extension_schema, pairs, n_unseen);
	journal_forget_seen(config->extension_schema, obsolete, n_obsolete, false);
	return n_entries;
}

/*
 * Deletes the failure records of users without a row in the table (the
 * application deleted them): nothing would ever clear those.  Returns how
 * many went.  In the caller's transaction.
 */
int
prune_failures(const RefreshConfig *config)
{
	int			n_users;
	char	  **users;
	const char **gone;
	TokenRow   *rows;
	bool	   *has_row;
	int			n_gone = 0;
	int			i;

	if (!OidIsValid(config->extension_schema))
		return 0;
	users = failure_store_users(config->extension_schema, &n_users);
	gone = palloc(sizeof(char *) * Max(n_users, 1));
	rows = palloc(sizeof(TokenRow) * Max(n_users, 1));
	has_row = palloc(sizeof(bool) * Max(n_users, 1));
	if (!prune_read_rows(config, users, n_users, rows, has_row))
		return 0;
	for (i = 0; i < n_users; i++)
		if (!has_row[i])
			gone[n_gone++] = users[i];
	failure_store_clear(config->extension_schema, gone, n_gone);
	return n_gone;
}
