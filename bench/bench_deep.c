/* Allocations under deep call stacks (25 frames and more), from several
 * distinct call paths, one in 64 blocks leaked: unwinding cost and stack
 * deduplication.  usage: bench_deep [ALLOCATIONS]   (default 2*10^6) */
#include "bench_common.h"

static void **leaks;
static long nleaks;

__attribute__((noinline)) static long descend(int depth, long i)
{
    if (depth > 0) {
        long r = descend(depth - 1, i) + 1;
        __asm__ volatile("" : : : "memory"); /* no tail call: keep the frame */
        return r;
    }
    void *p = bench_keep(malloc(32 + (size_t)(i & 31)));
    if ((i & 63) == 0)
        leaks[nleaks++] = p;
    else
        free(p);
    return 0;
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 2000000);
    leaks = malloc(sizeof *leaks * (size_t)(n / 64 + 1));
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += descend(22 + (int)(i % 4), i); /* 4 distinct depths: 4 stacks */
    bench_keep(leaks);
    bench_report_rss();
    return sum == 0;
}
