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
 * One user or many, the same code runs: each locked row becomes a task
 * (refresh_task.c), and the tasks' Cal.com calls run side by side in one
 * batch of calcom_client, one user's fallback following its own failed
 * refresh.  The pairs go to the journal as they come and are stored once
 * the calls are done (refresh_pairs.c).  In a scheduled batch a pair the
 * application's table refuses (a trigger, a constraint, a policy) fails its
 * user alone, not the users around it.
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
#include "refresh_task.h"

/* A result carrying the token already stored in the row. */
static void
refresh_set_stored(TokenResult *result, const TokenRow *row)
{
	result->success = true;
	result->method = NULL;
	result->access_token = row->access_token;
	result->has_access_expiry = true;
	result->access_expires_at = row->access_expires_at;
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
		const TokenResult *result = tasks[i].result;

		if (tasks[i].stored)
			stored[n_stored++] = tasks[i].journal;
		if (result->success)
			succeeded[n_succeeded++] = result->user_ulid;
		else if (result->recorded)
			failure_store_record(config->extension_schema, result->user_ulid,
								 cal_error_name(result->error_code), result->error,
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

/* Stores the pairs taken; did every pair Cal.com issued reach its row? */
static bool
refresh_store(void *arg)
{
	RefreshRequests *requests = (RefreshRequests *) arg;
	int			i;

	refresh_store_pairs(requests->config, requests->tasks, requests->n_tasks,
					   requests->background);
	for (i = 0; i < requests->n_tasks; i++)
		if (requests->tasks[i].issued && !requests->tasks[i].stored)
			return false;
	return true;
}

/* How a set of locked users is refreshed. */
typedef struct RefreshRun
{
	int			max_concurrency;	/* users whose calls run at once */
	bool		background;		/* a batch: polls for request slots, stops
								 * when Cal.com fails, stores user by user */
	int			start_within_ms;	/* no user starts later; -1: no limit */
	TimestampTz good_until;		/* an adopted pair valid until then is
								 * not refreshed; 0: always refresh */
} RefreshRun;

/* A person waits for one user, whose pair is always refreshed. */
static const RefreshRun refresh_run_one = {1, false, CAL_BATCH_NO_START_LIMIT, 0};

/*
 * Refreshes the users whose rows we hold locked, as run says, each with
 * its own fallback, then stores the new pairs.  A background batch stores
 * them user by user where it must (see refresh_store_pairs).  No user
 * starts after run->start_within_ms, nor, in the background, once Cal.com
 * is failing: then the description of its failure is returned (else
 * NULL).  A stale row adopts the journal's pair first (refresh_adopt), and
 * is not sent at all when that pair is good until run->good_until.  The
 * requests run protected by the journal (journal_protect): the pairs they
 * issue are handed over before any interrupt can end the call, and then
 * stored.
 */
static const char *
refresh_locked_users(const RefreshConfig *config, RefreshTask *tasks,
					 int n_tasks, const RefreshRun *run)
{
	RefreshRequests requests;
	JournalIssuer issuer = {refresh_send, refresh_issued, refresh_store,
	&requests};

	refresh_adopt(config, tasks, n_tasks, run->good_until);
	requests.config = config;
	requests.tasks = tasks;
	requests.n_tasks = n_tasks;
	requests.batch = calcom_batch_create(&config->client, run->max_concurrency,
										 run->background ? CAL_BATCH_BACKGROUND :
										 CAL_BATCH_INTERACTIVE,
										 run->start_within_ms);
	requests.background = run->background;
	requests.started = false;
	requests.n_waiting = 0;
	requests.first_waiting_ms = 0;
	requests.failing = NULL;
	journal_protect(config->extension_schema, &issuer);
	calcom_batch_end(requests.batch);
	refresh_record_outcomes(config, tasks, n_tasks);
	refresh_wipe_pairs(tasks, n_tasks);
	return requests.failing;
}

/*
 * One user's locked row, refreshed for a person who waits; with
 * good_until, an adopted pair valid until then is not refreshed.
 */
static void
refresh_one_locked_user(const RefreshConfig *config, const TokenRow *row,
						TokenResult *result, TimestampTz good_until)
{
	RefreshTask task;
	RefreshRun	run = refresh_run_one;

	memset(&task, 0, sizeof(task));
	task.row = *row;
	task.result = result;
	run.good_until = good_until;
	(void) refresh_locked_users(config, &task, 1, &run);
}

/* True when the row's access token stays valid until at least `until`. */
static bool
refresh_token_valid_until(const TokenRow *row, TimestampTz until)
{
	return row->access_token != NULL && row->access_token[0] != '\0' &&
		row->has_access_expiry && row->access_expires_at >= until;
}

/* cal_refresh_user_tokens(): the whole refresh of one user. */
void
refresh_user_tokens(const RefreshConfig *config, const char *user_ulid,
					TokenResult *result)
{
	TokenRow	row;
	TokenStoreStatus status;
	char	   *problem = NULL;

	result->user_ulid = user_ulid;
	if (config->config_error_code != CAL_ERROR_NONE)
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
		refresh_one_locked_user(config, &row, result, 0);
}

/*
 * cal_access_token(): the stored access token when it stays valid for
 * min_validity_us; else lock, re-check, refresh.  When no refresh can be
 * had (it failed, or the transaction is read-only) but the stored token
 * has not expired, the result carries that token and *stored_token says
 * why it was not refreshed.
 */
void
refresh_access_token(const RefreshConfig *config, const char *user_ulid,
					 int64 min_validity_us, TokenResult *result,
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
	if (config->config_error_code != CAL_ERROR_NONE)
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
			refresh_one_locked_user(config, &row, result,
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

/*
 * cal_refresh_expiring_tokens() and each batch of the job: locks at most
 * max_users rows whose access token expires before expiring_before, with
 * keys after after_user (NULL: from the start), skipping rows locked
 * elsewhere and users backing off; refreshes them concurrently; stores
 * each new pair; records failures.  A user whose turn has not come within
 * start_within_ms (-1: no limit) fails as a timeout, with nothing sent.
 */
void
refresh_expiring_tokens(const RefreshConfig *config,
						TimestampTz expiring_before, const char *after_user,
						int max_users, int start_within_ms,
						RefreshBatchResult *batch)
{
	TokenRow   *rows;
	RefreshTask *tasks;
	TokenStoreStatus status;
	RefreshRun	run;
	char	   *problem = NULL;
	int			i;

	memset(batch, 0, sizeof(*batch));
	if (config->config_error_code != CAL_ERROR_NONE)
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
		batch->error_code = CAL_ERROR_TABLE_INVALID;
		batch->error = problem;
		return;
	}

	batch->results = palloc0(sizeof(TokenResult) * Max(batch->n_results, 1));
	tasks = palloc0(sizeof(RefreshTask) * Max(batch->n_results, 1));
	for (i = 0; i < batch->n_results; i++)
	{
		tasks[i].row = rows[i];
		tasks[i].result = &batch->results[i];
		tasks[i].result->user_ulid = rows[i].user_ulid;
	}
	run.max_concurrency = config->max_concurrency;
	run.background = true;
	run.start_within_ms = start_within_ms;
	run.good_until = expiring_before;
	batch->calcom_failing = refresh_locked_users(config, tasks,
												 batch->n_results, &run);

	for (i = 0; i < batch->n_results; i++)
	{
		const TokenResult *result = &batch->results[i];

		if (tasks[i].not_started)
			batch->not_started++;
		else if (!result->success)
			batch->failed++;
		else if (tasks[i].forced && tasks[i].stored)
			batch->forced++;
		else
			batch->refreshed++;
	}
}

/* cal_update_tokens(): store tokens the caller already has. */
void
refresh_store_given_tokens(const RefreshConfig *config, const char *user_ulid,
						   const char *access_token, const char *refresh_token,
						   TimestampTz access_expires_at,
						   bool has_refresh_expiry,
						   TimestampTz refresh_expires_at, TokenResult *result)
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

