/*-------------------------------------------------------------------------
 *
 * refresh.c
 *		The refresh policy, read top to bottom: lock the user's row, refresh
 *		with the stored refresh token, fall back to force refresh when that
 *		token is unusable or its fate unknown, store the new pair in the
 *		caller's transaction, record the outcome, report.
 *
 * Refresh tokens are single-use.  The row lock is taken before the token
 * is read, so two sessions never spend the same token; the new pair is
 * written in the same transaction that holds the lock.
 *
 * One user or many, the same code runs: each locked row becomes a task,
 * and the tasks' Cal.com calls run side by side in one batch of
 * calcom_client, one user's fallback following its own failed refresh.
 * The new pairs are stored once the calls are done.  In a scheduled batch
 * a pair the application's table refuses (a trigger, a constraint, a
 * policy) fails its user alone, not the users around it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/timestamp.h"

#include "curl_wait.h"
#include "failure_store.h"
#include "journal.h"
#include "refresh.h"
#include "stats.h"
#include "token_store.h"

/* Cal.com's access tokens live an hour; used when a server omits expiry. */
#define CAL_ACCESS_TOKEN_LIFETIME_USECS (60 * USECS_PER_MINUTE)

/* Cal.com user ids are 32-bit integers. */
#define CAL_MAX_USER_ID PG_INT32_MAX

/* One user's refresh, from its locked row to its result. */
typedef struct RefreshTask
{
	TokenRow	row;
	CalResult  *result;
	const char *why_force;		/* set once force refresh is wanted */
	bool		token_spent;	/* refresh said the stored token is used */
	bool		own_failure;	/* ... or something else of the user's own */
	bool		sent;			/* a request for this user went out */
	bool		not_started;	/* the batch stopped before its turn */
	bool		has_update;		/* a pair to store: Cal.com's, or adopted */
	TokenUpdate update;
	const char *method;			/* the endpoint that issued it, or "journal" */
	bool		has_spent;		/* the row held a refresh token ... */
	uint8		spent_sha256[JOURNAL_DIGEST_LEN];	/* ... this one */
	JournalPair journal;		/* what the journal held for the user */
	bool		recovered;		/* the row's pair came from the journal */
	bool		issued;			/* update is a pair Cal.com just issued */
	bool		handed;			/* ... and handed over to the journal */
	bool		no_call;		/* the adopted pair is good enough */
	bool		stored;			/* the row now holds update */
} RefreshTask;

void
refresh_set_failure(CalResult *result, const char *error_code,
					const char *error)
{
	result->success = false;
	result->error_code = error_code;
	result->error = error;
	ereport(LOG,
			(errmsg("cal_refresh: tokens of user \"%s\" not refreshed (%s): %s",
					result->user_ulid ? result->user_ulid : "", error_code,
					error)));
}

/* The result of a token_store call that did not succeed. */
static void
refresh_set_store_failure(CalResult *result, TokenStoreStatus status,
						  char *problem)
{
	if (status == TOKEN_STORE_TABLE_INVALID)
		refresh_set_failure(result, CAL_ERR_TABLE_INVALID, problem);
	else if (status == TOKEN_STORE_BUSY)
		refresh_set_failure(result, CAL_ERR_BUSY,
							"another session held the row lock for longer "
							"than cal_refresh.lock_timeout");
	else
		refresh_set_failure(result, CAL_ERR_USER_NOT_FOUND,
							psprintf("no row for user \"%s\"",
									 result->user_ulid));
}

/* A failed call's error_code; an OK one that got here was unusable. */
static const char *
refresh_error_code(CalOutcome outcome)
{
	return outcome == CAL_OK ? CAL_ERR_BAD_RESPONSE :
		calcom_outcome_name(outcome);
}

/*
 * Is the failed call's outcome the user's own: Cal.com refused its tokens
 * (a 4xx other than 401/403, which are the client's) or sent something
 * unusable?  The service's trouble (429, 5xx, network, timeout) is not.
 */
static bool
refresh_is_own_failure(const CalCallResult *call)
{
	return call->outcome == CAL_BAD_RESPONSE ||
		(call->outcome == CAL_REJECTED &&
		 call->http_status != 401 && call->http_status != 403);
}

/*
 * The result of a failed Cal.com call, which decides the error_code.  It
 * is recorded when a request for the user went out, and backs off when
 * the failure is the user's own.
 */
static void
refresh_set_call_failure(RefreshTask *task, const CalCallResult *call,
						 const char *error)
{
	CalResult  *result = task->result;

	if (call->not_started)
	{
		/* Its batch stopped before its turn: nothing to log or record. */
		result->success = false;
		result->error_code = refresh_error_code(call->outcome);
		result->error = error;
		task->not_started = true;
		return;
	}
	refresh_set_failure(result, refresh_error_code(call->outcome), error);
	result->over_size_cap = call->outcome == CAL_BAD_RESPONSE &&
		call->body_over_cap;
	result->recorded = task->sent;
	result->backs_off = refresh_is_own_failure(call);
}

/*
 * After a failed refresh, is the stored refresh token unusable?  Then only
 * force refresh can help: after a 400 or 404 (the token is spent, or
 * unknown), or a 200 whose body cannot be used (Cal.com may have rotated
 * the pair).  Not after 401/403 (force would fail the same way), nor after
 * the service's trouble (429, 5xx, a non-JSON body, a lost connection, a
 * timeout): the refresh was retried, and should Cal.com have spent the
 * token meanwhile, the next attempt's 400 leads here.  Forcing during an
 * outage would only double the requests into it.
 */
/*
 * Where force refresh would follow, the OAuth2 flow has nothing: the
 * refresh token is spent or was never good, and only the user can mend it.
 */
#define CAL_OAUTH2_NO_FORCE \
	"; the OAuth2 flow has no force refresh: the user must authorize the application again"

static bool
refresh_should_fall_back(const CalCallResult *call)
{
	switch (call->outcome)
	{
		case CAL_REJECTED:
			return call->http_status == 400 || call->http_status == 404;
		case CAL_BAD_RESPONSE:
			return call->http_status >= 200 && call->http_status < 300;
		case CAL_TIMEOUT:
		case CAL_NETWORK_ERROR:
		case CAL_UNAVAILABLE:
		case CAL_OK:
			break;
	}
	return false;
}

static TimestampTz
refresh_ms_to_timestamptz(double ms)
{
	return (TimestampTz) ms * 1000 -
		(TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/* A result carrying the token already stored in the row. */
static void
refresh_set_stored(CalResult *result, const TokenRow *row)
{
	result->success = true;
	result->method = NULL;
	result->access_token = row->access_token;
	result->has_access_expiry = true;
	result->access_expires_at = row->access_expires_at;
}

/* The result of a pair now in the row. */
static void
refresh_set_written(CalResult *result, const TokenUpdate *update,
					const char *method)
{
	result->success = true;
	result->method = method;
	/* An adopted pair stored after its refresh failed succeeds all the same. */
	result->error_code = NULL;
	result->error = NULL;
	result->access_token = pstrdup(update->access_token);
	result->has_access_expiry = true;
	result->access_expires_at = update->access_expires_at;
	result->has_refresh_expiry = update->has_refresh_expiry;
	result->refresh_expires_at = update->refresh_expires_at;
}

/*
 * Writes new pairs to their rows (see token_store_write_all) and fills each
 * result, success or failure.  A pair the table refused fails that user
 * alone: Cal.com has rotated it already, so the failure is the user's own.
 */
static void
refresh_write(const char *table_name, const TokenUpdate *updates, int n,
			  const char *const *methods, CalResult *const *results,
			  bool isolate)
{
	TokenStoreStatus *statuses = palloc(sizeof(TokenStoreStatus) * n);
	char	  **problems = palloc(sizeof(char *) * n);
	int			i;

	token_store_write_all(table_name, updates, n, isolate, statuses, problems);
	for (i = 0; i < n; i++)
	{
		CalResult  *result = results[i];

		if (statuses[i] == TOKEN_STORE_REFUSED)
		{
			refresh_set_failure(result, CAL_ERR_TABLE_INVALID,
								psprintf("the new tokens could not be stored "
										 "(Cal.com has rotated them): %s",
										 problems[i]));
			result->recorded = true;
			result->backs_off = true;
		}
		else if (statuses[i] != TOKEN_STORE_OK)
			refresh_set_store_failure(result, statuses[i], problems[i]);
		else
			refresh_set_written(result, &updates[i], methods[i]);
	}
}

/* Keeps the pair Cal.com just issued, to be stored with the others. */
static void
refresh_task_keep(RefreshTask *task, const CalTokens *tokens,
				  const char *method)
{
	TokenUpdate *update = &task->update;

	update->user_ulid = task->row.user_ulid;
	update->access_token = pstrdup(tokens->access_token);
	update->refresh_token = pstrdup(tokens->refresh_token);
	update->access_expires_at = tokens->has_access_expiry ?
		refresh_ms_to_timestamptz(tokens->access_expires_ms) :
		GetCurrentTimestamp() + CAL_ACCESS_TOKEN_LIFETIME_USECS;
	update->has_refresh_expiry = tokens->has_refresh_expiry;
	update->refresh_expires_at = tokens->has_refresh_expiry ?
		refresh_ms_to_timestamptz(tokens->refresh_expires_ms) : 0;
	task->has_update = true;
	task->issued = true;
	task->method = method;
}

/*
 * Looks up the journal for the locked rows: a row whose refresh token the
 * journal shows superseded is stale (the transaction that stored its
 * successor did not commit), and the newest journaled pair is adopted: it
 * is stored in the row in this transaction, and its refresh token is the
 * one sent.  When its access token stays valid until good_until (0:
 * never enough), no request is sent at all.
 */
static void
refresh_adopt(const RefreshConfig *config, RefreshTask *tasks, int n_tasks,
			  TimestampTz good_until)
{
	const char **users = palloc(sizeof(char *) * Max(n_tasks, 1));
	uint8	   *digests = palloc(JOURNAL_DIGEST_LEN * Max(n_tasks, 1));
	bool	   *has_token = palloc(sizeof(bool) * Max(n_tasks, 1));
	JournalPair *pairs = palloc(sizeof(JournalPair) * Max(n_tasks, 1));
	int			i;

	for (i = 0; i < n_tasks; i++)
		memset(&tasks[i].journal, 0, sizeof(JournalPair));

	if (!OidIsValid(config->extension_schema))
		return;
	for (i = 0; i < n_tasks; i++)
	{
		users[i] = tasks[i].row.user_ulid;
		has_token[i] = tasks[i].has_spent = tasks[i].row.refresh_token != NULL;
		if (has_token[i])
		{
			journal_token_sha256(tasks[i].row.refresh_token,
								 tasks[i].spent_sha256);
			memcpy(digests + i * JOURNAL_DIGEST_LEN,
				   tasks[i].spent_sha256, JOURNAL_DIGEST_LEN);
		}
	}
	journal_lookup(config->extension_schema, config->table_name, users,
				   digests, has_token, n_tasks, pairs);
	for (i = 0; i < n_tasks; i++)
	{
		RefreshTask *task = &tasks[i];
		TokenUpdate *update = &task->update;

		task->journal = pairs[i];
		if (!pairs[i].found)
			continue;
		task->recovered = true;
		task->row.access_token = pairs[i].access_token;
		task->row.refresh_token = pairs[i].refresh_token;
		task->row.has_access_expiry = true;
		task->row.access_expires_at = pairs[i].access_expires_at;
		task->has_spent = true;
		journal_token_sha256(pairs[i].refresh_token, task->spent_sha256);
		update->user_ulid = task->row.user_ulid;
		update->access_token = pairs[i].access_token;
		update->refresh_token = pairs[i].refresh_token;
		update->access_expires_at = pairs[i].access_expires_at;
		update->has_refresh_expiry = pairs[i].has_refresh_expiry;
		update->refresh_expires_at = pairs[i].refresh_expires_at;
		task->has_update = true;
		task->method = "journal";
		task->no_call = good_until != 0 &&
			pairs[i].access_expires_at >= good_until;
		ereport(LOG,
				(errmsg("cal_refresh: user \"%s\": the row held a spent refresh token; "
						"the newest pair was recovered from the journal",
						task->row.user_ulid),
				 errdetail("A transaction that stored that pair did not commit.")));
	}
}

/*
 * The pairs Cal.com issued and not yet handed over, as journal entries;
 * from now on they count as handed over.
 */
static JournalEntry *
refresh_journal_entries(const RefreshConfig *config, RefreshTask *tasks,
						int n_tasks, int *n)
{
	JournalEntry *entries = palloc0(sizeof(JournalEntry) * Max(n_tasks, 1));
	int			i;

	*n = 0;
	for (i = 0; i < n_tasks; i++)
	{
		const TokenUpdate *update = &tasks[i].update;
		JournalEntry *entry = &entries[*n];

		if (!tasks[i].issued || tasks[i].handed)
			continue;
		tasks[i].handed = true;
		entry->table_name = config->table_name;
		entry->user_ulid = update->user_ulid;
		entry->has_spent = tasks[i].has_spent;
		memcpy(entry->spent_sha256, tasks[i].spent_sha256,
			   JOURNAL_DIGEST_LEN);
		entry->access_token = update->access_token;
		entry->refresh_token = update->refresh_token;
		entry->access_expires_at = update->access_expires_at;
		entry->has_refresh_expiry = update->has_refresh_expiry;
		entry->refresh_expires_at = update->refresh_expires_at;
		(*n)++;
	}
	return entries;
}

/*
 * Stores every kept pair.  In a batch, a pair the table refuses fails its
 * user alone; for one user a person waits for, the error goes to them.
 */
static void
refresh_store_kept(const RefreshConfig *config, RefreshTask *tasks,
				   int n_tasks, bool isolate_users)
{
	TokenUpdate *updates = palloc(sizeof(TokenUpdate) * n_tasks);
	const char **methods = palloc(sizeof(char *) * n_tasks);
	CalResult **results = palloc(sizeof(CalResult *) * n_tasks);
	RefreshTask **written = palloc(sizeof(RefreshTask *) * n_tasks);
	int			n = 0;
	int			n_stored = 0;
	int			n_recovered = 0;
	int			i;

	for (i = 0; i < n_tasks; i++)
	{
		if (!tasks[i].has_update)
			continue;
		updates[n] = tasks[i].update;
		methods[n] = tasks[i].method;
		results[n] = tasks[i].result;
		/*
		 * A pair adopted from the journal is stored even when the refresh
		 * sent with it failed; its result then stays that failure unless
		 * the adopted access token still works.
		 */
		if (tasks[i].recovered && !tasks[i].issued && !tasks[i].no_call &&
			tasks[i].update.access_expires_at < GetCurrentTimestamp())
			results[n] = palloc0(sizeof(CalResult));
		written[n] = &tasks[i];
		n++;
	}
	if (n > 0)
		refresh_write(config->table_name, updates, n, methods, results,
					  isolate_users);
	for (i = 0; i < n; i++)
	{
		written[i]->stored = results[i]->success;
		written[i]->result->recovered = written[i]->recovered;
		n_stored += written[i]->stored ? 1 : 0;
		n_recovered += written[i]->stored && written[i]->recovered ? 1 : 0;
	}
	stats_count_stored(n_stored, n_recovered);
}

/* Wipes the kept refresh tokens (the access tokens are results). */
static void
refresh_wipe_kept(RefreshTask *tasks, int n_tasks)
{
	int			i;

	for (i = 0; i < n_tasks; i++)
		if (tasks[i].has_update)
			explicit_bzero((char *) tasks[i].update.refresh_token,
						   strlen(tasks[i].update.refresh_token));
}

/*
 * The task's refresh token is unusable or its fate unknown: queue force
 * refresh, which needs Cal.com's numeric user id, or fail (with the failed
 * refresh's outcome when there was one).
 */
static void
refresh_task_force(CalBatch *batch, RefreshTask *task,
				   const CalCallResult *failed_refresh)
{
	const TokenRow *row = &task->row;
	bool		has_usable_token = calcom_token_is_plausible(row->refresh_token);

	/* The policy's one branch on the flow: OAuth2 has no fallback. */
	if (!calcom_flow(calcom_batch_flow(batch))->has_force_refresh)
	{
		char	   *error = psprintf("%s%s", task->why_force, CAL_OAUTH2_NO_FORCE);

		if (failed_refresh != NULL)
			refresh_set_call_failure(task, failed_refresh, error);
		else
		{
			refresh_set_failure(task->result, CAL_ERR_NO_REFRESH_TOKEN, error);
			task->result->recorded = true;
			task->result->backs_off = task->own_failure;
		}
		return;
	}

	if (!row->has_managed_user_id || row->managed_user_id <= 0 ||
		row->managed_user_id > CAL_MAX_USER_ID)
	{
		refresh_set_failure(task->result,
							(has_usable_token || row->has_managed_user_id) ?
							CAL_ERR_NO_MANAGED_USER_ID : CAL_ERR_NO_REFRESH_TOKEN,
							psprintf("%s, and force refresh is impossible: %s",
									 task->why_force,
									 row->has_managed_user_id ?
									 "\"calManagedUserId\" is not a valid Cal.com user id" :
									 "no \"calManagedUserId\" is stored"));
		task->result->recorded = true;
		task->result->backs_off = task->own_failure;
		return;
	}
	ereport(LOG,
			(errmsg("cal_refresh: %s for user \"%s\"; trying force refresh",
					task->why_force, row->user_ulid),
			 task->token_spent ?
			 errdetail("The stored refresh token was already used: a transaction "
					   "that stored its successor may have rolled back, or "
					   "another client spent it.") : 0));
	calcom_batch_add_force_refresh(batch, (long) row->managed_user_id, task);
	stats_count_force_refresh();
}

/* Starts a locked row's refresh: the regular one, when there is a token. */
static void
refresh_task_start(CalBatch *batch, RefreshTask *task)
{
	const char *token = task->row.refresh_token;

	if (calcom_token_is_plausible(token))
		calcom_batch_add_refresh(batch, token, task);
	else
	{
		task->why_force = (token == NULL || token[0] == '\0') ?
			"no refresh token is stored" :
			"the stored refresh token is malformed";
		task->own_failure = true;
		refresh_task_force(batch, task, NULL);
	}
}

/* One of the task's Cal.com calls ended: store, fall back, or fail. */
static void
refresh_task_call_done(CalBatch *batch, RefreshTask *task,
					   const CalCallResult *call)
{
	const char *user_ulid = task->row.user_ulid;
	bool		was_refresh = call->endpoint != CAL_ENDPOINT_FORCE_REFRESH;

	ereport(DEBUG1,
			(errmsg_internal("cal_refresh: %s for user \"%s\": HTTP %ld in %d ms, %d attempt(s)%s%s",
							 calcom_endpoint_name(call->endpoint), user_ulid,
							 call->http_status, call->elapsed_ms, call->attempts,
							 call->outcome == CAL_OK ? "" : ": ",
							 call->outcome == CAL_OK ? "" : call->message)));
	task->sent |= call->attempts > 0;
	if (call->outcome == CAL_OK)
		refresh_task_keep(task, &call->tokens,
						  was_refresh ? "refresh" : "force_refresh");
	else if (!was_refresh)
		refresh_set_call_failure(task, call,
								 psprintf("%s; force refresh failed: %s",
										  task->why_force, call->message));
	else if (!refresh_should_fall_back(call))
		refresh_set_call_failure(task, call,
								 psprintf("refresh failed: %s", call->message));

	else
	{
		task->why_force = psprintf("refresh failed: %s", call->message);
		task->token_spent = call->http_status == 400 ||
			call->http_status == 404;
		task->own_failure = refresh_is_own_failure(call);
		refresh_task_force(batch, task, call);
	}
}

/*
 * Remembers how each user fared: a success forgets earlier failures; a
 * failure about the user (not the configuration's, not a lock's, not one
 * where nothing was sent) is recorded, with a backoff where it is the
 * user's own.
 */
static void
refresh_record_outcomes(const RefreshConfig *config, RefreshTask *tasks,
						int n_tasks)
{
	const char **succeeded = palloc(sizeof(char *) * n_tasks);
	JournalPair *stored = palloc(sizeof(JournalPair) * n_tasks);
	int			n_succeeded = 0;
	int			n_stored = 0;
	int			i;

	if (!OidIsValid(config->extension_schema))
		return;
	for (i = 0; i < n_tasks; i++)
	{
		const CalResult *result = tasks[i].result;

		if (tasks[i].stored)
			stored[n_stored++] = tasks[i].journal;
		if (result->success)
			succeeded[n_succeeded++] = result->user_ulid;
		else if (result->recorded)
			failure_store_record(config->extension_schema, result->user_ulid,
								 result->error_code, result->error,
								 result->backs_off);
	}
	failure_store_clear(config->extension_schema, succeeded, n_succeeded);

	/*
	 * Their rows hold a newer pair than any entry seen, if this transaction
	 * commits.  The entries of the pairs just issued stay: the next refresh
	 * of the user, or the job's pruning, deletes them.
	 */
	journal_forget_seen(config->extension_schema, stored, n_stored, true);
}

/*
 * Pairs of a batch wait at most this long, or until there are this many,
 * before they are handed over: a pair issued early in a long batch is not
 * left in the backend's memory until the last user is answered.
 */
#define REFRESH_HAND_OVER_MS 50
#define REFRESH_HAND_OVER_PAIRS 64

/* One refresh's requests, run under journal_protect. */
typedef struct RefreshRequests
{
	const RefreshConfig *config;
	RefreshTask *tasks;
	int			n_tasks;
	CalBatch   *batch;
	bool		background;		/* a batch that stores user by user */
	bool		started;		/* the tasks' first calls are queued */
	int			n_waiting;		/* pairs issued, not handed over */
	int64		first_waiting_ms;	/* when the first of them came */
	const char *failing;		/* why the batch stopped, or NULL */
} RefreshRequests;

/*
 * Sends each task's refresh, and each fallback as its refresh fails.
 * Returns true when issued pairs are to be handed over before it goes on
 * (call it again), false once every call is done.
 */
static bool
refresh_send(void *arg)
{
	RefreshRequests *requests = (RefreshRequests *) arg;
	int			i;

	if (!requests->started)
	{
		for (i = 0; i < requests->n_tasks; i++)
			if (!requests->tasks[i].no_call)
				refresh_task_start(requests->batch, &requests->tasks[i]);
		requests->started = true;
	}
	for (;;)
	{
		int64		hand_over_ms = requests->n_waiting == 0 ? -1 :
			requests->first_waiting_ms + REFRESH_HAND_OVER_MS;
		void	   *tag;
		const CalCallResult *call = calcom_batch_next_by(requests->batch,
														 hand_over_ms, &tag);

		if (call != NULL)
		{
			RefreshTask *task = (RefreshTask *) tag;
			bool		had_pair = task->issued;

			refresh_task_call_done(requests->batch, task, call);
			if (!had_pair && task->issued && requests->n_waiting++ == 0)
				requests->first_waiting_ms = curl_wait_now_ms();
		}
		else if (calcom_batch_done(requests->batch))
			break;
		if (requests->n_waiting >= REFRESH_HAND_OVER_PAIRS ||
			(requests->n_waiting > 0 &&
			 curl_wait_now_ms() >= requests->first_waiting_ms + REFRESH_HAND_OVER_MS))
			return true;
	}
	if (calcom_batch_failing(requests->batch) != NULL)
		requests->failing = pstrdup(calcom_batch_failing(requests->batch));
	return false;
}

/* The pairs the requests issued since the last hand-over, for the journal. */
static JournalEntry *
refresh_issued(void *arg, int *n)
{
	RefreshRequests *requests = (RefreshRequests *) arg;

	requests->n_waiting = 0;
	return refresh_journal_entries(requests->config, requests->tasks,
								   requests->n_tasks, n);
}

/* Stores the kept pairs; did every pair Cal.com issued reach its row? */
static bool
refresh_store(void *arg)
{
	RefreshRequests *requests = (RefreshRequests *) arg;
	int			i;

	refresh_store_kept(requests->config, requests->tasks, requests->n_tasks,
					   requests->background);
	for (i = 0; i < requests->n_tasks; i++)
		if (requests->tasks[i].issued && !requests->tasks[i].stored)
			return false;
	return true;
}

/*
 * Refreshes the users whose rows we hold locked, at most max_concurrency
 * at a time, each with its own fallback, then stores the new pairs.  A
 * background batch stores them user by user where it must (see
 * refresh_store_kept).  No user starts after start_within_ms (-1: no
 * limit), nor, in the background, once Cal.com is failing: then the
 * description of its failure is returned (else NULL).  A stale row adopts
 * the journal's pair first (refresh_adopt), and is not sent at all when
 * that pair is good until good_until.  The requests run protected by the
 * journal (journal_protect): the pairs they issue are handed over before
 * any interrupt can end the call, and then stored.
 */
static const char *
refresh_locked_rows(const RefreshConfig *config, RefreshTask *tasks,
					int n_tasks, int max_concurrency, bool background,
					int start_within_ms, TimestampTz good_until)
{
	RefreshRequests requests;
	JournalIssuer issuer = {refresh_send, refresh_issued, refresh_store,
	&requests};

	refresh_adopt(config, tasks, n_tasks, good_until);
	requests.config = config;
	requests.tasks = tasks;
	requests.n_tasks = n_tasks;
	requests.batch = calcom_batch_create(&config->client, max_concurrency,
										 background, start_within_ms);
	requests.background = background;
	requests.started = false;
	requests.n_waiting = 0;
	requests.first_waiting_ms = 0;
	requests.failing = NULL;
	journal_protect(config->extension_schema, &issuer);
	calcom_batch_end(requests.batch);
	refresh_record_outcomes(config, tasks, n_tasks);
	refresh_wipe_kept(tasks, n_tasks);
	return requests.failing;
}

/*
 * One user's row, locked: refreshed by a batch of one, a person waiting
 * (good_until as for refresh_locked_rows).
 */
static void
refresh_locked_row(const RefreshConfig *config, const TokenRow *row,
				   CalResult *result, TimestampTz good_until)
{
	RefreshTask task;

	memset(&task, 0, sizeof(task));
	task.row = *row;
	task.result = result;
	(void) refresh_locked_rows(config, &task, 1, 1, false, -1, good_until);
}

/* True when the row's access token stays valid until at least `until`. */
static bool
refresh_token_valid_until(const TokenRow *row, TimestampTz until)
{
	return row->access_token != NULL && row->access_token[0] != '\0' &&
		row->has_access_expiry && row->access_expires_at >= until;
}

void
refresh_user_tokens(const RefreshConfig *config, const char *user_ulid,
					CalResult *result)
{
	TokenRow	row;
	TokenStoreStatus status;
	char	   *problem = NULL;

	result->user_ulid = user_ulid;
	if (config->config_error_code != NULL)
	{
		refresh_set_failure(result, config->config_error_code,
							config->config_error);
		return;
	}
	/* Lock the row before reading the refresh token. */
	status = token_store_lock_row(config->table_name, user_ulid,
								  config->lock_timeout_ms, &row, &problem);
	if (status != TOKEN_STORE_OK)
		refresh_set_store_failure(result, status, problem);
	else
		refresh_locked_row(config, &row, result, 0);
}

void
refresh_access_token(const RefreshConfig *config, const char *user_ulid,
					 int64 min_validity_us, CalResult *result,
					 StoredTokenReason *stored_token)
{
	TokenRow	row;
	TokenRow	locked;
	TokenStoreStatus status;
	char	   *problem = NULL;
	TimestampTz now = GetCurrentTimestamp();

	result->user_ulid = user_ulid;
	*stored_token = STORED_TOKEN_NONE;

	/* Fast path: no lock while the stored token is good for long enough. */
	status = token_store_read_row(config->table_name, user_ulid, &row, &problem);
	if (status != TOKEN_STORE_OK)
	{
		refresh_set_store_failure(result, status, problem);
		return;
	}
	if (refresh_token_valid_until(&row, now + min_validity_us))
	{
		refresh_set_stored(result, &row);
		return;
	}

	/*
	 * A refresh must be storable.  Read-only, a token that still works is
	 * served all the same (the caller warns why it was not refreshed);
	 * otherwise refuse before any lock or HTTP call.
	 */
	if ((XactReadOnly || RecoveryInProgress()) &&
		refresh_token_valid_until(&row, now))
	{
		refresh_set_stored(result, &row);
		*stored_token = STORED_TOKEN_READ_ONLY;
		return;
	}
	PreventCommandIfReadOnly("cal_access_token() with a token to refresh");
	if (config->config_error_code != NULL)
		refresh_set_failure(result, config->config_error_code,
							config->config_error);
	else
	{
		status = token_store_lock_row(config->table_name, user_ulid,
									  config->lock_timeout_ms, &locked,
									  &problem);
		if (status != TOKEN_STORE_OK)
			refresh_set_store_failure(result, status, problem);
		else if (refresh_token_valid_until(&locked,
										   GetCurrentTimestamp() + min_validity_us))
		{
			/* Refreshed by the session whose lock we waited for. */
			refresh_set_stored(result, &locked);
			return;
		}
		else
		{
			row = locked;
			refresh_locked_row(config, &row, result,
							   GetCurrentTimestamp() + min_validity_us);
		}
	}

	/* Better a token that still works than none at all. */
	if (!result->success &&
		refresh_token_valid_until(&row, GetCurrentTimestamp()))
	{
		*stored_token = STORED_TOKEN_REFRESH_FAILED;
		result->access_token = row.access_token;
		result->has_access_expiry = true;
		result->access_expires_at = row.access_expires_at;
	}
}

void
refresh_expiring_tokens(const RefreshConfig *config,
						TimestampTz expiring_before, const char *after_user,
						int max_users, int start_within_ms,
						RefreshBatchResult *batch)
{
	TokenRow   *rows;
	RefreshTask *tasks;
	TokenStoreStatus status;
	char	   *problem = NULL;
	int			i;

	memset(batch, 0, sizeof(*batch));
	if (config->config_error_code != NULL)
	{
		batch->error_code = config->config_error_code;
		batch->error = config->config_error;
		return;
	}
	status = token_store_lock_due(config->table_name, expiring_before,
								  after_user,
								  failure_store_backed_off(config->extension_schema),
								  max_users, &rows, &batch->n_results,
								  &problem);
	if (status != TOKEN_STORE_OK)
	{
		batch->error_code = CAL_ERR_TABLE_INVALID;
		batch->error = problem;
		return;
	}

	batch->results = palloc0(sizeof(CalResult) * Max(batch->n_results, 1));
	tasks = palloc0(sizeof(RefreshTask) * Max(batch->n_results, 1));
	for (i = 0; i < batch->n_results; i++)
	{
		tasks[i].row = rows[i];
		tasks[i].result = &batch->results[i];
		tasks[i].result->user_ulid = rows[i].user_ulid;
	}
	batch->calcom_failing = refresh_locked_rows(config, tasks,
												batch->n_results,
												config->max_concurrency, true,
												start_within_ms,
												expiring_before);

	for (i = 0; i < batch->n_results; i++)
	{
		const CalResult *result = &batch->results[i];

		if (tasks[i].not_started)
			batch->not_started++;
		else if (!result->success)
			batch->failed++;
		else if (result->method != NULL &&
				 strcmp(result->method, "force_refresh") == 0)
			batch->forced++;
		else
			batch->refreshed++;
	}
}

void
refresh_store_given_tokens(const RefreshConfig *config, const char *user_ulid,
						   const char *access_token, const char *refresh_token,
						   TimestampTz access_expires_at,
						   bool has_refresh_expiry,
						   TimestampTz refresh_expires_at, CalResult *result)
{
	TokenUpdate update;
	const char *method = "update";

	result->user_ulid = user_ulid;
	update.user_ulid = user_ulid;
	update.access_token = access_token;
	update.refresh_token = refresh_token;
	update.access_expires_at = access_expires_at;
	update.has_refresh_expiry = has_refresh_expiry;
	update.refresh_expires_at = refresh_expires_at;
	refresh_write(config->table_name, &update, 1, &method, &result, false);
	/*
	 * Tokens the application just had issued: earlier failures are moot,
	 * and so is what the journal held for the user.
	 */
	if (result->success && OidIsValid(config->extension_schema))
	{
		failure_store_clear(config->extension_schema, &user_ulid, 1);
		journal_forget_users(config->extension_schema, config->table_name,
							 &user_ulid, 1);
	}
}
