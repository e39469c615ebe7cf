/* e2e_threadchurn.c - waves of short-lived threads, to check that no event
 * is lost or misordered when threads come and go:
 *   - each wave runs THREADS threads at once (more than the hook keeps
 *     per-thread buffers for, so some threads share the common buffer);
 *   - each thread allocates BLOCKS blocks, then frees the even ones of the
 *     next thread's (addresses handed between threads), and keeps its odd
 *     ones (leaked);
 *   - each thread sets a thread-specific value whose destructor runs at the
 *     thread's exit, after the hook's own: it frees the thread's 24-byte
 *     block and leaks a 40-byte one;
 *   - later waves reuse the buffers the earlier waves' threads left.
 * Block (w, t, i) has block_size(w, t, i) bytes; tests/e2e/e2e.py computes
 * the expected totals with the same formula (keep the two in step).
 * Usage: e2e_threadchurn [WAVES [THREADS [BLOCKS]]] */
#include <pthread.h>

#include "e2e_common.h"

#define MAX_THREADS 128

static long nwaves, nthreads, nblocks, wave;
static void **blocks[MAX_THREADS];
static void *exit_leaks[64 * MAX_THREADS];
static long exit_count;
static pthread_barrier_t barrier;
static pthread_key_t key;

static size_t block_size(long w, long t, long i)
{
    return 16 + (size_t)((w * 7 + t * 13 + i * 29) % 97);
}

static void at_exit(void *p)
{
    free(p);
    long k = __atomic_fetch_add(&exit_count, 1, __ATOMIC_RELAXED);
    exit_leaks[k] = malloc(40); /* @site:tc_exit */
}

static void *worker(void *arg)
{
    long t = (long)arg, next = (t + 1) % nthreads;
    pthread_setspecific(key, malloc(24)); /* @site:tc_tls */
    for (long i = 0; i < nblocks; i++)
        blocks[t][i] = malloc(block_size(wave, t, i)); /* @site:tc_block */
    pthread_barrier_wait(&barrier);
    for (long i = 0; i < nblocks; i += 2)
        free(blocks[next][i]);
    for (long i = 0; i < 200; i++)
        free(malloc(32)); /* @site:tc_churn */
    return NULL;
}

int main(int argc, char **argv)
{
    nwaves = e2e_arg(argc, argv, 1, 3);
    nthreads = e2e_arg(argc, argv, 2, 80);
    nblocks = e2e_arg(argc, argv, 3, 300);
    if (nwaves < 1 || nwaves > 64 || nthreads < 1 || nthreads > MAX_THREADS || nblocks < 0)
        return 2;
    for (long t = 0; t < nthreads; t++)
        blocks[t] = malloc((size_t)nblocks * sizeof(void *) + 1); /* @site:tc_table */
    pthread_key_create(&key, at_exit);
    /* Small stacks: glibc caches joined threads' stacks (and the DTV that
     * pthread_create allocated with each) up to 40 MiB. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    pthread_t tid[MAX_THREADS];
    for (wave = 0; wave < nwaves; wave++) {
        pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
        for (long t = 0; t < nthreads; t++)
            pthread_create(&tid[t], &attr, worker, (void *)t); /* @libc:tc_create */
        for (long t = 0; t < nthreads; t++)
            pthread_join(tid[t], NULL);
        pthread_barrier_destroy(&barrier);
    }
    pthread_attr_destroy(&attr);
    for (long t = 0; t < nthreads; t++)
        free(blocks[t]);
    e2e_say(1, "threadchurn: done %ld %ld %ld, %ld exits\n", nwaves, nthreads, nblocks, exit_count);
    return 0;
}
