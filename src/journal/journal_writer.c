/*-------------------------------------------------------------------------
 *
 * journal_writer.c
 *		The journal writer: a background worker per database that commits
 *		the entries handed over in shared memory (journal_buffer.c) to
 *		cal_refresh_journal, in transactions of its own.
 *
 * A backend that posts entries wakes its database's writer, or asks for
 * one: a dynamic background worker, started without waiting (the entries
 * are safe in the buffer meanwhile).  The writer claims every due request
 * of its database, writes them all in one transaction, and frees them
 * once committed; a write that fails posts them again, to be retried a
 * second later.  Idle for JOURNAL_IDLE_EXIT_MS, it exits: connected, it
 * would keep DROP DATABASE from its database (which waits 5 s for others
 * to go); the next hand-over starts another.
 *
 * It commits as the server's synchronous_commit says (on, by default):
 * an entry is durable once written.  That costs a WAL flush per write, but
 * a writer writes only the hand-overs whose caller did not commit (a
 * committed refresh withdraws its own), or has not within 100 ms.  An
 * entry whose caller committed is durable with that commit anyway: the row
 * holds it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "journal_buffer.h"
#include "journal_store.h"
#include "journal_writer.h"
#include "stats.h"

/* Idle this long, the writer exits. */
#define JOURNAL_IDLE_EXIT_MS 2000

/* Requests written in one transaction at most. */
#define JOURNAL_CLAIM_MAX 64

/* This writer's slot and generation (journal_buffer.c). */
static int	writer_slot = -1;
static uint32 writer_generation = 0;

/*
 * Asks the postmaster for a writer of this database in the buffer's slot,
 * of that generation, without waiting for it; false, with *why, when it
 * cannot be had (no free background worker slot).  A worker that is
 * registered but never comes up is given up by the buffer after a second.
 */
bool
journal_writer_start(int slot, uint32 generation, const char **why)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cal_refresh");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cal_refresh_journal_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cal_refresh journal writer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cal_refresh journal writer");
	snprintf(worker.bgw_extra, BGW_EXTRALEN, "%d %u", slot, generation);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = 0;
	if (RegisterDynamicBackgroundWorker(&worker, &handle))
		return true;
	/* The slot stays "starting": the next try comes a second later. */
	*why = "no free background worker slot (max_worker_processes)";
	stats_count_writer_start_failure();
	return false;
}

/* Leaving: the slot is free, what was claimed is posted again. */
static void
journal_writer_exit(int code, Datum arg)
{
	journal_buffer_writer_gone(writer_slot, writer_generation);
}

/*
 * Decodes a claimed request's bytes into *entries (grown as needed),
 * appending; false when they are not a hand-over.
 */
static bool
journal_writer_decode(const char *bytes, Size size, JournalEntry **entries,
					  int *n, int *capacity)
{
	int			count = journal_codec_count(bytes, size);

	if (count < 0)
		return false;
	if (*n + count > *capacity)
	{
		*capacity = Max(*n + count, *capacity * 2);
		*entries = *entries == NULL ?
			palloc(sizeof(JournalEntry) * *capacity) :
			repalloc(*entries, sizeof(JournalEntry) * *capacity);
	}
	if (!journal_codec_decode(bytes, size, *entries + *n, count))
		return false;
	*n += count;
	return true;
}

/*
 * Writes the claimed requests of one schema in one transaction.  Returns
 * whether they were committed; on failure, logs why (the message only: a
 * detail could show an entry's row, tokens and all).
 */
static bool
journal_writer_commit(Oid schema, const JournalEntry *entries, int n)
{
	MemoryContext context = CurrentMemoryContext;
	volatile bool written = false;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (!journal_store_insert(schema, entries, n))
			ereport(LOG,
					(errmsg("cal_refresh journal writer: %d entries dropped: "
							"the extension has no journal in this database", n)));
		PopActiveSnapshot();
		CommitTransactionCommand();
		written = true;
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("cal_refresh journal writer: entries not written, "
						"to be tried again: %s", error->message)));
		FreeErrorData(error);
	}
	PG_END_TRY();
	return written;
}

/*
 * Writes what it claimed: the requests of each schema (one, but for a
 * database whose extension moved) in one transaction, then frees or
 * re-posts each.  A request whose bytes are no hand-over is dropped, with
 * a LOG line.
 */
static void
journal_writer_write(const int *requests, int n_requests)
{
	char	  **bytes = palloc(sizeof(char *) * n_requests);
	Size	   *sizes = palloc(sizeof(Size) * n_requests);
	Oid		   *schemas = palloc(sizeof(Oid) * n_requests);
	dsm_segment **segments = palloc0(sizeof(dsm_segment *) * n_requests);
	bool	   *done = palloc0(sizeof(bool) * n_requests);
	int			i;
	int			k;

	for (i = 0; i < n_requests; i++)
		bytes[i] = journal_buffer_claimed_bytes(requests[i], &schemas[i],
												&sizes[i], &segments[i]);
	for (i = 0; i < n_requests; i++)
	{
		JournalEntry *entries = NULL;
		int			capacity = 0;
		int			n = 0;
		bool		written;

		if (done[i])
			continue;
		for (k = i; k < n_requests; k++)
			if (!done[k] && schemas[k] == schemas[i] &&
				(bytes[k] == NULL ||
				 !journal_writer_decode(bytes[k], sizes[k], &entries, &n,
										&capacity)))
			{
				ereport(LOG,
						(errmsg("cal_refresh journal writer: a hand-over "
								"could not be read and is dropped")));
				journal_buffer_finish(requests[k], true);
				done[k] = true;
			}
		written = n == 0 || journal_writer_commit(schemas[i], entries, n);
		for (k = i; k < n_requests; k++)
			if (!done[k] && schemas[k] == schemas[i])
			{
				journal_buffer_finish(requests[k], written);
				done[k] = true;
			}
	}
	for (i = 0; i < n_requests; i++)
		if (segments[i] != NULL)
			dsm_detach(segments[i]);
}

/*
 * The writer's main function (a dynamic background worker): bgw_extra
 * names its buffer slot and generation, the argument its database.
 */
void
cal_refresh_journal_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	MemoryContext work;
	TimestampTz idle_since;

	if (sscanf(MyBgworkerEntry->bgw_extra, "%d %u", &writer_slot,
			   &writer_generation) != 2 || !journal_buffer_attached())
		proc_exit(0);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* Should connecting fail (FATAL), the buffer gives the slot up. */
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	before_shmem_exit(journal_writer_exit, (Datum) 0);
	if (!journal_buffer_writer_register(writer_slot, writer_generation, dbid))
		proc_exit(0);			/* given up meanwhile: another is wanted */
	pgstat_report_activity(STATE_IDLE, NULL);

	work = AllocSetContextCreate(TopMemoryContext, "cal_refresh journal writer",
								 ALLOCSET_DEFAULT_SIZES);
	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		int			requests[JOURNAL_CLAIM_MAX];
		int			n;
		long		sleep_ms;
		bool		waiting;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		n = journal_buffer_claim(dbid, writer_generation, requests,
								 JOURNAL_CLAIM_MAX);
		if (n > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(work);

			journal_writer_write(requests, n);
			MemoryContextSwitchTo(old);
			MemoryContextReset(work);
			idle_since = GetCurrentTimestamp();
			continue;
		}
		/* Posted requests keep it up, and it wakes when they are due. */
		if (!journal_buffer_writer_sleep(dbid, writer_slot, writer_generation,
										 TimestampDifferenceExceeds(idle_since,
																	GetCurrentTimestamp(),
																	JOURNAL_IDLE_EXIT_MS),
										 JOURNAL_IDLE_EXIT_MS, &sleep_ms,
										 &waiting))
			proc_exit(0);		/* idle: a backend starts another at need */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		if (waiting)
			idle_since = GetCurrentTimestamp();
	}
}
