/*-------------------------------------------------------------------------
 *
 * calcom_types.h
 *		What the Cal.com client's two layers share: the configuration
 *		they are handed, the endpoints and flows (described in
 *		calcom_endpoint.c), and a call's classified result.  Included by
 *		calcom_client.h and calcom_transfer.h alike, so that the lower
 *		layer never includes the upper one.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALCOM_TYPES_H
#define CALCOM_TYPES_H

#include "cal_error.h"
#include "calcom_parse.h"

/*
 * How the application's users authorized it: Cal.com's platform managed
 * users (refresh, with force refresh behind it), or its standard OAuth2
 * flow (the token endpoint alone).
 */
typedef enum CalFlow
{
	CAL_FLOW_MANAGED_USER,
	CAL_FLOW_OAUTH2
} CalFlow;

/* Bodies larger than this are refused: a token response is ~1 kB. */
#define CAL_BODY_MAX (64 * 1024)

/*
 * The longest pause a server may ask for (Retry-After, a rate-limit
 * reset): Cal.com's throttler blocks a client for 60 s.
 */
#define CAL_PAUSE_MAX_MS (60 * 1000)

typedef struct CalClientConfig
{
	const char *api_url;		/* e.g. https://api.cal.com */
	const char *client_id;
	const char *secret_key;
	const char *ca_file;		/* extra CA bundle, or "" */
	int			timeout_ms;		/* one endpoint, retries included */
	int			connect_timeout_ms;
	int			max_retries;	/* after 429, 5xx, resets (see .c) */
	int			max_requests_per_minute;	/* cluster-wide; 0: unlimited */
	bool		track_stats;	/* count requests in cal_refresh_stats */
	int			cancel_grace_ms;	/* see calcom_batch_next; 0: none */
	CalFlow		flow;			/* which endpoint refreshes */
} CalClientConfig;

typedef enum CalEndpoint
{
	CAL_ENDPOINT_REFRESH,
	CAL_ENDPOINT_FORCE_REFRESH,
	CAL_ENDPOINT_LIST_USERS,	/* cal_refresh_check(): do the credentials work? */
	CAL_ENDPOINT_OAUTH2_TOKEN
} CalEndpoint;

#define CAL_ENDPOINT_COUNT (CAL_ENDPOINT_OAUTH2_TOKEN + 1)

typedef enum CalOutcome
{
	CAL_OK,
	CAL_REJECTED,				/* 4xx other than 429 */
	CAL_UNAVAILABLE,			/* 5xx or 429 */
	CAL_NETWORK_ERROR,			/* no connection, reset, TLS failure */
	CAL_TIMEOUT,
	CAL_BAD_RESPONSE			/* redirect, unusable body, over the cap */
} CalOutcome;

#define CAL_OUTCOME_COUNT (CAL_BAD_RESPONSE + 1)

typedef struct CalCallResult
{
	CalEndpoint endpoint;
	CalOutcome	outcome;
	long		http_status;	/* 0 when no response arrived */
	bool		request_sent;	/* Cal.com may have acted on it */
	bool		body_over_cap;	/* the response was cut at CAL_BODY_MAX */
	bool		not_started;	/* the batch did not send it (see below) */
	int			attempts;
	int			elapsed_ms;		/* all attempts and waits */
	int			retry_after_ms; /* the wait Cal.com asked for, or -1 */
	char		message[CAL_MESSAGE_MAX];	/* never holds a token */
	CalTokens	tokens;			/* filled when a refresh's outcome == CAL_OK */
} CalCallResult;

/* How a request carries its client's credentials. */
typedef enum CalAuth
{
	CAL_AUTH_SECRET_HEADER,		/* x-cal-client-id and x-cal-secret-key */
	CAL_AUTH_IN_BODY			/* client_id and client_secret form fields */
} CalAuth;

/* What a request sends. */
typedef enum CalRequestBody
{
	CAL_REQUEST_GET,			/* a GET, no body */
	CAL_REQUEST_EMPTY,			/* a POST with an empty body */
	CAL_REQUEST_REFRESH_JSON,	/* {"refreshToken": ...} */
	CAL_REQUEST_OAUTH2_FORM		/* grant_type=refresh_token&... */
} CalRequestBody;

/*
 * Reads a 2xx body into *tokens (NULL: the call returns none), or says in
 * message why it cannot.  Pure, like calcom_parse.c.
 */
typedef bool (*CalBodyParser) (const char *body, size_t len,
							   CalTokens *tokens,
							   char *message, size_t message_len);

/* One Cal.com endpoint: everything that differs between them. */
typedef struct CalEndpointDesc
{
	CalEndpoint endpoint;
	const char *name;			/* in cal_refresh_stats, methods and logs */
	const char *path;			/* after api_url; {client} and {user} filled */
	CalRequestBody request;
	CalAuth		auth;
	CalBodyParser parse;
	bool		books_ahead;	/* queued first, a request slot booked ahead */
	bool		resend_safe;	/* may go again after an answer was lost */
} CalEndpointDesc;

/* One way of authorizing users: its endpoints and lifetimes. */
typedef struct CalFlowDesc
{
	CalFlow		flow;
	const char *name;			/* the value of cal_refresh.flow */
	CalEndpoint refresh;		/* the call that renews a pair */
	bool		has_force_refresh;	/* and a fallback when it cannot */
	int			access_token_minutes;	/* how long Cal.com's tokens live */
	int			requests_per_minute;	/* a default within Cal.com's limit */
} CalFlowDesc;

/* in calcom_endpoint.c */
extern const CalEndpointDesc *calcom_endpoint(CalEndpoint endpoint);
extern const CalFlowDesc *calcom_flow(CalFlow flow);
extern const char *calcom_endpoint_name(CalEndpoint endpoint);
extern const char *calcom_outcome_name(CalOutcome outcome);
extern CalError calcom_call_error(const CalCallResult *call);
extern char *calcom_endpoint_url(const CalEndpointDesc *desc,
								 const char *api_url, const char *client_id,
								 long user_id);
extern char *calcom_endpoint_body(const CalEndpointDesc *desc,
								  const CalClientConfig *config,
								  const char *refresh_token);
extern char *calcom_endpoint_form_value(const char *value);

#endif							/* CALCOM_TYPES_H */
