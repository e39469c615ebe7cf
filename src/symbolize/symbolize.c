/* symbolize.c - the tm_sym object: module -> loaded object map, the
 * (module id, address) -> frames cache, lookups and demangling. */
#include "symbolize.h"
#include "symbolize_internal.h"

#include <stdlib.h>
#include <string.h>

/* libstdc++'s demangler (the C++ ABI entry point), declared for C. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* Deepest inline chain kept per address: real chains are < 20. */
#define MAX_CHAIN 64
/* Modules loading in the background at once (tm_sym_resolve_nowait): each
 * holds one to SYM_LOAD_MAX_PARTS children and their libdwarf memory. */
#define SYM_MAX_LOADING 4

/* A resolved frame without the per-call fields (module, address, offset). */
typedef struct cframe {
    const char *function;
    const char *file;
    uint32_t line;
    uint32_t flags;
} cframe;

/* One (module id, address) result: frames[first .. first + n) of the pool.
 * Module ids are per stream: two processes (--follow-fork) may use one id
 * for different files, or one file at another load bias, so a hit also
 * needs the same path and bias. */
typedef struct centry {
    uint64_t address;
    uint64_t bias;
    const char *module; /* interned module path */
    uint32_t id;
    uint32_t n; /* 0 = empty slot */
    uint32_t first;
} centry;

typedef struct modmap {
    uint32_t id;
    const char *path; /* interned */
    sym_obj *obj;
} modmap;

/* Raw interned name -> demangled interned name. */
typedef struct dslot {
    const char *raw;
    const char *out;
} dslot;

struct tm_sym {
    int demangle;
    char *debug_root;
    sym_intern *in;

    sym_obj **objs;
    size_t nobjs, objs_cap;
    modmap *mods;
    size_t nmods, mods_cap;

    centry *cache;
    size_t cache_cap, cache_count; /* cap: power of two */
    cframe *pool;
    size_t npool, pool_cap;

    dslot *dm;
    size_t dm_cap, dm_count;

    size_t nloading; /* objects whose DWARF children are still running */

    tm_sym_stats st;
};

static void obj_abandon(tm_sym *s, sym_obj *o);

tm_sym *tm_sym_new(const tm_sym_opts *opts)
{
    static int elf_ready;
    if (!elf_ready) {
        elf_version(EV_CURRENT);
        sym_dwarf_global_init();
        elf_ready = 1;
    }
    tm_sym *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->demangle = opts ? opts->demangle : 1;
    if (opts && opts->debug_root && !(s->debug_root = strdup(opts->debug_root))) {
        free(s);
        return NULL;
    }
    s->in = sym_intern_new();
    s->cache_cap = 1024;
    s->cache = calloc(s->cache_cap, sizeof *s->cache);
    if (!s->in || !s->cache) {
        tm_sym_free(s);
        return NULL;
    }
    return s;
}

void sym_obj_free(sym_obj *o)
{
    if (!o)
        return;
    free(o->path);
    free(o->rows);
    free(o->scopes);
    free(o->segs);
    free(o->funcs);
    free(o);
}

void tm_sym_free(tm_sym *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nobjs; i++) {
        obj_abandon(s, s->objs[i]);
        sym_obj_free(s->objs[i]);
    }
    free(s->objs);
    free(s->mods);
    free(s->cache);
    free(s->pool);
    free(s->dm);
    sym_intern_free(s->in);
    free(s->debug_root);
    free(s);
}

void tm_sym_get_stats(const tm_sym *s, tm_sym_stats *out)
{
    *out = s->st;
}

/* ---- per-object lookups -------------------------------------------------- */

const sym_row *sym_obj_row(const sym_obj *o, uint64_t pc)
{
    /* upper_bound(pc) - 1: the last row at or before pc */
    size_t lo = 0, hi = o->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->rows[mid].addr <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || o->rows[lo - 1].end)
        return NULL;
    return &o->rows[lo - 1];
}

const sym_seg *sym_obj_seg(const sym_obj *o, uint64_t pc)
{
    size_t lo = 0, hi = o->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->segs[mid].lo <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || pc >= o->segs[lo - 1].hi)
        return NULL;
    return &o->segs[lo - 1];
}

const sym_func *sym_obj_func(const sym_obj *o, uint64_t pc)
{
    size_t lo = 0, hi = o->nfuncs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->funcs[mid].addr <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || pc >= o->funcs[lo - 1].sec_end)
        return NULL;
    /* Aliases at that address, in symbol-table order: choose as bfd does
     * (a symbol that covers pc, the smallest such; the first on ties), so
     * names match addr2line's. */
    size_t first = lo - 1;
    while (first > 0 && o->funcs[first - 1].addr == o->funcs[lo - 1].addr)
        first--;
    const sym_func *best = &o->funcs[first];
    for (size_t i = first + 1; i < lo; i++) {
        const sym_func *f = &o->funcs[i];
        if (best->addr + best->size <= pc) {
            if (f->size > best->size)
                best = f;
        } else if (f->addr + f->size > pc && f->size < best->size) {
            best = f;
        }
    }
    if (!best->sized || pc < best->addr + best->size)
        return best;
    /* pc lies past the end of the sized symbol(s) starting nearest below it:
     * padding, or code of a function the table does not list (a stripped
     * binary keeps only the exported functions in .dynsym).  Naming it after
     * that symbol would invent a caller ("_obstack_memory_used in ls"), so
     * only a symbol that really covers pc names it: an unsized alias, or a
     * sized symbol further below that encloses pc (an asm entry point with
     * inner labels).  Otherwise module+offset is the honest answer. */
    for (size_t i = first; i < lo; i++) {
        if (!o->funcs[i].sized)
            return &o->funcs[i];
    }
    for (size_t i = first, k = 0; i > 0 && k < 64; i--, k++) {
        const sym_func *f = &o->funcs[i - 1];
        if (f->sized && pc < f->addr + f->size && pc < f->sec_end)
            return f;
    }
    return NULL;
}

/* ---- loading ------------------------------------------------------------- */

/* A load under way: the files stay open until the children delivered. */
typedef struct sym_pending {
    sym_files files;
    sym_load load;
} sym_pending;

/* First half of a module's load: finds its files, starts the DWARF
 * children and, while they run, reads the ELF symbols.  Leaves o->pending
 * set when children were started; otherwise the load is complete. */
static void obj_begin(tm_sym *s, sym_obj *o)
{
    sym_pending *p = malloc(sizeof *p);
    if (!p)
        return; /* no tables at all: module+offset */
    sym_files *f = &p->files;
    sym_files_open(f, o->path, o->build_id, o->build_id_len, s->debug_root);
    int started = f->dwarf ? sym_dwarf_start(&p->load, f->dwarf->fd) : -1;
    /* Function symbols for code DWARF does not cover: the fullest table
     * first (.symtab of the module, then of the debug file), else .dynsym. */
    const sym_elf *from[4] = {&f->module, &f->debug, &f->module, &f->debug};
    const unsigned types[4] = {SHT_SYMTAB, SHT_SYMTAB, SHT_DYNSYM, SHT_DYNSYM};
    size_t cap = 0;
    for (int i = 0; i < 4 && !o->nfuncs; i++) {
        Elf *e = from[i]->elf;
        if (e && sym_elf_has_symbols(e, types[i]) &&
            sym_elf_symbols(e, types[i], s->in, &o->funcs, &o->nfuncs, &cap) < 0)
            o->nfuncs = 0;
    }
    sym_funcs_finish(o->funcs, o->nfuncs);
    if (f->dwarf && started < 0) {
        /* no child could be forked: load here, as most tools do */
        o->debug_path = sym_intern_str(s->in, f->dwarf_path);
        if (sym_dwarf_load(o, f->dwarf->fd, s->in, &s->st.dwarf_errors, 0, 1) < 0)
            o->debug_path = NULL;
    }
    if (started == 0) {
        o->pending = p;
        s->nloading++;
        return;
    }
    sym_files_close(f);
    free(p);
}

/* Second half: waits for the children (when still loading) and completes
 * the tables. */
static void obj_end(tm_sym *s, sym_obj *o)
{
    sym_pending *p = o->pending;
    if (p) {
        o->debug_path = sym_intern_str(s->in, p->files.dwarf_path);
        if (sym_dwarf_finish(&p->load, o, s->in, &s->st.dwarf_errors) < 0)
            o->debug_path = NULL;
        sym_files_close(&p->files);
        free(p);
        o->pending = NULL;
        s->nloading--;
    }
    /* Functions DWARF names without a linkage name (C++ "main", members of
     * lambda-typed templates): the ELF symbol starting at the entry has the
     * qualified name, as addr2line shows it. */
    for (size_t i = 0; i < o->nscopes; i++) {
        sym_scope *sc = &o->scopes[i];
        if (!(sc->flags & SYM_SCOPE_NAME_FROM_SYMTAB))
            continue;
        const sym_func *fn = sym_obj_func(o, sc->entry);
        if (fn && fn->addr == sc->entry)
            sc->name = fn->name;
    }
}

static void obj_abandon(tm_sym *s, sym_obj *o)
{
    sym_pending *p = o->pending;
    if (!p)
        return;
    sym_dwarf_abandon(&p->load);
    sym_files_close(&p->files);
    free(p);
    o->pending = NULL;
    s->nloading--;
}

/* The map entry (object and interned path) for mod: found by module id,
 * else by (path, build-id) among known objects (one file mapped under
 * several ids is read once), else created and its load begun.  With wait
 * set, a load under way is finished (blocking); without, the entry may come
 * back with obj->pending set.  NULL when out of memory, or (without wait)
 * when the module is new and SYM_MAX_LOADING loads already run. */
static int same_build_id(const sym_obj *o, const tm_module *mod)
{
    uint32_t blen = mod->build_id_len < TM_BUILD_ID_MAX ? mod->build_id_len : TM_BUILD_ID_MAX;
    return o->build_id_len == blen && memcmp(o->build_id, mod->build_id, blen) == 0;
}

static const modmap *obj_for(tm_sym *s, const tm_module *mod, int wait)
{
    const modmap *found = NULL;
    for (size_t i = 0; i < s->nmods && !found; i++) {
        if (s->mods[i].id == mod->id && strcmp(s->mods[i].path, mod->path) == 0 &&
            same_build_id(s->mods[i].obj, mod))
            found = &s->mods[i];
    }
    if (!found) {
        uint32_t blen = mod->build_id_len < TM_BUILD_ID_MAX ? mod->build_id_len : TM_BUILD_ID_MAX;
        sym_obj *o = NULL;
        for (size_t i = 0; i < s->nobjs && !o; i++) {
            sym_obj *c = s->objs[i];
            if (c->build_id_len == blen && memcmp(c->build_id, mod->build_id, blen) == 0 &&
                strcmp(c->path, mod->path) == 0)
                o = c;
        }
        if (!o && !wait && s->nloading >= SYM_MAX_LOADING)
            return NULL;
        const char *ipath = sym_intern_str(s->in, mod->path);
        if (!ipath || tm_grow((void **)&s->mods, &s->mods_cap, s->nmods + 1, sizeof *s->mods) < 0 ||
            tm_grow((void **)&s->objs, &s->objs_cap, s->nobjs + 1, sizeof *s->objs) < 0)
            return NULL;
        if (!o) {
            o = calloc(1, sizeof *o);
            if (!o || !(o->path = strdup(mod->path))) {
                free(o);
                return NULL;
            }
            o->build_id_len = blen;
            memcpy(o->build_id, mod->build_id, blen);
            obj_begin(s, o);
            if (!o->pending)
                obj_end(s, o);
            s->objs[s->nobjs++] = o;
            s->st.modules_loaded++;
        }
        s->mods[s->nmods] = (modmap){mod->id, ipath, o};
        found = &s->mods[s->nmods++];
    }
    sym_obj *o = found->obj;
    if (o->pending && (wait || sym_dwarf_ready(&o->pending->load)))
        obj_end(s, o);
    return found;
}

/* ---- demangling ---------------------------------------------------------- */

static size_t ptr_hash(const void *p, size_t cap)
{
    return (size_t)(((uintptr_t)p * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

/* The display form of an interned raw name: demangled when it is a C++
 * mangled name (only "_Z" names: __cxa_demangle would also turn a C
 * function called "f" into "float"), memoized per raw name. */
static const char *display_name(tm_sym *s, const char *raw)
{
    if (!raw || !s->demangle || raw[0] != '_' || raw[1] != 'Z')
        return raw;
    if (s->dm_cap) {
        for (size_t i = ptr_hash(raw, s->dm_cap); s->dm[i].raw; i = (i + 1) & (s->dm_cap - 1)) {
            if (s->dm[i].raw == raw)
                return s->dm[i].out;
        }
    }
    int status = 0;
    char *d = __cxa_demangle(raw, NULL, NULL, &status);
    const char *out = raw;
    if (d && status == 0) {
        const char *id = sym_intern_str(s->in, d);
        if (id)
            out = id;
    }
    free(d);
    if ((s->dm_count + 1) * 2 > s->dm_cap) {
        size_t ncap = s->dm_cap ? s->dm_cap * 2 : 256;
        dslot *nd = calloc(ncap, sizeof *nd);
        if (!nd)
            return out;
        for (size_t j = 0; j < s->dm_cap; j++) {
            if (!s->dm[j].raw)
                continue;
            size_t i = ptr_hash(s->dm[j].raw, ncap);
            while (nd[i].raw)
                i = (i + 1) & (ncap - 1);
            nd[i] = s->dm[j];
        }
        free(s->dm);
        s->dm = nd;
        s->dm_cap = ncap;
    }
    size_t i = ptr_hash(raw, s->dm_cap);
    while (s->dm[i].raw)
        i = (i + 1) & (s->dm_cap - 1);
    s->dm[i] = (dslot){raw, out};
    s->dm_count++;
    return out;
}

/* ---- resolution ---------------------------------------------------------- */

/* Frames for file vaddr pc in o, innermost first; returns the count (>= 1). */
static int obj_frames(tm_sym *s, const sym_obj *o, uint64_t pc, cframe *out)
{
    const sym_row *row = sym_obj_row(o, pc);
    const sym_seg *seg = sym_obj_seg(o, pc);
    const char *file = row ? row->file : NULL;
    uint32_t line = row ? row->line : 0;
    if (seg) {
        int n = 0;
        int32_t sc = (int32_t)seg->scope;
        while (sc >= 0 && (size_t)sc < o->nscopes && n < MAX_CHAIN) {
            const sym_scope *scope = &o->scopes[sc];
            out[n].function = display_name(s, scope->name);
            out[n].file = file;
            out[n].line = line;
            out[n].flags = scope->parent >= 0 ? TM_FRAME_INLINED : 0;
            file = scope->call_file;
            line = scope->call_line;
            /* parents always precede their children: no cycles */
            sc = scope->parent < sc ? scope->parent : -1;
            n++;
        }
        cframe *last = &out[n - 1];
        last->flags &= ~(uint32_t)TM_FRAME_INLINED;
        if (!last->function) {
            const sym_func *fn = sym_obj_func(o, pc);
            if (fn) {
                last->function = display_name(s, fn->name);
                last->flags |= TM_FRAME_SYMTAB;
            }
        }
        return n;
    }
    /* No DWARF function here (no DWARF, or code such as asm or padding that
     * no subprogram covers): the ELF symbol, with the line table's
     * file:line when there is one. */
    const sym_func *fn = sym_obj_func(o, pc);
    out[0].function = fn ? display_name(s, fn->name) : NULL;
    out[0].file = row || !fn ? file : fn->file;
    out[0].line = line;
    out[0].flags = fn ? TM_FRAME_SYMTAB : 0;
    return 1;
}

static size_t cache_slot(const tm_sym *s, uint32_t id, uint64_t address)
{
    uint64_t h = (address ^ ((uint64_t)id << 47) ^ id) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (s->cache_cap - 1);
}

static int cache_grow(tm_sym *s)
{
    size_t ncap = s->cache_cap * 2;
    centry *nc = calloc(ncap, sizeof *nc);
    if (!nc)
        return -1;
    centry *old = s->cache;
    size_t ocap = s->cache_cap;
    s->cache = nc;
    s->cache_cap = ncap;
    for (size_t j = 0; j < ocap; j++) {
        if (!old[j].n)
            continue;
        size_t i = cache_slot(s, old[j].id, old[j].address);
        while (nc[i].n)
            i = (i + 1) & (ncap - 1);
        nc[i] = old[j];
    }
    free(old);
    return 0;
}

static void cache_put(tm_sym *s, uint32_t id, uint64_t address, uint64_t bias, const char *module,
                      const cframe *fr, int n)
{
    if ((s->cache_count + 1) * 4 > s->cache_cap * 3 && cache_grow(s) < 0)
        return;
    if (s->npool + (size_t)n > UINT32_MAX ||
        tm_grow((void **)&s->pool, &s->pool_cap, s->npool + (size_t)n, sizeof *s->pool) < 0)
        return;
    size_t i = cache_slot(s, id, address);
    while (s->cache[i].n)
        i = (i + 1) & (s->cache_cap - 1);
    memcpy(s->pool + s->npool, fr, (size_t)n * sizeof *fr);
    s->cache[i] = (centry){address, bias, module, id, (uint32_t)n, (uint32_t)s->npool};
    s->npool += (size_t)n;
    s->cache_count++;
}

static int emit_frames(const tm_module *mod, uint64_t address, const cframe *fr, int n,
                       const char *module, tm_frame *out, int max)
{
    if (n > max)
        n = max;
    for (int i = 0; i < n; i++) {
        out[i].function = fr[i].function;
        out[i].file = fr[i].file;
        out[i].line = fr[i].line;
        out[i].flags = fr[i].flags;
        out[i].module = module;
        out[i].address = address;
        out[i].offset = address - mod->load_bias;
    }
    return n;
}

/* tm_sym_resolve and tm_sym_resolve_nowait. */
static int resolve(tm_sym *s, const tm_module *mod, uint64_t address, tm_frame *out, int max,
                   int wait)
{
    if (!out || max < 1)
        return 0;
    s->st.lookups++;
    if (!mod || !mod->path) {
        memset(&out[0], 0, sizeof out[0]);
        out[0].address = address;
        return 1;
    }
    size_t i = cache_slot(s, mod->id, address);
    while (s->cache[i].n) {
        const centry *e = &s->cache[i];
        if (e->address == address && e->id == mod->id && e->bias == mod->load_bias &&
            strcmp(e->module, mod->path) == 0) {
            s->st.cache_hits++;
            return emit_frames(mod, address, s->pool + e->first, (int)e->n, e->module, out, max);
        }
        i = (i + 1) & (s->cache_cap - 1);
    }

    cframe fr[MAX_CHAIN];
    int n = 1;
    memset(&fr[0], 0, sizeof fr[0]);
    const modmap *mm = obj_for(s, mod, wait);
    const sym_obj *o = mm ? mm->obj : NULL;
    const char *module = mm ? mm->path : NULL;
    if (!wait && (!mm || o->pending)) {
        /* still loading (or waiting for a free loading slot): module+offset
         * now, not cached, the real answer on a later call */
        n = emit_frames(mod, address, fr, 1, module ? module : mod->path, out, max);
        out[0].flags = TM_FRAME_PENDING;
        return n;
    }
    /* address - 1: the call instruction, not the return address, which can
     * belong to the next line or to no inlined scope at all */
    if (o && address > mod->load_bias)
        n = obj_frames(s, o, address - 1 - mod->load_bias, fr);
    if (!module)
        module = sym_intern_str(s->in, mod->path);
    if (module)
        cache_put(s, mod->id, address, mod->load_bias, module, fr, n);
    return emit_frames(mod, address, fr, n, module ? module : mod->path, out, max);
}

int tm_sym_resolve(tm_sym *s, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    return resolve(s, mod, address, out, max, 1);
}

int tm_sym_resolve_nowait(tm_sym *s, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    return resolve(s, mod, address, out, max, 0);
}

size_t tm_sym_loading(tm_sym *s)
{
    for (size_t i = 0; i < s->nobjs && s->nloading; i++) {
        sym_obj *o = s->objs[i];
        if (o->pending && sym_dwarf_ready(&o->pending->load))
            obj_end(s, o);
    }
    return s->nloading;
}

static int resolver_cb(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    return tm_sym_resolve(ctx, mod, address, out, max);
}

static int resolver_nowait_cb(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out,
                              int max)
{
    return tm_sym_resolve_nowait(ctx, mod, address, out, max);
}

tm_resolver tm_sym_resolver(tm_sym *s)
{
    tm_resolver r = {resolver_cb, s};
    return r;
}

tm_resolver tm_sym_resolver_nowait(tm_sym *s)
{
    tm_resolver r = {resolver_nowait_cb, s};
    return r;
}
