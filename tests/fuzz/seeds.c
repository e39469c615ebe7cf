/* seeds.c - writes seed streams for the fuzzers into DIR: well-formed traces
 * using every record type, so that mutation starts from deep inside the
 * decoder and the store instead of at the magic bytes.
 * With DIR2, also recordings (tracefile.h) of those streams for the
 * recording loader's fuzzer: one process each, and all four as a parent and
 * its children, interleaved.
 * usage: seeds DIR [DIR2] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tracefile.h"
#include "wire.h"

static uint8_t buf[1 << 20];
static uint8_t streams[4][1 << 14];
static size_t stream_len[4];

/* Records the wire records of stream v between byte offsets from and to. */
static void record(tm_tracefile_writer *w, uint32_t pid, int v, size_t from, size_t to)
{
    tm_wire_decoder d;
    tm_wire_decoder_init(&d);
    size_t off = 0, used;
    tm_wire_rec rec;
    tm_err err = {0};
    while (off < stream_len[v] &&
           tm_wire_decode(&d, streams[v] + off, stream_len[v] - off, &used, &rec, &err) == 1) {
        if (off >= from && off < to)
            tm_tracefile_record(w, pid, &rec);
        off += used;
    }
}

static void recordings(const char *dir)
{
    char path[4096];
    tm_err err = {0};
    for (int v = 0; v < 5; v++) {
        snprintf(path, sizeof path, "%s/rec%d", dir, v);
        tm_tracefile_writer *w = tm_tracefile_create(path, 64, v == 4, "./prog", &err);
        if (!w) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        if (v < 4) {
            record(w, 100 + (uint32_t)v, v, 0, (size_t)-1);
        } else {
            for (int half = 0; half < 2; half++)
                for (int k = 0; k < 4; k++)
                    record(w, 100 + (uint32_t)k, k, half ? 200 : 0, half ? (size_t)-1 : 200);
        }
        if (tm_tracefile_finish(w, v < 4 ? 100 + (uint32_t)v : 100, 1, v << 8, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
    }
}

static void save(const char *dir, int n, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/seed%d", dir, n);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3)
        return 2;
    for (int v = 0; v < 4; v++) {
        size_t n = 0;
        n += tm_wire_put_preamble(buf + n);
        n += tm_wire_put_hello(buf + n, 100 + (uint32_t)v, v ? 100 : 1, 0x1234, 5, 0, 64,
                               "/bin/prog");
        tm_module m;
        memset(&m, 0, sizeof m);
        m.id = 0;
        m.load_bias = 0x400000;
        m.path = "/bin/prog";
        m.build_id_len = 4;
        memcpy(m.build_id, "\x01\x02\x03\x04", 4);
        m.nseg = 1;
        m.seg[0].vaddr = 0x1000;
        m.seg[0].memsz = 0x10000;
        m.seg[0].flags = 5;
        n += tm_wire_put_module(buf + n, &m);
        for (uint32_t s = 1; s <= 3 + (uint32_t)v; s++) {
            uint64_t ips[4] = {0x401000 + 16 * s, 0x402000 + 64 * s, 0x403000, 0x404000};
            n += tm_wire_put_stack(buf + n, s, v == 3 ? TM_STACK_TRUNCATED : 0, ips,
                                   (uint16_t)(1 + s % 4));
        }
        for (uint64_t i = 0; i < 8; i++)
            n += tm_wire_put_alloc(buf + n, 1 + (uint32_t)(i % 3), (uint8_t)(i % 6),
                                   0x10000 + 0x100 * i, 10 + i * (uint64_t)v);
        n += tm_wire_put_free(buf + n, 0x10000, TM_FREE_FREE);
        n += tm_wire_put_free(buf + n, 0x99999, TM_FREE_DELETE);
        n += tm_wire_put_free(buf + n, 0x10100, TM_FREE_REALLOC_PRE);
        n += tm_wire_put_realloc(buf + n, 2, 0x10100, 0x20000, 500);
        n += tm_wire_put_free(buf + n, 0x10200, TM_FREE_REALLOC_PRE);
        n += tm_wire_put_realloc_failed(buf + n, 0x10200);
        n += tm_wire_put_tick(buf + n, 1000000 * (uint64_t)v, 4096);
        n += tm_wire_put_alloc(buf + n, 2, TM_ALLOC_MALLOC, 0x10300, 64);
        if (v == 1)
            n += tm_wire_put_fork(buf + n, 101);
        if (v == 2)
            n += tm_wire_put_module_gone(buf + n, 0);
        if (v == 3)
            n += tm_wire_put_exec(buf + n, "/bin/other");
        n += tm_wire_put_end(buf + n, v == 3 ? TM_END_EXEC : TM_END_EXIT, 1, 2, 3);
        save(argv[1], v, n);
        memcpy(streams[v], buf, n);
        stream_len[v] = n;
    }
    if (argc == 3)
        recordings(argv[2]);
    return 0;
}
