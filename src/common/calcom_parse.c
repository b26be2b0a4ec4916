/*-------------------------------------------------------------------------
 *
 * calcom_parse.c
 *		Reading Cal.com's JSON bodies and checking what we put in a request.
 *
 * Everything here is a pure function of its arguments.  Cal.com's bodies
 * are treated as hostile input: every field is type-checked, tokens must
 * look like tokens, and expiries must be plausible millisecond numbers
 * (read through valuedouble: cJSON's valueint saturates at INT_MAX).
 *
 *-------------------------------------------------------------------------
 */
#include "calcom_parse.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

/* Plausible expiries: after 2000-01-01 and before 10000-01-01, in ms. */
#define CAL_EXPIRY_MIN_MS 946684800000.0
#define CAL_EXPIRY_MAX_MS 253402300800000.0

static void
set_message(char *message, size_t message_len, const char *text)
{
	if (message_len > 0)
		snprintf(message, message_len, "%s", text);
}

/* A token as Cal.com issues them: 1..CAL_TOKEN_MAX printable, no spaces. */
bool
calcom_token_is_plausible(const char *token)
{
	size_t		len = 0;

	if (token == NULL)
		return false;
	for (; token[len] != '\0'; len++)
	{
		unsigned char c = (unsigned char) token[len];

		if (c <= 0x20 || c >= 0x7f || len >= CAL_TOKEN_MAX)
			return false;
	}
	return len > 0;
}

/* Copies a string field into buf when it is a plausible token. */
static bool
copy_token(const cJSON *data, const char *field, char *buf)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(data, field);

	if (!cJSON_IsString(item) || !calcom_token_is_plausible(item->valuestring))
		return false;
	/* Plausible means at most CAL_TOKEN_MAX bytes: buf has room. */
	memcpy(buf, item->valuestring, strlen(item->valuestring) + 1);
	return true;
}

/*
 * Reads an optional expiry.  Absent or null is fine (*present = false);
 * anything but a plausible positive number is not.
 */
static bool
read_expiry(const cJSON *data, const char *field, bool *present, double *ms)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(data, field);

	*present = false;
	*ms = 0;
	if (item == NULL || cJSON_IsNull(item))
		return true;
	if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) ||
		item->valuedouble < CAL_EXPIRY_MIN_MS ||
		item->valuedouble >= CAL_EXPIRY_MAX_MS)
		return false;
	*present = true;
	*ms = floor(item->valuedouble);
	return true;
}

/*
 * Parses body and finds its token object: root's "data" when root has a
 * "status" (which must be "success"), or, where bare_ok, root itself.
 * Returns NULL with the reason in message; else the object, and *root to
 * be deleted by the caller.
 */
static const cJSON *
open_token_object(const char *body, size_t len, bool bare_ok, cJSON **root,
				  char *message, size_t message_len)
{
	const cJSON *status;
	const cJSON *data;

	*root = cJSON_ParseWithLength(body, len);
	if (*root == NULL)
	{
		set_message(message, message_len, "response is not JSON");
		return NULL;
	}
	status = cJSON_GetObjectItemCaseSensitive(*root, "status");
	data = (status == NULL && bare_ok) ? *root :
		cJSON_GetObjectItemCaseSensitive(*root, "data");
	if (status != NULL &&
		!(cJSON_IsString(status) && strcmp(status->valuestring, "success") == 0))
		set_message(message, message_len, "response status is not \"success\"");
	else if (!cJSON_IsObject(data))
		set_message(message, message_len, bare_ok ?
					"response is not a token object" :
					"response has no \"data\" object");
	else
		return data;
	cJSON_Delete(*root);
	*root = NULL;
	return NULL;
}

/*
 * Reads a successful refresh or force-refresh body.  Returns true and fills
 * *tokens when the body is usable; otherwise false, with the reason in
 * message (never a token).
 */
bool
calcom_parse_tokens(const char *body, size_t len, CalTokens *tokens,
					char *message, size_t message_len)
{
	cJSON	   *root;
	const cJSON *data;
	bool		ok = false;

	memset(tokens, 0, sizeof(*tokens));
	data = open_token_object(body, len, false, &root, message, message_len);
	if (data == NULL)
		return false;
	if (!copy_token(data, "accessToken", tokens->access_token))
		set_message(message, message_len,
					"response has no usable \"accessToken\"");
	else if (!copy_token(data, "refreshToken", tokens->refresh_token))
		set_message(message, message_len,
					"response has no usable \"refreshToken\"");
	else if (!read_expiry(data, "accessTokenExpiresAt",
						  &tokens->has_access_expiry,
						  &tokens->access_expires_ms))
		set_message(message, message_len,
					"response has an unusable \"accessTokenExpiresAt\"");
	else if (!read_expiry(data, "refreshTokenExpiresAt",
						  &tokens->has_refresh_expiry,
						  &tokens->refresh_expires_ms))
		set_message(message, message_len,
					"response has an unusable \"refreshTokenExpiresAt\"");
	else
		ok = true;

	cJSON_Delete(root);
	if (!ok)
		memset(tokens, 0, sizeof(*tokens));
	return ok;
}

/* The longest access-token lifetime believed: a day (Cal.com's is 30 min). */
#define CAL_EXPIRES_IN_MAX_S 86400.0

/* Reads the required expires_in: a number of seconds, 1 to a day. */
static bool
read_expires_in(const cJSON *data, CalTokens *tokens)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(data, "expires_in");

	if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) ||
		item->valuedouble < 1.0 || item->valuedouble > CAL_EXPIRES_IN_MAX_S)
		return false;
	tokens->has_expires_in = true;
	tokens->expires_in_s = floor(item->valuedouble);
	return true;
}

/*
 * Reads a successful body of the OAuth2 token endpoint: the RFC 6749
 * object, bare or wrapped in {"status": "success", "data": ...} (Cal.com's
 * versions differ).  access_token, refresh_token and expires_in (seconds)
 * are required; token_type, when present, must be "bearer".
 */
bool
calcom_parse_oauth2_tokens(const char *body, size_t len, CalTokens *tokens,
						   char *message, size_t message_len)
{
	cJSON	   *root;
	const cJSON *data;
	const cJSON *type;
	bool		ok = false;

	memset(tokens, 0, sizeof(*tokens));
	data = open_token_object(body, len, true, &root, message, message_len);
	if (data == NULL)
		return false;
	type = cJSON_GetObjectItemCaseSensitive(data, "token_type");
	if (!copy_token(data, "access_token", tokens->access_token))
		set_message(message, message_len,
					"response has no usable \"access_token\"");
	else if (!copy_token(data, "refresh_token", tokens->refresh_token))
		set_message(message, message_len,
					"response has no usable \"refresh_token\"");
	else if (!read_expires_in(data, tokens))
		set_message(message, message_len,
					"response has an unusable \"expires_in\"");
	else if (type != NULL &&
			 !(cJSON_IsString(type) && strcasecmp(type->valuestring, "bearer") == 0))
		set_message(message, message_len,
					"response's \"token_type\" is not \"bearer\"");
	else
		ok = true;

	cJSON_Delete(root);
	if (!ok)
		memset(tokens, 0, sizeof(*tokens));
	return ok;
}

/* Appends src to dst (size dst_len), keeping printable ASCII only. */
static void
append_printable(char *dst, size_t dst_len, const char *src, size_t src_max)
{
	size_t		used = strlen(dst);
	size_t		i;

	for (i = 0; i < src_max && src[i] != '\0' && used + 1 < dst_len; i++)
	{
		unsigned char c = (unsigned char) src[i];

		dst[used++] = (char) ((c >= 0x20 && c < 0x7f) ? c : '?');
	}
	dst[used] = '\0';
}

/* Does the decoded string item hold any of the secrets? */
static bool
quotes_a_secret(const cJSON *item, const char *const *secrets, int n_secrets)
{
	int			i;

	if (!cJSON_IsString(item))
		return false;
	for (i = 0; i < n_secrets; i++)
		if (secrets[i] != NULL && secrets[i][0] != '\0' &&
			strstr(item->valuestring, secrets[i]) != NULL)
			return true;
	return false;
}

/*
 * Describes an error body ("BadRequestException: Invalid refresh token",
 * or an RFC 6749 one: "invalid_grant: refresh_token_revoked"),
 * leniently: a body that is not Cal.com's error envelope (a proxy's HTML
 * page) gives "non-JSON body".  Only printable ASCII is kept.  Returns
 * false, describing nothing, when a text it would describe holds one of
 * the n_secrets strings (NULL or empty ones aside) once its JSON escapes
 * are decoded.
 */
bool
calcom_describe_error(const char *body, size_t len,
					  const char *const *secrets, int n_secrets,
					  char *message, size_t message_len)
{
	cJSON	   *root;
	const cJSON *error;
	const cJSON *code;
	const cJSON *text;

	if (message_len == 0)
		return true;
	message[0] = '\0';
	root = cJSON_ParseWithLength(body, len);
	if (root == NULL)
	{
		set_message(message, message_len,
					len == 0 ? "empty body" : "non-JSON body");
		return true;
	}
	error = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (cJSON_IsString(error))
	{
		/* RFC 6749 (the OAuth2 token endpoint): error, error_description */
		code = error;
		text = cJSON_GetObjectItemCaseSensitive(root, "error_description");
	}
	else
	{
		code = cJSON_GetObjectItemCaseSensitive(error, "code");
		text = cJSON_GetObjectItemCaseSensitive(error, "message");
	}
	if (quotes_a_secret(code, secrets, n_secrets) ||
		quotes_a_secret(text, secrets, n_secrets))
	{
		cJSON_Delete(root);
		return false;
	}
	if (cJSON_IsString(code))
		append_printable(message, message_len, code->valuestring, 64);
	if (cJSON_IsString(text))
	{
		if (message[0] != '\0')
			append_printable(message, message_len, ": ", 2);
		append_printable(message, message_len, text->valuestring, 160);
	}
	if (message[0] == '\0')
		set_message(message, message_len, "no error description");
	cJSON_Delete(root);
	return true;
}

/*
 * Could the body be JSON at all: does it start, after white space, with
 * an object or an array?  A maintenance page or a captive proxy's answer
 * does not; a truncated JSON body does.
 */
bool
calcom_body_is_json_shaped(const char *body, size_t len)
{
	size_t		i = 0;

	while (i < len && (body[i] == ' ' || body[i] == '\t' ||
					   body[i] == '\r' || body[i] == '\n'))
		i++;
	return i < len && (body[i] == '{' || body[i] == '[');
}

/*
 * True for the hosts plain http may reach: this machine only.  An IPv4
 * literal must be exactly four decimal octets starting with 127; anything
 * else would go to the resolver.
 */
static bool
host_is_loopback(const char *host, size_t len)
{
	int			octets = 0;
	size_t		i = 0;

	if (len == 9 && strncasecmp(host, "localhost", 9) == 0)
		return true;
	if (len == 5 && strncmp(host, "[::1]", 5) == 0)
		return true;
	if (len < 4 || strncmp(host, "127.", 4) != 0)
		return false;
	while (i < len)
	{
		int			value = 0;
		size_t		digits = 0;

		for (; i < len && host[i] >= '0' && host[i] <= '9' && digits < 4; i++, digits++)
			value = value * 10 + (host[i] - '0');
		if (digits == 0 || digits > 3 || value > 255)
			return false;
		octets++;
		if (i < len && host[i++] != '.')
			return false;
		if (i == len && host[len - 1] == '.')
			return false;
	}
	return octets == 4;
}

/*
 * The host part of an http(s) URL: *host and *len; false when the URL has
 * no such scheme.
 */
static bool
url_host(const char *url, bool *https, const char **host, size_t *len)
{
	const char *rest;

	if (strncasecmp(url, "https://", 8) == 0)
	{
		*https = true;
		rest = url + 8;
	}
	else if (strncasecmp(url, "http://", 7) == 0)
	{
		*https = false;
		rest = url + 7;
	}
	else
		return false;
	*host = rest;
	if (rest[0] == '[')
		*len = strcspn(rest, "]") + 1;
	else
		*len = strcspn(rest, ":/");
	return true;
}

/*
 * Is the body Cal.com's success envelope, {"status": "success", "data":
 * ...}?  For the calls whose answer only needs to be an answer (the
 * credentials check); what data holds is not looked at, and never shown.
 */
bool
calcom_parse_success(const char *body, size_t len, char *message,
					 size_t message_len)
{
	cJSON	   *root = cJSON_ParseWithLength(body, len);
	const cJSON *status;
	bool		ok = false;

	if (root == NULL)
	{
		set_message(message, message_len, "response is not JSON");
		return false;
	}
	status = cJSON_GetObjectItemCaseSensitive(root, "status");
	if (!cJSON_IsString(status) || strcmp(status->valuestring, "success") != 0)
		set_message(message, message_len, "response status is not \"success\"");
	else if (cJSON_GetObjectItemCaseSensitive(root, "data") == NULL)
		set_message(message, message_len, "response has no \"data\"");
	else
		ok = true;
	cJSON_Delete(root);
	return ok;
}

/*
 * Does the URL (one calcom_url_is_acceptable accepts) name a loopback
 * host?  Such calls must bypass any proxy.
 */
bool
calcom_url_is_loopback(const char *url)
{
	bool		https;
	const char *host;
	size_t		len;

	return url != NULL && url_host(url, &https, &host, &len) &&
		len <= strlen(host) && host_is_loopback(host, len);
}

/*
 * An API base URL we are willing to send the secret to: https, or http to
 * a loopback host; no user info, query or fragment.  On false, *why says
 * what is wrong.
 */
bool
calcom_url_is_acceptable(const char *url, const char **why)
{
	const char *rest;
	size_t		host_len;
	size_t		i;
	bool		https;

	*why = NULL;
	if (url == NULL || url[0] == '\0')
	{
		*why = "The URL is empty.";
		return false;
	}
	for (i = 0; url[i] != '\0'; i++)
	{
		unsigned char c = (unsigned char) url[i];

		if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '@' ||
			c == '\\')
		{
			*why = "The URL may not contain spaces, control characters, "
				"user information, a query or a fragment.";
			return false;
		}
	}
	if (!url_host(url, &https, &rest, &host_len))
	{
		*why = "The URL must start with https://.";
		return false;
	}
	if (host_len == 0 || host_len > strlen(rest) ||
		(rest[0] == '[' && host_len < 3))
	{
		*why = "The URL has no host.";
		return false;
	}
	if (!https && !host_is_loopback(rest, host_len))
	{
		*why = "Plain http:// is allowed only for loopback hosts; use https://.";
		return false;
	}
	return true;
}

/* An OAuth client id is safe to place in a URL path. */
bool
calcom_client_id_is_valid(const char *client_id)
{
	size_t		i;

	for (i = 0; client_id[i] != '\0'; i++)
	{
		char		c = client_id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_') ||
			i >= 128)
			return false;
	}
	return true;
}
