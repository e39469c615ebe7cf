/* test_store_scale.c - the live table at scale: a million live blocks with
 * random frees and reallocs against a shadow model (exact totals and
 * per-stack sums), memory per live block, and the ingestion and snapshot
 * rates, which are printed (the build type decides what they mean). */
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "store_internal.h"
#include "test_store_stream.h"

#define NSTACKS 100
#define IP_BASE 0x10000ull

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double bytes_per_block(const tm_store *s)
{
    size_t bytes = s->lt.cap * sizeof(lt_slot);
    if (s->big.e)
        bytes += (s->big.mask + 1) * sizeof(wide_ent);
    if (s->pending.e)
        bytes += (s->pending.mask + 1) * sizeof(wide_ent);
    return s->blocks ? (double)bytes / (double)s->blocks : 0;
}

/* shadow model */
typedef struct blk {
    uint64_t ptr, size;
    uint32_t stack;
} blk;

static blk *live;
static size_t nlive;
static uint64_t cur, stack_bytes[NSTACKS], stack_blocks[NSTACKS];
static uint64_t next_addr = 0x7f0000000000ull;

static uint64_t pick_size(void)
{
    uint64_t r = rnd();
    if (r % 200000 == 0)
        return (5ull << 30) + r % 1000; /* now and then a block over 4 GiB */
    return 1 + r % 4096;
}

static void do_alloc(tstream *t)
{
    blk b = {next_addr, pick_size(), (uint32_t)(rnd() % NSTACKS)};
    next_addr += 48;
    if (ev_alloc(t, b.stack, b.ptr, b.size) != 0)
        CHECK(0);
    live[nlive++] = b;
    cur += b.size;
    stack_bytes[b.stack] += b.size;
    stack_blocks[b.stack]++;
}

static void do_free(tstream *t)
{
    size_t k = rnd() % nlive;
    blk b = live[k];
    live[k] = live[--nlive];
    if (ev_free(t, b.ptr) != 0)
        CHECK(0);
    cur -= b.size;
    stack_bytes[b.stack] -= b.size;
    stack_blocks[b.stack]--;
}

static void do_realloc(tstream *t)
{
    size_t k = rnd() % nlive;
    blk *b = &live[k];
    uint64_t nsize = pick_size(), nptr = rnd() % 2 ? b->ptr : next_addr;
    uint32_t nstack = (uint32_t)(rnd() % NSTACKS);
    if (nptr == next_addr)
        next_addr += 48;
    CHECK(ev_pre(t, b->ptr) == 0);
    if (rnd() % 4 == 0) { /* failed realloc: unchanged */
        CHECK(ev_failed(t, b->ptr) == 0);
        return;
    }
    CHECK(ev_realloc(t, nstack, b->ptr, nptr, nsize) == 0);
    cur = cur - b->size + nsize;
    stack_bytes[b->stack] -= b->size;
    stack_blocks[b->stack]--;
    stack_bytes[nstack] += nsize;
    stack_blocks[nstack]++;
    b->ptr = nptr;
    b->size = nsize;
    b->stack = nstack;
}

static void check_exact(tstream *t, const char *when)
{
    tm_totals x = ts_totals(t);
    int bad = check_failures;
    CHECK_U64(x.current, cur);
    CHECK_U64(x.blocks, nlive);
    CHECK_U64(t->s->lt.count, nlive);
    CHECK_U64(x.unknown_frees, 0);
    CHECK_U64(x.missed_frees, 0);
    CHECK_U64(x.allocations, x.blocks + x.frees);
    /* per stack, through a snapshot and statistics without a resolver:
     * every stack is its own (module, offset) key */
    tm_snapshot *snap = tm_store_snapshot(t->s);
    tm_err err;
    tm_stats *st = tm_snapshot_statistics(snap, NULL, NULL, &err);
    CHECK(st != NULL);
    size_t nonempty = 0;
    for (int i = 0; i < NSTACKS; i++)
        nonempty += stack_blocks[i] != 0;
    CHECK_U64(st->n, nonempty);
    for (size_t i = 0; i < st->n; i++) {
        uint64_t id = (st->v[i].frames[0].address - IP_BASE) / 16;
        CHECK(id < NSTACKS);
        if (id < NSTACKS) {
            CHECK_U64(st->v[i].size, stack_bytes[id]);
            CHECK_U64(st->v[i].count, stack_blocks[id]);
        }
    }
    tm_stats_free(st);
    tm_snapshot_free(snap);
    if (check_failures != bad)
        fprintf(stderr, "  (after %s)\n", when);
}

static void define_stacks(tstream *t)
{
    for (uint32_t i = 0; i < NSTACKS; i++)
        CHECK(ev_stack(t, i, 1, IP_BASE + 16 * i) == 0);
}

/* A million live blocks, random frees and reallocs, exact at every stage. */
static void test_million(void)
{
    tstream t;
    ts_open(&t);
    define_stacks(&t);
    live = malloc(1100000 * sizeof *live);
    while (nlive < 1000000) {
        uint64_t r = rnd() % 10;
        if (r < 6 || nlive < 10)
            do_alloc(&t);
        else if (r < 9)
            do_free(&t);
        else
            do_realloc(&t);
        if (nlive == 1000 || nlive == 100000)
            check_exact(&t, "growth");
    }
    check_exact(&t, "1e6 live");
    fprintf(stderr, "store scale: 1e6 live after random frees: table %llu slots, %.1f B/block\n",
            (unsigned long long)t.s->lt.cap, bytes_per_block(t.s));
    while (nlive > 500000)
        rnd() % 4 ? do_free(&t) : do_realloc(&t);
    check_exact(&t, "half freed");
    while (nlive)
        do_free(&t);
    check_exact(&t, "all freed");
    CHECK_U64(ts_totals(&t).current, 0);
    CHECK(t.s->lt.cap == LT_SMALL_CAP / 2); /* shrunk back to the largest small table */
    free(live);
    live = NULL;
    ts_close(&t);
}

/* Memory per live block while a table grows: never above 32 bytes once the
 * table is past the small sizes (LT_SMALL_CAP slots, 1 MiB) that are kept
 * sparse for speed; below, never above 1 MiB in all. */
static void test_bytes_per_block(void)
{
    tstream t;
    ts_open(&t);
    define_stacks(&t);
    double worst = 0;
    for (uint64_t i = 1; i <= 1000000; i++) {
        CHECK(ev_alloc(&t, (uint32_t)(i % NSTACKS), 0x7f0000000000ull + 32 * i, 64) == 0);
        double b = bytes_per_block(t.s);
        if (i >= LT_SMALL_CAP / 2 && b > worst)
            worst = b;
        CHECK(t.s->lt.cap <= LT_SMALL_CAP || i >= LT_SMALL_CAP / 8);
        if (i == 1000 || i == 10000 || i == 100000 || i == 1000000)
            fprintf(stderr, "store scale: %7llu live blocks: %.1f B/block\n", (unsigned long long)i,
                    b);
    }
    fprintf(stderr, "store scale: worst while growing (>= %u blocks): %.1f B/block\n",
            LT_SMALL_CAP / 2, worst);
    CHECK(worst <= 32.0);
    ts_close(&t);
}

/* Ingestion rate: decode + apply of a pre-encoded stream of free/alloc pairs
 * with `nlive_target` blocks live. */
static void bench_ingest(uint64_t nlive_target, uint64_t nevents)
{
    tstream t;
    ts_open(&t);
    define_stacks(&t);
    uint64_t *ptrs = malloc(nlive_target * sizeof *ptrs);
    for (uint64_t i = 0; i < nlive_target; i++) {
        ptrs[i] = 0x7f0000000000ull + 48 * i;
        CHECK(ev_alloc(&t, (uint32_t)(i % NSTACKS), ptrs[i], 32) == 0);
    }
    size_t cap = nevents / 2 * (TM_WIRE_FREE_LEN + TM_WIRE_ALLOC_LEN);
    uint8_t *buf = malloc(cap), *p = buf;
    uint64_t addr = 0x7f0000000000ull + 48 * nlive_target;
    for (uint64_t e = 0; e < nevents / 2; e++) {
        uint64_t k = rnd() % nlive_target;
        p += tm_wire_put_free(p, ptrs[k], TM_FREE_FREE);
        /* small heaps reuse addresses, large ones spread */
        if (nlive_target > 100000)
            ptrs[k] = addr, addr += 48;
        p += tm_wire_put_alloc(p, (uint32_t)(e % NSTACKS), TM_ALLOC_MALLOC, ptrs[k], 1 + e % 512);
    }
    size_t len = (size_t)(p - buf), off = 0;
    double t0 = now_s();
    tm_wire_rec rec;
    size_t used;
    while (off < len) {
        if (tm_wire_decode(&t.d, buf + off, len - off, &used, &rec, &t.err) != 1)
            break;
        if (tm_store_apply(t.s, &rec, &t.err) != 0)
            break;
        off += used;
    }
    double dt = now_s() - t0;
    CHECK(off == len);
    CHECK_U64(ts_totals(&t).blocks, nlive_target);
    fprintf(stderr, "store scale: ingest with %llu live: %.1f M events/s (%.1f ns/event)\n",
            (unsigned long long)nlive_target, nevents / dt / 1e6, dt / nevents * 1e9);
    free(buf);
    free(ptrs);
    ts_close(&t);
}

/* A resolver shaped like the symbolizer: interned strings, a thousand
 * source files, an inlined system frame on every tenth address. */
static char bench_files[1000][32];

static int bench_resolve(void *ctx, const tm_module *mod, uint64_t ip, tm_frame *out, int max)
{
    (void)ctx;
    (void)mod;
    int n = 0;
    if (ip % 10 == 0 && max > 1)
        out[n++] = (tm_frame){"std::vector<int>::push_back",
                              "/usr/include/c++/12/bits/stl_vector.h",
                              1198,
                              TM_FRAME_INLINED,
                              "/app/main",
                              ip,
                              ip};
    out[n++] =
        (tm_frame){"fn", bench_files[ip % 1000], (uint32_t)(ip % 97), 0, "/app/main", ip, ip};
    return n;
}

/* Snapshot and statistics cost with 1e5 stacks holding live blocks. */
static void bench_snapshot(void)
{
    tstream t;
    ts_open(&t);
    const uint32_t n = 100000;
    for (uint32_t i = 0; i < n; i++) {
        CHECK(ev_stack(&t, i, 2, IP_BASE + 16 * (uint64_t)i, 0x999000ull) == 0);
        CHECK(ev_alloc(&t, i, 0x7f0000000000ull + 32 * (uint64_t)i, 10 + i % 7) == 0);
    }
    double t0 = now_s();
    tm_snapshot *snap = tm_store_snapshot(t.s);
    double dt = now_s() - t0;
    CHECK(snap != NULL);
    fprintf(stderr, "store scale: snapshot of %u stacks: %.2f ms\n", n, dt * 1e3);
    tm_err err;
    for (int pass = 0; pass < 2; pass++) {
        t0 = now_s();
        tm_stats *st = tm_snapshot_statistics(snap, NULL, NULL, &err);
        dt = now_s() - t0;
        CHECK(st && st->n == n);
        tm_stats_free(st);
        fprintf(stderr, "store scale: lineno statistics of %u stacks (no resolver): %.1f ms\n", n,
                dt * 1e3);
    }
    for (int i = 0; i < 1000; i++)
        snprintf(bench_files[i], sizeof bench_files[i], "/src/file%03d.c", i);
    tm_resolver res = {bench_resolve, NULL};
    static const tm_query queries[] = {
        {TM_KEY_LINENO, 0, NULL, 0, 0, NULL, 0},
        {TM_KEY_LINENO, 1, NULL, 0, 0, NULL, 0},
        {TM_KEY_TRACEBACK, 0, NULL, 0, 0, NULL, 0},
    };
    static const char *const names[] = {"lineno", "lineno cumulative", "traceback"};
    for (int qi = 0; qi < 3; qi++) {
        for (int pass = 0; pass < 2; pass++) {
            t0 = now_s();
            tm_stats *st = tm_snapshot_statistics(snap, &queries[qi], &res, &err);
            dt = now_s() - t0;
            CHECK(st != NULL);
            tm_stats_free(st);
            fprintf(stderr, "store scale: %s statistics of %u stacks (resolver, %s): %.1f ms\n",
                    names[qi], n, pass ? "cached" : "first", dt * 1e3);
        }
    }
    tm_snapshot_free(snap);
    ts_close(&t);
}

/* A program that builds a few thousand blocks and frees them all, over and
 * over: the small table keeps its size instead of being rebuilt each time. */
static void test_churn_keeps_table(void)
{
    tstream t;
    ts_open(&t);
    define_stacks(&t);
    uint64_t cap = 0;
    for (int round = 0; round < 5; round++) {
        for (uint64_t i = 1; i <= 5000; i++)
            CHECK(ev_alloc(&t, (uint32_t)(i % NSTACKS), 0x7f0000000000ull + 64 * i, 48) == 0);
        if (round == 0)
            cap = t.s->lt.cap;
        CHECK_U64(t.s->lt.cap, cap);
        for (uint64_t i = 1; i <= 5000; i++)
            CHECK(ev_free(&t, 0x7f0000000000ull + 64 * i) == 0);
        CHECK_U64(t.s->lt.cap, cap); /* not shrunk */
        CHECK_U64(ts_totals(&t).current, 0);
    }
    CHECK(cap > LT_MIN_CAP && cap < LT_SMALL_CAP);
    ts_close(&t);
}

int main(void)
{
    test_million();
    test_bytes_per_block();
    test_churn_keeps_table();
    bench_ingest(1000, 4000000);
    bench_ingest(1000000, 4000000);
    bench_snapshot();
    return check_done("store_scale");
}
