/* bench_symbolize.c - the symbolizer against binutils' addr2line and
 * elfutils' eu-addr2line on the same addresses, in the same run.
 *
 * For each MODULE: N distinct random addresses in its .text (fixed seed) are
 * resolved cold by three processes fed the same address list on stdin:
 *   tm_sym        this program in --serve mode (a fresh tm_sym: loads the
 *                 module's debug info, resolves, prints addr2line's format)
 *   addr2line     -a -f -i -C -e MODULE
 *   eu-addr2line  -a -f -i -C -e MODULE
 * round-robin for ROUNDS rounds (the tool that goes first rotates); the
 * median wall time of each is printed with the ratios.  Then, in this
 * process: one cold pass (tm_sym_new + N lookups, debug info load included),
 * the cached lookup cost (ns per lookup over repeated passes), and the
 * agreement of tm_sym's frames (function, file, line of every inline level)
 * with each tool's, over all addresses and over the DWARF-covered ones (the
 * outermost frame's function comes from DWARF, not from ELF symbols).
 *
 * usage: bench_symbolize [-n N] [-r ROUNDS] [-s SEED] [-v] MODULE...
 *        bench_symbolize --serve MODULE < addresses
 * Exit status 1 when a tool could not be run or gave unreadable output. */
#define _GNU_SOURCE
#include "symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAMES 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *xcalloc(size_t n, size_t z)
{
    void *p = calloc(n ? n : 1, z);
    if (!p) {
        perror("calloc");
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        perror("strdup");
        exit(1);
    }
    return p;
}

/* A module record for a file at load bias 0 (build-id read from the file). */
static void file_module(const char *path, tm_module *m)
{
    memset(m, 0, sizeof *m);
    m->id = 1;
    m->path = path;
}

/* ---- --serve: tm_sym as an addr2line-like process ------------------------ */

static void print_frames(FILE *out, uint64_t a, const tm_frame *f, int n)
{
    fprintf(out, "0x%016" PRIx64 "\n", a);
    for (int i = 0; i < n; i++) {
        fprintf(out, "%s\n", f[i].function ? f[i].function : "??");
        if (f[i].file)
            fprintf(out, "%s:%u\n", f[i].file, f[i].line);
        else
            fputs("??:0\n", out);
    }
}

static int serve(const char *path)
{
    tm_module m;
    file_module(path, &m);
    tm_sym *s = tm_sym_new(NULL);
    if (!s)
        return 1;
    char line[128];
    tm_frame f[MAX_FRAMES];
    while (fgets(line, sizeof line, stdin)) {
        uint64_t a = strtoull(line, NULL, 16);
        int n = tm_sym_resolve(s, &m, a + 1, f, MAX_FRAMES);
        print_frames(stdout, a, f, n);
    }
    tm_sym_free(s);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- addresses ----------------------------------------------------------- */

static int text_section(const char *path, uint64_t *addr, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    Elf *e = elf_begin(fd, ELF_C_READ, NULL);
    size_t shstr;
    int rc = -1;
    if (e && elf_getshdrstrndx(e, &shstr) == 0) {
        Elf_Scn *scn = NULL;
        GElf_Shdr sh;
        while (rc < 0 && (scn = elf_nextscn(e, scn)) != NULL) {
            const char *n;
            if (gelf_getshdr(scn, &sh) && (n = elf_strptr(e, shstr, sh.sh_name)) &&
                strcmp(n, ".text") == 0) {
                *addr = sh.sh_addr;
                *size = sh.sh_size;
                rc = 0;
            }
        }
    }
    if (e)
        elf_end(e);
    close(fd);
    return rc;
}

static uint64_t rng_next(uint64_t *x)
{
    /* xorshift64* */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dull;
}

/* n distinct addresses in [lo, lo + size) (size > n), in random order. */
static uint64_t *pick_addrs(uint64_t lo, uint64_t size, size_t n, uint64_t seed)
{
    uint64_t *a = xcalloc(n, sizeof *a);
    size_t cap = 1;
    while (cap < 2 * n)
        cap *= 2;
    uint64_t *set = xcalloc(cap, sizeof *set); /* offset + 1; 0 = empty */
    uint64_t x = seed ? seed : 1;
    for (size_t got = 0; got < n;) {
        uint64_t off = rng_next(&x) % size;
        size_t h = (size_t)((off * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
        while (set[h] && set[h] != off + 1)
            h = (h + 1) & (cap - 1);
        if (set[h])
            continue;
        set[h] = off + 1;
        a[got++] = lo + off;
    }
    free(set);
    return a;
}

/* ---- running the tools ---------------------------------------------------- */

/* Runs argv with stdin from in_path and stdout to out_path; returns the wall
 * time in seconds, or -1 when the tool failed, and its CPU time (user +
 * system, its reaped children included: tm_sym's DWARF loaders) in *cpu. */
static double run_tool(char *const argv[], const char *in_path, const char *out_path, double *cpu)
{
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int in = open(in_path, O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
        ;
    double t = now_s() - t0;
    *cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t : -1;
}

typedef struct rframe {
    char *func, *file;
    unsigned line;
} rframe;

typedef struct raddr {
    int n;
    rframe *f;
} raddr;

static void raddr_free(raddr *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        for (int k = 0; k < r[i].n; k++) {
            free(r[i].f[k].func);
            free(r[i].f[k].file);
        }
        free(r[i].f);
    }
    free(r);
}

/* Parses `-a -f -i` output of addr2line, eu-addr2line or --serve: per
 * address a "0x..." line, then function / location line pairs.  eu-addr2line
 * appends " inlined at FILE:LINE:COL in OUTER" to inlined function names and
 * a column to locations; addr2line may append " (discriminator N)".  Both
 * are dropped: the comparison is on function, file and line. */
static raddr *parse_output(const char *path, const uint64_t *addrs, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    raddr *r = xcalloc(n, sizeof *r);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long cur = -1;
    char *func = NULL;
    int bad = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!func && strncmp(line, "0x", 2) == 0) {
            cur++;
            if ((size_t)cur >= n || strtoull(line, NULL, 16) != addrs[cur]) {
                bad = 1;
                break;
            }
            continue;
        }
        if (cur < 0) {
            bad = 1;
            break;
        }
        if (!func) {
            char *in = strstr(line, " inlined at ");
            if (in)
                *in = '\0';
            func = xstrdup(line);
            continue;
        }
        char *disc = strstr(line, " (discriminator");
        if (disc)
            *disc = '\0';
        /* FILE:LINE or FILE:LINE:COL */
        unsigned ln = 0;
        char *c1 = strrchr(line, ':');
        if (c1) {
            *c1 = '\0';
            char *c2 = strrchr(line, ':');
            if (c2 && c2[1] >= '0' && c2[1] <= '9' &&
                strspn(c2 + 1, "0123456789") == strlen(c2 + 1)) {
                *c2 = '\0';
                ln = (unsigned)strtoul(c2 + 1, NULL, 10);
            } else {
                ln = (unsigned)strtoul(c1 + 1, NULL, 10);
            }
        }
        raddr *ra = &r[cur];
        rframe *nf = realloc(ra->f, (size_t)(ra->n + 1) * sizeof *nf);
        if (!nf)
            exit(1);
        ra->f = nf;
        ra->f[ra->n].func = strcmp(func, "??") ? func : NULL;
        if (!ra->f[ra->n].func)
            free(func);
        ra->f[ra->n].file = strcmp(line, "??") ? xstrdup(line) : NULL;
        ra->f[ra->n].line = ln;
        ra->n++;
        func = NULL;
    }
    free(func);
    free(line);
    fclose(f);
    if (bad || cur + 1 != (long)n) {
        fprintf(stderr, "%s: unreadable output (%ld of %zu addresses)\n", path, cur + 1, n);
        raddr_free(r, n);
        return NULL;
    }
    return r;
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same(const tm_frame *f, int n, const raddr *r)
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

/* binutils 2.40's addr2line reads file number 1 of a DWARF 5 line table
 * as entry 0 (the CU's primary file), as libdwarf 20210528's own line rows
 * do; tm_sym decodes line programs itself and numbers files as DWARF 5 says,
 * as eu-addr2line (and llvm-symbolizer, readelf) do.  Such an address: the
 * same names and lines as addr2line, the same files and lines as
 * eu-addr2line. */
static int binutils_file_number(const tm_frame *f, int n, const raddr *a2l, const raddr *eu)
{
    if (n != a2l->n || n != eu->n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!str_eq(f[i].function, a2l->f[i].func) || f[i].line != a2l->f[i].line ||
            !str_eq(f[i].file, eu->f[i].file) || f[i].line != eu->f[i].line)
            return 0;
    }
    return 1;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, dbl_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void show_diff(const char *tool, uint64_t a, const tm_frame *f, int n, const raddr *r)
{
    fprintf(stderr, "  0x%" PRIx64 " tm_sym:", a);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %s@%s:%u", f[i].function ? f[i].function : "??",
                f[i].file ? f[i].file : "??", f[i].line);
    fprintf(stderr, "\n  %*s %s:", 18, "", tool);
    for (int i = 0; i < r->n; i++)
        fprintf(stderr, " %s@%s:%u", r->f[i].func ? r->f[i].func : "??",
                r->f[i].file ? r->f[i].file : "??", r->f[i].line);
    fputc('\n', stderr);
}

enum { T_SYM, T_A2L, T_EU, NTOOLS };
static const char *const tool_names[NTOOLS] = {"tm_sym", "addr2line", "eu-addr2line"};

static int bench_module(const char *self, const char *path, size_t n, int rounds, uint64_t seed,
                        int verbose)
{
    uint64_t lo, size;
    if (text_section(path, &lo, &size) < 0 || size < 2 * n) {
        fprintf(stderr, "%s: no .text section large enough for %zu addresses\n", path, n);
        return 1;
    }
    uint64_t *addrs = pick_addrs(lo, size, n, seed);

    char dir[] = "/tmp/bench_symbolize.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char in_path[64], out_path[NTOOLS][64];
    snprintf(in_path, sizeof in_path, "%s/addrs", dir);
    FILE *w = fopen(in_path, "w");
    for (size_t i = 0; w && i < n; i++)
        fprintf(w, "0x%" PRIx64 "\n", addrs[i]);
    if (!w || fclose(w) != 0) {
        perror(in_path);
        return 1;
    }
    char *argv[NTOOLS][9] = {
        {(char *)self, "--serve", (char *)path, NULL},
        {"addr2line", "-a", "-f", "-i", "-C", "-e", (char *)path, NULL},
        {"eu-addr2line", "-a", "-f", "-i", "-C", "-e", (char *)path, NULL},
    };
    double *times[NTOOLS], *cpus[NTOOLS];
    for (int t = 0; t < NTOOLS; t++) {
        snprintf(out_path[t], sizeof out_path[t], "%s/out%d", dir, t);
        times[t] = xcalloc((size_t)rounds, sizeof(double));
        cpus[t] = xcalloc((size_t)rounds, sizeof(double));
    }
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < NTOOLS; k++) {
            int t = (r + k) % NTOOLS;
            times[t][r] = run_tool(argv[t], in_path, out_path[t], &cpus[t][r]);
            if (times[t][r] < 0) {
                fprintf(stderr, "%s failed on %s\n", tool_names[t], path);
                return 1;
            }
        }
    }
    double med[NTOOLS], cpu[NTOOLS];
    for (int t = 0; t < NTOOLS; t++) {
        med[t] = median(times[t], rounds);
        cpu[t] = median(cpus[t], rounds);
    }

    /* in this process: one cold pass, then cached passes */
    tm_module m;
    file_module(path, &m);
    tm_frame *fr = xcalloc(n * MAX_FRAMES, sizeof *fr);
    int *nfr = xcalloc(n, sizeof *nfr);
    double t0 = now_s();
    tm_sym *s = tm_sym_new(NULL);
    for (size_t i = 0; i < n; i++)
        nfr[i] = tm_sym_resolve(s, &m, addrs[i] + 1, fr + i * MAX_FRAMES, MAX_FRAMES);
    double cold = now_s() - t0;
    tm_frame tmp[MAX_FRAMES];
    int passes = 0;
    t0 = now_s();
    do {
        for (size_t i = 0; i < n; i++)
            tm_sym_resolve(s, &m, addrs[i] + 1, tmp, MAX_FRAMES);
        passes++;
    } while (now_s() - t0 < 0.3);
    double cached_ns = (now_s() - t0) * 1e9 / ((double)passes * (double)n);

    size_t dw = 0;
    for (size_t i = 0; i < n; i++) {
        const tm_frame *f = fr + i * MAX_FRAMES;
        dw += f[nfr[i] - 1].function && !(f[nfr[i] - 1].flags & TM_FRAME_SYMTAB);
    }
    printf("%s: %zu distinct addresses in .text, %d rounds (medians, whole process)\n", path, n,
           rounds);
    for (int t = 0; t < NTOOLS; t++) {
        printf("  %-13s %8.1f ms wall %8.1f ms cpu", tool_names[t], med[t] * 1e3, cpu[t] * 1e3);
        if (t != T_SYM)
            printf("   tm_sym/%s: wall %.2f, cpu %.2f", tool_names[t], med[T_SYM] / med[t],
                   cpu[T_SYM] / cpu[t]);
        putchar('\n');
    }
    printf("  tm_sym in-process: cold %.1f ms (debug info load + %zu lookups), cached %.0f ns "
           "per lookup\n",
           cold * 1e3, n, cached_ns);
    int rc = 0;
    raddr *out[NTOOLS];
    for (int t = 0; t < NTOOLS; t++)
        if (!(out[t] = parse_output(out_path[t], addrs, n)))
            rc = 1;
    for (int t = 0; t < NTOOLS; t++) {
        raddr *r = out[t];
        if (!r)
            continue;
        size_t all = 0, dws = 0, shown = 0, filenum = 0;
        for (size_t i = 0; i < n; i++) {
            const tm_frame *f = fr + i * MAX_FRAMES;
            int isdw = f[nfr[i] - 1].function && !(f[nfr[i] - 1].flags & TM_FRAME_SYMTAB);
            int eq = same(f, nfr[i], &r[i]);
            all += (size_t)eq;
            dws += (size_t)(eq && isdw);
            int fn = !eq && isdw && t == T_A2L && out[T_EU] &&
                     binutils_file_number(f, nfr[i], &r[i], &out[T_EU][i]);
            filenum += (size_t)fn;
            if (!eq && isdw && !fn && t != T_EU && (verbose || shown < 3) && ++shown)
                show_diff(tool_names[t], addrs[i], f, nfr[i], &r[i]);
        }
        if (t == T_SYM)
            printf("  --serve output identical to in-process frames: %zu/%zu\n", all, n);
        else
            printf("  agreement with %-13s DWARF-covered %zu/%zu (%.3f%%), all %zu/%zu (%.2f%%)\n",
                   tool_names[t], dws, dw, dw ? 100.0 * (double)dws / (double)dw : 0.0, all, n,
                   100.0 * (double)all / (double)n);
        if (filenum)
            printf(
                "    + %zu DWARF-covered where addr2line misnumbers DWARF 5 files (names and lines "
                "as addr2line, files as eu-addr2line): %zu/%zu (%.3f%%)\n",
                filenum, dws + filenum, dw,
                dw ? 100.0 * (double)(dws + filenum) / (double)dw : 0.0);
        if (t == T_SYM && all != n)
            rc = 1;
    }
    for (int t = 0; t < NTOOLS; t++)
        raddr_free(out[t], n);
    fflush(stdout);
    tm_sym_free(s);
    free(fr);
    free(nfr);
    for (int t = 0; t < NTOOLS; t++) {
        unlink(out_path[t]);
        free(times[t]);
        free(cpus[t]);
    }
    unlink(in_path);
    rmdir(dir);
    free(addrs);
    return rc;
}

int main(int argc, char **argv)
{
    elf_version(EV_CURRENT);
    if (argc == 3 && strcmp(argv[1], "--serve") == 0)
        return serve(argv[2]);
    size_t n = 10000;
    int rounds = 5, verbose = 0, opt;
    uint64_t seed = 42;
    while ((opt = getopt(argc, argv, "n:r:s:v")) != -1) {
        switch (opt) {
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 0);
            break;
        case 'v':
            verbose = 1;
            break;
        default:
            goto usage;
        }
    }
    if (optind >= argc || n == 0 || rounds < 1)
        goto usage;
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0)
        return 1;
    self[k] = '\0';
    int rc = 0;
    for (int i = optind; i < argc; i++)
        rc |= bench_module(self, argv[i], n, rounds, seed, verbose);
    return rc;
usage:
    fprintf(stderr,
            "usage: %s [-n N] [-r ROUNDS] [-s SEED] [-v] MODULE...\n"
            "       %s --serve MODULE < addresses\n",
            argv[0], argv[0]);
    return 2;
}
