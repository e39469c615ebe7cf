/* Many small malloc/free pairs in one thread: the hook's per-event cost.
 * usage: bench_small [PAIRS]   (default 10^7) */
#include "bench_common.h"

int main(int argc, char **argv)
{
    long pairs = bench_arg(argc, argv, 1, 10000000);
    for (long i = 0; i < pairs; i++)
        free(bench_keep(malloc(16 + (size_t)(i & 63))));
    bench_report_rss();
    return 0;
}
