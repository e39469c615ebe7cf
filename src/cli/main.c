/* main.c - tmtop's command line: parse options, run the target under the
 * hook, feed its trace into the store, and hand the store to a front end. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "report.h"
#include "store.h"
#include "symbolize.h"
#include "tracer.h"
#include "tui.h"

#define MAX_FILTERS 64
#define MAX_SKIP 64
#define MAX_PROCS 64

static const char usage_text[] =
    "usage: tmtop [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "       tmtop --report [--key lineno|filename|traceback] [--cumulative] [--limit N]\n"
    "             [--frames N] [--include GLOB]... [--exclude GLOB]... [--json] [-o FILE]\n"
    "             [--follow-fork] [--] PROGRAM [ARGS...]\n"
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
    "                      its own after PROGRAM (programs they exec stay untraced)\n"
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
        O_FOLLOW_FORK
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
    if (optind >= argc)
        die_usage("%s", "no program to run");
    if (o->query.cumulative && o->query.key == TM_KEY_TRACEBACK)
        die_usage("%s", "--cumulative works with --key lineno or filename, not traceback");
    if (o->follow_fork && !o->report)
        die_usage("%s", "--follow-fork works with --report only");
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
    int taken[MAX_PROCS] = {0};
    size_t n = 0, stack[MAX_PROCS], depth = 0;
    for (size_t i = 0; i < in->n; i++) {
        tm_totals t;
        tm_store_totals(in->store[i], &t);
        ppid[i] = t.ppid;
    }
    for (size_t root = 0; root < in->n; root++) {
        if (taken[root])
            continue;
        taken[root] = 1;
        stack[depth++] = root;
        while (depth) {
            size_t p = stack[--depth];
            out_pid[n] = in->pid[p];
            out[n++] = in->store[p];
            /* Pushed in reverse so that the earliest sibling comes first. */
            for (size_t i = in->n; i-- > 0;)
                if (!taken[i] && ppid[i] == in->pid[p]) {
                    taken[i] = 1;
                    stack[depth++] = i;
                }
        }
    }
    for (size_t i = 0; i < n; i++) {
        in->store[i] = out[i];
        in->pid[i] = out_pid[i];
    }
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
    if (o->output) {
        int fd = open(o->output, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0)
            created = 1;
        else if (errno == EEXIST)
            fd = open(o->output, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || !(out = fdopen(fd, "w"))) {
            fprintf(stderr, "tmtop: cannot write %s: %s\n", o->output, strerror(errno));
            if (fd >= 0)
                close(fd);
            if (created)
                unlink(o->output);
            return 2;
        }
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
        return 2;
    }
    ingest in = {0};
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
    if (o->follow_fork)
        order_procs(&in);
    int wrc = o->follow_fork ? tm_report_write_procs(out, in.store, in.n, &res, &ro, &err)
                             : tm_report_write(out, in.store[0], &res, &ro, &err);
    if (wrc != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        if (!status)
            status = 2;
    }
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

static int run_live(options *o)
{
    char hook[4096];
    tm_err err = {0};
    if (tm_tracer_find_hook(hook, sizeof hook, &err) != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        return 2;
    }
    tm_tui_config c = {.argv = o->argv, .hook_path = hook, .frames = o->frames, .query = o->query};
    return tm_tui_run(&c);
}

int main(int argc, char **argv)
{
    options o;
    parse_options(argc, argv, &o);
    if (o.report)
        return run_report(&o);
    if (!tm_tui_available()) {
        fputs("tmtop: this build has no live view; run with --report\n", stderr);
        return 2;
    }
    return run_live(&o);
}
