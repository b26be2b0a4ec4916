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

/* in spi_pinned.c */
extern void spi_pinned_begin(SpiPinned *session, Oid run_as);
extern void spi_pinned_run_as(SpiPinned *session, Oid run_as);
extern void spi_pinned_end(SpiPinned *session);
extern Oid	spi_pinned_rel_owner(Oid relid);
extern void spi_pinned_run_as_reader(SpiPinned *session, Oid owner);
extern Oid	spi_pinned_extension_table(Oid schema, const char *table);
extern Oid	spi_pinned_begin_as_owner(Oid schema, const char *table,
									  Oid known_relid, Oid *owner,
									  SpiPinned *session);
extern SPIPlanPtr spi_pinned_prepare_saved(const char *sql, int nargs,
										  Oid *argtypes, int cursor_options);
extern ErrorData *spi_pinned_in_subtransaction(void (*fn) (void *arg),
											   void *arg, bool keep,
											   MemoryContext error_context);

#endif							/* SPI_PINNED_H */
