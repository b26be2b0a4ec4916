/*-------------------------------------------------------------------------
 *
 * journal_codec.h
 *		Journal entries as bytes in shared memory, and back.  Pure: no
 *		PostgreSQL, no allocation, so a fuzz target links it alone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOURNAL_CODEC_H
#define JOURNAL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A SHA-256 digest (PG_SHA256_DIGEST_LENGTH). */
#define JOURNAL_DIGEST_LEN 32

/*
 * One pair Cal.com issued, and the SHA-256 of the refresh token the row
 * held when it was asked for: the token it supersedes.  Times are
 * TimestampTz values.
 */
typedef struct JournalEntry
{
	const char *table_name;		/* cal_refresh.table_name */
	const char *user_ulid;
	bool		has_spent;		/* false: the row held no token */
	uint8_t		spent_sha256[JOURNAL_DIGEST_LEN];
	const char *access_token;
	const char *refresh_token;
	int64_t		access_expires_at;
	bool		has_refresh_expiry;
	int64_t		refresh_expires_at;
} JournalEntry;

/* in journal_codec.c */
extern size_t journal_codec_size(const JournalEntry *entries, int n);
extern void journal_codec_encode(char *buf, const JournalEntry *entries,
								 int n);
extern int	journal_codec_count(const char *buf, size_t size);
extern bool journal_codec_decode(const char *buf, size_t size,
								 JournalEntry *entries, int n);

#endif							/* JOURNAL_CODEC_H */
