/* seeds.c - writes seed streams for the fuzzers into DIR: well-formed traces
 * using every record type, so that mutation starts from deep inside the
 * decoder and the store instead of at the magic bytes.
 * usage: seeds DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static uint8_t buf[1 << 20];

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
    if (argc != 2)
        return 2;
    for (int v = 0; v < 4; v++) {
        size_t n = 0;
        n += tm_wire_put_preamble(buf + n);
        n += tm_wire_put_hello(buf + n, 100, 1, 0x1234, 5, 0, 64, "/bin/prog");
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
    }
    return 0;
}
