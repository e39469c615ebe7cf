/* test_store.c - the store on synthetic streams: exact totals through alloc,
 * free and realloc sequences, snapshots, statistics by every key, sites,
 * filters, compare_to, and module attribution, with a fake resolver. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_store_stream.h"

/* ---- the fake resolver ------------------------------------------------------
 * Each fake return address expands to chosen frames, the way the symbolizer
 * would: one per inline level, innermost first. */
#define APP "/app/main"
#define LIBSTDCXX "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
#define HOOK "/opt/tmtop/lib/libtmtop-hook.so"
#define STLV "/usr/include/c++/12/bits/stl_vector.h"

enum {
    IP_A = 0x1010,  /* alloc_a  /src/a.c:10 */
    IP_A2 = 0x1020, /* alloc_a2 /src/a.c:20 */
    IP_AD = 0x1018, /* another call in /src/a.c:10 */
    IP_B = 0x1030,  /* alloc_b  /src/b.c:5 */
    IP_MAIN = 0x1040,
    IP_REC = 0x1050,
    IP_NEW = 0x2000,  /* operator new in libstdc++ (system by module) */
    IP_VEC = 0x1060,  /* two inlined stl_vector.h frames, then fill() app.c:42 */
    IP_HOOK = 0x3000, /* malloc in the hook (system by module) */
    IP_MYST = 0x1070, /* function known, no file */
    IP_NOTH = 0x4000, /* nothing known but module + offset */
    IP_C = 0x1080,    /* /src/c.c:3 */
    IP_PEND = 0x5000, /* pending on first ask */
    IP_X1 = 0x6001,   /* tie tests */
    IP_X2 = 0x6002,
    IP_Y1 = 0x6003,
    IP_Z9 = 0x6004,
};

typedef struct fake {
    uint64_t ip;
    int n;
    tm_frame f[3];
} fake;

#define FR(fn, file, line, flags, mod, off)                                                        \
    {                                                                                              \
        fn, file, line, flags, mod, 0, off                                                         \
    }

static const fake fakes[] = {
    {IP_A, 1, {FR("alloc_a", "/src/a.c", 10, 0, APP, 0x10)}},
    {IP_A2, 1, {FR("alloc_a2", "/src/a.c", 20, 0, APP, 0x20)}},
    {IP_AD, 1, {FR("alloc_a", "/src/a.c", 10, 0, APP, 0x18)}},
    {IP_B, 1, {FR("alloc_b", "/src/b.c", 5, 0, APP, 0x30)}},
    {IP_MAIN, 1, {FR("main", "/src/main.c", 100, 0, APP, 0x40)}},
    {IP_REC, 1, {FR("rec", "/src/rec.c", 7, 0, APP, 0x50)}},
    {IP_NEW, 1, {FR("operator new", NULL, 0, TM_FRAME_SYMTAB, LIBSTDCXX, 0x99)}},
    {IP_VEC,
     3,
     {FR("std::vector<int>::_M_realloc_insert", STLV, 1287, TM_FRAME_INLINED, APP, 0x60),
      FR("std::vector<int>::push_back", STLV, 1198, TM_FRAME_INLINED, APP, 0x60),
      FR("fill", "/src/app.c", 42, 0, APP, 0x60)}},
    {IP_HOOK, 1, {FR("malloc", NULL, 0, TM_FRAME_SYMTAB, HOOK, 0x77)}},
    {IP_MYST, 1, {FR("mystery", NULL, 0, TM_FRAME_SYMTAB, APP, 0x70)}},
    {IP_NOTH, 1, {FR(NULL, NULL, 0, 0, "/app/libx.so", 0x456)}},
    {IP_C, 1, {FR("alloc_c", "/src/c.c", 3, 0, APP, 0x80)}},
    {IP_X1, 1, {FR("x1", "/src/x.c", 1, 0, APP, 1)}},
    {IP_X2, 1, {FR("x2", "/src/x.c", 2, 0, APP, 2)}},
    {IP_Y1, 1, {FR("y1", "/src/y.c", 1, 0, APP, 3)}},
    {IP_Z9, 1, {FR("z9", "/src/z.c", 9, 0, APP, 4)}},
};

typedef struct fake_ctx {
    int calls;         /* resolve calls */
    int pend_calls;    /* of them for IP_PEND */
    int pend_resolved; /* answer IP_PEND for real from now on */
    const tm_module *last_mod;
} fake_ctx;

static int fake_resolve(void *vctx, const tm_module *mod, uint64_t ip, tm_frame *out, int max)
{
    fake_ctx *c = vctx;
    c->calls++;
    c->last_mod = mod;
    if (ip == IP_PEND) {
        c->pend_calls++;
        tm_frame f = FR(NULL, NULL, 0, TM_FRAME_PENDING, APP, 0x5000);
        if (c->pend_resolved)
            f = (tm_frame)FR("late", "/src/late.c", 77, 0, APP, 0x5000);
        f.address = ip;
        out[0] = f;
        return 1;
    }
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
        if (fakes[i].ip != ip)
            continue;
        int n = fakes[i].n < max ? fakes[i].n : max;
        for (int k = 0; k < n; k++) {
            out[k] = fakes[i].f[k];
            out[k].address = ip;
        }
        return n;
    }
    /* unknown to the fake: module and offset only, as the symbolizer does */
    tm_frame f = FR(NULL, NULL, 0, 0, mod ? mod->path : NULL, mod ? ip - mod->load_bias : ip);
    f.address = ip;
    out[0] = f;
    return 1;
}

static fake_ctx fctx;
static tm_resolver fres = {fake_resolve, &fctx};

/* ---- helpers --------------------------------------------------------------- */

/* Index of the statistic whose frames[0] has this file (or, with file NULL,
 * this function) and line, or -1. */
static long find_stat(const tm_stats *st, const char *file, const char *fn, uint32_t line)
{
    for (size_t i = 0; i < st->n; i++) {
        const tm_frame *f = &st->v[i].frames[0];
        if (file ? (f->file && strcmp(f->file, file) == 0)
                 : (!f->file &&
                    (fn ? f->function && strcmp(f->function, fn) == 0 : f->function == NULL)))
            if (f->line == line)
                return (long)i;
    }
    return -1;
}

#define CHECK_STAT(st, file, fn, line, sz, cnt)                                                    \
    do {                                                                                           \
        long i_ = find_stat((st), (file), (fn), (line));                                           \
        CHECK(i_ >= 0);                                                                            \
        if (i_ >= 0) {                                                                             \
            CHECK_U64((st)->v[i_].size, (sz));                                                     \
            CHECK_U64((st)->v[i_].count, (cnt));                                                   \
        }                                                                                          \
    } while (0)

static tm_stats *stats(tm_snapshot *snap, tm_key key, int cumulative)
{
    tm_query q = {0};
    q.key = key;
    q.cumulative = cumulative;
    tm_err err;
    tm_stats *st = tm_snapshot_statistics(snap, &q, &fres, &err);
    CHECK(st != NULL);
    return st;
}

static tm_stats *stats_q(tm_snapshot *snap, const tm_query *q)
{
    tm_err err;
    tm_stats *st = tm_snapshot_statistics(snap, q, &fres, &err);
    CHECK(st != NULL);
    return st;
}

static uint64_t sum_size(const tm_stats *st)
{
    uint64_t s = 0;
    for (size_t i = 0; i < st->n; i++)
        s += st->v[i].size;
    return s;
}

/* ---- totals ------------------------------------------------------------------ */

static void test_totals(void)
{
    tstream t;
    ts_open(&t);
    CHECK_STR(tm_store_exe(t.s), "");
    CHECK(ev_hello(&t, 1234, 1, 32, "/usr/bin/app") == 0);
    CHECK_STR(tm_store_exe(t.s), "/usr/bin/app");
    CHECK(ev_stack(&t, 1, 2, (uint64_t)IP_A, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(&t, 2, 2, (uint64_t)IP_A2, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(&t, 3, 2, (uint64_t)IP_B, (uint64_t)IP_MAIN) == 0);

    CHECK(ev_alloc(&t, 1, 0x1000, 100) == 0);
    CHECK(ev_alloc(&t, 2, 0x2000, 200) == 0);
    CHECK(ev_free(&t, 0x1000) == 0);
    tm_totals x = ts_totals(&t);
    CHECK_U64(x.current, 200);
    CHECK_U64(x.peak, 300);
    CHECK_U64(x.blocks, 1);
    CHECK_U64(x.allocations, 2);
    CHECK_U64(x.frees, 1);
    CHECK_U64(x.allocated_bytes, 300);
    CHECK_U64(x.stacks, 3);
    CHECK_U64(x.pid, 1234);
    CHECK_U64(x.ppid, 1);
    CHECK_U64(x.max_frames, 32);
    CHECK(!x.ended);

    /* reset_peak: peak = current, then follows increases only */
    tm_store_reset_peak(t.s);
    CHECK_U64(ts_totals(&t).peak, 200);
    CHECK(ev_alloc(&t, 3, 0x3000, 50) == 0);
    CHECK_U64(ts_totals(&t).peak, 250);
    CHECK(ev_free(&t, 0x3000) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.peak, 250);
    CHECK_U64(x.current, 200);

    /* a free of memory allocated before tracing: counted, ignored */
    CHECK(ev_free(&t, 0xdead0) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.unknown_frees, 1);
    CHECK_U64(x.frees, 2);
    CHECK_U64(x.current, 200);
    CHECK_U64(x.blocks, 1);

    /* contradictions of the stream are errors and change nothing */
    t.err.code = 0;
    CHECK(ev_alloc(&t, 99, 0x9000, 10) == -1);
    CHECK(t.err.code == TM_E_FORMAT);
    CHECK(ev_realloc(&t, 99, 0x2000, 0x9000, 10) == -1);
    CHECK(ev_stack(&t, 2, 1, (uint64_t)IP_B) == -1);
    x = ts_totals(&t);
    CHECK_U64(x.current, 200);
    CHECK_U64(x.blocks, 1);
    CHECK_U64(x.allocations, 3);
    CHECK_U64(x.stacks, 3);

    /* ALLOC of a live address: the hook missed a free; the old block retires */
    CHECK(ev_alloc(&t, 3, 0x2000, 70) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 70);
    CHECK_U64(x.blocks, 1);
    CHECK_U64(x.allocations, 4);
    CHECK_U64(x.missed_frees, 1);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_U64(st->n, 1);
    CHECK_STAT(st, "/src/b.c", NULL, 5, 70, 1);
    tm_stats_free(st);
    tm_snapshot_free(snap);
    CHECK(ev_free(&t, 0x2000) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 0);
    CHECK_U64(x.blocks, 0);
    /* every allocation is accounted for */
    CHECK_U64(x.allocations, x.blocks + x.frees + x.missed_frees);

    /* ticks: rss, time and the series */
    for (uint64_t i = 1; i <= 5000; i++) {
        if (i == 4999)
            CHECK(ev_alloc(&t, 1, 0x5000, 123) == 0);
        CHECK(ev_tick(&t, i * 1000, i * 4096) == 0);
    }
    x = ts_totals(&t);
    CHECK_U64(x.rss, 5000 * 4096);
    CHECK_U64(x.time_ns, 5000 * 1000);
    tm_sample *ser = calloc(5000, sizeof *ser);
    size_t n = tm_store_series(t.s, ser, 5000);
    CHECK(n == 4096);
    CHECK_U64(ser[0].time_ns, (5000 - 4096 + 1) * 1000);
    CHECK_U64(ser[n - 1].time_ns, 5000 * 1000);
    CHECK_U64(ser[n - 1].current, 123);
    CHECK_U64(ser[n - 3].current, 0);
    CHECK_U64(ser[n - 2].current, 123);
    CHECK_U64(ser[n - 2].allocations, 5);
    CHECK_U64(ser[n - 1].rss, 5000 * 4096);
    n = tm_store_series(t.s, ser, 3);
    CHECK(n == 3);
    CHECK_U64(ser[2].time_ns, 5000 * 1000);
    CHECK_U64(ser[0].time_ns, 4998 * 1000);
    free(ser);

    /* a record type of a newer minor version is skipped */
    ts_buf[0] = 0x50;
    ts_buf[1] = 2;
    ts_buf[2] = 0xAA;
    ts_buf[3] = 0xBB;
    CHECK(ts_feed(&t, 4) == 0);
    CHECK_U64(ts_totals(&t).current, 123);

    /* fork, exec, end */
    CHECK(ts_feed(&t, tm_wire_put_fork(ts_buf, 777)) == 0);
    CHECK(ts_feed(&t, tm_wire_put_exec(ts_buf, "/bin/true")) == 0);
    CHECK(ts_feed(&t, tm_wire_put_end(ts_buf, TM_END_EXEC, 5, 6, 7)) == 0);
    x = ts_totals(&t);
    CHECK(x.ended);
    CHECK_U64(x.end_reason, TM_END_EXEC);
    CHECK_U64(x.hook_unknown_frees, 5);
    CHECK_U64(x.nested_calls, 6);
    CHECK_U64(x.lost_events, 7);
    ts_close(&t);
}

/* ---- realloc --------------------------------------------------------------- */

static void test_realloc(void)
{
    tstream t;
    ts_open(&t);
    for (uint32_t id = 1; id <= 3; id++)
        CHECK(ev_stack(&t, id, 1, (uint64_t)(id == 1 ? IP_A : id == 2 ? IP_B : IP_C)) == 0);

    /* grow in place: peak is the new size, not old + new */
    CHECK(ev_alloc(&t, 1, 0x100, 100) == 0);
    CHECK(ev_pre(&t, 0x100) == 0);
    tm_totals x = ts_totals(&t);
    CHECK_U64(x.current, 0);
    CHECK_U64(x.blocks, 0);
    CHECK(ev_realloc(&t, 2, 0x100, 0x100, 300) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 300);
    CHECK_U64(x.peak, 300);
    CHECK_U64(x.blocks, 1);
    CHECK_U64(x.allocations, 2);
    CHECK_U64(x.frees, 1);
    CHECK_U64(x.allocated_bytes, 400);

    /* move: the old address is no longer live */
    CHECK(ev_pre(&t, 0x100) == 0);
    CHECK(ev_realloc(&t, 3, 0x100, 0x200, 500) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 500);
    CHECK_U64(x.blocks, 1);
    CHECK_U64(x.frees, 2);
    CHECK(ev_free(&t, 0x100) == 0);
    CHECK_U64(ts_totals(&t).unknown_frees, 1);

    /* failure: the block is back, nothing counted */
    CHECK(ev_pre(&t, 0x200) == 0);
    CHECK_U64(ts_totals(&t).current, 0);
    CHECK(ev_failed(&t, 0x200) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 500);
    CHECK_U64(x.blocks, 1);
    CHECK_U64(x.allocations, 3);
    CHECK_U64(x.frees, 2);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_U64(st->n, 1);
    CHECK_STAT(st, "/src/c.c", NULL, 3, 500, 1); /* restored at its own stack */
    tm_stats_free(st);
    tm_snapshot_free(snap);

    /* realloc(p, 0) frees and allocates nothing */
    CHECK(ev_pre(&t, 0x200) == 0);
    CHECK(ev_realloc(&t, 1, 0x200, 0, 0) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 0);
    CHECK_U64(x.blocks, 0);
    CHECK_U64(x.allocations, 3);
    CHECK_U64(x.frees, 3);

    /* interleaved: realloc moved p away, another thread got p before the
     * REALLOC record was appended */
    CHECK(ev_alloc(&t, 1, 0x300, 10) == 0);
    CHECK(ev_pre(&t, 0x300) == 0);
    CHECK(ev_alloc(&t, 2, 0x300, 20) == 0);
    CHECK(ev_tick(&t, 1, 1) == 0);
    CHECK(ev_alloc(&t, 2, 0x400, 1) == 0);
    CHECK(ev_free(&t, 0x400) == 0);
    CHECK(ev_realloc(&t, 3, 0x300, 0x500, 30) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 50);
    CHECK_U64(x.blocks, 2);
    CHECK_U64(x.missed_frees, 0);
    CHECK_U64(x.frees, 5);
    snap = tm_store_snapshot(t.s);
    st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_U64(st->n, 2);
    CHECK_STAT(st, "/src/b.c", NULL, 5, 20, 1);
    CHECK_STAT(st, "/src/c.c", NULL, 3, 30, 1);
    tm_stats_free(st);
    tm_snapshot_free(snap);

    /* interleaved failure: other blocks come and go meanwhile */
    CHECK(ev_pre(&t, 0x500) == 0);
    CHECK(ev_alloc(&t, 1, 0x600, 7) == 0);
    CHECK(ev_free(&t, 0x300) == 0);
    CHECK(ev_failed(&t, 0x500) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 37);
    CHECK_U64(x.blocks, 2);

    /* realloc of an unknown pointer: one unknown free, the new block counts */
    uint64_t unk = ts_totals(&t).unknown_frees;
    CHECK(ev_pre(&t, 0xabc0) == 0);
    CHECK(ev_realloc(&t, 1, 0xabc0, 0xabd0, 8) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.unknown_frees, unk + 1);
    CHECK_U64(x.current, 45);
    CHECK_U64(x.blocks, 3);
    /* a REALLOC_FAILED of nothing pending is ignored */
    CHECK(ev_failed(&t, 0xeee0) == 0);
    CHECK_U64(ts_totals(&t).current, 45);
    /* null pointers never become blocks */
    CHECK(ev_failed(&t, 0) == 0);
    CHECK(ev_realloc(&t, 1, 0, 0x1230, 3) == 0);
    CHECK(ev_free(&t, 0) == 0);
    CHECK(ev_alloc(&t, 1, 0, 5) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 48);
    CHECK_U64(x.blocks, 4);
    CHECK_U64(x.unknown_frees, unk + 1);
    CHECK(ev_free(&t, 0x1230) == 0);
    CHECK_U64(ts_totals(&t).current, 45);

    /* a chain through huge sizes, the side map moving with the block */
    uint64_t G = 1ull << 30;
    CHECK(ev_alloc(&t, 1, 0x700, 5 * G) == 0);
    CHECK(ev_pre(&t, 0x700) == 0);
    CHECK(ev_realloc(&t, 2, 0x700, 0x800, 6 * G) == 0);
    CHECK_U64(ts_totals(&t).current, 45 + 6 * G);
    CHECK(ev_pre(&t, 0x800) == 0);
    CHECK(ev_failed(&t, 0x800) == 0);
    CHECK_U64(ts_totals(&t).current, 45 + 6 * G);
    CHECK(ev_pre(&t, 0x800) == 0);
    CHECK(ev_realloc(&t, 2, 0x800, 0x800, 16) == 0);
    CHECK_U64(ts_totals(&t).current, 45 + 16);
    CHECK(ev_free(&t, 0x800) == 0);
    x = ts_totals(&t);
    CHECK_U64(x.current, 45);
    CHECK_U64(x.peak, 45 + 6 * G);
    CHECK_U64(x.allocations, x.blocks + x.frees + x.missed_frees);
    ts_close(&t);
}

/* ---- huge sizes ------------------------------------------------------------- */

static void test_huge(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_stack(&t, 0, 1, (uint64_t)IP_A) == 0);
    CHECK(ev_stack(&t, 1, 1, (uint64_t)IP_B) == 0);
    uint64_t sizes[] = {0xFFFFFFFEull, 0xFFFFFFFFull,    0x100000000ull,
                        5ull << 32,    (1ull << 47) - 1, 0};
    uint64_t sum = 0;
    for (int i = 0; i < 6; i++) {
        CHECK(ev_alloc(&t, (uint32_t)(i & 1), 0x10000 + 16 * (uint64_t)i, sizes[i]) == 0);
        sum += sizes[i];
    }
    tm_totals x = ts_totals(&t);
    CHECK_U64(x.current, sum);
    CHECK_U64(x.blocks, 6);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_STAT(st, "/src/a.c", NULL, 10, sizes[0] + sizes[2] + sizes[4], 3);
    CHECK_STAT(st, "/src/b.c", NULL, 5, sizes[1] + sizes[3] + sizes[5], 3);
    tm_stats_free(st);
    /* a huge block replaced by a small one at the same address (missed free) */
    CHECK(ev_alloc(&t, 0, 0x10000 + 16 * 3, 1) == 0);
    sum = sum - sizes[3] + 1;
    CHECK_U64(ts_totals(&t).current, sum);
    for (int i = 5; i >= 0; i--) {
        CHECK(ev_free(&t, 0x10000 + 16 * (uint64_t)i) == 0);
        sum -= i == 3 ? 1 : sizes[i];
        CHECK_U64(ts_totals(&t).current, sum);
    }
    x = ts_totals(&t);
    CHECK_U64(x.current, 0);
    CHECK_U64(x.blocks, 0);
    CHECK_U64(x.unknown_frees, 0);
    /* the old snapshot still reports what was live then */
    st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_STAT(st, "/src/b.c", NULL, 5, sizes[1] + sizes[3] + sizes[5], 3);
    tm_stats_free(st);
    tm_snapshot_free(snap);
    ts_close(&t);
}

/* Records no hook can write are format errors that change nothing: a size
 * beyond the 47-bit address space (it would wrap current and peak), a stack
 * id far beyond those defined (it would size the stack table by it).  Found
 * by fuzzing tm_store_apply. */
static void test_impossible_records(void)
{
    tstream t;
    ts_open(&t);
    /* a stack before any module: the module map is empty (qsort of nothing) */
    CHECK(ev_stack(&t, 0, 1, (uint64_t)IP_A) == 0);
    CHECK(ev_alloc(&t, 0, 0x1000, 100) == 0);
    CHECK(ev_alloc(&t, 0, 0x2000, 1ull << 47) == -1);
    CHECK_U64(t.err.code, TM_E_FORMAT);
    CHECK(ev_realloc(&t, 0, 0x1000, 0x3000, ~0ull) == -1);
    CHECK(ev_stack(&t, 1u << 20, 1, (uint64_t)IP_B) == -1);
    CHECK(strstr(t.err.msg, "out of range") != NULL);
    CHECK(ev_stack(&t, 1, 1, (uint64_t)IP_B) == 0); /* the next dense id is fine */
    tm_totals x = ts_totals(&t);
    CHECK_U64(x.current, 100);
    CHECK_U64(x.peak, 100);
    CHECK_U64(x.blocks, 1);
    CHECK_U64(x.allocations, 1);
    CHECK_U64(x.stacks, 2);
    ts_close(&t);
}

/* A stream whose last event (TICKs aside) is EXEC ended in a successful exec:
 * complete up to there.  EXEC followed by more events was a failed exec. */
static void test_exec_end(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_stack(&t, 0, 1, (uint64_t)IP_A) == 0);
    CHECK(ev_alloc(&t, 0, 0x1000, 10) == 0);
    CHECK(ts_feed(&t, tm_wire_put_exec(ts_buf, "/bin/nope")) == 0);
    CHECK(ev_tick(&t, 5, 4096) == 0);
    CHECK(ts_totals(&t).execd == 1);
    CHECK(ev_alloc(&t, 0, 0x2000, 10) == 0); /* the exec failed: tracing went on */
    CHECK(ts_totals(&t).execd == 0);
    CHECK(ts_feed(&t, tm_wire_put_exec(ts_buf, "/bin/true")) == 0);
    CHECK(ts_totals(&t).execd == 1);
    CHECK(ts_totals(&t).ended == 0);
    ts_close(&t);
}

/* ---- the statistics fixture -------------------------------------------------- */

/* S1 a.c:10 2x100 | S2 a.c:20 300 | S3 b.c:5 3x50 | S4 new+vector+fill app.c:42
 * 1000 | S5 rec x3 64 | S6 hook+new (all system) 8 | S7 mystery() 16 |
 * S8 libx.so+0x456 32 | S9 empty stack 4 | S10 a.c:10 (other address) 40 */
static void fixture(tstream *t)
{
    ts_open(t);
    CHECK(ev_stack(t, 1, 2, (uint64_t)IP_A, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(t, 2, 2, (uint64_t)IP_A2, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(t, 3, 2, (uint64_t)IP_B, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(t, 4, 3, (uint64_t)IP_NEW, (uint64_t)IP_VEC, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(t, 5, 4, (uint64_t)IP_REC, (uint64_t)IP_REC, (uint64_t)IP_REC,
                   (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(t, 6, 2, (uint64_t)IP_HOOK, (uint64_t)IP_NEW) == 0);
    CHECK(ev_stack(t, 7, 2, (uint64_t)IP_MYST, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(t, 8, 2, (uint64_t)IP_NOTH, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(t, 9, 0) == 0);
    CHECK(ev_stack(t, 10, 2, (uint64_t)IP_AD, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_alloc(t, 1, 0x100, 100) == 0);
    CHECK(ev_alloc(t, 1, 0x110, 100) == 0);
    CHECK(ev_alloc(t, 2, 0x120, 300) == 0);
    CHECK(ev_alloc(t, 3, 0x130, 50) == 0);
    CHECK(ev_alloc(t, 3, 0x140, 50) == 0);
    CHECK(ev_alloc(t, 3, 0x150, 50) == 0);
    CHECK(ev_alloc(t, 4, 0x160, 1000) == 0);
    CHECK(ev_alloc(t, 5, 0x170, 64) == 0);
    CHECK(ev_alloc(t, 6, 0x180, 8) == 0);
    CHECK(ev_alloc(t, 7, 0x190, 16) == 0);
    CHECK(ev_alloc(t, 8, 0x1a0, 32) == 0);
    CHECK(ev_alloc(t, 9, 0x1b0, 4) == 0);
    CHECK(ev_alloc(t, 10, 0x1c0, 40) == 0);
    /* a stack with nothing live is not in snapshots */
    CHECK(ev_stack(t, 11, 2, (uint64_t)IP_C, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_alloc(t, 11, 0x1d0, 5) == 0);
    CHECK(ev_free(t, 0x1d0) == 0);
}

#define TOTAL_LIVE (200 + 300 + 150 + 1000 + 64 + 8 + 16 + 32 + 4 + 40)

static void test_stats_lineno(void)
{
    tstream t;
    fixture(&t);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    CHECK_U64(tm_snapshot_totals(snap)->current, TOTAL_LIVE);
    tm_stats *st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_U64(st->n, 9);
    CHECK_U64(sum_size(st), TOTAL_LIVE);
    /* sorted by size */
    static const uint64_t order[] = {1000, 300, 240, 150, 64, 32, 16, 8, 4};
    for (size_t i = 0; i < st->n && i < 9; i++) {
        CHECK_U64(st->v[i].size, order[i]);
        CHECK_U64(st->v[i].nframes, 1);
        CHECK_U64(st->v[i].site_index, 0);
        CHECK(st->v[i].size_diff == 0 && st->v[i].count_diff == 0);
    }
    /* the vector growth is charged to the user's line, not to stl_vector.h */
    CHECK_STAT(st, "/src/app.c", NULL, 42, 1000, 1);
    CHECK_STR(st->v[0].frames[0].function, "fill");
    CHECK_STAT(st, "/src/a.c", NULL, 10, 240, 3); /* two addresses, one line */
    CHECK_STAT(st, "/src/a.c", NULL, 20, 300, 1);
    CHECK_STAT(st, "/src/b.c", NULL, 5, 150, 3);
    CHECK_STAT(st, "/src/rec.c", NULL, 7, 64, 1);
    CHECK_STAT(st, NULL, "mystery", 0, 16, 1); /* no file: function in module */
    CHECK_STAT(st, NULL, "malloc", 0, 8, 1);   /* all system: innermost frame */
    CHECK_STR(st->v[find_stat(st, NULL, "malloc", 0)].frames[0].module, HOOK);
    long i = find_stat(st, NULL, NULL, 0); /* libx.so+0x456, then the empty stack */
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK_U64(st->v[i].size, 32);
        CHECK_STR(st->v[i].frames[0].module, "/app/libx.so");
        CHECK_U64(st->v[i].frames[0].offset, 0x456);
    }
    CHECK(st->v[8].frames[0].module == NULL && st->v[8].frames[0].file == NULL);
    CHECK_U64(st->v[8].size, 4);
    tm_stats_free(st);

    /* cumulative: from the site outward; recursion counts per frame */
    st = stats(snap, TM_KEY_LINENO, 1);
    CHECK_STAT(st, "/src/main.c", NULL, 100, 200 + 300 + 150 + 1000 + 64 + 16 + 32 + 40, 11);
    CHECK_STAT(st, "/src/rec.c", NULL, 7, 3 * 64, 3);
    CHECK_STAT(st, "/src/app.c", NULL, 42, 1000, 1);
    CHECK_STAT(st, "/src/a.c", NULL, 10, 240, 3);
    CHECK_STAT(st, NULL, "malloc", 0, 8, 1);
    CHECK_STAT(st, NULL, "operator new", 0, 8, 1); /* S6's outer frame; not S4's */
    CHECK(find_stat(st, STLV, NULL, 1287) < 0);    /* frames before the site */
    CHECK_U64(st->v[0].size, 1802);
    tm_stats_free(st);
    tm_snapshot_free(snap);
    ts_close(&t);
}

static void test_stats_filename(void)
{
    tstream t;
    fixture(&t);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st = stats(snap, TM_KEY_FILENAME, 0);
    CHECK_U64(st->n, 8);
    CHECK_U64(sum_size(st), TOTAL_LIVE);
    CHECK_STAT(st, "/src/app.c", NULL, 0, 1000, 1);
    CHECK_STAT(st, "/src/a.c", NULL, 0, 540, 4);
    CHECK_STAT(st, "/src/b.c", NULL, 0, 150, 3);
    CHECK_STAT(st, "/src/rec.c", NULL, 0, 64, 1);
    CHECK_U64(st->v[1].size, 540);
    CHECK(st->v[1].frames[0].function == NULL); /* a file gathers functions */
    /* no file: the module stands for it */
    int seen = 0;
    for (size_t i = 0; i < st->n; i++) {
        const tm_frame *f = &st->v[i].frames[0];
        CHECK_U64(f->line, 0);
        if (f->file)
            continue;
        uint64_t want = 0;
        int bit = 0;
        if (f->module && !strcmp(f->module, "/app/libx.so"))
            bit = 1, want = 32;
        else if (f->module && !strcmp(f->module, APP))
            bit = 2, want = 16;
        else if (f->module && !strcmp(f->module, HOOK))
            bit = 4, want = 8;
        else if (!f->module)
            bit = 8, want = 4;
        seen |= bit;
        CHECK_U64(st->v[i].size, want);
    }
    CHECK(seen == 15);
    tm_stats_free(st);

    st = stats(snap, TM_KEY_FILENAME, 1);
    CHECK_STAT(st, "/src/main.c", NULL, 0, 1802, 11);
    CHECK_STAT(st, "/src/rec.c", NULL, 0, 192, 3);
    CHECK_STAT(st, "/src/a.c", NULL, 0, 540, 4);
    CHECK_U64(st->v[0].size, 1802);
    tm_stats_free(st);
    tm_snapshot_free(snap);
    ts_close(&t);
}

static void test_stats_traceback(void)
{
    tstream t;
    fixture(&t);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st = stats(snap, TM_KEY_TRACEBACK, 0);
    CHECK_U64(st->n, 9); /* S1 and S10 have the same frames */
    CHECK_U64(sum_size(st), TOTAL_LIVE);
    const tm_stat *v = &st->v[0];
    CHECK_U64(v->size, 1000);
    CHECK_U64(v->nframes, 5);
    CHECK_U64(v->site_index, 3);
    CHECK_STR(v->frames[0].function, "operator new");
    CHECK_STR(v->frames[1].function, "std::vector<int>::_M_realloc_insert");
    CHECK(v->frames[1].flags & TM_FRAME_INLINED);
    CHECK_STR(v->frames[2].function, "std::vector<int>::push_back");
    CHECK_STR(v->frames[3].function, "fill");
    CHECK_STR(v->frames[4].function, "main");
    CHECK_U64(v->frames[4].address, IP_MAIN);
    long i = find_stat(st, "/src/a.c", NULL, 10);
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK_U64(st->v[i].size, 240);
        CHECK_U64(st->v[i].count, 3);
        CHECK_U64(st->v[i].nframes, 2);
    }
    i = find_stat(st, "/src/rec.c", NULL, 7);
    CHECK(i >= 0 && st->v[i].nframes == 4 && st->v[i].site_index == 0);
    i = find_stat(st, NULL, "malloc", 0);
    CHECK(i >= 0 && st->v[i].nframes == 2 && st->v[i].site_index == 0);
    tm_stats_free(st);

    /* cumulative makes no sense for whole tracebacks */
    tm_query q = {0};
    q.key = TM_KEY_TRACEBACK;
    q.cumulative = 1;
    tm_err err = {0};
    CHECK(tm_snapshot_statistics(snap, &q, &fres, &err) == NULL);
    CHECK(err.code == TM_E_USAGE);
    CHECK(tm_snapshot_compare(snap, snap, &q, &fres, &err) == NULL);
    q.cumulative = 0;
    q.key = (tm_key)7;
    CHECK(tm_snapshot_statistics(snap, &q, &fres, &err) == NULL);

    /* tm_store_stack_frames: all frames and the site */
    const tm_frame *fr;
    uint32_t site = 99;
    size_t n = tm_store_stack_frames(t.s, 4, NULL, &fres, &fr, &site);
    CHECK_U64(n, 5);
    CHECK_U64(site, 3);
    CHECK_STR(fr[3].file, "/src/app.c");
    q = (tm_query){0};
    q.raw_site = 1;
    n = tm_store_stack_frames(t.s, 4, &q, &fres, &fr, &site);
    CHECK_U64(n, 5);
    CHECK_U64(site, 0);
    CHECK_U64(tm_store_stack_frames(t.s, 12345, NULL, &fres, &fr, &site), 0);
    CHECK_U64(tm_store_stack_frames(t.s, 9, NULL, &fres, &fr, &site), 1); /* empty stack */
    tm_snapshot_free(snap);
    ts_close(&t);
}

static void test_sort_ties(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_stack(&t, 1, 1, (uint64_t)IP_X1) == 0);
    CHECK(ev_stack(&t, 2, 1, (uint64_t)IP_X2) == 0);
    CHECK(ev_stack(&t, 3, 1, (uint64_t)IP_Y1) == 0);
    CHECK(ev_stack(&t, 4, 1, (uint64_t)IP_Z9) == 0);
    CHECK(ev_alloc(&t, 1, 0x10, 10) == 0);
    CHECK(ev_alloc(&t, 2, 0x20, 10) == 0);
    CHECK(ev_alloc(&t, 3, 0x30, 10) == 0);
    CHECK(ev_alloc(&t, 4, 0x40, 5) == 0);
    CHECK(ev_alloc(&t, 4, 0x50, 5) == 0);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_U64(st->n, 4);
    if (st->n == 4) {
        /* equal size: more blocks first; then the key, descending */
        CHECK_STR(st->v[0].frames[0].file, "/src/z.c");
        CHECK_STR(st->v[1].frames[0].file, "/src/y.c");
        CHECK_STR(st->v[2].frames[0].file, "/src/x.c");
        CHECK_U64(st->v[2].frames[0].line, 2);
        CHECK_STR(st->v[3].frames[0].file, "/src/x.c");
        CHECK_U64(st->v[3].frames[0].line, 1);
    }
    tm_stats_free(st);
    tm_snapshot_free(snap);
    ts_close(&t);
}

/* ---- sites ---------------------------------------------------------------------- */

static void test_sites(void)
{
    tstream t;
    fixture(&t);
    tm_snapshot *snap = tm_store_snapshot(t.s);

    /* raw_site: the innermost frame, system or not */
    tm_query q = {0};
    q.raw_site = 1;
    tm_stats *st = stats_q(snap, &q);
    CHECK_STAT(st, NULL, "operator new", 0, 1000, 1);
    CHECK_STAT(st, NULL, "malloc", 0, 8, 1);
    CHECK(find_stat(st, "/src/app.c", NULL, 42) < 0);
    tm_stats_free(st);

    /* a custom skip list replaces the default one */
    static const char *const skip_a[] = {"/src/a.c"};
    q = (tm_query){0};
    q.skip = skip_a;
    q.nskip = 1;
    st = stats_q(snap, &q);
    CHECK_STAT(st, "/src/main.c", NULL, 100, 540, 4); /* S1, S2, S10 skip a.c */
    CHECK_STAT(st, NULL, "operator new", 0, 1000, 1); /* libstdc++ is no longer system */
    CHECK_STAT(st, NULL, "malloc", 0, 8, 1);
    CHECK(find_stat(st, "/src/a.c", NULL, 10) < 0);
    tm_stats_free(st);

    /* the same list NULL-terminated (nskip 0), with a module glob */
    static const char *const skip_mod[] = {"/usr/lib/*", "/opt/*", NULL};
    q.skip = skip_mod;
    q.nskip = 0;
    st = stats_q(snap, &q);
    /* stl_vector.h is no longer skipped: the site is the inlined frame */
    CHECK_STAT(st, STLV, NULL, 1287, 1000, 1);
    CHECK_STAT(st, "/src/a.c", NULL, 10, 240, 3);
    /* the hook and libstdc++ are both skipped: all system, innermost */
    CHECK_STAT(st, NULL, "malloc", 0, 8, 1);
    tm_stats_free(st);

    /* traceback with a custom skip: the site moves */
    q = (tm_query){0};
    q.key = TM_KEY_TRACEBACK;
    q.skip = skip_a;
    q.nskip = 1;
    st = stats_q(snap, &q);
    long i = find_stat(st, "/src/a.c", NULL, 10);
    CHECK(i >= 0 && st->v[i].site_index == 1);
    tm_stats_free(st);

    const tm_frame *fr;
    uint32_t site;
    q = (tm_query){0};
    q.skip = skip_a;
    q.nskip = 1;
    CHECK_U64(tm_store_stack_frames(t.s, 1, &q, &fres, &fr, &site), 2);
    CHECK_U64(site, 1);
    CHECK_U64(tm_store_stack_frames(t.s, 6, NULL, &fres, &fr, &site), 2);
    CHECK_U64(site, 0);
    tm_snapshot_free(snap);
    ts_close(&t);
}

/* ---- filters --------------------------------------------------------------------- */

static tm_stats *filtered(tm_snapshot *snap, const tm_filter *f, size_t n)
{
    tm_query q = {0};
    q.filters = f;
    q.nfilters = n;
    return stats_q(snap, &q);
}

static void test_filters(void)
{
    tstream t;
    fixture(&t);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st;

    tm_filter ex_a = {0, "/src/a.c", 0, 0};
    st = filtered(snap, &ex_a, 1);
    CHECK_U64(st->n, 7);
    CHECK_U64(sum_size(st), TOTAL_LIVE - 540);
    tm_stats_free(st);

    tm_filter in_a = {1, "/src/a.c", 0, 0};
    st = filtered(snap, &in_a, 1);
    CHECK_U64(st->n, 2);
    CHECK_U64(sum_size(st), 540);
    tm_stats_free(st);

    tm_filter in_a10 = {1, "/src/a.c", 10, 0};
    st = filtered(snap, &in_a10, 1);
    CHECK_U64(st->n, 1);
    CHECK_STAT(st, "/src/a.c", NULL, 10, 240, 3);
    tm_stats_free(st);

    /* site-only: no stack has its site in main.c */
    tm_filter in_main = {1, "/src/main.c", 0, 0};
    st = filtered(snap, &in_main, 1);
    CHECK_U64(st->n, 0);
    tm_stats_free(st);

    /* all_frames: every stack that went through main.c */
    tm_filter in_main_all = {1, "/src/main.c", 0, 1};
    st = filtered(snap, &in_main_all, 1);
    CHECK_U64(sum_size(st), TOTAL_LIVE - 8 - 4);
    tm_stats_free(st);

    /* inclusive filters are ORed */
    tm_filter in_ab[] = {{1, "/src/a.c", 0, 0}, {1, "/src/b.c", 0, 0}};
    st = filtered(snap, in_ab, 2);
    CHECK_U64(st->n, 3);
    CHECK_U64(sum_size(st), 540 + 150);
    tm_stats_free(st);

    /* any exclusive match drops, whatever the inclusive ones say */
    tm_filter mix[] = {{1, "/src/main.c", 0, 1}, {0, "/src/b.c", 0, 0}};
    st = filtered(snap, mix, 2);
    CHECK_U64(sum_size(st), TOTAL_LIVE - 8 - 4 - 150);
    CHECK(find_stat(st, "/src/b.c", NULL, 5) < 0);
    tm_stats_free(st);

    /* "<unknown>" stands for a frame without a file */
    tm_filter ex_unk = {0, "<unknown>", 0, 0};
    st = filtered(snap, &ex_unk, 1);
    CHECK_U64(sum_size(st), TOTAL_LIVE - 8 - 16 - 32 - 4);
    tm_stats_free(st);

    /* all_frames exclusion reaches inlined system frames below the site */
    tm_filter ex_inc_all = {0, "/usr/include/*", 0, 1};
    st = filtered(snap, &ex_inc_all, 1);
    CHECK_U64(sum_size(st), TOTAL_LIVE - 1000);
    tm_stats_free(st);
    tm_filter ex_inc_site = {0, "/usr/include/*", 0, 0};
    st = filtered(snap, &ex_inc_site, 1);
    CHECK_U64(sum_size(st), TOTAL_LIVE);
    tm_stats_free(st);
    tm_filter ex_line[] = {{0, "/usr/include/*", 1198, 1}, {0, "/usr/include/*", 5, 1}};
    st = filtered(snap, &ex_line[0], 1);
    CHECK_U64(sum_size(st), TOTAL_LIVE - 1000);
    tm_stats_free(st);
    st = filtered(snap, &ex_line[1], 1);
    CHECK_U64(sum_size(st), TOTAL_LIVE);
    tm_stats_free(st);

    /* filters with the traceback key and cumulative */
    tm_query q = {0};
    q.key = TM_KEY_LINENO;
    q.cumulative = 1;
    q.filters = &in_a;
    q.nfilters = 1;
    st = stats_q(snap, &q);
    CHECK_STAT(st, "/src/main.c", NULL, 100, 540, 4);
    tm_stats_free(st);
    q.key = TM_KEY_TRACEBACK;
    q.cumulative = 0;
    q.filters = &in_main_all;
    st = stats_q(snap, &q);
    CHECK_U64(st->n, 7);
    tm_stats_free(st);

    /* with raw_site, site-only filters look at the innermost frame */
    tm_filter in_unk = {1, "<unknown>", 0, 0};
    q = (tm_query){0};
    q.raw_site = 1;
    q.filters = &in_unk;
    q.nfilters = 1;
    st = stats_q(snap, &q);
    CHECK_U64(sum_size(st), 1000 + 8 + 16 + 32 + 4);
    tm_stats_free(st);
    tm_snapshot_free(snap);
    ts_close(&t);
}

/* ---- snapshots and compare_to ---------------------------------------------------------- */

static void test_snapshot_and_compare(void)
{
    tstream t;
    fixture(&t);
    tm_snapshot *old = tm_store_snapshot(t.s);
    tm_totals before = *tm_snapshot_totals(old);

    /* a.c:10 grows, b.c:5 shrinks, a.c:20 vanishes, c.c:3 is new */
    CHECK(ev_alloc(&t, 1, 0x200, 500) == 0);
    CHECK(ev_free(&t, 0x130) == 0);
    CHECK(ev_free(&t, 0x120) == 0);
    CHECK(ev_stack(&t, 12, 2, (uint64_t)IP_C, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_alloc(&t, 12, 0x210, 400) == 0);
    /* and the snapshot does not move */
    CHECK_U64(tm_snapshot_totals(old)->current, before.current);
    CHECK_U64(tm_snapshot_totals(old)->blocks, before.blocks);
    CHECK_U64(tm_snapshot_totals(old)->allocations, before.allocations);
    tm_stats *st = stats(old, TM_KEY_LINENO, 0);
    CHECK_U64(st->n, 9);
    CHECK_U64(sum_size(st), TOTAL_LIVE);
    CHECK_STAT(st, "/src/a.c", NULL, 20, 300, 1);
    CHECK(find_stat(st, "/src/c.c", NULL, 3) < 0);
    tm_stats_free(st);

    tm_snapshot *now = tm_store_snapshot(t.s);
    CHECK_U64(tm_snapshot_totals(now)->current, TOTAL_LIVE + 500 - 50 - 300 + 400);
    tm_query q = {0};
    tm_err err;
    st = tm_snapshot_compare(now, old, &q, &fres, &err);
    CHECK(st != NULL);
    CHECK_U64(st->n, 10);
    if (st->n == 10) {
        /* |size_diff| first, then size */
        CHECK_STR(st->v[0].frames[0].file, "/src/a.c");
        CHECK_U64(st->v[0].frames[0].line, 10);
        CHECK_U64(st->v[0].size, 740);
        CHECK_I64(st->v[0].size_diff, 500);
        CHECK_U64(st->v[0].count, 4);
        CHECK_I64(st->v[0].count_diff, 1);
        CHECK_STR(st->v[1].frames[0].file, "/src/c.c");
        CHECK_U64(st->v[1].size, 400);
        CHECK_I64(st->v[1].size_diff, 400);
        CHECK_I64(st->v[1].count_diff, 1);
        CHECK_STR(st->v[2].frames[0].file, "/src/a.c");
        CHECK_U64(st->v[2].frames[0].line, 20);
        CHECK_U64(st->v[2].size, 0);
        CHECK_I64(st->v[2].size_diff, -300);
        CHECK_U64(st->v[2].count, 0);
        CHECK_I64(st->v[2].count_diff, -1);
        CHECK_STR(st->v[3].frames[0].file, "/src/b.c");
        CHECK_U64(st->v[3].size, 100);
        CHECK_I64(st->v[3].size_diff, -50);
        CHECK_I64(st->v[3].count_diff, -1);
        /* unchanged keys by size */
        CHECK_STR(st->v[4].frames[0].file, "/src/app.c");
        CHECK_I64(st->v[4].size_diff, 0);
        static const uint64_t rest[] = {1000, 64, 32, 16, 8, 4};
        for (int k = 0; k < 6; k++)
            CHECK_U64(st->v[4 + k].size, rest[k]);
    }
    tm_stats_free(st);

    /* traceback compare: S1 and S10 merge in both */
    q.key = TM_KEY_TRACEBACK;
    st = tm_snapshot_compare(now, old, &q, &fres, &err);
    CHECK(st != NULL);
    CHECK_U64(st->n, 10);
    CHECK_I64(st->v[0].size_diff, 500);
    CHECK_U64(st->v[0].nframes, 2);
    tm_stats_free(st);

    /* against itself: all zero diffs, sorted by size */
    q.key = TM_KEY_FILENAME;
    st = tm_snapshot_compare(old, old, &q, &fres, &err);
    CHECK_U64(st->n, 8);
    for (size_t i = 0; i < st->n; i++) {
        CHECK_I64(st->v[i].size_diff, 0);
        CHECK_I64(st->v[i].count_diff, 0);
    }
    CHECK_U64(st->v[0].size, 1000);
    tm_stats_free(st);
    tm_snapshot_free(now);
    tm_snapshot_free(old);
    ts_close(&t);
}

static void test_compare_order(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_stack(&t, 1, 1, (uint64_t)IP_X1) == 0);
    CHECK(ev_stack(&t, 2, 1, (uint64_t)IP_X2) == 0);
    CHECK(ev_stack(&t, 3, 1, (uint64_t)IP_Y1) == 0);
    CHECK(ev_stack(&t, 4, 1, (uint64_t)IP_Z9) == 0);
    CHECK(ev_alloc(&t, 2, 0x20, 100) == 0); /* x.c:2: 100 -> 0 */
    CHECK(ev_alloc(&t, 3, 0x30, 50) == 0);  /* y.c:1: 50 in 1 -> 150 in 3 */
    CHECK(ev_alloc(&t, 4, 0x40, 20) == 0);  /* z.c:9: 50 in 3 -> 150 in 4 */
    CHECK(ev_alloc(&t, 4, 0x42, 20) == 0);
    CHECK(ev_alloc(&t, 4, 0x43, 10) == 0);
    tm_snapshot *old = tm_store_snapshot(t.s);
    CHECK(ev_free(&t, 0x20) == 0);
    CHECK(ev_alloc(&t, 1, 0x10, 100) == 0); /* x.c:1: new, 100 */
    CHECK(ev_alloc(&t, 3, 0x31, 50) == 0);
    CHECK(ev_alloc(&t, 3, 0x32, 50) == 0);
    CHECK(ev_alloc(&t, 4, 0x41, 100) == 0);
    tm_snapshot *now = tm_store_snapshot(t.s);
    tm_err err;
    tm_stats *st = tm_snapshot_compare(now, old, NULL, &fres, &err);
    CHECK(st != NULL);
    CHECK_U64(st->n, 4);
    if (st->n == 4) {
        /* |size_diff| 100 for all four; size: 150, 150, 100, 0; then
         * |count_diff|: y (2) before z (1), though z has more blocks */
        CHECK_STR(st->v[0].frames[0].file, "/src/y.c");
        CHECK_I64(st->v[0].count_diff, 2);
        CHECK_U64(st->v[0].count, 3);
        CHECK_STR(st->v[1].frames[0].file, "/src/z.c");
        CHECK_I64(st->v[1].count_diff, 1);
        CHECK_U64(st->v[1].count, 4);
        CHECK_STR(st->v[2].frames[0].file, "/src/x.c");
        CHECK_U64(st->v[2].frames[0].line, 1);
        CHECK_I64(st->v[2].size_diff, 100);
        CHECK_STR(st->v[3].frames[0].file, "/src/x.c");
        CHECK_U64(st->v[3].frames[0].line, 2);
        CHECK_I64(st->v[3].size_diff, -100);
        CHECK_U64(st->v[3].size, 0);
    }
    tm_stats_free(st);

    /* snapshots of two stores (a saved run against a live one) */
    tstream t2;
    ts_open(&t2);
    CHECK(ev_stack(&t2, 7, 1, (uint64_t)IP_Z9) == 0);
    CHECK(ev_stack(&t2, 8, 1, (uint64_t)IP_C) == 0);
    CHECK(ev_alloc(&t2, 7, 0x70, 30) == 0);
    CHECK(ev_alloc(&t2, 8, 0x80, 1) == 0);
    tm_snapshot *other = tm_store_snapshot(t2.s);
    st = tm_snapshot_compare(now, other, NULL, &fres, &err);
    CHECK(st != NULL);
    CHECK_U64(st->n, 4); /* x.c:1, y.c:1, z.c:9, c.c:3 */
    long i = find_stat(st, "/src/z.c", NULL, 9);
    CHECK(i >= 0 && st->v[i].size_diff == 120 && st->v[i].count_diff == 3);
    i = find_stat(st, "/src/c.c", NULL, 3);
    CHECK(i >= 0 && st->v[i].size == 0 && st->v[i].size_diff == -1);
    tm_stats_free(st);
    tm_snapshot_free(other);
    ts_close(&t2);
    tm_snapshot_free(now);
    tm_snapshot_free(old);
    ts_close(&t);
}

/* ---- modules -------------------------------------------------------------------- */

static int ev_module(tstream *t, uint32_t id, const char *path, uint64_t bias, uint64_t vaddr0,
                     uint64_t memsz0, uint64_t vaddr1, uint64_t memsz1)
{
    static tm_module m;
    memset(&m, 0, sizeof m);
    m.id = id;
    m.path = path;
    m.load_bias = bias;
    m.build_id_len = 4;
    memcpy(m.build_id, "\x01\x02\x03\x04", 4);
    m.nseg = memsz1 ? 2 : 1;
    m.seg[0] = (tm_segment){vaddr0, memsz0, 5};
    m.seg[1] = (tm_segment){vaddr1, memsz1, 6};
    return ts_feed(t, tm_wire_put_module(ts_buf, &m));
}

static void test_modules(void)
{
    tstream t;
    ts_open(&t);
    const uint64_t B = 0x7f0000000000;
    CHECK(ev_module(&t, 0, "/app/main", 0x555500000000, 0, 0x3000, 0x5000, 0x1000) == 0);
    CHECK(ev_module(&t, 1, "/lib/old.so", B, 0x1000, 0x2000, 0, 0) == 0);
    const tm_module *m = tm_store_module(t.s, 1);
    CHECK(m != NULL);
    if (m) {
        CHECK_STR(m->path, "/lib/old.so");
        CHECK_U64(m->load_bias, B);
        CHECK_U64(m->nseg, 1);
        CHECK_U64(m->seg[0].vaddr, 0x1000);
        CHECK_U64(m->build_id_len, 4);
        CHECK(m->build_id[3] == 4);
    }
    CHECK(tm_store_module(t.s, 7) == NULL);

    /* S1 in old.so; S3's ips: in main's second segment, in main's gap, past old.so */
    CHECK(ev_stack(&t, 1, 1, B + 0x1010) == 0);
    CHECK(ev_stack(&t, 3, 4, 0x555500005010ull, 0x555500004000ull, B + 0x3000, B + 0x1000) == 0);
    CHECK(ts_feed(&t, tm_wire_put_module_gone(ts_buf, 1)) == 0);
    CHECK(ev_module(&t, 2, "/lib/new.so", B, 0, 0x4000, 0, 0) == 0);
    /* same address, other object */
    CHECK(ev_stack(&t, 2, 1, B + 0x1010) == 0);
    CHECK(ev_alloc(&t, 1, 0x10, 1) == 0);
    CHECK(ev_alloc(&t, 2, 0x20, 2) == 0);

    const tm_frame *fr;
    uint32_t site;
    CHECK_U64(tm_store_stack_frames(t.s, 1, NULL, &fres, &fr, &site), 1);
    CHECK_STR(fr[0].module, "/lib/old.so");
    CHECK_U64(fr[0].offset, 0x1010);
    CHECK(fctx.last_mod && fctx.last_mod->id == 1);
    CHECK_U64(tm_store_stack_frames(t.s, 2, NULL, &fres, &fr, &site), 1);
    CHECK_STR(fr[0].module, "/lib/new.so");
    CHECK(fctx.last_mod && fctx.last_mod->id == 2);
    CHECK_U64(tm_store_stack_frames(t.s, 3, NULL, &fres, &fr, &site), 4);
    CHECK_STR(fr[0].module, "/app/main");
    CHECK_U64(fr[0].offset, 0x5010);
    CHECK(fr[1].module == NULL);
    CHECK(fr[2].module == NULL); /* end of old.so's segment is exclusive */
    CHECK_STR(fr[3].module, "/lib/old.so");
    /* the record of a gone module stays */
    m = tm_store_module(t.s, 1);
    CHECK(m && !strcmp(m->path, "/lib/old.so"));

    /* a MODULE repeating a live id (no MODULE_GONE between) replaces it for
     * new stacks only */
    CHECK(ev_module(&t, 0, "/app/main2", 0x666600000000, 0, 0x3000, 0, 0) == 0);
    CHECK(ev_stack(&t, 4, 2, 0x555500000100ull, 0x666600000100ull) == 0);
    CHECK_U64(tm_store_stack_frames(t.s, 4, NULL, &fres, &fr, &site), 2);
    CHECK(fr[0].module == NULL);
    CHECK_STR(fr[1].module, "/app/main2");
    CHECK_STR(tm_store_module(t.s, 0)->path, "/app/main2");
    CHECK_U64(tm_store_stack_frames(t.s, 3, NULL, &fres, &fr, &site), 4);
    CHECK_STR(fr[0].module, "/app/main");

    /* without a resolver: module and offset */
    CHECK_U64(tm_store_stack_frames(t.s, 1, NULL, NULL, &fr, &site), 1);
    CHECK_STR(fr[0].module, "/lib/old.so");
    CHECK_U64(fr[0].offset, 0x1010);
    CHECK(fr[0].function == NULL);

    /* lineno statistics of module-only frames key on (module, offset) */
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_stats *st = stats(snap, TM_KEY_LINENO, 0);
    CHECK_U64(st->n, 2);
    CHECK_STR(st->v[0].frames[0].module, "/lib/new.so");
    CHECK_STR(st->v[1].frames[0].module, "/lib/old.so");
    tm_stats_free(st);
    tm_snapshot_free(snap);
    ts_close(&t);
}

/* ---- the resolver cache ----------------------------------------------------------- */

static void test_pending(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_stack(&t, 1, 2, (uint64_t)IP_PEND, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_stack(&t, 2, 2, (uint64_t)IP_A, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_alloc(&t, 1, 0x10, 10) == 0);
    CHECK(ev_alloc(&t, 2, 0x20, 20) == 0);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    fake_ctx c = {0};
    tm_resolver r = {fake_resolve, &c};
    tm_err err;
    tm_query q = {0};
    q.key = TM_KEY_TRACEBACK;
    tm_stats *st = tm_snapshot_statistics(snap, &q, &r, &err);
    CHECK(st && st->n == 2);
    CHECK_U64(c.calls, 3); /* three distinct addresses */
    CHECK_U64(c.pend_calls, 1);
    tm_stats_free(st);
    st = tm_snapshot_statistics(snap, &q, &r, &err);
    CHECK_U64(c.calls, 4); /* only the pending one again */
    CHECK_U64(c.pend_calls, 2);
    CHECK(find_stat(st, NULL, NULL, 0) >= 0);
    tm_stats_free(st);
    c.pend_resolved = 1;
    st = tm_snapshot_statistics(snap, &q, &r, &err);
    CHECK_U64(c.pend_calls, 3);
    CHECK_STAT(st, "/src/late.c", NULL, 77, 10, 1);
    tm_stats_free(st);
    st = tm_snapshot_statistics(snap, &q, &r, &err);
    CHECK_U64(c.calls, 5); /* all cached now */
    tm_stats_free(st);

    /* a plain lineno query does not resolve frames beyond the site */
    tstream t2;
    ts_open(&t2);
    CHECK(ev_stack(&t2, 1, 3, (uint64_t)IP_A, (uint64_t)IP_B, (uint64_t)IP_MAIN) == 0);
    CHECK(ev_alloc(&t2, 1, 0x10, 10) == 0);
    tm_snapshot *snap2 = tm_store_snapshot(t2.s);
    fake_ctx c2 = {0};
    tm_resolver r2 = {fake_resolve, &c2};
    st = tm_snapshot_statistics(snap2, NULL, &r2, &err);
    CHECK(st && st->n == 1);
    CHECK_U64(c2.calls, 1);
    tm_stats_free(st);
    /* another resolver starts the cache over */
    st = tm_snapshot_statistics(snap2, NULL, &r, &err);
    CHECK_U64(c.calls, 6);
    tm_stats_free(st);
    tm_snapshot_free(snap2);
    ts_close(&t2);
    tm_snapshot_free(snap);
    ts_close(&t);
}

int main(void)
{
    test_totals();
    test_realloc();
    test_huge();
    test_impossible_records();
    test_exec_end();
    test_stats_lineno();
    test_stats_filename();
    test_stats_traceback();
    test_sort_ties();
    test_sites();
    test_filters();
    test_snapshot_and_compare();
    test_compare_order();
    test_modules();
    test_pending();
    return check_done("store");
}
