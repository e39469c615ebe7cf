/* test_tui_resolver.c - the non-blocking resolver: pending answers first,
 * the back end called once per address and only on the resolver's thread,
 * final answers cached, the UI notified; and the store asking again for
 * pending frames until they are final. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "resolver.h"
#include "test_store_stream.h"

static pthread_t main_thread;
static atomic_int backend_calls, wrong_thread, notified;
static atomic_int gate = 1; /* 0: the back end waits */

static int slow_backend(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    (void)ctx;
    (void)mod;
    if (pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add(&wrong_thread, 1);
    while (!atomic_load(&gate))
        usleep(1000);
    atomic_fetch_add(&backend_calls, 1);
    memset(out, 0, sizeof *out);
    out[0].function = address == 0x10 ? "ten" : "other";
    out[0].file = "/src/f.c";
    out[0].line = (uint32_t)address;
    out[0].address = address;
    if (address == 0x20 && max >= 2) {
        out[0].flags = TM_FRAME_INLINED;
        out[1] = out[0];
        out[1].flags = 0;
        out[1].function = "outer";
        return 2;
    }
    return 1;
}

static void on_notify(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&notified, 1);
}

/* Waits until the resolver has nothing left, up to 5 s. */
static int settle(tui_resolver *r)
{
    for (int i = 0; i < 5000; i++) {
        if (tui_resolver_busy(r) == 0)
            return 1;
        usleep(1000);
    }
    return 0;
}

static void test_front(void)
{
    tui_resolver *r = tui_resolver_new((tm_resolver){slow_backend, NULL}, on_notify, NULL);
    CHECK(r != NULL);
    tm_resolver front = tui_resolver_front(r);
    tm_module mod;
    memset(&mod, 0, sizeof mod);
    mod.path = "/lib/x.so";
    mod.load_bias = 0x1000;
    tm_frame f[8];

    atomic_store(&gate, 0);
    int n = front.resolve(front.ctx, &mod, 0x1010, f, 8);
    /* pending: module and offset only, flagged */
    CHECK_I64(n, 1);
    CHECK(f[0].flags & TM_FRAME_PENDING);
    CHECK_STR(f[0].module, "/lib/x.so");
    CHECK_U64(f[0].offset, 0x10);
    CHECK_U64(f[0].address, 0x1010);
    CHECK(f[0].function == NULL);
    /* asked again while still queued: still pending, queued once */
    n = front.resolve(front.ctx, &mod, 0x1010, f, 8);
    CHECK(f[0].flags & TM_FRAME_PENDING);
    CHECK_U64(tui_resolver_pending_answers(r), 2);
    atomic_store(&gate, 1);
    CHECK(settle(r));
    CHECK_I64(atomic_load(&backend_calls), 1);
    CHECK(atomic_load(&notified) >= 1);
    n = front.resolve(front.ctx, &mod, 0x1010, f, 8);
    CHECK_I64(n, 1);
    CHECK(!(f[0].flags & TM_FRAME_PENDING));
    CHECK_STR(f[0].function, "other");
    CHECK_U64(tui_resolver_pending_answers(r), 2); /* a final answer does not count */

    /* the same address in another module is another entry */
    front.resolve(front.ctx, NULL, 0x1010, f, 8);
    CHECK(f[0].flags & TM_FRAME_PENDING);
    CHECK_U64(f[0].offset, 0x1010);
    CHECK(f[0].module == NULL);
    CHECK(settle(r));
    CHECK_I64(atomic_load(&backend_calls), 2);

    /* inlined frames come back whole, cut to max */
    front.resolve(front.ctx, NULL, 0x20, f, 8);
    CHECK(settle(r));
    n = front.resolve(front.ctx, NULL, 0x20, f, 8);
    CHECK_I64(n, 2);
    CHECK(f[0].flags & TM_FRAME_INLINED);
    CHECK_STR(f[1].function, "outer");
    n = front.resolve(front.ctx, NULL, 0x20, f, 1);
    CHECK_I64(n, 1);

    /* many addresses: all answered, each once */
    for (uint64_t a = 0x100; a < 0x100 + 3000; a++)
        front.resolve(front.ctx, NULL, a, f, 8);
    CHECK(settle(r));
    CHECK_I64(atomic_load(&backend_calls), 3 + 3000);
    for (uint64_t a = 0x100; a < 0x100 + 3000; a++) {
        front.resolve(front.ctx, NULL, a, f, 8);
        if (f[0].line != (uint32_t)a) {
            CHECK_U64(f[0].line, a);
            break;
        }
    }
    CHECK_I64(atomic_load(&wrong_thread), 0);
    tui_resolver_free(r);
}

static void test_with_store(void)
{
    atomic_store(&backend_calls, 0);
    tui_resolver *r = tui_resolver_new((tm_resolver){slow_backend, NULL}, NULL, NULL);
    tm_resolver front = tui_resolver_front(r);
    tstream t;
    ts_open(&t);
    ev_hello(&t, 7, 1, 8, "/bin/x");
    ev_stack(&t, 1, 2, (uint64_t)0x10, (uint64_t)0x30);
    ev_alloc(&t, 1, 0x5000, 64);
    tm_snapshot *snap = tm_store_snapshot(t.s);
    tm_err err = {0};
    tm_query q = {TM_KEY_TRACEBACK, 0, NULL, 0, 0, NULL, 0};

    atomic_store(&gate, 0);
    tm_stats *st = tm_snapshot_statistics(snap, &q, &front, &err);
    CHECK(st && st->n == 1);
    CHECK(st->v[0].frames[0].flags & TM_FRAME_PENDING);
    tm_stats_free(st);
    atomic_store(&gate, 1);
    CHECK(settle(r));
    /* the store did not cache the pending answers: it asks again */
    st = tm_snapshot_statistics(snap, &q, &front, &err);
    CHECK(st && st->n == 1 && st->v[0].nframes == 2);
    CHECK_STR(st->v[0].frames[0].function, "ten");
    CHECK(!(st->v[0].frames[0].flags & TM_FRAME_PENDING));
    tm_stats_free(st);
    CHECK_I64(atomic_load(&backend_calls), 2);

    tm_snapshot_free(snap);
    ts_close(&t);
    tui_resolver_free(r);
}

int main(void)
{
    main_thread = pthread_self();
    test_front();
    test_with_store();
    return check_done("tui_resolver");
}
