/* test_store_stream.h - helpers for the store tests: synthetic trace streams
 * written with the wire encoders and read back through tm_wire_decode, so
 * every record the store sees went through the real decoder. */
#ifndef TMTOP_TEST_STORE_STREAM_H
#define TMTOP_TEST_STORE_STREAM_H

#include <stdarg.h>
#include <stdlib.h>

#include "check.h"
#include "store.h"
#include "wire.h"

typedef struct tstream {
    tm_store *s;
    tm_wire_decoder d;
    tm_err err;
    int last_rc; /* tm_store_apply's result for the last record */
} tstream;

static uint8_t ts_buf[TM_WIRE_MAX_RECORD + 64];

/* Decodes the len bytes in ts_buf (exactly one record) and applies it. */
static inline int ts_feed(tstream *t, size_t len)
{
    size_t used = 0;
    tm_wire_rec rec;
    int rc = tm_wire_decode(&t->d, ts_buf, len, &used, &rec, &t->err);
    if (rc != 1 || used != len) {
        fprintf(stderr, "decode failed: rc %d used %zu of %zu: %s\n", rc, used, len, t->err.msg);
        CHECK(0);
        return -2;
    }
    t->last_rc = tm_store_apply(t->s, &rec, &t->err);
    return t->last_rc;
}

static inline void ts_open(tstream *t)
{
    memset(t, 0, sizeof *t);
    t->s = tm_store_new();
    CHECK(t->s != NULL);
    tm_wire_decoder_init(&t->d);
    CHECK(ts_feed(t, tm_wire_put_preamble(ts_buf)) == 0);
}

static inline void ts_close(tstream *t)
{
    tm_store_free(t->s);
    t->s = NULL;
}

static inline int ev_hello(tstream *t, uint32_t pid, uint32_t ppid, uint16_t frames,
                           const char *exe)
{
    return ts_feed(t, tm_wire_put_hello(ts_buf, pid, ppid, 42, 1000, 0, frames, exe));
}

/* ev_stack(t, id, n, ip0, ip1, ...) */
static inline int ev_stack(tstream *t, uint32_t id, int n, ...)
{
    uint64_t ips[64];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        ips[i] = va_arg(ap, uint64_t);
    va_end(ap);
    return ts_feed(t, tm_wire_put_stack(ts_buf, id, 0, ips, (uint16_t)n));
}

static inline int ev_alloc(tstream *t, uint32_t stack, uint64_t ptr, uint64_t size)
{
    return ts_feed(t, tm_wire_put_alloc(ts_buf, stack, TM_ALLOC_MALLOC, ptr, size));
}

static inline int ev_free(tstream *t, uint64_t ptr)
{
    return ts_feed(t, tm_wire_put_free(ts_buf, ptr, TM_FREE_FREE));
}

static inline int ev_pre(tstream *t, uint64_t ptr)
{
    return ts_feed(t, tm_wire_put_free(ts_buf, ptr, TM_FREE_REALLOC_PRE));
}

static inline int ev_realloc(tstream *t, uint32_t stack, uint64_t old, uint64_t nptr, uint64_t size)
{
    return ts_feed(t, tm_wire_put_realloc(ts_buf, stack, old, nptr, size));
}

static inline int ev_failed(tstream *t, uint64_t ptr)
{
    return ts_feed(t, tm_wire_put_realloc_failed(ts_buf, ptr));
}

static inline int ev_tick(tstream *t, uint64_t ns, uint64_t rss)
{
    return ts_feed(t, tm_wire_put_tick(ts_buf, ns, rss));
}

static inline tm_totals ts_totals(tstream *t)
{
    tm_totals x;
    tm_store_totals(t->s, &x);
    return x;
}

#endif
