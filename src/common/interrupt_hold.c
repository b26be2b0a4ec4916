/*-------------------------------------------------------------------------
 *
 * interrupt_hold.c
 *		Holding back the interrupts that would end the statement or the
 *		session while requests that may issue a pair are on the wire.
 *
 * Cal.com rotates a pair the moment it answers.  An interrupt that ends
 * the statement (a cancel, statement_timeout) or the session (a
 * termination, a client that went away, transaction_timeout, the idle
 * timeouts) between that answer and the pair's hand-over to the journal
 * loses the pair.  So from the first request sent until the hand-over,
 * every interrupt is held (HOLD_INTERRUPTS: even the CHECK_FOR_INTERRUPTS
 * a log line makes does nothing), and the waits ask this file instead:
 * an interrupt that would end things starts the wind-down (at most
 * cal_refresh.cancel_grace), and the harmless ones (a shared-memory
 * barrier, a request to log memory contexts) are served at once, so that
 * a long batch does not keep other sessions waiting on them.  The hold
 * ends with interrupt_hold_end, where a held interrupt takes effect.
 *
 * This is the only file that holds or resumes interrupts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "storage/procsignal.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"

#include "compat.h"
#include "interrupt_hold.h"

/*
 * From libpq/libpq.h, whose include of libpq-be.h wants GSSAPI's headers
 * on a server built with it: a build dependency for one prototype.
 */
extern bool pq_check_connection(void);

/* Holds begun and not ended, in this backend. */
static int	hold_depth = 0;

/*
 * Holds every interrupt from here to interrupt_hold_end.  Nests; an error
 * in between ends every hold (see interrupt_hold_forget).
 */
void
interrupt_hold_begin(void)
{
	HOLD_INTERRUPTS();
	hold_depth++;
}

/*
 * Ends the innermost hold; when it was the last, an interrupt held back
 * takes effect here (it raises, or ends the session).
 */
void
interrupt_hold_end(void)
{
	Assert(hold_depth > 0);
	hold_depth--;
	RESUME_INTERRUPTS();
	CHECK_FOR_INTERRUPTS();
}

/*
 * An error escaped the held section: errfinish has reset the holdoff
 * count already (every hold is gone); this forgets ours to match.
 */
void
interrupt_hold_forget(void)
{
	hold_depth = 0;
}

/*
 * An error was caught within a hold (a subtransaction rolled back): as
 * for any error, errfinish reset the holdoff count, so the hold is taken
 * again, as deep as it was.
 */
void
interrupt_hold_renew(void)
{
	int			i;

	for (i = 0; i < hold_depth; i++)
		HOLD_INTERRUPTS();
}

/*
 * Ends the innermost hold on the way out of an error, which ends the
 * statement anyway: a held interrupt is served after it.
 */
void
interrupt_hold_end_quietly(void)
{
	Assert(hold_depth > 0);
	hold_depth--;
	RESUME_INTERRUPTS();
}

/* Is a hold of ours in force (the waits then ask before serving)? */
bool
interrupt_hold_active(void)
{
	return hold_depth > 0;
}

/*
 * Is an interrupt pending that, once served, would end the statement or
 * the session?  A due check of the client's connection is made here
 * (ProcessInterrupts would make it and end the session at once): a lost
 * client counts, a live one leaves the check pending for later.
 */
bool
interrupt_hold_ending_pending(void)
{
	if (!InterruptPending)
		return false;
	if (CheckClientConnectionPending && !ClientConnectionLost &&
		client_connection_check_interval > 0 && MyProcPort != NULL &&
		!pq_check_connection())
		ClientConnectionLost = true;
	return ProcDiePending || QueryCancelPending || ClientConnectionLost ||
		(IdleInTransactionSessionTimeoutPending &&
		 IdleInTransactionSessionTimeout > 0) ||
		(IdleSessionTimeoutPending && IdleSessionTimeout > 0) ||
		cal_transaction_timeout_pending();
}

/*
 * Serves, while a hold is in force, the interrupts that end nothing: a
 * shared-memory barrier (other sessions wait for every backend to absorb
 * it) and a request to log memory contexts.  The rest waits for the end
 * of the hold.
 */
void
interrupt_hold_serve_others(void)
{
	if (ProcSignalBarrierPending)
		ProcessProcSignalBarrier();
	if (LogMemoryContextPending)
		ProcessLogMemoryContextInterrupt();
}
