/* test_hook.c - libtmtop-hook.so against a minimal listener.
 *
 * The test plays tmtop with nothing but wire.h and sockets: it listens on an
 * abstract socket, forks and execs the tests/programs/hook_* targets with
 * the hook preloaded (HOOK_LIB) and the TMTOP_* variables set, collects every
 * byte each connection sends, decodes the streams with tm_wire_decode and
 * checks them record by record against what the program did. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "wire.h"

#ifndef HOOK_LIB
#error "HOOK_LIB must name libtmtop-hook.so"
#endif
#ifndef HOOK_DIR
#error "HOOK_DIR must name the folder of the hook_* programs"
#endif

#define MARK_BEGIN 777001
#define MARK_END 777002
#define MAX_CONN 8
#define TOKEN 0x0123456789abcdefull
#define DEFAULT_FRAMES 64 /* TMTOP_FRAMES unset */

/* ---- running a program ---------------------------------------------------- */
typedef struct stream {
    uint8_t *data;
    size_t len, cap;
    int fd;
    tm_wire_rec *recs;
    size_t nrec;
    int decoded; /* every byte decoded into whole records */
} stream;

typedef struct run {
    pid_t pid;
    int status;
    int timed_out;
    stream conn[MAX_CONN];
    int nconn;
    char *out, *err;
    size_t out_len, err_len;
    char exe[PATH_MAX];
} run;

typedef struct run_opts {
    const char *prog;         /* file name in HOOK_DIR */
    const char *arg;          /* one argument, or NULL */
    int hook;                 /* preload the hook */
    const char *preload_tail; /* appended to LD_PRELOAD after ':' */
    int listen;               /* 0: TMTOP_SOCK names nobody */
    const char *frames;       /* TMTOP_FRAMES, or NULL */
    const char *flush_ms;     /* TMTOP_FLUSH_MS, or NULL */
    int fd3;                  /* >= 0: becomes the program's fd 3 */
    const char *extra_env[3]; /* more NAME=value entries */
} run_opts;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_memfd(int fd, size_t *len)
{
    off_t n = lseek(fd, 0, SEEK_END);
    char *s = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    if (n > 0 && pread(fd, s, (size_t)n, 0) != n)
        n = 0;
    *len = n > 0 ? (size_t)n : 0;
    return s;
}

static void stream_append(stream *s, const uint8_t *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

static void stream_decode(stream *s)
{
    tm_wire_decoder d;
    tm_wire_decoder_init(&d);
    size_t off = 0, cap = 0;
    s->decoded = 1;
    while (off < s->len) {
        tm_wire_rec rec;
        size_t used = 0;
        tm_err err = {0};
        int r = tm_wire_decode(&d, s->data + off, s->len - off, &used, &rec, &err);
        if (r != 1) {
            fprintf(stderr, "decode at %zu of %zu: %d %s\n", off, s->len, r, err.msg);
            s->decoded = 0;
            break;
        }
        if (s->nrec == cap) {
            cap = cap ? cap * 2 : 1024;
            s->recs = realloc(s->recs, cap * sizeof *s->recs);
        }
        s->recs[s->nrec++] = rec;
        off += used;
    }
}

/* HOOK_TEST_DUMP=1 prints every decoded record, to debug a failure. */
static void dump_stream(const char *prog, const stream *s)
{
    if (!getenv("HOOK_TEST_DUMP"))
        return;
    for (size_t i = 0; i < s->nrec; i++) {
        const tm_wire_rec *x = &s->recs[i];
        fprintf(stderr, "%s %4zu %-14s", prog, i, tm_wire_type_name(x->type));
        switch (x->type) {
        case TM_REC_ALLOC:
            fprintf(stderr, " stack=%u kind=%u ptr=%#llx size=%llu", x->u.alloc.stack_id,
                    x->u.alloc.kind, (unsigned long long)x->u.alloc.ptr,
                    (unsigned long long)x->u.alloc.size);
            break;
        case TM_REC_FREE:
            fprintf(stderr, " ptr=%#llx kind=%u", (unsigned long long)x->u.free.ptr,
                    x->u.free.kind);
            break;
        case TM_REC_REALLOC:
            fprintf(stderr, " stack=%u old=%#llx new=%#llx size=%llu", x->u.realloc.stack_id,
                    (unsigned long long)x->u.realloc.old_ptr,
                    (unsigned long long)x->u.realloc.new_ptr,
                    (unsigned long long)x->u.realloc.size);
            break;
        case TM_REC_STACK:
            fprintf(stderr, " id=%u depth=%u flags=%u ip0=%#llx", x->u.stack.stack_id,
                    x->u.stack.depth, x->u.stack.flags,
                    (unsigned long long)(x->u.stack.depth ? tm_wire_stack_ip(x, 0) : 0));
            break;
        case TM_REC_MODULE:
            fprintf(stderr, " id=%u bias=%#llx bid=%u nseg=%u %.*s", x->u.module.id,
                    (unsigned long long)x->u.module.load_bias, x->u.module.build_id_len,
                    x->u.module.nseg, (int)x->u.module.path_len, x->u.module.path);
            break;
        case TM_REC_MODULE_GONE:
            fprintf(stderr, " id=%u", x->u.module_gone.id);
            break;
        case TM_REC_END:
            fprintf(stderr, " reason=%u nested=%llu lost=%llu", x->u.end.reason,
                    (unsigned long long)x->u.end.nested_calls,
                    (unsigned long long)x->u.end.lost_events);
            break;
        default:
            break;
        }
        fputc('\n', stderr);
    }
}

static int run_program(const run_opts *o, run *r)
{
    static int counter;
    memset(r, 0, sizeof *r);
    char name[80];
    snprintf(name, sizeof name, "tmtop-hook-test.%d.%d", (int)getpid(), counter++);
    int lfd = -1;
    if (o->listen) {
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        memcpy(a.sun_path + 1, name, strlen(name));
        socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, alen) != 0 || listen(lfd, 16) != 0) {
            perror("listener");
            return -1;
        }
    }
    int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", HOOK_DIR, o->prog);
    if (!realpath(path, r->exe))
        snprintf(r->exe, sizeof r->exe, "%s", path);

    char *envv[512];
    size_t ne = 0;
    for (char **e = environ; *e && ne < 500; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0 && strncmp(*e, "TMTOP_", 6) != 0)
            envv[ne++] = *e;
    char preload[2 * PATH_MAX], sock[128], token[64], frames[64], flush[64];
    if (o->hook) {
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s%s%s", HOOK_LIB, o->preload_tail ? ":" : "",
                 o->preload_tail ? o->preload_tail : "");
        envv[ne++] = preload;
        snprintf(sock, sizeof sock, "TMTOP_SOCK=%s",
                 o->listen ? name : "tmtop-hook-test.nobody-listens");
        envv[ne++] = sock;
        snprintf(token, sizeof token, "TMTOP_TOKEN=%016llx", (unsigned long long)TOKEN);
        envv[ne++] = token;
        if (o->frames) {
            snprintf(frames, sizeof frames, "TMTOP_FRAMES=%s", o->frames);
            envv[ne++] = frames;
        }
        if (o->flush_ms) {
            snprintf(flush, sizeof flush, "TMTOP_FLUSH_MS=%s", o->flush_ms);
            envv[ne++] = flush;
        }
    }
    for (int i = 0; i < 3 && o->extra_env[i]; i++)
        envv[ne++] = (char *)o->extra_env[i];
    envv[ne] = NULL;
    char *argv[] = {path, (char *)o->arg, NULL};

    fflush(NULL);
    r->pid = fork();
    if (r->pid == 0) {
        dup2(out, 1);
        dup2(err, 2);
        if (o->fd3 == 3)
            fcntl(3, F_SETFD, 0);
        else if (o->fd3 >= 0)
            dup2(o->fd3, 3);
        execve(path, argv, envv);
        _exit(127);
    }

    int exited = 0;
    double t0 = now_s(), t_exit = 0;
    for (;;) {
        struct pollfd pfd[MAX_CONN + 1];
        int n = 0;
        if (lfd >= 0)
            pfd[n++] = (struct pollfd){lfd, POLLIN, 0};
        for (int i = 0; i < r->nconn; i++)
            if (r->conn[i].fd >= 0)
                pfd[n++] = (struct pollfd){r->conn[i].fd, POLLIN, 0};
        poll(pfd, (nfds_t)n, 20);
        for (int c;
             lfd >= 0 && (c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
            if (r->nconn == MAX_CONN) {
                close(c);
                continue;
            }
            r->conn[r->nconn++].fd = c;
        }
        int open_conns = 0;
        for (int i = 0; i < r->nconn; i++) {
            stream *s = &r->conn[i];
            while (s->fd >= 0) {
                uint8_t buf[65536];
                ssize_t k = read(s->fd, buf, sizeof buf);
                if (k > 0) {
                    stream_append(s, buf, (size_t)k);
                } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                    close(s->fd);
                    s->fd = -1;
                } else {
                    break;
                }
            }
            open_conns += s->fd >= 0;
        }
        if (!exited && waitpid(r->pid, &r->status, WNOHANG) == r->pid) {
            exited = 1;
            t_exit = now_s();
        }
        if (exited && (open_conns == 0 || now_s() - t_exit > 5))
            break;
        if (!exited && now_s() - t0 > 30) {
            fprintf(stderr, "%s: still running after 30 s, killed\n", o->prog);
            kill(r->pid, SIGKILL);
            r->timed_out = 1;
        }
    }
    for (int i = 0; i < r->nconn; i++) {
        if (r->conn[i].fd >= 0)
            close(r->conn[i].fd);
        stream_decode(&r->conn[i]);
        dump_stream(o->prog, &r->conn[i]);
    }
    if (lfd >= 0)
        close(lfd);
    r->out = read_memfd(out, &r->out_len);
    r->err = read_memfd(err, &r->err_len);
    close(out);
    close(err);
    return 0;
}

/* The value the program printed as "key=<%p>", 0 for (nil), ~0 if absent. */
static uint64_t out_value(const run *r, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = r->out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, k) == 0 && p[k] == '=')
            return strncmp(p + k + 1, "(nil)", 5) == 0 ? 0 : strtoull(p + k + 1, NULL, 0);
    }
    return ~0ull;
}

/* ---- generic stream checks ------------------------------------------------ */
typedef struct mod_info {
    uint32_t id;
    int alive;
    uint64_t bias;
    const tm_wire_rec *rec;
} mod_info;

static int ip_in_module(const tm_wire_rec *m, uint64_t ip, int exec_only)
{
    for (unsigned i = 0; i < m->u.module.nseg; i++) {
        tm_segment s;
        tm_wire_module_seg(m, i, &s);
        if (exec_only && !(s.flags & 1)) /* PF_X */
            continue;
        uint64_t lo = m->u.module.load_bias + s.vaddr;
        if (ip >= lo && ip < lo + s.memsz)
            return 1;
    }
    return 0;
}

/* An open-addressing set of live addresses (tombstones on removal). */
typedef struct addr_set {
    uint64_t *slot; /* 0 empty, 1 tombstone */
    size_t mask;
} addr_set;

static void set_init(addr_set *s)
{
    s->mask = (1u << 20) - 1;
    s->slot = calloc(s->mask + 1, sizeof *s->slot);
}

static size_t set_find(const addr_set *s, uint64_t a, int for_insert)
{
    size_t tomb = SIZE_MAX;
    for (size_t i = (a >> 4) * 0x9e3779b97f4a7c15ull & s->mask;; i = (i + 1) & s->mask) {
        if (s->slot[i] == a)
            return i;
        if (s->slot[i] == 1 && tomb == SIZE_MAX)
            tomb = i;
        if (s->slot[i] == 0)
            return for_insert ? (tomb != SIZE_MAX ? tomb : i) : SIZE_MAX;
    }
}

static int set_has(const addr_set *s, uint64_t a)
{
    size_t i = set_find(s, a, 0);
    return i != SIZE_MAX && s->slot[i] == a;
}

static void set_add(addr_set *s, uint64_t a)
{
    s->slot[set_find(s, a, 1)] = a;
}

static int set_del(addr_set *s, uint64_t a)
{
    size_t i = set_find(s, a, 0);
    if (i == SIZE_MAX || s->slot[i] != a)
        return 0;
    s->slot[i] = 1;
    return 1;
}

typedef struct stream_facts {
    const tm_wire_rec **stacks; /* by id */
    size_t nstacks;
    mod_info mods[512];
    size_t nmods;
    uint64_t unknown_frees;
    size_t ticks;
    int has_end;
} stream_facts;

/* Checks what every stream must satisfy and gathers facts:
 *  preamble then HELLO (pid, ppid, token, frames, exe); MODULE ids dense from
 *  0, the first one the executable; MODULE_GONE of live modules; STACK ids
 *  dense, each defined once and before its first use, every address inside a
 *  module already announced; an address is never allocated while live;
 *  END (if any) is the last record. */
static void check_stream(const run *r, const stream *s, unsigned frames, stream_facts *f)
{
    memset(f, 0, sizeof *f);
    CHECK(s->decoded);
    CHECK(s->nrec >= 2);
    if (s->nrec < 2)
        return;
    CHECK_U64(s->recs[0].type, TM_REC_PREAMBLE);
    CHECK_U64(s->recs[0].u.preamble.major, TM_WIRE_MAJOR);
    const tm_wire_rec *h = &s->recs[1];
    CHECK_U64(h->type, TM_REC_HELLO);
    if (h->type == TM_REC_HELLO) {
        CHECK_U64(h->u.hello.pid, (uint32_t)r->pid);
        CHECK_U64(h->u.hello.ppid, (uint32_t)getpid());
        CHECK_U64(h->u.hello.token, TOKEN);
        CHECK_U64(h->u.hello.max_frames, frames);
        CHECK_U64(h->u.hello.flags, 0);
        CHECK(h->u.hello.monotonic_ns > 0);
        CHECK(h->u.hello.exe_len == strlen(r->exe) &&
              memcmp(h->u.hello.exe, r->exe, h->u.hello.exe_len) == 0);
    }
    f->stacks = calloc(s->nrec, sizeof *f->stacks);
    addr_set live, pending;
    set_init(&live);
    set_init(&pending);
    int bad_order = 0, bad_stack = 0, bad_module = 0, outside = 0;
    uint64_t last_tick = h->u.hello.monotonic_ns;
    for (size_t i = 2; i < s->nrec; i++) {
        const tm_wire_rec *x = &s->recs[i];
        CHECK(!f->has_end); /* nothing after END */
        switch (x->type) {
        case TM_REC_MODULE:
            if (x->u.module.id != f->nmods || f->nmods == 512) {
                bad_module++;
                break;
            }
            if (f->nmods == 0)
                CHECK(x->u.module.path_len == strlen(r->exe) &&
                      memcmp(x->u.module.path, r->exe, x->u.module.path_len) == 0);
            f->mods[f->nmods++] = (mod_info){x->u.module.id, 1, x->u.module.load_bias, x};
            break;
        case TM_REC_MODULE_GONE:
            if (x->u.module_gone.id >= f->nmods || !f->mods[x->u.module_gone.id].alive)
                bad_module++;
            else
                f->mods[x->u.module_gone.id].alive = 0;
            break;
        case TM_REC_STACK:
            if (x->u.stack.stack_id != f->nstacks || x->u.stack.depth > frames) {
                bad_stack++;
                break;
            }
            f->stacks[f->nstacks++] = x;
            for (unsigned k = 0; k < x->u.stack.depth; k++) {
                uint64_t ip = tm_wire_stack_ip(x, k);
                size_t m;
                for (m = 0; m < f->nmods; m++)
                    if (f->mods[m].alive && ip_in_module(f->mods[m].rec, ip, 0))
                        break;
                if (m == f->nmods) {
                    if (!outside)
                        fprintf(stderr, "stack %u ip[%u]=%#llx outside every module\n",
                                x->u.stack.stack_id, k, (unsigned long long)ip);
                    outside++;
                }
            }
            break;
        case TM_REC_ALLOC:
            if (x->u.alloc.stack_id >= f->nstacks)
                bad_stack++;
            if (set_has(&live, x->u.alloc.ptr) || set_has(&pending, x->u.alloc.ptr))
                bad_order++;
            set_add(&live, x->u.alloc.ptr);
            break;
        case TM_REC_FREE:
            if (x->u.free.kind == TM_FREE_REALLOC_PRE) {
                if (set_del(&live, x->u.free.ptr))
                    set_add(&pending, x->u.free.ptr);
                else
                    f->unknown_frees++;
            } else if (!set_del(&live, x->u.free.ptr)) {
                f->unknown_frees++;
            }
            break;
        case TM_REC_REALLOC:
            if (x->u.realloc.stack_id >= f->nstacks)
                bad_stack++;
            set_del(&pending, x->u.realloc.old_ptr);
            if (x->u.realloc.new_ptr) {
                if (set_has(&live, x->u.realloc.new_ptr))
                    bad_order++;
                set_add(&live, x->u.realloc.new_ptr);
            }
            break;
        case TM_REC_REALLOC_FAILED:
            if (set_del(&pending, x->u.realloc_failed.ptr))
                set_add(&live, x->u.realloc_failed.ptr);
            break;
        case TM_REC_TICK:
            f->ticks++;
            CHECK(x->u.tick.monotonic_ns >= last_tick);
            CHECK(x->u.tick.rss_bytes > 0);
            last_tick = x->u.tick.monotonic_ns;
            break;
        case TM_REC_END:
            f->has_end = 1;
            CHECK_U64(x->u.end.reason, TM_END_EXIT);
            CHECK_U64(x->u.end.lost_events, 0);
            break;
        case TM_REC_FORK:
        case TM_REC_EXEC:
            break;
        default:
            CHECK(!"unexpected record type");
        }
    }
    CHECK(f->nmods > 0);
    CHECK_U64(bad_order, 0);
    CHECK_U64(bad_stack, 0);
    CHECK_U64(bad_module, 0);
    CHECK_U64(outside, 0);
    free(live.slot);
    free(pending.slot);
}

/* Allocation events (ALLOC, FREE, REALLOC, REALLOC_FAILED) from the ALLOC
 * of size begin (included) on, up to the ALLOC of size end (included) or the
 * end of the stream; returns their record indexes. */
static size_t events_between(const stream *s, uint64_t begin, uint64_t end, size_t *idx, size_t max)
{
    size_t n = 0;
    int on = 0;
    for (size_t i = 0; i < s->nrec && n < max; i++) {
        const tm_wire_rec *x = &s->recs[i];
        if (x->type == TM_REC_ALLOC && x->u.alloc.size == begin && !on)
            on = 1;
        if (!on)
            continue;
        if (x->type == TM_REC_ALLOC || x->type == TM_REC_FREE || x->type == TM_REC_REALLOC ||
            x->type == TM_REC_REALLOC_FAILED)
            idx[n++] = i;
        if (x->type == TM_REC_ALLOC && x->u.alloc.size == end)
            break;
    }
    return n;
}

typedef struct exp_ev {
    uint8_t type, kind;
    uint64_t ptr, ptr2, size; /* ptr2: REALLOC's new pointer */
} exp_ev;

#define E_ALLOC(k, p, n) ((exp_ev){TM_REC_ALLOC, (k), (p), 0, (n)})
#define E_FREE(p, k) ((exp_ev){TM_REC_FREE, (k), (p), 0, 0})
#define E_REALLOC(o, p, n) ((exp_ev){TM_REC_REALLOC, 0, (o), (p), (n)})
#define E_REALLOC_FAILED(o) ((exp_ev){TM_REC_REALLOC_FAILED, 0, (o), 0, 0})
#define ANY 0xffffffffffffffffull

/* The events at idx[] must be exactly exp[] (ANY matches any pointer). */
static void expect_events(const char *what, const stream *s, const size_t *idx, size_t n,
                          const exp_ev *exp, size_t nexp)
{
    CHECK_U64(n, nexp);
    for (size_t i = 0; i < n && i < nexp; i++) {
        const tm_wire_rec *x = &s->recs[idx[i]];
        const exp_ev *e = &exp[i];
        int ok = x->type == e->type;
        if (ok && x->type == TM_REC_ALLOC)
            ok = x->u.alloc.kind == e->kind && x->u.alloc.size == e->size &&
                 (e->ptr == ANY || x->u.alloc.ptr == e->ptr);
        else if (ok && x->type == TM_REC_FREE)
            ok = x->u.free.kind == e->kind && (e->ptr == ANY || x->u.free.ptr == e->ptr);
        else if (ok && x->type == TM_REC_REALLOC)
            ok = x->u.realloc.old_ptr == e->ptr && x->u.realloc.new_ptr == e->ptr2 &&
                 x->u.realloc.size == e->size;
        else if (ok && x->type == TM_REC_REALLOC_FAILED)
            ok = x->u.realloc_failed.ptr == e->ptr;
        if (!ok) {
            fprintf(stderr, "%s: event %zu is %s, expected %s (size %llu)\n", what, i,
                    tm_wire_type_name(x->type), tm_wire_type_name(e->type),
                    (unsigned long long)e->size);
            CHECK(!"event sequence");
            return;
        }
    }
}

static size_t find_alloc(const stream *s, uint64_t size, size_t from)
{
    for (size_t i = from; i < s->nrec; i++)
        if (s->recs[i].type == TM_REC_ALLOC && s->recs[i].u.alloc.size == size)
            return i;
    return SIZE_MAX;
}

static void free_run(run *r)
{
    for (int i = 0; i < r->nconn; i++) {
        free(r->conn[i].data);
        free(r->conn[i].recs);
    }
    free(r->out);
    free(r->err);
}

static int exited_with(const run *r, int code)
{
    return !r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

/* ---- the tests ---------------------------------------------------------------- */
static void test_basic(void)
{
    run r;
    run_opts o = {.prog = "hook_basic",
                  .hook = 1,
                  .preload_tail = "libm.so.6",
                  .listen = 1,
                  .frames = "8",
                  .fd3 = -1};
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&r, 0));
    CHECK_U64(r.nconn, 1);
    if (r.nconn != 1) {
        free_run(&r);
        return;
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, 8, &f);
    CHECK(f.has_end);
    CHECK(f.ticks >= 1);

    uint64_t v[12], same[3];
    char key[16];
    for (int i = 0; i < 12; i++) {
        snprintf(key, sizeof key, "v%d", i);
        v[i] = out_value(&r, key);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "same%d", i);
        same[i] = out_value(&r, key);
    }
    CHECK_U64(v[5], 0);
    CHECK_U64(v[6], 0);
    exp_ev exp[] = {
        E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_BEGIN),
        E_FREE(ANY, TM_FREE_FREE),
        E_ALLOC(TM_ALLOC_MALLOC, v[0], 1001),
        E_ALLOC(TM_ALLOC_CALLOC, v[1], 999),
        E_ALLOC(TM_ALLOC_REALLOC, v[2], 1002),
        E_FREE(v[2], TM_FREE_REALLOC_PRE),
        E_REALLOC(v[2], v[3], 5000),
        E_FREE(v[3], TM_FREE_REALLOC_PRE),
        E_REALLOC(v[3], v[4], 100),
        E_FREE(v[4], TM_FREE_REALLOC_PRE),
        E_REALLOC(v[4], 0, 0),
        E_FREE(v[0], TM_FREE_REALLOC_PRE),
        E_REALLOC_FAILED(v[0]),
        E_ALLOC(TM_ALLOC_MEMALIGN, v[7], 1003),
        E_ALLOC(TM_ALLOC_MEMALIGN, v[8], 1024),
        E_ALLOC(TM_ALLOC_MEMALIGN, v[9], 1005),
        E_ALLOC(TM_ALLOC_MEMALIGN, v[10], 1006),
        E_ALLOC(TM_ALLOC_MEMALIGN, v[11], 1007),
        E_ALLOC(TM_ALLOC_MALLOC, same[0], 1100),
        E_ALLOC(TM_ALLOC_MALLOC, same[1], 1100),
        E_ALLOC(TM_ALLOC_MALLOC, same[2], 1100),
        E_FREE(v[0], TM_FREE_FREE),
        E_FREE(v[1], TM_FREE_FREE),
        E_FREE(v[7], TM_FREE_FREE),
        E_FREE(v[8], TM_FREE_FREE),
        E_FREE(v[9], TM_FREE_FREE),
        E_FREE(v[10], TM_FREE_FREE),
        E_FREE(v[11], TM_FREE_FREE),
        E_FREE(same[0], TM_FREE_FREE),
        E_FREE(same[1], TM_FREE_FREE),
        E_FREE(same[2], TM_FREE_FREE),
        E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_END),
    };
    size_t idx[64];
    size_t n = events_between(s, MARK_BEGIN, MARK_END, idx, 64);
    expect_events("basic", s, idx, n, exp, sizeof exp / sizeof exp[0]);

    /* Stacks: the first frame is the call in run(), inside the program's
     * executable segment; one site, one stack; distinct sites, distinct
     * stacks; a deep stack is cut at TMTOP_FRAMES and says so. */
    uint64_t run_fn = out_value(&r, "run");
    size_t i0 = find_alloc(s, 1001, 0), i1 = find_alloc(s, 999, 0);
    size_t is0 = find_alloc(s, 1100, 0), is1 = find_alloc(s, 1100, is0 + 1);
    size_t ideep = find_alloc(s, 8001, 0);
    CHECK(i0 != SIZE_MAX && i1 != SIZE_MAX && is0 != SIZE_MAX && is1 != SIZE_MAX &&
          ideep != SIZE_MAX);
    if (i0 == SIZE_MAX || i1 == SIZE_MAX || is1 == SIZE_MAX || ideep == SIZE_MAX) {
        free_run(&r);
        return;
    }
    const tm_wire_rec *st = f.stacks[s->recs[i0].u.alloc.stack_id];
    CHECK(st && st->u.stack.depth >= 3 && st->u.stack.depth <= 8);
    CHECK_U64(st->u.stack.flags, 0);
    if (st && st->u.stack.depth > 0) {
        uint64_t ip0 = tm_wire_stack_ip(st, 0);
        CHECK(ip0 > run_fn && ip0 < run_fn + 1024);
        CHECK(ip_in_module(f.mods[0].rec, ip0, 1));
    }
    CHECK(s->recs[i0].u.alloc.stack_id != s->recs[i1].u.alloc.stack_id);
    CHECK_U64(s->recs[is0].u.alloc.stack_id, s->recs[is1].u.alloc.stack_id);
    const tm_wire_rec *deep = f.stacks[s->recs[ideep].u.alloc.stack_id];
    CHECK(deep && deep->u.stack.depth == 8 && deep->u.stack.flags == TM_STACK_TRUNCATED);

    /* Our entry left LD_PRELOAD, the rest stayed; TMTOP_* are gone. */
    CHECK(strstr(r.out, "env LD_PRELOAD=libm.so.6\n") != NULL);
    CHECK(strstr(r.out, "env TMTOP_SOCK=(null)\nenv TMTOP_TOKEN=(null)\n"
                        "env TMTOP_FRAMES=(null)\nenv TMTOP_FLUSH_MS=(null)\n") != NULL);
    CHECK_U64(r.err_len, 0);
    free(f.stacks);
    free_run(&r);
}

static void test_cxx(void)
{
    run r;
    run_opts o = {.prog = "hook_cxx", .hook = 1, .listen = 1, .fd3 = -1};
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&r, 0));
    CHECK_U64(r.nconn, 1);
    if (r.nconn != 1) {
        free_run(&r);
        return;
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, DEFAULT_FRAMES, &f);
    CHECK(f.has_end);
    CHECK(strstr(r.out, "caught=1\n") != NULL);

    /* Each operator new is one ALLOC of kind NEW / NEW_ARRAY (aligned ones
     * too), each delete one FREE of kind DELETE / DELETE_ARRAY: no MALLOC
     * from the malloc inside libstdc++'s operator new. */
    exp_ev exp[2 + 24];
    size_t ne = 0;
    exp[ne++] = E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_BEGIN);
    exp[ne++] = E_FREE(ANY, TM_FREE_FREE);
    for (int i = 1; i <= 12; i++) {
        char key[8];
        snprintf(key, sizeof key, "p%d", i);
        uint64_t p = out_value(&r, key);
        int arr = i % 2 == 0;
        exp[ne++] = E_ALLOC(arr ? TM_ALLOC_NEW_ARRAY : TM_ALLOC_NEW, p, 5000 + (uint64_t)i);
        exp[ne++] = E_FREE(p, arr ? TM_FREE_DELETE_ARRAY : TM_FREE_DELETE);
    }
    size_t idx[64];
    size_t n = events_between(s, MARK_BEGIN, MARK_END, idx, 64);
    CHECK(n >= ne + 3);
    if (n < ne + 3) {
        free_run(&r);
        return;
    }
    expect_events("cxx", s, idx, ne, exp, ne);
    /* After the failed new: at most the free of the exception object
     * (allocated inside the hook, so unknown), then a new that is recorded:
     * the unwinding cleared the guard. */
    size_t k = ne;
    while (k < n && s->recs[idx[k]].type == TM_REC_FREE &&
           s->recs[idx[k]].u.free.kind == TM_FREE_FREE)
        k++;
    CHECK(k - ne <= 1);
    exp_ev tail[] = {E_ALLOC(TM_ALLOC_NEW, ANY, 4001), E_FREE(ANY, TM_FREE_DELETE),
                     E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_END)};
    expect_events("cxx tail", s, idx + k, n - k, tail, 3);
    /* The first frame is the call in main, not in libstdc++ or the hook. */
    size_t inew = find_alloc(s, 5001, 0);
    const tm_wire_rec *st = inew == SIZE_MAX ? NULL : f.stacks[s->recs[inew].u.alloc.stack_id];
    CHECK(st && st->u.stack.depth > 0 && ip_in_module(f.mods[0].rec, tm_wire_stack_ip(st, 0), 1));
    /* The nested mallocs of operator new are counted, not recorded. */
    const tm_wire_rec *end = &s->recs[s->nrec - 1];
    CHECK(end->type == TM_REC_END && end->u.end.nested_calls >= 12);
    free(f.stacks);
    free_run(&r);
}

static void test_fork(void)
{
    run r;
    run_opts o = {.prog = "hook_fork", .hook = 1, .listen = 1, .flush_ms = "0", .fd3 = -1};
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&r, 0));
    CHECK_U64(r.nconn, 1); /* the child never connects */
    if (r.nconn != 1) {
        free_run(&r);
        return;
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, DEFAULT_FRAMES, &f);
    CHECK(f.has_end);
    CHECK_U64(f.ticks, 0); /* TMTOP_FLUSH_MS=0: no timer */
    CHECK(strstr(r.out, "status=0\n") != NULL);
    CHECK_U64(find_alloc(s, 2002, 0), SIZE_MAX);
    size_t ia = find_alloc(s, 2001, 0), ib = find_alloc(s, 2003, 0), ifork = SIZE_MAX;
    for (size_t i = 0; i < s->nrec; i++)
        if (s->recs[i].type == TM_REC_FORK)
            ifork = i;
    CHECK(ia != SIZE_MAX && ib != SIZE_MAX && ifork != SIZE_MAX);
    CHECK(ia < ifork && ifork < ib);
    if (ifork != SIZE_MAX)
        CHECK_U64(s->recs[ifork].u.fork.child_pid, out_value(&r, "child"));
    exp_ev exp[] = {
        E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_BEGIN),
        E_FREE(ANY, TM_FREE_FREE),
        E_ALLOC(TM_ALLOC_MALLOC, ANY, 2001),
        E_ALLOC(TM_ALLOC_MALLOC, ANY, 2003),
        E_FREE(ANY, TM_FREE_FREE),
        E_FREE(ANY, TM_FREE_FREE),
        E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_END),
    };
    size_t idx[32];
    size_t n = events_between(s, MARK_BEGIN, MARK_END, idx, 32);
    expect_events("fork", s, idx, n, exp, sizeof exp / sizeof exp[0]);
    free(f.stacks);
    free_run(&r);
}

static void test_exec(void)
{
    run r;
    run_opts o = {.prog = "hook_exec", .hook = 1, .listen = 1, .fd3 = -1};
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&r, 0));
    CHECK_U64(r.nconn, 1); /* the new image is not traced */
    if (r.nconn != 1) {
        free_run(&r);
        return;
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, DEFAULT_FRAMES, &f);
    CHECK(!f.has_end); /* the stream ends with the successful exec */
    CHECK_U64(find_alloc(s, 3003, 0), SIZE_MAX);
    size_t ia = find_alloc(s, 3001, 0), ib = find_alloc(s, 3002, 0), ie1 = SIZE_MAX, ie2 = SIZE_MAX;
    for (size_t i = 0; i < s->nrec; i++)
        if (s->recs[i].type == TM_REC_EXEC)
            *(ie1 == SIZE_MAX ? &ie1 : &ie2) = i;
    CHECK(ia != SIZE_MAX && ib != SIZE_MAX && ie1 != SIZE_MAX && ie2 != SIZE_MAX);
    CHECK(ia < ie1 && ie1 < ib && ib < ie2);
    CHECK_U64(ie2, s->nrec - 1);
    if (ie1 != SIZE_MAX && ie2 != SIZE_MAX) {
        const tm_wire_rec *e1 = &s->recs[ie1], *e2 = &s->recs[ie2];
        CHECK(e1->u.exec.path_len == strlen("/nonexistent/hook-exec") &&
              memcmp(e1->u.exec.path, "/nonexistent/hook-exec", e1->u.exec.path_len) == 0);
        CHECK(e2->u.exec.path_len == strlen(r.exe) &&
              memcmp(e2->u.exec.path, r.exe, e2->u.exec.path_len) == 0);
    }
    CHECK(strstr(r.out, "parent\nchild\n") != NULL);
    CHECK(strstr(r.out, "env LD_PRELOAD=(null)\nenv TMTOP_SOCK=(null)\nenv TMTOP_TOKEN=(null)\n"
                        "env TMTOP_FRAMES=(null)\nenv TMTOP_FLUSH_MS=(null)\n") != NULL);
    free(f.stacks);
    free_run(&r);
}

static void test_output(void)
{
    run plain, traced, orphan;
    run_opts o = {.prog = "hook_output", .fd3 = -1};
    if (run_program(&o, &plain) != 0) {
        CHECK(!"run");
        return;
    }
    o.hook = 1;
    o.listen = 1;
    if (run_program(&o, &traced) != 0) {
        CHECK(!"run");
        return;
    }
    o.listen = 0; /* TMTOP_SOCK names nobody: tracing off, silently */
    if (run_program(&o, &orphan) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&plain, 3));
    CHECK(exited_with(&traced, 3));
    CHECK(exited_with(&orphan, 3));
    CHECK(plain.out_len > 50000);
    const run *cmp[] = {&traced, &orphan};
    for (int i = 0; i < 2; i++) {
        CHECK(cmp[i]->out_len == plain.out_len &&
              memcmp(cmp[i]->out, plain.out, plain.out_len) == 0);
        CHECK(cmp[i]->err_len == plain.err_len &&
              memcmp(cmp[i]->err, plain.err, plain.err_len) == 0);
    }
    CHECK_U64(traced.nconn, 1);
    if (traced.nconn == 1) {
        stream_facts f;
        check_stream(&traced, &traced.conn[0], DEFAULT_FRAMES, &f);
        CHECK(f.has_end);
        free(f.stacks);
    }
    free_run(&plain);
    free_run(&traced);
    free_run(&orphan);
}

static void test_threads(void)
{
    run r;
    /* One arena and no per-thread cache: a block freed by one thread is
     * handed to another at once, which is where a FREE appended after the
     * real free would show as an ALLOC of a live address. */
    run_opts o = {
        .prog = "hook_threads",
        .hook = 1,
        .listen = 1,
        .frames = "16",
        .fd3 = -1,
        .extra_env = {"MALLOC_ARENA_MAX=1", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0"}};
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&r, 0));
    CHECK_U64(r.nconn, 1);
    if (r.nconn != 1) {
        free_run(&r);
        return;
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, 16, &f); /* includes: no address allocated while live */
    CHECK(f.has_end);
    uint64_t allocs[4] = {0}, frees[4] = {0};
    addr_set owner;
    set_init(&owner);
    for (size_t i = 0; i < s->nrec; i++) {
        const tm_wire_rec *x = &s->recs[i];
        if (x->type == TM_REC_ALLOC && x->u.alloc.size >= 6001 && x->u.alloc.size <= 6004) {
            allocs[x->u.alloc.size - 6001]++;
            set_add(&owner, x->u.alloc.ptr ^ (x->u.alloc.size - 6000) << 60);
        } else if (x->type == TM_REC_FREE) {
            for (uint64_t t = 0; t < 4; t++)
                if (set_del(&owner, x->u.free.ptr ^ (t + 1) << 60))
                    frees[t]++;
        }
    }
    for (int t = 0; t < 4; t++) {
        CHECK_U64(allocs[t], 5000);
        CHECK_U64(frees[t], 5000);
    }
    free(owner.slot);
    free(f.stacks);
    free_run(&r);
}

static void test_fd_lost(void)
{
    /* The program's fd 3 is a socket, as the hook's is: only the dev/ino
     * check can tell them apart (send() would happily write into it). */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        CHECK(!"socketpair");
        return;
    }
    run r;
    run_opts o = {.prog = "hook_fdlost", .hook = 1, .listen = 1, .fd3 = sv[1]};
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    close(sv[1]);
    CHECK(exited_with(&r, 5));
    char got[256];
    size_t len = 0;
    for (ssize_t k; len < sizeof got - 1 && (k = read(sv[0], got + len, sizeof got - 1 - len)) > 0;)
        len += (size_t)k;
    got[len] = 0;
    close(sv[0]);
    CHECK_STR(got, "app-bytes\n"); /* not one tracer byte in the program's socket */
    static const char msg[] = "tmtop: trace channel lost; tracing stopped\n";
    CHECK(r.err_len == sizeof msg - 1 && memcmp(r.err, msg, sizeof msg - 1) == 0);
    /* closefrom and dup2 moved the hook's socket, which stayed above 1023. */
    uint64_t before = out_value(&r, "before"), after = out_value(&r, "after");
    CHECK(before >= 500 && before < 1024 && after >= 1024 && after != ~0ull);
    CHECK_U64(r.nconn, 1);
    if (r.nconn != 1) {
        free_run(&r);
        return;
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, DEFAULT_FRAMES, &f); /* includes: every TICK has an RSS */
    CHECK(!f.has_end);                       /* the channel was lost */
    CHECK(f.ticks >= 1);
    exp_ev exp[] = {
        E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_BEGIN), E_FREE(ANY, TM_FREE_FREE),
        E_ALLOC(TM_ALLOC_MALLOC, ANY, 4001),       E_ALLOC(TM_ALLOC_MALLOC, ANY, 4002),
        E_ALLOC(TM_ALLOC_MALLOC, ANY, 4003),       E_ALLOC(TM_ALLOC_MALLOC, ANY, MARK_END),
    };
    size_t idx[32];
    size_t n = events_between(s, MARK_BEGIN, MARK_END, idx, 32);
    expect_events("fdlost", s, idx, n, exp, sizeof exp / sizeof exp[0]);
    free(f.stacks);
    free_run(&r);
}

static void test_fd_reuse(void)
{
    /* closefrom(3), files of its own on 3 and 4, then stacks libunwind must
     * validate through its pipe: the pipe was kept high and out of
     * closefrom's way, so not one of its bytes reaches the program's files
     * and it never reads from or closes them. */
    char dir[] = "/tmp/tm-fdreuse-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    run r;
    run_opts o = {.prog = "hook_fdreuse", .arg = dir, .hook = 1, .listen = 1, .fd3 = -1};
    int ran = run_program(&o, &r) == 0;
    char pa[64], pb[64];
    snprintf(pa, sizeof pa, "%s/a", dir);
    snprintf(pb, sizeof pb, "%s/b", dir);
    unlink(pa);
    unlink(pb);
    rmdir(dir);
    if (!ran) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&r, 0));
    CHECK_U64(out_value(&r, "a"), 3);
    CHECK_U64(out_value(&r, "b"), 4);
    CHECK_U64(out_value(&r, "intact"), 1);
    CHECK_U64(r.nconn, 1);
    if (r.nconn == 1) {
        stream_facts f;
        check_stream(&r, &r.conn[0], DEFAULT_FRAMES, &f);
        CHECK(f.has_end);
        /* Every one of its 20000 allocations was recorded. */
        size_t *idx = malloc(60000 * sizeof *idx);
        size_t n = idx ? events_between(&r.conn[0], MARK_BEGIN, MARK_END, idx, 60000) : 0;
        uint64_t allocs = 0;
        for (size_t i = 0; i < n; i++) {
            const tm_wire_rec *x = &r.conn[0].recs[idx[i]];
            allocs += x->type == TM_REC_ALLOC && x->u.alloc.size >= 16 && x->u.alloc.size < 216;
        }
        CHECK_U64(allocs, 20000);
        free(idx);
        free(f.stacks);
    }
    free_run(&r);
}

static void test_dlopen(void)
{
    run plain, r;
    run_opts o = {.prog = "hook_dlopen", .fd3 = -1};
    if (run_program(&o, &plain) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&plain, 0));
    o.hook = 1;
    o.listen = 1;
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    /* Found through the program's RUNPATH: the hook kept the caller. */
    CHECK(exited_with(&r, 0));
    CHECK(r.out_len == plain.out_len && memcmp(r.out, plain.out, r.out_len) == 0);
    CHECK(strstr(r.out, "ok libhook_plugin.so\n") != NULL);
    CHECK_U64(r.nconn, 1);
    if (r.nconn != 1) {
        free_run(&plain);
        {
            free_run(&r);
            return;
        }
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, DEFAULT_FRAMES, &f); /* MODULE before any STACK in it */
    CHECK(f.has_end);
    static const char plug[] = "/libhook_plugin.so";
    size_t mi[2], nm = 0, gone[2] = {SIZE_MAX, SIZE_MAX};
    uint32_t id[2] = {0, 0};
    for (size_t i = 0; i < s->nrec; i++) {
        const tm_wire_rec *x = &s->recs[i];
        if (x->type == TM_REC_MODULE && x->u.module.path_len >= sizeof plug - 1 &&
            memcmp(x->u.module.path + x->u.module.path_len - (sizeof plug - 1), plug,
                   sizeof plug - 1) == 0 &&
            nm < 2) {
            mi[nm] = i;
            id[nm++] = x->u.module.id;
        }
        for (size_t k = 0; k < nm; k++)
            if (x->type == TM_REC_MODULE_GONE && x->u.module_gone.id == id[k])
                gone[k] = i;
    }
    CHECK_U64(nm, 2);
    size_t a1 = find_alloc(s, 9001, 0), close1 = find_alloc(s, 9101, 0);
    size_t open2 = find_alloc(s, 9200, 0), close2 = find_alloc(s, 9201, 0);
    CHECK(a1 != SIZE_MAX && close1 != SIZE_MAX && open2 != SIZE_MAX && close2 != SIZE_MAX);
    if (nm == 2 && a1 != SIZE_MAX && close1 != SIZE_MAX && open2 != SIZE_MAX &&
        close2 != SIZE_MAX) {
        /* The plugin's first frame is inside the plugin. */
        const tm_wire_rec *st = f.stacks[s->recs[a1].u.alloc.stack_id];
        CHECK(st && st->u.stack.depth > 0 &&
              ip_in_module(&s->recs[mi[0]], tm_wire_stack_ip(st, 0), 1));
        CHECK(mi[0] < a1);
        CHECK(gone[0] < close1); /* dlclose emits MODULE_GONE at once */
        CHECK(mi[1] < open2);    /* dlopen by path from main: MODULE at once */
        CHECK(gone[1] < close2);
    }
    free(f.stacks);
    free_run(&plain);
    free_run(&r);
}

static void test_early(void)
{
    /* The first allocation comes from another preloaded library's
     * constructor, before the hook's: the hook starts there (HELLO first),
     * records it with the empty stack, and its constructor adds the modules
     * and the unwinder afterwards. */
    run r;
    run_opts o = {.prog = "hook_fork",
                  .hook = 1,
                  .listen = 1,
                  .fd3 = -1,
                  .preload_tail = HOOK_DIR "/libhook_early.so"};
    if (run_program(&o, &r) != 0) {
        CHECK(!"run");
        return;
    }
    CHECK(exited_with(&r, 0));
    CHECK_U64(r.nconn, 1);
    if (r.nconn != 1) {
        free_run(&r);
        return;
    }
    stream *s = &r.conn[0];
    stream_facts f;
    check_stream(&r, s, DEFAULT_FRAMES, &f);
    CHECK(f.has_end);
    size_t ie = find_alloc(s, 12345, 0), im = SIZE_MAX, ia = find_alloc(s, 2001, 0);
    for (size_t i = 0; i < s->nrec && im == SIZE_MAX; i++)
        if (s->recs[i].type == TM_REC_MODULE)
            im = i;
    CHECK(ie != SIZE_MAX && ie < im && im < ia);
    if (ie != SIZE_MAX && ia != SIZE_MAX) {
        const tm_wire_rec *st = f.stacks[s->recs[ie].u.alloc.stack_id];
        CHECK(st && st->u.stack.depth == 0);
        st = f.stacks[s->recs[ia].u.alloc.stack_id];
        CHECK(st && st->u.stack.depth > 0);
    }
    free(f.stacks);
    free_run(&r);
}

int main(void)
{
    alarm(170); /* never hang ctest */
    signal(SIGPIPE, SIG_IGN);
    test_basic();
    test_cxx();
    test_fork();
    test_exec();
    test_output();
    test_threads();
    test_fd_lost();
    test_fd_reuse();
    test_dlopen();
    test_early();
    return check_done("hook");
}
