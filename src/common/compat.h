/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every difference between PostgreSQL (15-18) and libcurl versions
 *		that cal_refresh cares about, in one place.
 *
 * PostgreSQL 15 is the oldest served: before it, MaxBackends is still 0
 * when _PG_init runs, so the journal's shared memory could not be sized.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CAL_REFRESH_COMPAT_H
#define CAL_REFRESH_COMPAT_H

#include "storage/latch.h"
#include "utils/guc.h"

#include <curl/curl.h>

#if PG_VERSION_NUM < 150000
#error "cal_refresh needs PostgreSQL 15 or later"
#endif

/*
 * PostgreSQL 17 ties a WaitEventSet to a resource owner, not a context.
 * Ours lives across transactions and is freed by curl_wait.c alone: owned
 * by the transaction's resource owner, an aborted (sub)transaction would
 * free it under our feet, and our own cleanup free it again.
 */
#if PG_VERSION_NUM >= 170000
#define cal_create_wait_event_set(nevents) \
	CreateWaitEventSet(NULL, (nevents))
#else
#define cal_create_wait_event_set(nevents) \
	CreateWaitEventSet(CurrentMemoryContext, (nevents))
#endif

/* PostgreSQL 17 numbers a backend's PGPROC with MyProcNumber. */
#if PG_VERSION_NUM >= 170000
#define cal_my_proc_number() MyProcNumber
#else
#define cal_my_proc_number() (MyProc->pgprocno)
#endif

/*
 * PostgreSQL 17 ends a transaction that outlives transaction_timeout with
 * FATAL, from an interrupt of its own.
 */
#if PG_VERSION_NUM >= 170000
#define cal_transaction_timeout_pending() \
	(TransactionTimeoutPending && TransactionTimeout > 0)
#else
#define cal_transaction_timeout_pending() false
#endif

/*
 * CURLOPT_QUICK_EXIT (7.87) lets a cancelled transfer skip joining the
 * resolver thread; older libcurl simply waits for it.
 */
#if LIBCURL_VERSION_NUM >= 0x075700
#define CAL_HAVE_CURLOPT_QUICK_EXIT 1
#endif

/* CURLOPT_PROTOCOLS_STR (7.85) replaces the deprecated bitmask option. */
#if LIBCURL_VERSION_NUM >= 0x075500
#define CAL_HAVE_CURLOPT_PROTOCOLS_STR 1
#endif

/*
 * PostgreSQL 16 folded pg_proc_aclcheck and pg_namespace_aclcheck into
 * object_aclcheck, which names the catalog by its relation id.
 */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#define cal_proc_aclcheck(proc, role, mode) \
	object_aclcheck(ProcedureRelationId, (proc), (role), (mode))
#define cal_namespace_aclcheck(nsp, role, mode) \
	object_aclcheck(NamespaceRelationId, (nsp), (role), (mode))
#else
#define cal_proc_aclcheck(proc, role, mode) pg_proc_aclcheck((proc), (role), (mode))
#define cal_namespace_aclcheck(nsp, role, mode) \
	pg_namespace_aclcheck((nsp), (role), (mode))
#endif

#endif							/* CAL_REFRESH_COMPAT_H */
