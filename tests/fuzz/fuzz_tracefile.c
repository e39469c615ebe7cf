/* fuzz_tracefile.c - libFuzzer harness for the recording loader (tmtop
 * --load): the input is a recording file read by tm_tracefile_read_mem,
 * every record going into the store of its process as tmtop's loader does
 * (tm_store_apply; a refusal stops the load, like tmtop's).  Invariants: the
 * reader either accepts the whole input, having delivered no more records
 * than it counts (unknown types are counted, not delivered), or fails with one line ending in "at
 * byte N" where N is inside the input; every record it delivers is one of the wire's known types.
 * STACK ids >= 2^16 and sizes >= 2^47 are left out of the stores as in fuzz_store.c (the store's
 * cost of huge ids is a known weakness). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "tracefile.h"

typedef struct ctx {
    tm_store *stores[TM_TRACEFILE_MAX_PROCS];
    uint32_t pids[TM_TRACEFILE_MAX_PROCS];
    size_t n;
    uint64_t records;
} ctx;

static int on_rec(void *p, uint32_t pid, const tm_wire_rec *rec, tm_err *err)
{
    ctx *c = p;
    c->records++;
    if (!strcmp(tm_wire_type_name(rec->type), "unknown"))
        abort(); /* the reader skips the types of newer minor versions */
    tm_store *s = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->pids[i] == pid)
            s = c->stores[i];
    if (!s) {
        if (c->n == TM_TRACEFILE_MAX_PROCS)
            abort(); /* the reader limits the processes */
        s = c->stores[c->n] = tm_store_new();
        c->pids[c->n++] = pid;
    }
    if (rec->type == TM_REC_STACK && rec->u.stack.stack_id >= 1u << 16)
        return 0;
    if ((rec->type == TM_REC_ALLOC && rec->u.alloc.size >> 47) ||
        (rec->type == TM_REC_REALLOC && rec->u.realloc.size >> 47))
        return 0;
    tm_err e = {0};
    if (tm_store_apply(s, rec, &e) != 0)
        return tm_err_set(err, TM_E_FORMAT, "inconsistent trace of pid %u (%s)", pid, e.msg);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctx c;
    memset(&c, 0, sizeof c);
    tm_tracefile_info info;
    tm_err err = {0};
    int rc = tm_tracefile_read_mem(data, size, &info, on_rec, &c, &err);
    if (rc == 0) {
        if (c.records > info.records || info.bytes != size || err.code)
            abort();
    } else {
        const char *at = strstr(err.msg, " at byte ");
        if (rc != -1 || !at || strchr(err.msg, '\n'))
            abort();
        unsigned long long n = strtoull(at + 9, NULL, 10);
        if (n > size)
            abort();
    }
    for (size_t i = 0; i < c.n; i++) {
        tm_totals t;
        tm_store_totals(c.stores[i], &t);
        if (t.peak < t.current)
            abort();
        tm_store_free(c.stores[i]);
    }
    return 0;
}
