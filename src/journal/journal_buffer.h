/*-------------------------------------------------------------------------
 *
 * journal_buffer.h
 *		The journal's shared memory: entries handed over and not yet
 *		committed, and the writers that commit them.  Knows no table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOURNAL_BUFFER_H
#define JOURNAL_BUFFER_H

#include "datatype/timestamp.h"
#include "storage/dsm.h"

#include "journal_codec.h"

/* Bytes of entries one request holds in place: a few pairs, the largest
 * one alone (two tokens of CAL_TOKEN_MAX and a user key of 1 kB). */
#define JOURNAL_INLINE_BYTES 10240

/* What a lookup copies out of the buffer: one entry, in palloc'd memory. */
typedef struct JournalBufferEntry
{
	int			user_index;		/* into the users asked for */
	JournalEntry entry;
} JournalBufferEntry;

/* A request posted, as its caller knows it. */
typedef struct JournalPosted
{
	int			request;
	uint32		sequence;
} JournalPosted;

/* What a backend should do for its database's writer. */
typedef enum JournalWriterNeed
{
	JOURNAL_WRITER_NONE,		/* running (woken), or starting */
	JOURNAL_WRITER_START,		/* start one in *slot, generation *generation */
	JOURNAL_WRITER_NO_SLOT		/* every writer slot serves another database */
} JournalWriterNeed;

/* in journal_buffer.c */
extern void journal_buffer_init(void);
extern bool journal_buffer_attached(void);
extern bool journal_buffer_post_inline(Oid schema, const JournalEntry *entries,
									   int n, Size size,
									   JournalPosted *posted);
extern bool journal_buffer_post_segment(Oid schema, dsm_handle handle,
										int n, Size size,
										JournalPosted *posted);
extern bool journal_buffer_settle(const JournalPosted *posted, bool withdraw);
extern JournalBufferEntry *journal_buffer_collect(Oid schema,
												  const char *table_name,
												  const char *const *users,
												  int n_users, int *n_found,
												  bool *waiting);
extern int	journal_buffer_pending(Oid dbid, TimestampTz *oldest);
extern JournalWriterNeed journal_buffer_writer_need(Oid dbid, bool wake,
													int *slot,
													uint32 *generation);
extern void journal_buffer_writer_gone(int slot, uint32 generation);
extern bool journal_buffer_writer_ready(Oid dbid);
extern bool journal_buffer_writer_register(int slot, uint32 generation,
										   Oid dbid);
extern int	journal_buffer_claim(Oid dbid, uint32 generation, int *requests,
								 int max);
extern char *journal_buffer_claimed_bytes(int request, Oid *schema,
										  Size *size, dsm_segment **segment);
extern void journal_buffer_finish(int request, bool written);
extern bool journal_buffer_writer_sleep(Oid dbid, int slot,
										uint32 generation, bool retire,
										long longest_ms, long *sleep_ms,
										bool *waiting);

#endif							/* JOURNAL_BUFFER_H */
