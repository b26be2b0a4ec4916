/*-------------------------------------------------------------------------
 *
 * spi_pinned.h
 *		SPI sessions whose statements no role can redirect: search_path is
 *		pinned to pg_catalog for their duration, and, where a statement
 *		must run as the owner of what it touches, the user is switched.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SPI_PINNED_H
#define SPI_PINNED_H

#include "executor/spi.h"

typedef struct SpiPinned
{
	int			guc_nest_level;
	Oid			saved_user;
	int			saved_sec_context;
	bool		switched_user;
} SpiPinned;

/*
 * SPI_connect with search_path pinned.  With run_as valid, statements run
 * as that role in a security-restricted operation until spi_pinned_end.
 */
extern void spi_pinned_begin(SpiPinned *session, Oid run_as);

/*
 * From here to spi_pinned_end, statements run as run_as in a
 * security-restricted operation (the session must not have switched yet).
 */
extern void spi_pinned_run_as(SpiPinned *session, Oid run_as);
extern void spi_pinned_end(SpiPinned *session);

/* A relation's owner, or InvalidOid when there is no such relation. */
extern Oid	spi_pinned_rel_owner(Oid relid);

/*
 * For a table of someone else's: a superuser's statements run as its
 * owner (security-restricted) when that owner is not a superuser.
 */
extern void spi_pinned_run_as_reader(SpiPinned *session, Oid owner);

/* The extension's own table in schema (a member of it), or InvalidOid. */
extern Oid	spi_pinned_extension_table(Oid schema, const char *table);

/*
 * For the extension's own tables: starts a session as the owner of table
 * in schema, and returns its relid, or InvalidOid (no session) when there
 * is no such table.  *owner caches the owner of known_relid; a different
 * relid (the table is new to the caller, or was replaced) is looked up,
 * and the caller prepares its statements again.
 */
extern Oid	spi_pinned_begin_as_owner(Oid schema, const char *table,
									  Oid known_relid, Oid *owner,
									  SpiPinned *session);

/*
 * A statement prepared once and kept for the session (SPI_keepplan).
 * CURSOR_OPT_GENERIC_PLAN in cursor_options keeps parameter values out of
 * every plan (a custom plan folds them in, and debug_print_plan or
 * auto_explain would print them): for statements that carry a token.
 */
extern SPIPlanPtr spi_pinned_prepare_kept(const char *sql, int nargs,
										  Oid *argtypes, int cursor_options);

/*
 * Runs fn(arg) in a subtransaction, kept when keep is true and fn
 * succeeded, rolled back otherwise.  NULL when fn succeeded, else its
 * error, copied into error_context, for the caller to judge (a cancel
 * must be re-raised).
 */
extern ErrorData *spi_pinned_in_subtransaction(void (*fn) (void *arg),
											   void *arg, bool keep,
											   MemoryContext error_context);

#endif							/* SPI_PINNED_H */
