/*-------------------------------------------------------------------------
 *
 * refresh_pairs.c
 *		The pairs of a refresh: adopted from the journal when a row lost
 *		one, handed to the journal as Cal.com issues them, stored in the
 *		rows, wiped from memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "refresh_task.h"
#include "stats.h"

/* The result of a pair now in the row. */
static void
refresh_set_written(TokenResult *result, const TokenUpdate *update,
					const char *method)
{
	result->success = true;
	result->method = method;
	/* An adopted pair stored after its refresh failed succeeds all the same. */
	result->error_code = CAL_ERROR_NONE;
	result->error = NULL;
	result->backs_off = false;
	result->access_token = pstrdup(update->access_token);
	result->has_access_expiry = true;
	result->access_expires_at = update->access_expires_at;
	result->has_refresh_expiry = update->has_refresh_expiry;
	result->refresh_expires_at = update->refresh_expires_at;
}

/*
 * Writes new pairs to their rows (see token_store_write_all) and fills each
 * result, success or failure.  A pair the table refused fails that user
 * alone: Cal.com has rotated it already, so the failure is the user's own.
 */
void
refresh_write(const char *table_name, const TokenUpdate *updates, int n,
			  const char *const *methods, TokenResult *const *results,
			  bool isolate)
{
	TokenStoreStatus *statuses = palloc(sizeof(TokenStoreStatus) * n);
	char	  **problems = palloc(sizeof(char *) * n);
	int			i;

	token_store_write_all(table_name, updates, n, isolate, statuses, problems);
	for (i = 0; i < n; i++)
	{
		TokenResult  *result = results[i];

		if (statuses[i] == TOKEN_STORE_REFUSED)
		{
			refresh_set_failure(result, CAL_ERROR_TABLE_INVALID,
								psprintf("the new tokens could not be stored "
										 "(Cal.com has rotated them): %s",
										 problems[i]));
			result->recorded = true;
		}
		else if (statuses[i] != TOKEN_STORE_OK)
			refresh_set_store_failure(result, statuses[i], problems[i]);
		else
			refresh_set_written(result, &updates[i], methods[i]);
	}
}

/*
 * Looks up the journal for the locked rows: a row whose refresh token the
 * journal shows superseded is stale (the transaction that stored its
 * successor did not commit), and the newest journaled pair is adopted: it
 * is stored in the row in this transaction, and its refresh token is the
 * one sent.  When its access token stays valid until good_until (0:
 * never enough), no request is sent at all.
 */
void
refresh_adopt(const RefreshConfig *config, RefreshTask *tasks, int n_tasks,
			  TimestampTz good_until)
{
	const char **users = palloc(sizeof(char *) * Max(n_tasks, 1));
	uint8	   *digests = palloc(JOURNAL_DIGEST_LEN * Max(n_tasks, 1));
	bool	   *has_token = palloc(sizeof(bool) * Max(n_tasks, 1));
	JournalPair *pairs = palloc(sizeof(JournalPair) * Max(n_tasks, 1));
	int			i;

	for (i = 0; i < n_tasks; i++)
		memset(&tasks[i].journal, 0, sizeof(JournalPair));

	if (!OidIsValid(config->extension_schema))
		return;
	for (i = 0; i < n_tasks; i++)
	{
		users[i] = tasks[i].row.user_ulid;
		has_token[i] = tasks[i].has_spent = tasks[i].row.refresh_token != NULL;
		if (has_token[i])
		{
			journal_token_sha256(tasks[i].row.refresh_token,
								 tasks[i].spent_sha256);
			memcpy(digests + i * JOURNAL_DIGEST_LEN,
				   tasks[i].spent_sha256, JOURNAL_DIGEST_LEN);
		}
	}
	journal_lookup(config->extension_schema, config->table_name, users,
				   digests, has_token, n_tasks, pairs);
	for (i = 0; i < n_tasks; i++)
	{
		RefreshTask *task = &tasks[i];
		TokenUpdate *update = &task->update;

		task->journal = pairs[i];
		if (!pairs[i].found)
			continue;
		task->recovered = true;
		task->row.access_token = pairs[i].access_token;
		task->row.refresh_token = pairs[i].refresh_token;
		task->row.has_access_expiry = true;
		task->row.access_expires_at = pairs[i].access_expires_at;
		task->has_spent = true;
		journal_token_sha256(pairs[i].refresh_token, task->spent_sha256);
		update->user_ulid = task->row.user_ulid;
		update->access_token = pairs[i].access_token;
		update->refresh_token = pairs[i].refresh_token;
		update->access_expires_at = pairs[i].access_expires_at;
		update->has_refresh_expiry = pairs[i].has_refresh_expiry;
		update->refresh_expires_at = pairs[i].refresh_expires_at;
		task->has_update = true;
		task->method = "journal";
		task->no_call = good_until != 0 &&
			pairs[i].access_expires_at >= good_until;
		ereport(LOG,
				(errmsg("cal_refresh: user \"%s\": the row held a spent refresh token; "
						"the newest pair was recovered from the journal",
						task->row.user_ulid),
				 errdetail("A transaction that stored that pair did not commit.")));
	}
}

/*
 * The pairs Cal.com issued and not yet handed over, as journal entries;
 * from now on they count as handed over.
 */
JournalEntry *
refresh_journal_entries(const RefreshConfig *config, RefreshTask *tasks,
						int n_tasks, int *n)
{
	JournalEntry *entries = palloc0(sizeof(JournalEntry) * Max(n_tasks, 1));
	int			i;

	*n = 0;
	for (i = 0; i < n_tasks; i++)
	{
		const TokenUpdate *update = &tasks[i].update;
		JournalEntry *entry = &entries[*n];

		if (!tasks[i].issued || tasks[i].handed)
			continue;
		tasks[i].handed = true;
		entry->table_name = config->table_name;
		entry->user_ulid = update->user_ulid;
		entry->has_spent = tasks[i].has_spent;
		memcpy(entry->spent_sha256, tasks[i].spent_sha256,
			   JOURNAL_DIGEST_LEN);
		entry->access_token = update->access_token;
		entry->refresh_token = update->refresh_token;
		entry->access_expires_at = update->access_expires_at;
		entry->has_refresh_expiry = update->has_refresh_expiry;
		entry->refresh_expires_at = update->refresh_expires_at;
		(*n)++;
	}
	return entries;
}

/*
 * Stores every pair taken.  In a batch, a pair the table refuses fails its
 * user alone; for one user a person waits for, the error goes to them.
 */
void
refresh_store_pairs(const RefreshConfig *config, RefreshTask *tasks,
				   int n_tasks, bool isolate_users)
{
	TokenUpdate *updates = palloc(sizeof(TokenUpdate) * n_tasks);
	const char **methods = palloc(sizeof(char *) * n_tasks);
	TokenResult **results = palloc(sizeof(TokenResult *) * n_tasks);
	RefreshTask **written = palloc(sizeof(RefreshTask *) * n_tasks);
	int			n = 0;
	int			n_stored = 0;
	int			n_recovered = 0;
	int			i;

	for (i = 0; i < n_tasks; i++)
	{
		if (!tasks[i].has_update)
			continue;
		updates[n] = tasks[i].update;
		methods[n] = tasks[i].method;
		results[n] = tasks[i].result;
		/*
		 * A pair adopted from the journal is stored even when the refresh
		 * sent with it failed; its result then stays that failure unless
		 * the adopted access token still works.
		 */
		if (tasks[i].recovered && !tasks[i].issued && !tasks[i].no_call &&
			tasks[i].update.access_expires_at < GetCurrentTimestamp())
			results[n] = palloc0(sizeof(TokenResult));
		written[n] = &tasks[i];
		n++;
	}
	if (n > 0)
		refresh_write(config->table_name, updates, n, methods, results,
					  isolate_users);
	for (i = 0; i < n; i++)
	{
		written[i]->stored = results[i]->success;
		written[i]->result->recovered = written[i]->recovered;
		n_stored += written[i]->stored ? 1 : 0;
		n_recovered += written[i]->stored && written[i]->recovered ? 1 : 0;
	}
	if (config->client.track_stats)
		stats_count_stored(n_stored, n_recovered);
}

/* Wipes the refresh tokens taken (the access tokens are results). */
void
refresh_wipe_pairs(RefreshTask *tasks, int n_tasks)
{
	int			i;

	for (i = 0; i < n_tasks; i++)
		if (tasks[i].has_update)
			explicit_bzero((char *) tasks[i].update.refresh_token,
						   strlen(tasks[i].update.refresh_token));
}
