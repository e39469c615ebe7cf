/* dies.c - reads .debug_info DIEs straight from the section bytes, for the
 * DIE walk of dwarf.c.
 *
 * Why not libdwarf: its DIE walk was 80% of a large -O2 program's load
 * (callgrind, 3,000 addresses: 817 M of 1,047 M instructions).  libdwarf
 * allocates every DIE, finds each attribute by a scan of the abbreviation
 * with a size computation per form, and skipping a subtree (types,
 * variables) parses every attribute of every DIE in it.  Here an attribute
 * is read in one pass over the DIE, and a subtree is skipped by its
 * DW_AT_sibling when it has one.
 *
 * This reader is strict: whatever it does not know or finds inconsistent (a
 * form it does not handle, a value outside its section, a reference into
 * another unit, split DWARF) makes it give up on the unit with -1, and
 * dwarf.c walks that unit with libdwarf, as before.  So the tables are the
 * same either way, and corrupt DWARF still takes libdwarf's path. */
#include "symbolize_internal.h"

#include <dwarf.h>
#include <stdlib.h>
#include <string.h>

typedef tm_rd rd;

static void rd_skip(rd *r, uint64_t n)
{
    if (n > (uint64_t)(r->end - r->p)) {
        r->bad = 1;
        r->p = r->end;
        return;
    }
    r->p += n;
}

/* ---- sections -------------------------------------------------------------- */

int sym_secs_open(sym_secs *s, int fd)
{
    memset(s, 0, sizeof *s);
    /* mapped, not read: the big sections of an uncompressed file are then
     * never copied (compressed ones are inflated by elf_compress) */
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    GElf_Ehdr eh;
    size_t shstr;
    if (!e || !gelf_getehdr(e, &eh) || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ || elf_getshdrstrndx(e, &shstr) != 0) {
        if (e)
            elf_end(e);
        return -1;
    }
    static const struct {
        const char *name;
        size_t off;
    } want[] = {
        {".debug_info", offsetof(sym_secs, info)},
        {".debug_abbrev", offsetof(sym_secs, abbrev)},
        {".debug_str", offsetof(sym_secs, str)},
        {".debug_line_str", offsetof(sym_secs, line_str)},
        {".debug_str_offsets", offsetof(sym_secs, str_offsets)},
        {".debug_addr", offsetof(sym_secs, addr)},
        {".debug_rnglists", offsetof(sym_secs, rnglists)},
        {".debug_ranges", offsetof(sym_secs, ranges)},
        {".debug_line", offsetof(sym_secs, line)},
    };
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
        const char *n;
        if (!gelf_getshdr(scn, &sh) || !(n = elf_strptr(e, shstr, sh.sh_name)) ||
            strncmp(n, ".debug_", 7) != 0 || sh.sh_type == SHT_NOBITS)
            continue;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            if (strcmp(n, want[i].name) != 0)
                continue;
            sym_sec *sec = (sym_sec *)((char *)s + want[i].off);
            if (sec->p)
                break; /* a second section of that name: the first one counts */
            if ((sh.sh_flags & SHF_COMPRESSED) && elf_compress(scn, 0, 0) < 0)
                break;
            Elf_Data *d = elf_getdata(scn, NULL);
            if (d && d->d_buf && d->d_size) {
                sec->p = d->d_buf;
                sec->n = d->d_size;
            }
            break;
        }
    }
    s->elf = e;
    return 0;
}

void sym_secs_close(sym_secs *s)
{
    if (s->elf)
        elf_end(s->elf);
    memset(s, 0, sizeof *s);
}

/* ---- units and abbreviations ------------------------------------------------ */

void sym_cu_free(sym_cu *cu)
{
    free(cu->abbrevs);
    free(cu->specs);
    free(cu->bycode);
    memset(cu, 0, sizeof *cu);
}

/* Codes above this are not indexed directly: such a table gives up. */
#define MAX_CODE 65536u

static int parse_abbrevs(sym_cu *cu, uint64_t off)
{
    const sym_sec *a = &cu->s->abbrev;
    if (!a->p || off >= a->n)
        return -1;
    rd r = {a->p + off, a->p + a->n, 0};
    cu->nabbrevs = cu->nspecs = 0;
    uint64_t maxcode = 0;
    for (;;) {
        uint64_t code = tm_rd_uleb(&r);
        if (r.bad)
            return -1;
        if (code == 0)
            break;
        if (code >= MAX_CODE)
            return -1;
        uint64_t tag = tm_rd_uleb(&r);
        unsigned children = (unsigned)tm_rd_fixed(&r, 1);
        if (r.bad || tag > UINT32_MAX ||
            tm_grow((void **)&cu->abbrevs, &cu->abbrevs_cap, cu->nabbrevs + 1,
                    sizeof *cu->abbrevs) < 0)
            return -1;
        sym_abbrev *ab = &cu->abbrevs[cu->nabbrevs++];
        ab->code = code;
        ab->tag = (uint32_t)tag;
        ab->children = children != 0;
        switch (tag) {
        case DW_TAG_subprogram:
        case DW_TAG_inlined_subroutine:
        case DW_TAG_entry_point:
        case DW_TAG_lexical_block:
        case DW_TAG_try_block:
        case DW_TAG_catch_block:
        case DW_TAG_namespace:
        case DW_TAG_module:
        case DW_TAG_structure_type:
        case DW_TAG_class_type:
        case DW_TAG_union_type:
            ab->walked = 1;
            break;
        default:
            ab->walked = 0;
        }
        ab->first = (uint32_t)cu->nspecs;
        for (;;) {
            uint64_t at = tm_rd_uleb(&r), form = tm_rd_uleb(&r);
            if (r.bad || at > UINT32_MAX || form > UINT32_MAX)
                return -1;
            if (at == 0 && form == 0)
                break;
            if (tm_grow((void **)&cu->specs, &cu->specs_cap, cu->nspecs + 1, sizeof *cu->specs) < 0)
                return -1;
            sym_aspec *sp = &cu->specs[cu->nspecs++];
            sp->at = (uint32_t)at;
            sp->form = (uint32_t)form;
            sp->implicit = form == DW_FORM_implicit_const ? tm_rd_sleb(&r) : 0;
            if (r.bad)
                return -1;
        }
        ab->nattr = (uint32_t)(cu->nspecs - ab->first);
        if (code > maxcode)
            maxcode = code;
    }
    free(cu->bycode);
    cu->bycode = calloc((size_t)maxcode + 1, sizeof *cu->bycode);
    if (!cu->bycode)
        return -1;
    cu->bycode_n = (size_t)maxcode + 1;
    for (size_t i = 0; i < cu->nabbrevs; i++) {
        uint32_t *slot = &cu->bycode[cu->abbrevs[i].code];
        if (!*slot) /* a repeated code: the first definition counts */
            *slot = (uint32_t)i + 1;
    }
    return 0;
}

int sym_cu_open(sym_cu *cu, const sym_secs *s, uint64_t off)
{
    cu->s = s;
    cu->ready = 0;
    if (!s->info.p || off >= s->info.n)
        return -1;
    rd r = {s->info.p + off, s->info.p + s->info.n, 0};
    uint64_t len = tm_rd_fixed(&r, 4);
    cu->offsz = 4;
    if (len == 0xffffffffu) {
        len = tm_rd_fixed(&r, 8);
        cu->offsz = 8;
    } else if (len >= 0xfffffff0u) {
        return -1;
    }
    if (r.bad || len > (uint64_t)(r.end - r.p))
        return -1;
    r.end = r.p + len;
    cu->off = off;
    cu->end = (uint64_t)(r.end - s->info.p);
    cu->version = (unsigned)tm_rd_fixed(&r, 2);
    if (cu->version < 2 || cu->version > 5)
        return -1;
    uint64_t abbrev;
    if (cu->version >= 5) {
        cu->unit_type = (unsigned)tm_rd_fixed(&r, 1);
        cu->addr_size = (unsigned)tm_rd_fixed(&r, 1);
        abbrev = tm_rd_fixed(&r, cu->offsz);
        /* type, skeleton and split units carry more header fields and
         * point into other files: libdwarf's business */
        if (cu->unit_type != DW_UT_compile && cu->unit_type != DW_UT_partial)
            return -1;
    } else {
        cu->unit_type = DW_UT_compile;
        abbrev = tm_rd_fixed(&r, cu->offsz);
        cu->addr_size = (unsigned)tm_rd_fixed(&r, 1);
    }
    if (r.bad || (cu->addr_size != 4 && cu->addr_size != 8) || parse_abbrevs(cu, abbrev) < 0)
        return -1;
    cu->dies = r.p;

    /* the unit DIE: the bases later attributes are relative to */
    cu->has_str_base = cu->has_addr_base = cu->has_rng_base = 0;
    cu->str_offsets_base = cu->addr_base = cu->rnglists_base = 0;
    const unsigned char *p = cu->dies;
    sym_die d;
    if (sym_die_read(cu, &p, &d, SYM_DIE_ALL) != 1)
        return -1;
    cu->ready = 1;
    return 0;
}

/* ---- attribute values --------------------------------------------------------- */

static const char *sec_string(const sym_sec *s, uint64_t off)
{
    if (!s->p || off >= s->n || !memchr(s->p + off, 0, s->n - off))
        return NULL;
    return (const char *)s->p + off;
}

/* .debug_addr entry idx of the unit */
static int addr_index(const sym_cu *cu, uint64_t idx, uint64_t *out)
{
    const sym_sec *a = &cu->s->addr;
    if (!cu->has_addr_base || !a->p || idx > (a->n / cu->addr_size))
        return -1;
    uint64_t off = cu->addr_base + idx * cu->addr_size;
    if (off < cu->addr_base || off > a->n || a->n - off < cu->addr_size)
        return -1;
    rd r = {a->p + off, a->p + a->n, 0};
    *out = tm_rd_fixed(&r, cu->addr_size);
    return r.bad ? -1 : 0;
}

/* A value read by form: u is the number (or section offset, or index),
 * str a string when the form is one. */
typedef struct val {
    uint64_t u;
    const char *str;
} val;

enum { C_NONE, C_ADDR, C_CONST, C_SCONST, C_STR, C_REF, C_REF_OUT, C_SECOFF, C_RNGX, C_SKIP };

/* Reads one attribute value of form form.  Returns its class (C_*), or -1
 * for a form this reader does not handle or a value that does not fit. */
static int read_form(const sym_cu *cu, rd *r, unsigned form, int64_t implicit, val *v)
{
    v->str = NULL;
    v->u = 0;
    switch (form) {
    case DW_FORM_addr:
        v->u = tm_rd_fixed(r, cu->addr_size);
        return C_ADDR;
    case DW_FORM_addrx:
    case DW_FORM_GNU_addr_index:
        v->u = tm_rd_uleb(r);
        goto addrx;
    case DW_FORM_addrx1:
    case DW_FORM_addrx2:
    case DW_FORM_addrx3:
    case DW_FORM_addrx4:
        v->u = tm_rd_fixed(r, form - DW_FORM_addrx1 + 1);
    addrx:
        if (r->bad || !cu->ready || addr_index(cu, v->u, &v->u) < 0)
            return cu->ready ? -1 : C_SKIP;
        return C_ADDR;
    case DW_FORM_data1:
    case DW_FORM_flag:
        v->u = tm_rd_fixed(r, 1);
        return C_CONST;
    case DW_FORM_data2:
        v->u = tm_rd_fixed(r, 2);
        return C_CONST;
    case DW_FORM_data4:
        v->u = tm_rd_fixed(r, 4);
        return C_CONST;
    case DW_FORM_data8:
        v->u = tm_rd_fixed(r, 8);
        return C_CONST;
    case DW_FORM_udata:
        v->u = tm_rd_uleb(r);
        return C_CONST;
    case DW_FORM_sdata:
        v->u = (uint64_t)tm_rd_sleb(r);
        return C_SCONST;
    case DW_FORM_implicit_const:
        v->u = (uint64_t)implicit;
        return C_SCONST;
    case DW_FORM_flag_present:
        v->u = 1;
        return C_SKIP;
    case DW_FORM_data16:
        rd_skip(r, 16);
        return C_SKIP;
    case DW_FORM_block1:
        rd_skip(r, tm_rd_fixed(r, 1));
        return C_SKIP;
    case DW_FORM_block2:
        rd_skip(r, tm_rd_fixed(r, 2));
        return C_SKIP;
    case DW_FORM_block4:
        rd_skip(r, tm_rd_fixed(r, 4));
        return C_SKIP;
    case DW_FORM_block:
    case DW_FORM_exprloc:
        rd_skip(r, tm_rd_uleb(r));
        return C_SKIP;
    case DW_FORM_string: {
        const unsigned char *z = memchr(r->p, 0, (size_t)(r->end - r->p));
        if (!z) {
            r->bad = 1;
            return -1;
        }
        v->str = (const char *)r->p;
        r->p = z + 1;
        return C_STR;
    }
    case DW_FORM_strp:
        v->str = sec_string(&cu->s->str, tm_rd_fixed(r, cu->offsz));
        return v->str || !cu->ready ? C_STR : -1;
    case DW_FORM_line_strp:
        v->str = sec_string(&cu->s->line_str, tm_rd_fixed(r, cu->offsz));
        return v->str || !cu->ready ? C_STR : -1;
    case DW_FORM_strx:
    case DW_FORM_GNU_str_index:
        v->u = tm_rd_uleb(r);
        goto strx;
    case DW_FORM_strx1:
    case DW_FORM_strx2:
    case DW_FORM_strx3:
    case DW_FORM_strx4:
        v->u = tm_rd_fixed(r, form - DW_FORM_strx1 + 1);
    strx : {
        if (!cu->ready)
            return C_SKIP;
        const sym_sec *so = &cu->s->str_offsets;
        if (r->bad || !cu->has_str_base || !so->p || v->u > so->n / cu->offsz)
            return -1;
        uint64_t at = cu->str_offsets_base + v->u * cu->offsz;
        if (at < cu->str_offsets_base || at > so->n || so->n - at < cu->offsz)
            return -1;
        rd x = {so->p + at, so->p + so->n, 0};
        v->str = sec_string(&cu->s->str, tm_rd_fixed(&x, cu->offsz));
        return v->str ? C_STR : -1;
    }
    case DW_FORM_ref1:
        v->u = cu->off + tm_rd_fixed(r, 1);
        return C_REF;
    case DW_FORM_ref2:
        v->u = cu->off + tm_rd_fixed(r, 2);
        return C_REF;
    case DW_FORM_ref4:
        v->u = cu->off + tm_rd_fixed(r, 4);
        return C_REF;
    case DW_FORM_ref8:
        v->u = cu->off + tm_rd_fixed(r, 8);
        return C_REF;
    case DW_FORM_ref_udata:
        v->u = cu->off + tm_rd_uleb(r);
        return C_REF;
    case DW_FORM_ref_addr:
        v->u = tm_rd_fixed(r, cu->version <= 2 ? cu->addr_size : cu->offsz);
        return C_REF;
    case DW_FORM_ref_sig8:
    case DW_FORM_ref_sup8:
        rd_skip(r, 8);
        return C_REF_OUT;
    case DW_FORM_ref_sup4:
        rd_skip(r, 4);
        return C_REF_OUT;
    case DW_FORM_GNU_ref_alt:
        rd_skip(r, cu->offsz);
        return C_REF_OUT;
    case DW_FORM_sec_offset:
        v->u = tm_rd_fixed(r, cu->offsz);
        return C_SECOFF;
    case DW_FORM_strp_sup:
    case DW_FORM_GNU_strp_alt:
        /* a string in a supplementary file: readable only as skipped */
        rd_skip(r, cu->offsz);
        return C_SKIP;
    case DW_FORM_loclistx:
        tm_rd_uleb(r);
        return C_SKIP;
    case DW_FORM_rnglistx:
        v->u = tm_rd_uleb(r);
        return C_RNGX;
    default: /* DW_FORM_indirect and unknown forms */
        return -1;
    }
}

/* Steps over one value of form form; returns 0, or -1 for a form that
 * read_form would refuse too. */
static int skip_form(const sym_cu *cu, rd *r, unsigned form)
{
    switch (form) {
    case DW_FORM_flag_present:
    case DW_FORM_implicit_const:
        return 0;
    case DW_FORM_data1:
    case DW_FORM_ref1:
    case DW_FORM_flag:
    case DW_FORM_strx1:
    case DW_FORM_addrx1:
        rd_skip(r, 1);
        return 0;
    case DW_FORM_data2:
    case DW_FORM_ref2:
    case DW_FORM_strx2:
    case DW_FORM_addrx2:
        rd_skip(r, 2);
        return 0;
    case DW_FORM_strx3:
    case DW_FORM_addrx3:
        rd_skip(r, 3);
        return 0;
    case DW_FORM_data4:
    case DW_FORM_ref4:
    case DW_FORM_strx4:
    case DW_FORM_addrx4:
    case DW_FORM_ref_sup4:
        rd_skip(r, 4);
        return 0;
    case DW_FORM_data8:
    case DW_FORM_ref8:
    case DW_FORM_ref_sig8:
    case DW_FORM_ref_sup8:
        rd_skip(r, 8);
        return 0;
    case DW_FORM_strp:
    case DW_FORM_line_strp:
    case DW_FORM_sec_offset:
    case DW_FORM_strp_sup:
    case DW_FORM_GNU_strp_alt:
    case DW_FORM_GNU_ref_alt:
        rd_skip(r, cu->offsz);
        return 0;
    case DW_FORM_addr:
        rd_skip(r, cu->addr_size);
        return 0;
    case DW_FORM_ref_addr:
        rd_skip(r, cu->version <= 2 ? cu->addr_size : cu->offsz);
        return 0;
    case DW_FORM_udata:
    case DW_FORM_sdata:
    case DW_FORM_ref_udata:
    case DW_FORM_strx:
    case DW_FORM_addrx:
    case DW_FORM_GNU_str_index:
    case DW_FORM_GNU_addr_index:
    case DW_FORM_loclistx:
    case DW_FORM_rnglistx:
        tm_rd_uleb(r);
        return 0;
    default: {
        val v;
        return read_form(cu, r, form, 0, &v) < 0 ? -1 : 0;
    }
    }
}

/* The DIE's abbreviation is of a tag the walk does not visit (or mode 2):
 * only DW_AT_sibling is read. */
static int read_sibling_only(const sym_cu *cu, rd *r, const sym_abbrev *ab, sym_die *d)
{
    const sym_aspec *sp = cu->specs + ab->first;
    for (uint32_t i = 0; i < ab->nattr; i++) {
        if (sp[i].at == DW_AT_sibling && !(d->has & SYM_DIE_SIBLING)) {
            val v;
            int cls = read_form(cu, r, sp[i].form, sp[i].implicit, &v);
            if (cls == C_REF_OUT)
                continue;
            if (cls != C_REF)
                return -1;
            if (v.u) {
                d->sibling = v.u;
                d->has |= SYM_DIE_SIBLING;
            }
        } else if (skip_form(cu, r, sp[i].form) < 0) {
            return -1;
        }
        if (r->bad)
            return -1;
    }
    return 0;
}

int sym_die_read(const sym_cu *cu, const unsigned char **pp, sym_die *d, int mode)
{
    const unsigned char *base = cu->s->info.p;
    rd r = {*pp, base + cu->end, 0};
    if (r.p >= r.end)
        return -1; /* ran off the unit without its closing null entry */
    d->off = (uint64_t)(r.p - base);
    uint64_t code = tm_rd_uleb(&r);
    if (r.bad)
        return -1;
    if (code == 0) {
        *pp = r.p;
        return 0;
    }
    if (code >= cu->bycode_n || !cu->bycode[code])
        return -1;
    const sym_abbrev *ab = &cu->abbrevs[cu->bycode[code] - 1];
    d->tag = ab->tag;
    d->children = ab->children;
    d->has = 0;
    d->highpc_const = 0;
    if (cu->ready && (mode == SYM_DIE_SIBLING_ONLY || (mode == SYM_DIE_WALK && !ab->walked))) {
        if (read_sibling_only(cu, &r, ab, d) < 0)
            return -1;
        *pp = r.p;
        d->next = r.p;
        return 1;
    }
    const sym_aspec *sp = cu->specs + ab->first;
    sym_cu *mcu = (sym_cu *)cu; /* the unit DIE sets the unit's bases */
    for (uint32_t i = 0; i < ab->nattr; i++) {
        val v;
        int cls = read_form(cu, &r, sp[i].form, sp[i].implicit, &v);
        if (cls < 0 || r.bad)
            return -1;
        unsigned at = sp[i].at;
        if (!cu->ready) {
            /* the unit DIE, read by sym_cu_open: only its bases */
            int sec = cls == C_SECOFF || cls == C_CONST;
            switch (at) {
            case DW_AT_str_offsets_base:
                if (!sec)
                    return -1;
                mcu->str_offsets_base = v.u;
                mcu->has_str_base = 1;
                break;
            case DW_AT_addr_base:
            case DW_AT_GNU_addr_base:
                if (!sec)
                    return -1;
                mcu->addr_base = v.u;
                mcu->has_addr_base = 1;
                break;
            case DW_AT_rnglists_base:
                if (!sec)
                    return -1;
                mcu->rnglists_base = v.u;
                mcu->has_rng_base = 1;
                break;
            case DW_AT_GNU_ranges_base:
            case DW_AT_GNU_dwo_id:
            case DW_AT_GNU_dwo_name:
            case DW_AT_dwo_name:
                return -1; /* split DWARF */
            default:
                break;
            }
            continue;
        }
        uint32_t bit;
        switch (at) {
        case DW_AT_name:
            bit = SYM_DIE_NAME;
            break;
        case DW_AT_linkage_name:
            bit = SYM_DIE_LINKAGE;
            break;
        case DW_AT_MIPS_linkage_name:
            bit = SYM_DIE_MIPS_LINKAGE;
            break;
        case DW_AT_abstract_origin:
            bit = SYM_DIE_ORIGIN;
            break;
        case DW_AT_specification:
            bit = SYM_DIE_SPEC;
            break;
        case DW_AT_sibling:
            bit = SYM_DIE_SIBLING;
            break;
        case DW_AT_low_pc:
            bit = SYM_DIE_LOWPC;
            break;
        case DW_AT_high_pc:
            bit = SYM_DIE_HIGHPC;
            break;
        case DW_AT_ranges:
            bit = SYM_DIE_RANGES;
            break;
        case DW_AT_call_file:
            bit = SYM_DIE_CALL_FILE;
            break;
        case DW_AT_call_line:
            bit = SYM_DIE_CALL_LINE;
            break;
        case DW_AT_comp_dir:
            bit = SYM_DIE_COMP_DIR;
            break;
        case DW_AT_language:
            bit = SYM_DIE_LANGUAGE;
            break;
        case DW_AT_stmt_list:
            bit = SYM_DIE_STMT_LIST;
            break;
        default:
            continue;
        }
        if (d->has & bit)
            continue; /* libdwarf finds the first one */
        /* each attribute is taken only from the forms libdwarf accepts for
         * it; any other form: libdwarf would report an error, so give up */
        switch (bit) {
        case SYM_DIE_NAME:
        case SYM_DIE_LINKAGE:
        case SYM_DIE_MIPS_LINKAGE:
            if (cls != C_STR || !v.str)
                return -1;
            if (bit == SYM_DIE_NAME)
                d->name = v.str;
            else if (bit == SYM_DIE_LINKAGE)
                d->linkage = v.str;
            else
                d->mips_linkage = v.str;
            break;
        case SYM_DIE_ORIGIN:
        case SYM_DIE_SPEC:
        case SYM_DIE_SIBLING:
            if (cls == C_REF_OUT)
                continue; /* another file's: never followed */
            if (cls != C_REF)
                return -1;
            if (v.u == 0)
                continue;
            if (bit == SYM_DIE_ORIGIN)
                d->origin = v.u;
            else if (bit == SYM_DIE_SPEC)
                d->spec = v.u;
            else
                d->sibling = v.u;
            break;
        case SYM_DIE_LOWPC:
            if (cls != C_ADDR)
                return -1;
            d->lowpc = v.u;
            break;
        case SYM_DIE_HIGHPC:
            if (cls == C_ADDR) {
                d->highpc_const = 0;
            } else if (cls == C_CONST || cls == C_SCONST) {
                d->highpc_const = 1;
            } else {
                return -1;
            }
            d->highpc = v.u;
            break;
        case SYM_DIE_RANGES:
            if (cls == C_RNGX) {
                d->ranges_x = 1;
            } else if (cls == C_SECOFF || (cls == C_CONST && (sp[i].form == DW_FORM_data4 ||
                                                              sp[i].form == DW_FORM_data8))) {
                d->ranges_x = 0;
            } else {
                return -1;
            }
            d->ranges = v.u;
            break;
        case SYM_DIE_CALL_FILE:
        case SYM_DIE_CALL_LINE: {
            uint64_t *dst = bit == SYM_DIE_CALL_FILE ? &d->call_file : &d->call_line;
            if (cls == C_SCONST) {
                if ((int64_t)v.u < 0)
                    continue; /* libdwarf: read, but not a valid number */
            } else if (cls != C_CONST || sp[i].form == DW_FORM_flag) {
                return -1;
            }
            *dst = v.u;
            break;
        }
        case SYM_DIE_COMP_DIR:
            if (cls != C_STR || !v.str)
                return -1;
            d->comp_dir = v.str;
            break;
        case SYM_DIE_LANGUAGE:
            if (cls != C_CONST || sp[i].form == DW_FORM_flag)
                return -1;
            d->language = v.u;
            break;
        case SYM_DIE_STMT_LIST:
            if (cls != C_SECOFF &&
                !(cls == C_CONST && (sp[i].form == DW_FORM_data4 || sp[i].form == DW_FORM_data8)))
                return -1;
            d->stmt_list = v.u;
            break;
        }
        d->has |= bit;
    }
    *pp = r.p;
    d->next = r.p;
    return 1;
}

/* Deepest subtree skipped: corrupt DWARF can nest without end. */
#define MAX_SKIP_DEPTH 4096

int sym_die_skip_children(const sym_cu *cu, const sym_die *d, const unsigned char **pp)
{
    const unsigned char *base = cu->s->info.p;
    *pp = d->next;
    if (!d->children)
        return 0;
    if ((d->has & SYM_DIE_SIBLING) && d->sibling > d->off && d->sibling < cu->end &&
        base + d->sibling >= d->next) {
        *pp = base + d->sibling;
        return 0;
    }
    unsigned depth = 1;
    while (depth > 0) {
        sym_die c;
        int r = sym_die_read(cu, pp, &c, SYM_DIE_SIBLING_ONLY);
        if (r < 0)
            return -1;
        if (r == 0) {
            depth--;
            continue;
        }
        if (!c.children)
            continue;
        if ((c.has & SYM_DIE_SIBLING) && c.sibling > c.off && c.sibling < cu->end &&
            base + c.sibling >= c.next) {
            *pp = base + c.sibling;
            continue;
        }
        if (++depth > MAX_SKIP_DEPTH)
            return -1;
    }
    return 0;
}

int sym_die_at(const sym_cu *cu, uint64_t off, sym_die *d)
{
    const unsigned char *base = cu->s->info.p;
    if (off < (uint64_t)(cu->dies - base) || off >= cu->end)
        return -1; /* outside this unit (or its header) */
    const unsigned char *p = base + off;
    return sym_die_read(cu, &p, d, SYM_DIE_ALL) == 1 ? 0 : -1;
}

/* ---- address ranges ------------------------------------------------------------- */

static int push_range(sym_range **buf, size_t *cap, int n, uint64_t lo, uint64_t hi)
{
    if (n >= INT32_MAX || tm_grow((void **)buf, cap, (size_t)n + 1, sizeof **buf) < 0)
        return -1;
    (*buf)[n] = (sym_range){lo, hi};
    return 0;
}

int sym_die_ranges(const sym_cu *cu, const sym_die *d, uint64_t cu_base, sym_range **buf,
                   size_t *cap, int *oom)
{
    *oom = 0;
    if (d->has & SYM_DIE_LOWPC) {
        if (!(d->has & SYM_DIE_HIGHPC))
            return 0;
        uint64_t hi = d->highpc;
        if (d->highpc_const)
            hi += d->lowpc;
        if (push_range(buf, cap, 0, d->lowpc, hi) < 0) {
            *oom = 1;
            return 0;
        }
        return 1;
    }
    if (!(d->has & SYM_DIE_RANGES))
        return 0;
    uint64_t off = d->ranges;
    int n = 0;
    if (cu->version >= 5) {
        const sym_sec *s = &cu->s->rnglists;
        if (!s->p)
            return -1;
        if (d->ranges_x) {
            if (!cu->has_rng_base || off > s->n / cu->offsz)
                return -1;
            uint64_t at = cu->rnglists_base + off * cu->offsz;
            if (at < cu->rnglists_base || at > s->n || s->n - at < cu->offsz)
                return -1;
            rd x = {s->p + at, s->p + s->n, 0};
            off = cu->rnglists_base + tm_rd_fixed(&x, cu->offsz);
        }
        if (off >= s->n)
            return -1;
        rd r = {s->p + off, s->p + s->n, 0};
        uint64_t base = cu_base;
        for (;;) {
            unsigned code = (unsigned)tm_rd_fixed(&r, 1);
            uint64_t a = 0, b = 0;
            if (r.bad)
                return -1;
            if (code == DW_RLE_end_of_list)
                break;
            switch (code) {
            case DW_RLE_base_addressx:
                if (addr_index(cu, tm_rd_uleb(&r), &base) < 0)
                    return -1;
                continue;
            case DW_RLE_base_address:
                base = tm_rd_fixed(&r, cu->addr_size);
                continue;
            case DW_RLE_startx_endx: {
                uint64_t i1 = tm_rd_uleb(&r), i2 = tm_rd_uleb(&r);
                if (r.bad || addr_index(cu, i1, &a) < 0 || addr_index(cu, i2, &b) < 0)
                    return -1;
                break;
            }
            case DW_RLE_startx_length: {
                uint64_t i1 = tm_rd_uleb(&r), len = tm_rd_uleb(&r);
                if (r.bad || addr_index(cu, i1, &a) < 0)
                    return -1;
                b = a + len;
                break;
            }
            case DW_RLE_offset_pair:
                a = base + tm_rd_uleb(&r);
                b = base + tm_rd_uleb(&r);
                break;
            case DW_RLE_start_end:
                a = tm_rd_fixed(&r, cu->addr_size);
                b = tm_rd_fixed(&r, cu->addr_size);
                break;
            case DW_RLE_start_length:
                a = tm_rd_fixed(&r, cu->addr_size);
                b = a + tm_rd_uleb(&r);
                break;
            default:
                return -1;
            }
            if (r.bad)
                return -1;
            if (push_range(buf, cap, n, a, b) < 0) {
                *oom = 1;
                return n;
            }
            n++;
        }
        return n;
    }
    const sym_sec *s = &cu->s->ranges;
    if (!s->p || off >= s->n)
        return -1;
    rd r = {s->p + off, s->p + s->n, 0};
    uint64_t base = cu_base;
    uint64_t max = cu->addr_size == 8 ? ~(uint64_t)0 : 0xffffffffu;
    for (;;) {
        uint64_t a = tm_rd_fixed(&r, cu->addr_size), b = tm_rd_fixed(&r, cu->addr_size);
        if (r.bad)
            return -1;
        if (a == 0 && b == 0)
            break;
        if (a == max) {
            base = b;
            continue;
        }
        if (push_range(buf, cap, n, base + a, base + b) < 0) {
            *oom = 1;
            return n;
        }
        n++;
    }
    return n;
}
