/* main.c - tmtop's command line: parse options, run the target under the
 * hook, feed its trace into the store, and hand the store to a front end. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "report.h"
#include "store.h"
#include "symbolize.h"
#include "tracefile.h"
#include "tracer.h"
#include "tui.h"

#define MAX_FILTERS 64
#define MAX_SKIP 64
#define MAX_PROCS TM_TRACEFILE_MAX_PROCS

static const char usage_text[] =
    "usage: tmtop [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "       tmtop --report [--key lineno|filename|traceback] [--cumulative] [--limit N]\n"
    "             [--frames N] [--include GLOB]... [--exclude GLOB]... [--json] [-o FILE]\n"
    "             [--follow-fork] [--record FILE] [--] PROGRAM [ARGS...]\n"
    "       tmtop --load FILE [--report [--key ...] [--json] [-o FILE] ...]\n"
    "\n"
    "Runs PROGRAM under tmtop's allocation hook and shows where its memory goes and\n"
    "what is still live when it exits (its leaks), like Python's tracemalloc: live,\n"
    "in a full-screen view (press ? there for the keys), or with --report as a\n"
    "report written when it has finished.\n"
    "\n"
    "  --report            run PROGRAM to completion, then write a report\n"
    "  --key KEY           group allocations by 'lineno' (file:line, the default),\n"
    "                      'filename', or 'traceback' (the whole stack)\n"
    "  --cumulative        count each stack once per frame (lineno and filename)\n"
    "  --limit N           statistics to show (default 10; 0 = all)\n"
    "  --frames N          stack depth to capture, 1-1024 (default 64)\n"
    "  --include GLOB      keep only stacks whose site file matches GLOB (fnmatch)\n"
    "  --exclude GLOB      drop stacks whose site file matches GLOB\n"
    "  --all-frames        filters match any frame of the stack, not only the site\n"
    "  --raw-site          the site is the innermost frame (no system frames skipped)\n"
    "  --skip GLOB         also treat frames whose file or module matches GLOB as system\n"
    "  --no-default-skip   forget the default system-frame globs\n"
    "  --json              write JSON with exact integers instead of text\n"
    "  --follow-fork       also trace the processes PROGRAM forks, each reported on\n"
    "                      its own after PROGRAM (programs they exec stay untraced);\n"
    "                      in the live view, n, N and P switch between them\n"
    "  --record FILE       also write everything the processes sent to FILE\n"
    "  --load FILE         no PROGRAM: show a recording made with --record (the live\n"
    "                      view, or with --report the report of the recorded run)\n"
    "  -o, --output FILE   write the report to FILE (default: standard error)\n"
    "  -h, --help          show this help and exit\n"
    "  -V, --version       show the version and exit\n"
    "\n"
    "PROGRAM keeps its standard input, output and error. tmtop exits with its exit\n"
    "status, or 128+N when signal N killed it.\n";

typedef struct options {
    int report;
    tm_query query;
    tm_filter filters[MAX_FILTERS];
    const char *skip[MAX_SKIP];
    size_t nskip;
    int default_skip;
    size_t limit;
    unsigned frames;
    int json;
    int follow_fork;
    const char *output;
    const char *record, *load;
    int frames_given;
    char **argv;
} options;

static void die_usage(const char *fmt, const char *arg)
{
    fputs("tmtop: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("; see 'tmtop --help'\n", stderr);
    exit(2);
}

static unsigned long parse_number(const char *opt, const char *s, unsigned long lo,
                                  unsigned long hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < lo || v > hi) {
        fprintf(stderr, "tmtop: %s takes a whole number from %lu to %lu, not '%s'\n", opt, lo, hi,
                s);
        exit(2);
    }
    return v;
}

static void parse_options(int argc, char **argv, options *o)
{
    enum {
        O_REPORT = 256,
        O_KEY,
        O_CUMULATIVE,
        O_LIMIT,
        O_FRAMES,
        O_INCLUDE,
        O_EXCLUDE,
        O_JSON,
        O_ALL_FRAMES,
        O_RAW_SITE,
        O_SKIP,
        O_NO_DEFAULT_SKIP,
        O_FOLLOW_FORK,
        O_RECORD,
        O_LOAD
    };
    static const struct option longopts[] = {
        {"report", no_argument, NULL, O_REPORT},
        {"key", required_argument, NULL, O_KEY},
        {"cumulative", no_argument, NULL, O_CUMULATIVE},
        {"limit", required_argument, NULL, O_LIMIT},
        {"frames", required_argument, NULL, O_FRAMES},
        {"include", required_argument, NULL, O_INCLUDE},
        {"exclude", required_argument, NULL, O_EXCLUDE},
        {"all-frames", no_argument, NULL, O_ALL_FRAMES},
        {"raw-site", no_argument, NULL, O_RAW_SITE},
        {"skip", required_argument, NULL, O_SKIP},
        {"no-default-skip", no_argument, NULL, O_NO_DEFAULT_SKIP},
        {"json", no_argument, NULL, O_JSON},
        {"follow-fork", no_argument, NULL, O_FOLLOW_FORK},
        {"record", required_argument, NULL, O_RECORD},
        {"load", required_argument, NULL, O_LOAD},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0, 0, 0, 0},
    };
    int all_frames = 0;
    size_t nfilters = 0;
    memset(o, 0, sizeof *o);
    o->limit = 10;
    o->frames = TM_DEFAULT_FRAMES;
    o->default_skip = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+o:hV", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case O_REPORT:
            o->report = 1;
            break;
        case O_KEY:
            if (!strcmp(optarg, "lineno"))
                o->query.key = TM_KEY_LINENO;
            else if (!strcmp(optarg, "filename"))
                o->query.key = TM_KEY_FILENAME;
            else if (!strcmp(optarg, "traceback"))
                o->query.key = TM_KEY_TRACEBACK;
            else
                die_usage("--key takes lineno, filename or traceback, not '%s'", optarg);
            break;
        case O_CUMULATIVE:
            o->query.cumulative = 1;
            break;
        case O_LIMIT:
            o->limit = parse_number("--limit", optarg, 0, 1000000000);
            break;
        case O_FRAMES:
            o->frames = parse_number("--frames", optarg, 1, TM_MAX_FRAMES);
            o->frames_given = 1;
            break;
        case O_INCLUDE:
        case O_EXCLUDE:
            if (nfilters == MAX_FILTERS)
                die_usage("at most 64 filters, '%s' is one too many", optarg);
            o->filters[nfilters++] = (tm_filter){c == O_INCLUDE, optarg, 0, 0};
            break;
        case O_ALL_FRAMES:
            all_frames = 1;
            break;
        case O_RAW_SITE:
            o->query.raw_site = 1;
            break;
        case O_SKIP:
            if (o->nskip + 1 >= MAX_SKIP)
                die_usage("at most 60 --skip globs, '%s' is one too many", optarg);
            o->skip[o->nskip++] = optarg;
            break;
        case O_NO_DEFAULT_SKIP:
            o->default_skip = 0;
            break;
        case O_JSON:
            o->json = 1;
            break;
        case O_FOLLOW_FORK:
            o->follow_fork = 1;
            break;
        case O_RECORD:
            o->record = optarg;
            break;
        case O_LOAD:
            o->load = optarg;
            break;
        case 'o':
            o->output = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case 'V':
            printf("tmtop %s\n", TMTOP_VERSION);
            exit(0);
        case ':':
            die_usage("%s needs a value", argv[optind - 1]);
            break;
        default:
            die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (o->load) {
        if (optind < argc)
            die_usage("--load runs no program, not '%s'", argv[optind]);
        if (o->record)
            die_usage("%s", "--load and --record do not go together");
        if (o->frames_given)
            die_usage("%s", "--frames does not go with --load: the recording has its depth");
    } else if (optind >= argc)
        die_usage("%s", "no program to run");

    if (o->query.cumulative && o->query.key == TM_KEY_TRACEBACK)
        die_usage("%s", "--cumulative works with --key lineno or filename, not traceback");
    for (size_t i = 0; i < nfilters; i++)
        o->filters[i].all_frames = all_frames;
    o->query.filters = o->filters;
    o->query.nfilters = nfilters;
    if (o->default_skip) /* the user's globs come on top of the defaults */
        for (size_t i = 0; tm_default_skip[i]; i++)
            if (o->nskip + 1 < MAX_SKIP)
                o->skip[o->nskip++] = tm_default_skip[i];
    o->query.skip = o->skip;
    o->query.nskip = o->nskip;
    o->argv = argv + optind;
}

/* One store per traced process; the target is the first. */
typedef struct ingest {
    uint32_t pid[MAX_PROCS];
    tm_store *store[MAX_PROCS];
    size_t n;
    int warned;
    tm_tracefile_writer *rec; /* --record, or NULL */
    int rec_warned;
} ingest;

static tm_store *store_for(ingest *in, uint32_t pid)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->pid[i] == pid)
            return in->store[i];
    if (in->n == MAX_PROCS)
        return NULL;
    tm_store *s = tm_store_new();
    if (!s)
        return NULL;
    in->pid[in->n] = pid;
    in->store[in->n++] = s;
    return s;
}

static int on_record(void *ctx, uint32_t pid, const tm_wire_rec *rec)
{
    ingest *in = ctx;
    tm_store *s = store_for(in, pid);
    tm_err err = {0};
    if (in->rec && tm_tracefile_record(in->rec, pid, rec) != 0 && !in->rec_warned) {
        in->rec_warned = 1; /* the reason comes with tm_tracefile_finish */
        fputs("tmtop: the recording cannot be written; tracing goes on\n", stderr);
    }
    if (s && tm_store_apply(s, rec, &err) != 0 && !in->warned) {
        in->warned = 1;
        fprintf(stderr, "tmtop: the trace of pid %u is inconsistent: %s\n", pid, err.msg);
    }
    return 0;
}

/* Puts the stores in report order: the target, then each process right after
 * its parent (depth first, siblings in the order their streams began).
 * Streams do not begin in a dependable order: a grandchild's HELLO may be
 * read before its parent's.  Processes whose parent is not traced come
 * last. */
static void order_procs(ingest *in)
{
    tm_store *out[MAX_PROCS];
    uint32_t ppid[MAX_PROCS], out_pid[MAX_PROCS];
    size_t order[MAX_PROCS];
    for (size_t i = 0; i < in->n; i++) {
        tm_totals t;
        tm_store_totals(in->store[i], &t);
        ppid[i] = t.ppid;
    }
    size_t n = tm_proc_order(in->n, in->pid, ppid, order);
    for (size_t i = 0; i < n; i++) {
        out[i] = in->store[order[i]];
        out_pid[i] = in->pid[order[i]];
    }
    for (size_t i = 0; i < n; i++) {
        in->store[i] = out[i];
        in->pid[i] = out_pid[i];
    }
}

/* Opens -o FILE for the report: created new, else truncated, never through
 * a symlink planted at the report's name.  *created says whether a file was
 * created (to remove it again on failure).  NULL after a one-line message. */
static FILE *open_output(const char *path, int *created)
{
    FILE *out = NULL;
    *created = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0)
        *created = 1;
    else if (errno == EEXIST)
        fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || !(out = fdopen(fd, "w"))) {
        fprintf(stderr, "tmtop: cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (*created)
            unlink(path);
        return NULL;
    }
    return out;
}

/* Writes the report of the stores (in->store[0] the target) with ro; with
 * procs set, every process (ordered as order_procs orders them).  Returns 0,
 * or 2 after a message. */
static int write_report(FILE *out, ingest *in, int procs, const tm_resolver *res,
                        const tm_report_opts *ro)
{
    tm_err err = {0};
    if (procs)
        order_procs(in);
    int wrc = procs ? tm_report_write_procs(out, in->store, in->n, res, ro, &err)
                    : tm_report_write(out, in->store[0], res, ro, &err);
    if (wrc != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        return 2;
    }
    return 0;
}

static int run_report(options *o)
{
    tm_err err = {0};
    char hook[4096];
    FILE *out = stderr;

    /* A program that cannot be traced is refused before the report file is
     * touched: a failed start leaves nothing behind. */
    char resolved[4096];
    if (tm_tracer_check_program(o->argv[0], resolved, sizeof resolved, &err) != 0 ||
        tm_tracer_find_hook(hook, sizeof hook, &err) != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        return 2;
    }
    /* Then the report file, still before the program runs: a report that
     * cannot be written should fail now, not after.  O_NOFOLLOW: never write
     * through a symlink planted at the report's name.  A file created here
     * is removed again if the program cannot be started. */
    int created = 0;
    if (o->output && !(out = open_output(o->output, &created)))
        return 2;
    /* The recording likewise. */
    tm_tracefile_writer *rec = NULL;
    if (o->record && !(rec = tm_tracefile_create(o->record, o->frames,
                                                 o->follow_fork ? TM_TRACEFILE_FOLLOW_FORK : 0,
                                                 o->argv[0], &err))) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        if (out != stderr)
            fclose(out);
        if (created)
            unlink(o->output);
        return 2;
    }
    tm_launch l = {
        .argv = o->argv, .hook_path = hook, .max_frames = o->frames, .follow_fork = o->follow_fork};
    tm_session *sess = tm_session_start(&l, &err);
    if (!sess) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        if (out != stderr)
            fclose(out);
        if (created)
            unlink(o->output);
        tm_tracefile_discard(rec);
        return 2;
    }
    ingest in = {.rec = rec};
    uint32_t target = (uint32_t)tm_session_pid(sess);
    store_for(&in, target);
    int rc;
    while ((rc = tm_session_pump(sess, 1000, on_record, &in, &err)) != 0) {
        if (rc < 0) {
            fprintf(stderr, "tmtop: %s\n", err.msg);
            err = (tm_err){0};
        }
    }
    int wstatus = 0;
    int exited = tm_session_exited(sess, &wstatus);
    tm_session_free(sess);
    int rec_failed = 0;
    if (rec && tm_tracefile_finish(rec, target, exited, wstatus, &err) != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        rec_failed = 1;
    }

    tm_sym *sym = tm_sym_new(NULL);
    tm_resolver res = tm_sym_resolver(sym);
    tm_report_opts ro = {.query = o->query,
                         .limit = o->limit,
                         .json = o->json,
                         .program = o->argv[0],
                         .frames = o->frames,
                         .exited = exited,
                         .wstatus = wstatus};
    int status = exited && WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 0;
    if (exited && WIFSIGNALED(wstatus)) {
        status = 128 + WTERMSIG(wstatus);
        fprintf(stderr, "tmtop: %s was killed by signal %d (%s)\n", o->argv[0], WTERMSIG(wstatus),
                strsignal(WTERMSIG(wstatus)));
    }
    if (write_report(out, &in, o->follow_fork, &res, &ro) != 0 && !status)
        status = 2;
    if (rec_failed && !status)
        status = 2;
    if (out != stderr && fclose(out) != 0) {
        fprintf(stderr, "tmtop: cannot write %s: %s\n", o->output, strerror(errno));
        if (!status)
            status = 2;
    }
    tm_sym_free(sym);
    for (size_t i = 0; i < in.n; i++)
        tm_store_free(in.store[i]);
    return status;
}

/* ---- --load ---------------------------------------------------------------- */

/* Modules whose file on disk is not the one the recording saw: their frames
 * show as module + offset (right, if uninformative) instead of lines of
 * another build. */
#define MAX_STALE 256

typedef struct load_ctx {
    ingest in;
    const char *file;
    struct {
        char *path;
        uint8_t bid[TM_BUILD_ID_MAX];
        uint8_t bid_len;
        int stale;
    } mods[MAX_STALE];
    size_t nmods;
    tm_resolver inner;
} load_ctx;

/* The NT_GNU_BUILD_ID of an ELF64 little-endian file, from its PT_NOTE
 * segments.  Returns its length, 0 when it has none, -1 when the file cannot
 * be read as such. */
static int file_build_id(const char *path, uint8_t *out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int found = -1;
    unsigned char eh[64];
    if (pread(fd, eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh, "\177ELF", 4) != 0 ||
        eh[4] != 2 || eh[5] != 1)
        goto out;
    uint64_t phoff;
    uint16_t phentsize, phnum;
    memcpy(&phoff, eh + 32, 8);
    memcpy(&phentsize, eh + 54, 2);
    memcpy(&phnum, eh + 56, 2);
    found = 0;
    for (unsigned i = 0; i < phnum && phentsize >= 56 && i < 256; i++) {
        unsigned char ph[56];
        if (pread(fd, ph, sizeof ph, (off_t)(phoff + (uint64_t)i * phentsize)) !=
            (ssize_t)sizeof ph)
            break;
        uint32_t type;
        uint64_t off, size;
        memcpy(&type, ph, 4);
        memcpy(&off, ph + 8, 8);
        memcpy(&size, ph + 32, 8);
        if (type != 4 /* PT_NOTE */ || size > 65536)
            continue;
        unsigned char notes[65536];
        if (pread(fd, notes, size, (off_t)off) != (ssize_t)size)
            continue;
        for (uint64_t p = 0; p + 12 <= size;) {
            uint32_t namesz, descsz, ntype;
            memcpy(&namesz, notes + p, 4);
            memcpy(&descsz, notes + p + 4, 4);
            memcpy(&ntype, notes + p + 8, 4);
            uint64_t name = p + 12, desc = name + ((namesz + 3u) & ~3u);
            if (desc + descsz > size)
                break;
            if (ntype == 3 && namesz == 4 && memcmp(notes + name, "GNU", 4) == 0 && descsz <= max) {
                memcpy(out, notes + desc, descsz);
                found = (int)descsz;
                goto out;
            }
            p = desc + ((descsz + 3u) & ~3u);
        }
    }
out:
    close(fd);
    return found;
}

/* Checks a recorded module against the file on disk once per (path,
 * build-id), and says once when they differ. */
static void check_module(load_ctx *lc, const tm_wire_rec *rec)
{
    const char *path = rec->u.module.path;
    size_t plen = rec->u.module.path_len;
    uint8_t blen = rec->u.module.build_id_len;
    if (!blen || !plen || path[0] != '/' || lc->nmods == MAX_STALE)
        return; /* nothing to compare with ([vdso] has no file) */
    for (size_t i = 0; i < lc->nmods; i++)
        if (strlen(lc->mods[i].path) == plen && !memcmp(lc->mods[i].path, path, plen) &&
            lc->mods[i].bid_len == blen && !memcmp(lc->mods[i].bid, rec->u.module.build_id, blen))
            return;
    char *p = strndup(path, plen);
    if (!p)
        return;
    size_t i = lc->nmods++;
    lc->mods[i].path = p;
    lc->mods[i].bid_len = blen;
    memcpy(lc->mods[i].bid, rec->u.module.build_id, blen);
    uint8_t now[TM_BUILD_ID_MAX];
    int n = file_build_id(p, now, sizeof now);
    lc->mods[i].stale = n != blen || memcmp(now, rec->u.module.build_id, blen) != 0;
    if (lc->mods[i].stale)
        fprintf(stderr, "tmtop: %s %s since the recording: its frames show as module+offset\n", p,
                n < 0 ? "cannot be read" : "has changed (another build-id)");
}

static int on_loaded(void *ctx, uint32_t pid, const tm_wire_rec *rec, tm_err *err)
{
    load_ctx *lc = ctx;
    tm_store *s = store_for(&lc->in, pid);
    if (!s)
        return tm_err_set(err, TM_E_NOMEM, "out of memory");
    if (rec->type == TM_REC_MODULE)
        check_module(lc, rec);
    tm_err e = {0};
    if (tm_store_apply(s, rec, &e) != 0)
        return tm_err_set(err, TM_E_FORMAT, "inconsistent trace of pid %u (%s)", pid, e.msg);
    return 0;
}

static int stale_module(const load_ctx *lc, const tm_module *mod)
{
    if (!mod || !mod->path || !mod->build_id_len)
        return 0;
    for (size_t i = 0; i < lc->nmods; i++)
        if (lc->mods[i].stale && lc->mods[i].bid_len == mod->build_id_len &&
            !memcmp(lc->mods[i].bid, mod->build_id, mod->build_id_len) &&
            !strcmp(lc->mods[i].path, mod->path))
            return 1;
    return 0;
}

static int load_resolve(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    load_ctx *lc = ctx;
    if (max >= 1 && stale_module(lc, mod)) {
        memset(out, 0, sizeof *out);
        out->module = mod->path; /* the store's copy: lives as long as the resolver's use */
        out->address = address;
        out->offset = address - mod->load_bias;
        return 1;
    }
    return lc->inner.resolve(lc->inner.ctx, mod, address, out, max);
}

static int stale_for_tui(void *ctx, const tm_module *mod)
{
    return stale_module(ctx, mod);
}

static void load_free(load_ctx *lc)
{
    for (size_t i = 0; i < lc->in.n; i++)
        tm_store_free(lc->in.store[i]);
    for (size_t i = 0; i < lc->nmods; i++)
        free(lc->mods[i].path);
    free(lc);
}

/* Reads the recording into lc's stores: 0, or 2 after the one-line
 * "tmtop: FILE: what at byte N". */
static int load_file(const char *file, load_ctx *lc, tm_tracefile_info *info)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "tmtop: %s: %s\n", file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 2;
    }
    if (S_ISDIR(st.st_mode) || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
        fprintf(stderr, "tmtop: %s: %s, not a recording\n", file,
                S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
        close(fd);
        return 2;
    }
    tm_err err = {0};
    int rc = tm_tracefile_read_fd(fd, info, on_loaded, lc, &err);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "tmtop: %s: %s\n", file, err.msg);
        return 2;
    }
    if (lc->in.n == 0) {
        fprintf(stderr, "tmtop: %s: the recording holds no trace\n", file);
        return 2;
    }
    /* The target first, as a live run has it. */
    for (size_t i = 1; i < lc->in.n; i++)
        if (lc->in.pid[i] == info->target_pid) {
            tm_store *t = lc->in.store[0];
            uint32_t tp = lc->in.pid[0];
            lc->in.store[0] = lc->in.store[i];
            lc->in.pid[0] = lc->in.pid[i];
            lc->in.store[i] = t;
            lc->in.pid[i] = tp;
        }
    return 0;
}

static int run_load(options *o)
{
    load_ctx *lc = calloc(1, sizeof *lc);
    tm_tracefile_info *info = calloc(1, sizeof *info);
    if (!lc || !info) {
        fputs("tmtop: out of memory\n", stderr);
        free(lc);
        free(info);
        return 2;
    }
    int status = load_file(o->load, lc, info);
    if (status) {
        load_free(lc);
        free(info);
        return status;
    }
    int procs = (info->flags & TM_TRACEFILE_FOLLOW_FORK) || lc->in.n > 1;
    if (!o->report) {
        /* the live view on the recorded data; main checked it is available */
        tm_tui_config c = {.frames = info->frames,
                           .query = o->query,
                           .follow_fork = procs,
                           .procs = lc->in.store,
                           .nprocs = lc->in.n,
                           .program = info->program,
                           .exited = info->exited,
                           .wstatus = info->wstatus,
                           .stale = stale_for_tui,
                           .stale_ctx = lc};
        status = tm_tui_run(&c);
        load_free(lc);
        free(info);
        return status;
    }
    /* Only now the report file: a recording that cannot be read leaves none. */
    FILE *out = stderr;
    int created = 0;
    if (o->output && !(out = open_output(o->output, &created))) {
        load_free(lc);
        free(info);
        return 2;
    }
    tm_sym *sym = tm_sym_new(NULL);
    lc->inner = tm_sym_resolver(sym);
    tm_resolver res = {load_resolve, lc};
    tm_report_opts ro = {.query = o->query,
                         .limit = o->limit,
                         .json = o->json,
                         .program = info->program,
                         .frames = info->frames,
                         .exited = info->exited,
                         .wstatus = info->wstatus};
    status = write_report(out, &lc->in, procs, &res, &ro);
    if (out != stderr && fclose(out) != 0) {
        fprintf(stderr, "tmtop: cannot write %s: %s\n", o->output, strerror(errno));
        status = 2;
    }
    if (status && created)
        unlink(o->output);
    load_free(lc); /* the stores before the symbolizer: cached frames borrow it */
    tm_sym_free(sym);
    free(info);
    return status;
}

static int run_live(options *o)
{
    char hook[4096];
    tm_err err = {0};
    if (tm_tracer_find_hook(hook, sizeof hook, &err) != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        return 2;
    }
    tm_tui_config c = {.argv = o->argv,
                       .hook_path = hook,
                       .frames = o->frames,
                       .query = o->query,
                       .follow_fork = o->follow_fork,
                       .record_path = o->record};
    return tm_tui_run(&c);
}

int main(int argc, char **argv)
{
    options o;
    parse_options(argc, argv, &o);
    if (o.load && (o.report || tm_tui_available()))
        return run_load(&o);
    if (o.report)
        return run_report(&o);
    if (!tm_tui_available()) {
        fputs("tmtop: this build has no live view; run with --report\n", stderr);
        return 2;
    }
    return run_live(&o);
}
