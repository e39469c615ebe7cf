/* byte_reader.h - a bounds-checked reader of the byte formats of DWARF and
 * .eh_frame: LEB128 numbers and little-endian fixed-size values.  Used by
 * the symbolizer (src/symbolize: dies.c, dwarf.c) and by the hook's stack
 * walk (src/tracer/hook_walk.c); header only, no allocation.
 * Reading past end sets bad and returns 0; the cursor never passes end. */
#ifndef TMTOP_BYTE_READER_H
#define TMTOP_BYTE_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tm_rd {
    const unsigned char *p, *end;
    int bad;
} tm_rd;

static inline uint64_t tm_rd_uleb(tm_rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; r->p < r->end; shift += 7) {
        unsigned char b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static inline int64_t tm_rd_sleb(tm_rd *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        unsigned char b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80)) {
            if (shift < 64 && (b & 0x40))
                v |= ~(uint64_t)0 << shift;
            return (int64_t)v;
        }
    }
    r->bad = 1;
    return 0;
}

/* n-byte little-endian value, n <= 8 */
static inline uint64_t tm_rd_fixed(tm_rd *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n || n > 8) {
        r->bad = 1;
        r->p = r->end;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

#endif
