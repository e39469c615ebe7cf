/* isolate.c - runs the DWARF load in forked children (one, or several on
 * request, each reading a share of the CUs) and receives the flat
 * tables through a memfd (a pipe when memfd_create is unavailable), then
 * merges the shares.
 *
 * Why: the load falls back to libdwarf for what dwarf.c's own reader leaves
 * to it (corrupt DWARF among others), and libdwarf 20210528 is not safe on
 * corrupt input even with every error argument passed.  Fuzzing
 * .debug_rnglists found a double free in
 * dwarf_next_cu_header_d (internal_load_rnglists_contexts frees a context
 * after a header error and then keeps using it), i.e. a crash tmtop cannot
 * catch.  In a child, a crash only costs that module's DWARF: the parent sees
 * a failed child and falls back to ELF symbols.  It also keeps libdwarf's
 * 30-45 MB working set for glibc out of tmtop's heap.  The price is a fork
 * and a copy of the tables (a few ms for glibc, against ~150 ms of loading).
 *
 * Stream (native byte order, same machine): header, strings, rows, scopes,
 * segments, trailer.  Strings are sent once and referenced by index.  With
 * a memfd, a single byte on the pipe tells the parent the stream is
 * complete; the pipe also carries the deadline (see BUDGET_BASE_MS). */
#define _GNU_SOURCE /* pipe2, close_range, sched_getaffinity, memfd_create */
#include "symbolize_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STREAM_MAGIC 0x544d5359u /* "TMSY" */
#define TRAILER_MAGIC 0x454e4453u
#define NO_STR UINT32_MAX
/* Table sizes the parent accepts (glibc: ~200 k rows, ~60 k scopes). */
#define MAX_ITEMS (1u << 28)
/* How long the children may take before they are killed: corrupt DWARF
 * could also make libdwarf loop.  glibc's 4 MB debug file loads in ~0.3 s
 * (35 s under valgrind on a busy machine); the budget is 60 s plus 4 s per
 * MB of the file, far above any honest load. */
#define BUDGET_BASE_MS 60000
#define BUDGET_MS_PER_MB 4000

typedef struct header {
    uint32_t magic;
    uint32_t ok; /* sym_dwarf_load returned 0 */
    uint64_t errors;
    uint64_t nstrings, nrows, nscopes, nsegs;
} header;

typedef struct wrow {
    uint64_t addr;
    uint32_t file, line, end, pad;
} wrow;

typedef struct wscope {
    uint64_t entry;
    uint32_t name, call_file, call_line, flags;
    int32_t parent, pad;
} wscope;

/* sym_seg has tail padding: sent field by field so no byte is undefined */
typedef struct wseg {
    uint64_t lo, hi;
    uint32_t scope, pad;
} wseg;

/* ---- child side ------------------------------------------------------------ */

typedef struct writer {
    int fd;
    size_t used;
    int failed;
    char buf[65536];
} writer;

static void w_flush(writer *w)
{
    size_t off = 0;
    while (!w->failed && off < w->used) {
        ssize_t r = write(w->fd, w->buf + off, w->used - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            w->failed = 1;
        else
            off += (size_t)r;
    }
    w->used = 0;
}

static void w_put(writer *w, const void *p, size_t n)
{
    const char *c = p;
    while (n && !w->failed) {
        size_t room = sizeof w->buf - w->used;
        size_t k = n < room ? n : room;
        memcpy(w->buf + w->used, c, k);
        w->used += k;
        c += k;
        n -= k;
        if (w->used == sizeof w->buf)
            w_flush(w);
    }
}

/* Pointer -> index table of the strings the tables use.  Interned strings
 * are unique, so pointer identity is string identity.  It starts small and
 * grows: a module has few distinct strings (file and function names) but
 * many rows, and a table sized by the rows cost 5% of a large program's
 * load in calloc alone. */
typedef struct strtab {
    const char **slots; /* hash slots (pointer or NULL) */
    uint32_t *idx;
    size_t cap;
    const char **list; /* by index */
    size_t n, list_cap;
    const char *last; /* the last string looked up: rows repeat their file */
    uint32_t last_idx;
    int oom;
} strtab;

static size_t str_slot(const char *s, size_t cap)
{
    return (size_t)(((uintptr_t)s * 0x9e3779b97f4a7c15ull) >> 16) & (cap - 1);
}

static int str_grow(strtab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    const char **slots = calloc(ncap, sizeof *slots);
    uint32_t *idx = calloc(ncap, sizeof *idx);
    if (!slots || !idx) {
        free(slots);
        free(idx);
        return -1;
    }
    for (size_t j = 0; j < t->cap; j++) {
        if (!t->slots[j])
            continue;
        size_t i = str_slot(t->slots[j], ncap);
        while (slots[i])
            i = (i + 1) & (ncap - 1);
        slots[i] = t->slots[j];
        idx[i] = t->idx[j];
    }
    free(t->slots);
    free(t->idx);
    t->slots = slots;
    t->idx = idx;
    t->cap = ncap;
    return 0;
}

static uint32_t str_index(strtab *t, const char *s)
{
    if (!s)
        return NO_STR;
    if (s == t->last)
        return t->last_idx;
    size_t i = str_slot(s, t->cap);
    while (t->slots[i]) {
        if (t->slots[i] == s) {
            t->last = s;
            t->last_idx = t->idx[i];
            return t->idx[i];
        }
        i = (i + 1) & (t->cap - 1);
    }
    if ((t->n + 1) * 2 > t->cap) {
        if (str_grow(t) < 0) {
            t->oom = 1;
            return NO_STR;
        }
        i = str_slot(s, t->cap);
        while (t->slots[i])
            i = (i + 1) & (t->cap - 1);
    }
    if (t->n >= NO_STR - 1 ||
        tm_grow((void **)&t->list, &t->list_cap, t->n + 1, sizeof *t->list) < 0) {
        t->oom = 1;
        return NO_STR;
    }
    t->slots[i] = s;
    t->idx[i] = (uint32_t)t->n;
    t->list[t->n] = s;
    t->last = s;
    t->last_idx = (uint32_t)t->n;
    return (uint32_t)t->n++;
}

/* Sends o; returns 0 on success. */
static int send_tables(int fd, const sym_obj *o, int ok, uint64_t errors)
{
    strtab t;
    memset(&t, 0, sizeof t);
    writer *w = malloc(sizeof *w);
    int rc = -1;
    if (str_grow(&t) < 0 || !w)
        goto out;
    for (size_t i = 0; i < o->nrows; i++)
        str_index(&t, o->rows[i].file);
    for (size_t i = 0; i < o->nscopes; i++) {
        str_index(&t, o->scopes[i].name);
        str_index(&t, o->scopes[i].call_file);
    }
    if (t.oom)
        goto out;
    w->fd = fd;
    w->used = 0;
    w->failed = 0;
    header h = {STREAM_MAGIC, (uint32_t)(ok == 0), errors, t.n, o->nrows, o->nscopes, o->nsegs};
    w_put(w, &h, sizeof h);
    for (size_t i = 0; i < t.n; i++) {
        uint32_t len = (uint32_t)strlen(t.list[i]);
        w_put(w, &len, sizeof len);
        w_put(w, t.list[i], len);
    }
    for (size_t i = 0; i < o->nrows; i++) {
        const sym_row *r = &o->rows[i];
        wrow x = {r->addr, str_index(&t, r->file), r->line, r->end, 0};
        w_put(w, &x, sizeof x);
    }
    for (size_t i = 0; i < o->nscopes; i++) {
        const sym_scope *s = &o->scopes[i];
        wscope x = {s->entry,
                    str_index(&t, s->name),
                    str_index(&t, s->call_file),
                    s->call_line,
                    s->flags,
                    s->parent,
                    0};
        w_put(w, &x, sizeof x);
    }
    for (size_t i = 0; i < o->nsegs; i++) {
        wseg x = {o->segs[i].lo, o->segs[i].hi, o->segs[i].scope, 0};
        w_put(w, &x, sizeof x);
    }
    uint32_t trailer = TRAILER_MAGIC;
    w_put(w, &trailer, sizeof trailer);
    w_flush(w);
    rc = w->failed ? -1 : 0;
out:
    free(w);
    free(t.slots);
    free(t.idx);
    free(t.list);
    return rc;
}

/* Closes every descriptor but the nkeep ones in keep (and 0-2): the child
 * must not hold tmtop's sockets or the target's terminal open. */
static void close_others(int *keep, int nkeep)
{
    struct rlimit rl;
    unsigned top = 65535;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 0)
        top = (unsigned)(rl.rlim_cur - 1);
    for (int i = 1; i < nkeep; i++) /* insertion sort: a handful */
        for (int k = i; k > 0 && keep[k - 1] > keep[k]; k--) {
            int t = keep[k];
            keep[k] = keep[k - 1];
            keep[k - 1] = t;
        }
    unsigned from = 3;
    for (int i = 0; i < nkeep; i++) {
        if (keep[i] < 0)
            continue;
        unsigned k = (unsigned)keep[i];
        if (k > from)
            close_range(from, k - 1, 0);
        if (k + 1 > from)
            from = k + 1;
    }
    if (from <= top)
        close_range(from, top, 0);
}

/* Reads part `part` of nparts of the DWARF in dwarf_fd and writes the
 * tables to out_fd: a memfd when data_fd >= 0 is given (then one byte on
 * done_fd says they are complete), else the pipe done_fd itself. */
static void child_main(int dwarf_fd, int data_fd, int done_fd, unsigned part, unsigned nparts)
{
    /* Nothing from libdwarf or from a crash (glibc's "double free"
     * message) may reach tmtop's terminal, and a crash must not dump core. */
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
        dup2(nul, 1);
        dup2(nul, 2);
        if (nul > 2)
            close(nul);
    }
    int keep[3] = {dwarf_fd, data_fd, done_fd};
    close_others(keep, 3);
    int out_fd = data_fd >= 0 ? data_fd : done_fd;
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);

    /* This process lives for one load: memory libdwarf frees (a CU's line
     * table, its DIEs) is better kept for the next CU than given back to
     * the kernel and faulted in again (10% of a load otherwise). */
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);

    sym_intern *in = sym_intern_new();
    sym_obj o;
    memset(&o, 0, sizeof o);
    uint64_t errors = 0;
    int rc = -1;
    if (in) {
        int ok = sym_dwarf_load(&o, dwarf_fd, in, &errors, part, nparts);
        rc = send_tables(out_fd, &o, ok, errors);
        /* the tables sit in the memfd: the parent reads them after this
         * byte, without a context switch per pipe-full (hundreds of them
         * for glibc's 8 MB, each a time slice away on a busy machine) */
        if (rc == 0 && data_fd >= 0 && write(done_fd, "k", 1) != 1)
            rc = -1;
    }
    /* freed for valgrind's sake: this process ends here */
    free(o.rows);
    free(o.scopes);
    free(o.segs);
    sym_intern_free(in);
    _exit(rc == 0 ? 0 : 1);
}

/* ---- parent side ----------------------------------------------------------- */

typedef struct reader {
    int fd;
    size_t pos, len;
    int failed;
    int64_t deadline_ms; /* CLOCK_MONOTONIC */
    unsigned char buf[65536];
} reader;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int r_get_slow(reader *r, void *p, size_t n);

/* n bytes of the stream; 0, or -1 when it failed or ended.  Inline fast
 * path: the tables are read a field at a time. */
static inline int r_get(reader *r, void *p, size_t n)
{
    if (r->len - r->pos >= n && !r->failed) {
        memcpy(p, r->buf + r->pos, n);
        r->pos += n;
        return 0;
    }
    return r_get_slow(r, p, n);
}

static int r_get_slow(reader *r, void *p, size_t n)
{
    unsigned char *d = p;
    while (n && !r->failed) {
        if (r->pos == r->len) {
            int64_t left = r->deadline_ms - now_ms();
            struct pollfd pfd = {r->fd, POLLIN, 0};
            int pr = left > 0 ? poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left) : 0;
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0) {
                r->failed = 1; /* timed out (a looping libdwarf) or poll failed */
                break;
            }
            ssize_t k = read(r->fd, r->buf, sizeof r->buf);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                r->failed = 1;
                break;
            }
            r->pos = 0;
            r->len = (size_t)k;
        }
        size_t k = r->len - r->pos < n ? r->len - r->pos : n;
        memcpy(d, r->buf + r->pos, k);
        r->pos += k;
        d += k;
        n -= k;
    }
    return r->failed ? -1 : 0;
}

static const char *str_at(const char **strs, uint64_t n, uint32_t i, int *bad)
{
    if (i == NO_STR)
        return NULL;
    if (i >= n) {
        *bad = 1;
        return NULL;
    }
    return strs[i];
}

/* Reads the child's tables into o.  Returns 0, or -1 (o untouched). */
static int receive_tables(reader *r, sym_obj *o, sym_intern *in, uint64_t *errors)
{
    header h;
    if (r_get(r, &h, sizeof h) < 0 || h.magic != STREAM_MAGIC || h.nstrings > MAX_ITEMS ||
        h.nrows > MAX_ITEMS || h.nscopes > MAX_ITEMS || h.nsegs > MAX_ITEMS)
        return -1;
    *errors += h.errors;
    const char **strs = calloc(h.nstrings + 1, sizeof *strs);
    sym_row *rows = malloc((h.nrows + 1) * sizeof *rows);
    sym_scope *scopes = malloc((h.nscopes + 1) * sizeof *scopes);
    sym_seg *segs = malloc((h.nsegs + 1) * sizeof *segs);
    char *tmp = NULL;
    size_t tmpcap = 0;
    int bad = !strs || !rows || !scopes || !segs;
    for (uint64_t i = 0; !bad && i < h.nstrings; i++) {
        uint32_t len;
        if (r_get(r, &len, sizeof len) < 0 || len > (1u << 24) ||
            tm_grow((void **)&tmp, &tmpcap, (size_t)len + 1, 1) < 0 || r_get(r, tmp, len) < 0 ||
            !(strs[i] = sym_intern_strn(in, tmp, len)))
            bad = 1;
    }
    for (uint64_t i = 0; !bad && i < h.nrows; i++) {
        wrow x;
        if (r_get(r, &x, sizeof x) < 0) {
            bad = 1;
            break;
        }
        rows[i] = (sym_row){x.addr, str_at(strs, h.nstrings, x.file, &bad), x.line, x.end};
    }
    for (uint64_t i = 0; !bad && i < h.nscopes; i++) {
        wscope x;
        if (r_get(r, &x, sizeof x) < 0 || x.parent >= (int64_t)i) {
            bad = 1;
            break;
        }
        scopes[i] = (sym_scope){str_at(strs, h.nstrings, x.name, &bad),
                                str_at(strs, h.nstrings, x.call_file, &bad),
                                x.entry,
                                x.call_line,
                                x.flags,
                                x.parent < 0 ? -1 : x.parent};
    }
    for (uint64_t i = 0; !bad && i < h.nsegs; i++) {
        wseg x;
        if (r_get(r, &x, sizeof x) < 0 || x.scope >= h.nscopes || x.lo >= x.hi) {
            bad = 1;
            break;
        }
        segs[i] = (sym_seg){x.lo, x.hi, x.scope};
    }
    uint32_t trailer = 0;
    if (!bad && (r_get(r, &trailer, sizeof trailer) < 0 || trailer != TRAILER_MAGIC))
        bad = 1;
    free(tmp);
    free(strs);
    if (bad || !h.ok) {
        free(rows);
        free(scopes);
        free(segs);
        return -1;
    }
    o->rows = rows;
    o->nrows = h.nrows;
    o->scopes = scopes;
    o->nscopes = h.nscopes;
    o->segs = segs;
    o->nsegs = h.nsegs;
    return 0;
}

/* ---- merging the parts ----------------------------------------------------- */

/* The row order of dwarf.c's sort: address, end markers first. */
static int row_before(const sym_row *x, const sym_row *y)
{
    if (x->addr != y->addr)
        return x->addr < y->addr;
    return x->end > y->end;
}

/* Appends part p (its CUs follow those already in o) to o: rows merged in
 * order (o's first on ties, as one sort over the whole table would keep
 * them), scopes appended with their indices shifted, segments merged by
 * address.  Consumes p's arrays.  Returns 0, or -1 when out of memory (o
 * unchanged, p freed). */
static int merge_part(sym_obj *o, sym_obj *p)
{
    if (!o->nrows && !o->nscopes && !o->nsegs) {
        /* the first part (or the only one): taken as it is */
        free(o->rows);
        free(o->scopes);
        free(o->segs);
        o->rows = p->rows;
        o->nrows = p->nrows;
        o->scopes = p->scopes;
        o->nscopes = p->nscopes;
        o->segs = p->segs;
        o->nsegs = p->nsegs;
        return 0;
    }
    sym_row *rows = malloc((o->nrows + p->nrows + 1) * sizeof *rows);
    sym_scope *scopes = realloc(o->scopes, (o->nscopes + p->nscopes + 1) * sizeof *scopes);
    if (scopes)
        o->scopes = scopes;
    sym_seg *segs = malloc((o->nsegs + p->nsegs + 1) * sizeof *segs);
    if (!rows || !scopes || !segs) {
        free(rows);
        free(segs);
        free(p->rows);
        free(p->scopes);
        free(p->segs);
        return -1;
    }
    size_t i = 0, j = 0, k = 0;
    while (i < o->nrows && j < p->nrows)
        rows[k++] = row_before(&p->rows[j], &o->rows[i]) ? p->rows[j++] : o->rows[i++];
    while (i < o->nrows)
        rows[k++] = o->rows[i++];
    while (j < p->nrows)
        rows[k++] = p->rows[j++];

    uint32_t shift = (uint32_t)o->nscopes;
    for (size_t n = 0; n < p->nscopes; n++) {
        sym_scope sc = p->scopes[n];
        if (sc.parent >= 0)
            sc.parent += (int32_t)shift;
        scopes[o->nscopes + n] = sc;
    }

    /* CUs do not share addresses, so the segment lists interleave without
     * overlapping; should they overlap anyway (corrupt input), the later
     * segment is clipped so lookups still see disjoint sorted segments */
    i = j = k = 0;
    while (i < o->nsegs || j < p->nsegs) {
        sym_seg g;
        if (j == p->nsegs || (i < o->nsegs && o->segs[i].lo <= p->segs[j].lo)) {
            g = o->segs[i++];
        } else {
            g = p->segs[j++];
            g.scope += shift;
        }
        if (k && g.lo < segs[k - 1].hi)
            g.lo = segs[k - 1].hi;
        if (g.lo < g.hi)
            segs[k++] = g;
    }

    free(o->rows);
    free(o->segs);
    o->rows = rows;
    o->nrows += p->nrows;
    o->nscopes += p->nscopes;
    o->segs = segs;
    o->nsegs = k;
    free(p->rows);
    free(p->scopes);
    free(p->segs);
    return 0;
}

/* ---- starting and finishing a load ------------------------------------------ */

/* How many children to split a load between: one, unless TMTOP_SYM_PARTS=N
 * asks for N (at most SYM_LOAD_MAX_PARTS).  Splitting is opt-in: the children
 * of a split load repeat some work (each inflates the compressed sections
 * and hops over every unit header), and on this 2-core machine two children
 * did not make a load faster (bench/RESULTS.md, "Symbolizer").  (The
 * failures the sanitizer build reported for split loads were children whose
 * share held no function: flatten handed qsort a NULL array, UBSan stopped
 * the child, and its empty share was dropped, so the answers stayed right.) */
static unsigned parts_for(off_t size)
{
    (void)size;
    const char *force = getenv("TMTOP_SYM_PARTS");
    if (force && *force) {
        long n = strtol(force, NULL, 10);
        return n < 1 ? 1 : n > SYM_LOAD_MAX_PARTS ? SYM_LOAD_MAX_PARTS : (unsigned)n;
    }
    return 1;
}

/* A descriptor of the same file with its own file offset: libdwarf reads
 * with lseek + read, so children sharing one open file description would
 * move each other's offset. */
static int reopen(int fd)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return open(path, O_RDONLY | O_CLOEXEC);
}

int sym_dwarf_start(sym_load *l, int fd)
{
    memset(l, 0, sizeof *l);
    struct stat sb;
    int64_t mb = 0;
    unsigned nparts = 1;
    if (fstat(fd, &sb) == 0) {
        mb = (int64_t)(sb.st_size >> 20);
        nparts = parts_for(sb.st_size);
    }
    int fds[SYM_LOAD_MAX_PARTS];
    fds[0] = fd;
    if (nparts > 1) {
        for (unsigned k = 0; k < nparts; k++) {
            if ((fds[k] = reopen(fd)) < 0) {
                while (k > 0)
                    close(fds[--k]);
                fds[0] = fd;
                nparts = 1;
                break;
            }
        }
    }
    l->deadline_ms = now_ms() + BUDGET_BASE_MS + mb * BUDGET_MS_PER_MB;
    for (unsigned k = 0; k < nparts; k++) {
        int p[2];
        pid_t pid = -1;
        /* no memfd (old kernel, seccomp): the tables go through the pipe */
        int data = memfd_create("tmtop-dwarf", MFD_CLOEXEC);
        if (pipe2(p, O_CLOEXEC) == 0 && (pid = fork()) < 0) {
            close(p[0]);
            close(p[1]);
        }
        if (pid < 0) {
            if (data >= 0)
                close(data);
            break;
        }
        if (pid == 0) {
            close(p[0]);
            child_main(fds[k], data, p[1], k, nparts);
        }
        close(p[1]);
        l->pid[k] = pid;
        l->pipe[k] = p[0];
        l->data[k] = data;
        l->nparts = k + 1;
    }
    if (nparts > 1)
        for (unsigned k = 0; k < nparts; k++)
            close(fds[k]);
    if (l->nparts == nparts)
        return 0;
    /* fewer children than shares: the shares of the missing ones would be
     * lost, so give up on this attempt altogether */
    sym_dwarf_abandon(l);
    return -1;
}

/* Kills (when kill_it) and reaps child k; returns 1 if it exited with 0. */
static int reap(pid_t pid, int kill_it)
{
    if (kill_it)
        kill(pid, SIGKILL);
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    /* ECHILD: someone else reaped it (SIGCHLD ignored); the trailer and the
     * consistency checks already vouch for the data */
    return w != pid || (WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

void sym_dwarf_abandon(sym_load *l)
{
    for (unsigned k = 0; k < l->nparts; k++) {
        close(l->pipe[k]);
        if (l->data[k] >= 0)
            close(l->data[k]);
        reap(l->pid[k], 1);
    }
    l->nparts = 0;
}

int sym_dwarf_ready(const sym_load *l)
{
    /* past the budget, finishing kills the children without waiting */
    if (!l->nparts || now_ms() >= l->deadline_ms)
        return 1;
    struct pollfd pfd[SYM_LOAD_MAX_PARTS];
    for (unsigned k = 0; k < l->nparts; k++)
        pfd[k] = (struct pollfd){l->pipe[k], POLLIN, 0};
    int n;
    while ((n = poll(pfd, l->nparts, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return 1;
    /* each child writes only once its load is done: data (or a hang-up)
     * on every pipe means finishing will not wait for libdwarf */
    for (unsigned k = 0; k < l->nparts; k++)
        if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
            return 0;
    return 1;
}

int sym_dwarf_finish(sym_load *l, sym_obj *o, sym_intern *in, uint64_t *errors)
{
    reader *r = malloc(sizeof *r);
    int any = 0;
    for (unsigned k = 0; k < l->nparts; k++) {
        sym_obj part;
        memset(&part, 0, sizeof part);
        int rc = -1;
        if (r) {
            r->fd = l->pipe[k];
            r->pos = r->len = 0;
            r->failed = 0;
            r->deadline_ms = l->deadline_ms;
            if (l->data[k] >= 0) {
                /* wait for the done byte, then read the memfd from its start */
                char done;
                if (r_get(r, &done, 1) == 0 && done == 'k' && lseek(l->data[k], 0, SEEK_SET) == 0) {
                    r->fd = l->data[k];
                    rc = receive_tables(r, &part, in, errors);
                }
            } else {
                rc = receive_tables(r, &part, in, errors);
            }
        }
        close(l->pipe[k]);
        if (l->data[k] >= 0)
            close(l->data[k]);
        /* a child that failed to deliver may be stuck: it must not be waited
         * for; it may also be blocked writing to the closed pipe (SIGPIPE) */
        if (!reap(l->pid[k], rc < 0) && rc == 0) {
            free(part.rows);
            free(part.scopes);
            free(part.segs);
            rc = -1;
        }
        if (rc == 0 && merge_part(o, &part) < 0)
            rc = -1;
        if (rc < 0)
            (*errors)++;
        else
            any = 1;
    }
    free(r);
    l->nparts = 0;
    if (!any) {
        free(o->rows);
        free(o->scopes);
        free(o->segs);
        o->rows = NULL;
        o->scopes = NULL;
        o->segs = NULL;
        o->nrows = o->nscopes = o->nsegs = 0;
        return -1;
    }
    return 0;
}
