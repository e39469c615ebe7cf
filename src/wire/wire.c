#include "wire.h"

#include <string.h>

/* ---- encoding ------------------------------------------------------------ */

/* Writes the record header for a payload of len bytes; returns header size. */
static size_t put_header(uint8_t *dst, uint8_t type, uint32_t len)
{
    dst[0] = type;
    if (len < 255) {
        dst[1] = (uint8_t)len;
        return 2;
    }
    dst[1] = 255;
    memcpy(dst + 2, &len, 4);
    return 6;
}

static size_t header_len(uint32_t len)
{
    return len < 255 ? 2 : 6;
}

#define PUT(p, v)                                                                                  \
    do {                                                                                           \
        memcpy((p), &(v), sizeof(v));                                                              \
        (p) += sizeof(v);                                                                          \
    } while (0)

static size_t bounded_strlen(const char *s, size_t max)
{
    size_t n = 0;
    if (!s)
        return 0;
    while (n < max && s[n])
        n++;
    return n;
}

size_t tm_wire_put_preamble(uint8_t *dst)
{
    uint16_t major = TM_WIRE_MAJOR, minor = TM_WIRE_MINOR;
    memcpy(dst, TM_WIRE_MAGIC, 4);
    memcpy(dst + 4, &major, 2);
    memcpy(dst + 6, &minor, 2);
    return TM_WIRE_PREAMBLE_LEN;
}

size_t tm_wire_put_hello(uint8_t *dst, uint32_t pid, uint32_t ppid, uint64_t token,
                         uint64_t monotonic_ns, uint32_t flags, uint16_t max_frames,
                         const char *exe)
{
    uint16_t n = (uint16_t)bounded_strlen(exe, 4096);
    uint32_t len = 4 + 4 + 8 + 8 + 4 + 2 + 2 + n;
    uint8_t *p = dst + put_header(dst, TM_REC_HELLO, len);
    PUT(p, pid);
    PUT(p, ppid);
    PUT(p, token);
    PUT(p, monotonic_ns);
    PUT(p, flags);
    PUT(p, max_frames);
    PUT(p, n);
    memcpy(p, exe, n);
    return header_len(len) + len;
}

size_t tm_wire_put_stack(uint8_t *dst, uint32_t stack_id, uint16_t flags, const uint64_t *ips,
                         uint16_t depth)
{
    if (depth > TM_WIRE_MAX_DEPTH) {
        depth = TM_WIRE_MAX_DEPTH;
        flags |= TM_STACK_TRUNCATED;
    }
    uint32_t len = 4 + 2 + 2 + 8u * depth;
    uint8_t *p = dst + put_header(dst, TM_REC_STACK, len);
    PUT(p, stack_id);
    PUT(p, depth);
    PUT(p, flags);
    memcpy(p, ips, 8u * depth);
    return header_len(len) + len;
}

size_t tm_wire_put_module(uint8_t *dst, const tm_module *m)
{
    uint8_t bid = (uint8_t)(m->build_id_len > TM_BUILD_ID_MAX ? TM_BUILD_ID_MAX : m->build_id_len);
    uint16_t nseg = (uint16_t)(m->nseg > TM_MODULE_MAX_SEGS ? TM_MODULE_MAX_SEGS : m->nseg);
    uint16_t plen = (uint16_t)bounded_strlen(m->path, 4096);
    uint32_t len = 4 + 8 + 1 + bid + 2 + 20u * nseg + 2 + plen;
    uint8_t *p = dst + put_header(dst, TM_REC_MODULE, len);
    PUT(p, m->id);
    PUT(p, m->load_bias);
    PUT(p, bid);
    memcpy(p, m->build_id, bid);
    p += bid;
    PUT(p, nseg);
    for (unsigned i = 0; i < nseg; i++) {
        PUT(p, m->seg[i].vaddr);
        PUT(p, m->seg[i].memsz);
        PUT(p, m->seg[i].flags);
    }
    PUT(p, plen);
    memcpy(p, m->path, plen);
    return header_len(len) + len;
}

size_t tm_wire_put_module_gone(uint8_t *dst, uint32_t id)
{
    uint8_t *p = dst + put_header(dst, TM_REC_MODULE_GONE, 4);
    PUT(p, id);
    return 6;
}

size_t tm_wire_put_tick(uint8_t *dst, uint64_t monotonic_ns, uint64_t rss_bytes)
{
    uint8_t *p = dst + put_header(dst, TM_REC_TICK, 16);
    PUT(p, monotonic_ns);
    PUT(p, rss_bytes);
    return TM_WIRE_TICK_LEN;
}

size_t tm_wire_put_fork(uint8_t *dst, uint32_t child_pid)
{
    uint8_t *p = dst + put_header(dst, TM_REC_FORK, 4);
    PUT(p, child_pid);
    return 6;
}

size_t tm_wire_put_exec(uint8_t *dst, const char *path)
{
    uint16_t n = (uint16_t)bounded_strlen(path, 4096);
    uint32_t len = 2 + n;
    uint8_t *p = dst + put_header(dst, TM_REC_EXEC, len);
    PUT(p, n);
    memcpy(p, path, n);
    return header_len(len) + len;
}

size_t tm_wire_put_end(uint8_t *dst, uint32_t reason, uint64_t unknown_frees, uint64_t nested_calls,
                       uint64_t lost_events)
{
    uint8_t *p = dst + put_header(dst, TM_REC_END, 28);
    PUT(p, reason);
    PUT(p, unknown_frees);
    PUT(p, nested_calls);
    PUT(p, lost_events);
    return TM_WIRE_END_LEN;
}

size_t tm_wire_put_realloc_failed(uint8_t *dst, uint64_t old_ptr)
{
    uint8_t *p = dst + put_header(dst, TM_REC_REALLOC_FAILED, 8);
    PUT(p, old_ptr);
    return TM_WIRE_REALLOC_FAILED_LEN;
}

size_t tm_wire_put_realloc(uint8_t *dst, uint32_t stack_id, uint64_t old_ptr, uint64_t new_ptr,
                           uint64_t size)
{
    uint8_t *p = dst + put_header(dst, TM_REC_REALLOC, 28);
    PUT(p, stack_id);
    PUT(p, old_ptr);
    PUT(p, new_ptr);
    PUT(p, size);
    return TM_WIRE_REALLOC_LEN;
}

/* ---- decoding ------------------------------------------------------------ */

void tm_wire_decoder_init(tm_wire_decoder *d)
{
    memset(d, 0, sizeof *d);
}

/* A bounds-checked cursor over one record's payload. */
typedef struct cursor {
    const uint8_t *p, *end;
    int bad;
} cursor;

static const uint8_t *take(cursor *c, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *r = c->p;
    c->p += n;
    return r;
}

#define GET(c, v)                                                                                  \
    do {                                                                                           \
        const uint8_t *q_ = take((c), sizeof(v));                                                  \
        if (q_)                                                                                    \
            memcpy(&(v), q_, sizeof(v));                                                           \
        else                                                                                       \
            memset(&(v), 0, sizeof(v));                                                            \
    } while (0)

const char *tm_wire_type_name(uint8_t type)
{
    switch (type) {
    case TM_REC_PREAMBLE:
        return "PREAMBLE";
    case TM_REC_HELLO:
        return "HELLO";
    case TM_REC_ALLOC:
        return "ALLOC";
    case TM_REC_FREE:
        return "FREE";
    case TM_REC_REALLOC_FAILED:
        return "REALLOC_FAILED";
    case TM_REC_REALLOC:
        return "REALLOC";
    case TM_REC_STACK:
        return "STACK";
    case TM_REC_MODULE:
        return "MODULE";
    case TM_REC_MODULE_GONE:
        return "MODULE_GONE";
    case TM_REC_TICK:
        return "TICK";
    case TM_REC_FORK:
        return "FORK";
    case TM_REC_EXEC:
        return "EXEC";
    case TM_REC_END:
        return "END";
    default:
        return "unknown";
    }
}

/* Parses one payload into rec.  Returns 0, or -1 if the payload is too short
 * or inconsistent (a length field pointing past the record). */
static int parse_payload(uint8_t type, const uint8_t *pl, uint32_t len, tm_wire_rec *rec)
{
    cursor c = {pl, pl + len, 0};
    const uint8_t *q;
    rec->type = type;
    switch (type) {
    case TM_REC_HELLO:
        GET(&c, rec->u.hello.pid);
        GET(&c, rec->u.hello.ppid);
        GET(&c, rec->u.hello.token);
        GET(&c, rec->u.hello.monotonic_ns);
        GET(&c, rec->u.hello.flags);
        GET(&c, rec->u.hello.max_frames);
        GET(&c, rec->u.hello.exe_len);
        q = take(&c, rec->u.hello.exe_len);
        rec->u.hello.exe = (const char *)q;
        break;
    case TM_REC_ALLOC:
        GET(&c, rec->u.alloc.stack_id);
        GET(&c, rec->u.alloc.kind);
        GET(&c, rec->u.alloc.ptr);
        GET(&c, rec->u.alloc.size);
        if (rec->u.alloc.kind > TM_ALLOC_NEW_ARRAY)
            return -1;
        break;
    case TM_REC_FREE:
        GET(&c, rec->u.free.ptr);
        GET(&c, rec->u.free.kind);
        if (rec->u.free.kind > TM_FREE_REALLOC_PRE)
            return -1;
        break;
    case TM_REC_REALLOC_FAILED:
        GET(&c, rec->u.realloc_failed.ptr);
        break;
    case TM_REC_REALLOC:
        GET(&c, rec->u.realloc.stack_id);
        GET(&c, rec->u.realloc.old_ptr);
        GET(&c, rec->u.realloc.new_ptr);
        GET(&c, rec->u.realloc.size);
        break;
    case TM_REC_STACK:
        GET(&c, rec->u.stack.stack_id);
        GET(&c, rec->u.stack.depth);
        GET(&c, rec->u.stack.flags);
        if (rec->u.stack.depth > TM_WIRE_MAX_DEPTH)
            return -1;
        rec->u.stack.ips = take(&c, 8u * rec->u.stack.depth);
        break;
    case TM_REC_MODULE:
        GET(&c, rec->u.module.id);
        GET(&c, rec->u.module.load_bias);
        GET(&c, rec->u.module.build_id_len);
        if (rec->u.module.build_id_len > TM_BUILD_ID_MAX)
            return -1;
        rec->u.module.build_id = take(&c, rec->u.module.build_id_len);
        GET(&c, rec->u.module.nseg);
        if (rec->u.module.nseg > TM_MODULE_MAX_SEGS)
            return -1;
        rec->u.module.segs = take(&c, 20u * rec->u.module.nseg);
        GET(&c, rec->u.module.path_len);
        rec->u.module.path = (const char *)take(&c, rec->u.module.path_len);
        break;
    case TM_REC_MODULE_GONE:
        GET(&c, rec->u.module_gone.id);
        break;
    case TM_REC_TICK:
        GET(&c, rec->u.tick.monotonic_ns);
        GET(&c, rec->u.tick.rss_bytes);
        break;
    case TM_REC_FORK:
        GET(&c, rec->u.fork.child_pid);
        break;
    case TM_REC_EXEC:
        GET(&c, rec->u.exec.path_len);
        rec->u.exec.path = (const char *)take(&c, rec->u.exec.path_len);
        break;
    case TM_REC_END:
        GET(&c, rec->u.end.reason);
        GET(&c, rec->u.end.unknown_frees);
        GET(&c, rec->u.end.nested_calls);
        GET(&c, rec->u.end.lost_events);
        break;
    default:
        return 0; /* unknown type of a newer minor version: skipped by length */
    }
    return c.bad ? -1 : 0;
}

int tm_wire_decode_any(tm_wire_decoder *d, const uint8_t *buf, size_t len, size_t *used,
                       tm_wire_rec *rec, tm_err *err)
{
    *used = 0;
    if (!d->have_preamble) {
        if (len < TM_WIRE_PREAMBLE_LEN) {
            if (memcmp(buf, TM_WIRE_MAGIC, len < 4 ? len : 4) != 0)
                return tm_err_set(err, TM_E_FORMAT, "not a tmtop stream (bad magic)");
            return 0;
        }
        if (memcmp(buf, TM_WIRE_MAGIC, 4) != 0)
            return tm_err_set(err, TM_E_FORMAT, "not a tmtop stream (bad magic)");
        memcpy(&d->major, buf + 4, 2);
        memcpy(&d->minor, buf + 6, 2);
        if (d->major != TM_WIRE_MAJOR)
            return tm_err_set(err, TM_E_VERSION,
                              "stream version %u.%u is not supported (this tmtop reads %u.x)",
                              d->major, d->minor, TM_WIRE_MAJOR);
        d->have_preamble = 1;
        d->offset = TM_WIRE_PREAMBLE_LEN;
        rec->type = TM_REC_PREAMBLE;
        rec->u.preamble.major = d->major;
        rec->u.preamble.minor = d->minor;
        *used = TM_WIRE_PREAMBLE_LEN;
        return 1;
    }
    if (len < 2)
        return 0;
    uint32_t plen = buf[1];
    size_t hlen = 2;
    if (plen == 255) {
        if (len < 6)
            return 0;
        memcpy(&plen, buf + 2, 4);
        hlen = 6;
        if (plen < 255 || plen > TM_WIRE_MAX_RECORD)
            return tm_err_set(err, TM_E_FORMAT, "corrupt stream: record length %u at offset %llu",
                              plen, (unsigned long long)d->offset);
    }
    if (len - hlen < plen)
        return 0;
    if (buf[0] == TM_REC_PREAMBLE || parse_payload(buf[0], buf + hlen, plen, rec) != 0)
        return tm_err_set(err, TM_E_FORMAT, "corrupt stream: bad %s record at offset %llu",
                          tm_wire_type_name(buf[0]), (unsigned long long)d->offset);
    *used = hlen + plen;
    d->offset += *used;
    d->records++;
    return 1;
}
