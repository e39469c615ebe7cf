/* hook_walk.h - the hook's own stack walker (part of libtmtop-hook.so).
 *
 * A walk for the common x86-64 frame: the CFA is rsp or rbp plus a
 * constant, the return address sits at CFA-8, rbp is unchanged or saved at
 * a constant offset from the CFA.  Each code address's rule is read once
 * from the module's .eh_frame (found through _dl_find_object and
 * .eh_frame_hdr) and kept in a lock-free table.  Anything else (no unwind
 * table, a signal frame, a CFA or register given by an expression, a stack
 * the walk cannot bound) makes the walk decline, and the caller uses
 * libunwind for the whole stack.  Where it does not decline, it returns what
 * libunwind's unw_backtrace returns for the same stack: the same return
 * addresses, the same end (a frame whose return address is undefined, or a
 * return address below 0x4000), the same cap.
 *
 * Same rules as hook_internal.h: no malloc, no stdio, errno preserved. */
#ifndef TMTOP_HOOK_WALK_H
#define TMTOP_HOOK_WALK_H

#include <stdint.h>

/* The registers of the frame the walk starts in: an address inside it,
 * and its rsp and rbp at that address. */
struct tm_unw_start {
    uint64_t ip, sp, bp;
};

/* Reads the calling function's registers.  Must be inlined into the
 * function whose frame the walk starts from. */
#define TM_UNW_START(s)                                                                            \
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"                          \
                     : "=r"((s).ip), "=r"((s).sp), "=r"((s).bp))

/* Once, before the first walk (the constructor).  0 when the walker is
 * unavailable (no _dl_find_object, no memory): every walk then declines. */
int tm_unwind_init(void);

/* Fills buf[0..cap): buf[0] is s->ip, then each caller's return address.
 * Returns the number of entries, or 0 when the walk declines.  same (may be
 * NULL): set to 1 when the answer is exactly this thread's last walk's,
 * and then buf beyond buf[0] is not filled (the caller kept what it made
 * of that answer); 0 otherwise. */
unsigned tm_unwind_walk(uint64_t *buf, unsigned cap, const struct tm_unw_start *s, int *same);

/* A module was unloaded: forget the rules read from it. */
void tm_unwind_forget(void);

/* Walks done, declined, and done from the memo of the thread's last walk,
 * since the start (approximate under threads). */
void tm_unwind_counts(uint64_t *done, uint64_t *declined, uint64_t *reused);

#endif
