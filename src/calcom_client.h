/*-------------------------------------------------------------------------
 *
 * calcom_client.h
 *		The two Cal.com calls cal_refresh makes, run concurrently over
 *		libcurl's multi interface.  Knows nothing of tables or settings:
 *		the caller hands it a CalClientConfig.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALCOM_CLIENT_H
#define CALCOM_CLIENT_H

#include "calcom_parse.h"

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
	int			cancel_grace_ms;	/* see calcom_batch_next; 0: none */
} CalClientConfig;

typedef enum CalEndpoint
{
	CAL_ENDPOINT_REFRESH,
	CAL_ENDPOINT_FORCE_REFRESH,
	CAL_ENDPOINT_LIST_USERS		/* cal_refresh_check(): do the credentials work? */
} CalEndpoint;

#define CAL_ENDPOINT_COUNT (CAL_ENDPOINT_LIST_USERS + 1)

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

/* The error_code of cal_token_result for each failed outcome. */
#define CAL_ERR_CALCOM_REJECTED "calcom_rejected"
#define CAL_ERR_CALCOM_UNAVAILABLE "calcom_unavailable"
#define CAL_ERR_NETWORK_ERROR "network_error"
#define CAL_ERR_TIMEOUT "timeout"
#define CAL_ERR_BAD_RESPONSE "bad_response"

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

/*
 * A set of calls run concurrently, at most max_concurrency at a time, each
 * with its own retries within config->timeout_ms (after 429, 5xx, a body
 * that is not JSON, a lost connection or a timeout).  A background batch
 * starts a refresh only when the cluster's request budget has a slot free
 * at once, and its timeout runs from then; an interactive one (a person is
 * waiting), and any force refresh, books the next slot ahead, so it goes
 * before a batch's next user.
 */
typedef struct CalBatch CalBatch;

extern void calcom_client_init(void);

/*
 * Creates a batch in the current memory context.  Whatever happens, its
 * transfers end when that context goes (an error included).  After
 * start_within_ms (-1: no limit) no queued refresh starts any more: those
 * end as timeouts with nothing sent.  Force refreshes, whose users are
 * half way, still start.
 */
extern CalBatch *calcom_batch_create(const CalClientConfig *config,
									 int max_concurrency, bool background,
									 int start_within_ms);

/* Queues POST /v2/oauth/{clientId}/refresh with the given refresh token. */
extern void calcom_batch_add_refresh(CalBatch *batch,
									 const char *refresh_token, void *tag);

/*
 * Queues POST /v2/oauth-clients/{clientId}/users/{userId}/force-refresh,
 * ahead of the refreshes still queued: its user is half way.
 */
extern void calcom_batch_add_force_refresh(CalBatch *batch,
										   long managed_user_id, void *tag);

/*
 * Waits for the next call to finish and returns its result and tag, or
 * NULL once every call has been returned.  The result stays valid until
 * the next call of calcom_batch_next or calcom_batch_end; it is wiped then.
 *
 * A cancel (statement_timeout, termination) raises at once, unless
 * config->cancel_grace_ms is set: then the batch holds it back, starts
 * nothing more (what was not sent comes back as not_started), waits up to
 * that long for the requests on the wire, gives up those still
 * unanswered, and returns what it has; the caller keeps what Cal.com
 * issued and then lets the cancel raise (calcom_batch_cancel_held).
 */
extern const CalCallResult *calcom_batch_next(CalBatch *batch, void **tag);

/*
 * Why a background batch stopped starting calls, or NULL: a run of failed
 * attempts that were the service's trouble.  The calls it did not start
 * come back as not_started; those under way were not retried.
 */
extern const char *calcom_batch_failing(const CalBatch *batch);

/*
 * Did the batch hold a cancel back?  Then interrupts are held too: the
 * caller keeps what it must, then calls RESUME_INTERRUPTS and
 * CHECK_FOR_INTERRUPTS, which raises the cancel.
 */
extern bool calcom_batch_cancel_held(const CalBatch *batch);

/* Ends the batch: stops what still runs, wipes and frees. */
extern void calcom_batch_end(CalBatch *batch);

/*
 * Queues GET /v2/oauth-clients/{clientId}/users?limit=1: the cheapest
 * read-only request that proves Cal.com accepts the client id and secret.
 */
extern void calcom_batch_add_list_users(CalBatch *batch, void *tag);

extern const char *calcom_endpoint_name(CalEndpoint endpoint);
extern const char *calcom_outcome_name(CalOutcome outcome);

#endif							/* CALCOM_CLIENT_H */
