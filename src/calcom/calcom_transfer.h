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

/* in calcom_transfer.c */
extern CalTransfer *calcom_transfer_create(const CalClientConfig *config,
										   CURL *easy, CalEndpoint endpoint,
										   const char *url,
										   const char *request_body,
										   const char *refresh_token,
										   int budget_ms);
extern void calcom_transfer_classify(const CalClientConfig *config,
									 CalTransfer *transfer, CURLcode code,
									 CalCallResult *result,
									 int *ratelimit_remaining);
extern void calcom_transfer_free(CalTransfer *transfer);

#endif							/* CALCOM_TRANSFER_H */
