#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

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
