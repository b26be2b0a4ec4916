/*-------------------------------------------------------------------------
 *
 * journal_codec.c
 *		Journal entries as bytes in shared memory, and back.
 *
 * A hand-over is a magic number, a count, then each entry: four strings
 * (length, bytes, a terminating zero), the digest, and the times and
 * flags.  Strings keep their zero so that a decoded entry points into the
 * bytes themselves: nothing is allocated, nothing copied.  The bytes come
 * from another process of the same server, never from outside, but the
 * decoder still trusts nothing: every length is checked against the end,
 * every string must end exactly where its length says.
 *
 *-------------------------------------------------------------------------
 */
#include "journal_codec.h"

#include <string.h>

/* "CRJ1": a hand-over, first version. */
#define JOURNAL_CODEC_MAGIC 0x43524a31u

/* The fixed part of an entry: 4 lengths, the digest, 3 times, 2 flags. */
#define JOURNAL_CODEC_FIXED \
	(4 * sizeof(int32_t) + JOURNAL_DIGEST_LEN + 3 * sizeof(int64_t))

/* The least bytes an entry takes: its fixed part and four empty strings. */
#define JOURNAL_CODEC_MIN_ENTRY (JOURNAL_CODEC_FIXED + 4)

/* Bytes of a string as encoded; 0 when it cannot be (NULL, too long). */
static size_t
codec_string_size(const char *s)
{
	size_t		len;

	if (s == NULL)
		return 0;
	len = strlen(s);
	return len >= INT32_MAX ? 0 : sizeof(int32_t) + len + 1;
}

/*
 * Bytes the n entries take encoded; 0 when they cannot be encoded (a
 * string missing or too long, or the total past SIZE_MAX / 2).
 */
size_t
journal_codec_size(const JournalEntry *entries, int n)
{
	size_t		size = 2 * sizeof(uint32_t);
	int			i;

	if (n < 0)
		return 0;
	for (i = 0; i < n; i++)
	{
		const char *strings[4] = {entries[i].table_name, entries[i].user_ulid,
		entries[i].access_token, entries[i].refresh_token};
		size_t		k;

		size += JOURNAL_CODEC_FIXED - 4 * sizeof(int32_t);
		for (k = 0; k < 4; k++)
		{
			size_t		s = codec_string_size(strings[k]);

			if (s == 0)
				return 0;
			size += s;
		}
		if (size > SIZE_MAX / 2)
			return 0;
	}
	return size;
}

static char *
codec_put(char *p, const void *value, size_t len)
{
	memcpy(p, value, len);
	return p + len;
}

static char *
codec_put_string(char *p, const char *s)
{
	int32_t		len = (int32_t) strlen(s);

	p = codec_put(p, &len, sizeof(len));
	return codec_put(p, s, (size_t) len + 1);
}

/*
 * Writes the n entries into buf, which holds journal_codec_size() bytes
 * (a size the caller has checked is not 0).
 */
void
journal_codec_encode(char *buf, const JournalEntry *entries, int n)
{
	uint32_t	head[2] = {JOURNAL_CODEC_MAGIC, (uint32_t) n};
	char	   *p = codec_put(buf, head, sizeof(head));
	int			i;

	for (i = 0; i < n; i++)
	{
		const JournalEntry *e = &entries[i];
		int64_t		numbers[3] = {e->access_expires_at, e->refresh_expires_at,
		(int64_t) ((e->has_spent ? 1 : 0) | (e->has_refresh_expiry ? 2 : 0))};

		p = codec_put_string(p, e->table_name);
		p = codec_put_string(p, e->user_ulid);
		p = codec_put_string(p, e->access_token);
		p = codec_put_string(p, e->refresh_token);
		p = codec_put(p, e->spent_sha256, JOURNAL_DIGEST_LEN);
		p = codec_put(p, numbers, sizeof(numbers));
	}
}

/*
 * The number of entries the bytes say they hold, or -1 when they are no
 * hand-over (too short, a wrong magic, more entries than could fit).
 */
int
journal_codec_count(const char *buf, size_t size)
{
	uint32_t	head[2];

	if (buf == NULL || size < sizeof(head))
		return -1;
	memcpy(head, buf, sizeof(head));
	if (head[0] != JOURNAL_CODEC_MAGIC || head[1] > INT32_MAX ||
		head[1] > (size - sizeof(head)) / JOURNAL_CODEC_MIN_ENTRY)
		return -1;
	return (int) head[1];
}

/*
 * Reads a string at *p, before end: its length, its bytes, its zero and
 * no zero before.  Points *s into the bytes.
 */
static bool
codec_get_string(const char **p, const char *end, const char **s)
{
	int32_t		len;

	if ((size_t) (end - *p) < sizeof(len))
		return false;
	memcpy(&len, *p, sizeof(len));
	*p += sizeof(len);
	if (len < 0 || (size_t) (end - *p) < (size_t) len + 1 ||
		(*p)[len] != '\0' || memchr(*p, '\0', (size_t) len) != NULL)
		return false;
	*s = *p;
	*p += (size_t) len + 1;
	return true;
}

/*
 * Decodes the n entries (journal_codec_count's) of buf into entries,
 * whose strings then point into buf.  False when the bytes are not what
 * journal_codec_encode writes; entries is then partly filled.
 */
bool
journal_codec_decode(const char *buf, size_t size, JournalEntry *entries,
					 int n)
{
	const char *p = buf + 2 * sizeof(uint32_t);
	const char *end = buf + size;
	int			i;

	if (journal_codec_count(buf, size) != n)
		return false;
	for (i = 0; i < n; i++)
	{
		JournalEntry *e = &entries[i];
		int64_t		numbers[3];

		if (!codec_get_string(&p, end, &e->table_name) ||
			!codec_get_string(&p, end, &e->user_ulid) ||
			!codec_get_string(&p, end, &e->access_token) ||
			!codec_get_string(&p, end, &e->refresh_token) ||
			(size_t) (end - p) < JOURNAL_DIGEST_LEN + sizeof(numbers))
			return false;
		memcpy(e->spent_sha256, p, JOURNAL_DIGEST_LEN);
		p += JOURNAL_DIGEST_LEN;
		memcpy(numbers, p, sizeof(numbers));
		p += sizeof(numbers);
		if ((numbers[2] & ~(int64_t) 3) != 0)
			return false;
		e->access_expires_at = numbers[0];
		e->refresh_expires_at = numbers[1];
		e->has_spent = (numbers[2] & 1) != 0;
		e->has_refresh_expiry = (numbers[2] & 2) != 0;
	}
	return p == end;
}
