/* debugfile.c - finds the file that holds a module's DWARF: the build-id
 * tree, .gnu_debuglink, or the module itself (RESEARCH.md §1.9).  libdwarf's
 * dwarf_init_path could search too, but tmtop needs the build-id check
 * against the module record (a library replaced on disk since the target
 * loaded it must not be trusted) and one code path for all cases. */
#include "symbolize_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

int sym_file_crc32(int fd, uint32_t *crc)
{
    if (!crc_table[1])
        crc_init();
    unsigned char buf[65536];
    uint32_t c = 0xffffffffu;
    off_t off = 0;
    for (;;) {
        ssize_t r = pread(fd, buf, sizeof buf, off);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            c = crc_table[(c ^ buf[i]) & 0xff] ^ (c >> 8);
        off += r;
    }
    *crc = c ^ 0xffffffffu;
    return 0;
}

/* Opens a debug-file candidate: an ELF file with DWARF whose build-id (when
 * both sides have one) is the expected one. */
static int open_candidate(sym_elf *out, const char *path, const uint8_t *bid, size_t bidlen)
{
    if (sym_elf_open(out, path) < 0)
        return -1;
    uint8_t cb[64];
    size_t cn = sym_elf_build_id(out->elf, cb, sizeof cb);
    if ((bidlen && cn && (cn != bidlen || memcmp(cb, bid, bidlen) != 0)) ||
        !sym_elf_has_dwarf(out->elf)) {
        sym_elf_close(out);
        return -1;
    }
    return 0;
}

static int try_build_id(sym_files *f, const char *root, const uint8_t *bid, size_t bidlen)
{
    if (bidlen < 2)
        return -1;
    char hex[2 * 64 + 1];
    for (size_t i = 0; i < bidlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", bid[i]);
    char path[sizeof f->dwarf_path];
    int n = snprintf(path, sizeof path, "%s/.build-id/%.2s/%s.debug", root, hex, hex + 2);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    /* The build-id check is the whole point here: require the candidate to
     * carry one (open_candidate alone accepts a file without). */
    if (open_candidate(&f->debug, path, bid, bidlen) < 0)
        return -1;
    uint8_t cb[64];
    if (sym_elf_build_id(f->debug.elf, cb, sizeof cb) == 0) {
        sym_elf_close(&f->debug);
        return -1;
    }
    memcpy(f->dwarf_path, path, (size_t)n + 1);
    return 0;
}

static int try_link(sym_files *f, const char *path, uint32_t crc, const uint8_t *bid, size_t bidlen)
{
    sym_elf c;
    if (open_candidate(&c, path, bid, bidlen) < 0)
        return -1;
    uint32_t got;
    if (sym_file_crc32(c.fd, &got) < 0 || got != crc) {
        sym_elf_close(&c);
        return -1;
    }
    f->debug = c;
    snprintf(f->dwarf_path, sizeof f->dwarf_path, "%s", path);
    return 0;
}

/* The .gnu_debuglink search: DIR/name, DIR/.debug/name, ROOT/DIR/name, for
 * DIR the module's directory as given and, when it differs, as resolved
 * (/lib -> /usr/lib on merged-/usr systems). */
static int try_debuglink(sym_files *f, const char *path, const char *root, const uint8_t *bid,
                         size_t bidlen)
{
    char name[256];
    uint32_t crc;
    if (sym_elf_debuglink(f->module.elf, name, sizeof name, &crc) < 0)
        return -1;
    char dirs[2][PATH_MAX];
    int ndirs = 0;
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dirs[ndirs++], PATH_MAX, "%.*s", (int)(slash - path), path);
    else
        snprintf(dirs[ndirs++], PATH_MAX, ".");
    char real[PATH_MAX];
    char *rslash;
    if (realpath(path, real) && (rslash = strrchr(real, '/')) != NULL) {
        *rslash = '\0';
        if (strcmp(real, dirs[0]) != 0)
            snprintf(dirs[ndirs++], PATH_MAX, "%s", real);
    }
    char cand[PATH_MAX * 2 + 300];
    for (int i = 0; i < ndirs; i++) {
        const char *d = dirs[i];
        snprintf(cand, sizeof cand, "%s/%s", d, name);
        if (strcmp(cand, path) != 0 && try_link(f, cand, crc, bid, bidlen) == 0)
            return 0;
        snprintf(cand, sizeof cand, "%s/.debug/%s", d, name);
        if (try_link(f, cand, crc, bid, bidlen) == 0)
            return 0;
        snprintf(cand, sizeof cand, "%s%s%s/%s", root, d[0] == '/' ? "" : "/", d, name);
        if (try_link(f, cand, crc, bid, bidlen) == 0)
            return 0;
    }
    return -1;
}

void sym_files_open(sym_files *f, const char *path, const uint8_t *build_id, size_t build_id_len,
                    const char *debug_root)
{
    f->module.fd = f->debug.fd = -1;
    f->module.elf = f->debug.elf = NULL;
    f->dwarf = NULL;
    f->dwarf_path[0] = '\0';
    const char *root = debug_root ? debug_root : "/usr/lib/debug";

    uint8_t bid[64];
    size_t bidlen = 0;
    if (build_id_len) {
        bidlen = build_id_len < sizeof bid ? build_id_len : sizeof bid;
        memcpy(bid, build_id, bidlen);
    }
    if (sym_elf_open(&f->module, path) == 0) {
        uint8_t fb[64];
        size_t fn = sym_elf_build_id(f->module.elf, fb, sizeof fb);
        if (bidlen && (fn != bidlen || memcmp(fb, bid, bidlen) != 0)) {
            /* the file on disk is not what the target had mapped */
            sym_elf_close(&f->module);
        } else if (!bidlen && fn) {
            memcpy(bid, fb, fn);
            bidlen = fn;
        }
    }

    if (try_build_id(f, root, bid, bidlen) == 0 ||
        (f->module.elf && try_debuglink(f, path, root, bid, bidlen) == 0)) {
        f->dwarf = &f->debug;
        return;
    }
    if (f->module.elf && sym_elf_has_dwarf(f->module.elf)) {
        f->dwarf = &f->module;
        snprintf(f->dwarf_path, sizeof f->dwarf_path, "%s", path);
    }
}

void sym_files_close(sym_files *f)
{
    sym_elf_close(&f->module);
    sym_elf_close(&f->debug);
    f->dwarf = NULL;
}
