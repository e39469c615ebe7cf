/* hard_scale.c - scale targets.
 *
 * usage: hard_scale live NBLOCKS NSTACKS
 *   leaves NBLOCKS blocks live, block i allocated through stack i % NSTACKS;
 *   the stacks differ by the path of return addresses through two distinct
 *   call sites per level (17 levels: up to 131072 stacks).  Block i has size
 *   16 + i % 7.
 * usage: hard_scale calls N
 *   N malloc/free pairs of 32 bytes from one site (throughput). */
#include <stdlib.h>
#include <string.h>

#include "e2e_common.h"

#define LEVELS 17

static void *go(unsigned k, int level, size_t size);

__attribute__((noinline)) static void *via_zero(unsigned k, int level, size_t size)
{
    void *p = go(k, level + 1, size);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return p;
}

__attribute__((noinline)) static void *via_one(unsigned k, int level, size_t size)
{
    void *p = go(k, level + 1, size);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) static void *go(unsigned k, int level, size_t size)
{
    void *p;
    if (level == LEVELS)
        p = malloc(size); /* @site:scale */
    else if ((k >> level) & 1)
        p = via_one(k, level, size);
    else
        p = via_zero(k, level, size);
    __asm__ volatile("" ::: "memory");
    return p;
}

int main(int argc, char **argv)
{
    if (argc > 3 && !strcmp(argv[1], "live")) {
        long n = atol(argv[2]);
        unsigned stacks = (unsigned)atol(argv[3]);
        if (n < 0 || stacks < 1 || stacks > (1u << LEVELS))
            return 2;
        void **keep = malloc((size_t)n * sizeof *keep + 1); /* @site:table */
        for (long i = 0; i < n; i++)
            keep[i] = go((unsigned)(i % stacks), 0, 16 + (size_t)(i % 7));
        e2e_say(1, "scale: %ld blocks\n", n);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "calls")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) {
            void *p = malloc(32); /* @site:calls */
            __asm__ volatile("" : : "r"(p) : "memory");
            free(p);
        }
        e2e_say(1, "scale: %ld calls\n", n);
        return 0;
    }
    return 2;
}
