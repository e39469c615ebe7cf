/* hook_basic.c - the C allocation functions, in a known order, with known
 * sizes; a deep stack; and the environment as the program sees it. */
#include <malloc.h>
#include <stdint.h>
#include <unistd.h>

#include "hook_common.h"

static volatile size_t huge = SIZE_MAX / 2; /* realloc fails */
static void *v[16];
static void *same[3];

__attribute__((noinline)) static void run(void)
{
    hook_mark(HOOK_MARK_BEGIN);
    v[0] = malloc(1001);
    v[1] = calloc(3, 333);
    v[2] = realloc(NULL, 1002);
    v[3] = realloc(v[2], 5000); /* grow */
    v[4] = realloc(v[3], 100);  /* shrink */
    v[5] = realloc(v[4], 0);    /* frees, returns NULL */
    v[6] = realloc(v[0], huge); /* fails: v[0] unchanged */
    if (posix_memalign(&v[7], 64, 1003) != 0)
        v[7] = NULL;
    v[8] = aligned_alloc(128, 1024);
    v[9] = memalign(256, 1005);
    v[10] = valloc(1006);
    v[11] = pvalloc(1007);
    free(NULL);
    for (int i = 0; i < 3; i++)
        same[i] = malloc(1100); /* one site: one stack */
    free(v[0]);
    free(v[1]);
    for (int i = 7; i <= 11; i++)
        free(v[i]);
    for (int i = 0; i < 3; i++)
        free(same[i]);
    hook_mark(HOOK_MARK_END);
}

__attribute__((noinline)) static void deep(int n)
{
    if (n > 0) {
        deep(n - 1);
        return;
    }
    free(malloc(8001));
}

int main(void)
{
    run();
    deep(20);
    usleep(50 * 1000); /* room for timer ticks */
    for (int i = 0; i < 12; i++)
        printf("v%d=%p\n", i, v[i]);
    for (int i = 0; i < 3; i++)
        printf("same%d=%p\n", i, same[i]);
    printf("run=%p\n", (void *)run);
    hook_print_env();
    return 0;
}
