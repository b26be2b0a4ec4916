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

/* in calcom_parse.c */
extern bool calcom_parse_tokens(const char *body, size_t len,
								CalTokens *tokens,
								char *message, size_t message_len);
extern bool calcom_parse_oauth2_tokens(const char *body, size_t len,
									   CalTokens *tokens,
									   char *message, size_t message_len);
extern bool calcom_parse_success(const char *body, size_t len,
								 char *message, size_t message_len);
extern bool calcom_describe_error(const char *body, size_t len,
								  const char *const *secrets, int n_secrets,
								  char *message, size_t message_len);
extern bool calcom_body_is_json_shaped(const char *body, size_t len);
extern bool calcom_token_is_plausible(const char *token);
extern bool calcom_url_is_acceptable(const char *url, const char **why);
extern bool calcom_url_is_loopback(const char *url);
extern bool calcom_client_id_is_valid(const char *client_id);

#endif							/* CALCOM_PARSE_H */
