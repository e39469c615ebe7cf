/* model.h - the live explorer's state, driven by keys, with no terminal.
 *
 * The model owns what the user chose (key, cumulative, filters, snapshots,
 * diff, selection, which view is open) and the results of the last query
 * (statistics rows, totals, series, the detail's tracebacks).  Keys go in
 * through tui_model_key; rows come out through the fields below and
 * tui_model_row_label; render.c draws them; tests read them directly.
 *
 * The store is reached only through tui_data, under its lock: the model takes
 * a snapshot of the store (O(stacks)) and updates its views of it (O(stacks),
 * see tm_view), which is the only time the ingest thread has to wait for the
 * UI.  Ordering the rows shown needs no lock.  Private to src/tui. */
#ifndef TMTOP_TUI_MODEL_H
#define TMTOP_TUI_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keymap.h"
#include "store.h"

struct tui_output;
struct tui_srccache;

/* How the model reaches the store. */
typedef struct tui_data {
    tm_store *store;         /* borrowed */
    tm_resolver res;         /* must not block (tmtop: the async resolver) */
    void (*lock)(void *ctx); /* around every store access; NULL: no locking */
    void (*unlock)(void *ctx);
    /* Pending frames the resolver has handed out so far (a counter that only
     * grows): a report is written once a query ran without any.  NULL: the
     * resolver never answers "pending". */
    uint64_t (*pending)(void *ctx);
    void *ctx;
} tui_data;

typedef struct tui_model_config {
    tui_data data;
    tm_query query;            /* initial key, cumulative, filters, site policy;
                                  filters are copied, skip is borrowed */
    const char *program;       /* the command as typed, for the header; copied */
    unsigned frames;           /* stack depth, for reports */
    const char *log_path;      /* the output log, named in the status line; copied; may be NULL */
    struct tui_output *output; /* the output pane's scrollback, borrowed; may be NULL */
    int unicode;               /* the terminal shows UTF-8: block characters in the chart */
} tui_model_config;

typedef enum tui_view {
    TUI_VIEW_TABLE = 0,
    TUI_VIEW_DETAIL,
    TUI_VIEW_HELP,
    TUI_VIEW_OUTPUT,
    TUI_VIEW_PICK, /* D: choosing the two sides of a diff */
} tui_view;

typedef enum tui_prompt {
    TUI_PROMPT_NONE = 0,
    TUI_PROMPT_INCLUDE,
    TUI_PROMPT_EXCLUDE,
    TUI_PROMPT_WRITE,
} tui_prompt;

/* Reactions of tui_model_key, as flags. */
enum {
    TUI_R_REDRAW = 1u << 0,
    TUI_R_QUIT = 1u << 1, /* the user asked to quit: the caller stops the program */
};

/* The traced program as the front end last saw it. */
typedef struct tui_target {
    pid_t pid;
    int started;  /* the session is running (pid valid) */
    int exited;   /* reaped: wstatus is valid */
    int wstatus;  /* waitpid status */
    int stopping; /* q was pressed: SIGTERM sent, SIGKILL pending */
    int done;     /* every trace stream has ended */
} tui_target;

typedef struct tui_filter {
    int inclusive;
    char *pattern; /* owned */
} tui_filter;

typedef struct tui_snap {
    tm_snapshot *snap; /* owned */
    unsigned number;   /* 1, 2, ...: as the user sees it */
    uint64_t time_ns;  /* model time when taken */
} tui_snap;

/* One traceback of the detail view: a copy of a traceback statistic. */
typedef struct tui_trace {
    tm_frame *frames; /* owned copy (strings borrow the resolver) */
    uint32_t nframes, site;
    uint64_t size, count;
    int64_t size_diff, count_diff;
} tui_trace;

/* Layout of the screen; every row number is 0-based. */
typedef struct tui_layout {
    int too_small;
    int chart_top, chart_rows;
    int title_row; /* the table's title (mode) line */
    int head_row;  /* the column headers */
    int body_top;  /* first row of the table, or of the detail, output, pick views */
    int body_rows;
    int status_row; /* key, cumulative, filters, snapshots, paused, log */
    int footer_row; /* prompt, message or key hints */
} tui_layout;

#define TUI_MIN_ROWS 24
#define TUI_MIN_COLS 80
#define TUI_RATE_SAMPLES 64

typedef struct tui_model {
    tui_data data;
    int rows, cols, unicode;
    tui_layout lay;
    tui_view view;

    /* the query */
    tm_key key;
    int cumulative, all_frames, raw_site;
    const char *const *skip;
    size_t nskip;
    tui_filter *filters;
    size_t nfilters;

    /* snapshots and diff */
    tui_snap *snaps;
    size_t nsnaps;
    unsigned next_snap;
    int diff;        /* the table shows a diff */
    size_t diff_old; /* index into snaps */
    long diff_new;   /* index into snaps, or -1: now */

    /* results of the last query */
    tm_snapshot *now;     /* the store as of the last refresh; frozen while paused */
    tm_totals totals;     /* of now */
    tm_view *table;       /* the table's rows, kept up to date across queries (owned) */
    tm_view *traces;      /* the detail's tracebacks (owned) */
    struct tui_rows *win; /* the table rows last asked for, in order (owned) */
    size_t nrows;
    tm_sample *series; /* memory over time (owned), nseries samples */
    size_t nseries, series_cap;
    int pending_rows; /* rows still waiting for symbols */
    char query_error[256];

    /* allocation rate, from the series */
    double alloc_rate; /* calls per second, < 0 unknown */

    /* table navigation: the selection follows its site across refreshes */
    size_t sel, top;
    tm_frame *sel_key; /* copy of the selected row's frames */
    uint32_t sel_nkey;

    /* detail */
    tm_frame *det_key; /* the row being shown (copy) */
    uint32_t det_nkey;
    uint64_t det_size, det_count;
    int64_t det_size_diff, det_count_diff;
    tui_trace *det;
    size_t ndet, det_cur, det_top;

    /* other views */
    size_t help_top, out_top, pick_sel;
    int out_follow; /* the output view sticks to the end */
    int pick_step;  /* 0: choose the older side, 1: the newer */
    size_t pick_old;

    /* prompt and messages */
    tui_prompt prompt;
    char pbuf[256];
    size_t plen;
    char msg[256];
    int msg_error;
    uint64_t msg_until; /* model time after which the message goes */

    /* a report waiting for the symbolizer to finish (w) */
    char *write_path;
    uint64_t write_since;

    int paused;
    uint64_t now_ns; /* model time: the last time given to tui_model_key/refresh */
    uint64_t start_ns;

    char *program, *log_path;
    char *cwd; /* tmtop's directory: file names below it are shown relative */
    unsigned frames;
    struct tui_output *output;
    struct tui_srccache *src; /* source lines for the detail (owned) */
    tui_target target;
} tui_model;

/* New model (owned: tui_model_free); no query is run until the first
 * tui_model_refresh.  Returns NULL when out of memory. */
tui_model *tui_model_new(const tui_model_config *cfg);
void tui_model_free(tui_model *m);

/* Screen size changed: recomputes the layout and clamps selection and scroll
 * positions.  Pure: no store access. */
void tui_model_resize(tui_model *m, int rows, int cols);

/* The layout for a screen of rows x cols. */
tui_layout tui_layout_for(int rows, int cols);

/* New data may have arrived: unless paused, takes a new snapshot of the store,
 * then reruns the query.  now_ns is the caller's monotonic clock. */
void tui_model_refresh(tui_model *m, uint64_t now_ns);

/* Reruns the query on the snapshots already taken (symbols arrived, or the
 * query changed).  Also finishes a report waiting for symbols. */
void tui_model_requery(tui_model *m);

/* One key press.  Returns TUI_R_* flags. */
unsigned tui_model_key(tui_model *m, int key, uint64_t now_ns);

/* Applies one action as if its key was pressed (no prompt handling). */
unsigned tui_model_apply(tui_model *m, tui_action a);

/* The program's state changed. */
void tui_model_set_target(tui_model *m, const tui_target *t);

/* Shows a message in the footer for a few seconds (error: in the error
 * colour). */
void tui_model_message(tui_model *m, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The query the table uses now (filters point into the model; valid until
 * the filters change). */
tm_query tui_model_query(const tui_model *m, tm_filter *buf, size_t nbuf);

/* "file.c:42 function", "file.c", or for a traceback its frames from the site
 * outward; frames without a file name their function and module, or module and
 * offset.  Returns buf. */
char *tui_frame_label(const tm_frame *f, tm_key key, char *buf, size_t len);

/* Row `row` of the table (0 .. nrows-1), or NULL.  Only rows asked for are
 * put in order, a window at a time: borrowed until the next query. */
const tm_stat *tui_model_stat(const tui_model *m, size_t row);

char *tui_model_row_label(const tui_model *m, size_t row, char *buf, size_t len);

/* Whether a row (or a detail frame) still waits for its symbols. */
int tui_model_row_pending(const tui_model *m, size_t row);

/* The program's exit as text: "running", "exited with status 3", "killed by
 * signal 11 (SIGSEGV)".  Returns buf. */
char *tui_model_exit_text(const tui_model *m, char *buf, size_t len);

/* tmtop's exit status for the program's wait status: its exit status, or
 * 128 + the signal that killed it. */
int tui_exit_status(int wstatus);

/* Source line `line` of file (1-based), leading and trailing blanks
 * trimmed, or NULL when the file cannot be read.  Files are read once and
 * cached.  Borrowed until the model is freed. */
const char *tui_model_source_line(const tui_model *m, const char *file, uint32_t line);

/* Lines of the detail view: one per frame, plus one per readable source line. */
size_t tui_detail_lines(const tui_model *m);

/* Writes the current view as a report: text to path and JSON to the same
 * name with .json instead of .txt (or path + ".json").  Returns 0, or -1 with
 * the reason in the model's message. */
int tui_model_write(tui_model *m, const char *path);

#endif
