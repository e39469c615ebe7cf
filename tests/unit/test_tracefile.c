/* test_tracefile.c - recordings (src/wire/tracefile.h): a round trip through
 * the writer and the reader, every class of corruption with the offset the
 * reader names, and, given a real recording as argv[1], every prefix of it:
 * only the whole file loads, every shorter one fails with a one-line
 * "... at byte N" and nothing crashes (records go into a real store). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store.h"
#include "tracefile.h"

static char tmpdir[] = "/tmp/test_tracefile.XXXXXX";

/* ---- building streams and files ---------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static uint8_t *room(bytes *b, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 4096;
        b->p = realloc(b->p, b->cap);
    }
    return b->p + b->n;
}

static void add(bytes *b, const void *p, size_t n)
{
    memcpy(room(b, n), p, n);
    b->n += n;
}

/* A stream of process pid (parent ppid) using every record type. */
static void stream(bytes *b, uint32_t pid, uint32_t ppid, int end)
{
    uint8_t *r = room(b, 1 << 16);
    size_t n = 0;
    n += tm_wire_put_preamble(r + n);
    n += tm_wire_put_hello(r + n, pid, ppid, 0x77, 5, 0, 64, "/bin/prog");
    tm_module m;
    memset(&m, 0, sizeof m);
    m.id = 0;
    m.load_bias = 0x400000;
    m.path = "/bin/prog";
    m.build_id_len = 4;
    memcpy(m.build_id, "\x01\x02\x03\x04", 4);
    m.nseg = 1;
    m.seg[0] = (tm_segment){0x1000, 0x10000, 5};
    n += tm_wire_put_module(r + n, &m);
    uint64_t ips[3] = {0x401010, 0x402020, 0x403030};
    n += tm_wire_put_stack(r + n, 1, 0, ips, 3);
    n += tm_wire_put_stack(r + n, 2, TM_STACK_TRUNCATED, ips + 1, 2);
    n += tm_wire_put_alloc(r + n, 1, TM_ALLOC_MALLOC, 0x10000, 100);
    n += tm_wire_put_alloc(r + n, 2, TM_ALLOC_NEW, 0x20000, 7);
    n += tm_wire_put_free(r + n, 0x20000, TM_FREE_DELETE);
    n += tm_wire_put_free(r + n, 0x10000, TM_FREE_REALLOC_PRE);
    n += tm_wire_put_realloc(r + n, 2, 0x10000, 0x30000, 300);
    n += tm_wire_put_free(r + n, 0x30000, TM_FREE_REALLOC_PRE);
    n += tm_wire_put_realloc_failed(r + n, 0x30000);
    n += tm_wire_put_tick(r + n, 1000, 4096);
    n += tm_wire_put_fork(r + n, pid + 1);
    n += tm_wire_put_module_gone(r + n, 0);
    n += tm_wire_put_exec(r + n, "/bin/other");
    if (end)
        n += tm_wire_put_end(r + n, TM_END_EXIT, 1, 2, 3);
    b->n += n;
}

/* Feeds every record of a wire byte stream to the writer. */
static void feed(tm_tracefile_writer *w, uint32_t pid, const bytes *b, size_t from, size_t to)
{
    tm_wire_decoder d;
    tm_wire_decoder_init(&d);
    size_t off = 0;
    while (off < b->n) {
        tm_wire_rec rec;
        size_t used;
        tm_err err = {0};
        if (tm_wire_decode(&d, b->p + off, b->n - off, &used, &rec, &err) != 1)
            break;
        if (off >= from && off < to)
            CHECK(tm_tracefile_record(w, pid, &rec) == 0);
        off += used;
    }
}

static char *path_in_tmp(const char *name)
{
    static char buf[4][256];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static bytes slurp(const char *path)
{
    bytes b = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return b;
    uint8_t buf[65536];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        add(&b, buf, r);
    fclose(f);
    return b;
}

/* ---- reading back -------------------------------------------------------------- */

typedef struct seen {
    unsigned records, hellos, ends, by_type[256];
    uint32_t pids[8];
    unsigned npids;
    tm_tracefile_writer *copy; /* every record written again */
    tm_store *stores[TM_TRACEFILE_MAX_PROCS];
    uint32_t store_pid[TM_TRACEFILE_MAX_PROCS];
    size_t nstores;
    int apply;
} seen;

static int on_rec(void *ctx, uint32_t pid, const tm_wire_rec *rec, tm_err *err)
{
    seen *s = ctx;
    s->records++;
    s->by_type[rec->type]++;
    if (rec->type == TM_REC_HELLO) {
        CHECK_U64(rec->u.hello.pid, pid);
        if (s->npids < 8)
            s->pids[s->npids++] = pid;
    }
    if (s->copy)
        tm_tracefile_record(s->copy, pid, rec);
    if (s->apply) {
        tm_store *st = NULL;
        for (size_t i = 0; i < s->nstores; i++)
            if (s->store_pid[i] == pid)
                st = s->stores[i];
        if (!st) {
            st = s->stores[s->nstores] = tm_store_new();
            s->store_pid[s->nstores++] = pid;
        }
        tm_err e = {0};
        if (tm_store_apply(st, rec, &e) != 0)
            return tm_err_set(err, TM_E_FORMAT, "inconsistent: %s", e.msg);
    }
    return 0;
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->nstores; i++)
        tm_store_free(s->stores[i]);
    s->nstores = 0;
}

/* ---- round trip ------------------------------------------------------------------ */

static void test_round_trip(void)
{
    bytes a = {0}, b = {0};
    stream(&a, 100, 1, 1);
    stream(&b, 101, 100, 0); /* a child killed before its END */
    tm_err err = {0};
    const char *p1 = path_in_tmp("one.rec"), *p2 = path_in_tmp("two.rec");
    tm_tracefile_writer *w =
        tm_tracefile_create(p1, 64, TM_TRACEFILE_FOLLOW_FORK, "./prog --flag", &err);
    CHECK(w != NULL);
    if (!w)
        return;
    /* interleaved as streams arrive: a few records of one, then the other */
    feed(w, 100, &a, 0, 60);
    feed(w, 101, &b, 0, 200);
    feed(w, 100, &a, 60, (size_t)-1);
    feed(w, 101, &b, 200, (size_t)-1);
    CHECK(tm_tracefile_finish(w, 100, 1, 3 << 8, &err) == 0);
    struct stat st;
    CHECK(stat(p1, &st) == 0 && (st.st_mode & 0777) == (0644 & ~(mode_t)022));

    seen s;
    memset(&s, 0, sizeof s);
    s.copy = tm_tracefile_create(p2, 64, TM_TRACEFILE_FOLLOW_FORK, "./prog --flag", &err);
    s.apply = 1;
    tm_tracefile_info info;
    int fd = open(p1, O_RDONLY);
    CHECK(tm_tracefile_read_fd(fd, &info, on_rec, &s, &err) == 0);
    close(fd);
    CHECK_STR(err.msg, "");
    CHECK_U64(info.version, TM_TRACEFILE_VERSION);
    CHECK_U64(info.frames, 64);
    CHECK_U64(info.flags, TM_TRACEFILE_FOLLOW_FORK);
    CHECK_STR(info.program, "./prog --flag");
    CHECK(info.have_exit && info.exited && info.wstatus == 3 << 8);
    CHECK_U64(info.target_pid, 100);
    CHECK_U64(s.npids, 2);
    CHECK_U64(s.pids[0], 100);
    CHECK_U64(s.pids[1], 101);
    CHECK_U64(s.by_type[TM_REC_PREAMBLE], 2);
    CHECK_U64(s.by_type[TM_REC_END], 1);
    CHECK_U64(s.by_type[TM_REC_STACK], 4);
    CHECK_U64(s.by_type[TM_REC_MODULE], 2);
    CHECK_U64(s.by_type[TM_REC_EXEC], 2);
    CHECK_U64(s.records, info.records);
    CHECK_U64(info.chunks, 5); /* four data chunks and the exit */
    CHECK_U64(info.bytes, (uint64_t)st.st_size);
    /* the stores: the END-less child is incomplete */
    CHECK_U64(s.nstores, 2);
    if (s.nstores == 2) {
        tm_totals t0, t1;
        tm_store_totals(s.stores[0], &t0);
        tm_store_totals(s.stores[1], &t1);
        CHECK(t0.ended && !t1.ended);
        CHECK_U64(t1.ppid, 100);
        CHECK_U64(t0.current, 300); /* the 100 B block moved to 300 B; the failed realloc kept it */
    }
    seen_free(&s);
    /* written again from what was read: the same bytes */
    CHECK(tm_tracefile_finish(s.copy, 100, 1, 3 << 8, &err) == 0);
    bytes f1 = slurp(p1), f2 = slurp(p2);
    CHECK(f1.n > 0 && f1.n == f2.n && memcmp(f1.p, f2.p, f1.n) == 0);

    /* memory reader: same answers */
    memset(&s, 0, sizeof s);
    tm_tracefile_info info2;
    CHECK(tm_tracefile_read_mem(f1.p, f1.n, &info2, on_rec, &s, &err) == 0);
    CHECK_U64(info2.records, info.records);

    /* a callback's refusal stops the reader with its message and the offset */
    tm_err e2 = {0};
    CHECK(tm_tracefile_read_mem(f1.p, f1.n, NULL, NULL, NULL, &e2) == 0);
    free(a.p);
    free(b.p);
    free(f1.p);
    free(f2.p);
}

static void test_create(void)
{
    tm_err err = {0};
    /* never through a symlink */
    const char *target = path_in_tmp("target"), *link = path_in_tmp("link");
    FILE *f = fopen(target, "w");
    fputs("keep", f);
    fclose(f);
    CHECK(symlink(target, link) == 0);
    CHECK(tm_tracefile_create(link, 64, 0, "p", &err) == NULL);
    CHECK(strstr(err.msg, "symbolic link") != NULL);
    bytes t = slurp(target);
    CHECK(t.n == 4);
    free(t.p);
    /* a directory */
    err = (tm_err){0};
    CHECK(tm_tracefile_create(tmpdir, 64, 0, "p", &err) == NULL);
    CHECK(strstr(err.msg, "cannot write") != NULL);
    /* discard removes what it created */
    const char *gone = path_in_tmp("discarded");
    tm_tracefile_writer *w = tm_tracefile_create(gone, 64, 0, "p", &err);
    CHECK(w != NULL);
    tm_tracefile_discard(w);
    CHECK(access(gone, F_OK) != 0);
}

/* More processes than tmtop shows: the writer leaves the extra ones out, so
 * that what it writes always loads. */
static void test_many_procs(void)
{
    tm_err err = {0};
    const char *p = path_in_tmp("many.rec");
    tm_tracefile_writer *w = tm_tracefile_create(p, 64, TM_TRACEFILE_FOLLOW_FORK, "p", &err);
    CHECK(w != NULL);
    if (!w)
        return;
    for (uint32_t pid = 1; pid <= TM_TRACEFILE_MAX_PROCS + 3; pid++) {
        bytes one = {0};
        stream(&one, pid, 1, 1);
        feed(w, pid, &one, 0, (size_t)-1);
        free(one.p);
    }
    CHECK(tm_tracefile_finish(w, 1, 1, 0, &err) == 0);
    seen s;
    memset(&s, 0, sizeof s);
    int fd = open(p, O_RDONLY);
    CHECK(tm_tracefile_read_fd(fd, NULL, on_rec, &s, &err) == 0);
    close(fd);
    CHECK_U64(s.by_type[TM_REC_HELLO], TM_TRACEFILE_MAX_PROCS);
}

/* ---- corruption ------------------------------------------------------------------ */

static void header(bytes *b, uint16_t version, const char *program)
{
    uint16_t z = 0, pl = (uint16_t)strlen(program);
    uint32_t frames = 64, flags = 0;
    add(b, TM_TRACEFILE_MAGIC, 8);
    add(b, &version, 2);
    add(b, &z, 2);
    add(b, &frames, 4);
    add(b, &flags, 4);
    add(b, &pl, 2);
    add(b, program, pl);
}

static void chunk(bytes *b, uint8_t tag, uint32_t pid, const void *payload, uint32_t len)
{
    add(b, &tag, 1);
    add(b, &pid, 4);
    add(b, &len, 4);
    add(b, payload, len);
}

static void end_mark(bytes *b, uint64_t chunks, uint64_t records)
{
    uint8_t p[16];
    memcpy(p, &chunks, 8);
    memcpy(p + 8, &records, 8);
    chunk(b, TM_TRACEFILE_END, 0, p, 16);
}

/* The reader must fail on b with a message containing what and "at byte N". */
static void expect_error(const char *name, const bytes *b, const char *what, uint64_t at)
{
    tm_err err = {0};
    seen s;
    memset(&s, 0, sizeof s);
    s.apply = 1;
    int rc = tm_tracefile_read_mem(b->p, b->n, NULL, on_rec, &s, &err);
    seen_free(&s);
    char want[64];
    snprintf(want, sizeof want, " at byte %llu", (unsigned long long)at);
    int ok = rc == -1 && strstr(err.msg, what) && strstr(err.msg, want) && !strchr(err.msg, '\n');
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  %s: rc %d, msg \"%s\"; wanted \"%s\"%s\n", name, rc, err.msg, what,
                want);
}

static void test_corruption(void)
{
    bytes good = {0};
    stream(&good, 100, 1, 1);
    const size_t H = TM_TRACEFILE_HEADER_LEN + 4; /* program "prog" */
    bytes b = {0};

    b.n = 0;
    expect_error("empty", &b, "empty file", 0);

    b.n = 0;
    add(&b, "TMTOPXXX", 8);
    expect_error("magic", &b, "bad magic", 0);

    b.n = 0;
    add(&b, "TMTO", 4);
    expect_error("short header", &b, "truncated header", 4);

    b.n = 0;
    header(&b, 2, "prog");
    expect_error("version", &b, "version 2 is not supported", 8);

    b.n = 0;
    header(&b, 1, "prog");
    b.n -= 2;
    expect_error("header cut", &b, "truncated header", H - 2);

    b.n = 0;
    header(&b, 1, "prog");
    expect_error("no chunks", &b, "end-of-recording mark is missing", H);

    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, 'Q', 100, "x", 1);
    expect_error("unknown chunk", &b, "unknown chunk", H);

    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_DATA, 100, good.p, 0);
    expect_error("zero length", &b, "impossible chunk length", H + 5);

    b.n = 0;
    header(&b, 1, "prog");
    uint8_t big[9] = {TM_TRACEFILE_DATA, 100, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
    add(&b, big, 9);
    expect_error("huge length", &b, "impossible chunk length", H + 5);

    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_DATA, 100, good.p, (uint32_t)good.n);
    b.n -= 10;
    expect_error("chunk cut", &b, "chunk cut in the middle", H);

    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_DATA, 100, good.p, (uint32_t)good.n - 3); /* END cut */
    expect_error("record cut", &b, "cut at the end of its chunk", H + 9 + good.n - 30);

    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_DATA, 0, good.p, (uint32_t)good.n);
    expect_error("pid 0", &b, "pid 0", H + 1);

    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_DATA, 100, "XXXXXXXXXX", 10);
    expect_error("stream magic", &b, "bad magic", H + 9);

    /* HELLO naming another pid */
    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_DATA, 200, good.p, (uint32_t)good.n);
    expect_error("hello pid", &b, "does not begin with its HELLO", H + 9 + 8);

    /* a corrupt record: an ALLOC of kind 99 (the first ALLOC of the stream) */
    {
        bytes c = {0};
        add(&c, good.p, good.n);
        size_t off = 8;
        while (c.p[off] != TM_REC_ALLOC)
            off +=
                2 + (c.p[off + 1] == 255 ? 4 : 0) +
                (c.p[off + 1] == 255 ? (size_t)(c.p[off + 2] | c.p[off + 3] << 8) : c.p[off + 1]);
        c.p[off + 6] = 99;
        b.n = 0;
        header(&b, 1, "prog");
        chunk(&b, TM_TRACEFILE_DATA, 100, c.p, (uint32_t)c.n);
        expect_error("bad record", &b, "corrupt ALLOC record", H + 9 + off);
        /* an ALLOC naming an undefined stack: the store refuses it */
        c.p[off + 6] = 0;
        uint32_t bad_stack = 999;
        memcpy(c.p + off + 2, &bad_stack, 4);
        b.n = 0;
        header(&b, 1, "prog");
        chunk(&b, TM_TRACEFILE_DATA, 100, c.p, (uint32_t)c.n);
        expect_error("inconsistent", &b, "inconsistent", H + 9 + off);
        /* a long-form record length that is impossible */
        memcpy(c.p, good.p, good.n);
        c.p[off + 1] = 255;
        uint32_t huge = 0x7fffffff;
        memcpy(c.p + off + 2, &huge, 4);
        b.n = 0;
        header(&b, 1, "prog");
        chunk(&b, TM_TRACEFILE_DATA, 100, c.p, (uint32_t)c.n);
        expect_error("record length", &b, "impossible record length", H + 9 + off);
        free(c.p);
    }

    /* end mark counts */
    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_DATA, 100, good.p, (uint32_t)good.n);
    size_t at_end = b.n;
    end_mark(&b, 2, 17);
    expect_error("end counts", &b, "end mark does not match", at_end);

    /* the right counts load; one byte more does not */
    b.n = at_end;
    seen s;
    memset(&s, 0, sizeof s);
    tm_err err = {0};
    tm_tracefile_read_mem(good.p, good.n, NULL, NULL, NULL, &err); /* not a recording */
    CHECK(err.code == TM_E_FORMAT);
    tm_wire_decoder d;
    tm_wire_decoder_init(&d);
    unsigned nrec = 0;
    for (size_t off = 0; off < good.n;) {
        tm_wire_rec r;
        size_t used;
        tm_wire_decode(&d, good.p + off, good.n - off, &used, &r, &err);
        off += used;
        nrec++;
    }
    end_mark(&b, 1, nrec);
    err = (tm_err){0};
    CHECK(tm_tracefile_read_mem(b.p, b.n, NULL, on_rec, &s, &err) == 0);
    CHECK_STR(err.msg, "");
    add(&b, "!", 1);
    expect_error("after end", &b, "data after the end", b.n - 1);

    /* two exits */
    uint8_t ex[5] = {1, 0, 0, 0, 0};
    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_EXIT, 100, ex, 5);
    size_t second = b.n;
    chunk(&b, TM_TRACEFILE_EXIT, 100, ex, 5);
    expect_error("two exits", &b, "second exit chunk", second);
    b.n = 0;
    header(&b, 1, "prog");
    chunk(&b, TM_TRACEFILE_EXIT, 100, ex, 4);
    expect_error("exit length", &b, "impossible chunk length", H + 5);

    /* more processes than tmtop traces */
    b.n = 0;
    header(&b, 1, "prog");
    size_t at65 = 0;
    for (uint32_t pid = 1; pid <= TM_TRACEFILE_MAX_PROCS + 1; pid++) {
        bytes one = {0};
        stream(&one, pid, 0, 1);
        if (pid == TM_TRACEFILE_MAX_PROCS + 1)
            at65 = b.n;
        chunk(&b, TM_TRACEFILE_DATA, pid, one.p, (uint32_t)one.n);
        free(one.p);
    }
    expect_error("procs", &b, "more than 64 processes", at65);
    free(b.p);
    free(good.p);
}

/* ---- every prefix of a real recording ----------------------------------------------- */

static void test_prefixes(const char *path)
{
    bytes f = slurp(path);
    CHECK(f.n > 64);
    if (f.n <= 64)
        return;
    unsigned loaded = 0, failed = 0;
    for (size_t n = 0; n <= f.n; n++) {
        /* a fresh heap copy of exactly n bytes: ASan sees any overread */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, f.p, n);
        seen s;
        memset(&s, 0, sizeof s);
        s.apply = 1;
        tm_err err = {0};
        int rc = tm_tracefile_read_mem(copy, n, NULL, on_rec, &s, &err);
        seen_free(&s);
        free(copy);
        if (rc == 0) {
            loaded++;
            CHECK_U64(n, f.n); /* only the whole file */
        } else {
            failed++;
            int ok = strstr(err.msg, " at byte ") && !strchr(err.msg, '\n');
            CHECK(ok);
            if (!ok)
                fprintf(stderr, "  prefix %zu: %s\n", n, err.msg);
        }
    }
    CHECK_U64(loaded, 1);
    CHECK_U64(failed, f.n);

    /* The same inside the records: the first data chunk cut after every
     * byte, with its length saying so (the records get decoded and applied,
     * up to the cut, which must be reported as such). */
    size_t h = TM_TRACEFILE_HEADER_LEN + (size_t)(f.p[20] | f.p[21] << 8);
    uint32_t pid, len;
    memcpy(&pid, f.p + h + 1, 4);
    memcpy(&len, f.p + h + 5, 4);
    CHECK(f.p[h] == TM_TRACEFILE_DATA && h + 9 + len <= f.n);
    unsigned cut_ok = 0;
    for (uint32_t n = 1; f.p[h] == TM_TRACEFILE_DATA && h + 9 + len <= f.n && n < len; n++) {
        bytes b = {0};
        add(&b, f.p, h);
        chunk(&b, TM_TRACEFILE_DATA, pid, f.p + h + 9, n);
        seen s;
        memset(&s, 0, sizeof s);
        s.apply = 1;
        tm_err err = {0};
        int rc = tm_tracefile_read_mem(b.p, b.n, NULL, on_rec, &s, &err);
        seen_free(&s);
        free(b.p);
        cut_ok += rc == -1 && (strstr(err.msg, "cut at the end of its chunk") ||
                               strstr(err.msg, "end-of-recording mark is missing"));
    }
    CHECK_U64(cut_ok, len - 1);
    fprintf(stderr, "test_tracefile: %zu prefixes of %s checked\n", f.n + 1, path);
    free(f.p);
}

int main(int argc, char **argv)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    umask(022);
    test_round_trip();
    test_create();
    test_many_procs();
    test_corruption();
    if (argc > 1)
        test_prefixes(argv[1]);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    return check_done("tracefile");
}
