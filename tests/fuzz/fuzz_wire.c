/* fuzz_wire.c - libFuzzer harness for the wire decoder: the input is a trace
 * stream fed to tm_wire_decode in chunks whose sizes come from the input's
 * first byte, as the launcher feeds it from partial socket reads.  The
 * decoder must never read outside the buffer (ASan), must consume at least
 * one byte per decoded record, and every pointer in a record must lie inside
 * the buffer it was decoded from. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void check_inside(const uint8_t *base, size_t len, const void *p, size_t n)
{
    const uint8_t *q = p;
    if (n == 0)
        return;
    if (!(q >= base && q + n <= base + len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = 1 + data[0] % 64;
    data++;
    size--;
    /* A copy in a heap buffer of the exact size, refilled like a socket
     * buffer: pending bytes move to the front before more are appended. */
    uint8_t *buf = malloc(size + 1);
    size_t have = 0, fed = 0;
    tm_wire_decoder d;
    tm_wire_decoder_init(&d);
    for (;;) {
        size_t add = size - fed < chunk ? size - fed : chunk;
        memcpy(buf + have, data + fed, add);
        have += add;
        fed += add;
        size_t off = 0;
        int rc;
        for (;;) {
            tm_wire_rec rec;
            size_t used = 0;
            tm_err err = {0};
            rc = tm_wire_decode(&d, buf + off, have - off, &used, &rec, &err);
            if (rc != 1)
                break;
            if (used == 0 || used > have - off)
                abort();
            const uint8_t *b = buf + off;
            switch (rec.type) {
            case TM_REC_HELLO:
                check_inside(b, used, rec.u.hello.exe, rec.u.hello.exe_len);
                break;
            case TM_REC_STACK:
                if (rec.u.stack.depth > TM_WIRE_MAX_DEPTH)
                    abort();
                check_inside(b, used, rec.u.stack.ips, 8 * (size_t)rec.u.stack.depth);
                for (unsigned i = 0; i < rec.u.stack.depth; i++)
                    (void)tm_wire_stack_ip(&rec, i);
                break;
            case TM_REC_MODULE:
                check_inside(b, used, rec.u.module.build_id, rec.u.module.build_id_len);
                check_inside(b, used, rec.u.module.segs, 20 * (size_t)rec.u.module.nseg);
                check_inside(b, used, rec.u.module.path, rec.u.module.path_len);
                break;
            case TM_REC_EXEC:
                check_inside(b, used, rec.u.exec.path, rec.u.exec.path_len);
                break;
            default:
                break;
            }
            (void)tm_wire_type_name(rec.type);
            off += used;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        if (rc < 0 || fed == size)
            break;
    }
    free(buf);
    return 0;
}
