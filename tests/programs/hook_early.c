/* hook_early.c - a library preloaded after the hook whose constructor runs
 * before the hook's and allocates: the hook starts in that malloc, with an
 * empty stack (the unwinder is loaded by its constructor). */
#include <stdlib.h>

static void *keep;

__attribute__((constructor)) static void hook_early(void)
{
    keep = malloc(12345);
}
