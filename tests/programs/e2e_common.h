/* e2e_common.h - helpers shared by the end-to-end and hardening target programs.
 *
 * The programs measure their own allocations, so they never touch stdio:
 * the first printf to stdout allocates a buffer inside libc whose size
 * depends on what stdout is (pipe, file, tty), and that block would sit at
 * the user's printf line.  Output goes through write(2) from a stack buffer;
 * vsnprintf with the plain conversions used here allocates nothing. */
#ifndef E2E_COMMON_H
#define E2E_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes a formatted line to fd (1 or 2) without stdio buffering. */
static inline void __attribute__((format(printf, 2, 3))) e2e_say(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, (size_t)n);
        if (w <= 0)
            return;
        p += w;
        n -= (int)w;
    }
}

/* Copies stdin to stdout byte for byte (the driver checks that the target
 * keeps both), with read/write only. */
static inline void e2e_echo_stdin(void)
{
    char buf[4096];
    ssize_t r;
    while ((r = read(0, buf, sizeof buf)) > 0) {
        const char *p = buf;
        while (r > 0) {
            ssize_t w = write(1, p, (size_t)r);
            if (w <= 0)
                return;
            p += w;
            r -= w;
        }
    }
}

/* A positive integer argument, or def when absent. */
static inline long e2e_arg(int argc, char **argv, int i, long def)
{
    return argc > i ? strtol(argv[i], NULL, 10) : def;
}

#endif
