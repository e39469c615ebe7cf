/* query.c - symbolized views of the store: frames per stack (through the
 * resolver, cached per distinct return address), sites, filters, and
 * tracemalloc's statistics and compare_to over snapshots. */
#define _GNU_SOURCE /* qsort_r */
#include "store.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* The dynamic loader lives in /lib64 on x86-64 (PT_INTERP names
 * /lib64/ld-linux-x86-64.so.2): blocks it allocates for pthread_create's TLS
 * or for dlopen belong to the user's call, not to rtld-malloc.h. */
const char *const tm_default_skip[] = {"/usr/include/*",     "/usr/lib/*", "/lib/*",
                                       "/usr/lib64/*",       "/lib64/*",   "/usr/libexec/*",
                                       "*/libtmtop-hook.so", NULL};

/* Deepest inline expansion asked of the resolver for one address. */
#define MAX_INLINE 64

/* What one query learns about one frame, computed at most once per query. */
typedef struct qframe {
    uint64_t khash;
    uint32_t fdone, fmatch; /* memo of the first 32 filters: evaluated, matched */
    uint8_t sys, have_hash;
} qframe;

/* One ipinfo as seen by the current query (frames == NULL: not loaded yet). */
typedef struct qip {
    const tm_frame *frames;
    qframe *info;
    uint32_t n;
    int final; /* frames are the resolver's final answer */
} qip;

/* Glob results per string within one query.  The resolver interns its
 * strings, so a few hundred distinct file and module pointers stand for
 * every frame: each (string, glob set) pair goes through fnmatch once. */
typedef struct gmemo {
    const char *str;
    uint32_t tag; /* 0: the skip globs; i + 1: filter i's pattern */
    int val;
} gmemo;

typedef struct qctx {
    tm_store *s;
    const tm_resolver *res;
    tm_key key;
    tm_key fkey; /* identity of one frame: filename for that key, else lineno */
    int cumulative, raw_site, need_all;
    const tm_filter *filters;
    size_t nfilters;
    const char *const *skip;
    size_t nskip;
    qip *qi;
    /* the stack being looked at, innermost first */
    const tm_frame **fp;
    qframe **fq;
    size_t nf, fcap;
    qframe unknown_q;
    gmemo *memo;
    size_t memo_mask, memo_n;
    int nomem;
    int stack_final; /* load_stack: every frame it loaded was final */
} qctx;

/* A stack with no captured address still groups somewhere: one frame with
 * nothing known. */
static const tm_frame unknown_frame;

/* ---- context ----------------------------------------------------------------- */

static const tm_query default_query = {TM_KEY_LINENO, 0, NULL, 0, 0, NULL, 0};

static int check_query(const tm_query *q, tm_err *err)
{
    if (q->key != TM_KEY_LINENO && q->key != TM_KEY_FILENAME && q->key != TM_KEY_TRACEBACK)
        return tm_err_set(err, TM_E_USAGE, "unknown statistics key %d", (int)q->key);
    if (q->cumulative && q->key == TM_KEY_TRACEBACK)
        return tm_err_set(err, TM_E_USAGE,
                          "cumulative statistics need the lineno or filename key, not traceback");
    return 0;
}

/* The cache holds one resolver's answers: another resolver starts it over. */
static void bind_resolver(tm_store *s, const tm_resolver *res)
{
    int have = res != NULL;
    if (have == s->have_res && (!have || (res->resolve == s->res_fn && res->ctx == s->res_ctx)))
        return;
    arena_reset(&s->frames);
    for (uint32_t k = 0; k < s->nipi; k++) {
        s->ipi[k].cached = 0;
        s->ipi[k].frames = NULL;
    }
    s->have_res = have;
    s->res_fn = have ? res->resolve : NULL;
    s->res_ctx = have ? res->ctx : NULL;
}

static int ctx_init(qctx *c, tm_store *s, const tm_query *q, const tm_resolver *res)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    c->res = res;
    c->key = q->key;
    c->fkey = q->key == TM_KEY_FILENAME ? TM_KEY_FILENAME : TM_KEY_LINENO;
    c->cumulative = q->cumulative;
    c->raw_site = q->raw_site;
    c->filters = q->filters;
    c->nfilters = q->filters ? q->nfilters : 0;
    c->skip = q->skip ? q->skip : tm_default_skip;
    c->nskip = q->skip ? q->nskip : 0;
    if (!c->nskip)
        while (c->skip[c->nskip])
            c->nskip++;
    c->need_all = c->key == TM_KEY_TRACEBACK || c->cumulative;
    for (size_t i = 0; i < c->nfilters; i++)
        c->need_all |= c->filters[i].all_frames != 0;
    bind_resolver(s, res);
    arena_reset(&s->tmp);
    c->qi = calloc(s->nipi ? s->nipi : 1, sizeof *c->qi);
    return c->qi ? 0 : -1;
}

static void ctx_fini(qctx *c)
{
    free(c->memo);
    free(c->qi);
    free(c->fp);
    free(c->fq);
}

/* ---- frames ----------------------------------------------------------------------- */

static int glob_eval(const qctx *c, const char *str, uint32_t tag)
{
    if (tag) {
        const char *pat = c->filters[tag - 1].pattern;
        return fnmatch(pat ? pat : "*", str, 0) == 0;
    }
    for (size_t i = 0; i < c->nskip && c->skip[i]; i++)
        if (fnmatch(c->skip[i], str, 0) == 0)
            return 1;
    return 0;
}

static size_t memo_slot(const qctx *c, const char *str, uint32_t tag)
{
    uint64_t h = ((uint64_t)(uintptr_t)str ^ (uint64_t)tag << 56) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & c->memo_mask;
}

/* Does str match the skip globs (tag 0) or filter tag - 1's pattern? */
static int glob_match(qctx *c, const char *str, uint32_t tag)
{
    if (c->memo) {
        for (size_t i = memo_slot(c, str, tag); c->memo[i].str; i = (i + 1) & c->memo_mask)
            if (c->memo[i].str == str && c->memo[i].tag == tag)
                return c->memo[i].val;
    }
    int val = glob_eval(c, str, tag);
    if (!c->memo || (c->memo_n + 1) * 2 > c->memo_mask + 1) {
        size_t cap = c->memo ? (c->memo_mask + 1) * 2 : 256;
        gmemo *v = calloc(cap, sizeof *v);
        if (!v)
            return val; /* no memo: still correct, only slower */
        gmemo *old = c->memo;
        size_t oldcap = old ? c->memo_mask + 1 : 0;
        c->memo = v;
        c->memo_mask = cap - 1;
        for (size_t k = 0; k < oldcap; k++) {
            if (!old[k].str)
                continue;
            size_t i = memo_slot(c, old[k].str, old[k].tag);
            while (v[i].str)
                i = (i + 1) & c->memo_mask;
            v[i] = old[k];
        }
        free(old);
    }
    size_t i = memo_slot(c, str, tag);
    while (c->memo[i].str)
        i = (i + 1) & c->memo_mask;
    c->memo[i] = (gmemo){str, tag, val};
    c->memo_n++;
    return val;
}

static int is_system(qctx *c, const tm_frame *f)
{
    return (f->file && glob_match(c, f->file, 0)) || (f->module && glob_match(c, f->module, 0));
}

/* The frames of ipinfo idx for this query: cached, or asked of the resolver. */
static qip *load_ip(qctx *c, uint32_t idx)
{
    qip *x = &c->qi[idx];
    if (x->frames)
        return x;
    tm_store *s = c->s;
    ipinfo *p = &s->ipi[idx];
    const tm_frame *frames = p->frames;
    uint32_t n = p->nframes;
    if (!p->cached) {
        const tm_module *mod = p->mod == NO_MOD ? NULL : s->mods[p->mod];
        tm_frame buf[MAX_INLINE];
        memset(buf, 0, sizeof buf);
        int got = c->res ? c->res->resolve(c->res->ctx, mod, p->ip, buf, MAX_INLINE) : 0;
        int final = c->res != NULL;
        if (got < 1) {
            memset(buf, 0, sizeof buf[0]);
            buf[0].module = mod ? mod->path : NULL;
            buf[0].address = p->ip;
            buf[0].offset = mod ? p->ip - mod->load_bias : p->ip;
            got = 1;
        }
        if (got > MAX_INLINE)
            got = MAX_INLINE;
        for (int k = 0; k < got; k++)
            if (buf[k].flags & TM_FRAME_PENDING)
                final = 0;
        tm_frame *dst = arena_alloc(final ? &s->frames : &s->tmp, (size_t)got * sizeof *dst);
        if (!dst) {
            c->nomem = 1;
            return NULL;
        }
        memcpy(dst, buf, (size_t)got * sizeof *dst);
        frames = dst;
        n = (uint32_t)got;
        if (final) {
            p->frames = dst;
            p->nframes = (uint16_t)got;
            p->cached = 1;
        }
    }
    qframe *info = arena_alloc(&s->tmp, n * sizeof *info);
    if (!info) {
        c->nomem = 1;
        return NULL;
    }
    memset(info, 0, n * sizeof *info);
    for (uint32_t k = 0; k < n; k++)
        info[k].sys = (uint8_t)is_system(c, &frames[k]);
    x->frames = frames;
    x->info = info;
    x->n = n;
    x->final = p->cached;
    return x;
}

/* Assembles stack id's frames into c->fp/c->fq and finds its site.  Without
 * need_all it stops at the site, so outer frames are never resolved for a
 * plain lineno or filename query.  Returns the site index, or -1. */
static long load_stack(qctx *c, uint32_t id)
{
    tm_store *s = c->s;
    const stack_def *d = &s->def[id];
    int found = 0;
    size_t site = 0;
    c->nf = 0;
    c->stack_final = 1;
    for (unsigned k = 0; k < d->depth; k++) {
        qip *x = load_ip(c, s->refs[d->ref_off + k]);
        if (!x)
            return -1;
        c->stack_final &= x->final;
        if (c->nf + x->n > c->fcap) {
            size_t cap = c->fcap ? c->fcap * 2 : 256;
            while (cap < c->nf + x->n)
                cap *= 2;
            const tm_frame **fp = realloc(c->fp, cap * sizeof *fp);
            if (!fp)
                goto nomem;
            c->fp = fp;
            qframe **fq = realloc(c->fq, cap * sizeof *fq);
            if (!fq)
                goto nomem;
            c->fq = fq;
            c->fcap = cap;
        }
        for (uint32_t j = 0; j < x->n; j++) {
            if (!found && !c->raw_site && !x->info[j].sys) {
                found = 1;
                site = c->nf;
            }
            c->fp[c->nf] = &x->frames[j];
            c->fq[c->nf] = &x->info[j];
            c->nf++;
        }
        if (!c->need_all && (c->raw_site || found))
            break;
    }
    if (!c->nf) {
        if (!c->fcap) {
            c->fp = malloc(16 * sizeof *c->fp);
            c->fq = malloc(16 * sizeof *c->fq);
            if (!c->fp || !c->fq)
                goto nomem;
            c->fcap = 16;
        }
        c->fp[0] = &unknown_frame;
        c->fq[0] = &c->unknown_q;
        c->nf = 1;
    }
    return found ? (long)site : 0; /* every frame is system: the innermost */
nomem:
    c->nomem = 1;
    return -1;
}

/* ---- keys ------------------------------------------------------------------------
 * A frame's identity under a key: its file and line (filename: file only);
 * without a file, the function in its module; without either, the module and
 * the offset in it. */
typedef struct fkey {
    int kind; /* 0 file, 1 function, 2 module */
    const char *s1, *s2;
    uint64_t num;
} fkey;

static fkey frame_key(const tm_frame *f, tm_key key)
{
    fkey k = {0, NULL, NULL, 0};
    if (f->file) {
        k.s1 = f->file;
        k.num = key == TM_KEY_FILENAME ? 0 : f->line;
    } else if (key == TM_KEY_FILENAME) {
        k.kind = 2;
        k.s1 = f->module;
    } else if (f->function) {
        k.kind = 1;
        k.s1 = f->function;
        k.s2 = f->module;
    } else {
        k.kind = 2;
        k.s1 = f->module;
        k.num = f->module ? f->offset : f->address;
    }
    return k;
}

static int strcmp_null(const char *a, const char *b)
{
    if (!a || !b)
        return !a ? (b ? -1 : 0) : 1;
    int r = strcmp(a, b);
    return r < 0 ? -1 : r > 0;
}

/* Total order on frame keys, ascending; 0 exactly when the keys are equal. */
static int frame_key_cmp(const tm_frame *a, const tm_frame *b, tm_key key)
{
    fkey x = frame_key(a, key), y = frame_key(b, key);
    if (x.kind != y.kind)
        return x.kind < y.kind ? -1 : 1;
    int r = strcmp_null(x.s1, y.s1);
    if (!r)
        r = strcmp_null(x.s2, y.s2);
    if (!r && x.num != y.num)
        r = x.num < y.num ? -1 : 1;
    return r;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t str_hash(uint64_t h, const char *s)
{
    if (!s)
        return mix(h, 0x5bd1e995);
    uint64_t x = 0xcbf29ce484222325ull;
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 0x100000001b3ull;
    return mix(h, x);
}

static uint64_t frame_hash(qctx *c, const tm_frame *f, qframe *q)
{
    if (q->have_hash)
        return q->khash;
    fkey k = frame_key(f, c->fkey);
    uint64_t h = mix(0, (uint64_t)k.kind);
    h = str_hash(h, k.s1);
    h = str_hash(h, k.s2);
    q->khash = mix(h, k.num);
    q->have_hash = 1;
    return q->khash;
}

/* ---- filters ------------------------------------------------------------------------ */

static int filter_match(qctx *c, size_t i, const tm_frame *f, qframe *q)
{
    if (i < 32 && (q->fdone >> i & 1))
        return q->fmatch >> i & 1;
    const tm_filter *fl = &c->filters[i];
    int m = (fl->lineno == 0 || f->line == fl->lineno) &&
            glob_match(c, f->file ? f->file : "<unknown>", (uint32_t)i + 1);
    if (i < 32) {
        q->fdone |= 1u << i;
        q->fmatch |= (uint32_t)m << i;
    }
    return m;
}

/* tracemalloc's _apply_filters: kept if an inclusive filter matches (or there
 * is none) and no exclusive filter does.  The stack is loaded in c. */
static int stack_kept(qctx *c, size_t site)
{
    int have_inc = 0, inc_hit = 0;
    for (size_t i = 0; i < c->nfilters; i++) {
        const tm_filter *fl = &c->filters[i];
        if (fl->inclusive && inc_hit)
            continue; /* already kept by an inclusive filter */
        int m = 0;
        if (fl->all_frames) {
            for (size_t k = 0; k < c->nf && !m; k++)
                m = filter_match(c, i, c->fp[k], c->fq[k]);
        } else {
            m = filter_match(c, i, c->fp[site], c->fq[site]);
        }
        if (fl->inclusive) {
            have_inc = 1;
            inc_hit |= m;
        } else if (m) {
            return 0;
        }
    }
    return !have_inc || inc_hit;
}

/* ---- grouping ------------------------------------------------------------------------ */

typedef struct group {
    uint64_t hash, size, count;
    size_t foff;
    uint32_t nf, site;
    int matched;
    uint64_t osize, ocount; /* views: the old side of a diff */
    int pending;            /* views: a frame the row shows is TM_FRAME_PENDING */
} group;

typedef struct gtab {
    tm_key key, fkey;
    group *g;
    size_t n, cap;
    uint32_t *slot; /* group index + 1 */
    size_t mask;
    tm_frame *fr;
    size_t nfr, frcap;
} gtab;

static void gt_free(gtab *t)
{
    free(t->g);
    free(t->slot);
    free(t->fr);
}

static int gt_same(const gtab *t, const group *g, const tm_frame *const *fp, size_t nf)
{
    if (g->nf != nf)
        return 0;
    for (size_t k = 0; k < nf; k++)
        if (frame_key_cmp(&t->fr[g->foff + k], fp[k], t->fkey) != 0)
            return 0;
    return 1;
}

/* The group with this key, or NULL. */
static group *gt_find(const gtab *t, uint64_t hash, const tm_frame *const *fp, size_t nf)
{
    if (!t->slot)
        return NULL;
    for (size_t i = hash & t->mask; t->slot[i]; i = (i + 1) & t->mask) {
        group *g = &t->g[t->slot[i] - 1];
        if (g->hash == hash && gt_same(t, g, fp, nf))
            return g;
    }
    return NULL;
}

static int gt_grow_slots(gtab *t)
{
    size_t cap = t->slot ? (t->mask + 1) * 2 : 1024;
    uint32_t *v = calloc(cap, sizeof *v);
    if (!v)
        return -1;
    for (size_t k = 0; k < t->n; k++) {
        size_t i = t->g[k].hash & (cap - 1);
        while (v[i])
            i = (i + 1) & (cap - 1);
        v[i] = (uint32_t)k + 1;
    }
    free(t->slot);
    t->slot = v;
    t->mask = cap - 1;
    return 0;
}

/* The index of the group of the key fp[0..nf), created (with a copy of the
 * frames and zero sums) if new; -1 when out of memory. */
static long gt_get(gtab *t, uint64_t hash, const tm_frame *const *fp, size_t nf, uint32_t site)
{
    group *g = gt_find(t, hash, fp, nf);
    if (g)
        return g - t->g;
    if (!t->slot || (t->n + 1) * 2 > t->mask + 1)
        if (gt_grow_slots(t) != 0)
            return -1;
    if (t->n == t->cap && tm_grow((void **)&t->g, &t->cap, t->n + 1, sizeof *t->g) != 0)
        return -1;
    if (t->nfr + nf > t->frcap &&
        tm_grow((void **)&t->fr, &t->frcap, t->nfr + nf, sizeof *t->fr) != 0)
        return -1;
    g = &t->g[t->n];
    memset(g, 0, sizeof *g);
    g->hash = hash;
    g->foff = t->nfr;
    g->nf = (uint32_t)nf;
    g->site = site;
    for (size_t k = 0; k < nf; k++) {
        tm_frame *f = &t->fr[t->nfr + k];
        *f = *fp[k];
        if (t->key == TM_KEY_FILENAME) {
            /* one file gathers many lines and functions: keep only the file */
            f->function = NULL;
            f->line = 0;
            f->address = 0;
            f->offset = 0;
        }
        /* the frames a row shows: the first, or a traceback's from its site */
        if ((f->flags & TM_FRAME_PENDING) && (t->key == TM_KEY_TRACEBACK ? k >= site : k == 0))
            g->pending = 1;
    }
    t->nfr += nf;
    size_t i = hash & t->mask;
    while (t->slot[i])
        i = (i + 1) & t->mask;
    t->slot[i] = (uint32_t)t->n + 1;
    return (long)t->n++;
}

/* Adds size/count to the group of the key fp[0..nf), creating it if new. */
static int gt_add(gtab *t, uint64_t hash, const tm_frame *const *fp, size_t nf, uint32_t site,
                  uint64_t size, uint64_t count)
{
    long gi = gt_get(t, hash, fp, nf, site);
    if (gi < 0)
        return -1;
    t->g[gi].size += size;
    t->g[gi].count += count;
    return 0;
}

/* Groups the stacks of snap under the query of c into t. */
static int group_snapshot(qctx *c, const tm_snapshot *snap, gtab *t)
{
    memset(t, 0, sizeof *t);
    t->key = c->key;
    t->fkey = c->fkey;
    for (size_t e = 0; e < snap->n; e++) {
        const snap_ent *en = &snap->e[e];
        long site = load_stack(c, en->id);
        if (site < 0)
            return -1;
        if (c->nfilters && !stack_kept(c, (size_t)site))
            continue;
        if (c->key == TM_KEY_TRACEBACK) {
            uint64_t h = mix(0, c->nf);
            for (size_t k = 0; k < c->nf; k++)
                h = mix(h, frame_hash(c, c->fp[k], c->fq[k]));
            if (gt_add(t, h, c->fp, c->nf, (uint32_t)site, en->bytes, en->blocks) != 0)
                return -1;
        } else {
            /* cumulative: once per frame from the site outward, so a line
             * that recurs in a stack counts as often (tracemalloc does so) */
            size_t last = c->cumulative ? c->nf : (size_t)site + 1;
            for (size_t k = (size_t)site; k < last; k++) {
                uint64_t h = frame_hash(c, c->fp[k], c->fq[k]);
                if (gt_add(t, h, &c->fp[k], 1, 0, en->bytes, en->blocks) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* ---- results ----------------------------------------------------------------------- */

struct tm_stats_priv {
    tm_frame *frames;
};

void tm_stats_free(tm_stats *st)
{
    if (!st)
        return;
    if (st->priv) {
        free(st->priv->frames);
        free(st->priv);
    }
    free(st->v);
    free(st);
}

static tm_stats *stats_new(size_t n, tm_frame *frames)
{
    tm_stats *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->priv = calloc(1, sizeof *st->priv);
    st->v = calloc(n ? n : 1, sizeof *st->v);
    if (!st->priv || !st->v) {
        tm_stats_free(st);
        return NULL;
    }
    st->priv->frames = frames;
    st->n = n;
    return st;
}

/* Keys compare like tracemalloc's Traceback: frame lists from the oldest
 * frame, a prefix before a longer list. */
static int key_cmp(const tm_stat *a, const tm_stat *b, tm_key key)
{
    uint32_t n = a->nframes < b->nframes ? a->nframes : b->nframes;
    for (uint32_t k = 1; k <= n; k++) {
        int r = frame_key_cmp(&a->frames[a->nframes - k], &b->frames[b->nframes - k], key);
        if (r)
            return r;
    }
    return a->nframes < b->nframes ? -1 : a->nframes > b->nframes;
}

#define CMP_DESC(x, y)                                                                             \
    do {                                                                                           \
        if ((x) != (y))                                                                            \
            return (x) > (y) ? -1 : 1;                                                             \
    } while (0)

static int stat_cmp(const void *pa, const void *pb, void *pk)
{
    const tm_stat *a = pa, *b = pb;
    CMP_DESC(a->size, b->size);
    CMP_DESC(a->count, b->count);
    return -key_cmp(a, b, *(const tm_key *)pk);
}

static uint64_t abs64(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static int diff_cmp(const void *pa, const void *pb, void *pk)
{
    const tm_stat *a = pa, *b = pb;
    CMP_DESC(abs64(a->size_diff), abs64(b->size_diff));
    CMP_DESC(a->size, b->size);
    CMP_DESC(abs64(a->count_diff), abs64(b->count_diff));
    CMP_DESC(a->count, b->count);
    return -key_cmp(a, b, *(const tm_key *)pk);
}

static void fill_stat(tm_stat *v, const group *g, const tm_frame *frames)
{
    v->frames = frames;
    v->nframes = g->nf;
    v->site_index = g->site;
    v->size = g->size;
    v->count = g->count;
    v->size_diff = 0;
    v->count_diff = 0;
}

tm_stats *tm_snapshot_statistics(const tm_snapshot *snap, const tm_query *q, const tm_resolver *res,
                                 tm_err *err)
{
    if (!q)
        q = &default_query;
    if (check_query(q, err) != 0)
        return NULL;
    qctx c;
    gtab t;
    if (ctx_init(&c, snap->s, q, res) != 0) {
        ctx_fini(&c);
        tm_err_set(err, TM_E_NOMEM, "out of memory");
        return NULL;
    }
    int rc = group_snapshot(&c, snap, &t);
    ctx_fini(&c);
    tm_stats *st = rc == 0 ? stats_new(t.n, t.fr) : NULL;
    if (!st) {
        gt_free(&t);
        tm_err_set(err, TM_E_NOMEM, "out of memory");
        return NULL;
    }
    t.fr = NULL; /* now owned by st */
    for (size_t i = 0; i < t.n; i++)
        fill_stat(&st->v[i], &t.g[i], st->priv->frames + t.g[i].foff);
    tm_key fkey = t.fkey;
    qsort_r(st->v, st->n, sizeof *st->v, stat_cmp, &fkey);
    gt_free(&t);
    return st;
}

tm_stats *tm_snapshot_compare(const tm_snapshot *now, const tm_snapshot *old, const tm_query *q,
                              const tm_resolver *res, tm_err *err)
{
    if (!q)
        q = &default_query;
    if (check_query(q, err) != 0)
        return NULL;
    qctx c1, c2;
    gtab tn, to;
    int same = now->s == old->s, rc = -1;
    tm_stats *st = NULL;
    memset(&tn, 0, sizeof tn);
    memset(&to, 0, sizeof to);
    memset(&c2, 0, sizeof c2);
    if (ctx_init(&c1, now->s, q, res) == 0 && (same || ctx_init(&c2, old->s, q, res) == 0) &&
        group_snapshot(&c1, now, &tn) == 0 && group_snapshot(same ? &c1 : &c2, old, &to) == 0)
        rc = 0;
    ctx_fini(&c1);
    ctx_fini(&c2);
    if (rc != 0)
        goto nomem;

    /* join: every key of now, then the keys that vanished */
    const tm_frame **tmp = NULL;
    size_t tmpcap = 0, nvan = 0, nfr = tn.nfr;
    for (size_t i = 0; i < tn.n; i++) {
        group *g = &tn.g[i];
        if (g->nf > tmpcap) {
            const tm_frame **v = realloc(tmp, g->nf * sizeof *v);
            if (!v) {
                free(tmp);
                goto nomem;
            }
            tmp = v;
            tmpcap = g->nf;
        }
        for (uint32_t k = 0; k < g->nf; k++)
            tmp[k] = &tn.fr[g->foff + k];
        group *o = gt_find(&to, g->hash, tmp, g->nf);
        if (o)
            o->matched = 1;
        g->matched = o ? (int)(o - to.g) + 1 : 0;
    }
    free(tmp);
    for (size_t i = 0; i < to.n; i++)
        if (!to.g[i].matched) {
            nvan++;
            nfr += to.g[i].nf;
        }
    tm_frame *frames = malloc((nfr ? nfr : 1) * sizeof *frames);
    if (!frames || !(st = stats_new(tn.n + nvan, frames))) {
        free(frames);
        goto nomem;
    }
    if (tn.nfr)
        memcpy(frames, tn.fr, tn.nfr * sizeof *frames);
    size_t n = 0, off = tn.nfr;
    for (size_t i = 0; i < tn.n; i++) {
        const group *g = &tn.g[i];
        tm_stat *v = &st->v[n++];
        fill_stat(v, g, frames + g->foff);
        const group *o = g->matched ? &to.g[g->matched - 1] : NULL;
        v->size_diff = (int64_t)(g->size - (o ? o->size : 0));
        v->count_diff = (int64_t)(g->count - (o ? o->count : 0));
    }
    for (size_t i = 0; i < to.n; i++) {
        const group *o = &to.g[i];
        if (o->matched)
            continue;
        memcpy(frames + off, to.fr + o->foff, o->nf * sizeof *frames);
        tm_stat *v = &st->v[n++];
        fill_stat(v, o, frames + off);
        v->size = 0;
        v->count = 0;
        v->size_diff = -(int64_t)o->size;
        v->count_diff = -(int64_t)o->count;
        off += o->nf;
    }
    tm_key fkey = tn.fkey;
    qsort_r(st->v, st->n, sizeof *st->v, diff_cmp, &fkey);
    gt_free(&tn);
    gt_free(&to);
    return st;
nomem:
    gt_free(&tn);
    gt_free(&to);
    tm_err_set(err, TM_E_NOMEM, "out of memory");
    return NULL;
}

size_t tm_store_stack_frames(tm_store *s, uint32_t stack_id, const tm_query *q,
                             const tm_resolver *res, const tm_frame **frames, uint32_t *site)
{
    *frames = NULL;
    *site = 0;
    if (stack_id >= s->stack_cap || !s->agg[stack_id].defined)
        return 0;
    if (!q)
        q = &default_query;
    qctx c;
    size_t n = 0;
    long st = -1;
    if (ctx_init(&c, s, q, res) == 0) {
        c.need_all = 1;
        st = load_stack(&c, stack_id);
    }
    if (st >= 0 && c.nf > s->scratch_cap) {
        tm_frame *v = realloc(s->scratch, c.nf * sizeof *v);
        if (v) {
            s->scratch = v;
            s->scratch_cap = c.nf;
        } else {
            st = -1;
        }
    }
    if (st >= 0) {
        for (size_t k = 0; k < c.nf; k++)
            s->scratch[k] = *c.fp[k];
        n = c.nf;
        *frames = s->scratch;
        *site = (uint32_t)st;
    }
    ctx_fini(&c);
    return n;
}

/* ---- views -------------------------------------------------------------------------- */

/* What a stack contributes to under the view's query: entries glist[off ..
 * off + n) are group indices (one per frame from the site out when
 * cumulative, so a recurring line counts as often; none when filtered out). */
typedef struct vstack {
    uint32_t off, n;
    uint8_t state; /* VS_* */
} vstack;

enum { VS_UNKNOWN = 0, VS_FINAL, VS_PENDING };

/* A row of the last update: its sums, and its group. */
typedef struct vrow {
    uint64_t size, count, osize, ocount;
    uint32_t g;
} vrow;

/* Per group: the update that last added to it, and its row while that
 * update sums (rows move once they are put in order). */
typedef struct vslot {
    uint32_t gen, row;
} vslot;

/* A row's place in an ordering: its first two sort numbers next to its
 * index, so that most comparisons are integer comparisons on 24 bytes (a
 * window among many rows of equal first number, such as a diff's zeros, would
 * otherwise compare their keys' strings). */
typedef struct vord {
    uint64_t key, key2;
    uint32_t i;
} vord;

/* The old side of a diff summed per group. */
typedef struct vosum {
    uint64_t size, count;
    uint32_t g;
} vosum;

struct tm_view {
    /* what the cached grouping was made under */
    tm_store *s;
    int (*res_fn)(void *, const tm_module *, uint64_t, tm_frame *, int);
    void *res_ctx;
    int have_res, valid;
    tm_key key;
    int cumulative, raw_site;
    tm_filter *filters; /* copies, patterns owned */
    size_t nfilters;
    const char *const *skip;
    char **skip_copy; /* the globs' text, to notice a changed list at the same address */
    size_t nskip;

    gtab t;
    vstack *st;
    uint32_t nst;
    uint32_t *glist;
    size_t nglist, glist_cap, glist_dead;

    /* the last update */
    int diff;
    vrow *rows; /* the rows (groups with something in now, or in old for a diff) */
    size_t nrows, rows_cap, npending;
    size_t nrows_last; /* rows of the previous update, to judge garbage */
    vslot *gen;        /* per group */
    size_t gen_cap;
    uint32_t update;

    /* A diff's old snapshot does not change between redraws: its sums per
     * group are made once, for the snapshot osum_serial, and each update adds
     * them to the rows.  They hold while old's stacks keep their groups: until
     * the view starts over (resets moves) when every stack of old was final
     * (osum_final: those are never regrouped), else until any stack is
     * grouped anew (epoch moves). */
    uint64_t epoch, resets;
    vosum *osum;
    size_t nosum, osum_cap;
    uint64_t osum_serial, osum_epoch, osum_resets;
    int osum_final;

    /* the groups showing a pending frame (a group's flag never changes), so
     * that counting the pending rows does not read every group */
    uint32_t *pg;
    size_t npg, pg_cap, pg_scanned; /* groups [0, pg_scanned) are in pg if pending */

    vord *ord; /* tm_view_rows' scratch for orderings deep in the table */
    size_t ord_cap;
    vord guess_lo, guess_hi; /* see view_order: the range's ends, when guess */
    int guess, guess_diff;
};

tm_view *tm_view_new(void)
{
    return calloc(1, sizeof(tm_view));
}

static void view_forget_query(tm_view *v)
{
    for (size_t i = 0; i < v->nfilters; i++)
        free((char *)v->filters[i].pattern);
    free(v->filters);
    v->filters = NULL;
    v->nfilters = 0;
    for (size_t i = 0; i < v->nskip; i++)
        free(v->skip_copy[i]);
    free(v->skip_copy);
    v->skip_copy = NULL;
    v->nskip = 0;
}

/* Drops every cached grouping; the view answers nothing until updated. */
static void view_reset(tm_view *v)
{
    gt_free(&v->t);
    memset(&v->t, 0, sizeof v->t);
    free(v->st);
    v->st = NULL;
    v->nst = 0;
    v->nglist = v->glist_dead = 0;
    free(v->gen);
    v->gen = NULL;
    v->gen_cap = 0;
    v->nrows = v->npending = v->nrows_last = 0;
    v->valid = 0;
    v->epoch++;
    v->resets++;
    v->npg = v->pg_scanned = 0;
}

void tm_view_free(tm_view *v)
{
    if (!v)
        return;
    view_reset(v);
    view_forget_query(v);
    free(v->glist);
    free(v->rows);
    free(v->osum);
    free(v->ord);
    free(v->pg);
    free(v);
}

/* Whether the cached grouping was made under this query, resolver and store. */
static int view_same(const tm_view *v, const qctx *c, tm_store *s, const tm_resolver *res)
{
    if (!v->valid || v->s != s || v->have_res != (res != NULL))
        return 0;
    if (res && (res->resolve != v->res_fn || res->ctx != v->res_ctx))
        return 0;
    if (v->key != c->key || v->cumulative != c->cumulative || v->raw_site != c->raw_site ||
        v->nfilters != c->nfilters || v->skip != c->skip || v->nskip != c->nskip)
        return 0;
    for (size_t i = 0; i < c->nfilters; i++) {
        const tm_filter *a = &v->filters[i], *b = &c->filters[i];
        if (a->inclusive != b->inclusive || a->lineno != b->lineno ||
            (a->all_frames != 0) != (b->all_frames != 0) ||
            strcmp(a->pattern, b->pattern ? b->pattern : "*") != 0)
            return 0;
    }
    for (size_t i = 0; i < c->nskip; i++)
        if (strcmp(v->skip_copy[i], c->skip[i]) != 0)
            return 0;
    return 1;
}

static int view_remember(tm_view *v, const qctx *c, tm_store *s, const tm_resolver *res)
{
    view_forget_query(v);
    v->s = s;
    v->have_res = res != NULL;
    v->res_fn = res ? res->resolve : NULL;
    v->res_ctx = res ? res->ctx : NULL;
    v->key = c->key;
    v->cumulative = c->cumulative;
    v->raw_site = c->raw_site;
    v->skip = c->skip;
    v->t.key = c->key;
    v->t.fkey = c->fkey;
    if (c->nfilters) {
        v->filters = calloc(c->nfilters, sizeof *v->filters);
        if (!v->filters)
            return -1;
        for (size_t i = 0; i < c->nfilters; i++) {
            v->filters[i] = c->filters[i];
            v->filters[i].pattern = strdup(c->filters[i].pattern ? c->filters[i].pattern : "*");
            v->nfilters++;
            if (!v->filters[i].pattern)
                return -1;
        }
    }
    if (c->nskip) {
        v->skip_copy = calloc(c->nskip, sizeof *v->skip_copy);
        if (!v->skip_copy)
            return -1;
        for (size_t i = 0; i < c->nskip; i++) {
            v->skip_copy[i] = strdup(c->skip[i]);
            v->nskip++;
            if (!v->skip_copy[i])
                return -1;
        }
    }
    v->valid = 1;
    return 0;
}

/* Groups stack id under the query of c (loaded lazily by the caller). */
static int view_group_stack(tm_view *v, qctx *c, uint32_t id)
{
    long site = load_stack(c, id);
    if (site < 0)
        return -1;
    size_t first = (size_t)site, last = first; /* frames [first, last) each name a group */
    int kept = !c->nfilters || stack_kept(c, (size_t)site);
    long one = -1;
    if (kept && c->key == TM_KEY_TRACEBACK) {
        uint64_t h = mix(0, c->nf);
        for (size_t k = 0; k < c->nf; k++)
            h = mix(h, frame_hash(c, c->fp[k], c->fq[k]));
        one = gt_get(&v->t, h, c->fp, c->nf, (uint32_t)site);
        if (one < 0)
            return -1;
        last = first + 1;
    } else if (kept) {
        last = c->cumulative ? c->nf : first + 1;
    }
    uint32_t n = (uint32_t)(last - first);
    vstack *e = &v->st[id];
    if (e->state == VS_UNKNOWN || n > e->n) {
        /* a new place at the end; the old one (a stack whose frames were
         * pending and grew when resolved) is garbage until the next reset */
        if (v->nglist + n > v->glist_cap &&
            tm_grow((void **)&v->glist, &v->glist_cap, v->nglist + n, sizeof *v->glist) != 0)
            return -1;
        if (e->state != VS_UNKNOWN)
            v->glist_dead += e->n;
        e->off = (uint32_t)v->nglist;
        v->nglist += n;
    } else {
        v->glist_dead += e->n - n;
    }
    e->n = n;
    if (one >= 0) {
        v->glist[e->off] = (uint32_t)one;
    } else {
        for (size_t k = first; k < last; k++) {
            long gi = gt_get(&v->t, frame_hash(c, c->fp[k], c->fq[k]), &c->fp[k], 1, 0);
            if (gi < 0)
                return -1;
            v->glist[e->off + (k - first)] = (uint32_t)gi;
        }
    }
    e->state = c->stack_final ? VS_FINAL : VS_PENDING;
    v->epoch++;
    return 0;
}

/* Makes sure every stack of snap has its groups under the current query. */
static int view_cover(tm_view *v, qctx *c, int *have_ctx, const tm_snapshot *snap,
                      const tm_query *q, const tm_resolver *res)
{
    tm_store *s = snap->s;
    if (v->nst < s->stack_cap) {
        vstack *n = realloc(v->st, s->stack_cap * sizeof *n);
        if (!n)
            return -1;
        memset(n + v->nst, 0, (s->stack_cap - v->nst) * sizeof *n);
        v->st = n;
        v->nst = s->stack_cap;
    }
    for (size_t e = 0; e < snap->n; e++) {
        uint32_t id = snap->e[e].id;
        if (v->st[id].state == VS_FINAL)
            continue;
        if (!*have_ctx) {
            /* only now: a query context costs O(distinct addresses) */
            if (ctx_init(c, s, q, res) != 0)
                return -1;
            *have_ctx = 1;
        }
        if (view_group_stack(v, c, id) != 0)
            return -1;
    }
    return 0;
}

/* The row of group gi in this update, made if it has none yet; NULL when out
 * of memory. */
static inline vrow *view_row(tm_view *v, uint32_t gi)
{
    vslot *sl = &v->gen[gi];
    if (sl->gen != v->update) {
        if (v->nrows == v->rows_cap &&
            tm_grow((void **)&v->rows, &v->rows_cap, v->nrows + 1, sizeof *v->rows) != 0)
            return NULL;
        sl->gen = v->update;
        sl->row = (uint32_t)v->nrows;
        v->rows[v->nrows++] = (vrow){0, 0, 0, 0, gi};
    }
    return &v->rows[sl->row];
}

/* Whether v->osum holds old's sums under the current grouping. */
static int view_osum_valid(const tm_view *v, const tm_snapshot *old)
{
    if (v->osum_serial != old->serial || v->osum_resets != v->resets)
        return 0;
    return v->osum_final || v->osum_epoch == v->epoch;
}

/* Sums old's stacks per group into v->osum, unless it holds them already. */
static int view_osum(tm_view *v, const tm_snapshot *old)
{
    if (view_osum_valid(v, old))
        return 0;
    v->osum_serial = 0;
    v->nosum = 0;
    int final = 1;
    uint32_t *at = calloc(v->t.n ? v->t.n : 1, sizeof *at); /* group -> osum index + 1 */
    if (!at)
        return -1;
    for (size_t e = 0; e < old->n; e++) {
        const snap_ent *en = &old->e[e];
        const vstack *st = &v->st[en->id];
        final &= st->state == VS_FINAL;
        for (uint32_t k = 0; k < st->n; k++) {
            uint32_t gi = v->glist[st->off + k];
            if (!at[gi]) {
                if (v->nosum == v->osum_cap &&
                    tm_grow((void **)&v->osum, &v->osum_cap, v->nosum + 1, sizeof *v->osum) != 0) {
                    free(at);
                    return -1;
                }
                v->osum[v->nosum++] = (vosum){0, 0, gi};
                at[gi] = (uint32_t)v->nosum;
            }
            vosum *o = &v->osum[at[gi] - 1];
            o->size += en->bytes;
            o->count += en->blocks;
        }
    }
    free(at);
    v->osum_serial = old->serial;
    v->osum_epoch = v->epoch;
    v->osum_resets = v->resets;
    v->osum_final = final;
    return 0;
}

/* Adds the old side's sums per group to the rows. */
static int view_sum_old(tm_view *v, const tm_snapshot *old)
{
    if (view_osum(v, old) != 0)
        return -1;
    for (size_t i = 0; i < v->nosum; i++) {
        vrow *r = view_row(v, v->osum[i].g);
        if (!r)
            return -1;
        r->osize += v->osum[i].size;
        r->ocount += v->osum[i].count;
    }
    return 0;
}

/* Counts the rows of this update whose group shows a pending frame. */
static int view_count_pending(tm_view *v)
{
    for (; v->pg_scanned < v->t.n; v->pg_scanned++) {
        if (!v->t.g[v->pg_scanned].pending)
            continue;
        if (v->npg == v->pg_cap &&
            tm_grow((void **)&v->pg, &v->pg_cap, v->npg + 1, sizeof *v->pg) != 0)
            return -1;
        v->pg[v->npg++] = (uint32_t)v->pg_scanned;
    }
    v->npending = 0;
    for (size_t i = 0; i < v->npg; i++)
        v->npending += v->gen[v->pg[i]].gen == v->update;
    return 0;
}

/* Adds snap's stacks to their groups' rows. */
static int view_sum(tm_view *v, const tm_snapshot *snap)
{
    /* the sums live in the rows, which are made in the order of the stacks
     * that first reach them: for most keys the writes run forward */
    for (size_t e = 0; e < snap->n; e++) {
        const snap_ent *en = &snap->e[e];
        const vstack *st = &v->st[en->id];
        for (uint32_t k = 0; k < st->n; k++) {
            vrow *r = view_row(v, v->glist[st->off + k]);
            if (!r)
                return -1;
            r->size += en->bytes;
            r->count += en->blocks;
        }
    }
    return 0;
}

int tm_view_update(tm_view *v, const tm_snapshot *now, const tm_snapshot *old, const tm_query *q,
                   const tm_resolver *res, tm_err *err)
{
    if (!q)
        q = &default_query;
    v->nrows = v->npending = 0;
    if (check_query(q, err) != 0)
        return -1;
    if (old && old->s != now->s)
        return tm_err_set(err, TM_E_USAGE, "a view compares snapshots of one store");
    /* the query as the statistics see it, without touching the store */
    qctx c;
    memset(&c, 0, sizeof c);
    c.key = q->key;
    c.fkey = q->key == TM_KEY_FILENAME ? TM_KEY_FILENAME : TM_KEY_LINENO;
    c.cumulative = q->cumulative;
    c.raw_site = q->raw_site;
    c.filters = q->filters;
    c.nfilters = q->filters ? q->nfilters : 0;
    c.skip = q->skip ? q->skip : tm_default_skip;
    c.nskip = q->skip ? q->nskip : 0;
    if (!c.nskip)
        while (c.skip[c.nskip])
            c.nskip++;
    /* regroup from scratch when the query changed, or when garbage (groups of
     * superseded pending frames, stacks that died) outweighs what is alive */
    int same = view_same(v, &c, now->s, res);
    if (!same || v->t.n > 2 * v->nrows_last + 65536 || v->glist_dead > v->nglist / 2 + 65536) {
        view_reset(v);
        if (view_remember(v, &c, now->s, res) != 0) {
            view_reset(v);
            return tm_err_set(err, TM_E_NOMEM, "out of memory");
        }
    }
    int have_ctx = 0, rc = view_cover(v, &c, &have_ctx, now, q, res);
    /* old's stacks all final and summed: covering them again changes nothing */
    if (rc == 0 && old && !(view_osum_valid(v, old) && v->osum_final))
        rc = view_cover(v, &c, &have_ctx, old, q, res);
    if (have_ctx) {
        rc |= c.nomem ? -1 : 0;
        ctx_fini(&c);
    }
    if (rc == 0 && v->t.n) {
        vslot *gen = realloc(v->gen, v->t.cap * sizeof *gen);
        if (!gen)
            rc = -1;
        else {
            if (!v->gen) /* generation 0 is never current */
                memset(gen, 0, v->t.cap * sizeof *gen);
            else if (v->t.cap > v->gen_cap)
                memset(gen + v->gen_cap, 0, (v->t.cap - v->gen_cap) * sizeof *gen);
            v->gen = gen;
            v->gen_cap = v->t.cap;
        }
    }
    if (rc == 0 && v->t.n) {
        if (++v->update == 0) { /* wrapped: no group may look current */
            memset(v->gen, 0, v->gen_cap * sizeof *v->gen);
            v->update = 1;
        }
        rc = view_sum(v, now);
        if (rc == 0 && old)
            rc = view_sum_old(v, old);
        if (rc == 0)
            rc = view_count_pending(v);
    }
    if (rc != 0) {
        view_reset(v);
        return tm_err_set(err, TM_E_NOMEM, "out of memory");
    }
    v->diff = old != NULL;
    v->nrows_last = v->nrows;
    return 0;
}

size_t tm_view_count(const tm_view *v)
{
    return v->nrows;
}

size_t tm_view_pending(const tm_view *v)
{
    return v->npending;
}

static void view_stat(const tm_view *v, const vrow *r, tm_stat *out)
{
    const group *g = &v->t.g[r->g];
    fill_stat(out, g, v->t.fr + g->foff);
    out->size = r->size;
    out->count = r->count;
    if (v->diff) {
        out->size_diff = (int64_t)(r->size - r->osize);
        out->count_diff = (int64_t)(r->count - r->ocount);
    }
}

/* Row order: < 0 when a comes first.  Ties of the numbers go by key,
 * descending, as stat_cmp and diff_cmp order them. */
static int vrow_cmp(const tm_view *v, const vrow *a, const vrow *b)
{
    if (v->diff) {
        CMP_DESC(abs64((int64_t)(a->size - a->osize)), abs64((int64_t)(b->size - b->osize)));
        CMP_DESC(a->size, b->size);
        CMP_DESC(abs64((int64_t)(a->count - a->ocount)), abs64((int64_t)(b->count - b->ocount)));
        CMP_DESC(a->count, b->count);
    } else {
        CMP_DESC(a->size, b->size);
        CMP_DESC(a->count, b->count);
    }
    if (a->g == b->g)
        return 0;
    tm_stat x, y;
    view_stat(v, a, &x);
    view_stat(v, b, &y);
    return -key_cmp(&x, &y, v->t.fkey);
}

/* The first number rows are ordered by (descending): vrow_cmp(a, b) < 0
 * whenever vrow_key(a) > vrow_key(b).  Comparing it first spares most rows the
 * full comparison when scanning for the first rows of the order. */
static inline uint64_t vrow_key(const tm_view *v, const vrow *r)
{
    return v->diff ? abs64((int64_t)(r->size - r->osize)) : r->size;
}

/* The second sort number: vrow_cmp's second comparison. */
static inline uint64_t vrow_key2(const tm_view *v, const vrow *r)
{
    return v->diff ? r->size : r->count;
}

static inline int vord_cmp(const tm_view *v, const vord *a, const vord *b)
{
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    if (a->key2 != b->key2)
        return a->key2 > b->key2 ? -1 : 1;
    return vrow_cmp(v, &v->rows[a->i], &v->rows[b->i]);
}

static inline void vord_swap(vord *a, vord *b)
{
    vord t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges r[lo, hi) so that r[k] is the entry that belongs there in order,
 * entries before it come first and entries after it come later (quickselect;
 * a pseudo-random pivot keeps adversarial orders from going quadratic). */
static void vord_select(const tm_view *v, vord *r, size_t lo, size_t hi, size_t k)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ hi;
    while (hi - lo > 1) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t p = lo + (size_t)((seed >> 33) % (hi - lo));
        vord_swap(&r[p], &r[hi - 1]);
        const vord *pv = &r[hi - 1];
        size_t store = lo;
        for (size_t i = lo; i + 1 < hi; i++)
            if (vord_cmp(v, &r[i], pv) < 0)
                vord_swap(&r[i], &r[store++]);
        vord_swap(&r[store], &r[hi - 1]);
        if (store == k)
            return;
        if (k < store)
            hi = store;
        else
            lo = store + 1;
    }
}

static int vord_qcmp(const void *a, const void *b, void *v)
{
    return vord_cmp(v, a, b);
}

/* Writes the indices of rows [first, end) of the order to idx.  Returns 0,
 * or -1 when out of memory.
 *
 * A display asks for about the same window redraw after redraw while the
 * numbers drift a little, so the call remembers a range of (first, second)
 * sort numbers a little wider than the window's (guess_lo .. guess_hi).  Rows
 * with larger numbers come before every row of the range and rows with
 * smaller ones after, so one pass counting the first and collecting the range
 * is enough whenever the window falls inside it; then only those rows are
 * ordered.  Otherwise all rows are, and the range is taken anew. */
static int view_order(tm_view *v, size_t first, size_t end, uint32_t *idx)
{
    size_t n = v->nrows, w = end - first;
    if (v->ord_cap < n) {
        vord *o = realloc(v->ord, n * sizeof *o);
        if (!o)
            return -1;
        v->ord = o;
        v->ord_cap = n;
    }
    vord *o = v->ord;
    if (v->guess && v->guess_diff == v->diff) {
        size_t ahead = 0, m = 0;
        const vord hi = v->guess_hi, lo = v->guess_lo;
        for (size_t i = 0; i < n; i++) {
            const vrow *r = &v->rows[i];
            uint64_t k = vrow_key(v, r), k2 = vrow_key2(v, r);
            if (k > hi.key || (k == hi.key && k2 > hi.key2))
                ahead++;
            else if (k > lo.key || (k == lo.key && k2 >= lo.key2))
                o[m++] = (vord){k, k2, (uint32_t)i};
        }
        if (ahead <= first && ahead + m >= end) {
            size_t a = first - ahead, b = end - ahead; /* the window among o[0, m) */
            if (a > 0)
                vord_select(v, o, 0, m, a);
            if (b < m)
                vord_select(v, o, a, m, b - 1);
            qsort_r(o + a, w, sizeof *o, vord_qcmp, v);
            for (size_t i = 0; i < w; i++)
                idx[i] = o[a + i].i;
            return 0;
        }
    }
    for (size_t i = 0; i < n; i++)
        o[i] = (vord){vrow_key(v, &v->rows[i]), vrow_key2(v, &v->rows[i]), (uint32_t)i};
    /* the range: the numbers at 8 times the window's height before and after
     * it, so that it still holds the window when the numbers or the window
     * move a little (rows with larger numbers than the row at rank r rank
     * before r).  Its two ends are put in place over all rows, the window's
     * within the range only. */
    size_t rlo = first > 8 * w ? first - 8 * w : 0,
           rhi = end - 1 + 8 * w < n ? end - 1 + 8 * w : n - 1;
    if (rlo > 0)
        vord_select(v, o, 0, n, rlo);
    if (rhi > rlo && rhi + 1 < n)
        vord_select(v, o, rlo + 1, n, rhi);
    v->guess_hi = o[rlo];
    v->guess_lo = o[rhi];
    v->guess_diff = v->diff;
    v->guess = 1;
    if (first > rlo)
        vord_select(v, o, rlo, rhi + 1, first);
    if (end <= rhi)
        vord_select(v, o, first, rhi + 1, end - 1);
    qsort_r(o + first, w, sizeof *o, vord_qcmp, v);
    for (size_t i = first; i < end; i++)
        idx[i - first] = o[i].i;
    return 0;
}

/* Moves heap entry i down to its place in a heap of n row indices whose
 * root is the row that comes last in the order. */
static void vheap_down(const tm_view *v, uint32_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && vrow_cmp(v, &v->rows[h[l]], &v->rows[h[w]]) > 0)
            w = l;
        if (r < n && vrow_cmp(v, &v->rows[h[r]], &v->rows[h[w]]) > 0)
            w = r;
        if (w == i)
            return;
        uint32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int vidx_qcmp(const void *a, const void *b, void *pv)
{
    const tm_view *v = pv;
    return vrow_cmp(v, &v->rows[*(const uint32_t *)a], &v->rows[*(const uint32_t *)b]);
}

/* Rows never move within an update (orderings are of indices), so a group's
 * row stays where view_row put it: tm_view_find relies on it. */
size_t tm_view_rows(tm_view *v, size_t first, size_t n, tm_stat *out)
{
    if (first >= v->nrows)
        return 0;
    size_t end = n > v->nrows - first ? v->nrows : first + n;
    uint32_t *h = malloc(end * sizeof *h);
    if (!h)
        return 0;
    const uint32_t *idx = h;
    if (end > 1024 || end > v->nrows / 8) {
        /* deep in the table: quickselect, O(rows) but with more comparisons */
        if (view_order(v, first, end, h) != 0) {
            free(h);
            return 0;
        }
    } else {
        /* the first `end` rows of the order, kept in a heap whose root is the
         * one that comes last: most rows cost one comparison with the root */
        size_t k = 0;
        uint64_t root_key = 0; /* vrow_key of the heap's root once it is full */
        for (size_t i = 0; i < v->nrows; i++) {
            if (k < end) {
                h[k++] = (uint32_t)i;
                if (k == end) {
                    for (size_t j = end / 2; j-- > 0;)
                        vheap_down(v, h, end, j);
                    root_key = vrow_key(v, &v->rows[h[0]]);
                }
            } else if (vrow_key(v, &v->rows[i]) >= root_key &&
                       vrow_cmp(v, &v->rows[i], &v->rows[h[0]]) < 0) {
                h[0] = (uint32_t)i;
                vheap_down(v, h, end, 0);
                root_key = vrow_key(v, &v->rows[h[0]]);
            }
        }
        qsort_r(h, end, sizeof *h, vidx_qcmp, v);
        idx = h + first;
    }
    for (size_t i = first; i < end; i++)
        view_stat(v, &v->rows[idx[i - first]], &out[i - first]);
    free(h);
    return end - first;
}

/* The row's position in the order: how many rows come before it. */
static size_t view_rank(const tm_view *v, const vrow *r)
{
    size_t rank = 0;
    uint64_t key = vrow_key(v, r);
    for (size_t i = 0; i < v->nrows; i++) {
        uint64_t k = vrow_key(v, &v->rows[i]);
        rank += k > key || (k == key && vrow_cmp(v, &v->rows[i], r) < 0);
    }
    return rank;
}

long tm_view_find(tm_view *v, const tm_frame *frames, uint32_t n)
{
    if (!v->nrows || !n || !v->t.slot)
        return -1;
    /* the hash as the grouping computes it */
    uint64_t h = 0;
    qctx c;
    memset(&c, 0, sizeof c);
    c.fkey = v->t.fkey;
    const tm_frame **fp = malloc(n * sizeof *fp);
    if (!fp)
        return -1;
    if (v->key == TM_KEY_TRACEBACK)
        h = mix(0, n);
    for (uint32_t k = 0; k < n; k++) {
        qframe q;
        memset(&q, 0, sizeof q);
        fp[k] = &frames[k];
        uint64_t fh = frame_hash(&c, &frames[k], &q);
        h = v->key == TM_KEY_TRACEBACK ? mix(h, fh) : fh;
    }
    const group *g = gt_find(&v->t, h, fp, n);
    free(fp);
    if (!g)
        return -1;
    uint32_t gi = (uint32_t)(g - v->t.g);
    if (!v->gen || gi >= v->gen_cap || v->gen[gi].gen != v->update)
        return -1; /* a group of an earlier update, empty now */
    return (long)view_rank(v, &v->rows[v->gen[gi].row]);
}

size_t tm_view_select(tm_view *v, int (*keep)(void *ctx, const tm_stat *row), void *ctx,
                      tm_stat *out, size_t max)
{
    uint32_t *idx = malloc((v->nrows ? v->nrows : 1) * sizeof *idx);
    if (!idx)
        return 0;
    size_t nk = 0;
    for (size_t i = 0; i < v->nrows; i++) {
        tm_stat st;
        view_stat(v, &v->rows[i], &st);
        if (keep(ctx, &st))
            idx[nk++] = (uint32_t)i;
    }
    if (nk > 1 && out && max)
        qsort_r(idx, nk, sizeof *idx, vidx_qcmp, v);
    for (size_t i = 0; out && i < nk && i < max; i++)
        view_stat(v, &v->rows[idx[i]], &out[i]);
    free(idx);
    return nk;
}
