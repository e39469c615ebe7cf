/* test_launcher.c - the launcher: program checks, finding the hook, and whole
 * sessions against launch_fake, a target that writes the trace stream itself
 * (the real hook is not involved).  Runs in launcher-test/ of the build tree,
 * where a do-nothing library is installed as libtmtop-hook.so. */
#define _GNU_SOURCE
#include "tracer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define SCRATCH LAUNCH_DIR "/scratch"

static char hook[4096];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len)
        perror(path);
    close(fd);
    chmod(path, mode);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    static char buf[4 << 20];
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
    close(fd);
    if (n <= 0 || n == (ssize_t)sizeof buf) {
        fprintf(stderr, "cannot copy %s\n", from);
        return;
    }
    write_file(to, buf, (size_t)n, mode);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : 0;
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* Checks that prog is refused with a message containing want. */
static void refused(const char *prog, const char *want)
{
    tm_err err = {0};
    char res[4096] = "";
    int rc = tm_tracer_check_program(prog, res, sizeof res, &err);
    CHECK(rc == -1);
    if (!strstr(err.msg, want)) {
        check_failures++;
        fprintf(stderr, "check_program(%s): got \"%s\", want \"%s\"\n", prog, err.msg, want);
    }
    check_count++;
}

static void accepted(const char *prog, const char *want_resolved)
{
    tm_err err = {0};
    char res[4096] = "";
    int rc = tm_tracer_check_program(prog, res, sizeof res, &err);
    if (rc != 0)
        fprintf(stderr, "check_program(%s): %s\n", prog, err.msg);
    CHECK(rc == 0);
    if (want_resolved)
        CHECK_STR(res, want_resolved);
}

static void test_check_program(void)
{
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(SCRATCH) == 0);

    refused("./nope", "./nope: no such file");
    refused(SCRATCH "/nope/deeper", "no such file");
    refused(SCRATCH, SCRATCH ": is a directory");
    refused("", "no program given");

    write_file(SCRATCH "/x.txt", "hello\n", 6, 0644);
    refused("./x.txt", "./x.txt: permission denied (not executable)");
    write_file(SCRATCH "/notes.txt", "hello\n", 6, 0755);
    refused("./notes.txt", "./notes.txt: not an ELF executable");
    write_file(SCRATCH "/empty", "", 0, 0755);
    refused("./empty", "./empty: not an ELF executable");

    /* A 32-bit ELF header, and a 64-bit one cut short. */
    unsigned char elf32[64] = {0x7f, 'E', 'L', 'F', 1, 1, 1};
    write_file(SCRATCH "/elf32", elf32, sizeof elf32, 0755);
    refused("./elf32", "./elf32: 32-bit programs are not supported");
    unsigned char elf64[20] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    write_file(SCRATCH "/elfcut", elf64, sizeof elf64, 0755);
    refused("./elfcut", "./elfcut: truncated ELF file");

    /* Scripts are fine; their interpreter gets the checks. */
    const char *sh = "#!/bin/sh\nexit 0\n";
    write_file(SCRATCH "/ok.sh", sh, strlen(sh), 0755);
    accepted("./ok.sh", "./ok.sh");
    const char *nosh = "#!/nonexistent/sh -e\nexit 0\n";
    write_file(SCRATCH "/nosh.sh", nosh, strlen(nosh), 0755);
    refused("./nosh.sh", "./nosh.sh: #! interpreter /nonexistent/sh: no such file");

    /* Dynamic programs: by path and through PATH. */
    accepted(LAUNCH_FAKE, LAUNCH_FAKE);
    accepted("/bin/sh", "/bin/sh");
    {
        tm_err err = {0};
        char res[4096] = "";
        CHECK(tm_tracer_check_program("true", res, sizeof res, &err) == 0);
        size_t n = strlen(res);
        CHECK(n > 5 && strcmp(res + n - 5, "/true") == 0);
    }
    refused("tmtop-no-such-command-zz", "tmtop-no-such-command-zz: command not found in PATH");

    /* PATH skips a non-executable candidate as execvp does, and says why
     * when nothing else is found. */
    mkdir(SCRATCH "/bin", 0755);
    write_file(SCRATCH "/bin/true", "x", 1, 0644);
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", SCRATCH "/bin:/usr/bin:/bin", 1);
    {
        tm_err err = {0};
        char res[4096] = "";
        CHECK(tm_tracer_check_program("true", res, sizeof res, &err) == 0);
        CHECK(strncmp(res, SCRATCH, strlen(SCRATCH)) != 0);
    }
    setenv("PATH", SCRATCH "/bin", 1);
    refused("true", SCRATCH "/bin/true: permission denied (not executable)");
    if (old_path)
        setenv("PATH", old_path, 1);
    else
        unsetenv("PATH");
    free(old_path);

    /* setuid and setgid copies (as root the bits still set). */
    copy_file(LAUNCH_FAKE, SCRATCH "/setuid_app", 04755);
    copy_file(LAUNCH_FAKE, SCRATCH "/setgid_app", 02755);
    struct stat st;
    if (stat(SCRATCH "/setuid_app", &st) == 0 && (st.st_mode & S_ISUID))
        refused("./setuid_app", "./setuid_app: setuid/setgid binaries ignore LD_PRELOAD");
    else
        fprintf(stderr, "note: cannot set the setuid bit here; setuid check skipped\n");
    if (stat(SCRATCH "/setgid_app", &st) == 0 && (st.st_mode & S_ISGID))
        refused("./setgid_app", "./setgid_app: setuid/setgid binaries ignore LD_PRELOAD");

    /* A program whose interpreter is missing (as a musl binary here). */
    {
        static char buf[4 << 20];
        int fd = open(LAUNCH_FAKE, O_RDONLY | O_CLOEXEC);
        ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        const char *interp = "/lib64/ld-linux-x86-64.so.2";
        char *at = n > 0 ? memmem(buf, (size_t)n, interp, strlen(interp)) : NULL;
        if (at) {
            at[1] = 'X';
            write_file(SCRATCH "/nointerp", buf, (size_t)n, 0755);
            refused("./nointerp", "./nointerp: its program interpreter /Xib64/ld-linux-x86-64.so.2 "
                                  "is missing");
        } else {
            fprintf(stderr, "note: interpreter not found in launch_fake; check skipped\n");
        }
    }

    refused(LAUNCH_NOP, ": a shared library, not a program");
    if (LAUNCH_STATIC[0]) {
        refused(LAUNCH_STATIC,
                ": statically linked; the allocation hook cannot be preloaded into it");
        char script[4200];
        snprintf(script, sizeof script, "#!%s\n", LAUNCH_STATIC);
        write_file(SCRATCH "/static.sh", script, strlen(script), 0755);
        refused("./static.sh", "./static.sh: #! interpreter " LAUNCH_STATIC ": statically linked");
    } else {
        fprintf(stderr, "note: no static libc; static check skipped\n");
    }
    if (LAUNCH_STATIC_PIE[0])
        refused(LAUNCH_STATIC_PIE, ": statically linked");
    else
        fprintf(stderr, "note: no static-pie support; static-pie check skipped\n");

    /* resolved too small */
    {
        tm_err err = {0};
        char res[4];
        CHECK(tm_tracer_check_program(LAUNCH_FAKE, res, sizeof res, &err) == -1);
    }
    CHECK(chdir(cwd) == 0);
}

static void test_find_hook(void)
{
    tm_err err = {0};
    CHECK(tm_tracer_find_hook(hook, sizeof hook, &err) == 0);
    CHECK_STR(hook, LAUNCH_DIR "/" TM_HOOK_NAME);
    char small[8];
    CHECK(tm_tracer_find_hook(small, sizeof small, &err) == -1);
}

/* ---- sessions ----------------------------------------------------------- */

#define MAXP 4

/* What arrived, per stream, checked against what launch_fake sends. */
typedef struct stream_log {
    uint32_t pid;
    unsigned long nrec, allocs, bad;
    int ended;
    uint32_t forked;
} stream_log;

typedef struct collector {
    stream_log s[MAXP];
    int n;
    unsigned long total;
    int extra_pids;
    int stop_after; /* > 0: return 1 from the callback at that record */
} collector;

static int collect(void *ctx, uint32_t pid, const tm_wire_rec *r)
{
    collector *c = ctx;
    c->total++;
    stream_log *l = NULL;
    for (int i = 0; i < c->n; i++)
        if (c->s[i].pid == pid)
            l = &c->s[i];
    if (!l) {
        if (c->n == MAXP) {
            c->extra_pids++;
            return 0;
        }
        l = &c->s[c->n++];
        l->pid = pid;
    }
    unsigned long k = l->nrec++;
    int ok;
    if (l->ended)
        ok = 0;
    else if (k == 0)
        ok = r->type == TM_REC_PREAMBLE && r->u.preamble.major == TM_WIRE_MAJOR;
    else if (k == 1)
        ok = r->type == TM_REC_HELLO && r->u.hello.pid == pid && r->u.hello.exe_len == 12 &&
             memcmp(r->u.hello.exe, "/launch_fake", 12) == 0;
    else if (r->type == TM_REC_STACK)
        ok = k == 2 && r->u.stack.stack_id == 7 && r->u.stack.depth == 3 &&
             tm_wire_stack_ip(r, 0) == 1 && tm_wire_stack_ip(r, 2) == 3;
    else if (r->type == TM_REC_ALLOC) {
        ok = r->u.alloc.ptr == 0x1000 + 16 * (uint64_t)l->allocs &&
             r->u.alloc.size == l->allocs + 1 && r->u.alloc.stack_id == 7;
        l->allocs++;
    } else if (r->type == TM_REC_FORK) {
        ok = 1;
        l->forked = r->u.fork.child_pid;
    } else if (r->type == TM_REC_END) {
        ok = r->u.end.unknown_frees == 1 && r->u.end.nested_calls == 2 && r->u.end.lost_events == 3;
        l->ended = 1;
    } else
        ok = 0;
    if (!ok)
        l->bad++;
    if (c->stop_after && c->total == (unsigned long)c->stop_after)
        return 1;
    return 0;
}

typedef struct outcome {
    int started, wstatus, exited;
    tm_session_stats stats;
    tm_err first_err; /* the first error reported by the pump, if any */
    int pump_errors;
    double t_start, t_reaped, t_done;
} outcome;

static char *fake_argv[8];

static char *const *fake(const char *a1, const char *a2, const char *a3)
{
    fake_argv[0] = LAUNCH_FAKE;
    fake_argv[1] = (char *)a1;
    fake_argv[2] = (char *)a2;
    fake_argv[3] = a2 ? (char *)a3 : NULL;
    fake_argv[4] = NULL;
    return fake_argv;
}

/* Runs one session to its end (pump returns 0) or a 30 s safety limit. */
static void run(char *const *argv, int use_pty, collector *c, outcome *o,
                int (*hook_fn)(tm_session *))
{
    memset(o, 0, sizeof *o);
    tm_launch l = {.argv = argv, .hook_path = hook, .max_frames = 17, .use_pty = use_pty};
    tm_err err = {0};
    o->t_start = now_s();
    tm_session *s = tm_session_start(&l, &err);
    if (!s) {
        fprintf(stderr, "start failed: %s\n", err.msg);
        return;
    }
    o->started = 1;
    int rc;
    do {
        rc = tm_session_pump(s, 200, collect, c, &err);
        if (err.code != TM_OK) {
            if (!o->pump_errors++)
                o->first_err = err;
        }
        if (!o->t_reaped && tm_session_exited(s, NULL))
            o->t_reaped = now_s();
        if (hook_fn && hook_fn(s))
            hook_fn = NULL;
        if (now_s() - o->t_start > 30) {
            fprintf(stderr, "session did not end\n");
            tm_session_kill(s, SIGKILL);
            break;
        }
    } while (rc != 0 && rc != -1);
    CHECK(rc == 0);
    o->t_done = now_s();
    o->exited = tm_session_exited(s, &o->wstatus);
    tm_session_get_stats(s, &o->stats);
    tm_session_free(s);
}

static void check_full_stream(const stream_log *l, unsigned long n)
{
    CHECK_U64(l->nrec, n + 4);
    CHECK_U64(l->allocs, n);
    CHECK_U64(l->bad, 0);
    CHECK(l->ended);
}

/* Has a line "key=value" in the report the fake wrote. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return 1;
    fprintf(stderr, "missing \"%s\" in:\n%s", line, text);
    return 0;
}

static void on_sigint(int sig)
{
    (void)sig;
}

static void test_stream_and_exit_status(void)
{
    /* tmtop's own changes after start-up must not reach the target. */
    struct sigaction sa = {0}, old_int, now;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_int);
    signal(SIGPIPE, SIG_IGN);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);

    setenv("LAUNCH_FAKE_OUT", SCRATCH "/inherited", 1);
    unsetenv("LD_PRELOAD");
    collector c = {0};
    outcome o;
    run(fake("stream", "1000", "3"), 0, &c, &o, NULL);
    CHECK(o.started);
    CHECK(o.exited);
    CHECK(WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 3);
    CHECK_I64(c.n, 1);
    check_full_stream(&c.s[0], 1000);
    CHECK_U64(o.stats.records, 1004);
    CHECK_U64(o.stats.streams, 1);
    CHECK_U64(o.stats.rejected, 0);
    CHECK_U64(o.stats.corrupt, 0);
    CHECK_I64(o.pump_errors, 0);
    char text[4096], want[4200];
    read_file(SCRATCH "/inherited", text, sizeof text);
    snprintf(want, sizeof want, "LD_PRELOAD=%s", hook);
    CHECK(has_line(text, want));
    CHECK(has_line(text, "TMTOP_FRAMES=17"));
    CHECK(has_line(text, "TMTOP_TOKEN_LEN=16"));
    CHECK(has_line(text, "nop=1"));
    CHECK(has_line(text, "SIGINT=dfl"));
    CHECK(has_line(text, "SIGQUIT=dfl"));
    CHECK(has_line(text, "SIGPIPE=dfl"));
    CHECK(has_line(text, "USR1blocked=0"));
    /* tm_session_free gave the handler back. */
    sigaction(SIGINT, NULL, &now);
    CHECK(now.sa_handler == on_sigint);

    /* An existing LD_PRELOAD stays, after the hook. */
    setenv("LD_PRELOAD", LAUNCH_NOP, 1);
    memset(&c, 0, sizeof c);
    run(fake("stream", "10", "0"), 0, &c, &o, NULL);
    unsetenv("LD_PRELOAD");
    read_file(SCRATCH "/inherited", text, sizeof text);
    snprintf(want, sizeof want, "LD_PRELOAD=%s:%s", hook, LAUNCH_NOP);
    CHECK(has_line(text, want));
    CHECK(WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 0);
    check_full_stream(&c.s[0], 10);
    unsetenv("LAUNCH_FAKE_OUT");

    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    signal(SIGPIPE, SIG_DFL);
    sigaction(SIGINT, &old_int, NULL);
}

/* While the session lives (no pty) SIGINT is ignored in tmtop. */
static int sigint_ignored_during;

static int kill_on_first_pump(tm_session *s)
{
    struct sigaction now;
    sigaction(SIGINT, NULL, &now);
    sigint_ignored_during = now.sa_handler == SIG_IGN;
    tm_session_kill(s, SIGTERM);
    return 1;
}

static int kill_when_streaming_cb_seen;

static int kill_when_streaming(tm_session *s)
{
    if (!kill_when_streaming_cb_seen)
        return 0;
    tm_session_kill(s, SIGTERM);
    return 1;
}

static int hello_seen(void *ctx, uint32_t pid, const tm_wire_rec *r)
{
    if (r->type == TM_REC_HELLO)
        kill_when_streaming_cb_seen = 1;
    return collect(ctx, pid, r);
}

static void test_killed(void)
{
    collector c = {0};
    outcome o;
    run(fake("sleep", NULL, NULL), 0, &c, &o, kill_on_first_pump);
    CHECK(sigint_ignored_during);
    CHECK(o.exited);
    CHECK(WIFSIGNALED(o.wstatus) && WTERMSIG(o.wstatus) == SIGTERM);

    /* On a pty the signal goes to the process group; the stream ends by EOF. */
    memset(&c, 0, sizeof c);
    kill_when_streaming_cb_seen = 0;
    tm_launch l = {
        .argv = fake("sleep", NULL, NULL), .hook_path = hook, .max_frames = 64, .use_pty = 1};
    tm_err err = {0};
    tm_session *s = tm_session_start(&l, &err);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK(tm_session_pty_fd(s) >= 0);
    double t0 = now_s();
    int rc, killed = 0;
    do {
        rc = tm_session_pump(s, 100, hello_seen, &c, &err);
        if (!killed && kill_when_streaming_cb_seen)
            killed = kill_when_streaming(s);
    } while (rc == 1 && now_s() - t0 < 30);
    CHECK(rc == 0);
    int st = 0;
    CHECK(tm_session_exited(s, &st));
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    CHECK_U64(c.s[0].nrec, 2);
    CHECK_U64(c.s[0].bad, 0);
    tm_session_free(s);
}

static void test_rejected_streams(void)
{
    collector c = {0};
    outcome o;
    run(fake("badtoken", NULL, NULL), 0, &c, &o, NULL);
    CHECK(WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 0);
    CHECK_U64(c.total, 0);
    CHECK_U64(o.stats.rejected, 1);
    CHECK_U64(o.stats.streams, 0);
    CHECK_I64(o.pump_errors, 0);

    /* A peer of another uid (SO_PEERCRED), testable when run as root. */
    if (getuid() == 0) {
        memset(&c, 0, sizeof c);
        run(fake("otheruid", NULL, NULL), 0, &c, &o, NULL);
        /* 90: its send failed, tmtop closed the connection first. */
        CHECK(WIFEXITED(o.wstatus) &&
              (WEXITSTATUS(o.wstatus) == 0 || WEXITSTATUS(o.wstatus) == 90));
        CHECK_U64(c.total, 0);
        CHECK_U64(o.stats.rejected, 1);
    } else {
        fprintf(stderr, "note: not root; the other-uid check is skipped\n");
    }

    memset(&c, 0, sizeof c);
    run(fake("nohello", NULL, NULL), 0, &c, &o, NULL);
    CHECK_U64(c.total, 0);
    CHECK_U64(o.stats.rejected, 1);
    CHECK_I64(o.pump_errors, 0);
}

static void test_corrupt_streams(void)
{
    collector c = {0};
    outcome o;
    run(fake("garbage", NULL, NULL), 0, &c, &o, NULL);
    CHECK(WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 0);
    CHECK_U64(c.total, 5); /* PREAMBLE HELLO STACK ALLOC ALLOC */
    CHECK_U64(c.s[0].bad, 0);
    CHECK_I64(o.pump_errors, 1);
    CHECK_I64(o.first_err.code, TM_E_FORMAT);
    CHECK(strstr(o.first_err.msg, "trace stream of pid") != NULL);
    CHECK(strstr(o.first_err.msg, "corrupt stream: bad ALLOC record") != NULL);
    CHECK_U64(o.stats.corrupt, 1);
    fprintf(stderr, "garbage reported as: %s\n", o.first_err.msg);

    memset(&c, 0, sizeof c);
    run(fake("truncated", NULL, NULL), 0, &c, &o, NULL);
    CHECK_U64(c.total, 2);
    CHECK_I64(o.pump_errors, 1);
    CHECK(strstr(o.first_err.msg, "stream ends inside a record") != NULL);
}

static void test_daemonised_grandchild(void)
{
    for (int with_end = 0; with_end < 2; with_end++) {
        collector c = {0};
        outcome o;
        run(fake("daemon", with_end ? "1" : "0", NULL), 0, &c, &o, NULL);
        CHECK(WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 0);
        CHECK_U64(c.s[0].allocs, 5);
        CHECK_U64(c.s[0].bad, 0);
        CHECK(c.s[0].forked > 0);
        double after = o.t_done - o.t_reaped;
        fprintf(stderr, "daemon (END %s): pump ended %.2f s after the exit\n",
                with_end ? "sent" : "not sent", after);
        if (with_end) {
            CHECK(c.s[0].ended);
            CHECK(after < 0.5);
            CHECK_U64(o.stats.abandoned, 0);
        } else {
            CHECK(after > 0.7 && after < 2.5);
            CHECK_U64(o.stats.abandoned, 1);
        }
        if (c.s[0].forked > 0)
            kill((pid_t)c.s[0].forked, SIGKILL);
    }
}

static void test_two_processes(void)
{
    collector c = {0};
    outcome o;
    run(fake("twoproc", "5000", NULL), 0, &c, &o, NULL);
    CHECK(WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 0);
    CHECK_I64(c.n, 2);
    CHECK(c.s[0].pid != c.s[1].pid);
    check_full_stream(&c.s[0], 5000);
    check_full_stream(&c.s[1], 5000);
    CHECK_U64(o.stats.streams, 2);
}

/* A callback that stops the pump: records are neither lost nor repeated. */
static void test_callback_stop(void)
{
    tm_launch l = {.argv = fake("stream", "100", "0"), .hook_path = hook, .max_frames = 64};
    tm_err err = {0};
    tm_session *s = tm_session_start(&l, &err);
    CHECK(s != NULL);
    if (!s)
        return;
    collector c = {0};
    int rc, stops = 0;
    double t0 = now_s();
    do {
        c.stop_after = (int)c.total + 1; /* stop after every record */
        rc = tm_session_pump(s, 100, collect, &c, &err);
        if (rc == 1 && c.total == (unsigned long)c.stop_after)
            stops++;
    } while (rc != 0 && rc != -1 && now_s() - t0 < 30);
    CHECK(rc == 0);
    check_full_stream(&c.s[0], 100);
    CHECK(stops >= 104);
    tm_session_free(s);
}

static void test_start_failures(void)
{
    struct sigaction before, after;
    sigaction(SIGINT, NULL, &before);
    tm_err err = {0};
    char *argv[] = {SCRATCH "/does-not-exist", NULL};
    tm_launch l = {.argv = argv, .hook_path = hook, .max_frames = 64};
    CHECK(tm_session_start(&l, &err) == NULL);
    CHECK_STR(err.msg, SCRATCH "/does-not-exist: no such file");
    sigaction(SIGINT, NULL, &after);
    CHECK(before.sa_handler == after.sa_handler);

    l.argv = fake("stream", "1", "0");
    l.max_frames = 0;
    CHECK(tm_session_start(&l, &err) == NULL);
    l.max_frames = 64;
    l.hook_path = "relative/libtmtop-hook.so";
    CHECK(tm_session_start(&l, &err) == NULL);
    l.hook_path = "/a path/with space.so";
    CHECK(tm_session_start(&l, &err) == NULL);
    CHECK(strstr(err.msg, "LD_PRELOAD cannot name") != NULL);

    /* execve itself fails after the checks passed: the program is open for
     * writing (ETXTBSY).  The child is reaped; nothing is left behind. */
    copy_file(LAUNCH_FAKE, SCRATCH "/busy", 0755);
    int wfd = open(SCRATCH "/busy", O_WRONLY | O_CLOEXEC);
    CHECK(wfd >= 0);
    char *busy[] = {SCRATCH "/busy", NULL};
    l.argv = busy;
    l.hook_path = hook;
    CHECK(tm_session_start(&l, &err) == NULL);
    CHECK(strstr(err.msg, "cannot execute") != NULL);
    CHECK(strstr(err.msg, strerror(ETXTBSY)) != NULL);
    fprintf(stderr, "exec failure reported as: %s\n", err.msg);
    close(wfd);
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
    sigaction(SIGINT, NULL, &after);
    CHECK(before.sa_handler == after.sa_handler);
}

static void test_pty(void)
{
    fflush(stdout);
    int saved = dup(1);
    int cap = open(SCRATCH "/stdout", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    dup2(cap, 1);
    close(cap);

    tm_launch l = {.argv = fake("print", NULL, NULL),
                   .hook_path = hook,
                   .max_frames = 64,
                   .use_pty = 1,
                   .pty_rows = 30,
                   .pty_cols = 100};
    tm_err err = {0};
    tm_session *s = tm_session_start(&l, &err);
    CHECK(s != NULL);
    char got[4096] = "";
    size_t have = 0;
    if (s) {
        struct sigaction now;
        sigaction(SIGINT, NULL, &now);
        CHECK(now.sa_handler != SIG_IGN); /* on a pty tmtop keeps its SIGINT */
        int fd = tm_session_pty_fd(s);
        CHECK(fd >= 0);
        CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        int rc;
        double t0 = now_s();
        do {
            rc = tm_session_pump(s, 50, NULL, NULL, &err);
            ssize_t n;
            while ((n = read(fd, got + have, sizeof got - 1 - have)) > 0)
                have += (size_t)n;
        } while (rc == 1 && now_s() - t0 < 30);
        CHECK(rc == 0);
        int st;
        CHECK(tm_session_exited(s, &st) && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        tm_session_free(s);
    }
    got[have] = '\0';
    dup2(saved, 1);
    close(saved);
    CHECK(strstr(got, "hello from the target: tty=1 size=30x100") != NULL);
    char out[4096];
    read_file(SCRATCH "/stdout", out, sizeof out);
    CHECK(strstr(out, "hello from the target") == NULL);
}

static double cpu_seconds(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static void test_stress(void)
{
    collector c = {0};
    outcome o;
    double cpu0 = cpu_seconds();
    run(fake("stream", "1000000", "0"), 0, &c, &o, NULL);
    double cpu = cpu_seconds() - cpu0;
    CHECK(WIFEXITED(o.wstatus) && WEXITSTATUS(o.wstatus) == 0);
    check_full_stream(&c.s[0], 1000000);
    double secs = o.t_done - o.t_start;
    fprintf(stderr,
            "stress: %lu records, %.1f MB in %.3f s: %.2f M records/s (%.0f MB/s); "
            "tmtop side CPU %.3f s (%.0f ns/record)\n",
            c.total, o.stats.bytes / 1e6, secs, c.total / secs / 1e6, o.stats.bytes / secs / 1e6,
            cpu, cpu / c.total * 1e9);
}

int main(void)
{
    /* A fresh scratch folder for the files the checks look at. */
    if (system("rm -rf '" SCRATCH "' && mkdir -p '" SCRATCH "'") != 0)
        return 2;
    test_check_program();
    test_find_hook();
    test_stream_and_exit_status();
    test_killed();
    test_rejected_streams();
    test_corrupt_streams();
    test_daemonised_grandchild();
    test_two_processes();
    test_callback_stop();
    test_start_failures();
    test_pty();
    test_stress();
    return check_done("launcher");
}
