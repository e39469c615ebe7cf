/* store.h - tmtop's in-process model of one traced process: the live table,
 * per-stack aggregates, totals, snapshots, and tracemalloc-style statistics,
 * diffs and filters over them.
 *
 * The store consumes decoded wire records (tm_store_apply) and knows nothing
 * about sockets, DWARF or curses.  Turning return addresses into function and
 * file:line is delegated to a tm_resolver (the symbolizer in tmtop, a fake in
 * unit tests).  Not thread-safe: one thread applies records and queries, or
 * the caller serialises.
 *
 * Semantics follow Python's tracemalloc (see Snapshot.statistics and
 * Snapshot.compare_to), with two native differences: sizes are the bytes the
 * program asked for, and the "site" of a stack is its innermost frame that is
 * the user's code (system frames skipped, see tm_query). */
#ifndef TMTOP_STORE_H
#define TMTOP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "wire.h"

typedef struct tm_store tm_store;
typedef struct tm_snapshot tm_snapshot;

/* ---- resolver interface --------------------------------------------------
 * Expands one captured return address into frames, innermost first (more than
 * one when calls were inlined).  mod is the module that contained the address
 * when the stack was recorded, or NULL.  Returns the number of frames written
 * (1..max; always at least one, which may carry only module and offset).
 * Frame strings must stay valid for the resolver's lifetime.  If a frame comes
 * back with TM_FRAME_PENDING the store does not cache it and asks again on the
 * next query. */
typedef struct tm_resolver {
    int (*resolve)(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out, int max);
    void *ctx;
} tm_resolver;

/* ---- lifetime and ingestion ---------------------------------------------- */

/* Returns a new, empty store (owned: tm_store_free), or NULL when out of memory. */
tm_store *tm_store_new(void);
void tm_store_free(tm_store *s);

/* Applies one decoded record in stream order.  Returns 0, or -1 with err set
 * when the record contradicts the stream (an ALLOC naming a stack id that was
 * never defined, a STACK redefining an id).  Inconsistencies the target can
 * legitimately produce are counted, not errors: a FREE of an unknown pointer
 * (memory allocated before tracing began), an ALLOC of an address still live
 * (a free the hook did not see: the old block is retired first). */
int tm_store_apply(tm_store *s, const tm_wire_rec *rec, tm_err *err);

/* ---- totals -------------------------------------------------------------- */
typedef struct tm_totals {
    uint64_t current;         /* bytes live now (requested sizes) */
    uint64_t peak;            /* highest current since start or tm_store_reset_peak */
    uint64_t blocks;          /* live blocks now */
    uint64_t allocations;     /* successful allocation calls: ALLOC + REALLOC with new_ptr */
    uint64_t frees;           /* FREE of a known pointer, REALLOC of a known old pointer */
    uint64_t allocated_bytes; /* sum of the sizes of all allocations */
    uint64_t unknown_frees;   /* frees of pointers the store never saw allocated */
    uint64_t missed_frees;    /* ALLOCs of an address still live: the old block was
                                 retired (a free the hook did not see) */
    uint64_t stacks;          /* distinct stacks defined */
    uint64_t rss;             /* target's resident set at the last TICK, bytes (0 if none) */
    uint64_t time_ns;         /* monotonic time of the last TICK, 0 if none */
    /* from the process's records */
    uint32_t pid, ppid;
    uint16_t max_frames; /* stack depth the hook was asked for */
    int ended;           /* END seen: the stream is complete */
    int execd;           /* the stream's last event was EXEC: the process became another
                            program, untraced; complete up to there */
    uint32_t end_reason; /* TM_END_* when ended */
    uint64_t hook_unknown_frees, nested_calls, lost_events; /* from END */
} tm_totals;

void tm_store_totals(const tm_store *s, tm_totals *out);

/* Sets peak = current, as tracemalloc.reset_peak(). */
void tm_store_reset_peak(tm_store *s);

/* Executable path from HELLO ("" before it), borrowed for the store's life. */
const char *tm_store_exe(const tm_store *s);

/* One point of the memory-over-time series, recorded at every TICK. */
typedef struct tm_sample {
    uint64_t time_ns, current, rss, allocations;
} tm_sample;

/* Copies the most recent samples (up to max, oldest first) into out and
 * returns how many were copied.  The store keeps a bounded history. */
size_t tm_store_series(const tm_store *s, tm_sample *out, size_t max);

/* ---- stacks and modules -------------------------------------------------- */

/* Module by id as recorded (still valid after MODULE_GONE), or NULL.
 * Borrowed for the store's life. */
const tm_module *tm_store_module(const tm_store *s, uint32_t id);

/* ---- snapshots -----------------------------------------------------------
 * A snapshot copies the per-stack aggregates (live bytes and blocks of every
 * stack with live blocks) and the totals: O(stacks), not O(live blocks).  It is
 * immutable.  It borrows the store's stack and module tables, which are
 * append-only, so it stays valid until the store is freed. */
tm_snapshot *tm_store_snapshot(const tm_store *s);
void tm_snapshot_free(tm_snapshot *snap);
const tm_totals *tm_snapshot_totals(const tm_snapshot *snap);

/* ---- queries -------------------------------------------------------------- */
typedef enum tm_key {
    TM_KEY_LINENO = 0,   /* the site's file:line */
    TM_KEY_FILENAME = 1, /* the site's file */
    TM_KEY_TRACEBACK = 2 /* the whole stack, every frame (inlined ones too) */
} tm_key;

/* tracemalloc.Filter: a stack is kept when at least one inclusive filter
 * matches (or there are none) and no exclusive filter matches.  pattern is an
 * fnmatch(3) glob over the frame's file name ("<unknown>" when none); lineno 0
 * matches any line; all_frames matches any frame of the stack instead of only
 * the site. */
typedef struct tm_filter {
    int inclusive;
    const char *pattern;
    uint32_t lineno;
    int all_frames;
} tm_filter;

typedef struct tm_query {
    tm_key key;
    int cumulative; /* lineno/filename only: count a stack once per frame
                       from its site outward, as tracemalloc does */
    const tm_filter *filters;
    size_t nfilters;
    int raw_site;            /* site = innermost frame, no skipping */
    const char *const *skip; /* globs over frame file and module path that mark
                                system frames; NULL = tm_default_skip */
    size_t nskip;            /* entries in skip; 0 = skip is NULL-terminated */
} tm_query;

/* The default system-frame globs (NULL-terminated): system headers, libraries
 * under /usr/lib, /lib, /usr/lib64 and /lib64 (the loader), and tmtop's own hook. */
extern const char *const tm_default_skip[];

/* One statistic.  frames borrow the resolver's strings and the stats object.
 * lineno: frames[0] is the site (nframes 1).  filename: frames[0] is the
 * site with line 0 (nframes 1).  traceback: all frames, innermost first, and
 * site_index says which one is the site.  For diffs size_diff/count_diff are
 * set; for plain statistics they are 0. */
typedef struct tm_stat {
    const tm_frame *frames;
    uint32_t nframes;
    uint32_t site_index;
    uint64_t size, count;
    int64_t size_diff, count_diff;
} tm_stat;

typedef struct tm_stats {
    tm_stat *v;
    size_t n;
    struct tm_stats_priv *priv; /* storage owned by the result */
} tm_stats;

/* Groups snap's stacks by q's key and returns the statistics sorted as
 * tracemalloc sorts them: descending (size, count, key).  Owned: free with
 * tm_stats_free.  Returns NULL with err set on a bad query (cumulative with
 * the traceback key) or out of memory. */
tm_stats *tm_snapshot_statistics(const tm_snapshot *snap, const tm_query *q, const tm_resolver *res,
                                 tm_err *err);

/* Snapshot.compare_to: statistics of now joined with those of old by key;
 * sorted descending by (|size_diff|, size, |count_diff|, count, key).  A key
 * only in now has size_diff = size; one only in old has size 0 and
 * size_diff = -old size (likewise counts).  Owned: tm_stats_free. */
tm_stats *tm_snapshot_compare(const tm_snapshot *now, const tm_snapshot *old, const tm_query *q,
                              const tm_resolver *res, tm_err *err);

void tm_stats_free(tm_stats *st);

/* ---- views ------------------------------------------------------------------
 * The statistics (or a diff) of a snapshot kept up to date across queries,
 * for a display that shows a few rows of them many times a second.  A view
 * remembers, per stack, the groups it belongs to under the last query, and
 * keeps the groups with their frames: an update then costs one pass over the
 * snapshot's stacks plus one over the groups, and regroups only the stacks it
 * has not seen under this query yet and those whose frames were still
 * TM_FRAME_PENDING (a resolved frame arriving later moves them).  A change of
 * the query (key, cumulative, filters, site policy), of the resolver or of
 * the store starts it over.  The old side of a diff is summed per group once
 * per old snapshot (snapshots are told apart by a serial number, not their
 * address) and reused while its stacks keep their groups.  Rows are sorted
 * exactly as tm_snapshot_statistics / tm_snapshot_compare sort them, but only
 * the rows asked for are put in order.  Not thread-safe; an update reads the store
 * (under the store's lock), the other calls read only the view. */
typedef struct tm_view tm_view;

/* Returns a new, empty view (owned: tm_view_free), or NULL when out of memory. */
tm_view *tm_view_new(void);
void tm_view_free(tm_view *v);

/* Groups now's stacks under q; with old (a snapshot of the same store) the
 * rows are now's statistics compared to old's, as tm_snapshot_compare.
 * Returns 0, or -1 with err set (a bad query, old of another store, out of
 * memory; the view is then empty). */
int tm_view_update(tm_view *v, const tm_snapshot *now, const tm_snapshot *old, const tm_query *q,
                   const tm_resolver *res, tm_err *err);

/* Rows of the last update. */
size_t tm_view_count(const tm_view *v);

/* Rows of the last update with a TM_FRAME_PENDING frame among those a row
 * shows: its first frame, or for the traceback key those from the site out. */
size_t tm_view_pending(const tm_view *v);

/* Copies rows first .. first+n-1 (in sorted order) to out; returns how many
 * (fewer at the end, 0 when out of memory).  Costs O(rows) plus the sort of
 * the n rows; a window asked for again after an update that moved the numbers
 * a little costs one pass over the rows.  frames borrow the view: valid until
 * its next update or tm_view_free. */
size_t tm_view_rows(tm_view *v, size_t first, size_t n, tm_stat *out);

/* The index of the row whose key is frames[0..n) under the view's key (as
 * the store groups them), or -1. */
long tm_view_find(tm_view *v, const tm_frame *frames, uint32_t n);

/* The rows for which keep returns non-zero, in sorted order: copies up to max
 * of them to out (none when out is NULL: a count) and returns how many there
 * are (0 when out of memory).
 * O(rows) calls of keep. */
size_t tm_view_select(tm_view *v, int (*keep)(void *ctx, const tm_stat *row), void *ctx,
                      tm_stat *out, size_t max);

/* Frames of one stack of the snapshot's store, as the resolver expands them,
 * innermost first; *site gets the site index under q (q may be NULL for the
 * defaults).  Returns the count, 0 for an unknown id.  Borrowed: valid until
 * the next query on the same store. */
size_t tm_store_stack_frames(tm_store *s, uint32_t stack_id, const tm_query *q,
                             const tm_resolver *res, const tm_frame **frames, uint32_t *site);

#endif
