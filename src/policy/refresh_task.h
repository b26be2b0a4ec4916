/*-------------------------------------------------------------------------
 *
 * refresh_task.h
 *		What the files of the refresh policy share: one user's task, from
 *		its locked row to its result.
 *
 *-------------------------------------------------------------------------
 */
#ifndef REFRESH_TASK_H
#define REFRESH_TASK_H

#include "calcom_client.h"
#include "journal.h"
#include "refresh.h"
#include "token_store.h"

/* One user's refresh, from its locked row to its result. */
typedef struct RefreshTask
{
	TokenRow	row;
	TokenResult  *result;
	const char *why_force;		/* set once force refresh is wanted */
	bool		token_spent;	/* refresh said the stored token is used */
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
	bool		forced;			/* ... by force refresh */
	bool		no_call;		/* the adopted pair is good enough */
	bool		stored;			/* the row now holds update */
} RefreshTask;

/* in refresh_task.c */
extern void refresh_set_store_failure(TokenResult *result,
									  TokenStoreStatus status, char *problem);
extern void refresh_task_start(CalBatch *batch, RefreshTask *task);
extern void refresh_task_call_done(CalBatch *batch, RefreshTask *task,
								   const CalCallResult *call);

/* in refresh_pairs.c */
extern void refresh_write(const char *table_name, const TokenUpdate *updates,
						  int n, const char *const *methods,
						  TokenResult *const *results, bool isolate);
extern void refresh_adopt(const RefreshConfig *config, RefreshTask *tasks,
						  int n_tasks, TimestampTz good_until);
extern JournalEntry *refresh_journal_entries(const RefreshConfig *config,
											 RefreshTask *tasks, int n_tasks,
											 int *n);
extern void refresh_store_pairs(const RefreshConfig *config,
								RefreshTask *tasks, int n_tasks,
								bool isolate_users);
extern void refresh_wipe_pairs(RefreshTask *tasks, int n_tasks);

#endif							/* REFRESH_TASK_H */
