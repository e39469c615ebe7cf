/* tracefile.c - writing and reading tmtop recordings (format: tracefile.h). */
#define _GNU_SOURCE
#include "tracefile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- writing ------------------------------------------------------------------ */

/* The buffer holds whole chunks; when the next record would not fit it goes
 * to the writer thread, and records go on into the other buffer.  The copy
 * into the page cache (about half of what recording costs) is thus not the
 * ingest thread's; it waits only when the disk falls a whole buffer behind.
 * 256 KiB: one write(2) per several thousand records. */
#define WBUF (256u * 1024)

struct tm_tracefile_writer {
    int fd, created;
    atomic_int failed;
    char *path;
    tm_err err; /* written by whoever writes, read after drain() */
    uint8_t *buf, *spare;
    size_t used;

    /* the writer thread; without one (pthread_create failed) writes are
     * synchronous */
    int have_thread, quit;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const uint8_t *job; /* a buffer handed to the thread, NULL: idle */
    size_t job_len;

    size_t chunk_at; /* offset in buf of the open 'D' chunk's header */
    int chunk_open;
    uint32_t chunk_pid;
    uint64_t chunks, records;
    uint32_t pids[TM_TRACEFILE_MAX_PROCS]; /* the processes recorded so far */
    size_t npids;
};

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static int write_all(tm_tracefile_writer *w, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = write(w->fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (!w->failed)
                tm_err_set(&w->err, TM_E_IO, "cannot write %s: %s", w->path,
                           r < 0 ? strerror(errno) : "short write");
            w->failed = 1;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void close_chunk(tm_tracefile_writer *w)
{
    if (!w->chunk_open)
        return;
    uint32_t len = (uint32_t)(w->used - w->chunk_at - TM_TRACEFILE_CHUNK_HEADER);
    put32(w->buf + w->chunk_at + 5, len);
    w->chunk_open = 0;
    w->chunks++;
}

static void *writer_main(void *arg)
{
    tm_tracefile_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->job && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->job)
            break;
        const uint8_t *p = w->job;
        size_t n = w->job_len;
        pthread_mutex_unlock(&w->mu);
        if (!w->failed)
            write_all(w, p, n);
        pthread_mutex_lock(&w->mu);
        w->job = NULL;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Waits until the thread has written what it was given. */
static void drain(tm_tracefile_writer *w)
{
    if (!w->have_thread)
        return;
    pthread_mutex_lock(&w->mu);
    while (w->job)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static int flush(tm_tracefile_writer *w)
{
    close_chunk(w);
    if (w->failed)
        return -1;
    if (!w->have_thread) {
        int rc = write_all(w, w->buf, w->used);
        w->used = 0;
        return rc;
    }
    drain(w); /* the spare buffer is free again */
    pthread_mutex_lock(&w->mu);
    w->job = w->buf;
    w->job_len = w->used;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    uint8_t *t = w->buf;
    w->buf = w->spare;
    w->spare = t;
    w->used = 0;
    return w->failed ? -1 : 0;
}

/* Appends a chunk header; the length is filled in by close_chunk. */
static void open_chunk(tm_tracefile_writer *w, uint8_t tag, uint32_t pid)
{
    uint8_t *p = w->buf + w->used;
    p[0] = tag;
    put32(p + 1, pid);
    put32(p + 5, 0);
    w->chunk_at = w->used;
    w->used += TM_TRACEFILE_CHUNK_HEADER;
    w->chunk_open = 1;
    w->chunk_pid = pid;
}

tm_tracefile_writer *tm_tracefile_create(const char *path, unsigned frames, uint32_t flags,
                                         const char *program, tm_err *err)
{
    tm_tracefile_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->buf = malloc(WBUF)) || !(w->spare = malloc(WBUF)) || !(w->path = strdup(path))) {
        if (w) {
            free(w->buf);
            free(w->spare);
        }
        free(w);
        tm_err_set(err, TM_E_NOMEM, "out of memory");
        return NULL;
    }
    /* As -o: created new, else an existing file is truncated, never through
     * a symlink (O_NOFOLLOW fails with ELOOP on one). */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0)
        w->created = 1;
    else if (errno == EEXIST)
        fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        tm_err_set(err, TM_E_IO, "cannot write %s: %s", path,
                   errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        free(w->buf);
        free(w->spare);
        free(w->path);
        free(w);
        return NULL;
    }
    w->fd = fd;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    /* Signals stay with the caller's threads (the live view wants them in its
     * UI thread). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    w->have_thread = pthread_create(&w->thread, NULL, writer_main, w) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    size_t plen = program ? strnlen(program, TM_TRACEFILE_MAX_PROGRAM) : 0;
    uint8_t *p = w->buf;
    uint16_t version = TM_TRACEFILE_VERSION, reserved = 0, pl = (uint16_t)plen;
    uint32_t fr = frames;
    memcpy(p, TM_TRACEFILE_MAGIC, 8);
    memcpy(p + 8, &version, 2);
    memcpy(p + 10, &reserved, 2);
    memcpy(p + 12, &fr, 4);
    memcpy(p + 16, &flags, 4);
    memcpy(p + 20, &pl, 2);
    if (plen)
        memcpy(p + 22, program, plen);
    w->used = TM_TRACEFILE_HEADER_LEN + plen;
    return w;
}

/* A string field of a record as a NUL-terminated copy (the encoders take C
 * strings; the decoded field borrows the stream and is not terminated). */
static const char *cstr(char *dst, const char *s, size_t n)
{
    if (n > 4096)
        n = 4096;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
    return dst;
}

/* Encodes rec at dst; returns its length, 0 for a type the encoders do not
 * know (an unknown record of a newer minor version: not recorded). */
static __attribute__((noinline)) size_t encode(uint8_t *dst, const tm_wire_rec *r)
{
    char s[4097];
    switch (r->type) {
    case TM_REC_PREAMBLE:
        return tm_wire_put_preamble(dst);
    case TM_REC_HELLO:
        return tm_wire_put_hello(dst, r->u.hello.pid, r->u.hello.ppid, r->u.hello.token,
                                 r->u.hello.monotonic_ns, r->u.hello.flags, r->u.hello.max_frames,
                                 cstr(s, r->u.hello.exe, r->u.hello.exe_len));
    case TM_REC_ALLOC:
        return tm_wire_put_alloc(dst, r->u.alloc.stack_id, r->u.alloc.kind, r->u.alloc.ptr,
                                 r->u.alloc.size);
    case TM_REC_FREE:
        return tm_wire_put_free(dst, r->u.free.ptr, r->u.free.kind);
    case TM_REC_REALLOC_FAILED:
        return tm_wire_put_realloc_failed(dst, r->u.realloc_failed.ptr);
    case TM_REC_REALLOC:
        return tm_wire_put_realloc(dst, r->u.realloc.stack_id, r->u.realloc.old_ptr,
                                   r->u.realloc.new_ptr, r->u.realloc.size);
    case TM_REC_STACK: {
        /* ips may be unaligned in the stream: copied through memcpy */
        uint64_t ips[TM_WIRE_MAX_DEPTH];
        unsigned depth =
            r->u.stack.depth > TM_WIRE_MAX_DEPTH ? TM_WIRE_MAX_DEPTH : r->u.stack.depth;
        for (unsigned i = 0; i < depth; i++)
            ips[i] = tm_wire_stack_ip(r, i);
        return tm_wire_put_stack(dst, r->u.stack.stack_id, r->u.stack.flags, ips, (uint16_t)depth);
    }
    case TM_REC_MODULE: {
        tm_module m;
        memset(&m, 0, sizeof m);
        m.id = r->u.module.id;
        m.load_bias = r->u.module.load_bias;
        m.build_id_len = r->u.module.build_id_len;
        if (m.build_id_len > TM_BUILD_ID_MAX)
            m.build_id_len = TM_BUILD_ID_MAX;
        memcpy(m.build_id, r->u.module.build_id, m.build_id_len);
        m.nseg = r->u.module.nseg > TM_MODULE_MAX_SEGS ? TM_MODULE_MAX_SEGS : r->u.module.nseg;
        for (unsigned i = 0; i < m.nseg; i++)
            tm_wire_module_seg(r, i, &m.seg[i]);
        m.path = cstr(s, r->u.module.path, r->u.module.path_len);
        return tm_wire_put_module(dst, &m);
    }
    case TM_REC_MODULE_GONE:
        return tm_wire_put_module_gone(dst, r->u.module_gone.id);
    case TM_REC_TICK:
        return tm_wire_put_tick(dst, r->u.tick.monotonic_ns, r->u.tick.rss_bytes);
    case TM_REC_FORK:
        return tm_wire_put_fork(dst, r->u.fork.child_pid);
    case TM_REC_EXEC:
        return tm_wire_put_exec(dst, cstr(s, r->u.exec.path, r->u.exec.path_len));
    case TM_REC_END:
        return tm_wire_put_end(dst, r->u.end.reason, r->u.end.unknown_frees, r->u.end.nested_calls,
                               r->u.end.lost_events);
    default:
        return 0;
    }
}

int tm_tracefile_record(tm_tracefile_writer *w, uint32_t pid, const tm_wire_rec *rec)
{
    if (w->failed)
        return -1;
    /* Room for a chunk header and the largest record. */
    if (w->used + TM_TRACEFILE_CHUNK_HEADER + TM_WIRE_MAX_RECORD > WBUF && flush(w) < 0)
        return -1;
    if (!w->chunk_open || w->chunk_pid != pid) {
        /* As many processes as tmtop shows and a reader accepts; the
         * streams of any more are left out, as tmtop leaves them out. */
        size_t i = 0;
        while (i < w->npids && w->pids[i] != pid)
            i++;
        if (i == w->npids) {
            if (w->npids == TM_TRACEFILE_MAX_PROCS)
                return 0;
            w->pids[w->npids++] = pid;
        }
        close_chunk(w);
        open_chunk(w, TM_TRACEFILE_DATA, pid);
    }
    /* ALLOC and FREE are nearly every record: encoded here, without
     * encode()'s large stack frame */
    uint8_t *dst = w->buf + w->used;
    size_t n = rec->type == TM_REC_ALLOC
                   ? tm_wire_put_alloc(dst, rec->u.alloc.stack_id, rec->u.alloc.kind,
                                       rec->u.alloc.ptr, rec->u.alloc.size)
               : rec->type == TM_REC_FREE ? tm_wire_put_free(dst, rec->u.free.ptr, rec->u.free.kind)
                                          : encode(dst, rec);
    if (n) {
        w->used += n;
        w->records++;
    } else if (w->used == w->chunk_at + TM_TRACEFILE_CHUNK_HEADER) {
        w->used = w->chunk_at; /* no empty chunks */
        w->chunk_open = 0;
    }
    return 0;
}

static void writer_free(tm_tracefile_writer *w, int remove)
{
    if (w->have_thread) {
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL); /* after the buffer it was writing */
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    if (w->fd >= 0)
        close(w->fd);
    if (remove && w->created)
        unlink(w->path);
    free(w->buf);
    free(w->spare);
    free(w->path);
    free(w);
}

int tm_tracefile_finish(tm_tracefile_writer *w, uint32_t target_pid, int exited, int wstatus,
                        tm_err *err)
{
    close_chunk(w);
    if (w->used + 2 * TM_TRACEFILE_CHUNK_HEADER + 21 > WBUF)
        flush(w);
    uint8_t *p = w->buf + w->used;
    p[0] = TM_TRACEFILE_EXIT;
    put32(p + 1, target_pid);
    put32(p + 5, 5);
    p[9] = exited ? 1 : 0;
    memcpy(p + 10, &wstatus, 4);
    w->used += TM_TRACEFILE_CHUNK_HEADER + 5;
    w->chunks++;
    p = w->buf + w->used;
    p[0] = TM_TRACEFILE_END;
    put32(p + 1, 0);
    put32(p + 5, 16);
    memcpy(p + 9, &w->chunks, 8);
    memcpy(p + 17, &w->records, 8);
    w->used += TM_TRACEFILE_CHUNK_HEADER + 16;
    flush(w);
    drain(w);
    if (!w->failed && close(w->fd) != 0) {
        tm_err_set(&w->err, TM_E_IO, "cannot write %s: %s", w->path, strerror(errno));
        w->failed = 1;
    }
    w->fd = -1;
    int failed = w->failed;
    if (failed && err)
        *err = w->err;
    writer_free(w, failed);
    return failed ? -1 : 0;
}

void tm_tracefile_discard(tm_tracefile_writer *w)
{
    if (w)
        writer_free(w, 1);
}

/* ---- reading ------------------------------------------------------------------ */

typedef struct source {
    int fd; /* -1: memory */
    const uint8_t *mem;
    size_t memlen, mempos;
    uint64_t offset; /* file offset of the next byte */
} source;

/* Reads up to n bytes; returns how many (fewer only at the end), or -1 with
 * err set on a read error. */
static ssize_t src_read(source *s, uint8_t *dst, size_t n, tm_err *err)
{
    size_t got = 0;
    if (s->fd < 0) {
        got = s->memlen - s->mempos < n ? s->memlen - s->mempos : n;
        if (got) /* an empty input may come as NULL */
            memcpy(dst, s->mem + s->mempos, got);
        s->mempos += got;
    } else {
        while (got < n) {
            ssize_t r = read(s->fd, dst + got, n - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return tm_err_set(err, TM_E_IO, "read error at byte %llu: %s",
                                  (unsigned long long)(s->offset + got), strerror(errno));
            if (r == 0)
                break;
            got += (size_t)r;
        }
    }
    s->offset += got;
    return (ssize_t)got;
}

typedef struct proc_state {
    uint32_t pid;
    tm_wire_decoder dec;
    int have_hello;
} proc_state;

typedef struct reader {
    source src;
    tm_tracefile_info *info;
    tm_tracefile_fn fn;
    void *ctx;
    proc_state procs[TM_TRACEFILE_MAX_PROCS];
    size_t nprocs;
    uint8_t *chunk; /* grown to the largest chunk so far */
    size_t chunk_cap;
} reader;

static int fail_at(tm_err *err, int code, uint64_t at, const char *what)
{
    return tm_err_set(err, code, "%s at byte %llu", what, (unsigned long long)at);
}

static proc_state *proc_for(reader *rd, uint32_t pid)
{
    for (size_t i = 0; i < rd->nprocs; i++)
        if (rd->procs[i].pid == pid)
            return &rd->procs[i];
    if (rd->nprocs == TM_TRACEFILE_MAX_PROCS)
        return NULL;
    proc_state *p = &rd->procs[rd->nprocs++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    tm_wire_decoder_init(&p->dec);
    return p;
}

/* Decodes the records of one 'D' chunk whose payload starts at file offset
 * base. */
static int data_chunk(reader *rd, uint32_t pid, const uint8_t *buf, uint32_t len, uint64_t base,
                      tm_err *err)
{
    char what[300];
    proc_state *p = proc_for(rd, pid);
    if (!p) {
        snprintf(what, sizeof what, "more than %d processes (pid %u)", TM_TRACEFILE_MAX_PROCS, pid);
        return fail_at(err, TM_E_FORMAT, base - TM_TRACEFILE_CHUNK_HEADER, what);
    }
    size_t off = 0;
    while (off < len) {
        tm_wire_rec rec;
        size_t used = 0;
        tm_err werr = {0};
        int had_preamble = p->dec.have_preamble;
        int rc = tm_wire_decode(&p->dec, buf + off, len - off, &used, &rec, &werr);
        uint64_t at = base + off;
        if (rc == 0) {
            snprintf(what, sizeof what, "record of pid %u cut at the end of its chunk", pid);
            return fail_at(err, TM_E_FORMAT, at, what);
        }
        if (rc < 0) {
            if (!had_preamble)
                snprintf(what, sizeof what, "stream of pid %u: %s", pid, werr.msg);
            else if (buf[off + 1] == 255 && strstr(werr.msg, "record length"))
                snprintf(what, sizeof what, "impossible record length in the stream of pid %u",
                         pid);
            else
                snprintf(what, sizeof what, "corrupt %s record in the stream of pid %u",
                         tm_wire_type_name(buf[off]), pid);
            return fail_at(err, werr.code == TM_E_VERSION ? TM_E_VERSION : TM_E_FORMAT, at, what);
        }
        if (had_preamble && !p->have_hello) {
            if (rec.type != TM_REC_HELLO || rec.u.hello.pid != pid) {
                snprintf(what, sizeof what, "the stream of pid %u does not begin with its HELLO",
                         pid);
                return fail_at(err, TM_E_FORMAT, at, what);
            }
            p->have_hello = 1;
        }
        if (rd->info && !rd->info->target_pid && rec.type == TM_REC_HELLO)
            rd->info->target_pid = pid;
        /* a record type of a newer minor version: counted, not delivered */
        int known = strcmp(tm_wire_type_name(rec.type), "unknown") != 0;
        if (rd->fn && known) {
            tm_err cerr = {0};
            if (rd->fn(rd->ctx, pid, &rec, &cerr) != 0)
                return fail_at(err, cerr.code ? cerr.code : TM_E_FORMAT, at,
                               cerr.msg[0] ? cerr.msg : "rejected record");
        }
        if (rd->info)
            rd->info->records++;
        off += used;
    }
    return 0;
}

static int read_all(reader *rd, tm_err *err)
{
    source *s = &rd->src;
    tm_tracefile_info *info = rd->info;
    uint8_t h[TM_TRACEFILE_HEADER_LEN];
    ssize_t n = src_read(s, h, sizeof h, err);
    if (n < 0)
        return -1;
    if (n == 0)
        return fail_at(err, TM_E_FORMAT, 0, "empty file");
    if (memcmp(h, TM_TRACEFILE_MAGIC, (size_t)n < 8 ? (size_t)n : 8) != 0)
        return fail_at(err, TM_E_FORMAT, 0, "not a tmtop recording (bad magic)");
    if ((size_t)n < sizeof h)
        return fail_at(err, TM_E_FORMAT, (uint64_t)n, "truncated header");
    uint16_t version, plen;
    memcpy(&version, h + 8, 2);
    memcpy(&plen, h + 20, 2);
    if (version != TM_TRACEFILE_VERSION) {
        char what[128];
        snprintf(what, sizeof what, "recording version %u is not supported (this tmtop reads %u)",
                 version, TM_TRACEFILE_VERSION);
        return fail_at(err, TM_E_VERSION, 8, what);
    }
    uint32_t frames, flags;
    memcpy(&frames, h + 12, 4);
    memcpy(&flags, h + 16, 4);
    if (frames < 1 || frames > 1024)
        return fail_at(err, TM_E_FORMAT, 12, "impossible stack depth in the header");
    if (plen > TM_TRACEFILE_MAX_PROGRAM)
        return fail_at(err, TM_E_FORMAT, 20, "impossible program name length");
    char program[TM_TRACEFILE_MAX_PROGRAM + 1];
    n = src_read(s, (uint8_t *)program, plen, err);
    if (n < 0)
        return -1;
    if (n < plen)
        return fail_at(err, TM_E_FORMAT, s->offset, "truncated header");
    program[plen] = '\0';
    if (info) {
        memset(info, 0, sizeof *info);
        info->version = version;
        info->frames = frames;
        info->flags = flags;
        memcpy(info->program, program, (size_t)plen + 1);
    }

    uint64_t chunks = 0, records = 0;
    for (;;) {
        uint64_t at = s->offset;
        uint8_t ch[TM_TRACEFILE_CHUNK_HEADER];
        n = src_read(s, ch, sizeof ch, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return fail_at(err, TM_E_FORMAT, at, "truncated: the end-of-recording mark is missing");
        if ((size_t)n < sizeof ch)
            return fail_at(err, TM_E_FORMAT, at, "truncated chunk header");
        uint32_t pid, len;
        memcpy(&pid, ch + 1, 4);
        memcpy(&len, ch + 5, 4);
        uint8_t tag = ch[0];
        if (tag != TM_TRACEFILE_DATA && tag != TM_TRACEFILE_EXIT && tag != TM_TRACEFILE_END)
            return fail_at(err, TM_E_FORMAT, at, "unknown chunk");
        if (len == 0 || len > TM_TRACEFILE_MAX_CHUNK || (tag == TM_TRACEFILE_EXIT && len != 5) ||
            (tag == TM_TRACEFILE_END && len != 16))
            return fail_at(err, TM_E_FORMAT, at + 5, "impossible chunk length");
        if (tag == TM_TRACEFILE_DATA && pid == 0)
            return fail_at(err, TM_E_FORMAT, at + 1, "data chunk of pid 0");
        if (len > rd->chunk_cap) {
            uint8_t *c = realloc(rd->chunk, len);
            if (!c)
                return tm_err_set(err, TM_E_NOMEM, "out of memory");
            rd->chunk = c;
            rd->chunk_cap = len;
        }
        n = src_read(s, rd->chunk, len, err);
        if (n < 0)
            return -1;
        if ((size_t)n < len)
            return fail_at(err, TM_E_FORMAT, at, "truncated: chunk cut in the middle");
        uint64_t base = at + TM_TRACEFILE_CHUNK_HEADER;
        if (tag == TM_TRACEFILE_DATA) {
            uint64_t before = info ? info->records : 0;
            if (data_chunk(rd, pid, rd->chunk, len, base, err) < 0)
                return -1;
            chunks++;
            records += info ? info->records - before : 0;
            continue;
        }
        if (tag == TM_TRACEFILE_EXIT) {
            if (info && info->have_exit)
                return fail_at(err, TM_E_FORMAT, at, "second exit chunk");
            if (rd->chunk[0] > 1)
                return fail_at(err, TM_E_FORMAT, base, "corrupt exit chunk");
            if (info) {
                info->have_exit = 1;
                info->exited = rd->chunk[0];
                memcpy(&info->wstatus, rd->chunk + 1, 4);
                info->target_pid = pid;
            }
            chunks++;
            continue;
        }
        /* the end mark: its counts, then nothing */
        uint64_t want_chunks, want_records;
        memcpy(&want_chunks, rd->chunk, 8);
        memcpy(&want_records, rd->chunk + 8, 8);
        if (pid != 0 || want_chunks != chunks || (info && want_records != records))
            return fail_at(err, TM_E_FORMAT, at, "end mark does not match the chunks before it");
        uint8_t extra;
        n = src_read(s, &extra, 1, err);
        if (n < 0)
            return -1;
        if (n)
            return fail_at(err, TM_E_FORMAT, s->offset - 1, "data after the end of the recording");
        if (info) {
            info->chunks = chunks;
            info->bytes = s->offset;
        }
        return 0;
    }
}

static int read_common(reader *rd, tm_tracefile_info *info, tm_err *err)
{
    tm_tracefile_info local;
    /* The record count of the end mark is checked through info. */
    rd->info = info ? info : &local;
    int rc = read_all(rd, err);
    free(rd->chunk);
    return rc;
}

/* Reads a recording from src (a file or memory). */
static int read_source(source src, tm_tracefile_info *info, tm_tracefile_fn fn, void *ctx,
                       tm_err *err)
{
    reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return tm_err_set(err, TM_E_NOMEM, "out of memory");
    rd->src = src;
    rd->fn = fn;
    rd->ctx = ctx;
    int rc = read_common(rd, info, err);
    free(rd);
    return rc;
}

int tm_tracefile_read_fd(int fd, tm_tracefile_info *info, tm_tracefile_fn fn, void *ctx,
                         tm_err *err)
{
    return read_source((source){.fd = fd}, info, fn, ctx, err);
}

int tm_tracefile_read_mem(const uint8_t *buf, size_t len, tm_tracefile_info *info,
                          tm_tracefile_fn fn, void *ctx, tm_err *err)
{
    return read_source((source){.fd = -1, .mem = buf, .memlen = len}, info, fn, ctx, err);
}
