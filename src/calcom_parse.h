/*-------------------------------------------------------------------------
 *
 * calcom_parse.h
 *		Pure functions of the Cal.com client: reading response bodies and
 *		checking URLs and tokens.  No PostgreSQL, no curl, no I/O, so a
 *		fuzz target links them alone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALCOM_PARSE_H
#define CALCOM_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* Cal.com's tokens are a few hundred bytes; anything longer is not one. */
#define CAL_TOKEN_MAX 4096
/* Room for a one-line, human-readable description of a failure. */
#define CAL_MESSAGE_MAX 256

typedef struct CalTokens
{
	char		access_token[CAL_TOKEN_MAX + 1];
	char		refresh_token[CAL_TOKEN_MAX + 1];
	bool		has_access_expiry;	/* older deployments omit the expiries */
	bool		has_refresh_expiry;
	double		access_expires_ms;	/* milliseconds since the Unix epoch */
	double		refresh_expires_ms;
	/* OAuth2 answers with a lifetime instead: the caller dates it. */
	bool		has_expires_in;
	double		expires_in_s;
} CalTokens;

/*
 * Reads a successful refresh or force-refresh body.  Returns true and fills
 * *tokens when the body is usable; otherwise false, with the reason in
 * message (never a token).
 */
extern bool calcom_parse_tokens(const char *body, size_t len,
								CalTokens *tokens,
								char *message, size_t message_len);

/*
 * Reads a successful body of the OAuth2 token endpoint: the RFC 6749
 * object, bare or wrapped in {"status": "success", "data": ...} (Cal.com's
 * versions differ).  access_token, refresh_token and expires_in (seconds)
 * are required; token_type, when present, must be "bearer".
 */
extern bool calcom_parse_oauth2_tokens(const char *body, size_t len,
									   CalTokens *tokens,
									   char *message, size_t message_len);

extern bool calcom_parse_success(const char *body, size_t len,
								 char *message, size_t message_len);

/*
 * Describes an error body ("BadRequestException: Invalid refresh token",
 * or an RFC 6749 one: "invalid_grant: refresh_token_revoked"),
 * leniently: a body that is not Cal.com's error envelope (a proxy's HTML
 * page) gives "non-JSON body".  Only printable ASCII is kept.  Returns
 * false, describing nothing, when a text it would describe holds one of
 * the n_secrets strings (NULL or empty ones aside) once its JSON escapes
 * are decoded.
 */
extern bool calcom_describe_error(const char *body, size_t len,
								  const char *const *secrets, int n_secrets,
								  char *message, size_t message_len);

/*
 * Could the body be JSON at all: does it start, after white space, with
 * an object or an array?  A maintenance page or a captive proxy's answer
 * does not; a truncated JSON body does.
 */
extern bool calcom_body_is_json_shaped(const char *body, size_t len);

/* A token as Cal.com issues them: 1..CAL_TOKEN_MAX printable, no spaces. */
extern bool calcom_token_is_plausible(const char *token);

/*
 * An API base URL we are willing to send the secret to: https, or http to
 * a loopback host; no user info, query or fragment.  On false, *why says
 * what is wrong.
 */
extern bool calcom_url_is_acceptable(const char *url, const char **why);

/*
 * Does the URL (one calcom_url_is_acceptable accepts) name a loopback
 * host?  Such calls must bypass any proxy.
 */
extern bool calcom_url_is_loopback(const char *url);

/* An OAuth client id is safe to place in a URL path. */
extern bool calcom_client_id_is_valid(const char *client_id);

#endif							/* CALCOM_PARSE_H */
