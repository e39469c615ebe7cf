/* walk_shapes.c - allocations under every frame shape the hook's own stack
 * walk must either get right or decline (built with -O2, see e2e.cmake):
 * plain recursion (CFA from rsp), variable-length arrays (CFA from rbp),
 * functions that keep values in rbp, a realigned stack (CFA by
 * expression: declined), a signal handler (declined at the signal frame),
 * longjmp out of deep frames (the walk's memo of the last stack must notice
 * the words that changed), a coroutine on a stack of its own, stacks deeper
 * than the frame limit, and threads.  One block in LEAK_EVERY stays live,
 * so that the report's tracebacks show every walk's result.
 *
 * usage: walk_shapes [ROUNDS]   (default 300) */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "e2e_common.h"

#define NOINLINE __attribute__((noinline))
#define KEEP_FRAME() __asm__ volatile("" ::: "memory") /* no tail call */
#define LEAK_EVERY 8

static void *volatile sink;
static __thread unsigned calls;

NOINLINE static void leaf(size_t n)
{
    void *p = malloc(n);
    sink = p;
    if (++calls % LEAK_EVERY != 0)
        free(p);
}

NOINLINE static long rec(int depth, long x)
{
    if (depth <= 0) {
        leaf(16 + (size_t)(x & 63));
        return x;
    }
    long r = rec(depth - 1, x * 3 + 1) + 1;
    KEEP_FRAME();
    return r;
}

NOINLINE static long vla(int depth, int n)
{
    char buf[n];
    memset(buf, depth, (size_t)n);
    if (depth <= 0) {
        leaf(32);
        return buf[n - 1];
    }
    long r = vla(depth - 1, n + 8) + buf[0];
    KEEP_FRAME();
    return r;
}

NOINLINE static long aligned(int depth)
{
    char buf[64] __attribute__((aligned(64)));
    memset(buf, depth, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
    if (depth <= 0) {
        leaf(48);
        return buf[1];
    }
    return aligned(depth - 1) + buf[2];
}

/* Enough values live across the call that rbp holds one of them. */
NOINLINE static long regs(int depth, long a, long b, long c, long d, long e, long f)
{
    long g = a * b + 1, h = c * d + 2, i = e * f + 3, j = a + f, k = b + e, l = c + d;
    if (depth <= 0) {
        leaf(24);
        return g + h;
    }
    long r = regs(depth - 1, g, h, i, j, k, l);
    return r + g + h + i + j + k + l;
}

/* The three shapes nested in one stack, depths varying call by call. */
NOINLINE static long mixed(int i)
{
    switch (i % 3) {
    case 0:
        return rec(i % 5, i) + vla(i % 4, 8 + i % 16);
    case 1:
        return vla(i % 3, 16) + regs(i % 6, i, i + 1, i + 2, i + 3, i + 4, i + 5);
    default:
        return regs(i % 4, 1, 2, 3, 4, 5, i) + rec(i % 9, i);
    }
}

static jmp_buf jump_back;

NOINLINE static int jump_deep(int depth)
{
    if (depth <= 0) {
        leaf(40);
        if (depth == 0)
            longjmp(jump_back, 1);
        return depth;
    }
    int r = jump_deep(depth - 1);
    KEEP_FRAME();
    return r;
}

/* Allocates depth frames deep, jumps back out, allocates again shallower
 * over the same stack words. */
NOINLINE static long jump_round(int depth, int r)
{
    if (!setjmp(jump_back))
        jump_deep(depth);
    return rec(r % 3, r);
}

static void on_usr1(int sig)
{
    (void)sig;
    leaf(56);
}

NOINLINE static void raise_deep(int depth)
{
    if (depth <= 0) {
        raise(SIGUSR1);
        return;
    }
    raise_deep(depth - 1);
    KEEP_FRAME();
}

static ucontext_t main_uc, co_uc;

static void co_body(void)
{
    for (int i = 0;; i++) {
        rec(i % 7, i);
        vla(i % 3, 24);
        swapcontext(&co_uc, &main_uc);
    }
}

static void *worker(void *arg)
{
    long t = (long)arg;
    for (int i = 0; i < 1500; i++) {
        rec((int)((i + t) % 30), i);
        mixed(i + (int)t);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 300;
    signal(SIGUSR1, on_usr1);
    void *co_stack =
        mmap(NULL, 1 << 18, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (co_stack == MAP_FAILED)
        return 1;
    getcontext(&co_uc);
    co_uc.uc_stack.ss_sp = co_stack;
    co_uc.uc_stack.ss_size = 1 << 18;
    co_uc.uc_link = &main_uc;
    makecontext(&co_uc, co_body, 0);

    long sum = 0;
    for (int r = 0; r < rounds; r++) {
        for (int d = 0; d < 40; d += 3)
            sum += rec(d, r);
        sum += rec(100 + r % 5, r); /* deeper than the frame limit */
        for (int i = 0; i < 12; i++)
            sum += mixed(r * 12 + i);
        sum += aligned(r % 4);
        sum += jump_round(5 + r % 20, r);
        raise_deep(r % 6);
        swapcontext(&main_uc, &co_uc);
    }
    pthread_t th[3];
    for (long t = 0; t < 3; t++)
        pthread_create(&th[t], NULL, worker, (void *)t);
    for (int t = 0; t < 3; t++)
        pthread_join(th[t], NULL);
    e2e_say(1, "walk_shapes: done %d\n", rounds);
    return sum == 42 ? 3 : 0;
}
