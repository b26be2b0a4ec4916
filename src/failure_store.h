/*-------------------------------------------------------------------------
 *
 * failure_store.h
 *		The extension's own record of users whose refresh failed
 *		(cal_refresh_failure), with the backoff that spares them from
 *		every scheduled run.  Knows nothing of HTTP.
 *
 * Its statements run as the table's owner: callers need no privilege on
 * it.  Every function takes the schema the extension lives in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FAILURE_STORE_H
#define FAILURE_STORE_H

/* The columns of cal_refresh_failure, as arrays: see failure_store_read_all. */
#define FAILURE_STORE_COLUMNS 6

/*
 * Records one more failure of the user, at now.  With back_off, the next
 * scheduled attempt waits twice as long as the last backoff (at least 1
 * minute, at most 6 hours); without, it may come at once.  Without the table (the
 * library is newer than the extension's objects) nothing is recorded.
 */
extern void failure_store_record(Oid schema, const char *user_ulid,
								 const char *error_code, const char *error,
								 bool back_off);

/* Forgets the failures of n users: they succeeded.  One statement. */
extern void failure_store_clear(Oid schema, const char *const *user_ulids,
								int n);

/* The users with a record (*n_users = 0 without the table). */
extern char **failure_store_users(Oid schema, int *n_users);

/* The users whose next attempt is still to come, as text[] ('{}': none). */
extern Datum failure_store_backed_off(Oid schema);

/*
 * Every record, column by column, as arrays of the same length: user_ulid
 * text[], error_code text[], error text[], failures int4[],
 * last_failure_at timestamptz[], next_attempt_at timestamptz[].
 */
extern void failure_store_read_all(Oid schema,
								   Datum columns[FAILURE_STORE_COLUMNS]);

#endif							/* FAILURE_STORE_H */
