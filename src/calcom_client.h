/*-------------------------------------------------------------------------
 *
 * calcom_client.h
 *		The Cal.com calls cal_refresh makes (calcom_endpoint.c describes
 *		them), run concurrently over libcurl's multi interface.  Knows nothing of tables or settings:
 *		the caller hands it a CalClientConfig.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALCOM_CLIENT_H
#define CALCOM_CLIENT_H

#include "calcom_types.h"

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

/*
 * Queues the flow's refresh of the given refresh token: POST
 * /v2/oauth/{clientId}/refresh, or the OAuth2 token endpoint.
 */
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
 * A cancel (statement_timeout, termination) raises at once, unless the
 * caller holds interrupts (interrupt_hold.c): then an interrupt that would
 * end the statement or the session makes the batch start nothing more
 * (what was not sent comes back as not_started), wait up to
 * config->cancel_grace_ms for the requests on the wire, give up those
 * still unanswered, and return what it has; the caller hands what Cal.com
 * issued over, then ends its hold, where the interrupt takes effect.
 */
extern const CalCallResult *calcom_batch_next(CalBatch *batch, void **tag);
extern const CalCallResult *calcom_batch_next_by(CalBatch *batch,
												 int64 until_ms, void **tag);
extern bool calcom_batch_done(const CalBatch *batch);

/*
 * Why a background batch stopped starting calls, or NULL: a run of failed
 * attempts that were the service's trouble.  The calls it did not start
 * come back as not_started; those under way were not retried.
 */
extern const char *calcom_batch_failing(const CalBatch *batch);

/* The flow the batch's configuration names. */
extern CalFlow calcom_batch_flow(const CalBatch *batch);

/* Ends the batch: stops what still runs, wipes and frees. */
extern void calcom_batch_end(CalBatch *batch);

/*
 * Queues GET /v2/oauth-clients/{clientId}/users?limit=1: the cheapest
 * read-only request that proves Cal.com accepts the client id and secret.
 */
extern void calcom_batch_add_list_users(CalBatch *batch, void *tag);


#endif							/* CALCOM_CLIENT_H */
