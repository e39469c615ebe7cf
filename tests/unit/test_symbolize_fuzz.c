/* test_symbolize_fuzz.c - the symbolizer on hundreds of damaged copies of the
 * fixture binaries: for each of .debug_info, .debug_line, .debug_abbrev and
 * .debug_str, copies with 1 to 64 random bytes overwritten (or single bits
 * flipped) inside that section.  Every lookup must return between 1 and max
 * frames whose strings are readable; nothing may crash or hang (libdwarf runs
 * in the symbolizer's forked child: a crash there must be survived too).
 *
 * usage: test_symbolize_fuzz BINARY...
 * TM_SYMFUZZ_VARIANTS=N sets the variants per section and binary (default 60). */
#define _GNU_SOURCE
#include "symbolize.h"

#include "check.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FRAMES 32
#define MAX_ADDRS 64

static const char *const sections[] = {".debug_info", ".debug_line", ".debug_abbrev", ".debug_str"};

typedef struct target {
    unsigned char *bytes;
    size_t size;
    uint64_t off[4], len[4]; /* file ranges of the sections above */
    uint64_t addrs[MAX_ADDRS];
    size_t naddrs;
} target;

/* Section ranges and a sample of code addresses (function starts + 1..). */
static int load_target(const char *path, target *t)
{
    memset(t, 0, sizeof *t);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    elf_version(EV_CURRENT);
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    size_t shstrndx;
    if (!e || elf_getshdrstrndx(e, &shstrndx) != 0) {
        close(fd);
        return -1;
    }
    for (Elf_Scn *scn = elf_nextscn(e, NULL); scn; scn = elf_nextscn(e, scn)) {
        GElf_Shdr sh;
        gelf_getshdr(scn, &sh);
        const char *name = elf_strptr(e, shstrndx, sh.sh_name);
        for (int i = 0; name && i < 4; i++)
            if (!strcmp(name, sections[i])) {
                t->off[i] = sh.sh_offset;
                t->len[i] = sh.sh_size;
            }
        if (sh.sh_type != SHT_SYMTAB)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
        for (size_t i = 0; d && i < n && t->naddrs < MAX_ADDRS; i++) {
            GElf_Sym sym;
            if (gelf_getsym(d, (int)i, &sym) && GELF_ST_TYPE(sym.st_info) == STT_FUNC &&
                sym.st_value && sym.st_size > 4)
                t->addrs[t->naddrs++] = sym.st_value + sym.st_size / 2;
        }
    }
    elf_end(e);
    off_t size = lseek(fd, 0, SEEK_END);
    t->bytes = malloc((size_t)size);
    t->size = (size_t)size;
    int ok = t->bytes && pread(fd, t->bytes, t->size, 0) == (ssize_t)t->size;
    close(fd);
    return ok ? 0 : -1;
}

static int readable(const char *s)
{
    return !s || strlen(s) < 1u << 20;
}

int main(int argc, char **argv)
{
    const char *env = getenv("TM_SYMFUZZ_VARIANTS");
    int variants = env ? atoi(env) : 60;
    char dir[] = "/tmp/tm-symfuzz-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char copy[sizeof dir + 16], empty[sizeof dir + 16];
    snprintf(copy, sizeof copy, "%s/copy", dir);
    snprintf(empty, sizeof empty, "%s/none", dir); /* no separate debug files */
    unsigned seed = 20240607;
    size_t lookups = 0, copies = 0, dwarf_frames = 0;
    uint64_t errors = 0;
    for (int a = 1; a < argc; a++) {
        target t;
        CHECK(load_target(argv[a], &t) == 0);
        CHECK(t.naddrs > 0);
        unsigned char *buf = malloc(t.size);
        for (int sec = 0; sec < 4; sec++) {
            CHECK(t.len[sec] > 0);
            for (int v = 0; v < variants && t.len[sec] > 0; v++) {
                memcpy(buf, t.bytes, t.size);
                int flips = 1 + rand_r(&seed) % 64;
                for (int i = 0; i < flips; i++) {
                    uint64_t at = t.off[sec] + (uint64_t)rand_r(&seed) % t.len[sec];
                    if (v % 2)
                        buf[at] ^= (unsigned char)(1u << (rand_r(&seed) % 8));
                    else
                        buf[at] = (unsigned char)rand_r(&seed);
                }
                FILE *w = fopen(copy, "wb");
                CHECK(w && fwrite(buf, 1, t.size, w) == t.size);
                if (w)
                    fclose(w);
                copies++;
                tm_module m;
                memset(&m, 0, sizeof m);
                m.id = 1;
                m.path = copy;
                tm_sym_opts o = {1, empty};
                tm_sym *s = tm_sym_new(&o);
                CHECK(s != NULL);
                for (size_t i = 0; s && i < t.naddrs; i++) {
                    tm_frame f[MAX_FRAMES];
                    int k = tm_sym_resolve(s, &m, t.addrs[i], f, MAX_FRAMES);
                    CHECK(k >= 1 && k <= MAX_FRAMES);
                    for (int j = 0; j < k && j < MAX_FRAMES; j++)
                        CHECK(readable(f[j].function) && readable(f[j].file));
                    lookups++;
                    dwarf_frames += k > 0 && f[0].file != NULL;
                }
                if (s) {
                    tm_sym_stats st;
                    tm_sym_get_stats(s, &st);
                    errors += st.dwarf_errors;
                    tm_sym_free(s);
                }
            }
        }
        free(buf);
        free(t.bytes);
    }
    printf("symbolize_fuzz: %zu damaged copies, %zu lookups, %zu with a source line, %llu "
           "libdwarf errors survived\n",
           copies, lookups, dwarf_frames, (unsigned long long)errors);
    unlink(copy);
    rmdir(dir);
    return check_done("symbolize_fuzz");
}
