/* bench_ingest - how fast tmtop's store swallows a trace, what a snapshot
 * costs and how much memory a live block takes, without the hook or a target:
 * a generated stream is replayed through tm_wire_decode + tm_store_apply on
 * one core, as the launcher does.
 *
 *   ingest at L live blocks (L = 10^3 and 10^6): the store is first filled
 *     with L blocks from 1000 stacks, then a churn of FREE of a random live
 *     block + ALLOC of a fresh address (so L stays constant) is timed;
 *   snapshot at 10^5 sites: 10^5 stacks with 10 live blocks each (10^6
 *     blocks), tm_store_snapshot + tm_snapshot_free timed (median of 21);
 *   memory per live block: the heap's growth (mallinfo2: arena + mmapped
 *     chunks) while 10^6 blocks are added, divided by 10^6.
 *
 * usage: bench_ingest [CHURN_EVENTS [LIVE]]   (default 2*10^7 events; with
 * LIVE, only the ingest at LIVE live blocks runs: for callgrind A/B runs) */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "wire.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A growable byte buffer holding a generated stream. */
struct stream {
    uint8_t *p;
    size_t len, cap;
};

static uint8_t *room(struct stream *s, size_t n)
{
    if (s->cap - s->len < n) {
        size_t cap = s->cap ? s->cap * 2 : 1 << 20;
        while (cap - s->len < n)
            cap *= 2;
        s->p = realloc(s->p, cap);
        if (!s->p) {
            perror("bench_ingest");
            exit(1);
        }
        s->cap = cap;
    }
    return s->p + s->len;
}

static void put_header(struct stream *s)
{
    s->len += tm_wire_put_preamble(room(s, 64));
    s->len += tm_wire_put_hello(room(s, 256), 1, 0, 0, 0, 0, 64, "/bench/app");
}

/* STACK records 0..n-1, each 8 frames deep with distinct addresses. */
static void put_stacks(struct stream *s, uint32_t n)
{
    uint64_t ips[8];
    for (uint32_t id = 0; id < n; id++) {
        for (int k = 0; k < 8; k++)
            ips[k] = 0x400000u + (uint64_t)id * 64 + (uint64_t)k * 0x10000000u;
        s->len += tm_wire_put_stack(room(s, 6 + 8 + 8 * 8), id, 0, ips, 8);
    }
}

/* Replays s through the decoder into st; returns the records applied. */
static uint64_t replay(tm_store *st, tm_wire_decoder *d, const struct stream *s)
{
    size_t off = 0, used;
    uint64_t n = 0;
    tm_wire_rec rec;
    tm_err err = {0};
    while (off < s->len) {
        int r = tm_wire_decode(d, s->p + off, s->len - off, &used, &rec, &err);
        if (r <= 0) {
            fprintf(stderr, "bench_ingest: decode failed at %zu\n", off);
            exit(1);
        }
        off += used;
        if (rec.type == TM_REC_PREAMBLE)
            continue;
        if (tm_store_apply(st, &rec, &err) != 0) {
            fprintf(stderr, "bench_ingest: apply failed\n");
            exit(1);
        }
        n++;
    }
    return n;
}

static void ingest(uint64_t live, uint64_t events)
{
    struct stream fill = {0}, churn = {0};
    uint64_t *addr = malloc(sizeof *addr * live);
    uint64_t next = 0x10000000000ull;
    put_header(&fill);
    put_stacks(&fill, 1000);
    for (uint64_t i = 0; i < live; i++) {
        addr[i] = next;
        next += 48;
        fill.len += tm_wire_put_alloc(room(&fill, 32), (uint32_t)(i % 1000), TM_ALLOC_MALLOC,
                                      addr[i], 16 + (i & 63));
    }
    for (uint64_t i = 0; i < events / 2; i++) {
        uint64_t j = next_rand() % live;
        churn.len += tm_wire_put_free(room(&churn, 16), addr[j], TM_FREE_FREE);
        addr[j] = next;
        next += 48;
        churn.len += tm_wire_put_alloc(room(&churn, 32), (uint32_t)(next_rand() % 1000),
                                       TM_ALLOC_MALLOC, addr[j], 16 + (i & 63));
    }

    tm_store *st = tm_store_new();
    tm_wire_decoder d;
    tm_wire_decoder_init(&d);
    size_t h0 = heap_bytes();
    replay(st, &d, &fill);
    size_t h1 = heap_bytes();
    double t0 = now_s();
    uint64_t n = replay(st, &d, &churn);
    double t = now_s() - t0;
    tm_totals tot;
    tm_store_totals(st, &tot);
    printf("ingest  live=%-8llu events=%llu  %.3f s  %.1f M events/s  (%.1f ns/event)  "
           "blocks=%llu  store growth while filling: %.1f B/live block\n",
           (unsigned long long)live, (unsigned long long)n, t, (double)n / t / 1e6,
           t * 1e9 / (double)n, (unsigned long long)tot.blocks, (double)(h1 - h0) / (double)live);
    tm_store_free(st);
    free(fill.p);
    free(churn.p);
    free(addr);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void snapshot_cost(uint32_t sites, uint32_t per_site)
{
    struct stream s = {0};
    put_header(&s);
    put_stacks(&s, sites);
    uint64_t next = 0x10000000000ull;
    for (uint64_t i = 0; i < (uint64_t)sites * per_site; i++) {
        s.len += tm_wire_put_alloc(room(&s, 32), (uint32_t)(i % sites), TM_ALLOC_MALLOC, next, 32);
        next += 48;
    }
    tm_store *st = tm_store_new();
    tm_wire_decoder d;
    tm_wire_decoder_init(&d);
    replay(st, &d, &s);
    double t[21];
    for (int k = 0; k < 21; k++) {
        double t0 = now_s();
        tm_snapshot *snap = tm_store_snapshot(st);
        t[k] = now_s() - t0;
        if (!snap) {
            fprintf(stderr, "bench_ingest: snapshot failed\n");
            exit(1);
        }
        tm_snapshot_free(snap);
    }
    qsort(t, 21, sizeof t[0], cmp_double);
    printf("snapshot sites=%u live=%llu  median %.3f ms  max %.3f ms\n", sites,
           (unsigned long long)sites * per_site, t[10] * 1e3, t[20] * 1e3);
    tm_store_free(st);
    free(s.p);
}

int main(int argc, char **argv)
{
    uint64_t events = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
    if (argc > 2) {
        uint64_t live = strtoull(argv[2], NULL, 10);
        ingest(live ? live : 1, events);
        return 0;
    }
    ingest(1000, events);
    ingest(1000000, events);
    snapshot_cost(100000, 10);
    return 0;
}
