/* e2e_threads.c - THREADS threads allocate BLOCKS blocks each, then free
 * them in four ways while every thread also churns (malloc + free) so
 * addresses freed by one thread are handed to another at once:
 *   i % 4 == 0  never freed (leaked)
 *   i % 4 == 1  grown by realloc in the next thread, which then frees it,
 *               while its owner churns
 *   i % 4 == 2  freed by main after the join
 *   i % 4 == 3  freed by the owner
 * Block (t, i) has block_size(t, i) bytes; tests/e2e/e2e.py computes the
 * expected totals with the same formula (keep the two in step).
 * Usage: e2e_threads [THREADS [BLOCKS [CHURN]]] */
#include <pthread.h>

#include "e2e_common.h"

#define MAX_THREADS 32

static long nthreads, nblocks, nchurn;
static void **slots[MAX_THREADS];
static pthread_barrier_t barrier;

static size_t block_size(long t, long i)
{
    return 8 + (size_t)((t * 131 + i * 17) % 200);
}

static void *worker(void *arg)
{
    long t = (long)arg;
    long next = (t + 1) % nthreads;
    for (long i = 0; i < nblocks; i++)
        slots[t][i] = malloc(block_size(t, i)); /* @site:t_slot */
    pthread_barrier_wait(&barrier);
    for (long i = 0; i < nblocks; i++) {
        if (i % 4 == 1)
            free(realloc(slots[next][i], 3 * block_size(next, i))); /* @site:t_realloc */
        if (i % 4 == 3)
            free(slots[t][i]);
    }
    for (long i = 0; i < nchurn; i++)
        free(malloc(block_size(t, i))); /* @site:t_churn */
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = e2e_arg(argc, argv, 1, 4);
    nblocks = e2e_arg(argc, argv, 2, 2000);
    nchurn = e2e_arg(argc, argv, 3, 5000);
    if (nthreads < 1 || nthreads > MAX_THREADS || nblocks < 0 || nchurn < 0)
        return 2;
    /* The slot tables are allocated here (one site, all freed at the end). */
    for (long t = 0; t < nthreads; t++)
        slots[t] = malloc((size_t)nblocks * sizeof(void *)); /* @site:t_table */

    /* Small stacks: glibc caches up to 40 MiB of joined threads' stacks, each
     * with its DTV (allocated by pthread_create) still live; with the default
     * 8 MiB stacks, how many stay cached would depend on ulimit -s. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t tid[MAX_THREADS];
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    for (long t = 0; t < nthreads; t++)
        pthread_create(&tid[t], &attr, worker, (void *)t); /* @libc:t_create */
    pthread_attr_destroy(&attr);
    for (long t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&barrier);

    for (long t = 0; t < nthreads; t++) {
        for (long i = 2; i < nblocks; i += 4)
            free(slots[t][i]);
    }
    /* The leaked blocks stay reachable through a table that outlives the
     * slot tables. */
    long nleak = 0;
    for (long t = 0; t < nthreads; t++)
        for (long i = 0; i < nblocks; i += 4)
            nleak++;
    void **leaked = malloc((size_t)nleak * sizeof(void *) + 1); /* @site:t_leaked */
    nleak = 0;
    for (long t = 0; t < nthreads; t++) {
        for (long i = 0; i < nblocks; i += 4)
            leaked[nleak++] = slots[t][i];
        free(slots[t]);
    }
    e2e_say(1, "threads: done %ld %ld %ld, %ld leaked\n", nthreads, nblocks, nchurn, nleak);
    return 0;
}
