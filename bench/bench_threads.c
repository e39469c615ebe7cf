/* The same small malloc/free pairs in 4 threads at once: lock contention.
 * usage: bench_threads [PAIRS_PER_THREAD] [THREADS]   (default 2.5*10^6, 4) */
#include <pthread.h>

#include "bench_common.h"

static long pairs;

static void *worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < pairs; i++)
        free(bench_keep(malloc(16 + (size_t)(i & 63))));
    return NULL;
}

int main(int argc, char **argv)
{
    pairs = bench_arg(argc, argv, 1, 2500000);
    long n = bench_arg(argc, argv, 2, 4);
    pthread_t t[64];
    if (n < 1 || n > 64)
        return 2;
    for (long i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (long i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    bench_report_rss();
    return 0;
}
