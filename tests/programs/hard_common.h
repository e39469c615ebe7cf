/* hard_common.h - helpers shared by the hardening target programs
 * (tests/hardening/hard.py).  Output goes through write(2) from a stack
 * buffer: stdio would allocate behind the program's back. */
#ifndef HARD_COMMON_H
#define HARD_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static inline void __attribute__((format(printf, 2, 3))) hard_say(int fd, const char *fmt, ...)
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

#endif
