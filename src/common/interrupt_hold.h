/*-------------------------------------------------------------------------
 *
 * interrupt_hold.h
 *		Holding back the interrupts that would end the statement or the
 *		session while requests that may issue a pair are on the wire.
 *
 *-------------------------------------------------------------------------
 */
#ifndef INTERRUPT_HOLD_H
#define INTERRUPT_HOLD_H

/* in interrupt_hold.c */
extern void interrupt_hold_begin(void);
extern void interrupt_hold_end(void);
extern void interrupt_hold_end_quietly(void);
extern void interrupt_hold_forget(void);
extern void interrupt_hold_renew(void);
extern bool interrupt_hold_active(void);
extern bool interrupt_hold_ending_pending(void);
extern void interrupt_hold_serve_others(void);

#endif							/* INTERRUPT_HOLD_H */
