/*-------------------------------------------------------------------------
 *
 * journal.c
 *		The journal writer: a background worker per database that commits
 *		the pairs Cal.com issued, in transactions of their own, before the
 *		backend that asked for them returns or stores them.
 *
 * Cal.com rotates a pair the moment it answers; a pair kept only in the
 * caller's transaction is lost when that transaction does not commit.  So
 * the backend hands its new pairs (all of a batch at once) to the writer:
 * it copies them into its own request slot in shared memory (a batch too
 * large for the slot goes in a pinned dynamic shared memory segment),
 * wakes the writer, and later sleeps on its latch, interruptibly, until
 * the writer has committed them and says so.  Once handed over, the
 * entries no longer depend on the backend: should it fail or be cancelled
 * before the acknowledgement, the writer still commits them, and the
 * aborting (sub)transaction waits for that before it releases the row lock,
 * so that the next refresh of the user finds them.
 *
 * One writer serves one database (a worker connects to one); the first
 * backend of a database that needs one starts it as a dynamic background
 * worker, so every database with the extension has its own.
 *
 * The writer commits asynchronously (synchronous_commit off), so that a
 * refresh pays no WAL flush of its own.  An acknowledged entry's commit
 * record precedes in the WAL anything the caller writes afterwards, so
 * once the caller's COMMIT has returned the entry is as durable as that
 * commit; when the caller's transaction does not commit, the WAL writer
 * flushes the entry within three wal_writer_delay (600 ms by default).
 * Only a crash of the whole server within that window, after a call whose
 * transaction did not commit, loses a pair.
 *
 * When no writer can take an entry (no free worker slot, the library not
 * preloaded, the extension's objects older than 1.2), the call goes on
 * without the journal, as before it existed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/cryptohash.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "journal.h"
#include "journal_store.h"

/* Databases served at once; one more starts no writer (no journal). */
#define JOURNAL_MAX_WRITERS 32

/*
 * Bytes of entries a request slot holds in place: a few pairs (a pair is
 * about 2 kB at most).  A larger hand-over, a batch's, takes a segment.
 */
#define JOURNAL_INLINE_BYTES 8192

/* How long an aborting transaction waits for its entries' commit. */
#define JOURNAL_ABORT_WAIT_MS 5000

/* How long a backend waits for a writer to start. */
#define JOURNAL_START_TIMEOUT_MS 10000

/*
 * A writer with nothing to do for this long exits: connected, it would
 * keep DROP DATABASE from its database (which waits 5 s for others to go).
 */
#define JOURNAL_IDLE_EXIT_MS 2000

typedef enum JournalRequestState
{
	REQUEST_FREE,
	REQUEST_PENDING,			/* the segment holds entries to write */
	REQUEST_DONE,				/* committed */
	REQUEST_FAILED				/* not written */
} JournalRequestState;

/* One backend's request, in the slot of its PGPROC number. */
typedef struct JournalRequest
{
	Oid			dbid;
	Oid			schema;			/* the extension's, in that database */
	dsm_handle	handle;			/* a pinned segment, or DSM_HANDLE_INVALID:
								 * the entries are in the slot's bytes */
	Size		size;			/* bytes of entries */
	int			requester;		/* its PGPROC number */
	pg_atomic_uint32 state;
} JournalRequest;

/* The writer of one database. */
typedef struct JournalWriter
{
	Oid			dbid;			/* InvalidOid: a free slot */
	int			pgprocno;		/* -1 while it starts */
} JournalWriter;

typedef struct JournalShared
{
	slock_t		mutex;			/* guards writers[] */
	JournalWriter writers[JOURNAL_MAX_WRITERS];
	int			n_requests;
	JournalRequest requests[FLEXIBLE_ARRAY_MEMBER];
} JournalShared;

static JournalShared *journal_shared = NULL;

#ifdef CAL_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int	journal_requests_needed(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS;
}

/* The request slots, then each slot's bytes. */
static Size
journal_inline_offset(void)
{
	return MAXALIGN(add_size(offsetof(JournalShared, requests),
							 mul_size(journal_requests_needed(),
									  sizeof(JournalRequest))));
}

static Size
journal_shmem_size(void)
{
	return add_size(journal_inline_offset(),
					mul_size(journal_requests_needed(), JOURNAL_INLINE_BYTES));
}

/* Where request i keeps its entries in place. */
static char *
journal_inline_bytes(int i)
{
	return (char *) journal_shared + journal_inline_offset() +
		(Size) i * JOURNAL_INLINE_BYTES;
}

#ifdef CAL_HAVE_SHMEM_REQUEST_HOOK
static void
journal_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(journal_shmem_size()));
}
#endif

static void
journal_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	journal_shared = ShmemInitStruct("cal_refresh journal",
									 journal_shmem_size(), &found);
	if (!found)
	{
		SpinLockInit(&journal_shared->mutex);
		for (i = 0; i < JOURNAL_MAX_WRITERS; i++)
		{
			journal_shared->writers[i].dbid = InvalidOid;
			journal_shared->writers[i].pgprocno = -1;
		}
		journal_shared->n_requests = journal_requests_needed();
		for (i = 0; i < journal_shared->n_requests; i++)
			pg_atomic_init_u32(&journal_shared->requests[i].state,
							   REQUEST_FREE);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
journal_init(void)
{
#ifdef CAL_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = journal_shmem_request;
#else
	RequestAddinShmemSpace(MAXALIGN(journal_shmem_size()));
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = journal_shmem_startup;
}

/* --- the entries, as bytes in a segment --------------------------------- */

/* Room for a string: its length (-1: NULL) and its bytes. */
static Size
journal_string_size(const char *s)
{
	return sizeof(int32) + (s == NULL ? 0 : strlen(s));
}

static char *
journal_put_string(char *p, const char *s)
{
	int32		len = s == NULL ? -1 : (int32) strlen(s);

	memcpy(p, &len, sizeof(len));
	p += sizeof(len);
	/* Length-prefixed, deliberately without the terminating zero. */
	if (len > 0)
		memcpy(p, s, len);		/* NOLINT(bugprone-not-null-terminated-result) */
	return p + Max(len, 0);
}

static const char *
journal_get_string(const char **p, const char *end)
{
	int32		len;
	char	   *s;

	if (end - *p < (ptrdiff_t) sizeof(len))
		elog(ERROR, "cal_refresh journal request is truncated");
	memcpy(&len, *p, sizeof(len));
	*p += sizeof(len);
	if (len < 0)
		return NULL;
	if (end - *p < len)
		elog(ERROR, "cal_refresh journal request is truncated");
	s = palloc(len + 1);
	memcpy(s, *p, len);
	s[len] = '\0';
	*p += len;
	return s;
}

static Size
journal_entries_size(const JournalEntry *entries, int n)
{
	Size		size = sizeof(int32);
	int			i;

	for (i = 0; i < n; i++)
		size = add_size(size, journal_string_size(entries[i].table_name) +
						journal_string_size(entries[i].user_ulid) +
						sizeof(entries[i].spent_sha256) +
						journal_string_size(entries[i].access_token) +
						journal_string_size(entries[i].refresh_token) +
						4 * sizeof(int64));
	return size;
}

static void
journal_put_entries(char *p, const JournalEntry *entries, int32 n)
{
	int			i;

	memcpy(p, &n, sizeof(n));
	p += sizeof(n);
	for (i = 0; i < n; i++)
	{
		int64		numbers[4] = {entries[i].access_expires_at,
			entries[i].has_refresh_expiry,
			entries[i].refresh_expires_at,
		entries[i].has_spent};

		p = journal_put_string(p, entries[i].table_name);
		p = journal_put_string(p, entries[i].user_ulid);
		memcpy(p, entries[i].spent_sha256, sizeof(entries[i].spent_sha256));
		p += sizeof(entries[i].spent_sha256);
		p = journal_put_string(p, entries[i].access_token);
		p = journal_put_string(p, entries[i].refresh_token);
		memcpy(p, numbers, sizeof(numbers));
		p += sizeof(numbers);
	}
}

static JournalEntry *
journal_get_entries(const char *p, Size size, int *n)
{
	const char *end = p + size;
	JournalEntry *entries;
	int32		count;
	int			i;

	if (size < sizeof(count))
		elog(ERROR, "cal_refresh journal request is truncated");
	memcpy(&count, p, sizeof(count));
	p += sizeof(count);
	if (count < 0 || (Size) count > MaxAllocSize / sizeof(JournalEntry))
		elog(ERROR, "cal_refresh journal request is corrupt");
	entries = palloc0(sizeof(JournalEntry) * Max(count, 1));
	for (i = 0; i < count; i++)
	{
		int64		numbers[4];

		entries[i].table_name = journal_get_string(&p, end);
		entries[i].user_ulid = journal_get_string(&p, end);
		if (end - p < (ptrdiff_t) sizeof(entries[i].spent_sha256))
			elog(ERROR, "cal_refresh journal request is truncated");
		memcpy(entries[i].spent_sha256, p, sizeof(entries[i].spent_sha256));
		p += sizeof(entries[i].spent_sha256);
		entries[i].access_token = journal_get_string(&p, end);
		entries[i].refresh_token = journal_get_string(&p, end);
		if (end - p < (ptrdiff_t) sizeof(numbers))
			elog(ERROR, "cal_refresh journal request is truncated");
		memcpy(numbers, p, sizeof(numbers));
		p += sizeof(numbers);
		entries[i].access_expires_at = numbers[0];
		entries[i].has_refresh_expiry = numbers[1] != 0;
		entries[i].refresh_expires_at = numbers[2];
		entries[i].has_spent = numbers[3] != 0;
		if (entries[i].table_name == NULL || entries[i].user_ulid == NULL ||
			entries[i].access_token == NULL || entries[i].refresh_token == NULL)
			elog(ERROR, "cal_refresh journal request is corrupt");
	}
	*n = count;
	return entries;
}

/* --- the backend's side -------------------------------------------------- */


void
journal_token_sha256(const char *token, uint8 digest[PG_SHA256_DIGEST_LENGTH])
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) token, strlen(token)) < 0 ||
		pg_cryptohash_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute a SHA-256 hash")));
	}
	pg_cryptohash_free(ctx);
}

/* The slot of this database's writer, or -1. */
static int
journal_writer_slot(Oid dbid)
{
	int			i;

	for (i = 0; i < JOURNAL_MAX_WRITERS; i++)
		if (journal_shared->writers[i].dbid == dbid)
			return i;
	return -1;
}

/*
 * Starts this database's writer in a free slot; false, with *why, when
 * none can start.
 */
static bool
journal_start_writer(int slot, const char **why)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cal_refresh");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cal_refresh_journal_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cal_refresh journal writer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cal_refresh journal writer");
	snprintf(worker.bgw_extra, BGW_EXTRALEN, "%d", slot);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		*why = "no free background worker slot (max_worker_processes)";
		return false;
	}
	if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
	{
		*why = "the journal writer did not start";
		return false;
	}
	return true;
}

/*
 * The PGPROC number of this database's writer, starting it if need be;
 * -1, with *why, when there is none.
 */
static int
journal_writer(const char **why)
{
	int64		deadline = GetCurrentTimestamp() +
		(int64) JOURNAL_START_TIMEOUT_MS * 1000;
	int			slot;
	int			pgprocno = -1;
	bool		start = false;

	SpinLockAcquire(&journal_shared->mutex);
	slot = journal_writer_slot(MyDatabaseId);
	if (slot < 0 && (slot = journal_writer_slot(InvalidOid)) >= 0)
	{
		journal_shared->writers[slot].dbid = MyDatabaseId;
		journal_shared->writers[slot].pgprocno = -1;
		start = true;
	}
	else if (slot >= 0)
		pgprocno = journal_shared->writers[slot].pgprocno;
	SpinLockRelease(&journal_shared->mutex);
	if (slot < 0)
	{
		*why = "every journal writer slot is taken by another database";
		return -1;
	}
	if (pgprocno >= 0)
		return pgprocno;
	if (start && !journal_start_writer(slot, why))
	{
		SpinLockAcquire(&journal_shared->mutex);
		if (journal_shared->writers[slot].pgprocno < 0)
			journal_shared->writers[slot].dbid = InvalidOid;
		SpinLockRelease(&journal_shared->mutex);
		return -1;
	}

	/* Started (by us or by another backend): wait until it is ready. */
	for (;;)
	{
		SpinLockAcquire(&journal_shared->mutex);
		pgprocno = journal_shared->writers[slot].dbid == MyDatabaseId ?
			journal_shared->writers[slot].pgprocno : -2;
		SpinLockRelease(&journal_shared->mutex);
		if (pgprocno >= 0)
			return pgprocno;
		if (pgprocno == -2 || GetCurrentTimestamp() >= deadline)
		{
			*why = "the journal writer did not start";
			return -1;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Is the writer at pgprocno still this database's? */
static bool
journal_writer_alive(int pgprocno)
{
	bool		alive;
	int			slot;

	SpinLockAcquire(&journal_shared->mutex);
	slot = journal_writer_slot(MyDatabaseId);
	alive = slot >= 0 && journal_shared->writers[slot].pgprocno == pgprocno;
	SpinLockRelease(&journal_shared->mutex);
	return alive;
}

/*
 * A request whose writer is gone before taking it comes back to its
 * backend: its segment, if any, is unpinned (nobody else will).
 */
static bool
journal_take_back(JournalRequest *request)
{
	uint32		state = REQUEST_PENDING;

	if (!pg_atomic_compare_exchange_u32(&request->state, &state, REQUEST_FREE))
		return false;			/* it did take it, just now */
	if (request->handle != DSM_HANDLE_INVALID)
		dsm_unpin_segment(request->handle);
	explicit_bzero(journal_inline_bytes(cal_my_proc_number()),
				   JOURNAL_INLINE_BYTES);
	return true;
}

/*
 * Waits until the request is no longer pending: DONE or FAILED, or, with
 * the writer gone before it took the request, FREE again.
 */
static uint32
journal_wait(JournalRequest *request, int writer)
{
	for (;;)
	{
		uint32		state = pg_atomic_read_u32(&request->state);

		if (state != REQUEST_PENDING)
			return state;
		if (!journal_writer_alive(writer))
		{
			if (journal_take_back(request))
				return REQUEST_FREE;
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* What this backend handed over last, until journal_await. */
static int	handed_writer = -1;
static int	handed_attempt = 0;

/*
 * Puts the entries in this backend's request slot (or a pinned segment)
 * and wakes the writer; false when there is none.  Interrupts are held
 * meanwhile: a cancel between taking the pairs and handing them over
 * would lose them.
 */
static bool
journal_post(Oid schema, const JournalEntry *entries, int n, const char **why)
{
	JournalRequest *request = &journal_shared->requests[cal_my_proc_number()];
	Size		size = journal_entries_size(entries, n);
	dsm_segment *segment = NULL;
	int			writer;

	if ((writer = journal_writer(why)) < 0)
		return false;
	/*
	 * A request an abort stopped waiting for (the writer is stuck) still
	 * holds the slot: no waiting for it here, with interrupts held.
	 */
	if (pg_atomic_read_u32(&request->state) == REQUEST_PENDING &&
		(journal_writer_alive(writer) || !journal_take_back(request)))
	{
		*why = "the journal writer has not finished this session's previous entries";
		return false;
	}
	pg_atomic_write_u32(&request->state, REQUEST_FREE);
	if (size > JOURNAL_INLINE_BYTES)
	{
		segment = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
		if (segment == NULL)
		{
			*why = "no dynamic shared memory segment is left";
			return false;
		}
		journal_put_entries(dsm_segment_address(segment), entries, n);
		/* The writer unpins it, whatever becomes of this backend. */
		dsm_pin_segment(segment);
		request->handle = dsm_segment_handle(segment);
	}
	else
	{
		journal_put_entries(journal_inline_bytes(cal_my_proc_number()),
							entries, n);
		request->handle = DSM_HANDLE_INVALID;
	}
	request->dbid = MyDatabaseId;
	request->schema = schema;
	request->size = size;
	request->requester = cal_my_proc_number();
	pg_write_barrier();
	pg_atomic_write_u32(&request->state, REQUEST_PENDING);
	SetLatch(&GetPGProcByNumber(writer)->procLatch);
	if (segment != NULL)
		dsm_detach(segment);
	handed_writer = writer;
	return true;
}

/*
 * The entries handed over will not be awaited (a cancel is about to raise,
 * an error is on its way): the caller, still holding the users' row locks
 * and still running, waits until the writer has committed them, at most
 * JOURNAL_ABORT_WAIT_MS, so that whoever locks a row next finds them.
 * Interrupts are held by the caller; the wait is bounded instead.
 */
void
journal_wait_unacknowledged(void)
{
	JournalRequest *request;
	TimestampTz deadline;

	if (handed_writer < 0 || journal_shared == NULL)
		return;
	request = &journal_shared->requests[cal_my_proc_number()];
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   JOURNAL_ABORT_WAIT_MS);
	while (pg_atomic_read_u32(&request->state) == REQUEST_PENDING)
	{
		if (!journal_writer_alive(handed_writer))
		{
			if (journal_take_back(request))
				break;
			continue;
		}
		if (GetCurrentTimestamp() >= deadline)
		{
			ereport(LOG,
					(errmsg("cal_refresh: the journal writer did not acknowledge "
							"new pairs within %d ms of an abort",
							JOURNAL_ABORT_WAIT_MS),
					 errdetail("It still writes them.")));
			handed_writer = -1;
			return;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	handed_writer = -1;
	if (pg_atomic_read_u32(&request->state) != REQUEST_PENDING)
		pg_atomic_write_u32(&request->state, REQUEST_FREE);
}

/*
 * The last resort: a backend that exits (FATAL) between the hand-over and
 * the acknowledgement never reaches its caller's wait.  The abort still
 * holds the row locks while this runs, so that sessions already queued
 * for them wait too (one arriving now no longer would: the transaction
 * has ended by then, which is why the callers wait before it does).
 */
static void
journal_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		journal_wait_unacknowledged();
}

bool
journal_hand_over(Oid schema, const JournalEntry *entries, int n,
				  const char **why)
{
	static bool callbacks_registered = false;
	bool		posted;

	*why = NULL;
	if (!callbacks_registered)
	{
		RegisterXactCallback(journal_xact_callback, NULL);
		callbacks_registered = true;
	}

	/*
	 * An outer call of this backend still awaits its entries (a trigger
	 * refreshing from within the outer call's store): the one request slot
	 * is theirs until the writer has them, so they are finished first.
	 */
	journal_wait_unacknowledged();
	handed_writer = -1;
	handed_attempt = 0;
	if (n == 0)
		return true;
	if (journal_shared == NULL || MyProc == NULL ||
		cal_my_proc_number() >= journal_shared->n_requests)
	{
		*why = "cal_refresh is not in shared_preload_libraries";
		return false;
	}
	HOLD_INTERRUPTS();
	posted = journal_post(schema, entries, n, why);
	RESUME_INTERRUPTS();
	return posted;
}

bool
journal_await(Oid schema, const JournalEntry *entries, int n,
			  const char **why)
{
	JournalRequest *request;
	uint32		state;

	*why = NULL;
	if (handed_writer < 0)
		return true;			/* nothing handed over */
	request = &journal_shared->requests[cal_my_proc_number()];
	state = journal_wait(request, handed_writer);
	if (state == REQUEST_FREE && handed_attempt++ == 0)
	{
		/* Its writer exited (idle) as the request arrived: once more. */
		HOLD_INTERRUPTS();
		if (!journal_post(schema, entries, n, why))
		{
			RESUME_INTERRUPTS();
			handed_writer = -1;
			return false;
		}
		RESUME_INTERRUPTS();
		state = journal_wait(request, handed_writer);
	}
	handed_writer = -1;
	pg_atomic_write_u32(&request->state, REQUEST_FREE);
	if (state != REQUEST_DONE)
	{
		*why = "the journal writer could not write the entry (see the server log)";
		return false;
	}
	return true;
}

/* --- the writer ---------------------------------------------------------- */

static int	writer_slot = -1;

static void
journal_writer_exit(int code, Datum arg)
{
	SpinLockAcquire(&journal_shared->mutex);
	if (journal_shared->writers[writer_slot].pgprocno == cal_my_proc_number())
	{
		journal_shared->writers[writer_slot].dbid = InvalidOid;
		journal_shared->writers[writer_slot].pgprocno = -1;
	}
	SpinLockRelease(&journal_shared->mutex);
}

/*
 * Writes request i's entries in a transaction of its own, then wipes them
 * (and unpins their segment): they hold tokens.
 */
static bool
journal_write_request(JournalRequest *request, int i)
{
	MemoryContext context = CurrentMemoryContext;
	dsm_segment *volatile segment = NULL;
	char	   *volatile bytes = journal_inline_bytes(i);
	volatile bool written = false;

	if (request->handle != DSM_HANDLE_INVALID)
	{
		segment = dsm_attach(request->handle);
		if (segment == NULL)
			return false;
		bytes = dsm_segment_address(segment);
	}
	PG_TRY();
	{
		JournalEntry *entries;
		int			n;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		entries = journal_get_entries(bytes, Min(request->size,
												 segment != NULL ?
												 dsm_segment_map_length(segment) :
												 JOURNAL_INLINE_BYTES),
									  &n);
		written = journal_store_insert(request->schema, entries, n);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *error;

		/* Its message only: a detail could show the entry's row, tokens and all. */
		MemoryContextSwitchTo(context);
		error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("cal_refresh journal writer: entries not written: %s",
						error->message)));
		FreeErrorData(error);
		written = false;
	}
	PG_END_TRY();
	if (segment != NULL)
	{
		explicit_bzero(bytes, dsm_segment_map_length(segment));
		dsm_unpin_segment(request->handle);
		dsm_detach(segment);
	}
	else
		explicit_bzero(bytes, Min(request->size, JOURNAL_INLINE_BYTES));
	return written;
}

void
cal_refresh_journal_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);

	writer_slot = atoi(MyBgworkerEntry->bgw_extra);
	if (journal_shared == NULL || writer_slot < 0 ||
		writer_slot >= JOURNAL_MAX_WRITERS)
		proc_exit(1);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	/* See the file's header: the caller's commit makes the entry durable. */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	SpinLockAcquire(&journal_shared->mutex);
	if (journal_shared->writers[writer_slot].dbid != dbid ||
		journal_shared->writers[writer_slot].pgprocno >= 0)
	{
		SpinLockRelease(&journal_shared->mutex);
		proc_exit(0);			/* not wanted (any more) */
	}
	journal_shared->writers[writer_slot].pgprocno = cal_my_proc_number();
	SpinLockRelease(&journal_shared->mutex);
	before_shmem_exit(journal_writer_exit, (Datum) 0);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (;;)
	{
		int			i;
		int			events;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < journal_shared->n_requests; i++)
		{
			JournalRequest *request = &journal_shared->requests[i];

			if (pg_atomic_read_u32(&request->state) != REQUEST_PENDING ||
				request->dbid != dbid)
				continue;
			pg_read_barrier();
			pg_atomic_write_u32(&request->state,
								journal_write_request(request, i) ?
								REQUEST_DONE : REQUEST_FAILED);
			SetLatch(&GetPGProcByNumber(request->requester)->procLatch);
		}
		events = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   JOURNAL_IDLE_EXIT_MS, PG_WAIT_EXTENSION);
		if (events & WL_TIMEOUT)
			proc_exit(0);		/* idle: a backend starts another at need */
	}
}
