/* hook_threads.c - four threads allocating and freeing at once, each freeing
 * blocks the others allocated: the counts must be exact and no address may
 * be handed out while the stream still has it live. */
#include <pthread.h>
#include <stdint.h>

#include "hook_common.h"

#define ROUNDS 5000
#define SLOTS 64

static void *slots[SLOTS];

static void *worker(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    size_t size = 6001 + t;
    uint32_t x = 2463534242u * (uint32_t)(t + 1);
    for (int i = 0; i < ROUNDS; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        void *p = malloc(size);
        free(__atomic_exchange_n(&slots[x % SLOTS], p, __ATOMIC_ACQ_REL));
    }
    return NULL;
}

int main(void)
{
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++)
        free(slots[i]);
    printf("done\n");
    return 0;
}
