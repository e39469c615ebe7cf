/* realloc growth: buffers grown a few bytes at a time, then freed.
 * usage: bench_realloc [BUFFERS] [STEPS]   (default 20000 buffers x 200 steps) */
#include "bench_common.h"

int main(int argc, char **argv)
{
    long buffers = bench_arg(argc, argv, 1, 20000);
    long steps = bench_arg(argc, argv, 2, 200);
    for (long b = 0; b < buffers; b++) {
        char *p = NULL;
        for (long s = 1; s <= steps; s++) {
            p = realloc(p, (size_t)s * 24);
            p[0] = (char)s;
        }
        free(bench_keep(p));
    }
    bench_report_rss();
    return 0;
}
