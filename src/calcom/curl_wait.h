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

/* in curl_wait.c */
extern CURLMcode curl_wait_attach(CURL *easy);
extern void curl_wait_detach(CURL *easy);
extern CURLMcode curl_wait_run(int64 until_ms, CurlWaitCancel on_cancel);
extern CURL *curl_wait_next_finished(CURLcode *code);
extern int64 curl_wait_now_ms(void);

#endif							/* CURL_WAIT_H */
