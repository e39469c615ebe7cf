/* hard_dlopen.c - one thread dlopens and dlcloses a plugin in a loop while
 * others allocate: the hook's module tracking (dl_iterate_phdr, the loader's
 * lock) must not deadlock against the allocation path.
 *
 * usage: hard_dlopen PLUGIN.so ROUNDS ALLOCS_PER_THREAD
 * Prints "dlopen: rounds=R" and exits 0. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "e2e_common.h"

static atomic_int stop;
static long allocs;

static void *churn(void *arg)
{
    (void)arg;
    for (long i = 0; i < allocs || !atomic_load(&stop); i++)
        free(malloc(8 + (size_t)(i % 100)));
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    long rounds = atol(argv[2]);
    allocs = atol(argv[3]);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, churn, NULL) != 0)
            return 3;
    long done = 0;
    for (long r = 0; r < rounds; r++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            e2e_say(2, "dlopen: %s\n", dlerror());
            return 4;
        }
        void (*make)(int, void **) = (void (*)(int, void **))dlsym(h, "hard_plugin_make");
        void *blocks[4];
        if (make) {
            make(4, blocks);
            for (int i = 0; i < 4; i++)
                free(blocks[i]);
        }
        dlclose(h);
        done++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    e2e_say(1, "dlopen: rounds=%ld\n", done);
    return 0;
}
