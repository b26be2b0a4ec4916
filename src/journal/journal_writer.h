/*-------------------------------------------------------------------------
 *
 * journal_writer.h
 *		The journal writer, a background worker per database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JOURNAL_WRITER_H
#define JOURNAL_WRITER_H

#include "fmgr.h"

/* in journal_writer.c */
extern bool journal_writer_start(int slot, uint32 generation,
								 const char **why);
extern PGDLLEXPORT void cal_refresh_journal_main(Datum arg);

#endif							/* JOURNAL_WRITER_H */
