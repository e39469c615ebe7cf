/* bench_common.h - shared by the allocation benchmarks: keep the compiler
 * from eliding malloc/free pairs, and report the process's peak RSS. */
#ifndef TMTOP_BENCH_COMMON_H
#define TMTOP_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Stores p where the optimiser cannot prove it unused. */
static inline void *bench_keep(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

/* Prints "peak_rss_kib N" (VmHWM) to stderr, for bench/run. */
static inline void bench_report_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            fprintf(stderr, "peak_rss_kib %ld\n", strtol(line + 6, NULL, 10));
    if (f)
        fclose(f);
    /* The calling (main) thread's own CPU time: the hook's cost on the
     * program's critical path, apart from its helper thread and tmtop. */
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        fprintf(stderr, "main_thread_cpu_s %.3f\n", (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
}

static inline long bench_arg(int argc, char **argv, int i, long def)
{
    return argc > i ? strtol(argv[i], NULL, 10) : def;
}

#endif
