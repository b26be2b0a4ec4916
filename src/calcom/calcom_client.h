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

/* Who waits for a batch: a person, or nobody (the scheduled refresh). */
typedef enum CalBatchKind
{
	CAL_BATCH_INTERACTIVE,		/* books its request slots ahead */
	CAL_BATCH_BACKGROUND		/* polls for slots, stops when Cal.com fails */
} CalBatchKind;

/* A batch whose users may all start, however late. */
#define CAL_BATCH_NO_START_LIMIT (-1)

/* in calcom_client.c */
extern void calcom_client_init(void);
extern CalBatch *calcom_batch_create(const CalClientConfig *config,
									 int max_concurrency, CalBatchKind kind,
									 int start_within_ms);
extern void calcom_batch_add_refresh(CalBatch *batch,
									 const char *refresh_token, void *tag);
extern void calcom_batch_add_force_refresh(CalBatch *batch,
										   long managed_user_id, void *tag);
extern const CalCallResult *calcom_batch_next(CalBatch *batch, void **tag);
extern const CalCallResult *calcom_batch_next_by(CalBatch *batch,
												 int64 until_ms, void **tag);
extern bool calcom_batch_done(const CalBatch *batch);
extern const char *calcom_batch_failing(const CalBatch *batch);
extern CalFlow calcom_batch_flow(const CalBatch *batch);
extern void calcom_batch_end(CalBatch *batch);
extern void calcom_batch_add_list_users(CalBatch *batch, void *tag);

#endif							/* CALCOM_CLIENT_H */
