/* store.c - ingestion of wire records: the live table, per-stack aggregates,
 * totals, modules, the memory series, and snapshots.  Queries live in query.c. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

#define FIB 0x9E3779B97F4A7C15ull

/* Stack and module ids are dense counters in the hook; a bound keeps a
 * corrupt id from turning into a multi-gigabyte allocation. */
#define MAX_STACK_ID (1u << 28)
/* The hook numbers stacks densely, in the order their STACK records enter
 * the stream; an id far beyond those defined is corruption, and taking it
 * at face value would size the stack table by it (gigabytes for one record). */
#define MAX_STACK_ID_SKIP (1u << 16)
/* No successful allocation can exceed the 47-bit user address space of
 * x86-64; a larger size is corruption and would wrap current and peak. */
#define MAX_BLOCK_SIZE (1ull << 47)
#define MAX_MODULE_ID (1u << 20)

/* ---- arena ---------------------------------------------------------------- */

void *arena_alloc(arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    arena_chunk *c = a->head;
    if (!c || c->size - c->used < size) {
        size_t csz = size > 60000 ? size : 60000;
        c = malloc(sizeof *c + csz);
        if (!c)
            return NULL;
        c->size = csz;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

void arena_reset(arena *a)
{
    if (!a->head)
        return;
    arena_chunk *keep = a->head, *c = keep->next;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    keep->next = NULL;
    keep->used = 0;
}

void arena_free(arena *a)
{
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
}

/* ---- live table ----------------------------------------------------------- */

static inline uint64_t lt_home(uint64_t cap, uint64_t ptr)
{
    return (uint64_t)(((unsigned __int128)(ptr * FIB) * cap) >> 64);
}

static void lt_set_cap(live_table *t, uint64_t cap)
{
    t->cap = cap;
    if (cap < LT_SMALL_CAP) {
        /* small: load at most 1/4, and never shrunk: a program that builds
         * and frees a few thousand blocks over and over would otherwise have
         * its table grown and shrunk (fresh zeroed pages, a rehash) each
         * time, and a small table is at most 1 MiB */
        t->grow_at = cap / 4;
        t->shrink_at = 0;
    } else {
        t->grow_at = cap * 3 / 4; /* growing x1.5 past it keeps the load above 1/2 */
        t->shrink_at = cap / 8;
    }
}

/* The capacity a large table holding count entries shrinks to. */
static uint64_t lt_fit_cap(uint64_t count)
{
    if (count * 4 <= LT_SMALL_CAP / 2) /* the largest small one, load <= 1/4 */
        return LT_SMALL_CAP / 2;
    if (count * 2 < LT_SMALL_CAP) /* too full for a small one */
        return LT_SMALL_CAP;
    return count * 2; /* load 1/2 */
}

static int lt_init(live_table *t)
{
    t->slot = calloc(LT_MIN_CAP, sizeof *t->slot);
    if (!t->slot)
        return -1;
    t->count = 0;
    lt_set_cap(t, LT_MIN_CAP);
    return 0;
}

/* The slot holding ptr, or the empty slot where it would go. */
static inline lt_slot *lt_probe(const live_table *t, uint64_t ptr)
{
    uint64_t i = lt_home(t->cap, ptr);
    lt_slot *sl = t->slot;
    for (;;) {
        if (sl[i].ptr == ptr || sl[i].ptr == 0)
            return &sl[i];
        if (++i == t->cap)
            i = 0;
    }
}

static int lt_rehash(live_table *t, uint64_t cap)
{
    lt_slot *ns = calloc(cap, sizeof *ns);
    if (!ns)
        return -1;
    for (uint64_t k = 0; k < t->cap; k++) {
        if (!t->slot[k].ptr)
            continue;
        uint64_t i = lt_home(cap, t->slot[k].ptr);
        while (ns[i].ptr)
            if (++i == cap)
                i = 0;
        ns[i] = t->slot[k];
    }
    free(t->slot);
    t->slot = ns;
    lt_set_cap(t, cap);
    return 0;
}

/* Backward-shift deletion: pull later members of the probe run into the hole
 * so lookups never need tombstones. */
static void lt_delete(live_table *t, lt_slot *victim)
{
    uint64_t cap = t->cap, i = (uint64_t)(victim - t->slot), j = i;
    lt_slot *sl = t->slot;
    for (;;) {
        if (++j == cap)
            j = 0;
        if (!sl[j].ptr)
            break;
        uint64_t k = lt_home(cap, sl[j].ptr);
        /* sl[j] may stay if its home lies cyclically in (i, j] */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        sl[i] = sl[j];
        i = j;
    }
    sl[i].ptr = 0;
    t->count--;
    if (t->count < t->shrink_at)
        (void)lt_rehash(t, lt_fit_cap(t->count)); /* failing to shrink is harmless */
}

/* Makes room for one more entry.  Returns 0, or -1 when the table could not
 * grow and is too full to take another entry. */
static int lt_reserve(live_table *t)
{
    if (t->count + 1 <= t->grow_at)
        return 0;
    if (lt_rehash(t, t->cap < LT_SMALL_CAP ? t->cap * 2 : t->cap + t->cap / 2) == 0)
        return 0;
    return t->count + 2 < t->cap ? 0 : -1;
}

/* ---- wide map ------------------------------------------------------------- */

static inline uint64_t wm_home(const wide_map *m, uint64_t key)
{
    return (key * FIB) >> 40 & m->mask;
}

static wide_ent *wm_find(const wide_map *m, uint64_t key)
{
    if (!m->e || !key) /* 0 marks empty entries: never a key */
        return NULL;
    for (uint64_t i = wm_home(m, key);; i = (i + 1) & m->mask) {
        if (m->e[i].key == key)
            return &m->e[i];
        if (!m->e[i].key)
            return NULL;
    }
}

/* Guarantees that one insert will not need memory. */
static int wm_reserve(wide_map *m)
{
    uint64_t cap = m->e ? m->mask + 1 : 0;
    if ((m->count + 1) * 2 <= cap)
        return 0;
    uint64_t ncap = cap ? cap * 2 : 16;
    wide_ent *ne = calloc(ncap, sizeof *ne);
    if (!ne)
        return -1;
    wide_map nm = {ne, ncap - 1, m->count};
    for (uint64_t k = 0; k < cap; k++) {
        if (!m->e[k].key)
            continue;
        uint64_t i = wm_home(&nm, m->e[k].key);
        while (ne[i].key)
            i = (i + 1) & nm.mask;
        ne[i] = m->e[k];
    }
    free(m->e);
    *m = nm;
    return 0;
}

/* Inserts or overwrites; wm_reserve must have succeeded first. */
static void wm_put(wide_map *m, uint64_t key, uint64_t size, uint32_t stack)
{
    uint64_t i = wm_home(m, key);
    while (m->e[i].key && m->e[i].key != key)
        i = (i + 1) & m->mask;
    if (!m->e[i].key)
        m->count++;
    m->e[i].key = key;
    m->e[i].size = size;
    m->e[i].stack = stack;
}

/* Removes key; returns 1 and its entry in *out if it was present. */
static int wm_take(wide_map *m, uint64_t key, wide_ent *out)
{
    wide_ent *v = wm_find(m, key);
    if (!v)
        return 0;
    if (out)
        *out = *v;
    uint64_t i = (uint64_t)(v - m->e), j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (!m->e[j].key)
            break;
        uint64_t k = wm_home(m, m->e[j].key);
        if (((j - k) & m->mask) < ((j - i) & m->mask))
            continue; /* home is between the hole and j: stays */
        m->e[i] = m->e[j];
        i = j;
    }
    m->e[i].key = 0;
    m->count--;
    return 1;
}

/* ---- lifetime ------------------------------------------------------------- */

tm_store *tm_store_new(void)
{
    tm_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ring = malloc(SERIES_MAX * sizeof *s->ring);
    s->exe = calloc(1, 1);
    if (!s->ring || !s->exe || lt_init(&s->lt) != 0) {
        free(s->ring);
        free(s->exe);
        free(s);
        return NULL;
    }
    return s;
}

void tm_store_free(tm_store *s)
{
    if (!s)
        return;
    free(s->lt.slot);
    free(s->big.e);
    free(s->pending.e);
    free(s->agg);
    free(s->def);
    free(s->refs);
    free(s->ipi);
    free(s->ipi_hash);
    for (uint32_t i = 0; i < s->nmods; i++)
        free(s->mods[i]);
    free(s->mods);
    free(s->mod_gone);
    free(s->mod_by_id);
    free(s->iv);
    free(s->exe);
    free(s->exec_path);
    free(s->ring);
    arena_free(&s->frames);
    arena_free(&s->tmp);
    free(s->scratch);
    free(s);
}

/* ---- blocks ---------------------------------------------------------------- */

static inline void note_increase(tm_store *s, uint64_t size)
{
    s->current += size;
    if (s->current > s->peak)
        s->peak = s->current;
    s->blocks++;
}

/* Size of the block in sl, taking it out of the big map if it lives there. */
static inline uint64_t slot_take_size(tm_store *s, const lt_slot *sl)
{
    if (sl->size != LT_BIG_SIZE)
        return sl->size;
    wide_ent e;
    return wm_take(&s->big, sl->ptr, &e) ? e.size : LT_BIG_SIZE;
}

/* Subtracts the block in sl from its stack and the totals (the slot itself
 * is left for the caller to reuse or delete). */
static inline void retire(tm_store *s, const lt_slot *sl, uint64_t size)
{
    stack_agg *a = &s->agg[sl->stack];
    a->live_bytes -= size;
    a->live_blocks--;
    s->current -= size;
    s->blocks--;
}

/* Puts a live block in the table; a block still live at the same address is
 * a free the hook did not see: it is retired first.  The caller has checked
 * the stack id.  Returns 0 or -1 (out of memory, nothing changed). */
static int insert_block(tm_store *s, uint64_t ptr, uint64_t size, uint32_t stack)
{
    if (lt_reserve(&s->lt) != 0)
        return -1;
    if (size >= LT_BIG_SIZE && wm_reserve(&s->big) != 0)
        return -1;
    lt_slot *sl = lt_probe(&s->lt, ptr);
    if (sl->ptr == ptr) {
        retire(s, sl, slot_take_size(s, sl));
        s->missed_frees++;
    } else {
        sl->ptr = ptr;
        s->lt.count++;
    }
    if (size >= LT_BIG_SIZE) {
        sl->size = LT_BIG_SIZE;
        wm_put(&s->big, ptr, size, stack);
    } else {
        sl->size = (uint32_t)size;
    }
    sl->stack = stack;
    stack_agg *a = &s->agg[stack];
    a->live_bytes += size;
    a->live_blocks++;
    note_increase(s, size);
    return 0;
}

static inline void count_allocation(tm_store *s, uint64_t size, uint32_t stack)
{
    stack_agg *a = &s->agg[stack];
    a->total_bytes += size;
    a->total_count++;
    s->allocations++;
    s->allocated_bytes += size;
}

static inline int stack_ok(const tm_store *s, uint32_t stack)
{
    return stack < s->stack_cap && s->agg[stack].defined;
}

static inline __attribute__((always_inline)) int on_alloc(tm_store *s, const tm_wire_rec *r,
                                                          tm_err *err)
{
    uint32_t stack = r->u.alloc.stack_id;
    if (!stack_ok(s, stack))
        return tm_err_set(err, TM_E_FORMAT, "ALLOC names stack %u, which was never defined", stack);
    if (!r->u.alloc.ptr)
        return 0; /* a failed allocation: nothing is live */
    if (r->u.alloc.size >= MAX_BLOCK_SIZE)
        return tm_err_set(err, TM_E_FORMAT, "ALLOC of %llu bytes is impossible",
                          (unsigned long long)r->u.alloc.size);
    /* The common case inline, as insert_block + count_allocation do it: a
     * size that fits a slot, a table with room, an address not live. */
    uint64_t ptr = r->u.alloc.ptr, size = r->u.alloc.size;
    if (__builtin_expect(size < LT_BIG_SIZE && s->lt.count < s->lt.grow_at, 1)) {
        lt_slot *sl = lt_probe(&s->lt, ptr);
        if (__builtin_expect(sl->ptr == 0, 1)) {
            sl->ptr = ptr;
            sl->size = (uint32_t)size;
            sl->stack = stack;
            s->lt.count++;
            stack_agg *a = &s->agg[stack];
            a->live_bytes += size;
            a->live_blocks++;
            a->total_bytes += size;
            a->total_count++;
            note_increase(s, size);
            s->allocations++;
            s->allocated_bytes += size;
            return 0;
        }
    }
    if (insert_block(s, r->u.alloc.ptr, r->u.alloc.size, stack) != 0)
        return tm_err_set(err, TM_E_NOMEM, "out of memory growing the live table");
    count_allocation(s, r->u.alloc.size, stack);
    return 0;
}

static inline __attribute__((always_inline)) int on_free(tm_store *s, const tm_wire_rec *r,
                                                         tm_err *err)
{
    uint64_t ptr = r->u.free.ptr;
    if (!ptr)
        return 0;
    lt_slot *sl = lt_probe(&s->lt, ptr);
    if (sl->ptr != ptr) {
        /* a REALLOC_PRE is counted by the REALLOC that follows it */
        if (r->u.free.kind != TM_FREE_REALLOC_PRE)
            s->unknown_frees++;
        return 0;
    }
    if (r->u.free.kind == TM_FREE_REALLOC_PRE && wm_reserve(&s->pending) != 0)
        return tm_err_set(err, TM_E_NOMEM, "out of memory for a pending realloc");
    uint64_t size = slot_take_size(s, sl);
    uint32_t stack = sl->stack;
    retire(s, sl, size);
    lt_delete(&s->lt, sl);
    if (r->u.free.kind == TM_FREE_REALLOC_PRE)
        wm_put(&s->pending, ptr, size, stack); /* counted as a free at REALLOC */
    else
        s->frees++;
    return 0;
}

static int on_realloc(tm_store *s, const tm_wire_rec *r, tm_err *err)
{
    uint32_t stack = r->u.realloc.stack_id;
    uint64_t nptr = r->u.realloc.new_ptr, size = r->u.realloc.size;
    if (nptr && !stack_ok(s, stack))
        return tm_err_set(err, TM_E_FORMAT, "REALLOC names stack %u, which was never defined",
                          stack);
    if (nptr && size >= MAX_BLOCK_SIZE)
        return tm_err_set(err, TM_E_FORMAT, "REALLOC to %llu bytes is impossible",
                          (unsigned long long)size);
    /* reserve before changing anything, so an error leaves the store as it was */
    if (nptr && (lt_reserve(&s->lt) != 0 || (size >= LT_BIG_SIZE && wm_reserve(&s->big) != 0)))
        return tm_err_set(err, TM_E_NOMEM, "out of memory growing the live table");
    if (wm_take(&s->pending, r->u.realloc.old_ptr, NULL))
        s->frees++;
    else if (r->u.realloc.old_ptr) /* realloc(NULL, n) comes as an ALLOC */
        s->unknown_frees++;
    if (nptr) {
        (void)insert_block(s, nptr, size, stack); /* cannot fail: reserved */
        count_allocation(s, size, stack);
    }
    return 0;
}

static int on_realloc_failed(tm_store *s, const tm_wire_rec *r, tm_err *err)
{
    wide_ent e;
    wide_ent *v = wm_find(&s->pending, r->u.realloc_failed.ptr);
    if (!v)
        return 0;
    e = *v;
    if (insert_block(s, e.key, e.size, e.stack) != 0)
        return tm_err_set(err, TM_E_NOMEM, "out of memory growing the live table");
    wm_take(&s->pending, e.key, NULL);
    return 0;
}

/* ---- stacks ----------------------------------------------------------------- */

static int grow_stacks(tm_store *s, uint32_t id)
{
    if (id < s->stack_cap)
        return 0;
    uint64_t cap = s->stack_cap ? s->stack_cap : 1024;
    while (cap <= id)
        cap *= 2;
    stack_agg *a = realloc(s->agg, cap * sizeof *a);
    if (!a)
        return -1;
    s->agg = a;
    stack_def *d = realloc(s->def, cap * sizeof *d);
    if (!d)
        return -1;
    s->def = d;
    memset(a + s->stack_cap, 0, (cap - s->stack_cap) * sizeof *a);
    memset(d + s->stack_cap, 0, (cap - s->stack_cap) * sizeof *d);
    s->stack_cap = (uint32_t)cap;
    return 0;
}

static int cmp_iv(const void *a, const void *b)
{
    const seg_iv *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->mod < y->mod ? -1 : x->mod > y->mod;
}

/* Rebuilds the sorted interval list of the segments of live modules. */
static int rebuild_iv(tm_store *s)
{
    uint32_t n = 0;
    for (uint32_t m = 0; m < s->nmods; m++)
        if (!s->mod_gone[m])
            n += s->mods[m]->nseg;
    if (n > s->iv_cap) {
        seg_iv *v = realloc(s->iv, n * sizeof *v);
        if (!v)
            return -1;
        s->iv = v;
        s->iv_cap = n;
    }
    n = 0;
    for (uint32_t m = 0; m < s->nmods; m++) {
        if (s->mod_gone[m])
            continue;
        const tm_module *md = s->mods[m];
        for (uint32_t k = 0; k < md->nseg; k++) {
            if (!md->seg[k].memsz)
                continue;
            seg_iv *v = &s->iv[n++];
            v->lo = md->load_bias + md->seg[k].vaddr;
            v->hi = v->lo + md->seg[k].memsz;
            v->mod = m;
        }
    }
    if (n) /* qsort's array may not be NULL, even for 0 elements */
        qsort(s->iv, n, sizeof *s->iv, cmp_iv);
    s->iv_overlap = 0;
    uint64_t maxhi = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (k && s->iv[k].lo < maxhi)
            s->iv_overlap = 1;
        if (s->iv[k].hi > maxhi)
            maxhi = s->iv[k].hi;
    }
    s->niv = n;
    s->iv_dirty = 0;
    return 0;
}

/* The live module containing ip now, or NO_MOD. */
static uint32_t module_of(const tm_store *s, uint64_t ip)
{
    uint32_t lo = 0, hi = s->niv; /* first interval with lo > ip */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->iv[mid].lo <= ip)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!s->iv_overlap)
        return lo && ip < s->iv[lo - 1].hi ? s->iv[lo - 1].mod : NO_MOD;
    /* overlapping segments (a stream that forgot a MODULE_GONE): the module
     * loaded last wins */
    uint32_t best = NO_MOD;
    for (uint32_t k = 0; k < lo; k++)
        if (ip < s->iv[k].hi && (best == NO_MOD || s->iv[k].mod > best))
            best = s->iv[k].mod;
    return best;
}

static inline uint64_t ipi_hash(uint64_t ip, uint32_t mod)
{
    return (ip ^ ((uint64_t)mod << 48 | mod)) * FIB;
}

static int ipi_grow_hash(tm_store *s)
{
    uint32_t cap = s->ipi_hash ? (s->ipi_hash_mask + 1) * 2 : 1024;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h)
        return -1;
    for (uint32_t k = 0; k < s->nipi; k++) {
        uint32_t i = (uint32_t)(ipi_hash(s->ipi[k].ip, s->ipi[k].mod) >> 32) & (cap - 1);
        while (h[i])
            i = (i + 1) & (cap - 1);
        h[i] = k + 1;
    }
    free(s->ipi_hash);
    s->ipi_hash = h;
    s->ipi_hash_mask = cap - 1;
    return 0;
}

/* Index of the ipinfo for (ip, mod), created if new; UINT32_MAX when out of memory. */
static uint32_t ipi_intern(tm_store *s, uint64_t ip, uint32_t mod)
{
    if (!s->ipi_hash || (uint64_t)(s->nipi + 1) * 2 > (uint64_t)s->ipi_hash_mask + 1)
        if (ipi_grow_hash(s) != 0)
            return UINT32_MAX;
    uint32_t i = (uint32_t)(ipi_hash(ip, mod) >> 32) & s->ipi_hash_mask;
    while (s->ipi_hash[i]) {
        const ipinfo *p = &s->ipi[s->ipi_hash[i] - 1];
        if (p->ip == ip && p->mod == mod)
            return s->ipi_hash[i] - 1;
        i = (i + 1) & s->ipi_hash_mask;
    }
    if (s->nipi == s->ipi_cap) {
        uint32_t cap = s->ipi_cap ? s->ipi_cap * 2 : 1024;
        ipinfo *v = realloc(s->ipi, cap * sizeof *v);
        if (!v)
            return UINT32_MAX;
        s->ipi = v;
        s->ipi_cap = cap;
    }
    ipinfo *p = &s->ipi[s->nipi];
    memset(p, 0, sizeof *p);
    p->ip = ip;
    p->mod = mod;
    s->ipi_hash[i] = s->nipi + 1;
    return s->nipi++;
}

static int on_stack(tm_store *s, const tm_wire_rec *r, tm_err *err)
{
    uint32_t id = r->u.stack.stack_id;
    uint16_t depth = r->u.stack.depth;
    if (id >= MAX_STACK_ID || id > s->stacks + MAX_STACK_ID_SKIP)
        return tm_err_set(err, TM_E_FORMAT, "STACK id %u is out of range (%llu stacks defined)", id,
                          (unsigned long long)s->stacks);
    if (stack_ok(s, id))
        return tm_err_set(err, TM_E_FORMAT, "STACK redefines stack %u", id);
    if (grow_stacks(s, id) != 0)
        return tm_err_set(err, TM_E_NOMEM, "out of memory for stack %u", id);
    if (s->nrefs + depth > s->refs_cap) {
        uint64_t cap = s->refs_cap ? s->refs_cap : 4096;
        while (cap < s->nrefs + depth)
            cap *= 2;
        uint32_t *v = realloc(s->refs, cap * sizeof *v);
        if (!v)
            return tm_err_set(err, TM_E_NOMEM, "out of memory for stack %u", id);
        s->refs = v;
        s->refs_cap = cap;
    }
    if (s->iv_dirty && rebuild_iv(s) != 0)
        return tm_err_set(err, TM_E_NOMEM, "out of memory for the module map");
    /* Attribute each ip to the module that holds it now: a later dlclose and
     * a dlopen of another object at the same address must not change it. */
    for (unsigned k = 0; k < depth; k++) {
        uint64_t ip = tm_wire_stack_ip(r, k);
        uint32_t x = ipi_intern(s, ip, module_of(s, ip));
        if (x == UINT32_MAX)
            return tm_err_set(err, TM_E_NOMEM, "out of memory for stack %u", id);
        s->refs[s->nrefs + k] = x;
    }
    stack_def *d = &s->def[id];
    d->ref_off = s->nrefs;
    d->depth = depth;
    d->flags = r->u.stack.flags;
    s->nrefs += depth;
    s->agg[id].defined = 1;
    s->stacks++;
    return 0;
}

/* ---- modules ---------------------------------------------------------------- */

static int on_module(tm_store *s, const tm_wire_rec *r, tm_err *err)
{
    uint32_t id = r->u.module.id;
    if (id >= MAX_MODULE_ID)
        return tm_err_set(err, TM_E_FORMAT, "MODULE id %u is out of range", id);
    if (id >= s->mod_by_id_cap) {
        uint32_t cap = s->mod_by_id_cap ? s->mod_by_id_cap : 64;
        while (cap <= id)
            cap *= 2;
        uint32_t *v = realloc(s->mod_by_id, cap * sizeof *v);
        if (!v)
            return tm_err_set(err, TM_E_NOMEM, "out of memory for module %u", id);
        memset(v + s->mod_by_id_cap, 0, (cap - s->mod_by_id_cap) * sizeof *v);
        s->mod_by_id = v;
        s->mod_by_id_cap = cap;
    }
    if (s->nmods == s->mods_cap) {
        uint32_t cap = s->mods_cap ? s->mods_cap * 2 : 64;
        tm_module **v = realloc(s->mods, cap * sizeof *v);
        if (!v)
            return tm_err_set(err, TM_E_NOMEM, "out of memory for module %u", id);
        s->mods = v;
        uint8_t *g = realloc(s->mod_gone, cap);
        if (!g)
            return tm_err_set(err, TM_E_NOMEM, "out of memory for module %u", id);
        s->mod_gone = g;
        s->mods_cap = cap;
    }
    /* the record and its path in one block, so the path lives as long */
    tm_module *m = calloc(1, sizeof *m + r->u.module.path_len + 1);
    if (!m)
        return tm_err_set(err, TM_E_NOMEM, "out of memory for module %u", id);
    char *path = (char *)(m + 1);
    memcpy(path, r->u.module.path, r->u.module.path_len);
    m->id = id;
    m->load_bias = r->u.module.load_bias;
    m->path = path;
    m->build_id_len = r->u.module.build_id_len;
    memcpy(m->build_id, r->u.module.build_id, m->build_id_len);
    m->nseg = r->u.module.nseg;
    for (unsigned k = 0; k < m->nseg; k++)
        tm_wire_module_seg(r, k, &m->seg[k]);
    /* A repeated id replaces the mapping for new stacks; stacks recorded
     * before keep the record they were attributed to. */
    uint32_t prev = s->mod_by_id[id];
    if (prev)
        s->mod_gone[prev - 1] = 1;
    s->mods[s->nmods] = m;
    s->mod_gone[s->nmods] = 0;
    s->mod_by_id[id] = ++s->nmods;
    s->iv_dirty = 1;
    return 0;
}

static void on_module_gone(tm_store *s, uint32_t id)
{
    if (id < s->mod_by_id_cap && s->mod_by_id[id]) {
        s->mod_gone[s->mod_by_id[id] - 1] = 1;
        s->iv_dirty = 1;
    }
}

const tm_module *tm_store_module(const tm_store *s, uint32_t id)
{
    if (id >= s->mod_by_id_cap || !s->mod_by_id[id])
        return NULL;
    return s->mods[s->mod_by_id[id] - 1];
}

/* ---- other records ------------------------------------------------------------ */

static char *dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

static int on_hello(tm_store *s, const tm_wire_rec *r, tm_err *err)
{
    char *exe = dup_n(r->u.hello.exe, r->u.hello.exe_len);
    if (!exe)
        return tm_err_set(err, TM_E_NOMEM, "out of memory");
    free(s->exe);
    s->exe = exe;
    s->pid = r->u.hello.pid;
    s->ppid = r->u.hello.ppid;
    s->max_frames = r->u.hello.max_frames;
    return 0;
}

static void on_tick(tm_store *s, const tm_wire_rec *r)
{
    s->time_ns = r->u.tick.monotonic_ns;
    s->rss = r->u.tick.rss_bytes;
    tm_sample *x = &s->ring[(s->ring_head + s->ring_n) % SERIES_MAX];
    if (s->ring_n < SERIES_MAX)
        s->ring_n++;
    else
        s->ring_head = (s->ring_head + 1) % SERIES_MAX;
    x->time_ns = s->time_ns;
    x->current = s->current;
    x->rss = s->rss;
    x->allocations = s->allocations;
}

int tm_store_apply(tm_store *s, const tm_wire_rec *r, tm_err *err)
{
    /* the two records of nearly every event first, before the jump table */
    if (__builtin_expect(r->type == TM_REC_FREE, 1)) {
        s->exec_last = 0;
        return on_free(s, r, err);
    }
    if (__builtin_expect(r->type == TM_REC_ALLOC, 1)) {
        s->exec_last = 0;
        return on_alloc(s, r, err);
    }
    /* An EXEC followed by more events was an exec that failed. */
    if (r->type != TM_REC_TICK)
        s->exec_last = r->type == TM_REC_EXEC;
    switch (r->type) {
    case TM_REC_ALLOC:
        return on_alloc(s, r, err);
    case TM_REC_FREE:
        return on_free(s, r, err);
    case TM_REC_REALLOC:
        return on_realloc(s, r, err);
    case TM_REC_REALLOC_FAILED:
        return on_realloc_failed(s, r, err);
    case TM_REC_STACK:
        return on_stack(s, r, err);
    case TM_REC_MODULE:
        return on_module(s, r, err);
    case TM_REC_MODULE_GONE:
        on_module_gone(s, r->u.module_gone.id);
        return 0;
    case TM_REC_HELLO:
        return on_hello(s, r, err);
    case TM_REC_TICK:
        on_tick(s, r);
        return 0;
    case TM_REC_FORK:
        s->forks++;
        s->last_child = r->u.fork.child_pid;
        return 0;
    case TM_REC_EXEC: {
        char *p = dup_n(r->u.exec.path, r->u.exec.path_len);
        if (!p)
            return tm_err_set(err, TM_E_NOMEM, "out of memory");
        free(s->exec_path);
        s->exec_path = p;
        return 0;
    }
    case TM_REC_END:
        s->ended = 1;
        s->end_reason = r->u.end.reason;
        s->hook_unknown_frees = r->u.end.unknown_frees;
        s->nested_calls = r->u.end.nested_calls;
        s->lost_events = r->u.end.lost_events;
        return 0;
    default:
        return 0; /* PREAMBLE, and record types of a newer minor version */
    }
}

/* ---- totals and series ---------------------------------------------------------- */

void tm_store_totals(const tm_store *s, tm_totals *o)
{
    memset(o, 0, sizeof *o);
    o->current = s->current;
    o->peak = s->peak;
    o->blocks = s->blocks;
    o->allocations = s->allocations;
    o->frees = s->frees;
    o->allocated_bytes = s->allocated_bytes;
    o->unknown_frees = s->unknown_frees;
    o->missed_frees = s->missed_frees;
    o->stacks = s->stacks;
    o->rss = s->rss;
    o->time_ns = s->time_ns;
    o->pid = s->pid;
    o->ppid = s->ppid;
    o->max_frames = s->max_frames;
    o->ended = s->ended;
    o->execd = s->exec_last && !s->ended;
    o->end_reason = s->end_reason;
    o->hook_unknown_frees = s->hook_unknown_frees;
    o->nested_calls = s->nested_calls;
    o->lost_events = s->lost_events;
}

void tm_store_reset_peak(tm_store *s)
{
    s->peak = s->current;
}

const char *tm_store_exe(const tm_store *s)
{
    return s->exe;
}

size_t tm_store_series(const tm_store *s, tm_sample *out, size_t max)
{
    size_t n = s->ring_n < max ? s->ring_n : max;
    size_t first = s->ring_head + (s->ring_n - n);
    for (size_t k = 0; k < n; k++)
        out[k] = s->ring[(first + k) % SERIES_MAX];
    return n;
}

/* ---- snapshots -------------------------------------------------------------------- */

tm_snapshot *tm_store_snapshot(const tm_store *s)
{
    tm_snapshot *snap = calloc(1, sizeof *snap);
    if (!snap)
        return NULL;
    /* one pass: every stack with live blocks is a defined one */
    size_t cap = s->stacks < s->stack_cap ? (size_t)s->stacks : s->stack_cap;
    snap->e = malloc((cap ? cap : 1) * sizeof *snap->e);
    if (!snap->e) {
        free(snap);
        return NULL;
    }
    size_t k = 0;
    for (uint32_t id = 0; id < s->stack_cap && k < cap; id++) {
        const stack_agg *a = &s->agg[id];
        if (!a->live_blocks)
            continue;
        snap->e[k].bytes = a->live_bytes;
        snap->e[k].blocks = a->live_blocks;
        snap->e[k].id = id;
        k++;
    }
    snap->n = k;
    snap->s = (tm_store *)s; /* queries fill the store's symbolization cache */
    /* process-wide, so a snapshot freed and another allocated at its
     * address are never taken for one another */
    static uint64_t serials;
    snap->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
    tm_store_totals(s, &snap->totals);
    return snap;
}

void tm_snapshot_free(tm_snapshot *snap)
{
    if (!snap)
        return;
    free(snap->e);
    free(snap);
}

const tm_totals *tm_snapshot_totals(const tm_snapshot *snap)
{
    return &snap->totals;
}
