#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int tm_err_set(tm_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

char *tm_format_size(char *buf, double size, int sign)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        int last = i + 1 == sizeof units / sizeof units[0];
        if (fabs(size) < 100 && i != 0) {
            snprintf(buf, TM_SIZE_BUF, sign ? "%+.1f %s" : "%.1f %s", size, units[i]);
            return buf;
        }
        if (fabs(size) < 10 * 1024 || last) {
            snprintf(buf, TM_SIZE_BUF, sign ? "%+.0f %s" : "%.0f %s", size, units[i]);
            return buf;
        }
        size /= 1024;
    }
    return buf; /* not reached */
}

int tm_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -1;
        ncap *= 2;
    }
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}
