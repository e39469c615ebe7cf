/* test_walk.c - the hook's own stack walk (src/tracer/hook_walk.c) on stacks
 * built by hand: return addresses into assembly functions whose CFI says
 * exactly what each frame looks like, laid out in an array on this test's
 * own stack.  Covers the rules (CFA from rsp and from rbp, saved rbp, the
 * outermost frame, a CFA by expression, no unwind table at all), the end of
 * a walk (return address below 0x4000, the cap), and the memo of the last
 * walk: every stack word it relies on is changed in turn and the walk must
 * see it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hook_walk.h"

/* Each function: a body after a call, whose CFI row is known.
 *   walk_sp_fn    CFA = rsp + 32
 *   walk_fp_fn    CFA = rbp + 16, rbp saved at CFA - 16
 *   walk_last_fn  return address undefined: the outermost frame
 *   walk_expr_fn  CFA by expression (*(rsp + 8)): declined
 *   walk_bp_fn    CFA = rbp + 16, rbp not saved */
__asm__(".text\n"
        ".p2align 4\n"
        "walk_target:\n"
        "  ret\n"
        ".p2align 4\n"
        ".globl walk_sp_fn\n"
        ".type walk_sp_fn, @function\n"
        "walk_sp_fn:\n"
        "  .cfi_startproc\n"
        "  sub $24, %rsp\n"
        "  .cfi_def_cfa_offset 32\n"
        "  call walk_target\n"
        ".globl walk_sp_ret\n"
        "walk_sp_ret:\n"
        "  nop\n"
        "  add $24, %rsp\n"
        "  .cfi_def_cfa_offset 8\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size walk_sp_fn, .-walk_sp_fn\n"
        ".p2align 4\n"
        ".globl walk_fp_fn\n"
        ".type walk_fp_fn, @function\n"
        "walk_fp_fn:\n"
        "  .cfi_startproc\n"
        "  push %rbp\n"
        "  .cfi_def_cfa_offset 16\n"
        "  .cfi_offset %rbp, -16\n"
        "  mov %rsp, %rbp\n"
        "  .cfi_def_cfa_register %rbp\n"
        "  call walk_target\n"
        ".globl walk_fp_ret\n"
        "walk_fp_ret:\n"
        "  nop\n"
        "  pop %rbp\n"
        "  .cfi_def_cfa %rsp, 8\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size walk_fp_fn, .-walk_fp_fn\n"
        ".p2align 4\n"
        ".globl walk_last_fn\n"
        ".type walk_last_fn, @function\n"
        "walk_last_fn:\n"
        "  .cfi_startproc\n"
        "  .cfi_undefined %rip\n"
        "  call walk_target\n"
        ".globl walk_last_ret\n"
        "walk_last_ret:\n"
        "  nop\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size walk_last_fn, .-walk_last_fn\n"
        ".p2align 4\n"
        ".globl walk_expr_fn\n"
        ".type walk_expr_fn, @function\n"
        "walk_expr_fn:\n"
        "  .cfi_startproc\n"
        "  .cfi_escape 0x0f, 0x03, 0x77, 0x08, 0x06\n" /* def_cfa_expression: breg7 8, deref */
        "  call walk_target\n"
        ".globl walk_expr_ret\n"
        "walk_expr_ret:\n"
        "  nop\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size walk_expr_fn, .-walk_expr_fn\n"
        ".p2align 4\n"
        ".globl walk_bp_fn\n"
        ".type walk_bp_fn, @function\n"
        "walk_bp_fn:\n"
        "  .cfi_startproc\n"
        "  .cfi_def_cfa %rbp, 16\n" /* rbp not saved here */
        "  call walk_target\n"
        ".globl walk_bp_ret\n"
        "walk_bp_ret:\n"
        "  nop\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size walk_bp_fn, .-walk_bp_fn\n");

extern const char walk_sp_ret[], walk_fp_ret[], walk_last_ret[], walk_expr_ret[], walk_bp_ret[];
#define SP_RET ((uint64_t)(uintptr_t)walk_sp_ret)
#define FP_RET ((uint64_t)(uintptr_t)walk_fp_ret)
#define LAST_RET ((uint64_t)(uintptr_t)walk_last_ret)
#define EXPR_RET ((uint64_t)(uintptr_t)walk_expr_ret)
#define BP_RET ((uint64_t)(uintptr_t)walk_bp_ret)

#define CAP 16
static uint64_t *mem; /* the fake stack: an array on main's stack */
#define AT(i) ((uint64_t)(uintptr_t)&mem[i])

/* Walks from a frame of walk_sp_fn at mem[0] (its body, looked up exactly)
 * with rbp = bp.  Returns the entries, -1 when declined. */
static int walk(uint64_t *out, unsigned cap, uint64_t bp)
{
    struct tm_unw_start s = {SP_RET, AT(0), bp};
    unsigned n = tm_unwind_walk(out, cap, &s, NULL);
    return n ? (int)n : -1;
}

static int same(const uint64_t *got, int n, const uint64_t *want, int m)
{
    if (n != m) {
        fprintf(stderr, "  walk gave %d entries, expected %d\n", n, m);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fprintf(stderr, "  entry %d: 0x%llx, expected 0x%llx\n", i, (unsigned long long)got[i],
                    (unsigned long long)want[i]);
            return 0;
        }
    }
    return 1;
}

#define WALK_IS(cap, bp, ...)                                                                      \
    do {                                                                                           \
        uint64_t want_[] = {__VA_ARGS__}, got_[CAP];                                               \
        int n_ = walk(got_, cap, bp);                                                              \
        CHECK(same(got_, n_, want_, (int)(sizeof want_ / sizeof want_[0])));                       \
    } while (0)

/* Frame 0 walk_sp_fn at mem[0]: CFA mem[4], return address mem[3]. */
static void rules(void)
{
    uint64_t out[CAP];
    memset(mem, 0, 64 * 8);
    /* sp -> fp (rbp = mem[8]: CFA mem[10], ra mem[9], rbp from mem[8]) -> last */
    mem[3] = FP_RET;
    mem[9] = LAST_RET;
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, LAST_RET);
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, LAST_RET); /* from the memo */
    /* sp -> fp -> fp (rbp from mem[8] = mem[16]: CFA mem[18], ra mem[17]) -> sp -> last */
    mem[8] = AT(16);
    mem[9] = FP_RET;
    mem[17] = SP_RET;
    mem[21] = LAST_RET; /* walk_sp_fn at mem[18]: CFA mem[22] */
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    /* The cap, and a longer cap after a capped walk (the memo dropped
     * first, so that the capped walk is the one remembered). */
    WALK_IS(3, AT(8), SP_RET, FP_RET, FP_RET);
    tm_unwind_forget();
    WALK_IS(3, AT(8), SP_RET, FP_RET, FP_RET);
    WALK_IS(3, AT(8), SP_RET, FP_RET, FP_RET);
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    WALK_IS(1, AT(8), SP_RET);
    /* A return address below 0x4000 ends the walk, unrecorded. */
    mem[21] = 0;
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET);
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET);
    mem[21] = LAST_RET; /* the slot that ended it changes: the walk goes on */
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    /* A CFA by expression, and code without unwind tables: declined. */
    mem[21] = EXPR_RET;
    CHECK_I64(walk(out, CAP, AT(8)), -1);
    void *heap = malloc(64);
    mem[21] = (uint64_t)(uintptr_t)heap + 16;
    CHECK_I64(walk(out, CAP, AT(8)), -1);
    free(heap);
    /* A CFA below the frame's own rsp, or above the stack: declined.
     * walk_bp_fn at mem[22] takes its CFA from rbp, which comes from mem[16]. */
    mem[21] = BP_RET;
    mem[16] = AT(30);
    mem[31] = LAST_RET;
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, BP_RET, LAST_RET);
    mem[16] = AT(2);
    CHECK_I64(walk(out, CAP, AT(8)), -1);
    mem[16] = UINT64_MAX - 64;
    CHECK_I64(walk(out, CAP, AT(8)), -1);
}

/* The memo: a walk answered from it must still be the walk's answer after
 * any word it read changes. */
static void memo(void)
{
    memset(mem, 0, 64 * 8);
    /* sp -> fp -> fp -> sp -> last, as above */
    mem[3] = FP_RET;
    mem[8] = AT(16);
    mem[9] = FP_RET;
    mem[17] = SP_RET;
    mem[21] = LAST_RET;
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    /* A return-address slot. */
    mem[17] = LAST_RET;
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, LAST_RET);
    mem[17] = SP_RET;
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    /* A saved rbp: the third frame's CFA moves (rbp = mem[24]: CFA mem[26]). */
    mem[8] = AT(24);
    mem[25] = LAST_RET;
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, LAST_RET);
    mem[8] = AT(16);
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    /* rbp itself, live at the first frame (the second frame's CFA comes from
     * it): the same rsp and entry with another rbp is another stack
     * (rbp = mem[30]: CFA mem[32], ra mem[31]). */
    mem[31] = LAST_RET;
    WALK_IS(CAP, AT(30), SP_RET, FP_RET, LAST_RET);
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    /* A stack that joins the remembered one further out: frame 0 differs
     * (walk_fp_fn at mem[0] with rbp = mem[2]: CFA mem[4], ra mem[3]),
     * the rest is the same. */
    uint64_t got[CAP];
    mem[2] = AT(8);
    struct tm_unw_start s = {FP_RET, AT(0), AT(2)}; /* looked up exactly: walk_fp_fn's body */
    unsigned n = tm_unwind_walk(got, CAP, &s, NULL);
    uint64_t want[] = {FP_RET, FP_RET, FP_RET, SP_RET, LAST_RET};
    CHECK(same(got, (int)n, want, 5));
    /* "The same as the last walk": only for the whole stack unchanged. */
    struct tm_unw_start s0 = {SP_RET, AT(0), AT(8)};
    int again = -1;
    CHECK_U64(tm_unwind_walk(got, CAP, &s0, &again), 5);
    CHECK_I64(again, 0); /* the last walk started in walk_fp_fn */
    CHECK_U64(tm_unwind_walk(got, CAP, &s0, &again), 5);
    CHECK_I64(again, 1);
    CHECK_U64(tm_unwind_walk(got, 4, &s0, &again), 4);
    CHECK_I64(again, 0); /* another cap */
    CHECK(again == 0 && got[3] == SP_RET);
    CHECK_U64(tm_unwind_walk(got, CAP, &s0, &again), 5);
    CHECK_I64(again, 0);
    mem[17] = LAST_RET;
    CHECK_U64(tm_unwind_walk(got, CAP, &s0, &again), 4);
    CHECK_I64(again, 0);
    mem[17] = SP_RET;
    CHECK_U64(tm_unwind_walk(got, CAP, &s0, &again), 5);
    CHECK_I64(again, 0);
    CHECK_U64(tm_unwind_walk(got, CAP, &s0, &again), 5);
    CHECK_I64(again, 1);
    /* A module went away: the rules are read again, same answer. */
    tm_unwind_forget();
    WALK_IS(CAP, AT(8), SP_RET, FP_RET, FP_RET, SP_RET, LAST_RET);
    uint64_t done, declined, reused;
    tm_unwind_counts(&done, &declined, &reused);
    CHECK(reused > 0);
    CHECK(declined > 0);
}

int main(void)
{
    uint64_t stack[64]; /* on the main thread's stack, as the walk requires */
    mem = stack;
    if (!tm_unwind_init()) {
        fprintf(stderr, "test_walk: the own walk is not available here\n");
        return 77;
    }
    /* The walk reads this thread's stack: a real frame walks too. */
    uint64_t buf[CAP];
    struct tm_unw_start s;
    TM_UNW_START(s);
    CHECK(tm_unwind_walk(buf, CAP, &s, NULL) >= 2);
    rules();
    memo();
    return check_done("test_walk");
}
