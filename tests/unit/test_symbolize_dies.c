/* test_symbolize_dies.c - the load without libdwarf (dies.c's DIEs, dwarf.c's
 * own line programs and file names) and the mixed one (libdwarf's units and
 * file names, dies.c's DIEs) give exactly the tables of the load with
 * libdwarf alone (rows with their file names, scopes with names, call sites
 * and flags, segments), on every fixture given and on glibc's debug file
 * when libc6-dbg is installed; and the load without libdwarf reads all of
 * their units itself (none left to libdwarf).  A file given after
 * --fallback holds units dies.c leaves to libdwarf (type units): its load
 * must fall back to libdwarf, with the same tables.  Then corrupt copies of
 * the first file (random bytes of its .debug_* sections changed) are loaded
 * without libdwarf, in this process: nothing may crash or read out of
 * bounds (run under ASan and valgrind), whatever the result.
 *
 * usage: test_symbolize_dies FILE... [--fallback FILE...] */
#define _GNU_SOURCE /* memfd_create */
#include "check.h"
#include "symbolize_internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int load(const char *path, int own, sym_obj *o, sym_intern *in, uint64_t *errors)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -2;
    memset(o, 0, sizeof *o);
    sym_dwarf_use_own_dies = own;
    int rc = sym_dwarf_load(o, fd, in, errors, 0, 1);
    sym_dwarf_use_own_dies = 1;
    close(fd);
    return rc;
}

static void compare(const char *path, int mode, int fallback)
{
    sym_intern *in = sym_intern_new();
    sym_obj a, b;
    uint64_t ea = 0, eb = 0;
    unsigned long own0 = sym_dwarf_units_own, lib0 = sym_dwarf_units_libdwarf;
    int ra = load(path, mode, &a, in, &ea);
    unsigned long own = sym_dwarf_units_own - own0, lib = sym_dwarf_units_libdwarf - lib0;
    int rb = load(path, 0, &b, in, &eb);
    CHECK(ra == 0 && rb == 0);
    CHECK_U64(ea, eb);
    CHECK_U64(ea, 0);
    if (mode == 1 && fallback) {
        /* a unit kind dies.c leaves to libdwarf: the whole load goes there */
        CHECK_U64(own, 0);
        CHECK(lib > 0);
        own = lib;
    } else if (mode == 1) {
        /* every unit of these clean files is read without libdwarf */
        CHECK(own > 0);
        CHECK_U64(lib, 0);
    } else {
        CHECK_U64(own, 0);
        own = lib;
    }
    CHECK_U64(a.nrows, b.nrows);
    CHECK_U64(a.nscopes, b.nscopes);
    CHECK_U64(a.nsegs, b.nsegs);
    size_t bad_rows = 0, bad_scopes = 0, bad_segs = 0;
    for (size_t i = 0; i < a.nrows && i < b.nrows; i++) {
        const sym_row *x = &a.rows[i], *y = &b.rows[i];
        /* interned in one table: equal strings are equal pointers */
        bad_rows +=
            x->addr != y->addr || x->file != y->file || x->line != y->line || x->end != y->end;
    }
    for (size_t i = 0; i < a.nscopes && i < b.nscopes; i++) {
        const sym_scope *x = &a.scopes[i], *y = &b.scopes[i];
        int diff = !str_eq(x->name, y->name) || !str_eq(x->call_file, y->call_file) ||
                   x->entry != y->entry || x->call_line != y->call_line || x->flags != y->flags ||
                   x->parent != y->parent;
        if (diff && bad_scopes < 5)
            printf("  scope %zu: %s %s:%u %#llx %d | %s %s:%u %#llx %d\n", i,
                   x->name ? x->name : "-", x->call_file ? x->call_file : "-", x->call_line,
                   (unsigned long long)x->entry, x->parent, y->name ? y->name : "-",
                   y->call_file ? y->call_file : "-", y->call_line, (unsigned long long)y->entry,
                   y->parent);
        bad_scopes += (size_t)diff;
    }
    for (size_t i = 0; i < a.nsegs && i < b.nsegs; i++) {
        const sym_seg *x = &a.segs[i], *y = &b.segs[i];
        bad_segs += x->lo != y->lo || x->hi != y->hi || x->scope != y->scope;
    }
    CHECK_U64(bad_rows, 0);
    CHECK_U64(bad_scopes, 0);
    CHECK_U64(bad_segs, 0);
    printf("%s (%s): %lu units, %zu rows, %zu scopes, %zu segments: identical\n", path,
           mode == 1 && !fallback ? "no libdwarf"
           : mode == 1            ? "fell back to libdwarf"
                                  : "libdwarf units, own DIEs",
           own, a.nrows, a.nscopes, a.nsegs);
    free(a.rows), free(a.scopes), free(a.segs);
    free(b.rows), free(b.scopes), free(b.segs);
    sym_intern_free(in);
}

/* The file ranges of path's .debug_* sections. */
static size_t debug_ranges(const char *path, uint64_t (*out)[2], size_t max)
{
    sym_elf f;
    if (sym_elf_open(&f, path) < 0)
        return 0;
    size_t shstr, n = 0;
    if (elf_getshdrstrndx(f.elf, &shstr) == 0) {
        Elf_Scn *scn = NULL;
        GElf_Shdr sh;
        while ((scn = elf_nextscn(f.elf, scn)) != NULL && n < max) {
            const char *name;
            if (gelf_getshdr(scn, &sh) && (name = elf_strptr(f.elf, shstr, sh.sh_name)) &&
                strncmp(name, ".debug_", 7) == 0 && sh.sh_type != SHT_NOBITS && sh.sh_size) {
                out[n][0] = sh.sh_offset;
                out[n][1] = sh.sh_size;
                n++;
            }
        }
    }
    sym_elf_close(&f);
    return n;
}

static void fuzz(const char *path, int variants)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    CHECK(fd >= 0 && fstat(fd, &sb) == 0);
    if (fd < 0)
        return;
    unsigned char *orig = malloc((size_t)sb.st_size), *buf = malloc((size_t)sb.st_size);
    CHECK(orig && buf && read(fd, orig, (size_t)sb.st_size) == sb.st_size);
    close(fd);
    uint64_t secs[32][2];
    size_t nsecs = debug_ranges(path, secs, 32);
    CHECK(nsecs > 0);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int loaded = 0;
    for (int v = 0; v < variants && nsecs; v++) {
        memcpy(buf, orig, (size_t)sb.st_size);
        int flips = 1 + v % 8;
        for (int k = 0; k < flips; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const uint64_t *sec = secs[(seed >> 33) % nsecs];
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t at = sec[0] + (seed >> 20) % sec[1];
            buf[at] = (unsigned char)(v & 1 ? seed >> 56 : buf[at] ^ (1u << (seed >> 61)));
        }
        int mfd = memfd_create("dies-fuzz", MFD_CLOEXEC);
        CHECK(mfd >= 0);
        if (mfd < 0)
            break;
        CHECK(write(mfd, buf, (size_t)sb.st_size) == sb.st_size);
        sym_intern *in = sym_intern_new();
        sym_obj o;
        memset(&o, 0, sizeof o);
        uint64_t errors = 0;
        sym_dwarf_use_own_dies = 3;
        loaded += sym_dwarf_load(&o, mfd, in, &errors, 0, 1) == 0;
        sym_dwarf_use_own_dies = 1;
        free(o.rows), free(o.scopes), free(o.segs);
        sym_intern_free(in);
        close(mfd);
    }
    printf("%s: %d corrupt copies read without libdwarf, %d loaded\n", path, variants, loaded);
    free(orig);
    free(buf);
}

/* glibc's separate debug file, by build-id, when libc6-dbg is installed */
static int libc_debug(char *out, size_t max)
{
    const char *libs[] = {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"};
    for (size_t k = 0; k < sizeof libs / sizeof libs[0]; k++) {
        sym_elf f;
        if (sym_elf_open(&f, libs[k]) < 0)
            continue;
        uint8_t id[64];
        size_t n = sym_elf_build_id(f.elf, id, sizeof id);
        sym_elf_close(&f);
        if (n < 2)
            continue;
        int w = snprintf(out, max, "/usr/lib/debug/.build-id/%02x/", id[0]);
        for (size_t i = 1; i < n && w > 0 && (size_t)w + 3 < max; i++)
            w += snprintf(out + w, max - (size_t)w, "%02x", id[i]);
        if (w > 0 && (size_t)w + 7 < max) {
            strcpy(out + w, ".debug");
            if (access(out, R_OK) == 0)
                return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    elf_version(EV_CURRENT);
    sym_dwarf_global_init();
    for (int mode = 1; mode <= 2; mode++) {
        int fallback = 0;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--fallback") == 0)
                fallback = 1;
            else
                compare(argv[i], mode, fallback);
        }
    }
    if (argc > 1)
        fuzz(argv[1], getenv("TM_DIES_FUZZ") ? atoi(getenv("TM_DIES_FUZZ")) : 400);
    char dbg[512];
    if (libc_debug(dbg, sizeof dbg) == 0) {
        compare(dbg, 1, 0);
        compare(dbg, 2, 0);
    } else
        printf("glibc: skipped (libc6-dbg is not installed)\n");
    return check_done("symbolize_dies");
}
