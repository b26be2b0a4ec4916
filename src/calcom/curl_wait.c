/*-------------------------------------------------------------------------
 *
 * curl_wait.c
 *		Waiting on libcurl's transfers the way postgres_fdw waits on a
 *		remote server: in a WaitEventSet with the latch.
 *
 * The backend's one curl multi handle lives here, with every transfer of
 * the backend attached to it, so connections are kept alive between calls
 * and shared by concurrent transfers.  Its socket and timer callbacks
 * record which sockets and which deadline curl needs; the run loop sleeps
 * in a WaitEventSet holding those sockets and the latch, hands readiness
 * back to curl, and calls CHECK_FOR_INTERRUPTS at every wake-up, so a
 * cancel, statement_timeout or pg_terminate_backend takes effect at once;
 * or, when the caller asks for it, leaves a cancel pending so that the
 * answers on their way can still be had (see cal_refresh.cancel_grace).
 * PostgreSQL 15 cannot remove an event from a set, so the set is rebuilt
 * when curl adds or drops a socket; a changed interest in an existing
 * socket is a cheap ModifyWaitEvent.  Knows nothing of Cal.com.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "compat.h"
#include "curl_wait.h"
#include "interrupt_hold.h"

/* Sockets curl may ask us to watch at once: two per transfer, and spare. */
#define CAL_MAX_SOCKETS (2 * CURL_WAIT_MAX_TRANSFERS + 8)

/* Wake up at least this often even if curl set no timer: belt and braces. */
#define CAL_MAX_SLEEP_MS 1000

typedef struct CalWatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN, _OUT or _INOUT */
	int			pos;			/* position in the wait set, or -1 */
} CalWatchedSocket;

static CURLM *wait_multi = NULL;
static int	n_attached = 0;

/* What curl asked us to watch, kept by its callbacks. */
static CalWatchedSocket watched[CAL_MAX_SOCKETS];
static int	n_watched = 0;
static bool sockets_changed = false;	/* added or dropped: rebuild */
static bool interest_changed = false;	/* only what: modify in place */
static bool timer_armed = false;
static int64 timer_due_ms = 0;

static WaitEventSet *cal_wait_set = NULL;

/* Milliseconds on a monotonic clock. */
int64
curl_wait_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32
curl_wait_events_of(int what)
{
	uint32		events = 0;

	if (what & CURL_POLL_IN)
		events |= WL_SOCKET_READABLE;
	if (what & CURL_POLL_OUT)
		events |= WL_SOCKET_WRITEABLE;
	return events;
}

/* curl's socket callback: remember which sockets to wait on, and how. */
static int
curl_wait_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
					void *socketp)
{
	int			i;

	for (i = 0; i < n_watched; i++)
		if (watched[i].fd == fd)
			break;
	if (what == CURL_POLL_REMOVE)
	{
		if (i < n_watched)
		{
			watched[i] = watched[--n_watched];
			sockets_changed = true;
		}
	}
	else if (i < n_watched)
	{
		/* A socket not in the set yet (no interest before) needs a rebuild. */
		if (watched[i].pos < 0 || curl_wait_events_of(what) == 0)
			sockets_changed = true;
		else
			interest_changed = true;
		watched[i].what = what;
	}
	else if (n_watched < CAL_MAX_SOCKETS)
	{
		watched[n_watched].fd = fd;
		watched[n_watched].what = what;
		watched[n_watched].pos = -1;
		n_watched++;
		sockets_changed = true;
	}
	else
		return -1;				/* curl fails the transfer */
	return 0;
}

/* curl's timer callback: -1 disarms, otherwise "call me back in N ms". */
static int
curl_wait_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	timer_armed = timeout_ms >= 0;
	timer_due_ms = curl_wait_now_ms() + (timer_armed ? timeout_ms : 0);
	return 0;
}

static CURLM *
curl_wait_multi(void)
{
	if (wait_multi == NULL)
	{
		wait_multi = curl_multi_init();
		if (wait_multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("curl_multi_init() failed.")));
		curl_multi_setopt(wait_multi, CURLMOPT_SOCKETFUNCTION,
						  curl_wait_socket_cb);
		curl_multi_setopt(wait_multi, CURLMOPT_TIMERFUNCTION,
						  curl_wait_timer_cb);
	}
	return wait_multi;
}

static void
curl_wait_release_set(void)
{
	if (cal_wait_set != NULL)
		FreeWaitEventSet(cal_wait_set);
	cal_wait_set = NULL;
}

static void
curl_wait_rebuild_set(void)
{
	MemoryContext oldcxt;
	int			i;

	curl_wait_release_set();
	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	cal_wait_set = cal_create_wait_event_set(n_watched + 2);
	MemoryContextSwitchTo(oldcxt);

	AddWaitEventToSet(cal_wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch,
					  NULL);
	AddWaitEventToSet(cal_wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET,
					  NULL, NULL);
	for (i = 0; i < n_watched; i++)
	{
		uint32		events = curl_wait_events_of(watched[i].what);

		watched[i].pos = events == 0 ? -1 :
			AddWaitEventToSet(cal_wait_set, events, watched[i].fd, NULL, NULL);
	}
	sockets_changed = false;
	interest_changed = false;
}

/* Brings the wait set in line with what curl asked for. */
static void
curl_wait_update_set(void)
{
	int			i;

	if (cal_wait_set == NULL || sockets_changed)
		curl_wait_rebuild_set();
	else if (interest_changed)
	{
		for (i = 0; i < n_watched; i++)
			ModifyWaitEvent(cal_wait_set, watched[i].pos,
							curl_wait_events_of(watched[i].what), NULL);
		interest_changed = false;
	}
}

/* Starts a transfer: attaches the easy handle to the backend's multi. */
CURLMcode
curl_wait_attach(CURL *easy)
{
	CURLMcode	mc = curl_multi_add_handle(curl_wait_multi(), easy);

	if (mc == CURLM_OK)
		n_attached++;
	return mc;
}

/*
 * Detaches an easy handle, finished or not (mid-transfer, this closes its
 * connection).  When the last one goes, the wait set is released.
 */
void
curl_wait_detach(CURL *easy)
{
	if (wait_multi == NULL ||
		curl_multi_remove_handle(wait_multi, easy) != CURLM_OK)
		return;
	if (--n_attached > 0)
		return;
	/* Nothing runs: forget the sockets of connections now idle. */
	curl_wait_release_set();
	n_watched = 0;
	sockets_changed = false;
	interest_changed = false;
	timer_armed = false;
}

/*
 * Serves interrupts as on_cancel says; true when the wait is to end (an
 * interrupt that ends the statement or the session arrived under a hold,
 * and the caller wants it back).  Under a hold, the others are served.
 */
static bool
curl_wait_interrupts(CurlWaitCancel on_cancel)
{
	if (on_cancel == CURL_WAIT_CANCEL_RAISE)
	{
		CHECK_FOR_INTERRUPTS();
		return false;
	}
	if (interrupt_hold_ending_pending())
		return on_cancel == CURL_WAIT_CANCEL_RETURN;
	interrupt_hold_serve_others();
	return false;
}

/* Sleeps on the latch alone until until_ms, for a wait with no transfer. */
static void
curl_wait_sleep_until(int64 until_ms, CurlWaitCancel on_cancel)
{
	int64		left;

	while ((left = until_ms - curl_wait_now_ms()) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) Min(left, CAL_MAX_SLEEP_MS), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (curl_wait_interrupts(on_cancel))
			return;
	}
}

/*
 * Drives the attached transfers until one of them finishes, until_ms (on
 * curl_wait_now_ms()'s clock; -1: no limit) has come, or curl fails.
 * With nothing attached it just sleeps until until_ms.  Without a hold,
 * interrupts are served through CHECK_FOR_INTERRUPTS; under one, those
 * that end nothing are served and the others wait for its end.
 */
CURLMcode
curl_wait_run(int64 until_ms, CurlWaitCancel on_cancel)
{
	int			running = 0;
	CURLMcode	mc;

	if (n_attached == 0)
	{
		if (until_ms >= 0)
			curl_wait_sleep_until(until_ms, on_cancel);
		return CURLM_OK;
	}

	/* Kick transfers attached since the last run. */
	mc = curl_multi_socket_action(wait_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	while (mc == CURLM_OK && running == n_attached)
	{
		WaitEvent	events[CAL_MAX_SOCKETS + 2];
		int64		now = curl_wait_now_ms();
		long		sleep_ms = CAL_MAX_SLEEP_MS;
		int			n;
		int			i;

		if (until_ms >= 0)
		{
			if (now >= until_ms)
				break;
			sleep_ms = Min(sleep_ms, until_ms - now);
		}
		if (timer_armed)
			sleep_ms = Min(sleep_ms, Max(timer_due_ms - now, 0));
		curl_wait_update_set();

		n = WaitEventSetWait(cal_wait_set, sleep_ms, events, lengthof(events),
							 PG_WAIT_EXTENSION);
		for (i = 0; i < n && mc == CURLM_OK; i++)
		{
			int			mask = 0;

			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				continue;
			}
			if (events[i].events & WL_SOCKET_READABLE)
				mask |= CURL_CSELECT_IN;
			if (events[i].events & WL_SOCKET_WRITEABLE)
				mask |= CURL_CSELECT_OUT;
			if (mask != 0)
				mc = curl_multi_socket_action(wait_multi, events[i].fd, mask,
											  &running);
		}
		if (curl_wait_interrupts(on_cancel))
			break;

		if (mc == CURLM_OK && running == n_attached &&
			(n == 0 || (timer_armed && timer_due_ms <= curl_wait_now_ms())))
		{
			timer_armed = false;
			mc = curl_multi_socket_action(wait_multi, CURL_SOCKET_TIMEOUT, 0,
										  &running);
		}
	}
	return mc;
}

/*
 * The next finished transfer, with its result code, or NULL.  The handle
 * stays attached until curl_wait_detach.
 */
CURL *
curl_wait_next_finished(CURLcode *code)
{
	CURLMsg    *msg;
	int			pending;

	if (wait_multi == NULL)
		return NULL;
	while ((msg = curl_multi_info_read(wait_multi, &pending)) != NULL)
	{
		if (msg->msg == CURLMSG_DONE)
		{
			*code = msg->data.result;
			return msg->easy_handle;
		}
	}
	return NULL;
}
