/* store_internal.h - the store's data structures, shared by store.c (ingest,
 * tables, snapshots) and query.c (frames, statistics, diffs).  Not part of the
 * public interface: only the store's own sources and its white-box tests
 * include it. */
#ifndef TMTOP_STORE_INTERNAL_H
#define TMTOP_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* ---- live table ------------------------------------------------------------
 * Open addressing, linear probing, backward-shift deletion (no tombstones),
 * ptr 0 = empty slot.  The capacity is any integer >= LT_MIN_CAP: the slot of
 * a pointer is the high part of (fib(ptr) * cap), i.e. Fibonacci hashing
 * scaled to the capacity instead of shifted, so the table can grow by x1.5
 * (load stays within [0.5, 0.75] while growing: 21-32 bytes per live block).
 * A small table (below LT_SMALL_CAP slots, 1 MiB) is kept at a load of at
 * most 1/4 instead, and never shrinks: its probe runs and deletion shifts
 * stay short, it is not rebuilt each time a program frees and rebuilds a
 * few thousand blocks, and its memory does not matter.  A large table
 * shrinks to half empty when it is 7/8 empty, down to the largest small
 * size. */
#define LT_MIN_CAP 1024u
#define LT_SMALL_CAP 65536u
#define LT_BIG_SIZE UINT32_MAX /* slot size meaning "look in the big map" */

typedef struct lt_slot {
    uint64_t ptr;
    uint32_t size; /* requested size, or LT_BIG_SIZE */
    uint32_t stack;
} lt_slot;

typedef struct live_table {
    lt_slot *slot;
    uint64_t cap;
    uint64_t count;
    uint64_t grow_at;   /* count above which the table grows */
    uint64_t shrink_at; /* count below which it shrinks (0: never) */
} live_table;

/* A small power-of-two map pointer -> (size, stack), for the sizes that do
 * not fit a slot and for blocks between REALLOC_PRE and REALLOC. */
typedef struct wide_ent {
    uint64_t key;
    uint64_t size;
    uint32_t stack;
    uint32_t pad;
} wide_ent;

typedef struct wide_map {
    wide_ent *e;
    uint64_t mask; /* capacity - 1; capacity 0 before the first insert */
    uint64_t count;
} wide_map;

/* ---- stacks ------------------------------------------------------------- */
typedef struct stack_agg {
    uint64_t live_bytes;
    uint64_t total_bytes;
    uint64_t total_count;
    uint32_t live_blocks;
    uint32_t defined; /* kept here so the hot path checks it on the line it updates */
} stack_agg;

typedef struct stack_def {
    uint64_t ref_off; /* first entry in tm_store.refs */
    uint16_t depth;
    uint16_t flags;
} stack_def;

#define NO_MOD UINT32_MAX

/* One distinct (return address, module at ingest) pair.  Stacks refer to
 * these by index, so an address shared by many stacks is resolved once. */
typedef struct ipinfo {
    uint64_t ip;
    uint32_t mod; /* internal module index, or NO_MOD */
    uint16_t nframes;
    uint16_t cached; /* frames below are the resolver's final answer */
    const tm_frame *frames;
} ipinfo;

/* An interval of an active module's PT_LOAD segment, for ip -> module. */
typedef struct seg_iv {
    uint64_t lo, hi;
    uint32_t mod;
} seg_iv;

/* ---- arenas --------------------------------------------------------------
 * Chunked bump allocator: allocations never move, so pointers into it stay
 * valid until arena_reset/arena_free. */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
    max_align_t data[];
} arena_chunk;

typedef struct arena {
    arena_chunk *head;
} arena;

void *arena_alloc(arena *a, size_t size);
void arena_reset(arena *a); /* keeps the newest chunk for reuse */
void arena_free(arena *a);

#define SERIES_MAX 4096u

struct tm_store {
    live_table lt;
    wide_map big;
    wide_map pending;

    /* indexed by stack id; grown together up to stack_cap */
    stack_agg *agg;
    stack_def *def;
    uint32_t stack_cap;

    uint32_t *refs; /* ipinfo index per captured ip, per stack */
    uint64_t nrefs, refs_cap;

    ipinfo *ipi;
    uint32_t nipi, ipi_cap;
    uint32_t *ipi_hash; /* open addressing: ipinfo index + 1, 0 = empty */
    uint32_t ipi_hash_mask;

    /* modules: internal index -> record (never freed before the store);
     * hook id -> newest internal index + 1 */
    tm_module **mods;
    uint8_t *mod_gone;
    uint32_t nmods, mods_cap;
    uint32_t *mod_by_id;
    uint32_t mod_by_id_cap;
    seg_iv *iv;
    uint32_t niv, iv_cap;
    int iv_dirty, iv_overlap;

    /* totals */
    uint64_t current, peak, blocks, allocations, frees, allocated_bytes;
    uint64_t unknown_frees, missed_frees, stacks, rss, time_ns;
    uint32_t pid, ppid;
    uint16_t max_frames;
    int ended;
    uint32_t end_reason;
    uint64_t hook_unknown_frees, nested_calls, lost_events;
    char *exe;
    uint64_t forks;
    uint32_t last_child;
    char *exec_path;
    int exec_last; /* EXEC is the last record but TICKs: the exec succeeded */

    tm_sample *ring;
    size_t ring_head, ring_n;

    /* symbolization cache (query.c) */
    arena frames;      /* cached frames of ipinfos, until the resolver changes */
    arena tmp;         /* uncached frames and per-query memos, reset per query */
    tm_frame *scratch; /* tm_store_stack_frames' answer */
    size_t scratch_cap;
    int (*res_fn)(void *, const tm_module *, uint64_t, tm_frame *, int);
    void *res_ctx;
    int have_res;
};

typedef struct snap_ent {
    uint64_t bytes;
    uint64_t blocks;
    uint32_t id;
} snap_ent;

struct tm_snapshot {
    tm_store *s;     /* borrowed; queries update its symbolization cache */
    uint64_t serial; /* unique per process: tells a view's caches which snapshot they hold */
    tm_totals totals;
    size_t n;
    snap_ent *e; /* ascending stack id */
};

#endif
