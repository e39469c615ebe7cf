/* e2e_realloc.c - realloc chains: grow in place or by a move, grow into
 * mmap'ed chunks and mremap, shrink, realloc(NULL, n), realloc(p, 0), a
 * failed realloc, reallocarray, and a doubling buffer.  A block moved by
 * realloc belongs to the realloc call's line; after a failed realloc the
 * old block keeps its old site and size. */
#include "e2e_common.h"

static volatile size_t huge = (size_t)1 << 62; /* a realloc that must fail */
static void *keep[16];

int main(void)
{
    int k = 0;

    /* The chain: only the last realloc's line holds a live block. */
    char *p = malloc(16);   /* @site:r_start */
    keep[k++] = malloc(16); /* @site:r_blocker */
    p = realloc(p, 32);     /* @site:r_grow */
    p = realloc(p, 4096);   /* @site:r_move */
    p = realloc(p, 300000); /* @site:r_mmap */
    p = realloc(p, 600000); /* @site:r_mremap */
    p = realloc(p, 40);     /* @site:r_shrink */
    keep[k++] = p;

    /* realloc(NULL, n) is a malloc at its own line. */
    void *q = realloc(NULL, 24); /* @site:r_null */

    /* A failed realloc is no allocation and leaves q where it was. */
    void *f = realloc(q, huge); /* @site:r_fail */
    keep[k++] = f ? f : q;

    /* glibc's realloc(x, 0) frees x and returns NULL. */
    void *x = malloc(50);     /* @site:r_zero_src */
    void *x2 = realloc(x, 0); /* @site:r_zero */

    /* Same size: still the realloc's block. */
    void *y = malloc(64); /* @site:r_same_src */
    y = realloc(y, 64);   /* @site:r_same */
    keep[k++] = y;

    /* A doubling buffer: 1, 2, 4, ... 65536 bytes. */
    char *buf = NULL;
    for (size_t cap = 1; cap <= 65536; cap *= 2) {
        buf = realloc(buf, cap); /* @site:r_loop */
        buf[cap - 1] = 1;
    }
    keep[k++] = buf;

    /* reallocarray goes through realloc inside glibc. */
    keep[k++] = reallocarray(NULL, 10, 12); /* @site:r_array */

    e2e_say(1, "realloc: done %s\n", f == NULL && x2 == NULL ? "ok" : "BAD");
    return 0;
}
