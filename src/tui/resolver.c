/* resolver.c - the asynchronous symbolization cache. */
#include "resolver.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 64   /* inline depth kept per address (the store asks for 64) */
#define NOTIFY_EVERY 32 /* answers between two notifications while busy */

typedef struct entry {
    const tm_module *mod; /* NULL and address 0 never both: address 0 is not queued */
    uint64_t address;
    tm_frame *frames; /* NULL while queued */
    uint16_t n;
    uint8_t used;   /* slot in use */
    uint8_t queued; /* in the queue or being resolved */
} entry;

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    tm_frame f[];
} chunk;

struct tui_resolver {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int stop;
    tm_resolver backend;
    void (*notify)(void *);
    void *notify_ctx;

    entry *tab; /* open addressing, power-of-two capacity */
    size_t cap, count;

    struct qitem {
        const tm_module *mod;
        uint64_t address;
    } * q; /* ring buffer */
    size_t qcap, qhead, qn;
    size_t in_flight;
    uint64_t pending_answers;

    chunk *frames; /* answers, never moved */
};

static uint64_t hash_key(const tm_module *mod, uint64_t address)
{
    uint64_t h = (uint64_t)(uintptr_t)mod * 0x9E3779B97F4A7C15ull ^ address;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static entry *find(tui_resolver *r, const tm_module *mod, uint64_t address)
{
    if (!r->cap)
        return NULL;
    for (size_t i = hash_key(mod, address) & (r->cap - 1);; i = (i + 1) & (r->cap - 1)) {
        entry *e = &r->tab[i];
        if (!e->used)
            return NULL;
        if (e->mod == mod && e->address == address)
            return e;
    }
}

static int grow(tui_resolver *r)
{
    size_t cap = r->cap ? r->cap * 2 : 1024;
    entry *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t k = 0; k < r->cap; k++) {
        if (!r->tab[k].used)
            continue;
        size_t i = hash_key(r->tab[k].mod, r->tab[k].address) & (cap - 1);
        while (t[i].used)
            i = (i + 1) & (cap - 1);
        t[i] = r->tab[k];
    }
    free(r->tab);
    r->tab = t;
    r->cap = cap;
    return 0;
}

static entry *insert(tui_resolver *r, const tm_module *mod, uint64_t address)
{
    if ((r->count + 1) * 4 > r->cap * 3 && grow(r) != 0)
        return NULL;
    size_t i = hash_key(mod, address) & (r->cap - 1);
    while (r->tab[i].used)
        i = (i + 1) & (r->cap - 1);
    entry *e = &r->tab[i];
    memset(e, 0, sizeof *e);
    e->mod = mod;
    e->address = address;
    e->used = 1;
    r->count++;
    return e;
}

static int enqueue(tui_resolver *r, const tm_module *mod, uint64_t address)
{
    if (r->qn == r->qcap) {
        size_t cap = r->qcap ? r->qcap * 2 : 256;
        struct qitem *q = malloc(cap * sizeof *q);
        if (!q)
            return -1;
        for (size_t k = 0; k < r->qn; k++)
            q[k] = r->q[(r->qhead + k) % r->qcap];
        free(r->q);
        r->q = q;
        r->qcap = cap;
        r->qhead = 0;
    }
    r->q[(r->qhead + r->qn) % r->qcap] = (struct qitem){mod, address};
    r->qn++;
    return 0;
}

static tm_frame *store_frames(tui_resolver *r, const tm_frame *f, size_t n)
{
    chunk *c = r->frames;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        c = malloc(sizeof *c + cap * sizeof(tm_frame));
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = r->frames;
        r->frames = c;
    }
    tm_frame *dst = c->f + c->used;
    memcpy(dst, f, n * sizeof *f);
    c->used += n;
    return dst;
}

static void pending_frame(const tm_module *mod, uint64_t address, tm_frame *out)
{
    memset(out, 0, sizeof *out);
    out->flags = TM_FRAME_PENDING;
    out->module = mod ? mod->path : NULL;
    out->address = address;
    out->offset = mod ? address - mod->load_bias : address;
}

static int front_resolve(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    tui_resolver *r = ctx;
    if (max < 1)
        return 0;
    pthread_mutex_lock(&r->mu);
    entry *e = find(r, mod, address);
    if (e && e->frames) {
        int n = (int)e->n < max ? (int)e->n : max;
        memcpy(out, e->frames, (size_t)n * sizeof *out);
        pthread_mutex_unlock(&r->mu);
        return n;
    }
    if (!e)
        e = insert(r, mod, address);
    /* Out of memory leaves the entry unqueued: the next query tries again. */
    if (e && !e->queued && enqueue(r, mod, address) == 0) {
        e->queued = 1;
        pthread_cond_signal(&r->cv);
    }
    r->pending_answers++;
    pthread_mutex_unlock(&r->mu);
    pending_frame(mod, address, out);
    return 1;
}

static void *resolver_main(void *arg)
{
    tui_resolver *r = arg;
    unsigned since_notify = 0;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && r->qn == 0)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop)
            break;
        struct qitem it = r->q[r->qhead];
        r->qhead = (r->qhead + 1) % r->qcap;
        r->qn--;
        r->in_flight = 1;
        pthread_mutex_unlock(&r->mu);

        /* The slow part, without the lock: the front keeps answering. */
        tm_frame buf[MAX_FRAMES];
        memset(buf, 0, sizeof buf);
        int n = r->backend.resolve(r->backend.ctx, it.mod, it.address, buf, MAX_FRAMES);
        if (n < 1) {
            pending_frame(it.mod, it.address, &buf[0]);
            buf[0].flags = 0; /* an answer, if an empty one: module + offset */
            n = 1;
        }
        if (n > MAX_FRAMES)
            n = MAX_FRAMES;
        for (int k = 0; k < n; k++)
            buf[k].flags &= ~(uint32_t)TM_FRAME_PENDING;

        pthread_mutex_lock(&r->mu);
        entry *e = find(r, it.mod, it.address);
        tm_frame *f = e ? store_frames(r, buf, (size_t)n) : NULL;
        if (e) {
            e->queued = 0; /* out of memory (f NULL): the next query queues it again */
            if (f) {
                e->frames = f;
                e->n = (uint16_t)n;
            }
        }
        r->in_flight = 0;
        since_notify++;
        int tell = r->notify && (r->qn == 0 || since_notify >= NOTIFY_EVERY);
        if (tell) {
            since_notify = 0;
            pthread_mutex_unlock(&r->mu);
            r->notify(r->notify_ctx);
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

tui_resolver *tui_resolver_new(tm_resolver backend, void (*notify)(void *ctx), void *notify_ctx)
{
    tui_resolver *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->backend = backend;
    r->notify = notify;
    r->notify_ctx = notify_ctx;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (grow(r) != 0) {
        free(r);
        return NULL;
    }
    /* The thread takes no signals: the UI thread handles them all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, resolver_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        free(r->tab);
        free(r);
        return NULL;
    }
    return r;
}

void tui_resolver_free(tui_resolver *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    while (r->frames) {
        chunk *n = r->frames->next;
        free(r->frames);
        r->frames = n;
    }
    free(r->tab);
    free(r->q);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

tm_resolver tui_resolver_front(tui_resolver *r)
{
    return (tm_resolver){front_resolve, r};
}

size_t tui_resolver_busy(tui_resolver *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->qn + r->in_flight;
    pthread_mutex_unlock(&r->mu);
    return n;
}

uint64_t tui_resolver_pending_answers(tui_resolver *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->pending_answers;
    pthread_mutex_unlock(&r->mu);
    return n;
}
