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

/* The report of a target and its followed children (tmtop --follow-fork):
 * procs[0] is the target, written as tm_report_write writes it; procs[1..n)
 * are children, each after it in text as a "child pid N (parent M)" line and
 * its own totals and statistics, and in JSON as the objects of a
 * "children" array of the target's object (present even when empty), each
 * with pid, ppid and the target's fields from "current" to "stats".
 * n >= 1; the stores are only read.  Returns 0, or -1 with err set. */
int tm_report_write_procs(FILE *out, tm_store *const *procs, size_t n, const tm_resolver *res,
                          const tm_report_opts *o, tm_err *err);

/* Snapshot.compare_to printed: a diff from tm_snapshot_compare as
 * tracemalloc prints StatisticDiffs (`file.c:42: size=6000 B (+1000 B),
 * count=6 (+1), average=1000 B`), or as JSON shaped like the report's with
 * size_diff and count_diff in each statistic and a "diff" object naming the
 * two sides.  Uses base.query.key/cumulative, base.limit, base.json,
 * base.program, base.frames and base.exited/wstatus; the totals are those of
 * the newer and the older side. */
typedef struct tm_report_diff_opts {
    tm_report_opts base;
    const char *new_name, *old_name; /* "now", "snapshot #2" */
    const tm_totals *new_totals, *old_totals;
} tm_report_diff_opts;

int tm_report_write_diff(FILE *out, const tm_stats *diff, const tm_report_diff_opts *o,
                         tm_err *err);

#endif
