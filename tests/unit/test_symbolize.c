/* test_symbolize.c - tm_sym against binutils' addr2line (and llvm-symbolizer
 * for clang builds) on the fixture programs of tests/fixtures, plus the
 * fallbacks: stripped (.dynsym), split debug (.gnu_debuglink, build-id tree),
 * bad CRC, wrong build-id, missing or non-ELF file, corrupt DWARF, and
 * glibc's own debug info from libc6-dbg.
 *
 * usage: test_symbolize FIXTURE_DIR SOURCE_DIR [LLVM_SYMBOLIZER]
 * FIXTURE_DIR holds the fixture binaries built by tests/cmake/symbolize.cmake;
 * the test writes its scratch files in a scratch-PID folder there.
 * TM_SYM_TEST_VERBOSE=1 in the environment prints every difference from the
 * reference tools. */
#define _GNU_SOURCE
#include "symbolize.h"

#include "check.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* libstdc++'s demangler (linked through tm_symbolize). */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define MAX_REF_FRAMES 32
#define MAX_FRAMES 64

static const char *fixdir, *srcdir, *llvm_symbolizer;
/* Scratch files go to FIXTURE_DIR/scratch-PID: the test and its valgrind
 * twin may run at the same time on the same fixtures. */
static char *scratch;
static int under_valgrind;
static int verbose; /* TM_SYM_TEST_VERBOSE=1: show every difference */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *path_in(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    return p;
}

/* ---- ELF helpers ---------------------------------------------------------- */

static size_t notes_build_id(const unsigned char *p, size_t len, uint8_t *out)
{
    size_t off = 0;
    while (off + 12 <= len) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, p + off, 4);
        memcpy(&descsz, p + off + 4, 4);
        memcpy(&type, p + off + 8, 4);
        size_t name = off + 12, desc = name + ((namesz + 3) & ~3u);
        if (desc + descsz > len)
            break;
        if (type == NT_GNU_BUILD_ID && namesz == 4 && memcmp(p + name, "GNU", 4) == 0 &&
            descsz <= TM_BUILD_ID_MAX) {
            memcpy(out, p + desc, descsz);
            return descsz;
        }
        off = desc + ((descsz + 3) & ~3u);
    }
    return 0;
}

/* A module record for an ELF file as the hook would send it with load bias
 * 0: the module's addresses are the file's vaddrs. */
static int elf_module(const char *path, uint32_t id, tm_module *m)
{
    memset(m, 0, sizeof *m);
    m->id = id;
    m->path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    size_t phnum = 0;
    if (!e || elf_getphdrnum(e, &phnum) != 0) {
        if (e)
            elf_end(e);
        close(fd);
        return -1;
    }
    for (size_t i = 0; i < phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e, (int)i, &ph))
            continue;
        if (ph.p_type == PT_LOAD && m->nseg < TM_MODULE_MAX_SEGS)
            m->seg[m->nseg++] = (tm_segment){ph.p_vaddr, ph.p_memsz, ph.p_flags};
        if (ph.p_type == PT_NOTE && !m->build_id_len) {
            Elf_Data *d = elf_getdata_rawchunk(e, ph.p_offset, ph.p_filesz, ELF_T_BYTE);
            if (d)
                m->build_id_len = (uint32_t)notes_build_id(d->d_buf, d->d_size, m->build_id);
        }
    }
    elf_end(e);
    close(fd);
    return 0;
}

typedef struct elf_sym {
    char name[256];
    uint64_t addr, size;
} elf_sym;

static size_t elf_funcs_of(const char *path, unsigned sh_type, elf_sym **out);

/* Function symbols of the .symtab of path. */
static size_t elf_funcs(const char *path, elf_sym **out)
{
    return elf_funcs_of(path, SHT_SYMTAB, out);
}

/* Function symbols of the sh_type table (SHT_SYMTAB or SHT_DYNSYM) of path. */
static size_t elf_funcs_of(const char *path, unsigned sh_type, elf_sym **out)
{
    *out = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    Elf_Scn *scn = NULL;
    while (e && (scn = elf_nextscn(e, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != sh_type)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t count = sh.sh_size / sh.sh_entsize;
        *out = calloc(count, sizeof **out);
        for (size_t i = 0; i < count; i++) {
            GElf_Sym s;
            if (!gelf_getsym(d, (int)i, &s) || GELF_ST_TYPE(s.st_info) != STT_FUNC ||
                s.st_value == 0 || s.st_shndx == SHN_UNDEF)
                continue;
            const char *nm = elf_strptr(e, sh.sh_link, s.st_name);
            snprintf((*out)[n].name, sizeof(*out)[n].name, "%s", nm ? nm : "");
            (*out)[n].addr = s.st_value;
            (*out)[n].size = s.st_size;
            n++;
        }
    }
    if (e)
        elf_end(e);
    close(fd);
    return n;
}

static int find_func(const char *path, const char *name, uint64_t *addr, uint64_t *size)
{
    elf_sym *f;
    size_t n = elf_funcs(path, &f);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(f[i].name, name) == 0) {
            *addr = f[i].addr;
            *size = f[i].size;
            found = 1;
        }
    }
    free(f);
    return found;
}

/* Section [addr, size, file offset] by name. */
static int elf_section(const char *path, const char *name, uint64_t *addr, uint64_t *size,
                       uint64_t *off)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    size_t shstr;
    int found = 0;
    if (e && elf_getshdrstrndx(e, &shstr) == 0) {
        Elf_Scn *scn = NULL;
        while (!found && (scn = elf_nextscn(e, scn)) != NULL) {
            GElf_Shdr sh;
            const char *n;
            if (gelf_getshdr(scn, &sh) && (n = elf_strptr(e, shstr, sh.sh_name)) &&
                strcmp(n, name) == 0) {
                *addr = sh.sh_addr;
                *size = sh.sh_size;
                *off = sh.sh_offset;
                found = 1;
            }
        }
    }
    if (e)
        elf_end(e);
    close(fd);
    return found;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Addresses to check in an executable: a stride over .text plus, for every
 * function symbol, its start, a few inner points and its last byte. */
static size_t sample_addrs(const char *path, uint64_t **out)
{
    size_t cap = 4096, n = 0;
    uint64_t *a = malloc(cap * sizeof *a);
    uint64_t taddr, tsize, toff;
    if (elf_section(path, ".text", &taddr, &tsize, &toff)) {
        uint64_t step = tsize / 1000 ? tsize / 1000 : 1;
        for (uint64_t x = taddr; x < taddr + tsize && n < cap; x += step)
            a[n++] = x;
    }
    elf_sym *f;
    size_t nf = elf_funcs(path, &f);
    for (size_t i = 0; i < nf && n + 6 < cap; i++) {
        uint64_t s = f[i].addr, z = f[i].size ? f[i].size : 1;
        a[n++] = s;
        a[n++] = s + z / 4;
        a[n++] = s + z / 2;
        a[n++] = s + 3 * z / 4;
        a[n++] = s + z - 1;
    }
    free(f);
    qsort(a, n, sizeof *a, u64_cmp);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (!w || a[w - 1] != a[i])
            a[w++] = a[i];
    }
    *out = a;
    return w;
}

/* ---- reference tools ------------------------------------------------------ */

typedef struct ref_frame {
    char *func; /* NULL for ?? */
    char *file; /* NULL for ?? */
    unsigned line;
} ref_frame;

typedef struct ref_addr {
    uint64_t addr;
    int n;
    ref_frame f[MAX_REF_FRAMES];
} ref_addr;

static void ref_free(ref_addr *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        for (int k = 0; k < r[i].n; k++) {
            free(r[i].f[k].func);
            free(r[i].f[k].file);
        }
    }
    free(r);
}

/* Runs `tool -a -C -f -i -e file` (addr2line's output format) on addrs and
 * parses one frame list per address.  Returns NULL if the tool failed. */
static ref_addr *run_ref(const char *tool, const char *file, const uint64_t *addrs, size_t n)
{
    char *list = path_in(scratch, "addrs.tmp");
    FILE *w = fopen(list, "w");
    if (!w)
        abort();
    for (size_t i = 0; i < n; i++)
        fprintf(w, "0x%" PRIx64 "\n", addrs[i]);
    fclose(w);
    char *cmd = NULL;
    if (asprintf(&cmd, "%s -a -C -f -i -e '%s' < '%s'", tool, file, list) < 0)
        abort();
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        abort();
    ref_addr *r = calloc(n, sizeof *r);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long cur = -1;
    int want_file = 0;
    while ((len = getline(&line, &cap, p)) > 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!want_file && strncmp(line, "0x", 2) == 0) {
            cur++;
            if ((size_t)cur >= n)
                break;
            r[cur].addr = strtoull(line, NULL, 16);
            continue;
        }
        if (cur < 0)
            continue;
        ref_addr *ra = &r[cur];
        if (!want_file) {
            if (ra->n < MAX_REF_FRAMES) {
                char *in = strstr(line, " inlined at "); /* eu-addr2line */
                if (in)
                    *in = '\0';
                ra->f[ra->n].func = strcmp(line, "??") ? strdup(line) : NULL;
            }
            want_file = 1;
            continue;
        }
        want_file = 0;
        if (ra->n >= MAX_REF_FRAMES)
            continue;
        char *disc = strstr(line, " (discriminator");
        if (disc)
            *disc = '\0';
        /* FILE:LINE, or FILE:LINE:COLUMN (eu-addr2line) */
        char *colon = strrchr(line, ':');
        unsigned ln = 0;
        if (colon) {
            *colon = '\0';
            ln = (unsigned)strtoul(colon + 1, NULL, 10);
            char *c2 = strrchr(line, ':');
            if (c2 && c2[1] && strspn(c2 + 1, "0123456789") == strlen(c2 + 1)) {
                *c2 = '\0';
                ln = (unsigned)strtoul(c2 + 1, NULL, 10);
            }
        }
        ra->f[ra->n].file = strcmp(line, "??") ? strdup(line) : NULL;
        ra->f[ra->n].line = ln;
        ra->n++;
    }
    free(line);
    int st = pclose(p);
    unlink(list);
    free(list);
    if (st != 0 || cur + 1 != (long)n) {
        fprintf(stderr, "reference tool %s failed on %s (status %d, %ld of %zu)\n", tool, file, st,
                cur + 1, n);
        ref_free(r, n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].addr != addrs[i]) {
            fprintf(stderr, "reference tool output out of step at %zu\n", i);
            ref_free(r, n);
            return NULL;
        }
    }
    return r;
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_frames(const tm_frame *f, int n, const ref_addr *r)
{
    if (n != r->n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!str_eq(f[i].function, r->f[i].func) || !str_eq(f[i].file, r->f[i].file) ||
            f[i].line != r->f[i].line)
            return 0;
    }
    return 1;
}

static void print_diff(uint64_t a, const tm_frame *f, int n, const ref_addr *r)
{
    fprintf(stderr, "  0x%" PRIx64 ": tm_sym:\n", a);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "    %s %s:%u%s\n", f[i].function ? f[i].function : "??",
                f[i].file ? f[i].file : "??", f[i].line,
                f[i].flags & TM_FRAME_SYMTAB ? " [symtab]" : "");
    fprintf(stderr, "   reference:\n");
    for (int i = 0; i < r->n; i++)
        fprintf(stderr, "    %s %s:%u\n", r->f[i].func ? r->f[i].func : "??",
                r->f[i].file ? r->f[i].file : "??", r->f[i].line);
}

/* ---- comparison runs ------------------------------------------------------ */

typedef struct agreement {
    size_t dwarf, dwarf_same, dwarf_quirk, dwarf_bfdfile, total, total_same;
} agreement;

/* binutils 2.40's addr2line (like libdwarf 20210528's own line rows) reads
 * file number 1 of a DWARF 5 line table as entry 0, the CU's primary file:
 * gcc 12 writes entry 1 as the first header it needs when the primary file is
 * not used first, so addr2line names e.g. std_function.h:243 as
 * "sym_cxx.cpp:243" (a 70-line file).  tm_sym decodes the line program
 * itself and numbers files as DWARF 5 says, like llvm-symbolizer,
 * eu-addr2line and readelf.  Such a difference is counted apart (not failed)
 * when the frames agree with addr2line's in number, names and lines, and
 * with a second reference (llvm-symbolizer, else eu-addr2line) in files and
 * lines too. */
static int files_lines_eq(const tm_frame *f, int n, const ref_addr *r)
{
    if (n != r->n)
        return 0;
    for (int i = 0; i < n; i++)
        if (!str_eq(f[i].file, r->f[i].file) || f[i].line != r->f[i].line)
            return 0;
    return 1;
}

static int names_lines_eq(const tm_frame *f, int n, const ref_addr *r)
{
    if (n != r->n)
        return 0;
    for (int i = 0; i < n; i++)
        if (!str_eq(f[i].function, r->f[i].func) || f[i].line != r->f[i].line)
            return 0;
    return 1;
}

/* The demangled name of the .symtab function of syms that starts nearest
 * before addr (owned), NULL if none. */
static char *covering_symbol(const elf_sym *syms, size_t n, uint64_t addr)
{
    const elf_sym *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (syms[i].addr <= addr && (!best || syms[i].addr > best->addr))
            best = &syms[i];
    }
    if (!best)
        return NULL;
    int st = 0;
    char *d = __cxa_demangle(best->name, NULL, NULL, &st);
    return d && st == 0 ? d : strdup(best->name);
}

/* binutils' addr2line renames scopes that DWARF gives no linkage name (C++
 * "main", lambda bodies, members of lambda-typed templates) after the ELF
 * symbol covering the queried address, statefully: the innermost scope of a
 * scope's first query gets the symbol's name, for good if the symbol starts
 * where the scope does (then even an inlined lambda body is shown as the
 * function it was inlined into), and the answers depend on query order.
 * tm_sym keeps the DWARF names and takes the symbol's name only for an
 * out-of-line function whose entry the symbol starts at.  A difference is
 * counted as such (not failed) when the frames agree in number, files and
 * lines, and at each differing name one side is the covering symbol. */
static int bfd_naming_quirk(const tm_frame *f, int n, const ref_addr *r, const elf_sym *syms,
                            size_t nsyms, uint64_t addr)
{
    if (n != r->n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!str_eq(f[i].file, r->f[i].file) || f[i].line != r->f[i].line)
            return 0;
    }
    char *sym = covering_symbol(syms, nsyms, addr);
    int quirk = sym != NULL;
    for (int i = 0; i < n && quirk; i++) {
        if (!str_eq(f[i].function, r->f[i].func))
            quirk = str_eq(f[i].function, sym) || str_eq(r->f[i].func, sym);
    }
    free(sym);
    return quirk;
}

static int bfd_naming_quirk(const tm_frame *f, int n, const ref_addr *r, const elf_sym *syms,
                            size_t nsyms, uint64_t addr);

/* The DWARF-covered addresses where tm_sym and addr2line (ref) differ other
 * than by bfd_naming_quirk, checked against the second reference: returns
 * how many are binutils' DWARF 5 file-number error (see files_lines_eq). */
static size_t second_opinion(const char *label, tm_sym *s, const tm_module *m, const char *ref_file,
                             const uint64_t *addrs, size_t n, const ref_addr *ref,
                             const elf_sym *syms, size_t nsyms)
{
    uint64_t *odd = calloc(n ? n : 1, sizeof *odd);
    size_t nodd = 0, confirmed = 0;
    tm_frame f[MAX_FRAMES];
    for (size_t i = 0; ref && i < n; i++) {
        int k = tm_sym_resolve(s, m, addrs[i] + m->load_bias + 1, f, MAX_FRAMES);
        int dw = f[k - 1].function && !(f[k - 1].flags & TM_FRAME_SYMTAB);
        if (dw && !same_frames(f, k, &ref[i]) &&
            !bfd_naming_quirk(f, k, &ref[i], syms, nsyms, addrs[i]))
            odd[nodd++] = addrs[i];
    }
    char *tool = NULL;
    if (nodd) {
        if (llvm_symbolizer) {
            if (asprintf(&tool, "'%s' --output-style=GNU", llvm_symbolizer) < 0)
                abort();
        } else {
            tool = strdup("eu-addr2line");
        }
    }
    ref_addr *second = nodd ? run_ref(tool, ref_file, odd, nodd) : NULL;
    ref_addr *first = nodd ? run_ref("addr2line", ref_file, odd, nodd) : NULL;
    for (size_t i = 0; second && first && i < nodd; i++) {
        int k = tm_sym_resolve(s, m, odd[i] + m->load_bias + 1, f, MAX_FRAMES);
        if (names_lines_eq(f, k, &first[i]) && files_lines_eq(f, k, &second[i]))
            confirmed++;
        else if (verbose)
            fprintf(stderr, "%s: 0x%" PRIx64 " differs from both references\n", label, odd[i]);
    }
    ref_free(second, nodd);
    ref_free(first, nodd);
    free(tool);
    free(odd);
    return confirmed;
}

/* Resolves the sample addresses of ref_file through the module `file`
 * (the same code, possibly stripped or split) and compares them with the
 * reference tool's answers on ref_file.  With strict set, every address
 * tm_sym resolves from DWARF must agree (up to bfd_naming_quirk). */
static agreement compare_variant(const char *label, const char *file, const char *ref_file,
                                 const char *tool, const char *debug_root, int strict)
{
    agreement ag = {0, 0, 0, 0, 0, 0};
    uint64_t *addrs;
    size_t n = sample_addrs(ref_file, &addrs);
    CHECK(n > 50);
    ref_addr *ref = run_ref(tool, ref_file, addrs, n);
    CHECK(ref != NULL);
    elf_sym *syms;
    size_t nsyms = elf_funcs(ref_file, &syms);
    tm_module m;
    CHECK(elf_module(file, 1, &m) == 0);
    tm_sym_opts o = {1, debug_root};
    tm_sym *s = tm_sym_new(&o);
    int shown = 0;
    for (size_t i = 0; ref && i < n; i++) {
        tm_frame f[MAX_FRAMES];
        int k = tm_sym_resolve(s, &m, addrs[i] + 1, f, MAX_FRAMES);
        CHECK(k >= 1);
        int dw = f[0].function && !(f[0].flags & TM_FRAME_SYMTAB);
        int same = same_frames(f, k, &ref[i]);
        int quirk = !same && dw && bfd_naming_quirk(f, k, &ref[i], syms, nsyms, addrs[i]);
        int bfdfile = !same && !quirk && dw && names_lines_eq(f, k, &ref[i]);
        ag.total++;
        ag.total_same += (size_t)same;
        if (dw) {
            ag.dwarf++;
            ag.dwarf_same += (size_t)same;
            ag.dwarf_quirk += (size_t)quirk;
        }
        for (int j = 0; j < k; j++) {
            CHECK_STR(f[j].module, file);
            CHECK_U64(f[j].address, addrs[i] + 1);
            CHECK_U64(f[j].offset, addrs[i] + 1);
            CHECK((j < k - 1) == !!(f[j].flags & TM_FRAME_INLINED));
        }
        if (!same && ((dw && !quirk && !bfdfile) || !strict || verbose) && (shown < 5 || verbose)) {
            fprintf(stderr, "%s: %s frame list differs%s\n", label,
                    quirk ? "DWARF (bfd symbol naming)"
                    : dw  ? "DWARF"
                          : "non-DWARF",
                    strict && dw && !quirk ? " (FAIL)" : "");
            print_diff(addrs[i], f, k, &ref[i]);
            shown++;
        }
    }
    ag.dwarf_bfdfile = second_opinion(label, s, &m, ref_file, addrs, n, ref, syms, nsyms);
    if (strict)
        CHECK_U64(ag.dwarf_same + ag.dwarf_quirk + ag.dwarf_bfdfile, ag.dwarf);
    tm_sym_stats st;
    tm_sym_get_stats(s, &st);
    printf("%-34s DWARF-covered %zu/%zu identical", label, ag.dwarf_same, ag.dwarf);
    if (ag.dwarf_quirk)
        printf(" + %zu bfd symbol-naming differences", ag.dwarf_quirk);
    if (ag.dwarf_bfdfile)
        printf(" + %zu binutils DWARF 5 file-number errors", ag.dwarf_bfdfile);
    printf(", all %zu/%zu (dwarf errors %" PRIu64 ")\n", ag.total_same, ag.total, st.dwarf_errors);
    tm_sym_free(s);
    ref_free(ref, n);
    free(syms);
    free(addrs);
    return ag;
}

/* ---- fixture-specific checks --------------------------------------------- */

/* Line number of the line carrying the comment MARK:<mark> in a fixture. */
static unsigned mark_line(const char *src, const char *mark)
{
    char *path = path_in(srcdir, src);
    FILE *f = fopen(path, "r");
    free(path);
    if (!f)
        return 0;
    char buf[512], tag[64];
    unsigned ln = 0, found = 0;
    snprintf(tag, sizeof tag, "MARK:%s", mark);
    while (!found && fgets(buf, sizeof buf, f)) {
        ln++;
        const char *p = strstr(buf, tag);
        if (p && strchr(" \t\n*", p[strlen(tag)]))
            found = ln;
    }
    fclose(f);
    return found;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = s ? strlen(s) : 0, b = strlen(suffix);
    return s && a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Some address inside make_buffer resolves to grab -> twice -> make_buffer
 * with the marked lines: the always_inline function and the static function
 * gcc inlined both show up as inlined frames. */
static void check_inline_chain(const char *bin, const char *label)
{
    uint64_t a, z;
    CHECK(find_func(bin, "make_buffer", &a, &z));
    unsigned l_malloc = mark_line("sym_inline.c", "grab_malloc");
    unsigned l_twice = mark_line("sym_inline.c", "twice_grab");
    unsigned l_make = mark_line("sym_inline.c", "make_twice");
    CHECK(l_malloc && l_twice && l_make);
    tm_module m;
    CHECK(elf_module(bin, 7, &m) == 0);
    tm_sym *s = tm_sym_new(NULL);
    int found = 0;
    for (uint64_t x = a; x < a + z && !found; x++) {
        tm_frame f[MAX_FRAMES];
        int n = tm_sym_resolve(s, &m, x + 1, f, MAX_FRAMES);
        if (n == 3 && str_eq(f[0].function, "grab") && f[0].line == l_malloc) {
            found = 1;
            CHECK_STR(f[1].function, "twice");
            CHECK_U64(f[1].line, l_twice);
            CHECK_STR(f[2].function, "make_buffer");
            CHECK_U64(f[2].line, l_make);
            CHECK(ends_with(f[0].file, "/sym_inline.c"));
            CHECK(f[0].flags == TM_FRAME_INLINED && f[1].flags == TM_FRAME_INLINED);
            CHECK_U64(f[2].flags, 0);
            /* max bounds the output, innermost first */
            tm_frame one;
            CHECK_I64(tm_sym_resolve(s, &m, x + 1, &one, 1), 1);
            CHECK_STR(one.function, "grab");
        }
    }
    if (!found)
        fprintf(stderr, "%s: no grab->twice->make_buffer chain found\n", label);
    CHECK(found);
    tm_sym_free(s);
}

/* app::Pool::add: an inlined std::vector<int>::push_back called from the
 * marked line, demangled as addr2line -C prints it; the out-of-line
 * _M_realloc_insert instance demangled too. */
static void check_cxx(const char *bin, const char *label)
{
    uint64_t a, z;
    CHECK(find_func(bin, "_ZN3app4Pool3addEi", &a, &z));
    unsigned l_push = mark_line("sym_cxx.cpp", "push_back");
    CHECK(l_push > 0);
    tm_module m;
    CHECK(elf_module(bin, 3, &m) == 0);
    tm_sym *s = tm_sym_new(NULL);
    int found = 0;
    for (uint64_t x = a; x < a + z && !found; x++) {
        tm_frame f[MAX_FRAMES];
        int n = tm_sym_resolve(s, &m, x + 1, f, MAX_FRAMES);
        if (n >= 2 && str_eq(f[n - 1].function, "app::Pool::add(int)") &&
            str_eq(f[n - 2].function,
                   "std::vector<int, std::allocator<int> >::push_back(int const&)")) {
            found = 1;
            /* add's frame carries the line where it called push_back */
            CHECK_U64(f[n - 1].line, l_push);
            CHECK(ends_with(f[n - 1].file, "/sym_cxx.cpp"));
            CHECK(f[n - 2].flags & TM_FRAME_INLINED);
            CHECK(!(f[n - 1].flags & TM_FRAME_INLINED));
        }
    }
    if (!found)
        fprintf(stderr, "%s: no push_back -> app::Pool::add(int) chain\n", label);
    CHECK(found);

    /* std::function's _M_invoke for the lambda: DWARF says only "_M_invoke",
     * the qualified name comes from the symbol table */
    elf_sym *fs;
    size_t nfs = elf_funcs(bin, &fs);
    const elf_sym *inv = NULL;
    for (size_t i = 0; i < nfs && !inv; i++) {
        if (strstr(fs[i].name, "_Function_handler") && strstr(fs[i].name, "_M_invoke") &&
            strstr(fs[i].name, "4main"))
            inv = &fs[i];
    }
    CHECK(inv != NULL);
    if (inv) {
        tm_frame f[MAX_FRAMES];
        int n = tm_sym_resolve(s, &m, inv->addr + 1, f, MAX_FRAMES);
        CHECK_STR(f[n - 1].function, "std::_Function_handler<int (int), main::{lambda(int)#1}>::"
                                     "_M_invoke(std::_Any_data const&, int&&)");
        CHECK(!(f[n - 1].flags & TM_FRAME_SYMTAB));
    }
    free(fs);

    /* the instantiated function template */
    CHECK(find_func(bin, "_ZN3app5totalIiEET_RKSt6vectorIS1_SaIS1_EE", &a, &z));
    tm_frame f[MAX_FRAMES];
    int n = tm_sym_resolve(s, &m, a + 2, f, MAX_FRAMES);
    CHECK_STR(f[n - 1].function, "int app::total<int>(std::vector<int, std::allocator<int> > "
                                 "const&)");
    tm_sym_free(s);
}

/* ---- fallbacks ------------------------------------------------------------ */

static int copy_file(const char *from, const char *to, long corrupt_byte)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return -1;
    }
    int c;
    long pos = 0;
    while ((c = getc(in)) != EOF) {
        if (pos++ == corrupt_byte)
            c ^= 0x55;
        putc(c, out);
    }
    fclose(in);
    return fclose(out);
}

static void mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

/* The stripped copy: exported functions are named from .dynsym. */
static void check_stripped(const char *bin, const char *stripped, const char *empty_root)
{
    tm_module m;
    CHECK(elf_module(stripped, 2, &m) == 0);
    tm_sym_opts o = {1, empty_root};
    tm_sym *s = tm_sym_new(&o);
    static const char *const names[] = {"make_buffer", "sym_inline_sum", "main"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        uint64_t a, z;
        CHECK(find_func(bin, names[i], &a, &z));
        tm_frame f[MAX_FRAMES];
        int n = tm_sym_resolve(s, &m, a + z / 2 + 1, f, MAX_FRAMES);
        CHECK_I64(n, 1);
        CHECK_STR(f[0].function, names[i]);
        CHECK(f[0].flags & TM_FRAME_SYMTAB);
        CHECK(f[0].file == NULL && f[0].line == 0);
        CHECK_STR(f[0].module, stripped);
    }
    tm_sym_stats st;
    tm_sym_get_stats(s, &st);
    CHECK_U64(st.modules_loaded, 1);
    tm_sym_free(s);
}

/* The stripped copy again, at addresses its .dynsym does not cover: code of
 * static functions (not exported) and padding lying past the end of the
 * exported function before them.  That function's st_size says it ends
 * before the address, so the frame must be module+offset, not that name
 * (seen: "_obstack_memory_used in ls" for code of /usr/bin/ls). */
static void check_beyond_symbol(const char *stripped, const char *empty_root)
{
    elf_sym *dyn;
    size_t nd = elf_funcs_of(stripped, SHT_DYNSYM, &dyn);
    uint64_t taddr, tsize, toff;
    CHECK(nd > 2 && elf_section(stripped, ".text", &taddr, &tsize, &toff));
    tm_module m;
    CHECK(elf_module(stripped, 11, &m) == 0);
    m.load_bias = 0x40000;
    tm_sym_opts o = {1, empty_root};
    tm_sym *s = tm_sym_new(&o);
    size_t beyond = 0, inside = 0;
    for (uint64_t pc = taddr; pc < taddr + tsize; pc++) {
        const elf_sym *below = NULL;
        int covered = 0;
        for (size_t i = 0; i < nd; i++) {
            if (dyn[i].addr <= pc && (!below || dyn[i].addr > below->addr))
                below = &dyn[i];
            covered |= dyn[i].addr <= pc && pc < dyn[i].addr + dyn[i].size;
        }
        if (!below || !below->size)
            continue;
        tm_frame f[MAX_FRAMES];
        int n = tm_sym_resolve(s, &m, pc + m.load_bias + 1, f, MAX_FRAMES);
        CHECK_I64(n, 1);
        CHECK_STR(f[0].module, stripped);
        CHECK_U64(f[0].offset, pc + 1);
        if (covered) {
            inside++;
            CHECK(f[0].function && (f[0].flags & TM_FRAME_SYMTAB));
        } else {
            beyond++;
            if (f[0].function)
                fprintf(stderr, "0x%" PRIx64 ": past %s (0x%" PRIx64 "+%" PRIu64 ") but named %s\n",
                        pc, below->name, below->addr, below->size, f[0].function);
            CHECK(f[0].function == NULL && f[0].file == NULL && f[0].flags == 0);
        }
    }
    printf("stripped beyond .dynsym symbols: %zu addresses module+offset, %zu named\n", beyond,
           inside);
    CHECK(beyond > 16 && inside > 16);
    free(dyn);
    tm_sym_free(s);
}

/* A module whose debug info cannot be used: expect exactly one frame with
 * module and offset only (or a .dynsym name when want_symtab). */
static void check_degraded(const char *label, const char *path, const uint8_t *bid, size_t blen,
                           const char *root, uint64_t addr, const char *want_symtab)
{
    tm_module m;
    if (elf_module(path, 4, &m) < 0) {
        memset(&m, 0, sizeof m);
        m.id = 4;
        m.path = path;
    }
    m.load_bias = 0x1000;
    if (bid) {
        memcpy(m.build_id, bid, blen);
        m.build_id_len = (uint32_t)blen;
    }
    tm_sym_opts o = {1, root};
    tm_sym *s = tm_sym_new(&o);
    tm_frame f[MAX_FRAMES];
    int n = tm_sym_resolve(s, &m, addr + 0x1000 + 1, f, MAX_FRAMES);
    CHECK_I64(n, 1);
    CHECK_STR(f[0].module, path);
    CHECK_U64(f[0].address, addr + 0x1000 + 1);
    CHECK_U64(f[0].offset, addr + 1);
    CHECK(f[0].file == NULL && f[0].line == 0);
    if (want_symtab) {
        CHECK_STR(f[0].function, want_symtab);
        CHECK(f[0].flags & TM_FRAME_SYMTAB);
    } else {
        CHECK(f[0].function == NULL);
        CHECK_U64(f[0].flags, 0);
    }
    if (n != 1 || (want_symtab ? !str_eq(f[0].function, want_symtab) : f[0].function != NULL))
        fprintf(stderr, "%s: unexpected frame %s %s:%u\n", label,
                f[0].function ? f[0].function : "??", f[0].file ? f[0].file : "??", f[0].line);
    tm_sym_free(s);
}

/* A module deleted (or replaced) on disk since the target mapped it: the
 * build-id from the module record still finds its debug file. */
static void check_gone_with_build_id(const char *bin, const char *gone, const char *root)
{
    tm_module m;
    CHECK(elf_module(bin, 8, &m) == 0);
    m.path = gone;
    uint64_t a, z;
    CHECK(find_func(bin, "sym_inline_sum", &a, &z));
    tm_sym_opts o = {1, root};
    tm_sym *s = tm_sym_new(&o);
    tm_frame f[MAX_FRAMES];
    int n = tm_sym_resolve(s, &m, a + z / 2 + 1, f, MAX_FRAMES);
    CHECK_I64(n, 1);
    CHECK_STR(f[0].function, "sym_inline_sum");
    CHECK(!(f[0].flags & TM_FRAME_SYMTAB));
    CHECK(ends_with(f[0].file, "/sym_inline.c") && f[0].line > 0);
    CHECK_STR(f[0].module, gone);
    tm_sym_free(s);
}

/* Copies of a binary with damaged DWARF sections or headers: resolving must
 * never crash and always give at least one frame. */
static void check_corrupt(const char *bin)
{
    static const char *const secs[] = {".debug_info",     ".debug_line", ".debug_abbrev",
                                       ".debug_rnglists", ".debug_str",  ".debug_line_str"};
    FILE *in = fopen(bin, "rb");
    CHECK(in != NULL);
    if (!in)
        return;
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    rewind(in);
    unsigned char *orig = malloc((size_t)size);
    CHECK(fread(orig, 1, (size_t)size, in) == (size_t)size);
    fclose(in);
    uint64_t *addrs;
    size_t n = sample_addrs(bin, &addrs);
    char *copy = path_in(scratch, "corrupt.tmp");
    char *empty = path_in(scratch, "empty-root");
    unsigned seed = 12345;
    size_t total = 0, dwarf_frames = 0;
    uint64_t errors = 0;
    int variants = under_valgrind ? 12 : 40;
    for (int v = 0; v < variants; v++) {
        unsigned char *buf = malloc((size_t)size);
        memcpy(buf, orig, (size_t)size);
        long len = size;
        const char *what = secs[v % 6];
        uint64_t saddr, ssize, soff;
        if (v == variants - 1) {
            what = "truncated";
            len = size * 3 / 5;
        } else if (v == variants - 2) {
            what = "ELF header";
            for (int i = 16; i < 64; i++)
                buf[i] ^= (unsigned char)(rand_r(&seed) & 0xff);
        } else if (elf_section(bin, what, &saddr, &ssize, &soff) && ssize > 0) {
            int mode = (v / 6) % 3;
            if (mode == 0) { /* random bytes over part of the section */
                uint64_t start = soff + (uint64_t)rand_r(&seed) % ssize;
                uint64_t end = start + 1 + (uint64_t)rand_r(&seed) % 512;
                for (uint64_t i = start; i < end && i < soff + ssize; i++)
                    buf[i] = (unsigned char)rand_r(&seed);
            } else if (mode == 1) { /* scattered bit flips */
                for (int i = 0; i < 32; i++)
                    buf[soff + (uint64_t)rand_r(&seed) % ssize] ^=
                        (unsigned char)(1u << (rand_r(&seed) % 8));
            } else { /* zeroed tail */
                memset(buf + soff + ssize / 2, 0, ssize - ssize / 2);
            }
        }
        FILE *w = fopen(copy, "wb");
        CHECK(w && fwrite(buf, 1, (size_t)len, w) == (size_t)len);
        if (w)
            fclose(w);
        free(buf);

        tm_module m;
        memset(&m, 0, sizeof m);
        m.id = 9;
        m.path = copy; /* no build-id: the damaged file must be read */
        tm_sym_opts o = {1, empty};
        tm_sym *s = tm_sym_new(&o);
        for (size_t i = 0; i < n; i++) {
            tm_frame f[MAX_FRAMES];
            int k = tm_sym_resolve(s, &m, addrs[i] + 1, f, MAX_FRAMES);
            CHECK(k >= 1 && k <= MAX_FRAMES);
            total++;
            dwarf_frames += f[0].function && !(f[0].flags & TM_FRAME_SYMTAB);
        }
        tm_sym_stats st;
        tm_sym_get_stats(s, &st);
        errors += st.dwarf_errors;
        tm_sym_free(s);
        (void)what;
    }
    printf("corrupt copies: %d variants, %zu lookups, %zu with DWARF frames, %" PRIu64
           " libdwarf errors survived\n",
           variants, total, dwarf_frames, errors);
    unlink(copy);
    free(copy);
    free(empty);
    free(addrs);
    free(orig);
}

/* ---- cache ---------------------------------------------------------------- */

/* Two processes traced together (--follow-fork) number their modules on
 * their own: the same id may name another file, or the same file at another
 * load bias, at the same addresses.  Every answer must be the one a fresh
 * symbolizer gives for that module. */
static void check_cache_shared_ids(const char *a, const char *b)
{
    tm_module ma, mb;
    CHECK(elf_module(a, 3, &ma) == 0 && elf_module(b, 3, &mb) == 0);
    tm_module mc = ma; /* a's file at another bias, same id */
    mc.load_bias = 0x10000;
    uint64_t *addrs;
    size_t n = sample_addrs(a, &addrs);
    tm_sym *shared = tm_sym_new(NULL), *fb = tm_sym_new(NULL), *fc = tm_sym_new(NULL);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        tm_frame f1[MAX_FRAMES], f2[MAX_FRAMES];
        uint64_t x = addrs[i] + 1;
        tm_sym_resolve(shared, &ma, x, f1, MAX_FRAMES); /* cached under (3, x) */
        int n1 = tm_sym_resolve(shared, &mb, x, f1, MAX_FRAMES);
        int n2 = tm_sym_resolve(fb, &mb, x, f2, MAX_FRAMES);
        CHECK_I64(n1, n2);
        for (int k = 0; k < n1 && k < n2; k++) {
            CHECK(f1[k].function == f2[k].function ||
                  (f1[k].function && f2[k].function && !strcmp(f1[k].function, f2[k].function)));
            CHECK_U64(f1[k].line, f2[k].line);
            CHECK_U64(f1[k].offset, f2[k].offset);
        }
        n1 = tm_sym_resolve(shared, &mc, x + mc.load_bias, f1, MAX_FRAMES);
        n2 = tm_sym_resolve(fc, &mc, x + mc.load_bias, f2, MAX_FRAMES);
        CHECK_I64(n1, n2);
        CHECK_U64(f1[0].offset, f2[0].offset);
        CHECK_U64(f1[0].line, f2[0].line);
        n1 = tm_sym_resolve(shared, &mc, x, f1, MAX_FRAMES); /* below a's code there */
        CHECK_U64(f1[0].offset, x - mc.load_bias);
        tm_sym_resolve(fb, &mb, x, f2, MAX_FRAMES);
        tm_sym_resolve(shared, &ma, x, f1, MAX_FRAMES);
        differ += f1[0].line != f2[0].line;
    }
    printf("module ids shared by two files: %zu of %zu addresses answer differently\n", differ, n);
    CHECK(differ > 0); /* the two files really differ there */
    free(addrs);
    tm_sym_free(shared), tm_sym_free(fb), tm_sym_free(fc);
}

static void check_cache(const char *bin)
{
    tm_module m;
    CHECK(elf_module(bin, 5, &m) == 0);
    tm_sym *s = tm_sym_new(NULL);
    uint64_t *addrs;
    size_t n = sample_addrs(bin, &addrs);
    tm_frame f1[MAX_FRAMES], f2[MAX_FRAMES];
    for (size_t i = 0; i < n; i++)
        tm_sym_resolve(s, &m, addrs[i] + 1, f1, MAX_FRAMES);
    tm_sym_stats st;
    tm_sym_get_stats(s, &st);
    CHECK_U64(st.lookups, n);
    CHECK_U64(st.cache_hits, 0);
    CHECK_U64(st.modules_loaded, 1);
    /* the same answer, the same interned strings, from the cache */
    int n1 = tm_sym_resolve(s, &m, addrs[n / 2] + 1, f1, MAX_FRAMES);
    int n2 = tm_sym_resolve(s, &m, addrs[n / 2] + 1, f2, MAX_FRAMES);
    CHECK_I64(n1, n2);
    CHECK(memcmp(f1, f2, sizeof f1[0] * (size_t)n1) == 0);
    tm_sym_get_stats(s, &st);
    CHECK_U64(st.cache_hits, 2);

    /* the resolver interface is the same function */
    tm_resolver r = tm_sym_resolver(s);
    n2 = r.resolve(r.ctx, &m, addrs[n / 2] + 1, f2, MAX_FRAMES);
    CHECK_I64(n1, n2);
    CHECK(n1 >= 1 && f1[0].function == f2[0].function && f1[0].file == f2[0].file);

    /* the same file under another module id: read once */
    tm_module m2 = m;
    m2.id = 6;
    tm_sym_resolve(s, &m2, addrs[0] + 1, f1, MAX_FRAMES);
    tm_sym_get_stats(s, &st);
    CHECK_U64(st.modules_loaded, 1);

    /* no module: the address alone */
    n1 = tm_sym_resolve(s, NULL, 0x1234, f1, MAX_FRAMES);
    CHECK_I64(n1, 1);
    CHECK(f1[0].function == NULL && f1[0].file == NULL && f1[0].module == NULL);
    CHECK_U64(f1[0].address, 0x1234);

    /* cost of a cached lookup */
    int rounds = under_valgrind ? 2 : 200;
    double t0 = now_s();
    for (int k = 0; k < rounds; k++)
        for (size_t i = 0; i < n; i++)
            tm_sym_resolve(s, &m, addrs[i] + 1, f1, MAX_FRAMES);
    double ns = (now_s() - t0) * 1e9 / ((double)rounds * (double)n);
    printf("cached lookup: %.0f ns per address (%zu addresses x %d rounds)\n", ns, n, rounds);
    if (!under_valgrind)
        CHECK(ns < 1000);
    free(addrs);
    tm_sym_free(s);
}

/* ---- glibc from libc6-dbg ------------------------------------------------- */

typedef struct libc_find {
    tm_module m;
    char path[4096];
    int found;
} libc_find;

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    libc_find *lf = data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "/libc.so.6"))
        return 0;
    snprintf(lf->path, sizeof lf->path, "%s", info->dlpi_name);
    lf->m.id = 1;
    lf->m.load_bias = info->dlpi_addr;
    lf->m.path = lf->path;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && lf->m.nseg < TM_MODULE_MAX_SEGS)
            lf->m.seg[lf->m.nseg++] = (tm_segment){ph->p_vaddr, ph->p_memsz, ph->p_flags};
        if (ph->p_type == PT_NOTE && !lf->m.build_id_len)
            lf->m.build_id_len =
                (uint32_t)notes_build_id((const unsigned char *)(info->dlpi_addr + ph->p_vaddr),
                                         ph->p_memsz, lf->m.build_id);
    }
    lf->found = 1;
    return 1;
}

static void check_parts(const char *label, const tm_module *m, const uint64_t *addrs, size_t n);

static void check_libc(void)
{
    struct stat sb;
    if (stat("/usr/lib/debug/.build-id", &sb) != 0) {
        printf("libc: /usr/lib/debug/.build-id missing, check skipped\n");
        return;
    }
    libc_find lf;
    memset(&lf, 0, sizeof lf);
    dl_iterate_phdr(phdr_cb, &lf);
    CHECK(lf.found && lf.m.build_id_len > 0);
    void *h = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    CHECK(h != NULL);
    if (!h || !lf.found)
        return;
    uint64_t mal = (uint64_t)(uintptr_t)dlsym(h, "malloc");
    dlclose(h);
    tm_sym *s = tm_sym_new(NULL);
    tm_frame f[MAX_FRAMES];
    double t0 = now_s();
    int n = tm_sym_resolve(s, &lf.m, mal + 1, f, MAX_FRAMES);
    double load = now_s() - t0;
    CHECK(n >= 1);
    CHECK(f[n - 1].function && strstr(f[n - 1].function, "malloc"));
    CHECK(f[0].file && strstr(f[0].file, "malloc.c") && f[0].line > 0);
    CHECK(!(f[n - 1].flags & TM_FRAME_SYMTAB));
    printf("libc: malloc -> %s %s:%u; debug info loaded in %.1f ms\n",
           f[n - 1].function ? f[n - 1].function : "??", f[0].file ? f[0].file : "??", f[0].line,
           load * 1e3);

    /* a sample of libc's .text against addr2line, which finds the same
     * debug file through the build-id */
    uint64_t taddr, tsize, toff;
    if (!elf_section(lf.path, ".text", &taddr, &tsize, &toff)) {
        tm_sym_free(s);
        return;
    }
    size_t cnt = under_valgrind ? 100 : 400;
    uint64_t *a = malloc(cnt * sizeof *a);
    for (size_t i = 0; i < cnt; i++)
        a[i] = taddr + tsize / cnt * i + (i * 7) % 13;
    ref_addr *ref = run_ref("addr2line", lf.path, a, cnt);
    CHECK(ref != NULL);
    size_t same = 0, dw = 0, dw_same = 0;
    int shown = 0;
    for (size_t i = 0; ref && i < cnt; i++) {
        n = tm_sym_resolve(s, &lf.m, a[i] + lf.m.load_bias + 1, f, MAX_FRAMES);
        int eq = same_frames(f, n, &ref[i]);
        int isdw = f[0].function && !(f[0].flags & TM_FRAME_SYMTAB);
        same += (size_t)eq;
        dw += (size_t)isdw;
        dw_same += (size_t)(eq && isdw);
        if (!eq && isdw && !names_lines_eq(f, n, &ref[i]) && shown++ < 3) {
            fprintf(stderr, "libc: DWARF frame list differs\n");
            print_diff(a[i], f, n, &ref[i]);
        }
    }
    size_t bfdfile = second_opinion("libc", s, &lf.m, lf.path, a, cnt, ref, NULL, 0);
    printf("%-34s DWARF-covered %zu/%zu identical + %zu binutils DWARF 5 file-number errors, "
           "all %zu/%zu\n",
           "libc.so.6 (libc6-dbg)", dw_same, dw, bfdfile, same, cnt);
    CHECK(dw > cnt * 9 / 10);
    CHECK((dw_same + bfdfile) * 100 >= dw * 99);
    ref_free(ref, cnt);
    for (size_t i = 0; i < cnt; i++)
        a[i] += lf.m.load_bias + 1;
    if (!under_valgrind) /* four more loads of glibc: minutes under valgrind */
        check_parts("libc split load", &lf.m, a, cnt);
    free(a);
    tm_sym_free(s);
}

/* Large debug info is read by several children, one contiguous share of
 * the CUs each, merged in this process: the answers must be exactly those of
 * a single child.  TMTOP_SYM_PARTS forces the number of children. */
static void check_parts(const char *label, const tm_module *m, const uint64_t *addrs, size_t n)
{
    tm_frame *ref = calloc(n * MAX_FRAMES, sizeof *ref), f[MAX_FRAMES];
    int *nref = calloc(n, sizeof *nref);
    setenv("TMTOP_SYM_PARTS", "1", 1);
    tm_sym *one = tm_sym_new(NULL);
    for (size_t i = 0; i < n; i++)
        nref[i] = tm_sym_resolve(one, m, addrs[i], ref + i * MAX_FRAMES, MAX_FRAMES);
    for (int parts = 2; parts <= (under_valgrind ? 2 : 4); parts++) {
        char v[16];
        snprintf(v, sizeof v, "%d", parts);
        setenv("TMTOP_SYM_PARTS", v, 1);
        tm_sym *s = tm_sym_new(NULL);
        size_t same = 0;
        for (size_t i = 0; i < n; i++) {
            int k = tm_sym_resolve(s, m, addrs[i], f, MAX_FRAMES);
            int eq = k == nref[i];
            for (int j = 0; eq && j < k; j++) {
                const tm_frame *r = &ref[i * MAX_FRAMES + (size_t)j];
                eq = str_eq(f[j].function, r->function) && str_eq(f[j].file, r->file) &&
                     f[j].line == r->line && f[j].flags == r->flags;
            }
            same += (size_t)eq;
        }
        tm_sym_stats st;
        tm_sym_get_stats(s, &st);
        CHECK_U64(st.dwarf_errors, 0);
        CHECK_U64(same, n);
        printf("%-34s %d children: %zu/%zu answers as with one\n", label, parts, same, n);
        tm_sym_free(s);
    }
    unsetenv("TMTOP_SYM_PARTS");
    tm_sym_free(one);
    free(ref);
    free(nref);
}

static void check_parts_file(const char *bin)
{
    tm_module m;
    CHECK(elf_module(bin, 12, &m) == 0);
    uint64_t *addrs;
    size_t n = sample_addrs(bin, &addrs);
    for (size_t i = 0; i < n; i++)
        addrs[i]++;
    check_parts("sym_cxx split load", &m, addrs, n);
    free(addrs);
}

/* tm_sym_resolve_nowait: glibc's debug info (0.2-0.4 s to load) loads in
 * the background while addresses of a loaded module and cached ones are
 * answered in full; its addresses come back pending (module+offset) until
 * tm_sym_loading says the load is done, then in full. */
static void check_nowait(const char *cxx)
{
    struct stat sb;
    libc_find lf;
    memset(&lf, 0, sizeof lf);
    dl_iterate_phdr(phdr_cb, &lf);
    void *h = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
    if (stat("/usr/lib/debug/.build-id", &sb) != 0 || !lf.found || !h) {
        printf("nowait: no libc6-dbg, check skipped\n");
        if (h)
            dlclose(h);
        return;
    }
    uint64_t mal = (uint64_t)(uintptr_t)dlsym(h, "malloc") + 1;
    dlclose(h);
    tm_module mc;
    CHECK(elf_module(cxx, 21, &mc) == 0);
    lf.m.id = 22;
    uint64_t a, z;
    CHECK(find_func(cxx, "_ZN3app4Pool3addEi", &a, &z));

    tm_sym *s = tm_sym_new(NULL);
    tm_resolver r = tm_sym_resolver_nowait(s);
    tm_frame f[MAX_FRAMES], g[MAX_FRAMES];
    /* first sight of sym_cxx: its load starts; small, but not waited for */
    int n = r.resolve(r.ctx, &mc, a + 4, f, MAX_FRAMES);
    CHECK(n >= 1);
    double t0 = now_s();
    while (tm_sym_loading(s) && now_s() - t0 < 60)
        usleep(2000);
    CHECK_U64(tm_sym_loading(s), 0);
    n = r.resolve(r.ctx, &mc, a + 4, f, MAX_FRAMES);
    CHECK(n >= 1 && !(f[0].flags & TM_FRAME_PENDING));
    CHECK_STR(f[n - 1].function, "app::Pool::add(int)");

    /* glibc: pending at once, module and offset filled in */
    t0 = now_s();
    n = tm_sym_resolve_nowait(s, &lf.m, mal, f, MAX_FRAMES);
    double first = now_s() - t0;
    CHECK_I64(n, 1);
    CHECK_U64(f[0].flags, TM_FRAME_PENDING);
    CHECK(f[0].function == NULL && f[0].file == NULL);
    CHECK_STR(f[0].module, lf.path);
    CHECK_U64(f[0].address, mal);
    CHECK_U64(f[0].offset, mal - lf.m.load_bias);
    CHECK_U64(tm_sym_loading(s), 1);
    /* meanwhile, sym_cxx (loaded, and a new address of it) in full */
    n = tm_sym_resolve_nowait(s, &mc, a + 5, g, MAX_FRAMES);
    CHECK(n >= 1 && !(g[0].flags & TM_FRAME_PENDING) && g[n - 1].function != NULL);
    n = tm_sym_resolve_nowait(s, &lf.m, mal, f, MAX_FRAMES);
    if (f[0].flags & TM_FRAME_PENDING) /* else it finished meanwhile */
        CHECK(n == 1 && tm_sym_loading(s) == 1);
    size_t polls = 0;
    t0 = now_s();
    while (tm_sym_loading(s) && now_s() - t0 < 120) {
        usleep(2000);
        polls++;
    }
    double wait = now_s() - t0;
    CHECK_U64(tm_sym_loading(s), 0);
    n = tm_sym_resolve_nowait(s, &lf.m, mal, f, MAX_FRAMES);
    CHECK(n >= 1 && !(f[0].flags & TM_FRAME_PENDING));
    CHECK(f[n - 1].function && strstr(f[n - 1].function, "malloc"));
    CHECK(f[0].file && strstr(f[0].file, "malloc.c"));
    /* the same as a blocking symbolizer's answer */
    tm_sym *b = tm_sym_new(NULL);
    int nb = tm_sym_resolve(b, &lf.m, mal, g, MAX_FRAMES);
    CHECK_I64(n, nb);
    for (int i = 0; i < n && i < nb; i++) {
        CHECK_STR(f[i].function, g[i].function);
        CHECK_STR(f[i].file, g[i].file);
        CHECK_U64(f[i].line, g[i].line);
    }
    tm_sym_free(b);
    tm_sym_stats st;
    tm_sym_get_stats(s, &st);
    CHECK_U64(st.modules_loaded, 2);
    printf("nowait: first glibc lookup returned pending in %.2f ms; loaded in the background "
           "%.0f ms later (%zu polls)\n",
           first * 1e3, wait * 1e3, polls);

    /* freed during a load: the children are killed and reaped */
    tm_sym *q = tm_sym_new(NULL);
    n = tm_sym_resolve_nowait(q, &lf.m, mal, f, MAX_FRAMES);
    CHECK(n == 1 && (f[0].flags & TM_FRAME_PENDING));
    tm_sym_free(q);
    CHECK(waitpid(-1, NULL, WNOHANG) <= 0); /* no zombie left behind */
    tm_sym_free(s);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR SOURCE_DIR [LLVM_SYMBOLIZER]\n", argv[0]);
        return 2;
    }
    fixdir = argv[1];
    srcdir = argv[2];
    llvm_symbolizer = argc > 3 && argv[3][0] ? argv[3] : NULL;
    const char *pre = getenv("LD_PRELOAD");
    under_valgrind = pre && strstr(pre, "vgpreload") != NULL;
    verbose = getenv("TM_SYM_TEST_VERBOSE") != NULL;
    elf_version(EV_CURRENT);
    if (asprintf(&scratch, "%s/scratch-%d", fixdir, (int)getpid()) < 0)
        abort();
    mkdirs(scratch);

    char *empty = path_in(scratch, "empty-root");
    mkdirs(empty);
    char *inl = path_in(fixdir, "sym_inline");
    char *inl4 = path_in(fixdir, "sym_inline_dw4");
    char *cxx = path_in(fixdir, "sym_cxx");
    char *cxx4 = path_in(fixdir, "sym_cxx_dw4");
    char *stripped = path_in(fixdir, "sym_inline.stripped");
    char *split = path_in(fixdir, "split/sym_inline");
    char *split_dbg = path_in(fixdir, "split/.debug/sym_inline.debug");

    /* addr2line agreement, gcc 12 (DWARF 5 and 4) */
    compare_variant("sym_inline (gcc -O2 -g)", inl, inl, "addr2line", empty, 1);
    compare_variant("sym_inline (gcc -O2 -gdwarf-4)", inl4, inl4, "addr2line", empty, 1);
    compare_variant("sym_cxx (g++ -O2 -g)", cxx, cxx, "addr2line", empty, 1);
    compare_variant("sym_cxx (g++ -O2 -gdwarf-4)", cxx4, cxx4, "addr2line", empty, 1);
    check_inline_chain(inl, "sym_inline");
    check_inline_chain(inl4, "sym_inline_dw4");
    check_cxx(cxx, "sym_cxx");
    check_cxx(cxx4, "sym_cxx_dw4");

    /* clang 14: binutils 2.40 addr2line drops inline frames of clang's
     * DWARF 5, so llvm-symbolizer (GNU output style) is the reference */
    char *cl_inl = path_in(fixdir, "sym_inline_clang");
    char *cl_cxx = path_in(fixdir, "sym_cxx_clang");
    if (llvm_symbolizer && access(cl_inl, R_OK) == 0) {
        char *tool = NULL;
        if (asprintf(&tool, "'%s' --output-style=GNU", llvm_symbolizer) < 0)
            abort();
        compare_variant("sym_inline (clang -O2 -g)", cl_inl, cl_inl, tool, empty, 1);
        compare_variant("sym_cxx (clang++ -O2 -g)", cl_cxx, cl_cxx, tool, empty, 1);
        check_inline_chain(cl_inl, "sym_inline_clang");
        free(tool);
    } else {
        printf("clang variants: skipped (no clang or llvm-symbolizer)\n");
    }

    /* split debug info: .gnu_debuglink into .debug/, then the build-id tree */
    compare_variant("split (.gnu_debuglink)", split, inl, "addr2line", empty, 1);
    uint8_t bid[TM_BUILD_ID_MAX];
    tm_module mi;
    CHECK(elf_module(inl, 1, &mi) == 0 && mi.build_id_len >= 2);
    memcpy(bid, mi.build_id, mi.build_id_len);
    char hex[2 * TM_BUILD_ID_MAX + 1];
    for (uint32_t i = 0; i < mi.build_id_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", bid[i]);
    char *bidroot = path_in(scratch, "bid-root");
    char *sub = NULL, *dbg = NULL;
    if (asprintf(&sub, "%s/.build-id/%.2s", bidroot, hex) < 0 ||
        asprintf(&dbg, "%s/%s.debug", sub, hex + 2) < 0)
        abort();
    mkdirs(sub);
    CHECK(copy_file(split_dbg, dbg, -1) == 0);
    free(sub);
    free(dbg);
    compare_variant("stripped + build-id debug root", stripped, inl, "addr2line", bidroot, 1);

    /* no debug info: .dynsym names */
    check_stripped(inl, stripped, empty);
    check_beyond_symbol(stripped, empty);
    compare_variant("stripped (.dynsym only)", stripped, stripped, "addr2line", empty, 0);

    /* debug files that must be refused */
    uint64_t mb, mbz;
    CHECK(find_func(inl, "make_buffer", &mb, &mbz));
    char *bad = path_in(scratch, "badcrc");
    char *bad_dbgdir = path_in(scratch, "badcrc/.debug");
    mkdirs(bad_dbgdir);
    char *bad_bin = path_in(bad, "sym_inline");
    char *bad_dbg = path_in(bad_dbgdir, "sym_inline.debug");
    CHECK(copy_file(split, bad_bin, -1) == 0);
    CHECK(copy_file(split_dbg, bad_dbg, 100) == 0);
    check_degraded("bad CRC", bad_bin, NULL, 0, empty, mb + 4, "make_buffer");
    uint8_t wrong[20];
    memcpy(wrong, bid, sizeof wrong);
    wrong[0] ^= 0xff;
    check_degraded("build-id mismatch", inl, wrong, sizeof wrong, bidroot, mb + 4, NULL);
    char *missing = path_in(scratch, "no-such-module");
    check_degraded("missing file", missing, NULL, 0, empty, mb + 4, NULL);
    check_gone_with_build_id(inl, missing, bidroot);
    char *notelf = path_in(scratch, "not-elf.txt");
    FILE *w = fopen(notelf, "w");
    if (w) {
        fputs("not an ELF file\n", w);
        fclose(w);
    }
    check_degraded("not ELF", notelf, NULL, 0, empty, mb + 4, NULL);

    check_corrupt(cxx);
    check_parts_file(cxx);
    if (!under_valgrind) /* three more loads of glibc: minutes under valgrind */
        check_nowait(cxx);
    check_cache(cxx);
    check_cache_shared_ids(cxx, inl);
    check_libc();

    unlink(notelf);
    free(empty), free(inl), free(inl4), free(cxx), free(cxx4), free(stripped);
    free(split), free(split_dbg), free(cl_inl), free(cl_cxx), free(bidroot);
    free(bad), free(bad_dbgdir), free(bad_bin), free(bad_dbg), free(missing), free(notelf);
    char *rm = NULL;
    if (asprintf(&rm, "rm -rf '%s'", scratch) < 0)
        abort();
    CHECK(system(rm) == 0);
    free(rm);
    free(scratch);
    return check_done("symbolize");
}
