/* e2e_memalign.c - the aligned allocation family: posix_memalign,
 * aligned_alloc, memalign, valloc and pvalloc each reach only their own
 * symbol in glibc, so each must be traced on its own.  Sizes are the bytes
 * requested (pvalloc(5000) counts 5000, not the page it really takes).
 * Usage: e2e_memalign [pvalloc] */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>

#include "e2e_common.h"

static void *keep[64];

int main(int argc, char **argv)
{
    int with_pvalloc = argc > 1 && !strcmp(argv[1], "pvalloc");
    int k = 0, bad = 0;
    void *p;

    for (int i = 0; i < 3; i++) {
        if (posix_memalign(&p, 64, 100) == 0) /* @site:posix_memalign */
            keep[k++] = p;
        bad |= (uintptr_t)p % 64 != 0;
    }
    /* An invalid alignment fails with EINVAL and allocates nothing. */
    p = NULL;
    bad |= posix_memalign(&p, 24, 100) != EINVAL; /* @site:posix_memalign_bad */

    for (int i = 0; i < 2; i++)
        keep[k++] = aligned_alloc(256, 512); /* @site:aligned_alloc */

    keep[k++] = memalign(128, 1000); /* @site:memalign */
    keep[k++] = valloc(3000);        /* @site:valloc */
    /* valgrind 3.19 aborts on pvalloc: e2e_valgrind runs without it. */
    if (with_pvalloc)
        keep[k++] = pvalloc(5000); /* @site:pvalloc */

    /* The same functions, freed: nothing stays at these lines. */
    for (int i = 0; i < 10; i++) {
        void *a, *b, *c, *d;
        if (posix_memalign(&a, 32, 48) == 0) /* @site:pm_freed */
            free(a);
        b = aligned_alloc(16, 64); /* @site:aa_freed */
        c = memalign(4096, 4096);  /* @site:ma_freed */
        d = valloc(10);            /* @site:va_freed */
        free(b);
        free(c);
        free(d);
    }

    for (int i = 0; i < k; i++)
        bad |= keep[i] == NULL;
    e2e_say(1, "memalign: done %s\n", bad ? "BAD" : "ok");
    return 0;
}
