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

/* Transfers that may run at once (a transfer uses one or two sockets). */
#define CURL_WAIT_MAX_TRANSFERS 128

/* Starts a transfer: attaches the easy handle to the backend's multi. */
extern CURLMcode curl_wait_attach(CURL *easy);

/*
 * Detaches an easy handle, finished or not (mid-transfer, this closes its
 * connection).  When the last one goes, the wait set is released.
 */
extern void curl_wait_detach(CURL *easy);

/*
 * What curl_wait_run does with an interrupt that would end the statement
 * or the session (a cancel, a termination, a lost client, a timeout).
 */
typedef enum CurlWaitCancel
{
	CURL_WAIT_CANCEL_RAISE,		/* CHECK_FOR_INTERRUPTS raises it at once */
	CURL_WAIT_CANCEL_RETURN,	/* held (interrupt_hold.c): return */
	CURL_WAIT_CANCEL_HOLD		/* held: go on waiting */
} CurlWaitCancel;

/*
 * Drives the attached transfers until one of them finishes, until_ms (on
 * curl_wait_now_ms()'s clock; -1: no limit) has come, or curl fails.
 * With nothing attached it just sleeps until until_ms.  Without a hold,
 * interrupts are served through CHECK_FOR_INTERRUPTS; under one, those
 * that end nothing are served and the others wait for its end.
 */
extern CURLMcode curl_wait_run(int64 until_ms, CurlWaitCancel on_cancel);

/*
 * The next finished transfer, with its result code, or NULL.  The handle
 * stays attached until curl_wait_detach.
 */
extern CURL *curl_wait_next_finished(CURLcode *code);

/* Milliseconds on a monotonic clock. */
extern int64 curl_wait_now_ms(void);

#endif							/* CURL_WAIT_H */
