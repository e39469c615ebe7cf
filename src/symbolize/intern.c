/* intern.c - the symbolizer's string intern table. */
#include "symbolize_internal.h"

#include <stdlib.h>
#include <string.h>

/* Strings are copied into large chunks so that interning costs one memcpy and
 * nothing is freed one by one: the table only grows until it is dropped. */
#define CHUNK_SIZE (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    char data[];
} chunk;

typedef struct slot {
    const char *str; /* NULL = empty */
    uint64_t hash;
    size_t len;
} slot;

struct sym_intern {
    chunk *chunks;
    slot *slots;
    size_t cap, count; /* cap is a power of two */
    size_t bytes;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    /* FNV-1a with a final mix: names and paths are short. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

sym_intern *sym_intern_new(void)
{
    sym_intern *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->cap = 1024;
    in->slots = calloc(in->cap, sizeof *in->slots);
    if (!in->slots) {
        free(in);
        return NULL;
    }
    in->bytes = in->cap * sizeof *in->slots;
    return in;
}

void sym_intern_free(sym_intern *in)
{
    if (!in)
        return;
    chunk *c = in->chunks;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(in->slots);
    free(in);
}

size_t sym_intern_bytes(const sym_intern *in)
{
    return in->bytes;
}

static char *arena_copy(sym_intern *in, const char *s, size_t n)
{
    chunk *c = in->chunks;
    if (!c || c->size - c->used < n + 1) {
        size_t size = n + 1 > CHUNK_SIZE / 4 ? n + 1 : CHUNK_SIZE;
        chunk *nc = malloc(sizeof *nc + size);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->size = size;
        in->bytes += sizeof *nc + size;
        if (c && size != CHUNK_SIZE) {
            /* A big string gets its own chunk behind the current one, so the
             * current chunk's free space stays usable. */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            in->chunks = nc;
        }
        c = nc;
    }
    char *p = c->data + c->used;
    memcpy(p, s, n);
    p[n] = '\0';
    c->used += n + 1;
    return p;
}

static int rehash(sym_intern *in)
{
    size_t ncap = in->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < in->cap; i++) {
        if (!in->slots[i].str)
            continue;
        size_t j = in->slots[i].hash & (ncap - 1);
        while (ns[j].str)
            j = (j + 1) & (ncap - 1);
        ns[j] = in->slots[i];
    }
    free(in->slots);
    in->bytes += (ncap - in->cap) * sizeof *ns;
    in->slots = ns;
    in->cap = ncap;
    return 0;
}

const char *sym_intern_strn(sym_intern *in, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n);
    size_t i = h & (in->cap - 1);
    while (in->slots[i].str) {
        const slot *sl = &in->slots[i];
        if (sl->hash == h && sl->len == n && memcmp(sl->str, s, n) == 0)
            return sl->str;
        i = (i + 1) & (in->cap - 1);
    }
    if ((in->count + 1) * 4 > in->cap * 3) {
        if (rehash(in) < 0)
            return NULL;
        i = h & (in->cap - 1);
        while (in->slots[i].str)
            i = (i + 1) & (in->cap - 1);
    }
    char *copy = arena_copy(in, s, n);
    if (!copy)
        return NULL;
    in->slots[i].str = copy;
    in->slots[i].hash = h;
    in->slots[i].len = n;
    in->count++;
    return copy;
}

const char *sym_intern_str(sym_intern *in, const char *s)
{
    return s ? sym_intern_strn(in, s, strlen(s)) : NULL;
}
