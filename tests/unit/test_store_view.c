/* test_store_view.c - tm_view, the statistics kept up to date across queries:
 * after every change (new records, a new stack, a filter, the key, cumulative,
 * a diff against a snapshot, frames that were pending and got resolved) its
 * rows must equal what tm_snapshot_statistics / tm_snapshot_compare compute
 * from scratch, in the same order; the old side of a diff is cached and must
 * never be stale. */
#include <stdio.h>
#include <string.h>

#include "test_store_stream.h"

/* A fake program: addresses 0x1000 + 16 * k are user lines of 8 files; those
 * at 0x9000 and up are a system header (skipped as the site). */
static const char *files[8] = {"/src/a.c", "/src/b.c", "/src/c.c", "/src/d.c",
                               "/src/e.c", "/src/f.c", "/src/g.c", "/src/h.c"};
static int pending_on; /* answer "pending" for every address */

static int fake_resolve(void *ctx, const tm_module *mod, uint64_t ip, tm_frame *out, int max)
{
    (void)ctx;
    (void)mod;
    (void)max;
    memset(out, 0, sizeof *out);
    out->address = ip;
    out->module = "/opt/app";
    out->offset = ip;
    if (pending_on) {
        out->flags = TM_FRAME_PENDING;
        return 1;
    }
    if (ip >= 0x9000) {
        out->file = "/usr/include/alloc.h";
        out->function = "alloc";
        out->line = 7;
        return 1;
    }
    uint64_t k = (ip - 0x1000) / 16;
    out->file = files[k % 8];
    out->function = "f";
    out->line = (uint32_t)(k % 5) + 1; /* several addresses share a line */
    return 1;
}

static const tm_resolver res = {fake_resolve, NULL};

static uint64_t rnd = 12345;
static uint64_t next_rand(void)
{
    rnd ^= rnd << 13;
    rnd ^= rnd >> 7;
    rnd ^= rnd << 17;
    return rnd;
}

static uint32_t nstacks;
static uint64_t next_ptr = 0x100000;

static void add_stacks(tstream *t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++, nstacks++) {
        uint64_t a = 0x9000 + (next_rand() % 3) * 16, b = 0x1000 + (next_rand() % 40) * 16,
                 c = 0x1000 + (next_rand() % 40) * 16, d = 0x1000 + (next_rand() % 40) * 16;
        CHECK(ev_stack(t, nstacks, 4, a, b, c, d) == 0);
    }
}

static void add_blocks(tstream *t, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        ev_alloc(t, (uint32_t)(next_rand() % nstacks), next_ptr, 1 + next_rand() % 300);
        next_ptr += 0x100;
    }
}

static int same_frames(const tm_stat *a, const tm_stat *b)
{
    if (a->nframes != b->nframes || a->site_index != b->site_index)
        return 0;
    for (uint32_t k = 0; k < a->nframes; k++) {
        const tm_frame *x = &a->frames[k], *y = &b->frames[k];
        if (x->file != y->file || x->line != y->line || x->address != y->address ||
            x->flags != y->flags)
            return 0;
    }
    return 1;
}

/* The view's rows equal the statistics computed from scratch, row by row,
 * whole and by windows; tm_view_find finds every row where it is. */
static void check_view(tm_view *v, const tm_snapshot *now, const tm_snapshot *old,
                       const tm_query *q, const char *what)
{
    tm_err err = {0};
    CHECK(tm_view_update(v, now, old, q, &res, &err) == 0);
    tm_stats *st = old ? tm_snapshot_compare(now, old, q, &res, &err)
                       : tm_snapshot_statistics(now, q, &res, &err);
    CHECK(st != NULL);
    if (!st)
        return;
    size_t n = tm_view_count(v);
    CHECK_U64(n, st->n);
    tm_stat *rows = calloc(n + 1, sizeof *rows);
    CHECK_U64(tm_view_rows(v, 0, n, rows), n);
    size_t pending = 0, bad = 0;
    for (size_t i = 0; i < n && i < st->n; i++) {
        const tm_stat *a = &rows[i], *b = &st->v[i];
        if (a->size != b->size || a->count != b->count || a->size_diff != b->size_diff ||
            a->count_diff != b->count_diff || !same_frames(a, b))
            bad++;
        pending += (a->frames[0].flags & TM_FRAME_PENDING) != 0;
    }
    if (bad)
        fprintf(stderr, "%s: %zu rows differ\n", what, bad);
    CHECK_U64(bad, 0);
    if (q->key != TM_KEY_TRACEBACK)
        CHECK_U64(tm_view_pending(v), pending);
    /* small windows, from the top, the middle and the end; each twice (the
     * second call starts from the range of sort numbers the first left) */
    for (size_t first = 0; first < n; first += n / 7 + 1) {
        for (int again = 0; again < 2; again++) {
            tm_stat w[3];
            size_t got = tm_view_rows(v, first, 3, w);
            CHECK_U64(got, n - first < 3 ? n - first : 3);
            for (size_t k = 0; k < got; k++)
                CHECK(w[k].size == st->v[first + k].size && same_frames(&w[k], &st->v[first + k]));
        }
        long r = tm_view_find(v, st->v[first].frames, st->v[first].nframes);
        CHECK_I64(r, (int64_t)first);
    }
    tm_stats_free(st);
    free(rows);
}

static int keep_big(void *ctx, const tm_stat *row)
{
    return row->size >= *(uint64_t *)ctx;
}

static void test_view_follows_changes(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_hello(&t, 1, 0, 64, "/opt/app") == 0);
    add_stacks(&t, 200);
    add_blocks(&t, 3000);

    tm_filter ex = {0, "/src/b.c", 0, 0}, inc_all = {1, "/src/c.c", 0, 1};
    tm_query q = {TM_KEY_LINENO, 0, NULL, 0, 0, NULL, 0};
    tm_view *v = tm_view_new();
    CHECK(v != NULL);

    tm_snapshot *s1 = tm_store_snapshot(t.s);
    check_view(v, s1, NULL, &q, "lineno");
    check_view(v, s1, NULL, &q, "lineno again (all cached)");

    /* new records on known stacks, and new stacks */
    for (uint64_t p = 0x100000; p < 0x100000 + 0x100 * 500; p += 0x100)
        ev_free(&t, p);
    add_blocks(&t, 700);
    add_stacks(&t, 50);
    add_blocks(&t, 700);
    tm_snapshot *s2 = tm_store_snapshot(t.s);
    check_view(v, s2, NULL, &q, "lineno after new records");

    /* a filter, then another filter at the same address */
    q.filters = &ex;
    q.nfilters = 1;
    check_view(v, s2, NULL, &q, "lineno, exclude b.c");
    ex.pattern = "/src/d.c";
    check_view(v, s2, NULL, &q, "lineno, exclude d.c (same filter array)");
    q.filters = &inc_all;
    check_view(v, s2, NULL, &q, "lineno, include c.c in any frame");
    q.filters = NULL;
    q.nfilters = 0;

    /* the key and cumulative */
    q.key = TM_KEY_FILENAME;
    check_view(v, s2, NULL, &q, "filename");
    q.cumulative = 1;
    check_view(v, s2, NULL, &q, "filename, cumulative");
    q.key = TM_KEY_LINENO;
    check_view(v, s2, NULL, &q, "lineno, cumulative");
    q.cumulative = 0;
    q.key = TM_KEY_TRACEBACK;
    check_view(v, s2, NULL, &q, "traceback");
    q.raw_site = 1;
    check_view(v, s2, NULL, &q, "traceback, raw site");
    q.raw_site = 0;

    /* diffs: stacks only in one side, both ways */
    check_view(v, s2, s1, &q, "traceback diff");
    check_view(v, s1, s2, &q, "traceback diff reversed");
    q.key = TM_KEY_LINENO;
    check_view(v, s2, s1, &q, "lineno diff");
    check_view(v, s2, NULL, &q, "lineno, no diff again");

    /* tm_view_select: the kept rows, in order */
    uint64_t min = 2000;
    tm_stat sel[512];
    size_t nsel = tm_view_select(v, keep_big, &min, sel, 512);
    tm_err err = {0};
    tm_stats *st = tm_snapshot_statistics(s2, &q, &res, &err);
    size_t want = 0, bad = 0;
    for (size_t i = 0; st && i < st->n; i++)
        if (st->v[i].size >= min) {
            if (want < nsel &&
                (sel[want].size != st->v[i].size || !same_frames(&sel[want], &st->v[i])))
                bad++;
            want++;
        }
    CHECK_U64(nsel, want);
    CHECK_U64(bad, 0);
    tm_stats_free(st);
    /* without an output array (a count), whatever max says */
    CHECK_U64(tm_view_select(v, keep_big, &min, NULL, 512), nsel);

    /* an error: a diff across stores */
    tstream t2;
    ts_open(&t2);
    tm_snapshot *other = tm_store_snapshot(t2.s);
    CHECK(tm_view_update(v, s2, other, &q, &res, &err) == -1);
    CHECK_U64(tm_view_count(v), 0);
    check_view(v, s2, NULL, &q, "lineno after an error");
    q.cumulative = 1;
    q.key = TM_KEY_TRACEBACK;
    CHECK(tm_view_update(v, s2, NULL, &q, &res, &err) == -1);
    tm_snapshot_free(other);
    ts_close(&t2);

    tm_snapshot_free(s1);
    tm_snapshot_free(s2);
    tm_view_free(v);
    ts_close(&t);
}

/* Frames that are pending are not cached: once resolved, the stacks move to
 * their real groups on the next update. */
static void test_view_pending_then_resolved(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_hello(&t, 1, 0, 64, "/opt/app") == 0);
    nstacks = 0;
    add_stacks(&t, 30);
    add_blocks(&t, 400);
    tm_snapshot *s = tm_store_snapshot(t.s);
    tm_query q = {TM_KEY_LINENO, 0, NULL, 0, 0, NULL, 0};
    tm_view *v = tm_view_new();
    pending_on = 1;
    check_view(v, s, NULL, &q, "pending");
    CHECK(tm_view_pending(v) > 0);
    pending_on = 0;
    check_view(v, s, NULL, &q, "resolved");
    CHECK_U64(tm_view_pending(v), 0);
    /* and the other way: the resolver binding changes, the view starts over */
    tm_resolver other = {fake_resolve, &q};
    tm_err err = {0};
    pending_on = 1;
    CHECK(tm_view_update(v, s, NULL, &q, &other, &err) == 0);
    CHECK(tm_view_pending(v) > 0);
    pending_on = 0;
    check_view(v, s, NULL, &q, "first resolver again");
    tm_snapshot_free(s);
    tm_view_free(v);
    ts_close(&t);
}

/* A diff keeps the old side's sums per group across updates: they must not
 * survive new records or stacks in now, another old snapshot (even one at the
 * address of a freed one), a change of key, or old's frames getting resolved. */
static void test_view_diff_cache(void)
{
    tstream t;
    ts_open(&t);
    CHECK(ev_hello(&t, 1, 0, 64, "/opt/app") == 0);
    nstacks = 0;
    add_stacks(&t, 120);
    add_blocks(&t, 2000);
    tm_query q = {TM_KEY_LINENO, 0, NULL, 0, 0, NULL, 0};
    tm_view *v = tm_view_new();
    CHECK(v != NULL);

    tm_snapshot *old = tm_store_snapshot(t.s);
    add_blocks(&t, 300);
    tm_snapshot *now = tm_store_snapshot(t.s);
    check_view(v, now, old, &q, "diff cache: first");
    check_view(v, now, old, &q, "diff cache: again");

    /* new records on known stacks and new stacks: now changes, old does not */
    for (int round = 0; round < 3; round++) {
        for (uint64_t p = 0x100000 + 0x100 * 400 * (uint64_t)round;
             p < 0x100000 + 0x100 * 400 * (uint64_t)(round + 1); p += 0x100)
            ev_free(&t, p);
        add_stacks(&t, 10);
        add_blocks(&t, 500);
        tm_snapshot_free(now);
        now = tm_store_snapshot(t.s);
        check_view(v, now, old, &q, "diff cache: new records and stacks");
    }

    /* another old snapshot; then the old one freed and a new one most likely
     * at its address, with other contents */
    tm_snapshot *old2 = tm_store_snapshot(t.s);
    add_blocks(&t, 200);
    tm_snapshot_free(now);
    now = tm_store_snapshot(t.s);
    check_view(v, now, old2, &q, "diff cache: a newer old snapshot");
    check_view(v, now, old, &q, "diff cache: back to the first old snapshot");
    tm_snapshot_free(old);
    for (uint64_t p = 0x100000 + 0x100 * 1200; p < 0x100000 + 0x100 * 1700; p += 0x100)
        ev_free(&t, p);
    old = tm_store_snapshot(t.s);
    check_view(v, now, old, &q, "diff cache: an old snapshot where a freed one was");
    check_view(v, old, now, &q, "diff cache: the sides swapped");

    /* the key, and a filter */
    q.key = TM_KEY_FILENAME;
    check_view(v, now, old, &q, "diff cache: filename");
    q.key = TM_KEY_TRACEBACK;
    check_view(v, now, old, &q, "diff cache: traceback");
    tm_filter ex = {0, "/src/b.c", 0, 0};
    q.filters = &ex;
    q.nfilters = 1;
    check_view(v, now, old, &q, "diff cache: traceback, exclude b.c");
    q.filters = NULL;
    q.nfilters = 0;
    q.key = TM_KEY_LINENO;
    check_view(v, now, old, &q, "diff cache: lineno again");

    tm_snapshot_free(old);
    tm_snapshot_free(old2);
    tm_snapshot_free(now);
    tm_view_free(v);
    ts_close(&t);

    /* old's stacks pending when summed (a store whose frames were never
     * resolved), resolved later: they regroup, and old's sums with them */
    ts_open(&t);
    CHECK(ev_hello(&t, 1, 0, 64, "/opt/app") == 0);
    nstacks = 0;
    add_stacks(&t, 40);
    add_blocks(&t, 600);
    old = tm_store_snapshot(t.s);
    add_blocks(&t, 100);
    now = tm_store_snapshot(t.s);
    v = tm_view_new();
    pending_on = 1;
    check_view(v, now, old, &q, "diff cache: pending");
    CHECK(tm_view_pending(v) > 0);
    pending_on = 0;
    check_view(v, now, old, &q, "diff cache: resolved");
    CHECK_U64(tm_view_pending(v), 0);
    add_blocks(&t, 100);
    tm_snapshot_free(now);
    now = tm_store_snapshot(t.s);
    check_view(v, now, old, &q, "diff cache: resolved, new records");
    tm_snapshot_free(old);
    tm_snapshot_free(now);
    tm_view_free(v);
    ts_close(&t);
}

int main(void)
{
    test_view_follows_changes();
    test_view_pending_then_resolved();
    test_view_diff_cache();
    return check_done("store_view");
}
