/*-------------------------------------------------------------------------
 *
 * journal_buffer.c
 *		The journal's shared memory: entries handed over and not yet
 *		committed, and the writers that commit them.
 *
 * A backend hands the pairs Cal.com issued over by posting a request: the
 * entries, encoded (journal_codec.c), in a request's own bytes or, for a
 * batch, in a pinned dynamic shared memory segment.  From then on the
 * pairs survive whatever becomes of the backend or its transaction, short
 * of the server itself stopping: every lookup of the journal reads the
 * posted requests before the table, and a request leaves the buffer only
 * once a writer has committed its entries to the table.  The backend never
 * waits for that, so no call depends on a writer being there.
 *
 * A request has one owner at a time: the backend that fills it, then the
 * buffer (posted), then the one writer that claimed it, which either frees
 * it once its entries are committed or posts it again, to be retried.  A
 * writer that exits posts again whatever it had claimed.
 *
 * Each database with work has a writer slot: starting (a backend asked for
 * a worker), or ready (the worker is connected and registered).  A writer
 * that does not come up within a second is given up and the next backend
 * that needs one starts another; a generation number tells a late worker
 * that it is no longer wanted.
 *
 * One LWLock guards it all: every hold is short (a scan of the request
 * slots, a state change), except a lookup's copy of what it needs, which
 * holds it shared.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "journal_buffer.h"

/* Databases served at once; one more has no writer (its entries wait). */
#define JOURNAL_MAX_WRITERS 32

/* A writer not registered within this long is given up. */
#define JOURNAL_WRITER_START_MS 1000

/* A request whose write failed is tried again after this long. */
#define JOURNAL_RETRY_MS 1000

/*
 * A writer leaves a request this long to its caller, whose commit makes it
 * needless (journal_buffer_settle), unless the caller said it is needed.
 */
#define JOURNAL_CLAIM_DELAY_MS 100

#define JOURNAL_TRANCHE "cal_refresh journal"

typedef enum JournalRequestState
{
	REQUEST_FREE,
	REQUEST_FILLING,			/* a backend writes its entries */
	REQUEST_POSTED,				/* waiting for a writer */
	REQUEST_CLAIMED				/* a writer commits them */
} JournalRequestState;

typedef struct JournalRequest
{
	JournalRequestState state;
	Oid			dbid;
	Oid			schema;			/* the extension's, in that database */
	dsm_handle	handle;			/* a pinned segment, or DSM_HANDLE_INVALID:
								 * the entries are in the request's bytes */
	Size		size;			/* bytes of entries */
	uint32		sequence;		/* which use of the request this is */
	bool		needed;			/* its caller did not commit: write it now */
	uint32		claimed_by;		/* the claiming writer's generation */
	TimestampTz posted_at;
	TimestampTz retry_at;		/* not claimed before (a failed write) */
} JournalRequest;

typedef enum JournalWriterState
{
	WRITER_FREE,
	WRITER_STARTING,
	WRITER_READY
} JournalWriterState;

typedef struct JournalWriterSlot
{
	Oid			dbid;
	JournalWriterState state;
	uint32		generation;
	int			pgprocno;		/* WRITER_READY */
	TimestampTz since;			/* asked for (WRITER_STARTING) */
	TimestampTz sleeps_until;	/* READY: when it wakes by itself */
} JournalWriterSlot;

typedef struct JournalBufferShared
{
	LWLock	   *lock;
	uint32		next_generation;
	pg_atomic_uint32 n_pending; /* requests posted or claimed */
	JournalWriterSlot writers[JOURNAL_MAX_WRITERS];
	int			n_requests;
	JournalRequest requests[FLEXIBLE_ARRAY_MEMBER];
} JournalBufferShared;

static JournalBufferShared *buffer = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Two requests per backend: one being written, one more posted. */
static int
journal_buffer_requests_needed(void)
{
	return 2 * (MaxBackends + NUM_AUXILIARY_PROCS);
}

static Size
journal_buffer_inline_offset(void)
{
	return MAXALIGN(add_size(offsetof(JournalBufferShared, requests),
							 mul_size(journal_buffer_requests_needed(),
									  sizeof(JournalRequest))));
}

static Size
journal_buffer_shmem_size(void)
{
	return add_size(journal_buffer_inline_offset(),
					mul_size(journal_buffer_requests_needed(),
							 JOURNAL_INLINE_BYTES));
}

/* Where request i keeps its entries in place. */
static char *
journal_buffer_inline(int i)
{
	return (char *) buffer + journal_buffer_inline_offset() +
		(Size) i * JOURNAL_INLINE_BYTES;
}

static void
journal_buffer_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(journal_buffer_shmem_size()));
	RequestNamedLWLockTranche(JOURNAL_TRANCHE, 1);
}

static void
journal_buffer_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	buffer = ShmemInitStruct("cal_refresh journal", journal_buffer_shmem_size(),
							 &found);
	if (!found)
	{
		buffer->lock = &(GetNamedLWLockTranche(JOURNAL_TRANCHE))->lock;
		buffer->next_generation = 1;
		pg_atomic_init_u32(&buffer->n_pending, 0);
		for (i = 0; i < JOURNAL_MAX_WRITERS; i++)
		{
			buffer->writers[i].dbid = InvalidOid;
			buffer->writers[i].state = WRITER_FREE;
			buffer->writers[i].generation = 0;
			buffer->writers[i].pgprocno = -1;
		}
		buffer->n_requests = journal_buffer_requests_needed();
		for (i = 0; i < buffer->n_requests; i++)
			buffer->requests[i].state = REQUEST_FREE;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init while preloading: asks for the shared memory. */
void
journal_buffer_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = journal_buffer_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = journal_buffer_shmem_startup;
}

/* Is there a buffer (the library was preloaded)? */
bool
journal_buffer_attached(void)
{
	return buffer != NULL;
}

/*
 * Takes a free request for schema in this database, as FILLING; -1 when
 * every request is taken.  Caller holds the lock.
 */
static int
journal_buffer_take(Oid schema)
{
	int			i;

	for (i = 0; i < buffer->n_requests; i++)
	{
		JournalRequest *request = &buffer->requests[i];

		if (request->state != REQUEST_FREE)
			continue;
		request->state = REQUEST_FILLING;
		request->dbid = MyDatabaseId;
		request->schema = schema;
		request->handle = DSM_HANDLE_INVALID;
		request->size = 0;
		request->sequence++;
		request->needed = false;
		request->claimed_by = 0;
		request->retry_at = 0;
		return i;
	}
	return -1;
}

/* A filled request goes to the writers.  Caller holds the lock. */
static void
journal_buffer_publish(int i, Size size)
{
	JournalRequest *request = &buffer->requests[i];

	request->size = size;
	request->posted_at = GetCurrentTimestamp();
	request->state = REQUEST_POSTED;
	pg_atomic_fetch_add_u32(&buffer->n_pending, 1);
}

/*
 * Posts the n entries, size bytes encoded (at most JOURNAL_INLINE_BYTES),
 * in a request's own bytes.  Returns false when every request is taken;
 * else true, with the posted request in *posted (see journal_buffer_settle).
 */
bool
journal_buffer_post_inline(Oid schema, const JournalEntry *entries, int n,
						   Size size, JournalPosted *posted)
{
	int			i;

	Assert(size <= JOURNAL_INLINE_BYTES);
	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	i = journal_buffer_take(schema);
	LWLockRelease(buffer->lock);
	if (i < 0)
		return false;
	/* Filling: no one else reads or writes these bytes. */
	journal_codec_encode(journal_buffer_inline(i), entries, n);
	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	journal_buffer_publish(i, size);
	posted->request = i;
	posted->sequence = buffer->requests[i].sequence;
	LWLockRelease(buffer->lock);
	return true;
}

/*
 * Posts n entries, size bytes encoded in the pinned segment handle; the
 * one who frees the request unpins it.  False when every request is taken
 * (the caller still owns the segment); else true, with *posted.
 */
bool
journal_buffer_post_segment(Oid schema, dsm_handle handle, int n, Size size,
							JournalPosted *posted)
{
	int			i;

	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	i = journal_buffer_take(schema);
	if (i >= 0)
	{
		buffer->requests[i].handle = handle;
		journal_buffer_publish(i, size);
		posted->request = i;
		posted->sequence = buffer->requests[i].sequence;
	}
	LWLockRelease(buffer->lock);
	return i >= 0;
}

/*
 * Wipes and frees a request, unpinning its segment (which a writer still
 * attached to it wipes through its mapping).  Caller holds the lock, so
 * that no lookup reads the bytes as they are wiped.
 */
static void
journal_buffer_free(JournalRequest *r, int request)
{
	if (r->handle == DSM_HANDLE_INVALID)
		explicit_bzero(journal_buffer_inline(request),
					   Min(r->size, JOURNAL_INLINE_BYTES));
	else
	{
		dsm_segment *segment = dsm_find_mapping(r->handle);

		if (segment != NULL)
			explicit_bzero(dsm_segment_address(segment),
						   dsm_segment_map_length(segment));
		dsm_unpin_segment(r->handle);
	}
	r->state = REQUEST_FREE;
	pg_atomic_fetch_sub_u32(&buffer->n_pending, 1);
}

/*
 * The caller's transaction has ended.  Committed, with every pair of the
 * request stored in its row (withdraw), the request is needless: freed,
 * unless a writer already has it.  Otherwise it is needed now: a writer
 * may claim it at once (returns true: wake it).  A request taken for
 * another use meanwhile (its sequence moved on) is left alone.
 */
bool
journal_buffer_settle(const JournalPosted *posted, bool withdraw)
{
	JournalRequest *r = &buffer->requests[posted->request];
	bool		wake = false;

	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	if (r->state == REQUEST_POSTED && r->sequence == posted->sequence)
	{
		if (withdraw)
			journal_buffer_free(r, posted->request);
		else
			wake = r->needed = true;
	}
	LWLockRelease(buffer->lock);
	return wake;
}

/* The index of user in users, or -1. */
static int
journal_buffer_user_index(const char *user, const char *const *users, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(user, users[i]) == 0)
			return i;
	return -1;
}

/*
 * Copies the matching entries of one request's bytes into *found (grown
 * as needed).  Caller holds the lock.
 */
static void
journal_buffer_collect_request(const char *bytes, Size size,
							   const char *table_name,
							   const char *const *users, int n_users,
							   JournalBufferEntry **found, int *n_found,
							   int *capacity)
{
	int			n = journal_codec_count(bytes, size);
	JournalEntry *entries;
	int			k;

	if (n <= 0)
		return;
	entries = palloc(sizeof(JournalEntry) * n);
	if (!journal_codec_decode(bytes, size, entries, n))
	{
		pfree(entries);
		return;
	}
	for (k = 0; k < n; k++)
	{
		int			user = journal_buffer_user_index(entries[k].user_ulid,
													 users, n_users);
		JournalBufferEntry *copy;

		if (user < 0 || strcmp(entries[k].table_name, table_name) != 0)
			continue;
		if (*n_found == *capacity)
		{
			*capacity = Max(4, *capacity * 2);
			*found = *found == NULL ?
				palloc(sizeof(JournalBufferEntry) * *capacity) :
				repalloc(*found, sizeof(JournalBufferEntry) * *capacity);
		}
		copy = &(*found)[(*n_found)++];
		copy->user_index = user;
		copy->entry = entries[k];
		copy->entry.table_name = NULL;
		copy->entry.user_ulid = users[user];
		copy->entry.access_token = pstrdup(entries[k].access_token);
		copy->entry.refresh_token = pstrdup(entries[k].refresh_token);
	}
	pfree(entries);
}

/*
 * The entries posted and not yet committed for the n users of table_name
 * in this database, copied into palloc'd memory (their tokens are the
 * caller's to wipe); *n_found of them.  *waiting says whether any request
 * of this database waits, for anyone.  A request whose writer commits it
 * meanwhile is in the table by the time it leaves the buffer, so callers
 * read the buffer first, then the table.
 */
JournalBufferEntry *
journal_buffer_collect(Oid schema, const char *table_name,
					   const char *const *users, int n_users, int *n_found,
					   bool *waiting)
{
	JournalBufferEntry *found = NULL;
	int			capacity = 0;
	int			i;

	*n_found = 0;
	*waiting = false;
	if (buffer == NULL || n_users == 0 ||
		pg_atomic_read_u32(&buffer->n_pending) == 0)
		return NULL;
	LWLockAcquire(buffer->lock, LW_SHARED);
	for (i = 0; i < buffer->n_requests; i++)
	{
		JournalRequest *request = &buffer->requests[i];
		dsm_segment *segment;

		if ((request->state != REQUEST_POSTED &&
			 request->state != REQUEST_CLAIMED) ||
			request->dbid != MyDatabaseId)
			continue;
		*waiting = true;
		if (request->schema != schema)
			continue;
		if (request->handle == DSM_HANDLE_INVALID)
		{
			journal_buffer_collect_request(journal_buffer_inline(i),
										   request->size, table_name, users,
										   n_users, &found, n_found,
										   &capacity);
			continue;
		}
		segment = dsm_attach(request->handle);
		if (segment == NULL)
			continue;
		journal_buffer_collect_request(dsm_segment_address(segment),
									   Min(request->size,
										   dsm_segment_map_length(segment)),
									   table_name, users, n_users, &found,
									   n_found, &capacity);
		dsm_detach(segment);
	}
	LWLockRelease(buffer->lock);
	return found;
}

/*
 * Requests posted or claimed and not yet committed, of database dbid
 * (InvalidOid: of every database), and when the oldest was posted.
 */
int
journal_buffer_pending(Oid dbid, TimestampTz *oldest)
{
	int			n = 0;
	int			i;

	*oldest = 0;
	if (buffer == NULL)
		return 0;
	LWLockAcquire(buffer->lock, LW_SHARED);
	for (i = 0; i < buffer->n_requests; i++)
	{
		JournalRequest *request = &buffer->requests[i];

		if ((request->state != REQUEST_POSTED &&
			 request->state != REQUEST_CLAIMED) ||
			(OidIsValid(dbid) && request->dbid != dbid))
			continue;
		if (n++ == 0 || request->posted_at < *oldest)
			*oldest = request->posted_at;
	}
	LWLockRelease(buffer->lock);
	return n;
}

/*
 * What this database's writer needs: woken (with wake) when it runs, done
 * here, or started.  A writer asked for and not registered within
 * JOURNAL_WRITER_START_MS is given up: its slot gets a new generation,
 * which the caller starts.
 */
JournalWriterNeed
journal_buffer_writer_need(Oid dbid, bool wake, int *slot,
						   uint32 *generation)
{
	TimestampTz now = GetCurrentTimestamp();
	JournalWriterSlot *writer = NULL;
	JournalWriterNeed need = JOURNAL_WRITER_NONE;
	int			i;

	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	for (i = 0; i < JOURNAL_MAX_WRITERS && writer == NULL; i++)
		if (buffer->writers[i].state != WRITER_FREE &&
			buffer->writers[i].dbid == dbid)
			writer = &buffer->writers[i];
	for (i = 0; i < JOURNAL_MAX_WRITERS && writer == NULL; i++)
		if (buffer->writers[i].state == WRITER_FREE)
		{
			writer = &buffer->writers[i];
			writer->state = WRITER_STARTING;
			writer->dbid = dbid;
			writer->since = 0;
		}
	if (writer == NULL)
		need = JOURNAL_WRITER_NO_SLOT;
	else if (writer->state == WRITER_READY)
	{
		/* A hand-over is due within the claim delay: in time for it. */
		if (wake || writer->sleeps_until >
			TimestampTzPlusMilliseconds(now, JOURNAL_CLAIM_DELAY_MS))
			SetLatch(&GetPGProcByNumber(writer->pgprocno)->procLatch);
	}
	else if (writer->since == 0 ||
			 TimestampDifferenceExceeds(writer->since, now,
										JOURNAL_WRITER_START_MS))
	{
		writer->generation = buffer->next_generation++;
		if (writer->generation == 0)
			writer->generation = buffer->next_generation++;
		writer->since = now;
		*slot = (int) (writer - buffer->writers);
		*generation = writer->generation;
		need = JOURNAL_WRITER_START;
	}
	LWLockRelease(buffer->lock);
	return need;
}

/*
 * The writer of that slot and generation is gone, or never came: its slot
 * is free, and what it had claimed is posted again.
 */
void
journal_buffer_writer_gone(int slot, uint32 generation)
{
	int			i;

	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	if (buffer->writers[slot].generation == generation)
	{
		buffer->writers[slot].state = WRITER_FREE;
		buffer->writers[slot].dbid = InvalidOid;
		buffer->writers[slot].pgprocno = -1;
	}
	for (i = 0; i < buffer->n_requests; i++)
		if (buffer->requests[i].state == REQUEST_CLAIMED &&
			buffer->requests[i].claimed_by == generation)
			buffer->requests[i].state = REQUEST_POSTED;
	LWLockRelease(buffer->lock);
}

/* Does a writer run, registered, for database dbid? */
bool
journal_buffer_writer_ready(Oid dbid)
{
	bool		ready = false;
	int			i;

	LWLockAcquire(buffer->lock, LW_SHARED);
	for (i = 0; i < JOURNAL_MAX_WRITERS; i++)
		ready |= buffer->writers[i].state == WRITER_READY &&
			buffer->writers[i].dbid == dbid;
	LWLockRelease(buffer->lock);
	return ready;
}

/*
 * A writer, connected to dbid, takes up its slot; false when it is no
 * longer wanted (given up meanwhile, another generation asked for).
 */
bool
journal_buffer_writer_register(int slot, uint32 generation, Oid dbid)
{
	JournalWriterSlot *writer;
	bool		wanted;

	if (buffer == NULL || slot < 0 || slot >= JOURNAL_MAX_WRITERS)
		return false;
	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	writer = &buffer->writers[slot];
	wanted = writer->state == WRITER_STARTING &&
		writer->generation == generation && writer->dbid == dbid;
	if (wanted)
	{
		writer->state = WRITER_READY;
		writer->pgprocno = cal_my_proc_number();
		writer->sleeps_until = 0;
	}
	LWLockRelease(buffer->lock);
	return wanted;
}

/*
 * Claims, for the writer of that generation, up to max requests of its
 * database that are due: needed (their caller did not commit), or left to
 * their caller for JOURNAL_CLAIM_DELAY_MS, and not waiting for a retry.
 * Their indexes go to requests.
 */
int
journal_buffer_claim(Oid dbid, uint32 generation, int *requests, int max)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz left_until = TimestampTzPlusMilliseconds(now,
														 -JOURNAL_CLAIM_DELAY_MS);
	int			n = 0;
	int			i;

	if (pg_atomic_read_u32(&buffer->n_pending) == 0)
		return 0;
	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	for (i = 0; i < buffer->n_requests && n < max; i++)
	{
		JournalRequest *request = &buffer->requests[i];

		if (request->state != REQUEST_POSTED || request->dbid != dbid ||
			request->retry_at > now ||
			(!request->needed && request->posted_at > left_until))
			continue;
		request->state = REQUEST_CLAIMED;
		request->claimed_by = generation;
		requests[n++] = i;
	}
	LWLockRelease(buffer->lock);
	return n;
}

/*
 * The bytes of a request this writer claimed (no lock: they are its own
 * until it finishes it), in a segment attached here for a batch; NULL
 * when that segment is gone.
 */
char *
journal_buffer_claimed_bytes(int request, Oid *schema, Size *size,
							 dsm_segment **segment)
{
	JournalRequest *r = &buffer->requests[request];

	*schema = r->schema;
	*size = r->size;
	*segment = NULL;
	if (r->handle == DSM_HANDLE_INVALID)
		return journal_buffer_inline(request);
	*segment = dsm_attach(r->handle);
	if (*segment == NULL)
		return NULL;
	*size = Min(r->size, dsm_segment_map_length(*segment));
	return dsm_segment_address(*segment);
}

/*
 * The writer is done with a request it claimed: committed (written), the
 * request is freed (journal_buffer_free); else it is posted again, to be
 * tried after JOURNAL_RETRY_MS.
 */
void
journal_buffer_finish(int request, bool written)
{
	JournalRequest *r = &buffer->requests[request];

	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	if (written)
		journal_buffer_free(r, request);
	else
	{
		r->state = REQUEST_POSTED;
		r->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  JOURNAL_RETRY_MS);
	}
	LWLockRelease(buffer->lock);
}

/*
 * The writer of that slot and generation has nothing to claim now: how
 * long it may sleep (*sleep_ms, at most longest_ms) before a posted
 * request of dbid becomes claimable (a retry, or its caller's time run
 * out), noted so that a poster whose request is due sooner wakes it.
 * With retire, and nothing posted for dbid, the writer leaves its slot
 * instead (returns false): under the lock, so that no request is posted
 * meanwhile for a writer about to exit.  *waiting says whether anything
 * is posted.
 */
bool
journal_buffer_writer_sleep(Oid dbid, int slot, uint32 generation,
							bool retire, long longest_ms, long *sleep_ms,
							bool *waiting)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz first = 0;
	JournalWriterSlot *writer = &buffer->writers[slot];
	int			i;

	*waiting = false;
	LWLockAcquire(buffer->lock, LW_EXCLUSIVE);
	for (i = 0; i < buffer->n_requests; i++)
	{
		JournalRequest *r = &buffer->requests[i];
		TimestampTz due;

		if (r->state != REQUEST_POSTED || r->dbid != dbid)
			continue;
		due = r->needed ? r->retry_at :
			Max(r->retry_at, TimestampTzPlusMilliseconds(r->posted_at,
														 JOURNAL_CLAIM_DELAY_MS));
		if (!*waiting || due < first)
			first = due;
		*waiting = true;
	}
	if (!*waiting && retire && writer->generation == generation)
	{
		writer->state = WRITER_FREE;
		writer->dbid = InvalidOid;
		writer->pgprocno = -1;
		LWLockRelease(buffer->lock);
		return false;
	}
	*sleep_ms = longest_ms;
	if (*waiting)
		*sleep_ms = Max(1, Min(longest_ms, first <= now ? 1 :
							   (long) ((first - now + 999) / 1000)));
	if (writer->generation == generation)
		writer->sleeps_until = TimestampTzPlusMilliseconds(now, *sleep_ms);
	LWLockRelease(buffer->lock);
	return true;
}
