/*-------------------------------------------------------------------------
 *
 * calcom_client.c
 *		Cal.com's refresh and force-refresh calls, many at once.
 *
 * A batch holds calls; each call is one endpoint's request with its
 * retries, all within cal_refresh.timeout.  At most max_concurrency calls
 * are under way at once; their transfers run side by side on the
 * backend's multi handle (curl_wait.c), so a cancel, statement_timeout or
 * pg_terminate_backend interrupts all of them at once.  A single user's
 * refresh is a batch of one.
 *
 * Every request first takes a slot of the cluster's request budget
 * (rate_limit.c).  An interactive batch books the next slot and waits for
 * it; a background batch starts a user's refresh only with a slot that is
 * free now, and polls, so a person's call books ahead of any batch.  That
 * refresh's timeout runs from its first slot, so a busy budget delays a
 * batch without failing its users; the batch's own limit
 * (start_within_ms) is when it stops starting them.  A force refresh books
 * ahead even in a batch: its user is half way, and its row locked.
 *
 * Easy handles are created per batch and connections stay in the multi
 * handle, kept alive between calls and batches.  When the batch's memory
 * goes, normally or through an error, a reset callback detaches what
 * still runs and wipes what carried a token.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "calcom_client.h"
#include "calcom_transfer.h"
#include "compat.h"
#include "curl_wait.h"
#include "interrupt_hold.h"
#include "rate_limit.h"
#include "stats.h"

/* First retry waits about this long; each further one twice as long. */
#define CAL_RETRY_BASE_MS 250

/*
 * A background batch that sees this many failed attempts of the service's
 * in a row (or twice its concurrency, if fewer) stops: Cal.com is down,
 * and sending more only adds to its load.
 */
#define CAL_BREAKER_FAILURES 5

typedef enum CalCallState
{
	CAL_CALL_QUEUED,			/* not started */
	CAL_CALL_WAITING,			/* started; next attempt at wake_ms */
	CAL_CALL_RUNNING,			/* an attempt is on the wire */
	CAL_CALL_DONE				/* finished, not yet returned */
} CalCallState;

/* One endpoint's call: its attempts, retries and the waits between. */
typedef struct CalCall CalCall;

/* Calls in order: taken from head, added at tail. */
typedef struct CalCallQueue
{
	CalCall   **items;
	int			head;
	int			tail;
	int			capacity;
} CalCallQueue;

struct CalCall
{
	CalBatch   *batch;
	CalEndpoint endpoint;
	void	   *tag;
	char	   *url;
	char	   *request_body;	/* wiped when the call ends */
	bool		http_get;		/* a GET, without a body */
	const char *refresh_token;	/* the one in the body, if any */
	CalCallState state;
	int			attempts;		/* started so far */
	int64		started_ms;
	int64		deadline_ms;
	int64		wake_ms;		/* CAL_CALL_WAITING: next attempt */
	bool		books_ahead;	/* waits for a booked slot, or polls */
	bool		slot_reserved;	/* a request slot is ours at wake_ms */
	int64		slot_us;		/* ... that is, at this rate_limit time */
	int64		slot_asked_us;	/* first asked for it then; 0: not yet */
	CURL	   *easy;			/* CAL_CALL_RUNNING */
	CalTransfer *transfer;		/* CAL_CALL_RUNNING */
	bool		attached;		/* easy is on the multi handle */
	CalCallResult *result;		/* once started; wiped when returned */
};

struct CalBatch
{
	CalClientConfig config;
	int			max_concurrency;
	bool		background;
	int64		start_by_ms;	/* no queued call starts after; -1: none */
	int			breaker_limit;	/* service failures in a row that stop it */
	int			service_failures;	/* failed attempts in a row, the
									 * service's fault */
	char	   *failing;		/* once stopped: why Cal.com is failing */
	int64		cancel_by_ms;	/* a cancel is held until then; -1: none */
	MemoryContext context;
	MemoryContextCallback cleanup;
	char	   *base_url;
	CalCallQueue urgent;		/* force refreshes, started first */
	CalCallQueue queued;
	CalCall    *active[CURL_WAIT_MAX_TRANSFERS];	/* waiting or running */
	int			n_active;
	CalCallQueue done;
	CalCall    *returned;		/* last handed out by calcom_batch_next */
	CURL	   *idle_easy[CURL_WAIT_MAX_TRANSFERS];
	int			n_idle_easy;
};

static bool
calcom_queue_is_empty(const CalCallQueue *queue)
{
	return queue->head == queue->tail;
}

/* Appends, in the batch's memory; a drained queue starts over. */
static void
calcom_queue_push(CalBatch *batch, CalCallQueue *queue, CalCall *call)
{
	if (calcom_queue_is_empty(queue))
		queue->head = queue->tail = 0;
	if (queue->tail == queue->capacity)
	{
		queue->capacity = Max(16, queue->capacity * 2);
		queue->items = queue->items == NULL ?
			MemoryContextAlloc(batch->context,
							   sizeof(CalCall *) * queue->capacity) :
			repalloc(queue->items, sizeof(CalCall *) * queue->capacity);
	}
	queue->items[queue->tail++] = call;
}

static CalCall *
calcom_queue_pop(CalCallQueue *queue)
{
	return queue->items[queue->head++];
}

/* Once per process: libcurl's global state (TLS, resolver). */
void
calcom_client_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
}

/*
 * Stops a running attempt (closing its connection), frees its transfer
 * and gives its easy handle back; also after an attempt that failed to
 * start half way.
 */
static void
calcom_call_drop_transfer(CalCall *call)
{
	CalBatch   *batch = call->batch;

	if (call->attached)
		curl_wait_detach(call->easy);
	call->attached = false;
	if (call->transfer != NULL)
		calcom_transfer_free(call->transfer);
	call->transfer = NULL;
	if (call->easy != NULL)
		batch->idle_easy[batch->n_idle_easy++] = call->easy;
	call->easy = NULL;
}

static void
calcom_call_wipe(CalCall *call)
{
	explicit_bzero(call->request_body, strlen(call->request_body));
	if (call->result != NULL)
		explicit_bzero(call->result, sizeof(CalCallResult));
}

/* A slot booked for an attempt that will not be sent goes back. */
static void
calcom_call_release_slot(CalCall *call)
{
	if (call->slot_reserved)
		rate_limit_release(call->batch->config.max_requests_per_minute,
						   call->slot_us);
	call->slot_reserved = false;
}

/* A call whose result the caller has had: wiped and freed. */
static void
calcom_call_free(CalCall *call)
{
	calcom_call_wipe(call);
	if (call->result != NULL)
		pfree(call->result);
	pfree(call->request_body);
	pfree(call->url);
	pfree(call);
}

/*
 * The batch's memory is going: stop every transfer still running (an
 * error escaped, or the caller ended early), wipe and release.
 */
static void
calcom_batch_cleanup(void *arg)
{
	CalBatch   *batch = (CalBatch *) arg;
	CalCallQueue *queues[3] = {&batch->urgent, &batch->queued, &batch->done};
	size_t		q;
	int			i;

	for (i = 0; i < batch->n_active; i++)
	{
		calcom_call_release_slot(batch->active[i]);
		calcom_call_drop_transfer(batch->active[i]);
		calcom_call_wipe(batch->active[i]);
	}
	for (q = 0; q < lengthof(queues); q++)
		for (i = queues[q]->head; i < queues[q]->tail; i++)
			calcom_call_wipe(queues[q]->items[i]);
	if (batch->returned != NULL)
		calcom_call_wipe(batch->returned);
	while (batch->n_idle_easy > 0)
		curl_easy_cleanup(batch->idle_easy[--batch->n_idle_easy]);
}

/*
 * Creates a batch in the current memory context.  Whatever happens, its
 * transfers end when that context goes (an error included).  After
 * start_within_ms (CAL_BATCH_NO_START_LIMIT: none) no queued refresh
 * starts any more: those
 * end as timeouts with nothing sent.  Force refreshes, whose users are
 * half way, still start.
 */
CalBatch *
calcom_batch_create(const CalClientConfig *config, int max_concurrency,
					CalBatchKind kind, int start_within_ms)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "cal_refresh batch",
												  ALLOCSET_DEFAULT_SIZES);
	CalBatch   *batch = MemoryContextAllocZero(context, sizeof(CalBatch));
	size_t		len;

	batch->config = *config;
	batch->max_concurrency = Max(1, Min(max_concurrency,
										CURL_WAIT_MAX_TRANSFERS));
	batch->background = kind == CAL_BATCH_BACKGROUND;
	batch->start_by_ms = start_within_ms < 0 ? -1 :
		curl_wait_now_ms() + start_within_ms;
	batch->breaker_limit = Min(CAL_BREAKER_FAILURES,
							   2 * batch->max_concurrency);
	batch->cancel_by_ms = -1;
	batch->context = context;
	batch->base_url = MemoryContextStrdup(context, config->api_url);
	len = strlen(batch->base_url);
	while (len > 0 && batch->base_url[len - 1] == '/')
		batch->base_url[--len] = '\0';
	batch->cleanup.func = calcom_batch_cleanup;
	batch->cleanup.arg = batch;
	MemoryContextRegisterResetCallback(context, &batch->cleanup);
	return batch;
}

/* Ends the batch: stops what still runs, wipes and frees. */
void
calcom_batch_end(CalBatch *batch)
{
	MemoryContextDelete(batch->context);
}

static CalCall *
calcom_batch_new_call(CalBatch *batch, CalEndpoint endpoint, void *tag)
{
	CalCall    *call = MemoryContextAllocZero(batch->context, sizeof(CalCall));

	call->batch = batch;
	call->endpoint = endpoint;
	call->tag = tag;
	call->state = CAL_CALL_QUEUED;
	return call;
}

/*
 * Queues a call of the endpoint (refresh_token and user_id as it needs):
 * those that book ahead go first, their users being half way or a person
 * waiting for them.
 */
static void
calcom_batch_add_call(CalBatch *batch, CalEndpoint endpoint,
					  const char *refresh_token, long user_id, void *tag)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(batch->context);
	const CalEndpointDesc *desc = calcom_endpoint(endpoint);
	CalCall    *call = calcom_batch_new_call(batch, endpoint, tag);
	char	   *body = calcom_endpoint_body(desc, &batch->config, refresh_token);

	call->http_get = body == NULL;
	call->request_body = body != NULL ? body : pstrdup("");
	call->refresh_token = refresh_token;
	call->url = calcom_endpoint_url(desc, batch->base_url,
									batch->config.client_id, user_id);
	calcom_queue_push(batch, desc->books_ahead ? &batch->urgent : &batch->queued,
					  call);
	MemoryContextSwitchTo(oldcxt);
}

/* The flow the batch's configuration names. */
CalFlow
calcom_batch_flow(const CalBatch *batch)
{
	return batch->config.flow;
}

/*
 * Queues the flow's refresh of the given refresh token: POST
 * /v2/oauth/{clientId}/refresh, or the OAuth2 token endpoint.
 */
void
calcom_batch_add_refresh(CalBatch *batch, const char *refresh_token, void *tag)
{
	calcom_batch_add_call(batch, calcom_flow(batch->config.flow)->refresh,
						  refresh_token, 0, tag);
}

/*
 * Queues POST /v2/oauth-clients/{clientId}/users/{userId}/force-refresh,
 * ahead of the refreshes still queued: its user is half way.
 */
void
calcom_batch_add_force_refresh(CalBatch *batch, long managed_user_id,
							   void *tag)
{
	Assert(calcom_flow(batch->config.flow)->has_force_refresh);
	calcom_batch_add_call(batch, CAL_ENDPOINT_FORCE_REFRESH, NULL,
						  managed_user_id, tag);
	if (batch->config.track_stats)
		stats_count_force_refresh();
}

/*
 * Queues GET /v2/oauth-clients/{clientId}/users?limit=1: the cheapest
 * read-only request that proves Cal.com accepts the client id and secret.
 */
void
calcom_batch_add_list_users(CalBatch *batch, void *tag)
{
	calcom_batch_add_call(batch, CAL_ENDPOINT_LIST_USERS, NULL, 0, tag);
}

/* The least time worth starting an attempt with. */
static int
calcom_batch_min_attempt_ms(const CalBatch *batch)
{
	return Min(batch->config.connect_timeout_ms, batch->config.timeout_ms / 2);
}

/* Jittered exponential backoff: base * 2^attempt, times 0.5 to 1.5. */
static int
calcom_call_backoff_ms(int attempt)
{
	double		base = (double) CAL_RETRY_BASE_MS * (1 << Min(attempt, 10));

	return (int) (base * (0.5 + pg_prng_double(&pg_global_prng_state)));
}

/* Appends a note in parentheses to the call's message. */
static void
calcom_call_note(CalCall *call, const char *note)
{
	size_t		used = strlen(call->result->message);

	snprintf(call->result->message + used, CAL_MESSAGE_MAX - used, " (%s)",
			 note);
}

static void
calcom_call_finish(CalCall *call, int64 now_ms)
{
	CalBatch   *batch = call->batch;
	int			i;

	calcom_call_release_slot(call);
	call->result->attempts = call->attempts;
	call->result->elapsed_ms = (int) (now_ms - call->started_ms);
	explicit_bzero(call->request_body, strlen(call->request_body));
	call->state = CAL_CALL_DONE;
	for (i = 0; i < batch->n_active; i++)
		if (batch->active[i] == call)
			break;
	batch->active[i] = batch->active[--batch->n_active];
	calcom_queue_push(batch, &batch->done, call);
}

/*
 * No request slot before the call's deadline.  After a failed attempt,
 * that attempt's outcome stands, with a note; before any, it is a timeout
 * with nothing sent.
 */
static void
calcom_call_no_slot(CalCall *call, int64 now_ms)
{
	CalCallResult *result = call->result;

	if (call->attempts == 0)
	{
		result->outcome = CAL_TIMEOUT;
		snprintf(result->message, CAL_MESSAGE_MAX,
				 "no request slot within cal_refresh.timeout "
				 "(cal_refresh.max_requests_per_minute = %d)",
				 call->batch->config.max_requests_per_minute);
	}
	else
		calcom_call_note(call, "no retry: no request slot within cal_refresh.timeout");
	calcom_call_finish(call, now_ms);
}

/* The call's wait for a request slot ended: counted, for cal_refresh_stats. */
static void
calcom_call_count_slot_wait(CalCall *call)
{
	if (call->slot_asked_us > 0)
		if (call->batch->config.track_stats)
			stats_count_slot_wait(rate_limit_now_us() - call->slot_asked_us);
	call->slot_asked_us = 0;
}

/*
 * Tries to take a request slot for the call's next attempt, with room for
 * the attempt before its deadline.  Returns true when the slot is free
 * now; otherwise sets wake_ms, or finishes the call when no slot can come
 * in time.
 */
static bool
calcom_call_take_slot(CalCall *call, int64 now_ms)
{
	CalBatch   *batch = call->batch;
	int			per_minute = batch->config.max_requests_per_minute;
	int64		latest_us = (call->deadline_ms -
							 calcom_batch_min_attempt_ms(batch)) * 1000;
	int64		earliest_us;
	int64		wait_us = 0;

	if (call->slot_asked_us == 0)
		call->slot_asked_us = rate_limit_now_us();
	if (!call->slot_reserved)
		wait_us = rate_limit_reserve(per_minute,
									 call->books_ahead ? latest_us : now_ms * 1000,
									 &earliest_us);
	if (call->slot_reserved || wait_us == 0)
	{
		calcom_call_count_slot_wait(call);
		return true;
	}
	if (wait_us > 0)
	{
		/* Booked ahead (interactive): the slot is ours when it comes. */
		call->slot_reserved = true;
		call->slot_us = rate_limit_now_us() + wait_us;
		call->wake_ms = now_ms + (wait_us + 999) / 1000;
	}
	else if (earliest_us > latest_us)
	{
		calcom_call_count_slot_wait(call);
		calcom_call_no_slot(call, now_ms);
	}
	else
		call->wake_ms = (earliest_us + 999) / 1000;	/* poll again then */
	return false;
}

/* Sends the call's next attempt. */
static void
calcom_call_start_attempt(CalCall *call, int64 now_ms)
{
	CalBatch   *batch = call->batch;
	MemoryContext oldcxt = MemoryContextSwitchTo(batch->context);
	CURLMcode	mc;

	call->slot_reserved = false;
	if (batch->n_idle_easy > 0)
		call->easy = batch->idle_easy[--batch->n_idle_easy];
	else if ((call->easy = curl_easy_init()) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("curl_easy_init() failed.")));
	call->transfer = calcom_transfer_create(&batch->config, call->easy,
											call->endpoint, call->url,
											call->http_get ? NULL : call->request_body,
											call->refresh_token,
											(int) Max(call->deadline_ms - now_ms, 1));
	curl_easy_setopt(call->easy, CURLOPT_PRIVATE, call);
	call->attempts++;
	call->state = CAL_CALL_RUNNING;
	mc = curl_wait_attach(call->easy);
	call->attached = mc == CURLM_OK;
	if (!call->attached)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not start a request to Cal.com"),
				 errdetail("libcurl: %s", curl_multi_strerror(mc))));
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Is this failed attempt the service's trouble (429, 5xx, a body that is
 * not JSON, a lost connection, a timeout) rather than an answer?  Such an
 * attempt may be repeated: force refresh yields the same outcome however
 * often it is sent, and re-sending a refresh token Cal.com may have spent
 * only earns a 400, which the fallback then handles, far cheaper than
 * voiding every token of the user at once.
 */
static bool
calcom_is_service_failure(const CalCallResult *result)
{
	return result->outcome != CAL_OK &&
		cal_error(calcom_call_error(result))->service_failure;
}

/*
 * Counts a background batch's failed attempts of the service's in a row;
 * at breaker_limit the batch stops (see calcom_batch_advance).
 */
static void
calcom_batch_count_failure(CalBatch *batch, const CalCallResult *result)
{
	if (!batch->background || batch->failing != NULL)
		return;
	if (!calcom_is_service_failure(result))
	{
		batch->service_failures = 0;
		return;
	}
	if (++batch->service_failures >= batch->breaker_limit)
		batch->failing = MemoryContextStrdup(batch->context,
											 psprintf("%d failed requests in a row, the last %s",
													  batch->service_failures,
													  result->message));
}

/* An attempt ended: classify it, then retry or finish the call. */
static void
calcom_call_attempt_done(CalCall *call, CURLcode code)
{
	CalBatch   *batch = call->batch;
	CalCallResult *result = call->result;
	int			remaining;
	int			delay_ms;
	int64		now_ms;
	curl_off_t	attempt_us = 0;

	calcom_transfer_classify(&batch->config, call->transfer, code, result,
							 &remaining);
	curl_easy_getinfo(call->easy, CURLINFO_TOTAL_TIME_T, &attempt_us);
	if (batch->config.track_stats)
		stats_count_request(call->endpoint, result->outcome, (int64) attempt_us,
							call->attempts > 1, result->http_status == 429);
	calcom_call_drop_transfer(call);
	rate_limit_feedback(batch->config.max_requests_per_minute,
						result->http_status == 429, result->retry_after_ms,
						remaining);
	calcom_batch_count_failure(batch, result);
	now_ms = curl_wait_now_ms();
	if (result->outcome == CAL_OK ||
		call->attempts > batch->config.max_retries ||
		!calcom_is_service_failure(result) || batch->failing != NULL ||
		(result->request_sent && !calcom_endpoint(call->endpoint)->resend_safe))
	{
		calcom_call_finish(call, now_ms);
		return;
	}
	delay_ms = result->retry_after_ms >= 0 ? result->retry_after_ms :
		calcom_call_backoff_ms(call->attempts - 1);
	if (now_ms + delay_ms >= call->deadline_ms)
	{
		char		note[CAL_MESSAGE_MAX];

		snprintf(note, sizeof(note),
				 "no retry: waiting %d ms would pass cal_refresh.timeout",
				 delay_ms);
		calcom_call_note(call, note);
		calcom_call_finish(call, now_ms);
		return;
	}
	ereport(DEBUG1,
			(errmsg_internal("cal_refresh: %s attempt %d failed (%s); retrying in %d ms",
							 calcom_endpoint_name(result->endpoint),
							 call->attempts, result->message, delay_ms)));
	call->state = CAL_CALL_WAITING;
	call->wake_ms = now_ms + delay_ms;
}

/*
 * Hands every finished transfer to its call, whichever batch it belongs
 * to: a batch started from within another (a trigger on the table) drives
 * the outer batch's transfers too.
 */
static void
calcom_collect_finished(void)
{
	CURL	   *easy;
	CURLcode	code;

	while ((easy = curl_wait_next_finished(&code)) != NULL)
	{
		char	   *private = NULL;
		CalCall    *call;

		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private);
		call = (CalCall *) private;
		if (call == NULL || call->easy != easy)
			elog(ERROR, "finished transfer without its call");
		calcom_call_attempt_done(call, code);
	}
}

/* A call leaves the queue: its deadline starts, and its result exists. */
static void
calcom_call_start(CalBatch *batch, CalCall *call, int64 now_ms)
{
	call->started_ms = now_ms;
	call->deadline_ms = now_ms + batch->config.timeout_ms;
	call->wake_ms = now_ms;
	/* Results are big (tokens): only started calls have one. */
	call->result = MemoryContextAllocZero(batch->context,
										  sizeof(CalCallResult));
	call->result->endpoint = call->endpoint;
	call->result->retry_after_ms = -1;
	call->state = CAL_CALL_WAITING;
}

/*
 * A queued call the batch no longer starts, nothing sent: its time ran out
 * (a timeout), or Cal.com is failing.
 */
static void
calcom_call_not_started(CalBatch *batch, CalCall *call, int64 now_ms)
{
	calcom_call_start(batch, call, now_ms);
	call->result->not_started = true;
	if (batch->cancel_by_ms >= 0)
	{
		call->result->outcome = CAL_TIMEOUT;
		snprintf(call->result->message, CAL_MESSAGE_MAX,
				 "not sent: the statement was cancelled");
	}
	else if (batch->failing != NULL)
	{
		call->result->outcome = CAL_UNAVAILABLE;
		snprintf(call->result->message, CAL_MESSAGE_MAX,
				 "not sent: Cal.com is failing (%s)", batch->failing);
	}
	else
	{
		call->result->outcome = CAL_TIMEOUT;
		snprintf(call->result->message, CAL_MESSAGE_MAX,
				 "not sent: the job's time (cal_refresh.job_max_runtime) ran "
				 "out before this user's turn");
	}
	explicit_bzero(call->request_body, strlen(call->request_body));
	call->state = CAL_CALL_DONE;
	calcom_queue_push(batch, &batch->done, call);
}

/*
 * A cancel held back: nothing more starts, no retry is sent, and the
 * requests on the wire get until cancel_by_ms to answer.  Returns when
 * the loop must next wake up.
 */
static int64
calcom_batch_wind_down(CalBatch *batch, int64 now_ms)
{
	CalCallQueue *queues[2] = {&batch->urgent, &batch->queued};
	size_t		q;
	int			i;

	for (q = 0; q < lengthof(queues); q++)
		while (!calcom_queue_is_empty(queues[q]))
			calcom_call_not_started(batch, calcom_queue_pop(queues[q]), now_ms);
	/* Backwards: a call that finishes leaves this array. */
	for (i = batch->n_active - 1; i >= 0; i--)
	{
		CalCall    *call = batch->active[i];

		if (call->state == CAL_CALL_WAITING)
		{
			if (call->attempts == 0)
			{
				call->result->outcome = CAL_TIMEOUT;
				snprintf(call->result->message, CAL_MESSAGE_MAX,
						 "not sent: the statement was cancelled");
				call->result->not_started = true;
			}
			else
				calcom_call_note(call, "no retry: the statement was cancelled");
			calcom_call_finish(call, now_ms);
		}
		else if (call->state == CAL_CALL_RUNNING && now_ms >= batch->cancel_by_ms)
		{
			calcom_call_drop_transfer(call);
			call->result->outcome = CAL_TIMEOUT;
			call->result->request_sent = true;
			snprintf(call->result->message, CAL_MESSAGE_MAX,
					 "cancelled: no answer within cal_refresh.cancel_grace");
			calcom_call_finish(call, now_ms);
		}
	}
	return batch->cancel_by_ms;
}

/*
 * An interrupt that ends the statement or the session arrived while the
 * caller holds interrupts (interrupt_hold.c): the batch winds down,
 * giving the requests on the wire until cancel_grace to answer.
 */
static void
calcom_batch_hold_cancel(CalBatch *batch)
{
	int			running = 0;
	int			i;

	batch->cancel_by_ms = curl_wait_now_ms() + batch->config.cancel_grace_ms;
	for (i = 0; i < batch->n_active; i++)
		running += batch->active[i]->state == CAL_CALL_RUNNING;
	if (running > 0)
		ereport(LOG,
				(errmsg("cal_refresh: cancel held back for up to %d ms while "
						"%d request(s) to Cal.com are answered",
						batch->config.cancel_grace_ms, running),
				 errdetail("The pairs Cal.com issues are journaled before the "
						   "cancel takes effect.")));
}

/*
 * Starts queued calls while there is room, and due attempts of started
 * ones.  Returns when the loop must next wake up for a wait of ours (-1:
 * only for a transfer).
 */
static int64
calcom_batch_advance(CalBatch *batch)
{
	int64		now_ms = curl_wait_now_ms();
	int64		wake_ms = -1;
	int			i;

	if (batch->cancel_by_ms >= 0)
		return calcom_batch_wind_down(batch, now_ms);

	/*
	 * Past the batch's limit, or with Cal.com failing, the users not yet
	 * started are left alone; failing, no retry is sent either.
	 */
	if ((batch->start_by_ms >= 0 && now_ms >= batch->start_by_ms) ||
		batch->failing != NULL)
		while (!calcom_queue_is_empty(&batch->queued))
			calcom_call_not_started(batch, calcom_queue_pop(&batch->queued),
									now_ms);
	for (i = batch->n_active - 1; batch->failing != NULL && i >= 0; i--)
		if (batch->active[i]->state == CAL_CALL_WAITING &&
			batch->active[i]->attempts > 0)
		{
			calcom_call_note(batch->active[i], "no retry: Cal.com is failing");
			calcom_call_finish(batch->active[i], now_ms);
		}

	while (batch->n_active < batch->max_concurrency &&
		   (!calcom_queue_is_empty(&batch->urgent) ||
			!calcom_queue_is_empty(&batch->queued)))
	{
		bool		urgent = !calcom_queue_is_empty(&batch->urgent);
		CalCallQueue *queue = urgent ? &batch->urgent : &batch->queued;
		CalCall    *call = queue->items[queue->head];

		call->books_ahead = urgent || !batch->background;
		if (!call->books_ahead)
		{
			int64		earliest_us;

			/* A batch starts a user only with a slot free now. */
			if (rate_limit_reserve(batch->config.max_requests_per_minute,
								   now_ms * 1000, &earliest_us) < 0)
			{
				wake_ms = (earliest_us + 999) / 1000;
				if (batch->start_by_ms >= 0)
					wake_ms = Min(wake_ms, batch->start_by_ms);
				break;
			}
			call->slot_reserved = true;
		}
		calcom_call_start(batch, call, now_ms);
		(void) calcom_queue_pop(queue);
		batch->active[batch->n_active++] = call;
	}

	/* Backwards: a call that finishes leaves this array. */
	for (i = batch->n_active - 1; i >= 0; i--)
	{
		CalCall    *call = batch->active[i];

		if (call->state != CAL_CALL_WAITING)
			continue;
		if (call->wake_ms <= now_ms && calcom_call_take_slot(call, now_ms))
			calcom_call_start_attempt(call, now_ms);
		else if (call->state == CAL_CALL_WAITING)
			wake_ms = wake_ms < 0 ? call->wake_ms : Min(wake_ms, call->wake_ms);
	}
	return wake_ms;
}

/*
 * Waits for the next call to finish and returns its result and tag; NULL
 * once every call has been returned (calcom_batch_done), or, with until_ms
 * (curl_wait_now_ms()'s clock; -1: no limit), when that time has come
 * first.  The result stays valid until the next call of calcom_batch_next
 * or calcom_batch_end; it is wiped then.
 *
 * A cancel (statement_timeout, termination) raises at once, unless the
 * caller holds interrupts (interrupt_hold.c): then an interrupt that would
 * end the statement or the session makes the batch start nothing more
 * (what was not sent comes back as not_started), wait up to
 * config->cancel_grace_ms for the requests on the wire, give up those
 * still unanswered, and return what it has; the caller hands what Cal.com
 * issued over, then ends its hold, where the interrupt takes effect.
 */
const CalCallResult *
calcom_batch_next_by(CalBatch *batch, int64 until_ms, void **tag)
{
	if (batch->returned != NULL)
	{
		calcom_call_free(batch->returned);
		batch->returned = NULL;
	}
	for (;;)
	{
		int64		wake_ms;
		CURLMcode	mc;

		/* Whatever the loop's state, a cancel is served (see the header). */
		if (batch->cancel_by_ms < 0)
		{
			if (!interrupt_hold_active())
				CHECK_FOR_INTERRUPTS();
			else if (interrupt_hold_ending_pending())
				calcom_batch_hold_cancel(batch);
			else
				interrupt_hold_serve_others();
		}
		if (!calcom_queue_is_empty(&batch->done))
		{
			CalCall    *call = calcom_queue_pop(&batch->done);

			batch->returned = call;
			*tag = call->tag;
			return call->result;
		}
		if (batch->n_active == 0 && calcom_queue_is_empty(&batch->urgent) &&
			calcom_queue_is_empty(&batch->queued))
			return NULL;

		if (until_ms >= 0 && curl_wait_now_ms() >= until_ms)
			return NULL;
		wake_ms = calcom_batch_advance(batch);
		if (!calcom_queue_is_empty(&batch->done))
			continue;
		if (until_ms >= 0)
			wake_ms = wake_ms < 0 ? until_ms : Min(wake_ms, until_ms);
		mc = curl_wait_run(wake_ms,
						   batch->cancel_by_ms >= 0 ? CURL_WAIT_CANCEL_HOLD :
						   interrupt_hold_active() ?
						   CURL_WAIT_CANCEL_RETURN : CURL_WAIT_CANCEL_RAISE);
		if (mc != CURLM_OK)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not drive requests to Cal.com"),
					 errdetail("libcurl: %s", curl_multi_strerror(mc))));
		calcom_collect_finished();
	}
}

/* The same, with no time limit. */
const CalCallResult *
calcom_batch_next(CalBatch *batch, void **tag)
{
	return calcom_batch_next_by(batch, -1, tag);
}

/* Has every call been returned? */
bool
calcom_batch_done(const CalBatch *batch)
{
	return calcom_queue_is_empty(&batch->done) && batch->n_active == 0 &&
		calcom_queue_is_empty(&batch->urgent) &&
		calcom_queue_is_empty(&batch->queued);
}

/*
 * Why a background batch stopped starting calls, or NULL: a run of failed
 * attempts that were the service's trouble.  The calls it did not start
 * come back as not_started; those under way were not retried.
 */
const char *
calcom_batch_failing(const CalBatch *batch)
{
	return batch->failing;
}
