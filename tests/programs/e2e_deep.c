/* e2e_deep.c - allocations at the bottom of a 100-deep recursion: the site
 * is the leaf's line whatever the depth; --frames caps the stack; and
 * --cumulative counts a stack once per frame, so the recursive call line
 * counts each block 100 times (tracemalloc's Snapshot.statistics does not
 * merge repeated frames). */
#include "e2e_common.h"

#define DEPTH 100

static void *keep[8];

static void *recurse(int depth)
{
    if (depth > 0)
        return recurse(depth - 1); /* @call:recurse */
    return malloc(64);             /* @site:deep_leaf */
}

int main(void)
{
    for (int i = 0; i < 3; i++)
        keep[i] = recurse(DEPTH); /* @call:call_deep */
    e2e_say(1, "deep: done\n");
    return 0;
}
