/*-------------------------------------------------------------------------
 *
 * calcom_endpoint.c
 *		One row per Cal.com endpoint and per flow: what the rest of the
 *		client reads instead of asking which endpoint it has.  Adding an
 *		endpoint is adding a row (and, when its body is new, a parser).
 *
 * Facts from shared/calcom-api.md: the managed-user routes authenticate
 * with the x-cal-secret-key header and answer {"status", "data"} with
 * millisecond expiries; the OAuth2 token endpoint takes the client's
 * credentials as form fields and answers RFC 6749 objects with expires_in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "calcom_types.h"

/* The list's page is not read, only checked to be JSON (no tokens). */
static bool
calcom_endpoint_parse_any(const char *body, size_t len, CalTokens *tokens,
						  char *message, size_t message_len)
{
	return calcom_parse_success(body, len, message, message_len);
}

static const CalEndpointDesc calcom_endpoints[CAL_ENDPOINT_COUNT] = {
	[CAL_ENDPOINT_REFRESH] = {
		.endpoint = CAL_ENDPOINT_REFRESH,
		.name = "refresh",
		.path = "/v2/oauth/{client}/refresh",
		.request = CAL_REQUEST_REFRESH_JSON,
		.auth = CAL_AUTH_SECRET_HEADER,
		.parse = calcom_parse_tokens,
		.books_ahead = false,
		/* A token Cal.com spent meanwhile earns a 400: force refresh follows. */
		.resend_safe = true,
	},
	[CAL_ENDPOINT_FORCE_REFRESH] = {
		.endpoint = CAL_ENDPOINT_FORCE_REFRESH,
		.name = "force_refresh",
		.path = "/v2/oauth-clients/{client}/users/{user}/force-refresh",
		.request = CAL_REQUEST_EMPTY,
		.auth = CAL_AUTH_SECRET_HEADER,
		.parse = calcom_parse_tokens,
		/* Its user is half way: the refresh token may be spent already. */
		.books_ahead = true,
		/* Each one voids the last: the newest answer is the pair. */
		.resend_safe = true,
	},
	[CAL_ENDPOINT_LIST_USERS] = {
		.endpoint = CAL_ENDPOINT_LIST_USERS,
		.name = "list_users",
		.path = "/v2/oauth-clients/{client}/users?limit=1&offset=0",
		.request = CAL_REQUEST_GET,
		.auth = CAL_AUTH_SECRET_HEADER,
		.parse = calcom_endpoint_parse_any,
		.books_ahead = true,	/* a DBA waits for it */
		.resend_safe = true,	/* it reads */
	},
	[CAL_ENDPOINT_OAUTH2_TOKEN] = {
		.endpoint = CAL_ENDPOINT_OAUTH2_TOKEN,
		.name = "oauth2_token",
		.path = "/v2/auth/oauth2/token",
		.request = CAL_REQUEST_OAUTH2_FORM,
		.auth = CAL_AUTH_IN_BODY,
		.parse = calcom_parse_oauth2_tokens,
		.books_ahead = false,

		/*
		 * If Cal.com rotated before the answer was lost, the pair is lost
		 * whatever we do, and sending again earns invalid_grant; if it did
		 * not, sending again saves the user.
		 */
		.resend_safe = true,
	},
};

/*
 * Managed users: tokens live 60 minutes, and Cal.com allows 500 requests a
 * minute per OAuth client.  OAuth2: tokens live 30 minutes, and the token
 * endpoint is counted per client IP, 120 a minute, shared with whatever
 * else the server's address sends.
 */
static const CalFlowDesc calcom_flows[] = {
	[CAL_FLOW_MANAGED_USER] = {
		.flow = CAL_FLOW_MANAGED_USER,
		.name = "managed_user",
		.refresh = CAL_ENDPOINT_REFRESH,
		.has_force_refresh = true,
		.access_token_minutes = 60,
		.requests_per_minute = 400,
	},
	[CAL_FLOW_OAUTH2] = {
		.flow = CAL_FLOW_OAUTH2,
		.name = "oauth2",
		.refresh = CAL_ENDPOINT_OAUTH2_TOKEN,
		.has_force_refresh = false,
		.access_token_minutes = 30,
		.requests_per_minute = 100,
	},
};

/* The description of an endpoint (a row of the table above). */
const CalEndpointDesc *
calcom_endpoint(CalEndpoint endpoint)
{
	Assert((int) endpoint >= 0 && (int) endpoint < CAL_ENDPOINT_COUNT);
	return &calcom_endpoints[endpoint];
}

/* The description of a flow (a row of the table above). */
const CalFlowDesc *
calcom_flow(CalFlow flow)
{
	Assert((int) flow >= 0 && (int) flow < (int) lengthof(calcom_flows));
	return &calcom_flows[flow];
}

/* The endpoint as cal_token_result's method and cal_refresh_stats name it. */
const char *
calcom_endpoint_name(CalEndpoint endpoint)
{
	return calcom_endpoint(endpoint)->name;
}

/* The error code of a call that ended with outcome (OK: none). */
static CalError
calcom_outcome_error(CalOutcome outcome)
{
	switch (outcome)
	{
		case CAL_OK:
			return CAL_ERROR_NONE;
		case CAL_REJECTED:
			return CAL_ERROR_CALCOM_REJECTED;
		case CAL_UNAVAILABLE:
			return CAL_ERROR_CALCOM_UNAVAILABLE;
		case CAL_NETWORK_ERROR:
			return CAL_ERROR_NETWORK_ERROR;
		case CAL_TIMEOUT:
			return CAL_ERROR_TIMEOUT;
		case CAL_BAD_RESPONSE:
			break;
	}
	return CAL_ERROR_BAD_RESPONSE;
}

/* "ok", or the error_code a call that ended so fails with (statistics). */
const char *
calcom_outcome_name(CalOutcome outcome)
{
	return outcome == CAL_OK ? "ok" : cal_error_name(calcom_outcome_error(outcome));
}

/*
 * The error code of a failed call: its outcome's, but a 401 or 403 is the
 * OAuth client refused, the configuration's trouble rather than the
 * user's; a call that ended well but could not be used is a bad response.
 */
CalError
calcom_call_error(const CalCallResult *call)
{
	if (call->outcome == CAL_OK)
		return CAL_ERROR_BAD_RESPONSE;
	if (call->outcome == CAL_REJECTED &&
		(call->http_status == 401 || call->http_status == 403))
		return CAL_ERROR_CALCOM_CLIENT_REFUSED;
	return calcom_outcome_error(call->outcome);
}

/* The URL and the body of a request (the body may hold the secret). */
/*
 * api_url followed by the endpoint's path, {client} and {user} filled in.
 * The client id was checked to be safe in a path (calcom_client_id_is_valid).
 */
char *
calcom_endpoint_url(const CalEndpointDesc *desc, const char *api_url,
					const char *client_id, long user_id)
{
	StringInfoData url;
	const char *p;

	initStringInfo(&url);
	appendStringInfoString(&url, api_url);
	for (p = desc->path; *p != '\0'; p++)
	{
		if (strncmp(p, "{client}", 8) == 0)
		{
			appendStringInfoString(&url, client_id);
			p += 7;
		}
		else if (strncmp(p, "{user}", 6) == 0)
		{
			appendStringInfo(&url, "%ld", user_id);
			p += 5;
		}
		else
			appendStringInfoChar(&url, *p);
	}
	return url.data;
}

/* A form field's value, percent-encoded (RFC 3986 unreserved kept). */
static void
calcom_endpoint_append_form_value(StringInfo buf, const char *value)
{
	const char *p;

	for (p = value; *p != '\0'; p++)
	{
		unsigned char c = (unsigned char) *p;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			c == '~')
			appendStringInfoChar(buf, (char) c);
		else
			appendStringInfo(buf, "%%%02X", c);
	}
}

/* A form field's value as calcom_endpoint_body writes it (percent-encoded). */
char *
calcom_endpoint_form_value(const char *value)
{
	StringInfoData buf;

	initStringInfo(&buf);
	enlargeStringInfo(&buf, (int) (3 * strlen(value) + 1));
	calcom_endpoint_append_form_value(&buf, value);
	return buf.data;
}

/*
 * The request body for a refresh token (NULL for a GET).  The OAuth2 body
 * carries the client secret when there is one (a public client has none):
 * the caller wipes it once the call ends, as it wipes every body.
 */
char *
calcom_endpoint_body(const CalEndpointDesc *desc,
					 const CalClientConfig *config, const char *refresh_token)
{
	StringInfoData body;
	const char *p;

	switch (desc->request)
	{
		case CAL_REQUEST_GET:
			return NULL;
		case CAL_REQUEST_EMPTY:
			return pstrdup("");
		case CAL_REQUEST_REFRESH_JSON:
			/* The token is printable ASCII (checked by the caller). */
			initStringInfo(&body);
			/* Room for all of it: no copy of a token left behind by growth. */
			enlargeStringInfo(&body, (int) (2 * strlen(refresh_token) + 32));
			appendStringInfoString(&body, "{\"refreshToken\":\"");
			for (p = refresh_token; *p != '\0'; p++)
			{
				if (*p == '"' || *p == '\\')
					appendStringInfoChar(&body, '\\');
				appendStringInfoChar(&body, *p);
			}
			appendStringInfoString(&body, "\"}");
			return body.data;
		case CAL_REQUEST_OAUTH2_FORM:
			initStringInfo(&body);
			/* Room for all of it: no copy of a secret left behind by growth. */
			enlargeStringInfo(&body, (int) (3 * (strlen(config->client_id) +
												 strlen(refresh_token) +
												 (config->secret_key == NULL ? 0 :
												  strlen(config->secret_key))) + 80));
			appendStringInfoString(&body,
								   "grant_type=refresh_token&client_id=");
			calcom_endpoint_append_form_value(&body, config->client_id);
			appendStringInfoString(&body, "&refresh_token=");
			calcom_endpoint_append_form_value(&body, refresh_token);
			if (config->secret_key != NULL && config->secret_key[0] != '\0')
			{
				appendStringInfoString(&body, "&client_secret=");
				calcom_endpoint_append_form_value(&body, config->secret_key);
			}
			return body.data;
	}
	return NULL;
}
