/*-------------------------------------------------------------------------
 *
 * journal.c
 *		The journal, backend side: protecting the pairs Cal.com issues
 *		until they are handed over, handing them over, and finding the
 *		newest pair a row lost.
 *
 * Cal.com rotates a pair the moment it answers; a pair kept only in the
 * caller's transaction is lost when that transaction does not commit.  So
 * a refresh runs its requests under journal_protect: every interrupt that
 * would end the statement or the session is held (interrupt_hold.c) from
 * the first request sent until the pairs issued are handed over to the
 * journal's shared memory (journal_buffer.c).  From there they survive the
 * caller's rollback, cancel or termination: every lookup reads them, and a
 * writer (journal_writer.c) commits them to cal_refresh_journal.  The
 * caller never waits for the writer: no call depends on one starting, on
 * a free worker slot, or on a healthy writer.  When the caller commits
 * with every pair of a hand-over stored in its row, that hand-over is
 * needless and withdrawn before a writer takes it: a refresh that
 * commits costs the journal no write at all; when it does not commit
 * (rollback, a rolled-back savepoint, PREPARE, an error, the end of the
 * session), its hand-overs are marked needed and written at once.  When the hand-over itself
 * fails (the buffer full, no shared memory for a batch's segment, the
 * library not preloaded), the pairs are still stored in the rows by the
 * caller as before; a WARNING says so and cal_refresh_stats_info counts
 * them.
 *
 * An entry records the SHA-256 of the refresh token the row held when its
 * pair was asked for.  Refreshes of a user are serialised by its row lock,
 * so entries form a chain: the row's token, the entry that spent it, the
 * entry that spent that one's, and so on; the end of the chain is the pair
 * Cal.com considers current.  A row some entry supersedes is stale (a
 * transaction that stored the successor did not commit).
 *
 * What can still lose a pair: the server stopping (crash, immediate
 * shutdown) while a request is on the wire or before an entry handed over
 * is committed and flushed (normally well under a second; longer while no
 * writer can run, which cal_refresh_check() reports); an interrupt that
 * outlasts cal_refresh.cancel_grace; a hand-over that fails and a caller
 * that does not commit (counted as unjournaled_pairs).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "interrupt_hold.h"
#include "journal.h"
#include "journal_buffer.h"
#include "journal_store.h"
#include "journal_writer.h"
#include "spi_pinned.h"
#include "stats.h"

/* Unseen rows' entries older than this are deleted (no token lives longer). */
#define JOURNAL_KEEP_UNSEEN_USECS (INT64CONST(366) * USECS_PER_DAY)

/* How long cal_refresh_check() waits for a writer to come up. */
#define JOURNAL_CHECK_WAIT_MS 2000

/* Said once per session: the extension's objects have no journal. */
static bool journal_missing_warned = false;

/*
 * The hand-overs of this transaction, to be settled when it ends: each
 * with the subtransaction that made it (one that rolls back makes it
 * needed at once) and whether all its pairs are stored in their rows.
 */
typedef struct JournalHanded
{
	JournalPosted posted;
	SubTransactionId subxact;
	bool		stored;
} JournalHanded;

static JournalHanded *handed = NULL;
static int	n_handed = 0;
static int	handed_capacity = 0;

/* From _PG_init while preloading: the journal's shared memory. */
void
journal_init(void)
{
	journal_buffer_init();
}

/* The SHA-256 of a token, as entries record the token they supersede. */
void
journal_token_sha256(const char *token, uint8 digest[JOURNAL_DIGEST_LEN])
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) token, strlen(token)) < 0 ||
		pg_cryptohash_final(ctx, digest, JOURNAL_DIGEST_LEN) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute a SHA-256 hash")));
	}
	pg_cryptohash_free(ctx);
}

/*
 * Can the journal take entries: the library preloaded, and the extension
 * with a journal table?  Else why not.
 */
static bool
journal_can_take(Oid schema, const char **why)
{
	if (!journal_buffer_attached())
		*why = "cal_refresh is not in shared_preload_libraries";
	else if (!OidIsValid(schema) || !journal_store_exists(schema))
		*why = "the extension's objects have no journal "
			"(ALTER EXTENSION cal_refresh UPDATE adds it)";
	else
		return true;
	return false;
}

/*
 * n pairs the journal did not take: they live only in the caller's
 * transaction.  Logged and counted; a WARNING tells the caller, but for
 * objects without a journal, which say so once per session.
 */
static void
journal_not_taken(int n, const char *why, bool missing)
{
	stats_count_unjournaled(n);
	ereport(LOG,
			(errmsg("cal_refresh: %d new pair(s) not journaled: %s", n, why),
			 errdetail("Should this transaction not commit, those pairs are lost.")));
	if (missing && journal_missing_warned)
		return;
	ereport(WARNING,
			(errmsg("cal_refresh: %d new pair(s) not journaled: %s", n, why),
			 errdetail("They live only in this transaction; should it not "
					   "commit, they are lost and force refresh is needed.")));
	journal_missing_warned |= missing;
}

/*
 * Has this database's writer started if none runs, and woken (with wake)
 * if one does; entries wait in the buffer meanwhile.  Why none can start
 * goes to the log.
 */
static void
journal_wake_writer(bool wake)
{
	int			slot;
	uint32		generation;
	const char *why;

	switch (journal_buffer_writer_need(MyDatabaseId, wake, &slot, &generation))
	{
		case JOURNAL_WRITER_NONE:
			break;
		case JOURNAL_WRITER_START:
			if (!journal_writer_start(slot, generation, &why))
				ereport(LOG,
						(errmsg("cal_refresh: no journal writer could be started: %s", why),
						 errdetail("Handed-over pairs wait in shared memory until one can.")));
			break;
		case JOURNAL_WRITER_NO_SLOT:
			ereport(LOG,
					(errmsg("cal_refresh: no journal writer for this database: "
							"every writer slot serves another database"),
					 errdetail("Handed-over pairs wait in shared memory until one is free.")));
			break;
	}
}

/*
 * Settles this transaction's hand-overs: at COMMIT, those whose pairs are
 * all stored are withdrawn; the others, and all of them at ABORT or
 * PREPARE (whoever ends a prepared transaction, its pairs must be kept),
 * are needed now, and the writer is woken.
 */
static void
journal_xact_callback(XactEvent event, void *arg)
{
	bool		wake = false;
	int			i;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
		return;
	for (i = 0; i < n_handed; i++)
		wake |= journal_buffer_settle(&handed[i].posted,
									  event == XACT_EVENT_COMMIT &&
									  handed[i].stored);
	n_handed = 0;
	if (wake)
		journal_wake_writer(true);
}

/*
 * A rolled-back subtransaction's hand-overs are needed at once; a
 * committed one's belong to its parent from now on.
 */
static void
journal_subxact_callback(SubXactEvent event, SubTransactionId subxact,
						 SubTransactionId parent, void *arg)
{
	bool		wake = false;
	int			kept = 0;
	int			i;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (i = 0; i < n_handed; i++)
	{
		if (handed[i].subxact == subxact && event == SUBXACT_EVENT_ABORT_SUB)
		{
			wake |= journal_buffer_settle(&handed[i].posted, false);
			continue;
		}
		if (handed[i].subxact == subxact)
			handed[i].subxact = parent;
		handed[kept++] = handed[i];
	}
	n_handed = kept;
	if (wake)
		journal_wake_writer(true);
}

/* Notes a hand-over of the current (sub)transaction, to be settled. */
static void
journal_note_handed(const JournalPosted *posted)
{
	if (handed == NULL)
	{
		RegisterXactCallback(journal_xact_callback, NULL);
		RegisterSubXactCallback(journal_subxact_callback, NULL);
	}
	if (n_handed == handed_capacity)
	{
		handed_capacity = Max(8, handed_capacity * 2);
		handed = handed == NULL ?
			MemoryContextAlloc(TopMemoryContext,
							   sizeof(JournalHanded) * handed_capacity) :
			repalloc(handed, sizeof(JournalHanded) * handed_capacity);
	}
	handed[n_handed].posted = *posted;
	handed[n_handed].subxact = GetCurrentSubTransactionId();
	handed[n_handed].stored = false;
	n_handed++;
}

/* The bytes one entry adds to a hand-over. */
static Size
journal_entry_size(const JournalEntry *entry)
{
	return journal_codec_size(entry, 1) - journal_codec_size(entry, 0);
}

/*
 * Posts the entries in requests' own bytes, as many at a time as fit;
 * returns how many were posted (all, unless the buffer is full).
 */
static int
journal_post_inline(Oid schema, const JournalEntry *entries, int n)
{
	Size		header = journal_codec_size(entries, 0);
	int			start = 0;

	while (start < n)
	{
		Size		size = header + journal_entry_size(&entries[start]);
		int			end = start + 1;
		JournalPosted posted;

		while (end < n &&
			   size + journal_entry_size(&entries[end]) <= JOURNAL_INLINE_BYTES)
			size += journal_entry_size(&entries[end++]);
		if (size > JOURNAL_INLINE_BYTES ||
			!journal_buffer_post_inline(schema, &entries[start], end - start,
										size, &posted))
			break;
		journal_note_handed(&posted);
		start = end;
	}
	return start;
}

typedef struct JournalSegmentPost
{
	Oid			schema;
	const JournalEntry *entries;
	int			n;
	Size		size;
	bool		posted;
	JournalPosted request;
} JournalSegmentPost;

/* Posts a batch's entries in a pinned segment of their own. */
static void
journal_post_segment_now(void *arg)
{
	JournalSegmentPost *post = (JournalSegmentPost *) arg;
	dsm_segment *segment = dsm_create(post->size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	dsm_handle	handle;

	if (segment == NULL)
		return;
	journal_codec_encode(dsm_segment_address(segment), post->entries, post->n);
	handle = dsm_segment_handle(segment);
	/* From here the writer that commits them unpins it. */
	dsm_pin_segment(segment);
	post->posted = journal_buffer_post_segment(post->schema, handle, post->n,
											   post->size, &post->request);
	if (!post->posted)
	{
		explicit_bzero(dsm_segment_address(segment), post->size);
		dsm_unpin_segment(handle);
	}
	dsm_detach(segment);
}

/*
 * Posts a batch too large for a request's bytes in a segment; false when
 * none can be had.  dsm_create raises when /dev/shm is full, so it runs
 * in a subtransaction whose error is logged (its message only) and
 * dropped: the caller then posts the entries a few at a time.
 */
static bool
journal_post_segment(Oid schema, const JournalEntry *entries, int n,
					 Size size)
{
	JournalSegmentPost post = {schema, entries, n, size, false, {0, 0}};
	ErrorData  *error = spi_pinned_in_subtransaction(journal_post_segment_now,
													 &post, true,
													 CurrentMemoryContext);

	if (error == NULL)
	{
		/* Noted here, in the caller's subtransaction, not the one above. */
		if (post.posted)
			journal_note_handed(&post.request);
		return post.posted;
	}
	/* The error ended the hold as any error does: take it again. */
	interrupt_hold_renew();
	ereport(LOG,
			(errmsg("cal_refresh: %d new pairs not handed over in one segment: %s",
					n, error->message)));
	FreeErrorData(error);
	return false;
}

/*
 * Hands the pairs the issuer has over to the journal: a segment for a
 * batch (unless in_error: an error is on its way, and a subtransaction is
 * no place for it), else requests' own bytes.  What cannot be handed over
 * is said and counted (journal_not_taken).
 */
static void
journal_hand_over(Oid schema, const JournalIssuer *issuer, bool in_error)
{
	int			n;
	JournalEntry *entries = issuer->issued(issuer->arg, &n);
	const char *why;
	Size		size;
	int			posted = 0;

	if (n == 0)
		return;
	if (!journal_can_take(schema, &why))
	{
		journal_not_taken(n, why, true);
		return;
	}
	size = journal_codec_size(entries, n);
	if (size == 0)
		elog(ERROR, "cal_refresh: a journal entry cannot be encoded");
	if (size > JOURNAL_INLINE_BYTES && !in_error &&
		journal_post_segment(schema, entries, n, size))
		posted = n;
	else
		posted = journal_post_inline(schema, entries, n);
	if (posted > 0)
		journal_wake_writer(false);
	if (posted < n)
		journal_not_taken(n - posted, "the journal's shared memory is full",
						  false);
}

/*
 * Runs the issuer's requests with every interrupt that would end the
 * statement or the session held, hands the pairs they issue over to the
 * journal as they come (whenever send returns true) and at the end, then
 * lets a held interrupt take effect (it raises here, the pairs safe), then
 * has the issuer store them.  When it stored them all,
 * the hand-overs are withdrawn should the transaction commit.  An error
 * from the requests themselves hands over what was issued before it goes
 * on.
 */
void
journal_protect(Oid schema, const JournalIssuer *issuer)
{
	MemoryContext context = CurrentMemoryContext;
	int			first_handed = n_handed;
	int			i;

	interrupt_hold_begin();
	PG_TRY();
	{
		while (issuer->send(issuer->arg))
			journal_hand_over(schema, issuer, false);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		interrupt_hold_forget();
		interrupt_hold_begin();
		journal_hand_over(schema, issuer, true);
		interrupt_hold_end_quietly();
		PG_RE_THROW();
	}
	PG_END_TRY();
	journal_hand_over(schema, issuer, false);
	interrupt_hold_end();
	if (issuer->store(issuer->arg))
		for (i = first_handed; i < n_handed; i++)
			handed[i].stored = true;
}

/* Orders candidates by user. */
static int
journal_buffered_cmp(const void *a, const void *b)
{
	return ((const JournalBufferEntry *) a)->user_index -
		((const JournalBufferEntry *) b)->user_index;
}

/*
 * Follows one user's chain from the row's token through the candidates
 * (the buffer's, then the table's: a later one wins a tie); the entry at
 * its end, or NULL when no candidate supersedes the row.
 */
static const JournalEntry *
journal_chain_end(const JournalEntry *const *candidates, int n,
				  const uint8 *row_token_sha256, bool has_row_token)
{
	const JournalEntry *end = NULL;
	uint8		current[JOURNAL_DIGEST_LEN];
	bool		has_current = has_row_token;
	int			steps;

	if (has_row_token)
		memcpy(current, row_token_sha256, JOURNAL_DIGEST_LEN);
	for (steps = 0; steps < n; steps++)
	{
		const JournalEntry *next = NULL;
		int			i;

		for (i = 0; i < n; i++)
			if (has_current ?
				(candidates[i]->has_spent &&
				 memcmp(candidates[i]->spent_sha256, current,
						JOURNAL_DIGEST_LEN) == 0) :
				!candidates[i]->has_spent)
				next = candidates[i];
		if (next == NULL)
			break;
		end = next;
		journal_token_sha256(end->refresh_token, current);
		has_current = true;
	}
	return end;
}

/* Appends a tid to a growing array. */
static void
journal_add_tid(ItemPointerData **tids, int *n, ItemPointerData tid)
{
	if (*n % 4 == 0)
		*tids = *tids == NULL ? palloc(sizeof(ItemPointerData) * 4) :
			repalloc(*tids, sizeof(ItemPointerData) * (*n + 4));
	(*tids)[(*n)++] = tid;
}

/* Is a stored entry past any use: its refresh token expired, or too old? */
static bool
journal_entry_expired(const JournalStoreEntry *stored, TimestampTz now)
{
	if (stored->entry.has_refresh_expiry)
		return stored->entry.refresh_expires_at < now;
	return stored->issued_at != 0 &&
		stored->issued_at < now - JOURNAL_KEEP_UNSEEN_USECS;
}

/* Wipes a candidate's tokens, unless adopted (then the caller's). */
static void
journal_wipe_entry(JournalEntry *entry)
{
	if (entry->access_token != NULL)
		explicit_bzero((char *) entry->access_token, strlen(entry->access_token));
	if (entry->refresh_token != NULL)
		explicit_bzero((char *) entry->refresh_token, strlen(entry->refresh_token));
}

/*
 * For each of the n users of table_name, whose row holds the refresh
 * token with the SHA-256 at row_token_sha256 + i * JOURNAL_DIGEST_LEN
 * (has_row_token[i] false: none), what the journal holds (see
 * JournalPair): the pairs handed over and not yet committed, then the
 * table.  Should any hand-over of this database wait in the buffer, its
 * writer is woken or started.
 */
void
journal_lookup(Oid schema, const char *table_name, const char *const *users,
			   const uint8 *row_token_sha256, const bool *has_row_token,
			   int n, JournalPair *pairs)
{
	JournalBufferEntry *buffered;
	JournalStoreEntry *stored;
	const JournalEntry **candidates;
	TimestampTz now = GetCurrentTimestamp();
	int			n_buffered;
	int			n_stored;
	bool		waiting;
	int			b = 0;
	int			s = 0;
	int			i;

	memset(pairs, 0, sizeof(JournalPair) * n);
	if (n == 0 || !journal_store_exists(schema))
		return;
	/* The buffer first: what leaves it is in the table by then. */
	buffered = journal_buffer_collect(schema, table_name, users, n,
									  &n_buffered, &waiting);
	stored = journal_store_read(schema, table_name, users, n, &n_stored);
	if (n_buffered > 1)
		qsort(buffered, n_buffered, sizeof(JournalBufferEntry),
			  journal_buffered_cmp);
	candidates = palloc(sizeof(JournalEntry *) * Max(n_buffered + n_stored, 1));
	for (i = 0; i < n; i++)
	{
		const JournalEntry *end;
		int			k = 0;

		for (; b < n_buffered && buffered[b].user_index == i; b++)
			candidates[k++] = &buffered[b].entry;
		for (; s < n_stored && stored[s].user_index == i; s++)
		{
			journal_add_tid(&pairs[i].seen, &pairs[i].n_seen, stored[s].tid);
			if (journal_entry_expired(&stored[s], now))
				journal_add_tid(&pairs[i].expired, &pairs[i].n_expired,
								stored[s].tid);
			if (!stored[s].unusable)
				candidates[k++] = &stored[s].entry;
		}
		end = journal_chain_end(candidates, k,
								row_token_sha256 + i * JOURNAL_DIGEST_LEN,
								has_row_token[i]);
		if (end == NULL)
			continue;
		pairs[i].found = true;
		pairs[i].access_token = pstrdup(end->access_token);
		pairs[i].refresh_token = pstrdup(end->refresh_token);
		pairs[i].access_expires_at = end->access_expires_at;
		pairs[i].has_refresh_expiry = end->has_refresh_expiry;
		pairs[i].refresh_expires_at = end->refresh_expires_at;
	}
	for (i = 0; i < n_buffered; i++)
		journal_wipe_entry(&buffered[i].entry);
	for (i = 0; i < n_stored; i++)
		journal_wipe_entry(&stored[i].entry);
	if (waiting)
		journal_wake_writer(true);
}

/*
 * Deletes the table entries journal_lookup saw for the n users (only those
 * past any use, with expired), in this transaction.
 */
static void
journal_delete_seen(Oid schema, const JournalPair *pairs, int n,
					bool expired, bool wait)
{
	ItemPointerData *tids = NULL;
	int			n_tids = 0;
	int			i;
	int			k;

	for (i = 0; i < n; i++)
	{
		const ItemPointerData *seen = expired ? pairs[i].expired : pairs[i].seen;
		int			n_seen = expired ? pairs[i].n_expired : pairs[i].n_seen;

		for (k = 0; k < n_seen; k++)
			journal_add_tid(&tids, &n_tids, seen[k]);
	}
	journal_store_delete(schema, tids, n_tids, wait);
}

/*
 * Deletes, in this transaction (so that a rollback keeps them), the table
 * entries journal_lookup saw for the n users: their rows now hold a newer
 * pair than any of those.  Without wait, an entry another open
 * transaction is deleting is left to it.
 */
void
journal_forget_seen(Oid schema, const JournalPair *pairs, int n, bool wait)
{
	journal_delete_seen(schema, pairs, n, false, wait);
}

/*
 * Deletes the entries journal_lookup found past any use for the n users
 * (their rows were not seen: deleted, or hidden by row-level security),
 * without waiting for an open transaction that deletes them too.
 */
void
journal_forget_expired(Oid schema, const JournalPair *pairs, int n)
{
	journal_delete_seen(schema, pairs, n, true, false);
}

/*
 * Deletes every table entry of the n users, whose rows now hold a pair
 * the application had issued, in this transaction.
 */
void
journal_forget_users(Oid schema, const char *table_name,
					 const char *const *users, int n)
{
	journal_store_forget(schema, table_name, users, n);
}

/* The users of table_name with entries in the table (*n of them). */
char	  **
journal_users(Oid schema, const char *table_name, int *n)
{
	*n = 0;
	if (!journal_store_exists(schema))
		return NULL;
	return journal_store_users(schema, table_name, n);
}

/*
 * cal_refresh_check()'s row for the journal: is there one, can this
 * database's writer run (one is started if none runs, and waited for up
 * to JOURNAL_CHECK_WAIT_MS), do entries wait to be written?  Returns ok,
 * with what was found in *detail and, when not ok, the fix in *hint.
 */
bool
journal_check(Oid schema, char **detail, char **hint)
{
	const char *why;
	TimestampTz oldest;
	TimestampTz deadline;
	int			pending;

	*hint = NULL;
	if (!journal_can_take(schema, &why))
	{
		*detail = psprintf("no journal: %s", why);
		*hint = "Preload the library and run ALTER EXTENSION cal_refresh UPDATE.";
		return false;
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   JOURNAL_CHECK_WAIT_MS);
	for (;;)
	{
		int			slot;
		uint32		generation;
		JournalWriterNeed need = journal_buffer_writer_need(MyDatabaseId,
															false, &slot,
															&generation);

		if (need == JOURNAL_WRITER_NO_SLOT)
		{
			*detail = "no journal writer can serve this database: every "
				"writer slot serves another database";
			*hint = "Fewer databases with the extension in use at once.";
			return false;
		}
		if (need == JOURNAL_WRITER_START &&
			!journal_writer_start(slot, generation, &why))
		{
			*detail = psprintf("no journal writer can start: %s "
							   "(max_worker_processes = %d)", why,
							   max_worker_processes);
			*hint = "Raise max_worker_processes (a restart), or stop "
				"what holds the background worker slots.";
			return false;
		}
		if (journal_buffer_writer_ready(MyDatabaseId))
			break;
		if (GetCurrentTimestamp() >= deadline)
		{
			*detail = psprintf("a journal writer was started but did not "
							   "come up within %d ms", JOURNAL_CHECK_WAIT_MS);
			*hint = "See the server log: can a background worker connect "
				"to this database (datallowconn, max_connections)?";
			return false;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	/* What was just handed over is written in a moment: wait for it. */
	while ((pending = journal_buffer_pending(MyDatabaseId, &oldest)) > 0 &&
		   GetCurrentTimestamp() < deadline)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (pending > 0)
	{
		*detail = psprintf("a journal writer runs for this database, and %d "
						   "hand-over(s) wait to be written, the oldest for %ld s",
						   pending,
						   (long) ((GetCurrentTimestamp() - oldest) / USECS_PER_SEC));
		*hint = "See the server log for the journal writer's errors.";
		return false;
	}
	*detail = "a journal writer runs for this database; nothing waits to be written";
	return true;
}
