#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

size_t tm_proc_order(size_t n, const uint32_t *pid, const uint32_t *ppid, size_t *order)
{
    if (!n)
        return 0;
    size_t stack[n], depth = 0, k = 0;
    unsigned char taken[n];
    memset(taken, 0, n);
    for (size_t root = 0; root < n; root++) {
        if (taken[root])
            continue;
        taken[root] = 1;
        stack[depth++] = root;
        while (depth) {
            size_t p = stack[--depth];
            order[k++] = p;
            for (size_t i = n; i-- > 0;) /* reversed: the earliest sibling comes first */
                if (!taken[i] && ppid[i] == pid[p]) {
                    taken[i] = 1;
                    stack[depth++] = i;
                }
        }
    }
    return k;
}
