/*-------------------------------------------------------------------------
 *
 * fuzz_calcom_parse.c
 *		libFuzzer target for the pure functions of src/common/calcom_parse.c, which
 *		read Cal.com's response bodies and check what we put in a request.
 *
 * Each input goes, as a length-delimited buffer that is NOT NUL-terminated,
 * to calcom_parse_tokens, calcom_parse_oauth2_tokens and
 * calcom_describe_error, as a server's body
 * would; and, as a NUL-terminated string, to calcom_token_is_plausible,
 * calcom_url_is_acceptable and calcom_client_id_is_valid, as a setting or
 * a stored token would.  Every buffer handed over is malloc'd at exactly
 * its size, so AddressSanitizer reports a read or write past its end.
 *
 * A broken invariant prints what broke and abort()s, which libFuzzer
 * reports as a crash and saves the input:
 *
 *	- on success, both tokens are NUL-terminated in their buffers and
 *	  plausible per calcom_token_is_plausible;
 *	- an expiry is either absent (has_* false and 0) or finite and > 0;
 *	- a message written is NUL-terminated, at most message_len - 1 long and
 *	  printable ASCII (0x20..0x7e) only;
 *	- the three checkers agree with a plain reading of their contracts in
 *	  calcom_parse.h.
 *
 * calcom_parse_tokens documents a message only on failure, so its message
 * is checked only then.  The buffers are pre-filled with a non-NUL byte, so
 * a message left unterminated is seen.
 *
 * Build and run with fuzz/run.sh.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "calcom_parse.h"

/* Pre-fill of message buffers: not NUL, not printable. */
#define FUZZ_FILL_BYTE 0xA5

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_calcom_parse: invariant broken: %s%s%s\n",
			what, detail != NULL ? ": " : "", detail != NULL ? detail : "");
	abort();
}

/* A buffer of exactly len bytes, pre-filled; never NULL. */
static char *
alloc_filled(size_t len)
{
	char	   *buf = malloc(len > 0 ? len : 1);

	if (buf == NULL)
		abort();
	memset(buf, FUZZ_FILL_BYTE, len > 0 ? len : 1);
	return buf;
}

static bool
is_printable_ascii(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/*
 * message (of message_len bytes) is NUL-terminated within its buffer, hence
 * at most message_len - 1 long, and printable ASCII only.
 */
static void
check_message(const char *message, size_t message_len, const char *who)
{
	const char *nul = memchr(message, '\0', message_len);
	size_t		i;

	if (nul == NULL)
		fail(who, "message is not NUL-terminated within message_len");
	for (i = 0; message + i < nul; i++)
		if (!is_printable_ascii((unsigned char) message[i]))
			fail(who, "message holds a byte outside 0x20..0x7e");
}

/* A token buffer of CalTokens holds a NUL and a plausible token. */
static void
check_token(const char *token, const char *who)
{
	if (memchr(token, '\0', CAL_TOKEN_MAX + 1) == NULL)
		fail(who, "token is not NUL-terminated within its buffer");
	if (!calcom_token_is_plausible(token))
		fail(who, "token is not plausible");
}

static void
check_expiry(bool present, double ms, const char *who)
{
	if (!present)
	{
		if (ms != 0)
			fail(who, "absent expiry is not 0");
	}
	else if (!isfinite(ms) || !(ms > 0))
		fail(who, "present expiry is not finite and > 0");
}

/* A managed-user body: two tokens, and expiries that are absent or sane. */
static void
check_managed_tokens(const CalTokens *tokens, const char *who)
{
	check_token(tokens->access_token, who);
	check_token(tokens->refresh_token, who);
	check_expiry(tokens->has_access_expiry, tokens->access_expires_ms, who);
	check_expiry(tokens->has_refresh_expiry, tokens->refresh_expires_ms, who);
}

/*
 * An OAuth2 body: two tokens, an expires_in of 1 s to a day, and no expiry
 * dates (the caller dates it).
 */
static void
check_oauth2_tokens(const CalTokens *tokens, const char *who)
{
	check_token(tokens->access_token, who);
	check_token(tokens->refresh_token, who);
	if (!tokens->has_expires_in || !(tokens->expires_in_s >= 1) ||
		!(tokens->expires_in_s <= 86400))
		fail(who, "expires_in out of 1..86400");
	if (tokens->has_access_expiry || tokens->has_refresh_expiry)
		fail(who, "an expiry date was set");
}

typedef bool (*TokenParser) (const char *body, size_t len, CalTokens *tokens,
							 char *message, size_t message_len);

/*
 * Runs a token parser with a message buffer of message_len bytes; returns
 * its result after checking it (check_ok on success, the message else).
 */
static bool
fuzz_parse(TokenParser parse, void (*check_ok) (const CalTokens *, const char *),
		   const char *who, const char *body, size_t len, size_t message_len)
{
	CalTokens  *tokens = malloc(sizeof(CalTokens));
	char	   *message = alloc_filled(message_len);
	bool		ok;

	if (tokens == NULL)
		abort();
	memset(tokens, FUZZ_FILL_BYTE, sizeof(CalTokens));

	ok = parse(body, len, tokens, message, message_len);
	if (ok)
		check_ok(tokens, who);
	else
		check_message(message, message_len, who);

	free(message);
	free(tokens);
	return ok;
}

/* Runs calcom_describe_error with a message buffer of message_len bytes. */
static void
fuzz_describe_error(const char *body, size_t len, size_t message_len)
{
	char	   *message = alloc_filled(message_len);
	const char *secrets[2] = {"Bearer", NULL};
	bool		described;

	described = calcom_describe_error(body, len, secrets, 2, message,
									  message_len);
	if (described)
	{
		check_message(message, message_len, "calcom_describe_error");
		if (message_len > 1 && message[0] == '\0')
			fail("calcom_describe_error", "message is empty");
		if (message_len > 0 && strstr(message, "Bearer") != NULL)
			fail("calcom_describe_error", "described a text quoting a secret");
	}
	free(message);
}

/* 1..CAL_TOKEN_MAX bytes of 0x21..0x7e, as calcom_parse.h says. */
static void
fuzz_token_is_plausible(const char *str)
{
	size_t		len = strlen(str);
	bool		expected = len > 0 && len <= CAL_TOKEN_MAX;
	size_t		i;

	for (i = 0; expected && i < len; i++)
		if (!is_printable_ascii((unsigned char) str[i]) || str[i] == ' ')
			expected = false;
	if (calcom_token_is_plausible(str) != expected)
		fail("calcom_token_is_plausible", "disagrees with its contract");
}

/*
 * On true: no reason, no space, control, non-ASCII, '?', '#', '@' or '\',
 * and an http(s):// scheme with a host after it.  On false: a printable
 * reason.
 */
static void
fuzz_url_is_acceptable(const char *str)
{
	const char *why = "not set";
	size_t		i;

	if (calcom_url_is_acceptable(str, &why))
	{
		size_t		scheme_len = 0;

		if (why != NULL)
			fail("calcom_url_is_acceptable", "reason given on true");
		for (i = 0; str[i] != '\0'; i++)
			if (!is_printable_ascii((unsigned char) str[i]) ||
				strchr(" ?#@\\", str[i]) != NULL)
				fail("calcom_url_is_acceptable",
					 "accepted a forbidden character");
		if (strncasecmp(str, "https://", 8) == 0)
			scheme_len = 8;
		else if (strncasecmp(str, "http://", 7) == 0)
			scheme_len = 7;
		if (scheme_len == 0)
			fail("calcom_url_is_acceptable", "accepted another scheme");
		else if (str[scheme_len] == '\0' || str[scheme_len] == '/' ||
				 str[scheme_len] == ':')
			fail("calcom_url_is_acceptable", "accepted an empty host");
	}
	else
	{
		if (why == NULL)
			fail("calcom_url_is_acceptable", "no reason given on false");
		check_message(why, strlen(why) + 1, "calcom_url_is_acceptable");
	}
}

/* At most 128 of [A-Za-z0-9_-] (empty allowed: the setting's default). */
static void
fuzz_client_id_is_valid(const char *str)
{
	size_t		len = strlen(str);
	bool		expected = len <= 128;
	size_t		i;

	for (i = 0; expected && i < len; i++)
	{
		char		c = str[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_'))
			expected = false;
	}
	if (calcom_client_id_is_valid(str) != expected)
		fail("calcom_client_id_is_valid", "disagrees with its contract");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *body;
	char	   *str;
	size_t		small_len;
	bool		ok;

	/* The body exactly as received: size bytes, no terminating NUL. */
	body = malloc(size > 0 ? size : 1);
	if (body == NULL)
		abort();
	if (size > 0)
		memcpy(body, data, size);

	/*
	 * Once with the caller's message size, once with a small one (1..32,
	 * from the size so the bytes stay the body) to exercise truncation.
	 * The result must not depend on the room for the message.
	 */
	small_len = 1 + size % 32;
	ok = fuzz_parse(calcom_parse_tokens, check_managed_tokens,
					"calcom_parse_tokens", body, size, CAL_MESSAGE_MAX);
	if (fuzz_parse(calcom_parse_tokens, check_managed_tokens,
				   "calcom_parse_tokens", body, size, small_len) != ok)
		fail("calcom_parse_tokens", "result depends on message_len");
	ok = fuzz_parse(calcom_parse_oauth2_tokens, check_oauth2_tokens,
					"calcom_parse_oauth2_tokens", body, size, CAL_MESSAGE_MAX);
	if (fuzz_parse(calcom_parse_oauth2_tokens, check_oauth2_tokens,
				   "calcom_parse_oauth2_tokens", body, size, small_len) != ok)
		fail("calcom_parse_oauth2_tokens", "result depends on message_len");
	fuzz_describe_error(body, size, CAL_MESSAGE_MAX);
	fuzz_describe_error(body, size, small_len);
	free(body);

	/* The same bytes as a C string (ending at the first NUL, if any). */
	str = malloc(size + 1);
	if (str == NULL)
		abort();
	if (size > 0)
		memcpy(str, data, size);
	str[size] = '\0';
	fuzz_token_is_plausible(str);
	fuzz_url_is_acceptable(str);
	(void) calcom_url_is_loopback(str);
	(void) calcom_body_is_json_shaped(str, strlen(str));
	fuzz_client_id_is_valid(str);
	free(str);

	return 0;
}
