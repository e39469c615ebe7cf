/* wire.h - the tmtop trace stream: versioned, binary, little-endian records.
 *
 * Written by the hook inside the target (src/tracer), read by tmtop's ingest
 * and by any file replay, always through tm_wire_decode().  Encoders write into
 * a caller-provided buffer and never allocate, so the hook can use them.
 *
 * Stream layout:
 *   preamble  "TMTP" u16 major u16 minor                      (8 bytes, once)
 *   records   u8 type, u8 len, [u32 len if len == 255], payload[len]
 *
 * A reader rejects another major version; a newer minor may add record types,
 * which a reader skips by length.  Never reuse a record number; bump
 * TM_WIRE_MINOR when adding a record, TM_WIRE_MAJOR when changing one.
 *
 * Order is truth: the hook appends FREE before the real free runs and ALLOC
 * after the real allocation returned, all under one lock, so in the stream a
 * free of an address always precedes its next allocation. */
#ifndef TMTOP_WIRE_H
#define TMTOP_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tmtop's wire encoders assume a little-endian host"
#endif

#define TM_WIRE_MAGIC "TMTP"
#define TM_WIRE_MAJOR 1
#define TM_WIRE_MINOR 0
#define TM_WIRE_PREAMBLE_LEN 8

/* The deepest stack a STACK record may carry. */
#define TM_WIRE_MAX_DEPTH 1024

enum tm_rec_type {
    TM_REC_PREAMBLE = 0x00,       /* pseudo record: the decoder reports the preamble */
    TM_REC_HELLO = 0x01,          /* u32 pid, u32 ppid, u64 token, u64 monotonic_ns,
                                     u32 flags, u16 max_frames, u16 len, exe[len] */
    TM_REC_ALLOC = 0x02,          /* u32 stack_id, u8 kind, u64 ptr, u64 size */
    TM_REC_FREE = 0x03,           /* u64 ptr, u8 kind */
    TM_REC_REALLOC_FAILED = 0x04, /* u64 old_ptr: realloc returned NULL, the block
                                     is unchanged: undo the REALLOC_PRE free */
    TM_REC_REALLOC = 0x05,        /* u32 stack_id, u64 old_ptr, u64 new_ptr, u64 size:
                                     realloc(old_ptr != NULL) completed; new_ptr == 0
                                     means realloc(p, 0) freed the block and returned
                                     NULL (no allocation) */
    TM_REC_STACK = 0x10,          /* u32 stack_id, u16 depth, u16 flags, u64 ip[depth]
                                     (return addresses, innermost first, hook frames
                                     removed); always before the first ALLOC using it */
    TM_REC_MODULE = 0x20,         /* u32 id, u64 load_bias, u8 bid_len, bid[bid_len],
                                     u16 nseg, {u64 vaddr, u64 memsz, u32 flags}[nseg],
                                     u16 path_len, path[path_len] */
    TM_REC_MODULE_GONE = 0x21,    /* u32 id */
    TM_REC_TICK = 0x30,           /* u64 monotonic_ns, u64 rss_bytes */
    TM_REC_FORK = 0x60,           /* u32 child_pid: the process forked */
    TM_REC_EXEC = 0x61,           /* u16 len, path[len]: the process is about to exec */
    TM_REC_END = 0x7F,            /* u32 reason, u64 unknown_frees, u64 nested_calls,
                                     u64 lost_events: last record of a stream */
};

enum tm_alloc_kind {
    TM_ALLOC_MALLOC = 0,
    TM_ALLOC_CALLOC = 1,
    TM_ALLOC_REALLOC = 2,  /* realloc(NULL, n): a plain allocation through realloc */
    TM_ALLOC_MEMALIGN = 3, /* posix_memalign, aligned_alloc, memalign, valloc, pvalloc */
    TM_ALLOC_NEW = 4,
    TM_ALLOC_NEW_ARRAY = 5,
};

enum tm_free_kind {
    TM_FREE_FREE = 0,
    TM_FREE_DELETE = 1,
    TM_FREE_DELETE_ARRAY = 2,
    TM_FREE_REALLOC_PRE = 3, /* realloc is about to move or free the block */
};

enum tm_end_reason {
    TM_END_EXIT = 0,     /* normal exit, after the target's atexit handlers */
    TM_END_EXEC = 1,     /* the process exec'd */
    TM_END_DISABLED = 2, /* the hook turned itself off (error, lost channel) */
};

/* STACK flags */
enum { TM_STACK_TRUNCATED = 1u << 0 }; /* deeper than max_frames */

/* A decoded record.  Pointers (exe, path, build_id, ips) borrow the input
 * buffer passed to tm_wire_decode and are valid as long as it is. ips may be
 * unaligned: read them with tm_wire_stack_ip(). */
typedef struct tm_wire_rec {
    uint8_t type;
    union {
        struct {
            uint16_t major, minor;
        } preamble;
        struct {
            uint32_t pid, ppid, flags;
            uint16_t max_frames;
            uint64_t token, monotonic_ns;
            const char *exe;
            uint16_t exe_len;
        } hello;
        struct {
            uint32_t stack_id;
            uint8_t kind;
            uint64_t ptr, size;
        } alloc;
        struct {
            uint64_t ptr;
            uint8_t kind;
        } free;
        struct {
            uint64_t ptr;
        } realloc_failed;
        struct {
            uint32_t stack_id;
            uint64_t old_ptr, new_ptr, size;
        } realloc;
        struct {
            uint32_t stack_id;
            uint16_t depth, flags;
            const uint8_t *ips;
        } stack;
        struct {
            uint32_t id;
            uint64_t load_bias;
            const uint8_t *build_id;
            uint8_t build_id_len;
            uint16_t nseg;
            const uint8_t *segs; /* nseg * 20 bytes: read with tm_wire_module_seg() */
            const char *path;
            uint16_t path_len;
        } module;
        struct {
            uint32_t id;
        } module_gone;
        struct {
            uint64_t monotonic_ns, rss_bytes;
        } tick;
        struct {
            uint32_t child_pid;
        } fork;
        struct {
            const char *path;
            uint16_t path_len;
        } exec;
        struct {
            uint32_t reason;
            uint64_t unknown_frees, nested_calls, lost_events;
        } end;
    } u;
} tm_wire_rec;

/* Incremental decoder state: zero-initialise (or tm_wire_decoder_init). */
typedef struct tm_wire_decoder {
    int have_preamble;
    uint16_t major, minor;
    uint64_t offset; /* stream offset of the next byte, for error messages */
    uint64_t records;
} tm_wire_decoder;

void tm_wire_decoder_init(tm_wire_decoder *d);

/* tm_wire_decode (inline, after the encoders below) and tm_wire_decode_any
 * decode the next record from buf[0..len).
 * Returns 1 and sets *used and *rec when a whole record (or the preamble) was
 * decoded; 0 when buf holds only part of a record (call again with more bytes;
 * *used = 0); -1 on malformed input or a wrong magic/major version (err says
 * what and at which stream offset; the stream cannot be resumed).
 * Unknown record types are skipped: they return 1 with rec->type set to the
 * unknown type and nothing else filled in. Never reads outside buf. */
int tm_wire_decode_any(tm_wire_decoder *d, const uint8_t *buf, size_t len, size_t *used,
                       tm_wire_rec *rec, tm_err *err);

static inline uint64_t tm_wire_stack_ip(const tm_wire_rec *r, unsigned i)
{
    uint64_t v;
    memcpy(&v, r->u.stack.ips + 8 * (size_t)i, 8);
    return v;
}

static inline void tm_wire_module_seg(const tm_wire_rec *r, unsigned i, tm_segment *out)
{
    const uint8_t *p = r->u.module.segs + 20 * (size_t)i;
    memcpy(&out->vaddr, p, 8);
    memcpy(&out->memsz, p + 8, 8);
    memcpy(&out->flags, p + 16, 4);
}

/* ---- encoders ------------------------------------------------------------
 * Each writes one record at dst and returns its length in bytes; dst must have
 * room for the TM_WIRE_*_MAX bytes given.  They never allocate or fail. */
#define TM_WIRE_ALLOC_LEN (2 + 21)
#define TM_WIRE_FREE_LEN (2 + 9)
#define TM_WIRE_REALLOC_FAILED_LEN (2 + 8)
#define TM_WIRE_REALLOC_LEN (2 + 28)
#define TM_WIRE_TICK_LEN (2 + 16)
#define TM_WIRE_STACK_MAX (6 + 8 + 8 * TM_WIRE_MAX_DEPTH)
#define TM_WIRE_MODULE_MAX (6 + 13 + TM_BUILD_ID_MAX + 2 + 20 * TM_MODULE_MAX_SEGS + 2 + 4096)
#define TM_WIRE_HELLO_MAX (6 + 30 + 4096)
#define TM_WIRE_EXEC_MAX (6 + 2 + 4096)
#define TM_WIRE_END_LEN (2 + 28)
#define TM_WIRE_MAX_RECORD TM_WIRE_STACK_MAX

size_t tm_wire_put_preamble(uint8_t *dst);
size_t tm_wire_put_hello(uint8_t *dst, uint32_t pid, uint32_t ppid, uint64_t token,
                         uint64_t monotonic_ns, uint32_t flags, uint16_t max_frames,
                         const char *exe);
size_t tm_wire_put_stack(uint8_t *dst, uint32_t stack_id, uint16_t flags, const uint64_t *ips,
                         uint16_t depth);
size_t tm_wire_put_module(uint8_t *dst, const tm_module *m);
size_t tm_wire_put_module_gone(uint8_t *dst, uint32_t id);
size_t tm_wire_put_tick(uint8_t *dst, uint64_t monotonic_ns, uint64_t rss_bytes);
size_t tm_wire_put_fork(uint8_t *dst, uint32_t child_pid);
size_t tm_wire_put_exec(uint8_t *dst, const char *path);
size_t tm_wire_put_end(uint8_t *dst, uint32_t reason, uint64_t unknown_frees, uint64_t nested_calls,
                       uint64_t lost_events);
size_t tm_wire_put_realloc_failed(uint8_t *dst, uint64_t old_ptr);
size_t tm_wire_put_realloc(uint8_t *dst, uint32_t stack_id, uint64_t old_ptr, uint64_t new_ptr,
                           uint64_t size);

/* The two hot-path encoders are inline. */
static inline size_t tm_wire_put_alloc(uint8_t *dst, uint32_t stack_id, uint8_t kind, uint64_t ptr,
                                       uint64_t size)
{
    dst[0] = TM_REC_ALLOC;
    dst[1] = 21;
    memcpy(dst + 2, &stack_id, 4);
    dst[6] = kind;
    memcpy(dst + 7, &ptr, 8);
    memcpy(dst + 15, &size, 8);
    return TM_WIRE_ALLOC_LEN;
}

static inline size_t tm_wire_put_free(uint8_t *dst, uint64_t ptr, uint8_t kind)
{
    dst[0] = TM_REC_FREE;
    dst[1] = 9;
    memcpy(dst + 2, &ptr, 8);
    dst[10] = kind;
    return TM_WIRE_FREE_LEN;
}

/* Inline for ALLOC and FREE at their own lengths, nearly every record of a
 * stream: read in place, without a call.  tm_wire_decode_any decodes
 * everything (the same record for these two, and the longer forms a newer
 * minor version may send). */
static inline int tm_wire_decode(tm_wire_decoder *d, const uint8_t *buf, size_t len, size_t *used,
                                 tm_wire_rec *rec, tm_err *err)
{
    if (d->have_preamble && len >= TM_WIRE_FREE_LEN) {
        if (buf[0] == TM_REC_ALLOC && buf[1] == TM_WIRE_ALLOC_LEN - 2 && len >= TM_WIRE_ALLOC_LEN &&
            buf[6] <= TM_ALLOC_NEW_ARRAY) {
            rec->type = TM_REC_ALLOC;
            memcpy(&rec->u.alloc.stack_id, buf + 2, 4);
            rec->u.alloc.kind = buf[6];
            memcpy(&rec->u.alloc.ptr, buf + 7, 8);
            memcpy(&rec->u.alloc.size, buf + 15, 8);
            *used = TM_WIRE_ALLOC_LEN;
            d->offset += TM_WIRE_ALLOC_LEN;
            d->records++;
            return 1;
        }
        if (buf[0] == TM_REC_FREE && buf[1] == TM_WIRE_FREE_LEN - 2 &&
            buf[10] <= TM_FREE_REALLOC_PRE) {
            rec->type = TM_REC_FREE;
            memcpy(&rec->u.free.ptr, buf + 2, 8);
            rec->u.free.kind = buf[10];
            *used = TM_WIRE_FREE_LEN;
            d->offset += TM_WIRE_FREE_LEN;
            d->records++;
            return 1;
        }
    }
    return tm_wire_decode_any(d, buf, len, used, rec, err);
}

/* Human-readable name of a record type ("ALLOC"), or "unknown". */
const char *tm_wire_type_name(uint8_t type);

#endif
