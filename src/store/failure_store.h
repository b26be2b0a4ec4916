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

/* in failure_store.c */
extern void failure_store_record(Oid schema, const char *user_ulid,
								 const char *error_code, const char *error,
								 bool back_off);
extern void failure_store_clear(Oid schema, const char *const *user_ulids,
								int n);
extern char **failure_store_users(Oid schema, int *n_users);
extern Datum failure_store_backed_off(Oid schema);
extern void failure_store_read_all(Oid schema,
								   Datum columns[FAILURE_STORE_COLUMNS]);

#endif							/* FAILURE_STORE_H */
