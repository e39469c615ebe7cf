/* tui.h - tmtop's live explorer: runs a program under the hook and shows its
 * memory in a full-screen ncurses view that updates while it runs and stays
 * open after it exits, so that what is still live (what leaked) can be
 * explored.  The front end of `tmtop PROGRAM` without --report. */
#ifndef TMTOP_TUI_H
#define TMTOP_TUI_H

#include "common.h"
#include "store.h"

typedef struct tm_tui_config {
    char *const *argv;       /* the program and its arguments; argv[0] is searched
                                as execvp(3) does */
    const char *hook_path;   /* absolute path of libtmtop-hook.so (tm_tracer_find_hook) */
    unsigned frames;         /* stack depth, 1..TM_MAX_FRAMES */
    tm_query query;          /* the initial key, cumulative, filters, raw_site and
                                skip list; everything it points to is borrowed for
                                the duration of the call */
    int follow_fork;         /* trace forked children too, each in its own store
                                (n / N switch the view between the processes) */
    const char *record_path; /* --record: also write the trace to this recording
                                (tracefile.h), created before the program starts;
                                finished when the view closes */

    /* --load: no program runs (argv and hook_path unused); the view shows
     * these stores, filled from a recording.  procs[0] is the target; the
     * stores are borrowed and must not change during the call.  Keys that
     * need a running program say so in the status line. */
    tm_store *const *procs;
    size_t nprocs;
    const char *program; /* as recorded, for the title */
    int exited, wstatus; /* the target's recorded end */
    /* Modules whose file changed since the recording (NULL: none): their
     * frames are shown as module+offset, never as another build's lines. */
    int (*stale)(void *ctx, const tm_module *mod);
    void *stale_ctx;
} tm_tui_config;

/* Whether this build has the live view: 1. */
int tm_tui_available(void);

/* With procs set: the view on a recording until the user quits; returns 0,
 * or 2 when the view could not be started.
 * Otherwise: runs the program on its own pseudo-terminal under the hook and the live
 * view on tmtop's terminal until the user quits (q: a program still running
 * gets SIGTERM, then SIGKILL after 2 s).  Returns tmtop's exit status: the
 * program's exit status, or 128 + N when signal N killed it; 2 when the view
 * or the program could not be started, after a one-line "tmtop: ..." message
 * on standard error.  Standard input and output must be a terminal. */
int tm_tui_run(const tm_tui_config *cfg);

#endif
