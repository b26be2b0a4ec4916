/*-------------------------------------------------------------------------
 *
 * curl_wait.c
 *		Waiting on libcurl's transfers the way postgres_fdw waits on a
 *		remote server: in a WaitEventSet with the latch.
 *
 * The backend's one curl multi handle lives here.  Its socket and timer
 * callbacks record which sockets and which deadline curl needs; the run
 * loop sleeps in a WaitEventSet holding those sockets and the latch, hands
 * readiness back to curl, and calls CHECK_FOR_INTERRUPTS at every wake-up,
 * so a cancel, statement_timeout or pg_terminate_backend takes effect at
 * once.  PostgreSQL 15 cannot remove an event from a set, so the set is
 * rebuilt whenever curl's sockets change.  Knows nothing of Cal.com.
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

/* Sockets curl may ask us to watch at once (a transfer uses one or two). */
#define CAL_MAX_SOCKETS 64

/* Wake up at least this often even if curl set no timer: belt and braces. */
#define CAL_MAX_SLEEP_MS 1000

typedef struct CalWatchedSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN, _OUT or _INOUT */
} CalWatchedSocket;

static CURLM *wait_multi = NULL;

/* What curl asked us to watch, kept by its callbacks. */
static CalWatchedSocket watched[CAL_MAX_SOCKETS];
static int	n_watched = 0;
static bool watched_changed = false;
static bool timer_armed = false;
static int64 timer_due_ms = 0;

/* Rebuilt whenever curl's sockets change: PG15 cannot remove an event. */
static WaitEventSet *cal_wait_set = NULL;

int64
curl_wait_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
			watched[i] = watched[--n_watched];
	}
	else if (i < n_watched)
		watched[i].what = what;
	else if (n_watched < CAL_MAX_SOCKETS)
	{
		watched[n_watched].fd = fd;
		watched[n_watched].what = what;
		n_watched++;
	}
	else
		return -1;				/* curl fails the transfer */
	watched_changed = true;
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

CURLM *
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
		uint32		events = 0;

		if (watched[i].what & CURL_POLL_IN)
			events |= WL_SOCKET_READABLE;
		if (watched[i].what & CURL_POLL_OUT)
			events |= WL_SOCKET_WRITEABLE;
		AddWaitEventToSet(cal_wait_set, events, watched[i].fd, NULL, NULL);
	}
	watched_changed = false;
}

/*
 * Drives the transfers attached to the multi handle until none is running.
 * Sleeps in the wait set; any interrupt raises here, through
 * CHECK_FOR_INTERRUPTS, with the caller's PG_FINALLY cleaning up.
 */
CURLMcode
curl_wait_run(void)
{
	int			running = 0;
	CURLMcode	mc;

	mc = curl_multi_socket_action(wait_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	while (mc == CURLM_OK && running > 0)
	{
		WaitEvent	events[CAL_MAX_SOCKETS + 2];
		long		sleep_ms = CAL_MAX_SLEEP_MS;
		int			n;
		int			i;

		if (cal_wait_set == NULL || watched_changed)
			curl_wait_rebuild_set();
		if (timer_armed)
			sleep_ms = Min(sleep_ms, Max(timer_due_ms - curl_wait_now_ms(), 0));

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
		CHECK_FOR_INTERRUPTS();

		if (mc == CURLM_OK && running > 0 &&
			(n == 0 || (timer_armed && timer_due_ms <= curl_wait_now_ms())))
		{
			timer_armed = false;
			mc = curl_multi_socket_action(wait_multi, CURL_SOCKET_TIMEOUT, 0,
										  &running);
		}
	}
	return mc;
}

void
curl_wait_reset(void)
{
	curl_wait_release_set();
	n_watched = 0;
	timer_armed = false;
}
