/*-------------------------------------------------------------------------
 *
 * calcom_client.h
 *		The two Cal.com calls cal_refresh makes, over libcurl's multi
 *		interface.  Knows nothing of tables or settings: the caller hands
 *		it a CalClientConfig.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALCOM_CLIENT_H
#define CALCOM_CLIENT_H

#include "calcom_parse.h"

/* Bodies larger than this are refused: a token response is ~1 kB. */
#define CAL_BODY_MAX (64 * 1024)

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
} CalClientConfig;

typedef enum CalEndpoint
{
	CAL_ENDPOINT_REFRESH,
	CAL_ENDPOINT_FORCE_REFRESH
} CalEndpoint;

typedef enum CalOutcome
{
	CAL_OK,
	CAL_REJECTED,				/* 4xx other than 429 */
	CAL_UNAVAILABLE,			/* 5xx or 429 */
	CAL_NETWORK_ERROR,			/* no connection, reset, TLS failure */
	CAL_TIMEOUT,
	CAL_BAD_RESPONSE			/* redirect, unusable body, over the cap */
} CalOutcome;

typedef struct CalCallResult
{
	CalOutcome	outcome;
	long		http_status;	/* 0 when no response arrived */
	bool		request_sent;	/* Cal.com may have acted on it */
	bool		body_over_cap;	/* the response was cut at CAL_BODY_MAX */
	int			attempts;
	int			elapsed_ms;		/* all attempts and waits */
	int			retry_after_ms; /* Cal.com's Retry-After, or -1 */
	char		message[CAL_MESSAGE_MAX];	/* never holds a token */
	CalTokens	tokens;			/* filled when outcome == CAL_OK */
} CalCallResult;

extern void calcom_client_init(void);

/* POST /v2/oauth/{clientId}/refresh with the given refresh token. */
extern void calcom_client_refresh(const CalClientConfig *config,
								  const char *refresh_token,
								  CalCallResult *result);

/* POST /v2/oauth-clients/{clientId}/users/{userId}/force-refresh. */
extern void calcom_client_force_refresh(const CalClientConfig *config,
										long managed_user_id,
										CalCallResult *result);

extern const char *calcom_endpoint_name(CalEndpoint endpoint);

#endif							/* CALCOM_CLIENT_H */
