/*-------------------------------------------------------------------------
 *
 * prune.h
 *		Keeping the extension's own tables from growing without bound.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PRUNE_H
#define PRUNE_H

#include "refresh.h"

/* in prune.c */
extern int	prune_journal(const RefreshConfig *config);
extern int	prune_failures(const RefreshConfig *config);

#endif							/* PRUNE_H */
