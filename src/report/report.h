/* report.h - the batch report: the store's final state as text in
 * tracemalloc's format, or as JSON with exact integers. */
#ifndef TMTOP_REPORT_H
#define TMTOP_REPORT_H

#include <stdio.h>

#include "common.h"
#include "store.h"

typedef struct tm_report_opts {
    tm_query query; /* key, cumulative, filters, site policy */
    size_t limit;   /* statistics to print; 0 = all */
    int json;
    const char *program; /* as the user typed it */
    unsigned frames;     /* stack depth used */
    int exited;          /* the target was reaped: wstatus is valid */
    int wstatus;         /* waitpid status */
} tm_report_opts;

/* Writes the report of s to out.  Returns 0, or -1 with err set (a write
 * error or an invalid query). */
int tm_report_write(FILE *out, tm_store *s, const tm_resolver *res, const tm_report_opts *o,
                    tm_err *err);

#endif
