/*-------------------------------------------------------------------------
 *
 * check_table.h
 *		cal_refresh_check()'s rows about the application's table and the
 *		role's privileges.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CHECK_TABLE_H
#define CHECK_TABLE_H

#include "check_report.h"

/* in check_table.c */
extern void check_table_all(CheckState *cs);
extern void check_privileges(CheckState *cs);

#endif							/* CHECK_TABLE_H */
