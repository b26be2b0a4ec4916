/*-------------------------------------------------------------------------
 *
 * fuzz_journal_codec.c
 *		libFuzzer target for src/common/journal_codec.c, which reads and writes
 *		the journal's hand-overs in shared memory.
 *
 * Each input goes, as a buffer malloc'd at exactly its size, to
 * journal_codec_count and journal_codec_decode, as bytes another process
 * left in shared memory would.  A broken invariant prints what broke and
 * abort()s, which libFuzzer reports as a crash:
 *
 *	- count and decode agree: decoding succeeds only for a count >= 0;
 *	- every string decoded lies inside the buffer and ends at its zero;
 *	- what decodes encodes back to the very same bytes, of the size
 *	  journal_codec_size says.
 *
 * Build and run with fuzz/run.sh SECONDS journal_codec.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_codec.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what)
{
	fprintf(stderr, "fuzz_journal_codec: invariant broken: %s\n", what);
	abort();
}

/* Does s start inside [buf, buf + size) and end at a zero inside it? */
static void
check_inside(const char *s, const char *buf, size_t size)
{
	if (s < buf || s >= buf + size || memchr(s, '\0', buf + size - s) == NULL)
		fail("a decoded string lies outside the buffer");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *buf = malloc(size > 0 ? size : 1);
	int			n;
	JournalEntry *entries;
	char	   *again;
	int			i;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	n = journal_codec_count(buf, size);
	entries = malloc(sizeof(JournalEntry) * (n > 0 ? n : 1));
	if (entries == NULL)
	{
		free(buf);
		return 0;
	}
	if (n < 0)
	{
		if (journal_codec_decode(buf, size, entries, 0) && size >= 8)
			fail("bytes with no count decode");
	}
	else if (journal_codec_decode(buf, size, entries, n))
	{
		for (i = 0; i < n; i++)
		{
			check_inside(entries[i].table_name, buf, size);
			check_inside(entries[i].user_ulid, buf, size);
			check_inside(entries[i].access_token, buf, size);
			check_inside(entries[i].refresh_token, buf, size);
		}
		if (journal_codec_size(entries, n) != size)
			fail("journal_codec_size disagrees with the decoded bytes");
		again = malloc(size);
		if (again != NULL)
		{
			journal_codec_encode(again, entries, n);
			if (memcmp(again, buf, size) != 0)
				fail("decoded entries encode to other bytes");
			free(again);
		}
	}
	free(entries);
	free(buf);
	return 0;
}
