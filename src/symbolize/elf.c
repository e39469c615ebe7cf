/* elf.c - what the symbolizer reads with libelf: build-ids, .gnu_debuglink,
 * whether DWARF is present, and the function symbols of .symtab/.dynsym. */
#include "symbolize_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sym_elf_open(sym_elf *f, const char *path)
{
    f->fd = -1;
    f->elf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* ELF_C_READ, not READ_MMAP: a debug file truncated under us would turn a
     * mapped read into SIGBUS, a read() into an error libelf reports. */
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    if (!e || elf_kind(e) != ELF_K_ELF) {
        if (e)
            elf_end(e);
        close(fd);
        return -1;
    }
    f->fd = fd;
    f->elf = e;
    return 0;
}

void sym_elf_close(sym_elf *f)
{
    if (f->elf)
        elf_end(f->elf);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->elf = NULL;
}

static size_t notes_build_id(Elf_Data *d, uint8_t *out, size_t max)
{
    if (!d || !d->d_buf)
        return 0;
    GElf_Nhdr nh;
    size_t name_off, desc_off, off = 0, next;
    while (off < d->d_size && (next = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp((const char *)d->d_buf + name_off, "GNU", 4) == 0 && nh.n_descsz > 0) {
            size_t n = nh.n_descsz < max ? nh.n_descsz : max;
            memcpy(out, (const char *)d->d_buf + desc_off, n);
            return n;
        }
        off = next;
    }
    return 0;
}

size_t sym_elf_build_id(Elf *e, uint8_t *out, size_t max)
{
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
            continue;
        size_t n = notes_build_id(elf_getdata(scn, NULL), out, max);
        if (n)
            return n;
    }
    /* No section headers (sstrip'ed files): the PT_NOTE segments. */
    size_t phnum;
    if (elf_getphdrnum(e, &phnum) != 0)
        return 0;
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_NOTE)
            continue;
        size_t n =
            notes_build_id(elf_getdata_rawchunk(e, ph.p_offset, ph.p_filesz, ELF_T_NHDR), out, max);
        if (n)
            return n;
    }
    return 0;
}

/* The section called name, with contents (not SHT_NOBITS), or NULL. */
static Elf_Scn *find_section(Elf *e, const char *name)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(e, &shstrndx) != 0)
        return NULL;
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh))
            continue;
        const char *n = elf_strptr(e, shstrndx, sh.sh_name);
        if (n && strcmp(n, name) == 0)
            return sh.sh_type == SHT_NOBITS || sh.sh_size == 0 ? NULL : scn;
    }
    return NULL;
}

int sym_elf_debuglink(Elf *e, char *name, size_t namemax, uint32_t *crc)
{
    Elf_Scn *scn = find_section(e, ".gnu_debuglink");
    Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL;
    if (!d || !d->d_buf || d->d_size < 8)
        return -1;
    const char *p = d->d_buf;
    size_t len = strnlen(p, d->d_size);
    /* name, NUL, padding to 4, then the CRC in the file's byte order */
    size_t crc_off = (len + 4) & ~(size_t)3;
    if (len == 0 || len >= namemax || crc_off + 4 > d->d_size || memchr(p, '/', len))
        return -1;
    memcpy(name, p, len);
    name[len] = '\0';
    Elf_Data src = {
        .d_buf = (char *)p + crc_off, .d_type = ELF_T_WORD, .d_size = 4, .d_version = EV_CURRENT};
    Elf_Data dst = {.d_buf = crc, .d_type = ELF_T_WORD, .d_size = 4, .d_version = EV_CURRENT};
    GElf_Ehdr eh;
    if (!gelf_getehdr(e, &eh) || !gelf_xlatetom(e, &dst, &src, eh.e_ident[EI_DATA]))
        return -1;
    return 0;
}

int sym_elf_has_dwarf(Elf *e)
{
    return find_section(e, ".debug_info") != NULL || find_section(e, ".zdebug_info") != NULL;
}

int sym_elf_has_symbols(Elf *e, unsigned sh_type)
{
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
        if (gelf_getshdr(scn, &sh) && sh.sh_type == sh_type && sh.sh_size > 0 && sh.sh_entsize > 0)
            return 1;
    }
    return 0;
}

/* bfd (addr2line) names the source file of a symbol-table-only address
 * after the STT_FILE symbol that precedes the function symbol: for a local
 * symbol always, for a global one only if no STT_FILE came after an earlier
 * symbol (linkers put the globals after all per-file groups of locals, so
 * they usually get none).  Reproduced here so that such frames print like
 * addr2line's "crtstuff.c:0". */
enum { NOTHING_SEEN, SYMBOL_SEEN, FILE_AFTER_SYMBOL };

int sym_elf_symbols(Elf *e, unsigned sh_type, sym_intern *in, sym_func **funcs, size_t *n,
                    size_t *cap)
{
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    while ((scn = elf_nextscn(e, scn)) != NULL) {
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != sh_type || sh.sh_entsize == 0)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        if (!d || !d->d_buf)
            continue;
        size_t count = d->d_size / sh.sh_entsize;
        const char *file = NULL;
        int state = NOTHING_SEEN;
        for (size_t i = 1; i < count && i <= UINT32_MAX; i++) {
            GElf_Sym sym;
            if (!gelf_getsym(d, (int)i, &sym))
                break;
            unsigned type = GELF_ST_TYPE(sym.st_info);
            const char *name = elf_strptr(e, sh.sh_link, sym.st_name);
            if (type == STT_FILE) {
                file = name;
                if (state == SYMBOL_SEEN)
                    state = FILE_AFTER_SYMBOL;
                continue;
            }
            if (state == NOTHING_SEEN)
                state = SYMBOL_SEEN;
            if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_value == 0 ||
                sym.st_shndx == SHN_UNDEF || sym.st_shndx >= SHN_LORESERVE || !name || !*name)
                continue;
            GElf_Shdr tsh;
            Elf_Scn *tscn = elf_getscn(e, sym.st_shndx);
            if (!tscn || !gelf_getshdr(tscn, &tsh))
                continue;
            if (tm_grow((void **)funcs, cap, *n + 1, sizeof **funcs) < 0)
                return -1;
            int local = GELF_ST_BIND(sym.st_info) == STB_LOCAL;
            const char *iname = sym_intern_str(in, name);
            const char *ifile =
                file && (local || state != FILE_AFTER_SYMBOL) ? sym_intern_str(in, file) : NULL;
            if (!iname)
                return -1;
            sym_func *f = &(*funcs)[(*n)++];
            f->addr = sym.st_value;
            f->size = sym.st_size ? sym.st_size : 1;
            f->sized = sym.st_size != 0;
            f->sec_end = tsh.sh_addr + tsh.sh_size;
            if (f->sec_end <= f->addr) /* a symbol outside its section's range */
                f->sec_end = f->addr + f->size;
            f->name = iname;
            f->file = ifile;
            f->order = (uint32_t)i;
        }
    }
    return 0;
}

static int funcs_cmp(const void *a, const void *b)
{
    const sym_func *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

void sym_funcs_finish(sym_func *funcs, size_t n)
{
    if (n > 1)
        qsort(funcs, n, sizeof *funcs, funcs_cmp);
}
