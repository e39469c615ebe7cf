/* Unit tests of the wire format: round trip of every record, incremental
 * decoding, truncated input, wrong magic and version, and random garbage
 * (an error or a skipped record, never a crash or an out-of-bounds read:
 * run under ASan in CI). */
#include "wire.h"

#include <stdlib.h>

#include "check.h"

static uint8_t buf[1 << 20];

/* Writes one of every record type after the preamble; returns the length. */
static size_t write_all_records(void)
{
    size_t n = tm_wire_put_preamble(buf);
    n += tm_wire_put_hello(buf + n, 1234, 1, 0xfeedfacecafebeefull, 777, 0, 64, "/bin/app");
    uint64_t ips[300];
    for (unsigned i = 0; i < 300; i++)
        ips[i] = 0x400000 + 16 * i;
    n += tm_wire_put_stack(buf + n, 7, 0, ips, 3);
    n += tm_wire_put_stack(buf + n, 8, TM_STACK_TRUNCATED, ips, 300); /* long-length header */
    n += tm_wire_put_alloc(buf + n, 7, TM_ALLOC_CALLOC, 0x1000, 48);
    n += tm_wire_put_free(buf + n, 0x1000, TM_FREE_DELETE);
    n += tm_wire_put_realloc_failed(buf + n, 0x2000);
    n += tm_wire_put_realloc(buf + n, 8, 0x2000, 0x3000, 5000000000ull);
    tm_module m = {.id = 3,
                   .load_bias = 0x7f0000000000ull,
                   .path = "/lib/libx.so",
                   .build_id_len = 20,
                   .nseg = 2};
    for (int i = 0; i < 20; i++)
        m.build_id[i] = (uint8_t)i;
    m.seg[0] = (tm_segment){0, 0x1000, 4};
    m.seg[1] = (tm_segment){0x1000, 0x2345, 5};
    n += tm_wire_put_module(buf + n, &m);
    n += tm_wire_put_module_gone(buf + n, 3);
    n += tm_wire_put_tick(buf + n, 123456789, 4096 * 10);
    n += tm_wire_put_fork(buf + n, 4321);
    n += tm_wire_put_exec(buf + n, "/bin/true");
    n += tm_wire_put_end(buf + n, TM_END_EXIT, 1, 2, 3);
    return n;
}

static void test_round_trip(void)
{
    size_t len = write_all_records(), off = 0, used;
    tm_wire_decoder d;
    tm_wire_rec r;
    tm_err err = {0};
    tm_wire_decoder_init(&d);
    uint8_t expect[] = {TM_REC_PREAMBLE, TM_REC_HELLO,       TM_REC_STACK,          TM_REC_STACK,
                        TM_REC_ALLOC,    TM_REC_FREE,        TM_REC_REALLOC_FAILED, TM_REC_REALLOC,
                        TM_REC_MODULE,   TM_REC_MODULE_GONE, TM_REC_TICK,           TM_REC_FORK,
                        TM_REC_EXEC,     TM_REC_END};
    for (size_t i = 0; i < sizeof expect; i++) {
        int rc = tm_wire_decode(&d, buf + off, len - off, &used, &r, &err);
        CHECK(rc == 1);
        if (rc != 1)
            return;
        CHECK_U64(r.type, expect[i]);
        switch (r.type) {
        case TM_REC_PREAMBLE:
            CHECK_U64(r.u.preamble.major, TM_WIRE_MAJOR);
            break;
        case TM_REC_HELLO:
            CHECK_U64(r.u.hello.pid, 1234);
            CHECK_U64(r.u.hello.token, 0xfeedfacecafebeefull);
            CHECK_U64(r.u.hello.max_frames, 64);
            CHECK(r.u.hello.exe_len == 8 && memcmp(r.u.hello.exe, "/bin/app", 8) == 0);
            break;
        case TM_REC_STACK:
            if (r.u.stack.stack_id == 7) {
                CHECK_U64(r.u.stack.depth, 3);
                CHECK_U64(tm_wire_stack_ip(&r, 2), 0x400020);
            } else {
                CHECK_U64(r.u.stack.depth, 300);
                CHECK_U64(r.u.stack.flags, TM_STACK_TRUNCATED);
                CHECK_U64(tm_wire_stack_ip(&r, 299), 0x400000 + 16 * 299);
            }
            break;
        case TM_REC_ALLOC:
            CHECK_U64(r.u.alloc.stack_id, 7);
            CHECK_U64(r.u.alloc.kind, TM_ALLOC_CALLOC);
            CHECK_U64(r.u.alloc.ptr, 0x1000);
            CHECK_U64(r.u.alloc.size, 48);
            break;
        case TM_REC_FREE:
            CHECK_U64(r.u.free.ptr, 0x1000);
            CHECK_U64(r.u.free.kind, TM_FREE_DELETE);
            break;
        case TM_REC_REALLOC_FAILED:
            CHECK_U64(r.u.realloc_failed.ptr, 0x2000);
            break;
        case TM_REC_REALLOC:
            CHECK_U64(r.u.realloc.stack_id, 8);
            CHECK_U64(r.u.realloc.old_ptr, 0x2000);
            CHECK_U64(r.u.realloc.new_ptr, 0x3000);
            CHECK_U64(r.u.realloc.size, 5000000000ull);
            break;
        case TM_REC_MODULE: {
            tm_segment sg;
            CHECK_U64(r.u.module.id, 3);
            CHECK_U64(r.u.module.load_bias, 0x7f0000000000ull);
            CHECK_U64(r.u.module.build_id_len, 20);
            CHECK_U64(r.u.module.build_id[19], 19);
            CHECK_U64(r.u.module.nseg, 2);
            tm_wire_module_seg(&r, 1, &sg);
            CHECK_U64(sg.vaddr, 0x1000);
            CHECK_U64(sg.memsz, 0x2345);
            CHECK_U64(sg.flags, 5);
            CHECK(r.u.module.path_len == 12 && memcmp(r.u.module.path, "/lib/libx.so", 12) == 0);
            break;
        }
        case TM_REC_MODULE_GONE:
            CHECK_U64(r.u.module_gone.id, 3);
            break;
        case TM_REC_TICK:
            CHECK_U64(r.u.tick.monotonic_ns, 123456789);
            CHECK_U64(r.u.tick.rss_bytes, 40960);
            break;
        case TM_REC_FORK:
            CHECK_U64(r.u.fork.child_pid, 4321);
            break;
        case TM_REC_EXEC:
            CHECK(r.u.exec.path_len == 9 && memcmp(r.u.exec.path, "/bin/true", 9) == 0);
            break;
        case TM_REC_END:
            CHECK_U64(r.u.end.reason, TM_END_EXIT);
            CHECK_U64(r.u.end.unknown_frees, 1);
            CHECK_U64(r.u.end.nested_calls, 2);
            CHECK_U64(r.u.end.lost_events, 3);
            break;
        }
        off += used;
    }
    CHECK_U64(off, len);
    CHECK_U64(d.records, sizeof expect - 1);
}

/* Feeding the stream one byte more at a time must give the same records:
 * every proper prefix of a record answers "need more", never an error. */
static void test_incremental(void)
{
    size_t len = write_all_records(), off = 0, used, avail = 0, nrec = 0;
    tm_wire_decoder d;
    tm_wire_rec r;
    tm_err err = {0};
    tm_wire_decoder_init(&d);
    while (off < len) {
        int rc = tm_wire_decode(&d, buf + off, avail - off, &used, &r, &err);
        CHECK(rc >= 0);
        if (rc < 0)
            return;
        if (rc == 1) {
            off += used;
            nrec++;
        } else if (avail < len) {
            avail++;
        } else {
            CHECK(!"stream ended inside a record");
            return;
        }
    }
    CHECK_U64(nrec, 14);
}

static void test_bad_header(void)
{
    tm_wire_decoder d;
    tm_wire_rec r;
    tm_err err = {0};
    size_t used;
    uint8_t b[16];

    tm_wire_decoder_init(&d);
    CHECK(tm_wire_decode(&d, (const uint8_t *)"ELF\x7f", 4, &used, &r, &err) == -1);
    CHECK_U64(err.code, TM_E_FORMAT);

    tm_wire_decoder_init(&d);
    tm_wire_put_preamble(b);
    b[4] = TM_WIRE_MAJOR + 1; /* a future major version */
    CHECK(tm_wire_decode(&d, b, 8, &used, &r, &err) == -1);
    CHECK_U64(err.code, TM_E_VERSION);
    CHECK(strstr(err.msg, "version") != NULL);

    /* A newer minor version is accepted and its unknown records are skipped. */
    tm_wire_decoder_init(&d);
    tm_wire_put_preamble(b);
    b[6] = 9;
    b[8] = 0x55; /* unknown type */
    b[9] = 2;
    b[10] = b[11] = 0xAA;
    CHECK(tm_wire_decode(&d, b, 12, &used, &r, &err) == 1);
    CHECK(tm_wire_decode(&d, b + 8, 4, &used, &r, &err) == 1);
    CHECK_U64(used, 4);
    CHECK_U64(r.type, 0x55);
}

static void test_corrupt_records(void)
{
    tm_wire_decoder d;
    tm_wire_rec r;
    tm_err err = {0};
    size_t used;
    uint8_t b[64];

    /* An ALLOC whose length field is too short for its payload. */
    tm_wire_decoder_init(&d);
    d.have_preamble = 1;
    tm_wire_put_alloc(b, 1, 0, 0x10, 8);
    b[1] = 5;
    CHECK(tm_wire_decode(&d, b, 7, &used, &r, &err) == -1);

    /* A STACK claiming more ips than its length holds. */
    tm_wire_decoder_init(&d);
    d.have_preamble = 1;
    uint64_t ip = 1;
    size_t n = tm_wire_put_stack(b, 1, 0, &ip, 1);
    b[6] = 200; /* depth 200 in a 16-byte payload */
    CHECK(tm_wire_decode(&d, b, n, &used, &r, &err) == -1);

    /* A long length past the maximum record size. */
    tm_wire_decoder_init(&d);
    d.have_preamble = 1;
    b[0] = TM_REC_STACK;
    b[1] = 255;
    uint32_t huge = 0x7fffffff;
    memcpy(b + 2, &huge, 4);
    CHECK(tm_wire_decode(&d, b, 6, &used, &r, &err) == -1);

    /* Bad enum values. */
    tm_wire_decoder_init(&d);
    d.have_preamble = 1;
    tm_wire_put_free(b, 0x10, 0);
    b[10] = 99;
    CHECK(tm_wire_decode(&d, b, TM_WIRE_FREE_LEN, &used, &r, &err) == -1);
    CHECK(strstr(err.msg, "FREE") != NULL);
}

/* Random bytes after a valid preamble: each call must decode, ask for more,
 * or fail, and must only ever consume bytes it was given. */
static void test_garbage(void)
{
    srand(12345);
    for (int round = 0; round < 5000; round++) {
        size_t len = 8 + (size_t)(rand() % 600), off = 0, used;
        /* An exact-size heap block, so ASan sees any overread. */
        uint8_t *h = malloc(len);
        tm_wire_put_preamble(h);
        for (size_t i = 8; i < len; i++)
            h[i] = (uint8_t)rand();
        if (len > 8 && round % 3 == 0) /* bias towards known record types */
            h[8] = (uint8_t)(rand() % 0x80);
        tm_wire_decoder d;
        tm_wire_rec r;
        tm_err err = {0};
        tm_wire_decoder_init(&d);
        int rc;
        while ((rc = tm_wire_decode(&d, h + off, len - off, &used, &r, &err)) == 1) {
            CHECK(used > 0 && used <= len - off);
            off += used;
        }
        CHECK(rc == 0 || rc == -1);
        CHECK(off <= len);
        free(h);
    }
}

/* ALLOC and FREE: the decoder's in-place path for their own lengths and its
 * general path agree; bad kinds fail either way; a longer payload (a newer
 * minor version's extra fields) keeps the known fields and is skipped whole;
 * a record cut short waits for more bytes. */
static void decode_after_preamble(const uint8_t *rec, size_t len, int *rc, tm_wire_rec *r,
                                  size_t *used)
{
    uint8_t in[64];
    tm_wire_decoder d;
    tm_err err = {0};
    size_t n = tm_wire_put_preamble(in), u;
    memcpy(in + n, rec, len);
    tm_wire_decoder_init(&d);
    CHECK(tm_wire_decode(&d, in, n + len, &u, r, &err) == 1);
    *rc = tm_wire_decode(&d, in + n, len, used, r, &err);
}

static void test_alloc_free_forms(void)
{
    uint8_t b[64];
    tm_wire_rec r;
    size_t used;
    int rc;
    /* every kind, both records */
    for (unsigned k = 0; k <= TM_ALLOC_NEW_ARRAY; k++) {
        size_t n = tm_wire_put_alloc(b, 0xabcdef01u, (uint8_t)k, 0x7f0012345678ull, 1ull << 40);
        decode_after_preamble(b, n, &rc, &r, &used);
        CHECK(rc == 1 && used == n && r.type == TM_REC_ALLOC);
        CHECK_U64(r.u.alloc.stack_id, 0xabcdef01u);
        CHECK_U64(r.u.alloc.kind, k);
        CHECK_U64(r.u.alloc.ptr, 0x7f0012345678ull);
        CHECK_U64(r.u.alloc.size, 1ull << 40);
    }
    for (unsigned k = 0; k <= TM_FREE_REALLOC_PRE; k++) {
        size_t n = tm_wire_put_free(b, 0x7f0012345678ull, (uint8_t)k);
        decode_after_preamble(b, n, &rc, &r, &used);
        CHECK(rc == 1 && used == n && r.type == TM_REC_FREE);
        CHECK_U64(r.u.free.ptr, 0x7f0012345678ull);
        CHECK_U64(r.u.free.kind, k);
    }
    /* bad kinds */
    size_t n = tm_wire_put_alloc(b, 1, TM_ALLOC_NEW_ARRAY + 1, 0x1000, 8);
    decode_after_preamble(b, n, &rc, &r, &used);
    CHECK(rc < 0);
    n = tm_wire_put_free(b, 0x1000, TM_FREE_REALLOC_PRE + 1);
    decode_after_preamble(b, n, &rc, &r, &used);
    CHECK(rc < 0);
    /* longer payloads: the known fields, the whole record used */
    n = tm_wire_put_alloc(b, 9, TM_ALLOC_MALLOC, 0x2000, 16);
    b[1] += 3;
    memset(b + n, 0xee, 3);
    decode_after_preamble(b, n + 3, &rc, &r, &used);
    CHECK(rc == 1 && used == n + 3 && r.type == TM_REC_ALLOC);
    CHECK(r.u.alloc.stack_id == 9 && r.u.alloc.ptr == 0x2000 && r.u.alloc.size == 16);
    n = tm_wire_put_free(b, 0x3000, TM_FREE_FREE);
    b[1] += 5;
    memset(b + n, 0xee, 5);
    decode_after_preamble(b, n + 5, &rc, &r, &used);
    CHECK(rc == 1 && used == n + 5 && r.type == TM_REC_FREE && r.u.free.ptr == 0x3000);
    /* shorter payloads are corrupt */
    n = tm_wire_put_alloc(b, 9, TM_ALLOC_MALLOC, 0x2000, 16);
    b[1] -= 1;
    decode_after_preamble(b, n - 1, &rc, &r, &used);
    CHECK(rc < 0);
    /* cut short: wait for more */
    n = tm_wire_put_alloc(b, 9, TM_ALLOC_MALLOC, 0x2000, 16);
    for (size_t cut = 0; cut < n; cut++) {
        decode_after_preamble(b, cut, &rc, &r, &used);
        CHECK(rc == 0 && used == 0);
    }
    n = tm_wire_put_free(b, 0x3000, TM_FREE_FREE);
    for (size_t cut = 0; cut < n; cut++) {
        decode_after_preamble(b, cut, &rc, &r, &used);
        CHECK(rc == 0 && used == 0);
    }
}

static void test_format_size(void)
{
    char b[TM_SIZE_BUF];
    /* Expected strings are what CPython's tracemalloc._format_size prints. */
    CHECK_STR(tm_format_size(b, 0, 0), "0 B");
    CHECK_STR(tm_format_size(b, 95, 0), "95 B");
    CHECK_STR(tm_format_size(b, 10239, 0), "10239 B");
    CHECK_STR(tm_format_size(b, 10240, 0), "10.0 KiB");
    CHECK_STR(tm_format_size(b, 1536, 0), "1536 B");
    CHECK_STR(tm_format_size(b, 285696, 0), "279 KiB");
    CHECK_STR(tm_format_size(b, 102400, 0), "100 KiB");
    CHECK_STR(tm_format_size(b, 12897484.8, 0), "12.3 MiB");
    CHECK_STR(tm_format_size(b, 10485760, 0), "10.0 MiB");
    CHECK_STR(tm_format_size(b, 5e15, 0), "4547 TiB");
    CHECK_STR(tm_format_size(b, 1e18, 0), "909495 TiB");
    CHECK_STR(tm_format_size(b, 0, 1), "+0 B");
    CHECK_STR(tm_format_size(b, -96, 1), "-96 B");
    CHECK_STR(tm_format_size(b, 15360, 1), "+15.0 KiB");
    CHECK_STR(tm_format_size(b, -102400, 1), "-100 KiB");
}

int main(void)
{
    test_alloc_free_forms();
    test_round_trip();
    test_incremental();
    test_bad_header();
    test_corrupt_records();
    test_garbage();
    test_format_size();
    return check_done("wire");
}
