/* bench_redraw - what one redraw of the live view costs on a large store, and
 * how long it holds the store's lock, without a terminal.
 *
 * The store gets S stacks (default 10^5) of 8 frames each and B live blocks
 * (default 10^6, spread evenly).  A deterministic resolver answers every
 * address at once: frame 0 of each stack is a system-header frame (skipped as
 * the site), frame 1 the site (S distinct file:line pairs in 1000 files),
 * frames 2..7 callers shared by ever larger groups of stacks.  One redraw is
 * what live.c does when new data arrived: tui_model_refresh (snapshot +
 * query) and tui_render into a grid (the grid is what curses.c diffs against
 * the terminal).  Between two timed redraws CHURN events (FREE of a random
 * live block + ALLOC at a random stack) are applied, untimed, so every
 * redraw sees changed numbers as in a live session.
 *
 * For each configuration (key, cumulative, a filter, a diff against a
 * snapshot) it prints the first redraw after the model was set up (which
 * groups every stack once) and the median and maximum of the next ROUNDS,
 * plus the longest time the store's lock was held in one redraw.
 *
 * usage: bench_redraw [STACKS [BLOCKS [ROUNDS [CHURN]]]] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "render.h"
#include "store.h"
#include "wire.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the fake program's symbols -------------------------------------------- */

#define NFILES 1000
#define NFUNCS 2000
#define SYS_BASE 0x7f0000000000ull
#define SITE_BASE 0x400000ull
#define CALLER_BASE 0x10000000ull /* + level * 0x1000000 + index * 16 */

static char *files[NFILES], *funcs[NFUNCS];
static const char sys_file[] = "/usr/include/x86_64-linux-gnu/bits/alloc.h";
static const char module[] = "/opt/bench/app";

static char *xasprintf(const char *fmt, unsigned v)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    return strdup(buf);
}

static int fake_resolve(void *ctx, const tm_module *mod, uint64_t ip, tm_frame *out, int max)
{
    (void)ctx;
    (void)mod;
    (void)max;
    memset(out, 0, sizeof *out);
    out->address = ip;
    out->module = module;
    out->offset = ip;
    if (ip >= SYS_BASE) {
        out->file = sys_file;
        out->function = "alloc_inline";
        out->line = (uint32_t)(ip - SYS_BASE) / 16 + 1;
    } else if (ip >= CALLER_BASE) {
        uint64_t level = (ip - CALLER_BASE) >> 24, idx = ((ip - CALLER_BASE) & 0xffffff) / 16;
        out->file = files[(idx * 7 + level) % NFILES];
        out->function = funcs[(idx + level * 13) % NFUNCS];
        out->line = (uint32_t)(idx % 500) + 1;
    } else {
        uint64_t s = (ip - SITE_BASE) / 16;
        out->file = files[s % NFILES];
        out->function = funcs[s % NFUNCS];
        out->line = (uint32_t)(s / NFILES) + 10;
    }
    return 1;
}

/* ---- building the store ------------------------------------------------------ */

static tm_store *store;
static tm_wire_decoder dec;

static void apply_bytes(const uint8_t *p, size_t len)
{
    size_t off = 0, used;
    tm_wire_rec rec;
    tm_err err = {0};
    while (off < len) {
        if (tm_wire_decode(&dec, p + off, len - off, &used, &rec, &err) <= 0) {
            fprintf(stderr, "bench_redraw: decode: %s\n", err.msg);
            exit(1);
        }
        off += used;
        if (rec.type != TM_REC_PREAMBLE && tm_store_apply(store, &rec, &err) != 0) {
            fprintf(stderr, "bench_redraw: apply: %s\n", err.msg);
            exit(1);
        }
    }
}

static uint64_t *addr, next_addr = 0x100000000000ull;
static uint32_t nstacks;
static uint64_t nblocks;

static void alloc_block(uint64_t slot, uint32_t stack)
{
    uint8_t buf[64];
    addr[slot] = next_addr;
    next_addr += 64;
    apply_bytes(
        buf, tm_wire_put_alloc(buf, stack, TM_ALLOC_MALLOC, addr[slot], 16 + next_rand() % 1024));
}

static void build(void)
{
    uint8_t buf[TM_WIRE_HELLO_MAX];
    tm_wire_decoder_init(&dec);
    apply_bytes(buf, tm_wire_put_preamble(buf));
    apply_bytes(buf, tm_wire_put_hello(buf, 1, 0, 0, 0, 0, 64, module));
    for (uint32_t s = 0; s < nstacks; s++) {
        uint64_t ips[8];
        ips[0] = SYS_BASE + (s % 16) * 16;
        ips[1] = SITE_BASE + (uint64_t)s * 16;
        for (unsigned k = 2; k < 8; k++)
            ips[k] = CALLER_BASE + ((uint64_t)(k - 2) << 24) + (uint64_t)(s >> (2 * k)) * 16;
        apply_bytes(buf, tm_wire_put_stack(buf, s, 0, ips, 8));
    }
    addr = malloc(nblocks * sizeof *addr);
    for (uint64_t i = 0; i < nblocks; i++)
        alloc_block(i, (uint32_t)(i % nstacks));
}

static void churn(unsigned events)
{
    uint8_t buf[64];
    for (unsigned i = 0; i < events / 2; i++) {
        uint64_t j = next_rand() % nblocks;
        apply_bytes(buf, tm_wire_put_free(buf, addr[j], TM_FREE_FREE));
        alloc_block(j, (uint32_t)(next_rand() % nstacks));
    }
}

/* ---- the store's lock, timed ----------------------------------------------------- */

static uint64_t lock_at, lock_max, lock_sum;

static void bench_lock(void *ctx)
{
    (void)ctx;
    lock_at = now_ns();
}

static void bench_unlock(void *ctx)
{
    (void)ctx;
    uint64_t held = now_ns() - lock_at;
    lock_sum += held;
    if (held > lock_max)
        lock_max = held;
}

/* ---- one configuration ------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct config {
    const char *name;
    tm_key key;
    int cumulative;
    const char *exclude; /* a filter on the site's file, or NULL */
    int diff;            /* a snapshot is taken before the timed rounds; d */
} config;

static void run(const config *cf, unsigned rounds, unsigned churn_events)
{
    tm_filter fl = {0, cf->exclude, 0, 0};
    tui_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.data.store = store;
    mc.data.res = (tm_resolver){fake_resolve, NULL};
    mc.data.lock = bench_lock;
    mc.data.unlock = bench_unlock;
    mc.query.key = cf->key;
    mc.query.cumulative = cf->cumulative;
    mc.query.filters = cf->exclude ? &fl : NULL;
    mc.query.nfilters = cf->exclude ? 1 : 0;
    mc.program = "bench";
    mc.frames = 64;
    tui_model *m = tui_model_new(&mc);
    tui_grid g = {0, 0, NULL};
    if (!m || tui_grid_init(&g, 50, 160) != 0) {
        fprintf(stderr, "bench_redraw: out of memory\n");
        exit(1);
    }
    tui_model_resize(m, 50, 160);
    uint64_t t = 1000000000ull;
    uint64_t t0 = now_ns();
    tui_model_refresh(m, t);
    tui_render(m, &g);
    uint64_t first = now_ns() - t0;
    if (cf->diff) {
        tui_model_apply(m, TUI_ACT_SNAPSHOT);
        tui_model_apply(m, TUI_ACT_DIFF);
    }
    uint64_t *v = malloc(rounds * sizeof *v), *lk = malloc(rounds * sizeof *lk);
    for (unsigned r = 0; r < rounds; r++) {
        churn(churn_events);
        lock_max = lock_sum = 0;
        t += 100000000ull;
        t0 = now_ns();
        tui_model_refresh(m, t);
        tui_render(m, &g);
        v[r] = now_ns() - t0;
        lk[r] = lock_max;
    }
    qsort(v, rounds, sizeof *v, cmp_u64);
    qsort(lk, rounds, sizeof *lk, cmp_u64);
    printf("%-28s rows=%-7zu first %8.2f ms   redraw median %7.2f ms  max %7.2f ms   "
           "lock held median %6.2f ms  max %6.2f ms\n",
           cf->name, m->nrows, first / 1e6, v[rounds / 2] / 1e6, v[rounds - 1] / 1e6,
           lk[rounds / 2] / 1e6, lk[rounds - 1] / 1e6);
    fflush(stdout);
    free(v);
    free(lk);
    tui_grid_fini(&g);
    tui_model_free(m);
}

int main(int argc, char **argv)
{
    nstacks = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 100000;
    nblocks = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
    unsigned rounds = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 15;
    unsigned churn_events = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 20000;
    if (!nstacks || !nblocks || !rounds) {
        fprintf(stderr, "usage: bench_redraw [STACKS [BLOCKS [ROUNDS [CHURN]]]]\n");
        return 2;
    }
    for (unsigned i = 0; i < NFILES; i++)
        files[i] = xasprintf("/src/bench/mod%03u.c", i);
    for (unsigned i = 0; i < NFUNCS; i++)
        funcs[i] = xasprintf("function_%u", i);
    store = tm_store_new();
    uint64_t t0 = now_ns();
    build();
    printf("store: %u stacks, %llu live blocks (built in %.2f s); %u rounds, %u churn events "
           "between redraws\n",
           nstacks, (unsigned long long)nblocks, (now_ns() - t0) / 1e9, rounds, churn_events);
    static const config cfs[] = {
        {"lineno", TM_KEY_LINENO, 0, NULL, 0},
        {"filename", TM_KEY_FILENAME, 0, NULL, 0},
        {"traceback", TM_KEY_TRACEBACK, 0, NULL, 0},
        {"lineno, exclude filter", TM_KEY_LINENO, 0, "*/mod00?.c", 0},
        {"traceback, exclude filter", TM_KEY_TRACEBACK, 0, "*/mod00?.c", 0},
        {"lineno, cumulative", TM_KEY_LINENO, 1, NULL, 0},
        {"filename, cumulative", TM_KEY_FILENAME, 1, NULL, 0},
        {"lineno, diff", TM_KEY_LINENO, 0, NULL, 1},
        {"filename, diff", TM_KEY_FILENAME, 0, NULL, 1},
        {"traceback, diff", TM_KEY_TRACEBACK, 0, NULL, 1},
    };
    const char *only = getenv("BENCH_ONLY");
    for (size_t i = 0; i < sizeof cfs / sizeof cfs[0]; i++)
        if (!only || strstr(cfs[i].name, only))
            run(&cfs[i], rounds, churn_events);
    tm_store_free(store);
    free(addr);
    for (unsigned i = 0; i < NFILES; i++)
        free(files[i]);
    for (unsigned i = 0; i < NFUNCS; i++)
        free(funcs[i]);
    return 0;
}
