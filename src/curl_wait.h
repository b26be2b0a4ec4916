/*-------------------------------------------------------------------------
 *
 * curl_wait.h
 *		The backend's curl multi handle, driven from a WaitEventSet so that
 *		interrupts are served while transfers run.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CURL_WAIT_H
#define CURL_WAIT_H

#include <curl/curl.h>

/* The backend's multi handle, created on first use; it keeps connections. */
extern CURLM *curl_wait_multi(void);

/*
 * Drives the transfers attached to the multi handle until none runs.  An
 * interrupt raises from inside; the caller then detaches its handles and
 * calls curl_wait_reset().
 */
extern CURLMcode curl_wait_run(void);

/* Forgets the wait set and curl's sockets and timer, after a run. */
extern void curl_wait_reset(void);

/* Milliseconds on a monotonic clock. */
extern int64 curl_wait_now_ms(void);

#endif							/* CURL_WAIT_H */
