/*-------------------------------------------------------------------------
 *
 * cal_refresh.c
 *		Module entry.  For now only the module magic: the harness needs a
 *		library it can preload.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;
