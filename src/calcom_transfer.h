/*-------------------------------------------------------------------------
 *
 * calcom_transfer.h
 *		One HTTP exchange with Cal.com: the request libcurl sends and what
 *		came back, classified.  calcom_client.c decides when to send and
 *		whether to send again.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALCOM_TRANSFER_H
#define CALCOM_TRANSFER_H

#include <curl/curl.h>

#include "calcom_types.h"

typedef struct CalTransfer CalTransfer;

/*
 * Sets up easy for one request of the endpoint to url within budget_ms:
 * a POST of request_body, or a GET when it is NULL.
 * refresh_token is the one the body carries (or NULL): an error body that
 * quotes it back is not described.
 */
extern CalTransfer *calcom_transfer_create(const CalClientConfig *config,
										   CURL *easy, CalEndpoint endpoint,
										   const char *url,
										   const char *request_body,
										   const char *refresh_token,
										   int budget_ms);

/*
 * Turns the finished (or failed) transfer into *result, overwriting it,
 * and reports what Cal.com said of its rate limit (-1: nothing).
 */
extern void calcom_transfer_classify(const CalClientConfig *config,
									 CalTransfer *transfer, CURLcode code,
									 CalCallResult *result,
									 int *ratelimit_remaining);

/* Wipes the headers (they hold the secret) and the body, and frees. */
extern void calcom_transfer_free(CalTransfer *transfer);

#endif							/* CALCOM_TRANSFER_H */
