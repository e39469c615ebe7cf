/* hard_threads.c - NTHREADS threads allocate and free through a shared slot
 * table: every block is stored into a random slot with an atomic exchange and
 * the block that was there is freed by the exchanging thread, so most blocks
 * die in another thread than the one that made them and freed addresses are
 * reused across threads at once.
 *
 * usage: hard_threads NTHREADS ITERATIONS
 * Prints "user allocations=A live_bytes=B live_blocks=C max_live_bytes=M":
 * the exact allocation calls made at the @site line, the bytes and blocks
 * left live in the slots at exit, and a bound on the bytes the site can have
 * live at once (slots + one block in hand per thread). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_common.h"

#define NSLOTS 1024
#define MAXSZ 256

static _Atomic(uint64_t *) slots[NSLOTS];
static long iterations;

static void *worker(void *arg)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
    for (long i = 0; i < iterations; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t size = 16 + (size_t)(x % (MAXSZ - 16 + 1));
        uint64_t *p = malloc(size); /* @site:slot */
        if (!p)
            abort();
        p[0] = size; /* the block remembers its requested size */
        uint64_t *old = atomic_exchange(&slots[(x >> 20) % NSLOTS], p);
        free(old);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 8;
    iterations = argc > 2 ? atol(argv[2]) : 100000;
    if (nthreads < 1 || nthreads > 64 || iterations < 0)
        return 2;
    pthread_t t[64];
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0)
            return 3;
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    uint64_t bytes = 0, blocks = 0;
    for (int i = 0; i < NSLOTS; i++) {
        uint64_t *p = atomic_load(&slots[i]);
        if (p) {
            bytes += p[0];
            blocks++;
        }
    }
    e2e_say(1, "user allocations=%llu live_bytes=%llu live_blocks=%llu max_live_bytes=%llu\n",
            (unsigned long long)nthreads * (unsigned long long)iterations,
            (unsigned long long)bytes, (unsigned long long)blocks,
            (unsigned long long)(NSLOTS + nthreads) * MAXSZ);
    return 0; /* the slots stay live: they are the leak the report must show */
}
