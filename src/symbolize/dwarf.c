/* dwarf.c - reads one object's DWARF into flat sorted arrays: line rows,
 * function scopes (out-of-line and inlined) and disjoint address segments
 * naming the innermost scope.  Everything is read eagerly: a lookup is two
 * binary searches.
 *
 * Two readers give the same tables (test_symbolize_dies checks it on the
 * fixtures and glibc).  own_load reads the sections itself: units and DIEs
 * with dies.c, line programs and their file tables here; it costs a third
 * of the libdwarf reading (callgrind: glibc 1,302 M -> 482 M instructions,
 * a large -O2 program 1,047 M -> 284 M), mostly because libdwarf allocated
 * every DIE and parsed every attribute of every DIE it skipped.  Whatever
 * own_load does not handle (type or split units, DW_LNE_define_file,
 * unknown forms, anything inconsistent) sends the whole load to lib_load,
 * the libdwarf 20210528 reader, which still walks with dies.c the units dies.c
 * can read.
 *
 * libdwarf rules followed throughout (RESEARCH.md §1.10): every call gets an
 * error pointer (without one libdwarf aborts the process), every returned
 * error is freed (also one left behind with DW_DLV_NO_ENTRY, which libdwarf
 * does on some corrupt input, hence the `|| err` tests), and with the allocation tree off
 * (sym_dwarf_global_init) every DIE, attribute and srcfiles list is freed here, while strings that
 * point into sections (dwarf_formstring) never are. */
#include "symbolize_internal.h"

#include <dwarf.h>
#include <libdwarf.h>
#include <stdlib.h>
#include <string.h>

/* Depth caps: corrupt DWARF can nest or chain without end. */
#define MAX_NEST 128
#define MAX_REF_DEPTH 8

typedef sym_range pc_range;

int sym_dwarf_use_own_dies = 1;
unsigned long sym_dwarf_units_own, sym_dwarf_units_libdwarf;

typedef struct range {
    uint64_t lo, hi;
    uint32_t scope;
    uint32_t depth;
    uint32_t order; /* creation order, for a stable sort */
} range;

/* DIE offset -> name cache, for the abstract origins many inlined scopes
 * share.  Open addressing; key 0 is never a DIE offset (offset 0 is a CU
 * header), so it marks empty slots. */
typedef struct name_slot {
    Dwarf_Off off;
    const char *name;
    int is_linkage;
} name_slot;

typedef struct dw {
    Dwarf_Debug dbg;
    sym_intern *in;
    uint64_t errors;
    int oom;

    sym_row *rows;
    size_t nrows, rows_cap;
    sym_scope *scopes;
    size_t nscopes, scopes_cap;
    range *ranges;
    size_t nranges, ranges_cap;

    name_slot *names;
    size_t names_cap, names_count;

    /* the CU being read */
    const char **files; /* dwarf_srcfiles of the CU, read on first need */
    size_t nfiles;
    int files_read;
    Dwarf_Die cu_die;
    const char ***files_buf; /* reused between CUs */
    size_t *files_cap;
    const char **lazy; /* names by index got from dwarf_linesrc, NULL = not yet */
    size_t lazy_n, lazy_cap;
    const unsigned char *line_sec; /* raw .debug_line (decompressed), NULL if unusable */
    size_t line_size;
    int file_base;      /* 0 for DWARF 5 line tables, 1 for DWARF 2-4 */
    Dwarf_Half version; /* CU version */
    Dwarf_Addr cu_base; /* CU DW_AT_low_pc: base of DWARF 2-4 range lists */
    int cu_is_c;        /* the CU language is C-like (see SYM_SCOPE_NAME_FROM_SYMTAB) */
    Dwarf_Half cur_tag; /* tag of the scope DIE being named (die_name) */
    pc_range *tmp;      /* ranges of the DIE being read */
    size_t tmp_cap;
    sym_cu own; /* the unit as dies.c reads it */
    const sym_secs *secs;
    int own_files;        /* file names from the line table header (no libdwarf) */
    const char *comp_dir; /* the unit's DW_AT_comp_dir, for own_files */
} dw;

static void dw_fail(dw *c, Dwarf_Error *err)
{
    if (*err) {
        dwarf_dealloc_error(c->dbg, *err);
        *err = NULL;
    }
    c->errors++;
}

/* ---- attributes ---------------------------------------------------------- */

/* The string value of attribute at, or NULL.  Points into a section. */
static const char *attr_string(dw *c, Dwarf_Die die, Dwarf_Half at)
{
    Dwarf_Error err = NULL;
    char *s = NULL;
    int rc = dwarf_die_text(die, at, &s, &err);
    if (rc == DW_DLV_ERROR || err) {
        dw_fail(c, &err);
        return NULL;
    }
    return rc == DW_DLV_OK ? s : NULL;
}

/* Attribute at of die with its form.  Returns 1 with *a set (the caller
 * deallocates it; *form is 0 if it could not be read), 0 when the DIE has no
 * such attribute or it cannot be read (errors counted through dw_fail). */
static int attr_get(dw *c, Dwarf_Die die, Dwarf_Half at, Dwarf_Attribute *a, Dwarf_Half *form)
{
    Dwarf_Error err = NULL;
    *a = NULL;
    *form = 0;
    int rc = dwarf_attr(die, at, a, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK)
        return 0;
    rc = dwarf_whatform(*a, form, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK)
        *form = 0;
    return 1;
}

/* Reference attribute at as a global .debug_info offset.  Returns 1 if set. */
static int attr_ref(dw *c, Dwarf_Die die, Dwarf_Half at, Dwarf_Off *off)
{
    Dwarf_Error err = NULL;
    Dwarf_Attribute a;
    Dwarf_Half form;
    if (!attr_get(c, die, at, &a, &form))
        return 0;
    int ok = 0, rc;
    /* references into a dwz supplementary file or a type unit point outside
     * this .debug_info: not followed */
    if (form && form != DW_FORM_GNU_ref_alt && form != DW_FORM_ref_sig8 &&
        form != DW_FORM_ref_sup4 && form != DW_FORM_ref_sup8) {
        rc = dwarf_global_formref(a, off, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(c, &err);
        ok = rc == DW_DLV_OK && *off != 0;
    }
    dwarf_dealloc_attribute(a);
    return ok;
}

/* Unsigned constant attribute at.  gcc 12 writes DW_AT_call_file as
 * DW_FORM_implicit_const, which dwarf_formudata rejects: read it with
 * dwarf_formsdata.  Returns 1 if set. */
static int attr_udata(dw *c, Dwarf_Die die, Dwarf_Half at, uint64_t *out)
{
    Dwarf_Error err = NULL;
    Dwarf_Attribute a;
    Dwarf_Half form;
    if (!attr_get(c, die, at, &a, &form))
        return 0;
    int ok = 0, rc;
    if (form) {
        if (form == DW_FORM_implicit_const || form == DW_FORM_sdata) {
            Dwarf_Signed v = 0;
            rc = dwarf_formsdata(a, &v, &err);
            if (rc == DW_DLV_OK && v >= 0) {
                *out = (uint64_t)v;
                ok = 1;
            }
        } else {
            Dwarf_Unsigned v = 0;
            rc = dwarf_formudata(a, &v, &err);
            if (rc == DW_DLV_OK) {
                *out = v;
                ok = 1;
            }
        }
        if (rc == DW_DLV_ERROR || err)
            dw_fail(c, &err);
    }
    dwarf_dealloc_attribute(a);
    return ok;
}

/* ---- names --------------------------------------------------------------- */

static name_slot *name_find(dw *c, Dwarf_Off off)
{
    if (!c->names_cap)
        return NULL;
    size_t i = (size_t)((off * 0x9e3779b97f4a7c15ull) >> 20) & (c->names_cap - 1);
    while (c->names[i].off) {
        if (c->names[i].off == off)
            return &c->names[i];
        i = (i + 1) & (c->names_cap - 1);
    }
    return NULL;
}

static void name_put(dw *c, Dwarf_Off off, const char *name, int is_linkage)
{
    if ((c->names_count + 1) * 2 > c->names_cap) {
        size_t ncap = c->names_cap ? c->names_cap * 2 : 1024;
        name_slot *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return; /* a cache: losing an entry only costs time */
        for (size_t j = 0; j < c->names_cap; j++) {
            if (!c->names[j].off)
                continue;
            size_t i = (size_t)((c->names[j].off * 0x9e3779b97f4a7c15ull) >> 20) & (ncap - 1);
            while (ns[i].off)
                i = (i + 1) & (ncap - 1);
            ns[i] = c->names[j];
        }
        free(c->names);
        c->names = ns;
        c->names_cap = ncap;
    }
    size_t i = (size_t)((off * 0x9e3779b97f4a7c15ull) >> 20) & (c->names_cap - 1);
    while (c->names[i].off)
        i = (i + 1) & (c->names_cap - 1);
    c->names[i].off = off;
    c->names[i].name = name;
    c->names[i].is_linkage = is_linkage;
    c->names_count++;
}

static const char *die_name(dw *c, Dwarf_Die die, int depth, int *is_linkage);

static const char *ref_name(dw *c, Dwarf_Off off, int depth, int *is_linkage)
{
    name_slot *hit = name_find(c, off);
    if (hit) {
        *is_linkage = hit->is_linkage;
        return hit->name;
    }
    Dwarf_Error err = NULL;
    Dwarf_Die t = NULL;
    int rc = dwarf_offdie_b(c->dbg, off, 1, &t, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK)
        return NULL;
    const char *n = die_name(c, t, depth + 1, is_linkage);
    dwarf_dealloc_die(t);
    name_put(c, off, n, *is_linkage);
    return n;
}

/* A scope's name as binutils' addr2line chooses it: a linkage name found
 * anywhere along DW_AT_abstract_origin / DW_AT_specification wins over a
 * plain DW_AT_name; otherwise the first DW_AT_name.  Interned, or NULL. */
static const char *die_name(dw *c, Dwarf_Die die, int depth, int *is_linkage)
{
    *is_linkage = 0;
    if (depth == 0 && c->cur_tag == DW_TAG_inlined_subroutine) {
        /* An inlined call names nothing itself: its abstract origin does.
         * Asking for the origin first saves the four attribute lookups that
         * would miss (each one a scan of the DIE's attributes), a tenth of
         * glibc's load. */
        Dwarf_Off off;
        if (attr_ref(c, die, DW_AT_abstract_origin, &off))
            return ref_name(c, off, depth, is_linkage);
    }
    const char *s = attr_string(c, die, DW_AT_linkage_name);
    if (!s)
        s = attr_string(c, die, DW_AT_MIPS_linkage_name);
    if (s) {
        *is_linkage = 1;
        return sym_intern_str(c->in, s);
    }
    const char *name = attr_string(c, die, DW_AT_name);
    if (name) {
        name = sym_intern_str(c->in, name);
        if (!name)
            c->oom = 1;
    }
    if (depth >= MAX_REF_DEPTH)
        return name;
    static const Dwarf_Half refs[] = {DW_AT_abstract_origin, DW_AT_specification};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        Dwarf_Off off;
        if (!attr_ref(c, die, refs[i], &off))
            continue;
        int link = 0;
        const char *n = ref_name(c, off, depth, &link);
        if (n && link) {
            *is_linkage = 1;
            return n;
        }
        if (!name)
            name = n;
    }
    return name;
}

/* ---- ranges -------------------------------------------------------------- */

/* Fills c->tmp with the DIE's address ranges and returns how many:
 * low_pc/high_pc, else DW_AT_ranges (.debug_rnglists for DWARF 5,
 * .debug_ranges before). */
static int die_ranges(dw *c, Dwarf_Die die)
{
    Dwarf_Error err = NULL;
    Dwarf_Addr lo = 0, hi = 0;
    int rc = dwarf_lowpc(die, &lo, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc == DW_DLV_OK) {
        Dwarf_Half form = 0;
        enum Dwarf_Form_Class cls = DW_FORM_CLASS_UNKNOWN;
        rc = dwarf_highpc_b(die, &hi, &form, &cls, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(c, &err);
        if (rc != DW_DLV_OK)
            return 0;
        if (cls == DW_FORM_CLASS_CONSTANT)
            hi += lo;
        if (tm_grow((void **)&c->tmp, &c->tmp_cap, 1, sizeof *c->tmp) < 0) {
            c->oom = 1;
            return 0;
        }
        c->tmp[0] = (pc_range){lo, hi};
        return 1;
    }

    Dwarf_Attribute a = NULL;
    rc = dwarf_attr(die, DW_AT_ranges, &a, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK)
        return 0;
    int n = 0;
    Dwarf_Half form = 0;
    Dwarf_Unsigned val = 0;
    rc = dwarf_whatform(a, &form, &err);
    if (rc == DW_DLV_OK) {
        if (form == DW_FORM_rnglistx) {
            rc = dwarf_formudata(a, &val, &err);
        } else {
            Dwarf_Off off = 0;
            rc = dwarf_global_formref(a, &off, &err);
            val = off;
        }
    }
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc == DW_DLV_OK && c->version >= 5) {
        Dwarf_Rnglists_Head head = NULL;
        Dwarf_Unsigned count = 0, goff = 0;
        rc = dwarf_rnglists_get_rle_head(a, form, val, &head, &count, &goff, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(c, &err);
        if (rc == DW_DLV_OK) {
            for (Dwarf_Unsigned i = 0; i < count && n < INT32_MAX; i++) {
                unsigned len = 0, code = 0;
                Dwarf_Unsigned r1, r2, c1 = 0, c2 = 0;
                Dwarf_Bool unavailable = 0;
                rc = dwarf_get_rnglists_entry_fields_a(head, i, &len, &code, &r1, &r2, &unavailable,
                                                       &c1, &c2, &err);
                if (rc == DW_DLV_ERROR || err)
                    dw_fail(c, &err);
                if (rc != DW_DLV_OK || code == DW_RLE_end_of_list)
                    break;
                /* the cooked values are final addresses: base entries
                 * have already been applied */
                if (code == DW_RLE_base_address || code == DW_RLE_base_addressx || unavailable)
                    continue;
                if (tm_grow((void **)&c->tmp, &c->tmp_cap, (size_t)n + 1, sizeof *c->tmp) < 0) {
                    c->oom = 1;
                    break;
                }
                c->tmp[n++] = (pc_range){c1, c2};
            }
            dwarf_dealloc_rnglists_head(head);
        }
    } else if (rc == DW_DLV_OK) {
        Dwarf_Ranges *buf = NULL;
        Dwarf_Signed len = 0;
        Dwarf_Unsigned bytes = 0;
        Dwarf_Off real = 0;
        rc = dwarf_get_ranges_b(c->dbg, val, die, &real, &buf, &len, &bytes, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(c, &err);
        if (rc == DW_DLV_OK) {
            /* entries are offsets from the CU base address, which a base
             * address selection entry replaces */
            Dwarf_Addr base = c->cu_base;
            for (Dwarf_Signed i = 0; i < len && n < INT32_MAX; i++) {
                if (buf[i].dwr_type == DW_RANGES_END)
                    break;
                if (buf[i].dwr_type == DW_RANGES_ADDRESS_SELECTION) {
                    base = buf[i].dwr_addr2;
                    continue;
                }
                if (tm_grow((void **)&c->tmp, &c->tmp_cap, (size_t)n + 1, sizeof *c->tmp) < 0) {
                    c->oom = 1;
                    break;
                }
                c->tmp[n++] = (pc_range){base + buf[i].dwr_addr1, base + buf[i].dwr_addr2};
            }
            dwarf_ranges_dealloc(c->dbg, buf, len);
        }
    }
    dwarf_dealloc_attribute(a);
    return n;
}

/* ---- DIE walk ------------------------------------------------------------ */

/* Languages whose DW_AT_name binutils takes as the symbol name (its
 * mangle_style() == 0): C and a few old ones.  For the others a function
 * without DW_AT_linkage_name is named from the ELF symbol table. */
static int lang_is_c(Dwarf_Unsigned lang)
{
    switch (lang) {
    case DW_LANG_C89:
    case DW_LANG_C:
    case DW_LANG_C99:
    case DW_LANG_C11:
    case 0x2c: /* DW_LANG_C17 (DWARF 6), not in this dwarf.h */
    case DW_LANG_Cobol74:
    case DW_LANG_Cobol85:
    case DW_LANG_Fortran77:
    case DW_LANG_Pascal83:
    case DW_LANG_PLI:
    case DW_LANG_UPC:
    case DW_LANG_Upc:
    case DW_LANG_Mips_Assembler:
        return 1;
    default:
        return 0;
    }
}

static int load_files(dw *c, Dwarf_Die cu, const char ***files, size_t *cap);

/* The name of file number idx of the CU's line table: from the names the
 * line rows already produced, else from the CU's whole file list, read
 * once (an inlined call from a file no row of the CU mentions). */
static const char *file_name(dw *c, uint64_t idx)
{
    if (idx < (uint64_t)c->file_base)
        return NULL;
    idx -= (uint64_t)c->file_base;
    if (idx < c->lazy_n && c->lazy[idx])
        return c->lazy[idx];
    if (!c->files_read) {
        c->files_read = 1;
        load_files(c, c->cu_die, c->files_buf, c->files_cap);
    }
    return idx < c->nfiles ? c->files[idx] : NULL;
}

/* The name of the file of line row ln (index idx): dwarf_linesrc once per
 * distinct file, instead of dwarf_srcfiles for the CU, which parses the
 * line table header a second time and copies every name of it (glibc's
 * CUs list dozens of headers, few of which hold code): 5% of glibc's
 * load. */
static const char *row_file(dw *c, Dwarf_Line ln, uint64_t idx)
{
    if (idx < (uint64_t)c->file_base)
        return NULL;
    size_t i = (size_t)(idx - (uint64_t)c->file_base);
    if (i < c->lazy_n && c->lazy[i])
        return c->lazy[i];
    if (i >= (1u << 20))
        return file_name(c, idx); /* absurd index: no table that large */
    if (i >= c->lazy_n) {
        if (tm_grow((void **)&c->lazy, &c->lazy_cap, i + 1, sizeof *c->lazy) < 0) {
            c->oom = 1;
            return NULL;
        }
        memset(c->lazy + c->lazy_n, 0, (i + 1 - c->lazy_n) * sizeof *c->lazy);
        c->lazy_n = i + 1;
    }
    Dwarf_Error err = NULL;
    char *name = NULL;
    int rc = dwarf_linesrc(ln, &name, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK || !name)
        return NULL;
    c->lazy[i] = sym_intern_str(c->in, name);
    if (!c->lazy[i])
        c->oom = 1;
    dwarf_dealloc(c->dbg, name, DW_DLA_STRING);
    return c->lazy[i];
}

static void walk_children(dw *c, Dwarf_Die parent, int32_t scope, uint32_t depth, int nest,
                          int in_func);

/* Keeps the ranges of c->tmp[0..n) that hold code (address 0 and -1/-2 are
 * what linkers leave for discarded code) at its front; returns how many. */
static int keep_code_ranges(dw *c, int n)
{
    int kept = 0;
    for (int i = 0; i < n; i++) {
        pc_range r = c->tmp[i];
        if (r.lo >= r.hi || r.lo == 0 || r.lo >= ~1ull)
            continue;
        c->tmp[kept++] = r;
    }
    return kept;
}

/* Room for one more scope and kept more ranges.  0, or -1 with c->oom set. */
static int scope_room(dw *c, int kept)
{
    if (c->nscopes >= INT32_MAX ||
        tm_grow((void **)&c->scopes, &c->scopes_cap, c->nscopes + 1, sizeof *c->scopes) < 0 ||
        tm_grow((void **)&c->ranges, &c->ranges_cap, c->nranges + (size_t)kept, sizeof *c->ranges) <
            0) {
        c->oom = 1;
        return -1;
    }
    return 0;
}

/* Adds (room made by scope_room) a function or inlined call named name,
 * whose code is c->tmp[0..kept), inside scope parent (-1: a function of its
 * own, nested or not), and its ranges at depth.  Returns it, its id in *id;
 * the caller fills an inlined call's call site. */
static sym_scope *scope_add(dw *c, int kept, const char *name, int link, int32_t parent,
                            uint32_t depth, uint32_t *id)
{
    sym_scope *sc = &c->scopes[c->nscopes];
    sc->name = name;
    sc->call_file = NULL;
    sc->call_line = 0;
    sc->entry = c->tmp[0].lo;
    sc->parent = parent;
    sc->flags = parent < 0 && !link && !c->cu_is_c ? SYM_SCOPE_NAME_FROM_SYMTAB : 0;
    *id = (uint32_t)c->nscopes++;
    for (int i = 0; i < kept; i++) {
        range *r = &c->ranges[c->nranges];
        r->lo = c->tmp[i].lo;
        r->hi = c->tmp[i].hi;
        r->scope = *id;
        r->depth = depth;
        r->order = (uint32_t)c->nranges;
        c->nranges++;
    }
    return sc;
}

/* in_func: die lies inside a function's DIE.  gcc writes the out-of-line
 * body of a lambda's operator() (and of other local classes' methods) inside
 * the closure type, inside the enclosing function's DIE, which is often an
 * abstract instance without code: both are searched, but only there (types
 * at namespace level hold declarations only, and walking them all would
 * slow the load down). */
static void visit(dw *c, Dwarf_Die die, int32_t scope, uint32_t depth, int nest, int in_func)
{
    Dwarf_Error err = NULL;
    Dwarf_Half tag = 0;
    if (dwarf_tag(die, &tag, &err) != DW_DLV_OK) {
        dw_fail(c, &err);
        return;
    }
    switch (tag) {
    case DW_TAG_subprogram:
    case DW_TAG_inlined_subroutine:
    case DW_TAG_entry_point: {
        int kept = keep_code_ranges(c, die_ranges(c, die));
        if (!kept) {
            /* declarations and abstract instances: no code of their own,
             * but maybe local classes with method bodies */
            if (tag == DW_TAG_subprogram)
                walk_children(c, die, scope, depth, nest + 1, 1);
            return;
        }
        if (scope_room(c, kept) < 0)
            return;
        int link;
        c->cur_tag = tag;
        const char *name = die_name(c, die, 0, &link);
        int inlined = tag == DW_TAG_inlined_subroutine;
        uint32_t id;
        sym_scope *sc = scope_add(c, kept, name, link, inlined ? scope : -1, depth, &id);
        if (inlined) {
            uint64_t v;
            if (attr_udata(c, die, DW_AT_call_file, &v))
                sc->call_file = file_name(c, v);
            if (attr_udata(c, die, DW_AT_call_line, &v))
                sc->call_line = v > UINT32_MAX ? 0 : (uint32_t)v;
        }
        walk_children(c, die, (int32_t)id, depth + 1, nest + 1, 1);
        return;
    }
    case DW_TAG_lexical_block:
    case DW_TAG_try_block:
    case DW_TAG_catch_block:
    case DW_TAG_namespace:
    case DW_TAG_module:
        walk_children(c, die, scope, depth, nest + 1, in_func);
        return;
    case DW_TAG_structure_type:
    case DW_TAG_class_type:
    case DW_TAG_union_type:
        if (in_func)
            walk_children(c, die, scope, depth, nest + 1, in_func);
        return;
    default:
        return;
    }
}

static void walk_children(dw *c, Dwarf_Die parent, int32_t scope, uint32_t depth, int nest,
                          int in_func)
{
    if (nest > MAX_NEST || c->oom)
        return;
    Dwarf_Error err = NULL;
    Dwarf_Die child = NULL;
    int rc = dwarf_child(parent, &child, &err);
    while (rc == DW_DLV_OK) {
        visit(c, child, scope, depth, nest, in_func);
        Dwarf_Die next = NULL;
        rc = dwarf_siblingof_b(c->dbg, child, 1, &next, &err);
        dwarf_dealloc_die(child);
        child = next;
        if (c->oom)
            break;
    }
    if (rc == DW_DLV_OK && child)
        dwarf_dealloc_die(child);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
}

/* ---- the same walk over dies.c's DIEs -------------------------------------
 * Mirrors die_name, visit and walk_children step by step, on DIEs read
 * straight from the section.  Each returns -1 when dies.c gives up on
 * something; the caller then walks the whole unit with libdwarf again. */

static int own_name(dw *c, const sym_die *d, int depth, int *is_linkage, const char **out);

static int own_ref_name(dw *c, uint64_t off, int depth, int *is_linkage, const char **out)
{
    name_slot *hit = name_find(c, off);
    if (hit) {
        *is_linkage = hit->is_linkage;
        *out = hit->name;
        return 0;
    }
    sym_die t;
    if (sym_die_at(&c->own, off, &t) < 0 || own_name(c, &t, depth + 1, is_linkage, out) < 0)
        return -1;
    name_put(c, off, *out, *is_linkage);
    return 0;
}

static int own_name(dw *c, const sym_die *d, int depth, int *is_linkage, const char **out)
{
    *is_linkage = 0;
    *out = NULL;
    if (depth == 0 && c->cur_tag == DW_TAG_inlined_subroutine && (d->has & SYM_DIE_ORIGIN))
        return own_ref_name(c, d->origin, depth, is_linkage, out);
    const char *s = (d->has & SYM_DIE_LINKAGE)        ? d->linkage
                    : (d->has & SYM_DIE_MIPS_LINKAGE) ? d->mips_linkage
                                                      : NULL;
    if (s) {
        *is_linkage = 1;
        *out = sym_intern_str(c->in, s);
        return 0;
    }
    const char *name = NULL;
    if (d->has & SYM_DIE_NAME) {
        name = sym_intern_str(c->in, d->name);
        if (!name)
            c->oom = 1;
    }
    *out = name;
    if (depth >= MAX_REF_DEPTH)
        return 0;
    const uint64_t refs[2] = {d->has & SYM_DIE_ORIGIN ? d->origin : 0,
                              d->has & SYM_DIE_SPEC ? d->spec : 0};
    for (int i = 0; i < 2; i++) {
        if (!refs[i])
            continue;
        int link = 0;
        const char *n;
        if (own_ref_name(c, refs[i], depth, &link, &n) < 0)
            return -1;
        if (n && link) {
            *is_linkage = 1;
            *out = n;
            return 0;
        }
        if (!*out)
            *out = n;
    }
    return 0;
}

static int own_children(dw *c, const sym_die *parent, const unsigned char **p, int32_t scope,
                        uint32_t depth, int nest, int in_func);

/* Visits d; leaves *p past its subtree. */
static int own_visit(dw *c, const sym_die *d, const unsigned char **p, int32_t scope,
                     uint32_t depth, int nest, int in_func)
{
    switch (d->tag) {
    case DW_TAG_subprogram:
    case DW_TAG_inlined_subroutine:
    case DW_TAG_entry_point: {
        int oom = 0;
        int n = sym_die_ranges(&c->own, d, c->cu_base, &c->tmp, &c->tmp_cap, &oom);
        if (n < 0)
            return -1;
        if (oom) {
            c->oom = 1;
            return 0;
        }
        int kept = keep_code_ranges(c, n);
        if (!kept) {
            if (d->tag == DW_TAG_subprogram)
                return own_children(c, d, p, scope, depth, nest + 1, 1);
            return sym_die_skip_children(&c->own, d, p);
        }
        if (scope_room(c, kept) < 0)
            return 0;
        int link;
        const char *name;
        c->cur_tag = (Dwarf_Half)d->tag;
        if (own_name(c, d, 0, &link, &name) < 0)
            return -1;
        int inlined = d->tag == DW_TAG_inlined_subroutine;
        uint32_t id;
        sym_scope *sc = scope_add(c, kept, name, link, inlined ? scope : -1, depth, &id);
        if (inlined) {
            if (d->has & SYM_DIE_CALL_FILE)
                sc->call_file = file_name(c, d->call_file);
            if (d->has & SYM_DIE_CALL_LINE)
                sc->call_line = d->call_line > UINT32_MAX ? 0 : (uint32_t)d->call_line;
        }
        return own_children(c, d, p, (int32_t)id, depth + 1, nest + 1, 1);
    }
    case DW_TAG_lexical_block:
    case DW_TAG_try_block:
    case DW_TAG_catch_block:
    case DW_TAG_namespace:
    case DW_TAG_module:
        return own_children(c, d, p, scope, depth, nest + 1, in_func);
    case DW_TAG_structure_type:
    case DW_TAG_class_type:
    case DW_TAG_union_type:
        if (in_func)
            return own_children(c, d, p, scope, depth, nest + 1, in_func);
        return sym_die_skip_children(&c->own, d, p);
    default:
        return sym_die_skip_children(&c->own, d, p);
    }
}

/* walk_children: visits parent's children; *p is parent's first byte after
 * its attributes on entry, past its subtree on return. */
static int own_children(dw *c, const sym_die *parent, const unsigned char **p, int32_t scope,
                        uint32_t depth, int nest, int in_func)
{
    *p = parent->next;
    if (!parent->children)
        return 0;
    if (nest > MAX_NEST || c->oom)
        return sym_die_skip_children(&c->own, parent, p);
    for (;;) {
        sym_die d;
        int r = sym_die_read(&c->own, p, &d, SYM_DIE_WALK);
        if (r <= 0)
            return r;
        if (own_visit(c, &d, p, scope, depth, nest, in_func) < 0)
            return -1;
        if (c->oom)
            return 0;
    }
}

/* Walks the unit at .debug_info offset off as walk_children(cu) would.
 * Returns 0, or -1 with the unit's scopes and ranges taken back. */
static int own_walk_unit(dw *c, const sym_secs *secs, uint64_t off)
{
    if (!sym_dwarf_use_own_dies || sym_cu_open(&c->own, secs, off) < 0 ||
        c->own.version != c->version)
        return -1;
    size_t nscopes = c->nscopes, nranges = c->nranges;
    const unsigned char *p = c->own.dies;
    sym_die top;
    if (sym_die_read(&c->own, &p, &top, SYM_DIE_ALL) != 1 ||
        own_children(c, &top, &p, -1, 0, 0, 0) < 0) {
        c->nscopes = nscopes;
        c->nranges = nranges;
        return -1;
    }
    return 0;
}

/* ---- line tables --------------------------------------------------------- */

static void free_srcfiles(dw *c, char **files, Dwarf_Signed n)
{
    for (Dwarf_Signed i = 0; i < n; i++)
        dwarf_dealloc(c->dbg, files[i], DW_DLA_STRING);
    dwarf_dealloc(c->dbg, files, DW_DLA_LIST);
}

/* Loads the CU's file names into c->files (interned).  Returns 0 or -1. */
static int load_files(dw *c, Dwarf_Die cu, const char ***files, size_t *cap)
{
    Dwarf_Error err = NULL;
    char **src = NULL;
    Dwarf_Signed n = 0;
    c->nfiles = 0;
    int rc = dwarf_srcfiles(cu, &src, &n, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK)
        return -1;
    if (n > 0 && tm_grow((void **)files, cap, (size_t)n, sizeof **files) < 0) {
        free_srcfiles(c, src, n);
        c->oom = 1;
        return -1;
    }
    for (Dwarf_Signed i = 0; i < n; i++)
        (*files)[i] = src[i] ? sym_intern_str(c->in, src[i]) : NULL;
    c->files = *files;
    c->nfiles = (size_t)(n > 0 ? n : 0);
    free_srcfiles(c, src, n);
    return 0;
}

/* Appends one line-table row to c->rows, keeping what addr2line (bfd)
 * keeps: only the last row of a run of rows at one address within a
 * sequence (so the end marker replaces rows at its own address), and no
 * sequence that starts at address 0 (code the linker discarded).
 * *seq_start is the index of the current sequence's first row.  Returns 0,
 * or -1 when out of memory. */
static int add_row(dw *c, size_t *seq_start, uint64_t addr, const char *file, uint64_t line,
                   int end)
{
    sym_row *last = c->nrows > *seq_start ? &c->rows[c->nrows - 1] : NULL;
    if (last && last->addr > addr) {
        /* addresses go backwards inside a sequence: corrupt; drop it */
        c->nrows = *seq_start;
        last = NULL;
    }
    sym_row *r;
    if (last && last->addr == addr) {
        r = last;
    } else {
        if (c->nrows >= c->rows_cap &&
            tm_grow((void **)&c->rows, &c->rows_cap, c->nrows + 1, sizeof *c->rows) < 0) {
            c->oom = 1;
            return -1;
        }
        r = &c->rows[c->nrows++];
    }
    r->addr = addr;
    r->file = file;
    r->line = line > UINT32_MAX ? 0 : (uint32_t)line;
    r->end = end ? 1 : 0;
    if (end) {
        if (c->rows[*seq_start].addr == 0)
            c->nrows = *seq_start;
        *seq_start = c->nrows;
    }
    return 0;
}

/* ---- line programs, decoded here --------------------------------------------
 * libdwarf's dwarf_srclines_b allocates two objects per row and frees them
 * again: a third of a load (40% for a large -O2 program).  The line program
 * itself is a small state machine over .debug_line, run here on the raw
 * section; libdwarf still supplies the file names (dwarf_srcfiles, the same
 * names as before).  Anything unusual (VLIW op_index, DW_LNE_define_file, a
 * header that does not parse, a big-endian file) falls back to libdwarf for
 * that CU: the rows are the same either way. */

typedef tm_rd lp_cursor;

/* The CU's DW_AT_stmt_list offset.  Returns 1 if present. */
static int stmt_list(dw *c, Dwarf_Die cu, uint64_t *off)
{
    Dwarf_Error err = NULL;
    Dwarf_Attribute a = NULL;
    int rc = dwarf_attr(cu, DW_AT_stmt_list, &a, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK)
        return 0;
    Dwarf_Off o = 0;
    rc = dwarf_global_formref(a, &o, &err);
    if (rc == DW_DLV_ERROR || err) {
        if (err) {
            dwarf_dealloc_error(c->dbg, err);
            err = NULL;
        }
        Dwarf_Unsigned u = 0;
        rc = dwarf_formudata(a, &u, &err);
        if (err) {
            dwarf_dealloc_error(c->dbg, err);
            err = NULL;
        }
        o = u;
    }
    dwarf_dealloc_attribute(a);
    *off = o;
    return rc == DW_DLV_OK;
}

/* Runs the CU's line program.  Returns 0 (rows appended), or -1 with
 * nothing appended: the caller then asks libdwarf. */
static int decode_lines_at(dw *c, uint64_t off);

static int decode_lines(dw *c, Dwarf_Die cu)
{
    uint64_t off;
    if (!c->line_sec || !stmt_list(c, cu, &off))
        return -1;
    return decode_lines_at(c, off);
}

/* ---- file names, as dwarf_srcfiles composes them ----------------------------
 * For the path without libdwarf: the line table header's directories and
 * files, each name joined to its directory and the unit's DW_AT_comp_dir as
 * libdwarf 20210528 joins them (test_symbolize_dies checks every name
 * against it).  An absolute name stands alone; a relative one goes under
 * its directory (DWARF 5: entry dir of the list, 0 included; before: entry
 * dir - 1, 0 meaning none), and a relative directory under comp_dir. */

static int is_abs(const char *p)
{
    return p[0] == '/';
}

/* a + "/" + b into buf (no separator doubled).  Returns 0, or -1 if too long. */
static int path_join(char *buf, size_t max, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int sep = la > 0 && a[la - 1] != '/';
    if (la + (size_t)sep + lb + 1 > max)
        return -1;
    memmove(buf, a, la);
    if (sep)
        buf[la] = '/';
    memcpy(buf + la + (size_t)sep, b, lb + 1);
    return 0;
}

/* One string of a DWARF 5 directory or file entry. */
static int lp_string(dw *c, lp_cursor *r, uint64_t form, size_t offsz, const char **out)
{
    const sym_sec *sec = NULL;
    uint64_t off = 0;
    switch (form) {
    case DW_FORM_string: {
        const unsigned char *z = memchr(r->p, 0, (size_t)(r->end - r->p));
        if (!z)
            return -1;
        *out = (const char *)r->p;
        r->p = z + 1;
        return 0;
    }
    case DW_FORM_line_strp:
        sec = &c->secs->line_str;
        off = tm_rd_fixed(r, offsz);
        break;
    case DW_FORM_strp:
        sec = &c->secs->str;
        off = tm_rd_fixed(r, offsz);
        break;
    default:
        return -1;
    }
    if (r->bad || !sec->p || off >= sec->n || !memchr(sec->p + off, 0, sec->n - off))
        return -1;
    *out = (const char *)sec->p + off;
    return 0;
}

/* Skips a DWARF 5 entry field of a form that is not a string; -1 if unknown. */
static int lp_skip_form(lp_cursor *r, uint64_t form, uint64_t *val)
{
    *val = 0;
    switch (form) {
    case DW_FORM_udata:
        *val = tm_rd_uleb(r);
        return 0;
    case DW_FORM_data1:
    case DW_FORM_data2:
    case DW_FORM_data4:
    case DW_FORM_data8:
        *val = tm_rd_fixed(r, form == DW_FORM_data1   ? 1
                              : form == DW_FORM_data2 ? 2
                              : form == DW_FORM_data4 ? 4
                                                      : 8);
        return 0;
    case DW_FORM_data16:
        tm_rd_fixed(r, 8);
        tm_rd_fixed(r, 8);
        return 0;
    case DW_FORM_block: {
        uint64_t n = tm_rd_uleb(r);
        if (n > (uint64_t)(r->end - r->p))
            return -1;
        r->p += n;
        return 0;
    }
    default:
        return -1;
    }
}

/* The names of the header's file table, from r (just past the standard
 * opcode lengths) to prog, into c->files.  Returns 0 or -1. */
static int own_file_table(dw *c, lp_cursor *r, unsigned version, size_t offsz)
{
    const char *dirs_fixed[1];
    const char **dirs = dirs_fixed;
    size_t ndirs = 0, dcap = 0;
    const char **dyn = NULL;
    size_t nfiles = 0;
    char buf[4096];
    int rc = -1;
#define PUSH_DIR(s)                                                                                \
    do {                                                                                           \
        if (tm_grow((void **)&dyn, &dcap, ndirs + 1, sizeof *dyn) < 0)                             \
            goto out;                                                                              \
        dyn[ndirs++] = (s);                                                                        \
        dirs = dyn;                                                                                \
    } while (0)
    if (version >= 5) {
        uint64_t fmt[2][16][2];
        unsigned nfmt[2];
        const char *path = NULL;
        for (int t = 0; t < 2; t++) {
            nfmt[t] = (unsigned)tm_rd_fixed(r, 1);
            if (nfmt[t] > 16)
                goto out;
            for (unsigned k = 0; k < nfmt[t]; k++) {
                fmt[t][k][0] = tm_rd_uleb(r);
                fmt[t][k][1] = tm_rd_uleb(r);
            }
            uint64_t count = tm_rd_uleb(r);
            if (r->bad || count > (uint64_t)(r->end - r->p))
                goto out;
            for (uint64_t e = 0; e < count; e++) {
                uint64_t dir = 0;
                path = NULL;
                for (unsigned k = 0; k < nfmt[t]; k++) {
                    uint64_t v = 0;
                    if (fmt[t][k][0] == DW_LNCT_path) {
                        if (lp_string(c, r, fmt[t][k][1], offsz, &path) < 0)
                            goto out;
                    } else if (lp_skip_form(r, fmt[t][k][1], &v) < 0) {
                        goto out;
                    } else if (fmt[t][k][0] == DW_LNCT_directory_index) {
                        dir = v;
                    }
                    if (r->bad)
                        goto out;
                }
                if (!path)
                    goto out;
                if (t == 0) {
                    PUSH_DIR(path);
                    continue;
                }
                if (!is_abs(path)) {
                    if (dir >= ndirs)
                        goto out;
                    const char *inc = dirs[dir];
                    if (is_abs(inc) || !c->comp_dir) {
                        if (path_join(buf, sizeof buf, inc, path) < 0)
                            goto out;
                    } else {
                        char tmp[4096];
                        if (path_join(tmp, sizeof tmp, c->comp_dir, inc) < 0 ||
                            path_join(buf, sizeof buf, tmp, path) < 0)
                            goto out;
                    }
                    path = buf;
                }
                if (tm_grow((void **)c->files_buf, c->files_cap, nfiles + 1,
                            sizeof **c->files_buf) < 0)
                    goto out;
                const char *in = sym_intern_str(c->in, path);
                if (!in)
                    goto out;
                (*c->files_buf)[nfiles++] = in;
            }
        }
    } else {
        for (;;) {
            const char *d = (const char *)r->p;
            const unsigned char *z = memchr(r->p, 0, (size_t)(r->end - r->p));
            if (!z)
                goto out;
            r->p = z + 1;
            if (!*d)
                break;
            PUSH_DIR(d);
        }
        for (;;) {
            const char *path = (const char *)r->p;
            const unsigned char *z = memchr(r->p, 0, (size_t)(r->end - r->p));
            if (!z)
                goto out;
            r->p = z + 1;
            if (!*path)
                break;
            uint64_t dir = tm_rd_uleb(r);
            tm_rd_uleb(r);
            tm_rd_uleb(r);
            if (r->bad)
                goto out;
            if (!is_abs(path)) {
                const char *inc = NULL;
                if (dir > 0) {
                    if (dir > ndirs)
                        goto out;
                    inc = dirs[dir - 1];
                }
                if (inc && (is_abs(inc) || !c->comp_dir)) {
                    if (path_join(buf, sizeof buf, inc, path) < 0)
                        goto out;
                    path = buf;
                } else if (inc) {
                    char tmp[4096];
                    if (path_join(tmp, sizeof tmp, c->comp_dir, inc) < 0 ||
                        path_join(buf, sizeof buf, tmp, path) < 0)
                        goto out;
                    path = buf;
                } else if (c->comp_dir) {
                    if (path_join(buf, sizeof buf, c->comp_dir, path) < 0)
                        goto out;
                    path = buf;
                }
            }
            if (tm_grow((void **)c->files_buf, c->files_cap, nfiles + 1, sizeof **c->files_buf) < 0)
                goto out;
            const char *in = sym_intern_str(c->in, path);
            if (!in)
                goto out;
            (*c->files_buf)[nfiles++] = in;
        }
    }
#undef PUSH_DIR
    c->files = *c->files_buf;
    c->nfiles = nfiles;
    rc = 0;
out:
    free(dyn);
    return rc;
}

/* Runs the line program at .debug_line offset off (with its file table
 * read here when c->own_files is set).  Returns 0 (rows appended), or -1
 * with nothing appended. */
static int decode_lines_at(dw *c, uint64_t off)
{
    if (!c->line_sec || off >= c->line_size)
        return -1;
    lp_cursor r = {c->line_sec + off, c->line_sec + c->line_size, 0};
    uint64_t unit_len = tm_rd_fixed(&r, 4);
    size_t offsz = 4;
    if (unit_len == 0xffffffffu) {
        unit_len = tm_rd_fixed(&r, 8);
        offsz = 8;
    }
    if (r.bad || unit_len > (uint64_t)(r.end - r.p) || unit_len < 2)
        return -1;
    r.end = r.p + unit_len;
    unsigned version = (unsigned)tm_rd_fixed(&r, 2);
    if (version < 2 || version > 5)
        return -1;
    size_t addr_size = 8;
    if (version >= 5) {
        addr_size = (size_t)tm_rd_fixed(&r, 1);
        if (tm_rd_fixed(&r, 1) != 0) /* segment selectors */
            return -1;
    }
    uint64_t hlen = tm_rd_fixed(&r, offsz);
    if (r.bad || hlen > (uint64_t)(r.end - r.p))
        return -1;
    const unsigned char *prog = r.p + hlen;
    unsigned min_inst = (unsigned)tm_rd_fixed(&r, 1);
    unsigned max_ops = version >= 4 ? (unsigned)tm_rd_fixed(&r, 1) : 1;
    tm_rd_fixed(&r, 1); /* default_is_stmt: rows are kept either way */
    int line_base = (int)(signed char)tm_rd_fixed(&r, 1);
    unsigned line_range = (unsigned)tm_rd_fixed(&r, 1);
    unsigned opcode_base = (unsigned)tm_rd_fixed(&r, 1);
    if (r.bad || max_ops != 1 || line_range == 0 || opcode_base == 0 || prog < r.p ||
        (size_t)(prog - r.p) < opcode_base - 1)
        return -1;
    unsigned char std_len[256];
    memset(std_len, 0, sizeof std_len);
    for (unsigned k = 1; k < opcode_base; k++)
        std_len[k] = r.p[k - 1];
    if (c->own_files) {
        lp_cursor h = {r.p + opcode_base - 1, prog, 0};
        if (own_file_table(c, &h, version, offsz) < 0)
            return -1;
    }
    r.p = prog;
    c->file_base = version >= 5 ? 0 : 1;

    size_t first = c->nrows, seq_start = c->nrows;
    uint64_t addr = 0, file = 1, line = 1;
    int fail = 0;
    /* the name of the current file, looked up at the first row after the
     * file changes rather than for each row (5% of a large program's load) */
    const char *fname = NULL;
    int fname_ok = 0;
#define FNAME() (fname_ok ? fname : (fname_ok = 1, fname = file_name(c, file)))
    while (r.p < r.end && !r.bad && !fail && !c->oom) {
        unsigned op = *r.p++;
        if (op >= opcode_base) {
            unsigned adj = op - opcode_base;
            addr += (uint64_t)(adj / line_range) * min_inst;
            line += (uint64_t)(int64_t)(line_base + (int)(adj % line_range));
            fail = add_row(c, &seq_start, addr, FNAME(), line, 0) < 0;
            continue;
        }
        switch (op) {
        case 0: { /* extended */
            uint64_t len = tm_rd_uleb(&r);
            if (r.bad || len == 0 || len > (uint64_t)(r.end - r.p)) {
                fail = 1;
                break;
            }
            const unsigned char *next = r.p + len;
            unsigned sub = *r.p++;
            if (sub == DW_LNE_end_sequence) {
                fail = add_row(c, &seq_start, addr, FNAME(), line, 1) < 0;
                addr = 0;
                file = 1;
                line = 1;
                fname_ok = 0;
            } else if (sub == DW_LNE_set_address) {
                if (len - 1 != addr_size && version >= 5) {
                    fail = 1;
                    break;
                }
                addr = tm_rd_fixed(&r, (size_t)(len - 1));
            } else if (sub == DW_LNE_define_file) {
                fail = 1; /* a file the srcfiles list would not number alike */
                break;
            }
            /* DW_LNE_set_discriminator and unknown ones: skipped */
            r.p = next;
            break;
        }
        case DW_LNS_copy:
            fail = add_row(c, &seq_start, addr, FNAME(), line, 0) < 0;
            break;
        case DW_LNS_advance_pc:
            addr += tm_rd_uleb(&r) * min_inst;
            break;
        case DW_LNS_advance_line:
            line += (uint64_t)tm_rd_sleb(&r);
            break;
        case DW_LNS_set_file:
            file = tm_rd_uleb(&r);
            fname_ok = 0;
            break;
        case DW_LNS_const_add_pc:
            addr += (uint64_t)((255 - opcode_base) / line_range) * min_inst;
            break;
        case DW_LNS_fixed_advance_pc:
            addr += tm_rd_fixed(&r, 2);
            break;
        default: /* column, stmt, block, prologue, epilogue, isa, unknown */
            for (unsigned k = 0; k < std_len[op] && !r.bad; k++)
                tm_rd_uleb(&r);
            break;
        }
    }
#undef FNAME
    if (r.bad || fail) {
        c->nrows = first;
        return -1;
    }
    /* an unterminated last sequence would cover everything after it */
    c->nrows = seq_start;
    return 0;
}

/* Appends the CU's line rows (add_row) as libdwarf decodes them. */
static void load_lines(dw *c, Dwarf_Die cu)
{
    Dwarf_Error err = NULL;
    Dwarf_Unsigned version = 0;
    Dwarf_Small tables = 0;
    Dwarf_Line_Context ctx = NULL;
    int rc = dwarf_srclines_b(cu, &version, &tables, &ctx, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    if (rc != DW_DLV_OK)
        return;
    c->file_base = version >= 5 ? 0 : 1;
    Dwarf_Line *lines = NULL;
    Dwarf_Signed n = 0;
    rc = dwarf_srclines_from_linecontext(ctx, &lines, &n, &err);
    if (rc == DW_DLV_ERROR || err)
        dw_fail(c, &err);
    size_t seq_start = c->nrows;
    for (Dwarf_Signed i = 0; rc == DW_DLV_OK && i < n; i++) {
        Dwarf_Addr addr = 0;
        Dwarf_Unsigned lineno = 0, fileno = 0;
        Dwarf_Bool end = 0;
        if (dwarf_lineaddr(lines[i], &addr, &err) != DW_DLV_OK ||
            dwarf_lineno(lines[i], &lineno, &err) != DW_DLV_OK ||
            dwarf_line_srcfileno(lines[i], &fileno, &err) != DW_DLV_OK ||
            dwarf_lineendsequence(lines[i], &end, &err) != DW_DLV_OK) {
            dw_fail(c, &err);
            break;
        }
        if (add_row(c, &seq_start, addr, row_file(c, lines[i], fileno), lineno, end) < 0)
            break;
    }
    /* an unterminated last sequence would cover everything after it */
    c->nrows = seq_start;
    dwarf_srclines_dealloc_b(ctx);
}

/* ---- assembly ------------------------------------------------------------ */

/* Stable natural merge sort of v[0..n) by before(x, y) ("x strictly before
 * y"): the rows and the scope ranges come as long sorted runs (one or a few
 * per CU, CUs in link order; functions in address order with their inlined
 * calls after them), so this does a fraction of qsort's work, and sorted
 * input costs one pass.  NAME returns 0, or -1 when out of memory (nothing
 * sorted). */
#define DEFINE_NATURAL_SORT(NAME, TYPE, BEFORE)                                                    \
    static int NAME(TYPE *v, size_t n)                                                             \
    {                                                                                              \
        size_t nruns = 0;                                                                          \
        for (size_t i = 1; i < n; i++)                                                             \
            nruns += BEFORE(&v[i], &v[i - 1]);                                                     \
        if (n < 2 || nruns == 0)                                                                   \
            return 0;                                                                              \
        TYPE *tmp = malloc(n * sizeof *tmp);                                                       \
        if (!tmp)                                                                                  \
            return -1;                                                                             \
        TYPE *src = v, *dst = tmp;                                                                 \
        while (nruns > 0) { /* one pass: merge each pair of adjacent runs */                       \
            size_t lo = 0;                                                                         \
            nruns = 0;                                                                             \
            while (lo < n) {                                                                       \
                size_t mid = lo + 1;                                                               \
                while (mid < n && !BEFORE(&src[mid], &src[mid - 1]))                               \
                    mid++;                                                                         \
                size_t hi = mid < n ? mid + 1 : n;                                                 \
                while (hi < n && !BEFORE(&src[hi], &src[hi - 1]))                                  \
                    hi++;                                                                          \
                size_t a = lo, b = mid, k = lo;                                                    \
                while (a < mid && b < hi)                                                          \
                    dst[k++] = BEFORE(&src[b], &src[a]) ? src[b++] : src[a++];                     \
                while (a < mid)                                                                    \
                    dst[k++] = src[a++];                                                           \
                while (b < hi)                                                                     \
                    dst[k++] = src[b++];                                                           \
                nruns += hi < n;                                                                   \
                lo = hi;                                                                           \
            }                                                                                      \
            TYPE *t = src;                                                                         \
            src = dst;                                                                             \
            dst = t;                                                                               \
        }                                                                                          \
        if (src != v)                                                                              \
            memcpy(v, src, n * sizeof *v);                                                         \
        free(tmp);                                                                                 \
        return 0;                                                                                  \
    }

/* Row order: address, then end markers first at equal addresses; rows from
 * different sequences at one address keep their table order (the sort is
 * stable), so the later one is found by the upper-bound lookup. */
static int row_before(const sym_row *x, const sym_row *y)
{
    if (x->addr != y->addr)
        return x->addr < y->addr;
    return x->end > y->end;
}
DEFINE_NATURAL_SORT(sort_rows, sym_row, row_before)

/* Scope order (total): start, depth, longest first, DIE order. */
static int range_before(const range *x, const range *y)
{
    if (x->lo != y->lo)
        return x->lo < y->lo;
    if (x->depth != y->depth)
        return x->depth < y->depth;
    if (x->hi != y->hi)
        return x->hi > y->hi;
    return x->order < y->order;
}
DEFINE_NATURAL_SORT(sort_ranges, range, range_before)

/* The same order for qsort, the fallback when the sort has no memory. */
static int range_cmp(const void *a, const void *b)
{
    return range_before(a, b) ? -1 : range_before(b, a);
}

typedef struct open_range {
    uint64_t lo, hi;
    uint32_t scope;
} open_range;

static int emit(sym_obj *o, size_t *cap, uint64_t lo, uint64_t hi, uint32_t scope)
{
    if (hi <= lo)
        return 0;
    if (o->nsegs && o->segs[o->nsegs - 1].hi == lo && o->segs[o->nsegs - 1].scope == scope) {
        o->segs[o->nsegs - 1].hi = hi;
        return 0;
    }
    if (tm_grow((void **)&o->segs, cap, o->nsegs + 1, sizeof *o->segs) < 0)
        return -1;
    o->segs[o->nsegs++] = (sym_seg){lo, hi, scope};
    return 0;
}

/* Flattens the nested scope ranges into disjoint segments, each naming the
 * innermost scope covering it: a sweep over ranges sorted by (lo, depth,
 * hi desc) with a stack of open ranges.  A range that sticks out of the one
 * enclosing it (not properly nested: corrupt or folded code) is clipped. */
static int flatten(dw *c, sym_obj *o)
{
    /* no ranges: ranges is NULL, which qsort must not be given (a share of
     * a split load without functions; UBSan stopped such children) */
    if (c->nranges && sort_ranges(c->ranges, c->nranges) < 0)
        qsort(c->ranges, c->nranges, sizeof *c->ranges, range_cmp);
    open_range *stack = NULL;
    size_t sp = 0, scap = 0, segcap = 0;
    uint64_t cur = 0;
    int rc = 0;
    for (size_t i = 0; i < c->nranges && rc == 0; i++) {
        range r = c->ranges[i];
        while (sp && stack[sp - 1].hi <= r.lo) {
            open_range t = stack[--sp];
            rc |= emit(o, &segcap, cur, t.hi, t.scope);
            cur = t.hi;
        }
        if (sp) {
            rc |= emit(o, &segcap, cur, r.lo, stack[sp - 1].scope);
            if (r.hi > stack[sp - 1].hi)
                r.hi = stack[sp - 1].hi;
        }
        cur = r.lo;
        if (tm_grow((void **)&stack, &scap, sp + 1, sizeof *stack) < 0) {
            rc = -1;
            break;
        }
        stack[sp++] = (open_range){r.lo, r.hi, r.scope};
    }
    while (rc == 0 && sp) {
        open_range t = stack[--sp];
        rc |= emit(o, &segcap, cur, t.hi, t.scope);
        cur = t.hi;
    }
    free(stack);
    return rc;
}

void sym_dwarf_global_init(void)
{
    /* libdwarf's allocation tree costs ~25% of the load time; we free
     * everything ourselves instead */
    dwarf_set_de_alloc_flag(0);
}

/* The end offset of the last CU header of .debug_info that can be read
 * (the section's size in uncompressed terms), 0 when a header is corrupt.
 * Leaves libdwarf's CU iteration restarted at the first CU. */
static Dwarf_Unsigned cu_extent(dw *c)
{
    Dwarf_Unsigned end = 0;
    for (;;) {
        Dwarf_Unsigned hlen = 0, typeoff = 0, next = 0;
        Dwarf_Half version = 0, asize = 0, lsize = 0, esize = 0, cutype = 0;
        Dwarf_Off abbrev = 0;
        Dwarf_Sig8 sig;
        Dwarf_Error err = NULL;
        int rc = dwarf_next_cu_header_d(c->dbg, 1, &hlen, &version, &abbrev, &asize, &lsize, &esize,
                                        &sig, &typeoff, &next, &cutype, &err);
        if (rc == DW_DLV_ERROR || err) {
            dw_fail(c, &err);
            return 0;
        }
        if (rc != DW_DLV_OK)
            return end; /* DW_DLV_NO_ENTRY: the iteration starts over */
        end = next;
    }
}

/* Sorts and flattens c's tables into o (or frees them when memory ran out).
 * Returns 0, or -1 when out of memory. */
static int finish_tables(dw *c, sym_obj *o)
{
    if (!c->oom) {
        if (sort_rows(c->rows, c->nrows) < 0 || flatten(c, o) < 0)
            c->oom = 1;
    }
    free(c->ranges);
    c->ranges = NULL;
    if (c->oom) {
        free(c->rows);
        free(c->scopes);
        free(o->segs);
        o->segs = NULL;
        o->nsegs = 0;
        return -1;
    }
    o->rows = c->rows;
    o->nrows = c->nrows;
    o->scopes = c->scopes;
    o->nscopes = c->nscopes;
    return 0;
}

/* The whole load without libdwarf: units, line programs, file names and DIEs
 * read by this file and dies.c.  Returns 0 or -1 as sym_dwarf_load, or -2
 * (nothing kept) when something is beyond them: libdwarf loads it instead. */
static int own_load(sym_obj *o, int fd, sym_intern *in, unsigned part, unsigned nparts)
{
    sym_secs secs;
    if (sym_secs_open(&secs, fd) < 0)
        return -2;
    dw c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.secs = &secs;
    c.own_files = 1;
    c.line_sec = secs.line.p;
    c.line_size = secs.line.n;
    const char **files = NULL;
    size_t files_cap = 0;
    c.files_buf = &files;
    c.files_cap = &files_cap;
    int ok = secs.info.p != NULL;

    /* the units' extent, for the shares of a split load: the end of the
     * last unit, as cu_extent finds it with libdwarf */
    uint64_t extent = 0;
    while (ok && extent < secs.info.n) {
        lp_cursor h = {secs.info.p + extent, secs.info.p + secs.info.n, 0};
        uint64_t len = tm_rd_fixed(&h, 4);
        if (len == 0xffffffffu)
            len = tm_rd_fixed(&h, 8);
        else if (len >= 0xfffffff0u)
            ok = 0;
        if (h.bad || len > (uint64_t)(h.end - h.p))
            ok = 0;
        else
            extent = (uint64_t)(h.p - secs.info.p) + len;
    }
    for (uint64_t off = 0; ok && off < extent && !c.oom; off = c.own.end) {
        if (sym_cu_open(&c.own, &secs, off) < 0) {
            ok = 0;
            break;
        }
        if (nparts > 1 && (unsigned)((unsigned __int128)off * nparts / extent) != part)
            continue;
        const unsigned char *p = c.own.dies;
        sym_die top;
        if (sym_die_read(&c.own, &p, &top, SYM_DIE_ALL) != 1) {
            ok = 0;
            break;
        }
        c.version = (Dwarf_Half)c.own.version;
        c.file_base = c.version >= 5 ? 0 : 1;
        c.cu_base = (top.has & SYM_DIE_LOWPC) ? top.lowpc : 0;
        c.cu_is_c = (top.has & SYM_DIE_LANGUAGE) && lang_is_c(top.language);
        c.comp_dir = (top.has & SYM_DIE_COMP_DIR) ? top.comp_dir : NULL;
        c.files = NULL;
        c.nfiles = 0;
        c.files_read = 1; /* never dwarf_srcfiles */
        c.lazy_n = 0;
        if ((top.has & SYM_DIE_STMT_LIST) && decode_lines_at(&c, top.stmt_list) < 0) {
            ok = 0;
            break;
        }
        if (own_children(&c, &top, &p, -1, 0, 0, 0) < 0) {
            ok = 0;
            break;
        }
        sym_dwarf_units_own++;
    }
    sym_cu_free(&c.own);
    free(files);
    free(c.lazy);
    free(c.names);
    free(c.tmp);
    int ret;
    if (!ok) {
        free(c.rows);
        free(c.scopes);
        free(c.ranges);
        ret = -2;
    } else {
        ret = finish_tables(&c, o) < 0 || extent == 0 ? -1 : 0;
    }
    /* the tables point into the intern table, never into the sections */
    sym_secs_close(&secs);
    return ret;
}

static int lib_load(sym_obj *o, int fd, sym_intern *in, uint64_t *errors, unsigned part,
                    unsigned nparts);

int sym_dwarf_load(sym_obj *o, int fd, sym_intern *in, uint64_t *errors, unsigned part,
                   unsigned nparts)
{
    if (sym_dwarf_use_own_dies == 3) {
        int rc = own_load(o, fd, in, part, nparts);
        return rc == -2 ? -1 : rc;
    }
    if (sym_dwarf_use_own_dies == 1) {
        unsigned long before = sym_dwarf_units_own;
        int rc = own_load(o, fd, in, part, nparts);
        if (rc != -2)
            return rc;
        sym_dwarf_units_own = before;
    }
    return lib_load(o, fd, in, errors, part, nparts);
}

/* The load with libdwarf (units, DIEs of the units dies.c cannot read, file
 * names, line programs it cannot decode). */
static int lib_load(sym_obj *o, int fd, sym_intern *in, uint64_t *errors, unsigned part,
                    unsigned nparts)
{
    dw c;
    memset(&c, 0, sizeof c);
    c.in = in;
    Dwarf_Error err = NULL;
    int rc = dwarf_init_b(fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &c.dbg, &err);
    if (rc != DW_DLV_OK) {
        if (err) {
            /* no Dwarf_Debug exists to free a failed init's error against */
            dwarf_dealloc_error(NULL, err);
            (*errors)++;
        }
        return -1;
    }

    /* Part `part` of nparts takes the CUs whose header starts in its share
     * of .debug_info: contiguous shares, so concatenating the parts keeps
     * the CUs' table order (sym_dwarf_merge relies on it).  When the extent
     * cannot be read (a corrupt header), part 0 reads what it can, alone. */
    Dwarf_Unsigned extent = 0;
    if (nparts > 1) {
        extent = cu_extent(&c);
        if (!extent) {
            uint64_t e = c.errors;
            dwarf_finish(c.dbg, &err);
            if (err)
                dwarf_dealloc_error(NULL, err);
            *errors += e;
            if (part != 0)
                return 0;
            return lib_load(o, fd, in, errors, 0, 1);
        }
    }

    const char **files = NULL;
    size_t files_cap = 0;
    int any_cu = 0;
    sym_secs secs;
    c.secs = &secs;
    if (sym_secs_open(&secs, fd) == 0 && secs.line.p) {
        c.line_sec = secs.line.p;
        c.line_size = secs.line.n;
    }
    Dwarf_Unsigned cu_off = 0;
    for (;;) {
        Dwarf_Unsigned hlen = 0, typeoff = 0, next = 0;
        Dwarf_Half version = 0, asize = 0, lsize = 0, esize = 0, cutype = 0;
        Dwarf_Off abbrev = 0;
        Dwarf_Sig8 sig;
        rc = dwarf_next_cu_header_d(c.dbg, 1, &hlen, &version, &abbrev, &asize, &lsize, &esize,
                                    &sig, &typeoff, &next, &cutype, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(&c, &err); /* the next header cannot be found: stop */
        if (rc != DW_DLV_OK)
            break;
        any_cu = 1;
        Dwarf_Unsigned start = cu_off;
        cu_off = next;
        if (nparts > 1) {
            unsigned owner = (unsigned)((unsigned __int128)start * nparts / extent);
            if (owner != part)
                continue;
        }
        Dwarf_Die cu = NULL;
        rc = dwarf_siblingof_b(c.dbg, NULL, 1, &cu, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(&c, &err);
        if (rc != DW_DLV_OK)
            continue;
        c.version = version;
        c.file_base = version >= 5 ? 0 : 1;
        c.cu_base = 0;
        Dwarf_Addr lo = 0;
        rc = dwarf_lowpc(cu, &lo, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(&c, &err);
        else if (rc == DW_DLV_OK)
            c.cu_base = lo;
        Dwarf_Unsigned lang = 0;
        rc = dwarf_srclang(cu, &lang, &err);
        if (rc == DW_DLV_ERROR || err)
            dw_fail(&c, &err);
        c.cu_is_c = rc == DW_DLV_OK && lang_is_c(lang);
        c.files = NULL;
        c.nfiles = 0;
        c.files_read = 0;
        c.cu_die = cu;
        c.files_buf = &files;
        c.files_cap = &files_cap;
        c.lazy_n = 0;
        /* both set file_base from the line table version */
        if (decode_lines(&c, cu) < 0)
            load_lines(&c, cu);
        sym_dwarf_units_libdwarf++;
        if (own_walk_unit(&c, &secs, start) < 0)
            walk_children(&c, cu, -1, 0, 0, 0);
        dwarf_dealloc_die(cu);
        if (c.oom)
            break;
    }
    sym_secs_close(&secs);
    sym_cu_free(&c.own);
    free(files);
    free(c.lazy);
    free(c.names);
    free(c.tmp);
    dwarf_finish(c.dbg, &err);
    if (err)
        dwarf_dealloc_error(NULL, err);

    int ret = any_cu ? 0 : -1;
    if (finish_tables(&c, o) < 0)
        ret = -1;
    *errors += c.errors;
    return ret;
}
