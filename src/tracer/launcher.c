/* launcher.c - the session: the abstract listening socket, fork and exec of
 * the target under the hook, and the pump that reads every process's trace
 * stream (DESIGN.md §1, RESEARCH.md §5.1).  Program checks and the hook's
 * location are in launcher_check.c. */
#define _GNU_SOURCE
#include "tracer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define READ_CHUNK (256 * 1024) /* initial buffer per connection, and read size */
#define MIN_READ (64 * 1024)    /* compact or grow when less room than this */
#define READS_PER_PUMP 64       /* per connection and call: the caller regains control */
#define SILENCE_NS 1000000000LL /* a stream silent this long after the exit is given up */
#define REAP_POLL_MS 20         /* waitpid polling period without a pidfd */

/* ---- signal state -------------------------------------------------------
 * The target should start with the signal state tmtop itself started with,
 * not with whatever tmtop changed since (SIGINT/SIGQUIT ignored here, SIGPIPE
 * ignored or signals blocked by the UI).  Ignored dispositions and the mask
 * survive execve, so they are recorded before main() and restored in the
 * child.  Handlers need nothing: execve resets them to SIG_DFL. */
static struct {
    int valid;
    sigset_t mask;
    sigset_t ignored;
} start_sig;

__attribute__((constructor)) static void record_start_signals(void)
{
    if (sigprocmask(SIG_SETMASK, NULL, &start_sig.mask) != 0)
        return;
    sigemptyset(&start_sig.ignored);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            sigaddset(&start_sig.ignored, sig);
    }
    start_sig.valid = 1;
}

/* ---- session ------------------------------------------------------------ */

enum conn_state {
    CONN_PREAMBLE,      /* nothing decoded yet */
    CONN_HELLO,         /* preamble seen; the next record must be a valid HELLO */
    CONN_HELLO_PENDING, /* HELLO validated and the PREAMBLE delivered, the callback
                           stopped the pump: HELLO is decoded again next time */
    CONN_STREAM,
};

typedef struct conn {
    int fd;
    enum conn_state state;
    uint32_t pid;   /* from HELLO */
    pid_t peer_pid; /* from SO_PEERCRED, for messages before HELLO */
    int64_t last_ns;
    tm_wire_decoder dec;
    uint8_t *buf;
    size_t cap, start, end; /* undecoded bytes are buf[start..end) */
} conn;

struct tm_session {
    pid_t pid;
    int listen_fd, pidfd, pty_fd;
    uint64_t token;
    int reaped, wstatus, lost; /* lost: reaped by someone else, status unknown */
    int64_t reaped_ns;
    int use_pty;
    int sig_saved;
    struct sigaction old_int, old_quit;
    conn *conns;
    size_t nconn, conn_cap;
    struct pollfd *pfd;
    size_t pfd_cap;
    tm_session_stats stats;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fill_random(void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom((char *)buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* The target's environment, built before fork: setenv() in the child of a
 * possibly multi-threaded tmtop would not be async-signal-safe.  Returns an
 * array whose new strings are listed in fresh[0..4] (owned by the caller;
 * fresh[4] is NULL unless follow_fork). */
static char **build_env(const tm_launch *l, const char *sockname, uint64_t token, char *fresh[5],
                        tm_err *err)
{
    static const char *const drop[] = {"LD_PRELOAD=", TM_ENV_SOCK "=", TM_ENV_TOKEN "=",
                                       TM_ENV_FRAMES "=", TM_ENV_FOLLOW "="};
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 6, sizeof *env);
    if (!env) {
        tm_err_set(err, TM_E_NOMEM, "out of memory");
        return NULL;
    }
    const char *old = getenv("LD_PRELOAD");
    int ok = asprintf(&fresh[0], "LD_PRELOAD=%s%s%s", l->hook_path, old && *old ? ":" : "",
                      old && *old ? old : "") >= 0;
    ok = ok && asprintf(&fresh[1], "%s=%s", TM_ENV_SOCK, sockname) >= 0;
    ok = ok && asprintf(&fresh[2], "%s=%016" PRIx64, TM_ENV_TOKEN, token) >= 0;
    ok = ok && asprintf(&fresh[3], "%s=%u", TM_ENV_FRAMES, l->max_frames) >= 0;
    ok = ok && (!l->follow_fork || asprintf(&fresh[4], "%s=1", TM_ENV_FOLLOW) >= 0);
    if (!ok) {
        tm_err_set(err, TM_E_NOMEM, "out of memory");
        free(env);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int keep = 1;
        for (size_t d = 0; d < sizeof drop / sizeof drop[0]; d++)
            if (strncmp(environ[i], drop[d], strlen(drop[d])) == 0)
                keep = 0;
        if (keep)
            env[k++] = environ[i];
    }
    for (int i = 0; i < 5; i++)
        if (fresh[i])
            env[k++] = fresh[i];
    env[k] = NULL;
    return env;
}

/* Abstract names are not NUL-terminated: the address length delimits them,
 * and the hook must connect with the same length (offsetof(sun_path) + 1 +
 * strlen(TMTOP_SOCK)). */
static int open_listener(char *name, size_t name_len, tm_err *err)
{
    uint64_t rnd;
    if (fill_random(&rnd, sizeof rnd) != 0)
        return tm_err_set(err, TM_E_IO, "getrandom: %s", strerror(errno));
    snprintf(name, name_len, "tmtop.%ld.%016" PRIx64, (long)getpid(), rnd);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return tm_err_set(err, TM_E_IO, "cannot create the trace socket: %s", strerror(errno));
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(a.sun_path + 1, name, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    if (bind(fd, (struct sockaddr *)&a, alen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        return tm_err_set(err, TM_E_IO, "cannot listen on the trace socket @%s: %s", name,
                          strerror(e));
    }
    return fd;
}

/* What the child tells the parent through the CLOEXEC pipe when it fails. */
enum { STAGE_TTY = 1, STAGE_EXEC = 2 };
struct child_report {
    int stage, err;
};

static void child_report_fail(int fd, int stage)
{
    struct child_report r = {stage, errno};
    ssize_t n;
    do
        n = write(fd, &r, sizeof r);
    while (n < 0 && errno == EINTR);
    _exit(127);
}

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void child_exec(const char *path, char *const argv[], char *const envp[], int slave,
                       int report_fd, const tm_session *s)
{
    if (slave >= 0) {
        /* login_tty(), spelled out so that a failure can be reported. */
        if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
            child_report_fail(report_fd, STAGE_TTY);
        for (int i = 0; i < 3; i++)
            if (dup2(slave, i) < 0)
                child_report_fail(report_fd, STAGE_TTY);
        if (slave > 2)
            close(slave);
    }
    if (start_sig.valid) {
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP)
                continue;
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = sigismember(&start_sig.ignored, sig) ? SIG_IGN : SIG_DFL;
            sigaction(sig, &sa, NULL); /* EINVAL for libc-reserved signals: fine */
        }
        sigprocmask(SIG_SETMASK, &start_sig.mask, NULL);
    } else if (s->sig_saved) {
        sigaction(SIGINT, &s->old_int, NULL);
        sigaction(SIGQUIT, &s->old_quit, NULL);
    }
    execve(path, argv, envp);
    child_report_fail(report_fd, STAGE_EXEC);
}

static void restore_signals(tm_session *s)
{
    if (s->sig_saved) {
        sigaction(SIGINT, &s->old_int, NULL);
        sigaction(SIGQUIT, &s->old_quit, NULL);
        s->sig_saved = 0;
    }
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* pidfds are born CLOEXEC; be explicit */
        return fd;
    }
#else
    (void)pid;
#endif
    return -1; /* old kernel or a seccomp filter: waitpid(WNOHANG) polling */
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

tm_session *tm_session_start(const tm_launch *l, tm_err *err)
{
    char path[4096], sockname[64];
    if (!l || !l->argv || !l->argv[0]) {
        tm_err_set(err, TM_E_USAGE, "no program given");
        return NULL;
    }
    if (!l->hook_path || l->hook_path[0] != '/') {
        tm_err_set(err, TM_E_USAGE, "the hook path must be absolute");
        return NULL;
    }
    /* The loader splits LD_PRELOAD at spaces and colons. */
    if (strpbrk(l->hook_path, ": \t")) {
        tm_err_set(err, TM_E_USAGE, "%s: LD_PRELOAD cannot name a path with ':' or a space",
                   l->hook_path);
        return NULL;
    }
    if (l->max_frames < 1 || l->max_frames > TM_MAX_FRAMES) {
        tm_err_set(err, TM_E_USAGE, "stack depth %u out of range 1..%d", l->max_frames,
                   TM_MAX_FRAMES);
        return NULL;
    }
    if (tm_tracer_check_program(l->argv[0], path, sizeof path, err) != 0)
        return NULL;

    tm_session *s = calloc(1, sizeof *s);
    if (!s) {
        tm_err_set(err, TM_E_NOMEM, "out of memory");
        return NULL;
    }
    s->pid = -1;
    s->listen_fd = s->pidfd = s->pty_fd = -1;
    s->use_pty = l->use_pty;
    int slave = -1, pipefd[2] = {-1, -1};
    char *fresh[5] = {NULL, NULL, NULL, NULL, NULL};
    char **env = NULL;

    s->listen_fd = open_listener(sockname, sizeof sockname, err);
    if (s->listen_fd < 0)
        goto fail;
    do {
        if (fill_random(&s->token, sizeof s->token) != 0) {
            tm_err_set(err, TM_E_IO, "getrandom: %s", strerror(errno));
            goto fail;
        }
    } while (s->token == 0);
    env = build_env(l, sockname, s->token, fresh, err);
    if (!env)
        goto fail;

    if (l->use_pty) {
        struct winsize ws = {.ws_row = l->pty_rows ? l->pty_rows : 24,
                             .ws_col = l->pty_cols ? l->pty_cols : 80};
        if (openpty(&s->pty_fd, &slave, NULL, NULL, &ws) != 0) {
            tm_err_set(err, TM_E_IO, "cannot open a pseudo-terminal: %s", strerror(errno));
            goto fail;
        }
        /* CLOEXEC on both sides so that no other child of tmtop keeps the
         * pty open; dup2 onto 0..2 in the child clears it there. */
        int fl = fcntl(s->pty_fd, F_GETFL);
        if (fl < 0 || fcntl(s->pty_fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(s->pty_fd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(slave, F_SETFD, FD_CLOEXEC) != 0) {
            tm_err_set(err, TM_E_IO, "cannot set up the pseudo-terminal: %s", strerror(errno));
            goto fail;
        }
    }
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        tm_err_set(err, TM_E_IO, "pipe: %s", strerror(errno));
        goto fail;
    }
    if (!l->use_pty) {
        /* As system(3): the terminal's Ctrl-C and Ctrl-\ are the target's. */
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGINT, &ign, &s->old_int);
        sigaction(SIGQUIT, &ign, &s->old_quit);
        s->sig_saved = 1;
    }

    s->pid = fork();
    if (s->pid < 0) {
        tm_err_set(err, TM_E_IO, "fork: %s", strerror(errno));
        goto fail;
    }
    if (s->pid == 0)
        child_exec(path, l->argv, env, slave, pipefd[1], s);

    close_fd(&pipefd[1]);
    close_fd(&slave);
    struct child_report rep;
    ssize_t n;
    do
        n = read(pipefd[0], &rep, sizeof rep);
    while (n < 0 && errno == EINTR);
    close_fd(&pipefd[0]);
    if (n == (ssize_t)sizeof rep) {
        int st;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
            ;
        s->pid = -1;
        if (rep.stage == STAGE_TTY)
            tm_err_set(err, TM_E_IO, "%s: cannot attach the pseudo-terminal: %s", path,
                       strerror(rep.err));
        else
            tm_err_set(err, TM_E_IO, "%s: cannot execute: %s", path, strerror(rep.err));
        goto fail;
    }
    /* n == 0: the pipe closed on a successful execve. */
    s->pidfd = open_pidfd(s->pid);
    for (int i = 0; i < 5; i++)
        free(fresh[i]);
    free(env);
    return s;

fail:
    close_fd(&pipefd[0]);
    close_fd(&pipefd[1]);
    close_fd(&slave);
    for (int i = 0; i < 5; i++)
        free(fresh[i]);
    free(env);
    tm_session_free(s);
    return NULL;
}

pid_t tm_session_pid(const tm_session *s)
{
    return s->pid;
}

int tm_session_pty_fd(const tm_session *s)
{
    return s->pty_fd;
}

int tm_session_exited(const tm_session *s, int *wstatus)
{
    if (!s->reaped || s->lost)
        return 0;
    if (wstatus)
        *wstatus = s->wstatus;
    return 1;
}

void tm_session_kill(tm_session *s, int sig)
{
    /* Never signal a reaped pid: it may belong to someone else by now. */
    if (s->pid <= 0 || s->reaped)
        return;
    /* On a pty the target leads its own session and process group. */
    kill(s->use_pty ? -s->pid : s->pid, sig);
}

void tm_session_get_stats(const tm_session *s, tm_session_stats *out)
{
    *out = s->stats;
}

static void conn_close(tm_session *s, size_t i)
{
    conn *c = &s->conns[i];
    close(c->fd);
    free(c->buf);
    s->conns[i] = s->conns[--s->nconn];
}

void tm_session_free(tm_session *s)
{
    if (!s)
        return;
    while (s->nconn)
        conn_close(s, s->nconn - 1);
    free(s->conns);
    free(s->pfd);
    close_fd(&s->listen_fd);
    close_fd(&s->pidfd);
    close_fd(&s->pty_fd);
    restore_signals(s);
    free(s);
}

/* ---- the pump ----------------------------------------------------------- */

/* What one pump call carries around. */
typedef struct pump {
    tm_session *s;
    tm_record_fn fn;
    void *ctx;
    tm_err *err;
    int reported; /* a dropped stream is already in err */
    int stop;     /* non-zero: fn asked to stop, returned as is */
    int fatal;    /* err holds a channel error: return -1 */
    int progress; /* something happened: records, a connection, the exit */
} pump;

static void report_stream(pump *p, const conn *c, const char *what)
{
    p->s->stats.corrupt++;
    if (p->reported || p->fatal)
        return;
    p->reported = 1;
    if (c->state >= CONN_HELLO_PENDING)
        tm_err_set(p->err, TM_E_FORMAT, "trace stream of pid %u: %s", c->pid, what);
    else
        tm_err_set(p->err, TM_E_FORMAT, "trace connection from pid %ld: %s", (long)c->peer_pid,
                   what);
}

/* Records a channel error (the first one wins) and makes the call return -1. */
__attribute__((format(printf, 2, 3))) static int fatal(pump *p, const char *fmt, ...)
{
    if (!p->fatal && p->err) {
        va_list ap;
        va_start(ap, fmt);
        p->err->code = TM_E_IO;
        vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
        va_end(ap);
    }
    p->fatal = 1;
    return -1;
}

static int deliver(pump *p, const conn *c, const tm_wire_rec *rec)
{
    p->s->stats.records++;
    p->progress = 1;
    if (!p->fn)
        return 0;
    int rc = p->fn(p->ctx, c->pid, rec);
    if (rc)
        p->stop = rc;
    return rc;
}

enum { DRAIN_MORE, DRAIN_CLOSED, DRAIN_STOPPED };

/* Decodes and delivers every complete record buffered for conns[i]. */
static int drain(pump *p, size_t i)
{
    tm_session *s = p->s;
    conn *c = &s->conns[i];
    while (c->start < c->end) {
        tm_wire_rec rec;
        tm_err derr;
        size_t used;
        tm_wire_decoder before = c->dec;
        int r = tm_wire_decode(&c->dec, c->buf + c->start, c->end - c->start, &used, &rec, &derr);
        if (r == 0)
            break;
        if (r < 0) {
            report_stream(p, c, derr.msg);
            conn_close(s, i);
            p->progress = 1;
            return DRAIN_CLOSED;
        }
        switch (c->state) {
        case CONN_PREAMBLE: /* the decoder yields the preamble first, or fails */
            c->start += used;
            c->state = CONN_HELLO;
            continue;
        case CONN_HELLO:
            if (rec.type != TM_REC_HELLO || rec.u.hello.token != s->token) {
                s->stats.rejected++;
                conn_close(s, i);
                p->progress = 1;
                return DRAIN_CLOSED;
            }
            c->pid = rec.u.hello.pid;
            c->state = CONN_HELLO_PENDING;
            s->stats.streams++;
            /* The preamble is delivered now that its pid is known; HELLO
             * stays in the buffer and is decoded again below. */
            c->dec = before;
            tm_wire_rec pre = {.type = TM_REC_PREAMBLE};
            pre.u.preamble.major = c->dec.major;
            pre.u.preamble.minor = c->dec.minor;
            if (deliver(p, c, &pre))
                return DRAIN_STOPPED;
            continue;
        case CONN_HELLO_PENDING:
            c->state = CONN_STREAM;
            break;
        case CONN_STREAM:
            break;
        }
        c->start += used;
        int stop = deliver(p, c, &rec);
        if (rec.type == TM_REC_END) {
            conn_close(s, i); /* whatever follows END is not part of the stream */
            return stop ? DRAIN_STOPPED : DRAIN_CLOSED;
        }
        if (stop)
            return DRAIN_STOPPED;
    }
    if (c->start == c->end)
        c->start = c->end = 0;
    return DRAIN_MORE;
}

/* Makes room for a read of at least MIN_READ bytes: compacts (the undecoded
 * tail is shorter than one record) or, failing that, grows. */
static int make_room(conn *c)
{
    if (c->cap - c->end >= MIN_READ)
        return 0;
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
        if (c->cap - c->end >= MIN_READ)
            return 0;
    }
    size_t ncap = c->cap ? c->cap * 2 : READ_CHUNK;
    uint8_t *nb = realloc(c->buf, ncap);
    if (!nb)
        return -1;
    c->buf = nb;
    c->cap = ncap;
    return 0;
}

/* Reads what conns[i] has (bounded per call) and delivers its records. */
static void service_conn(pump *p, size_t i)
{
    tm_session *s = p->s;
    for (int k = 0; k < READS_PER_PUMP; k++) {
        conn *c = &s->conns[i];
        if (make_room(c) != 0) {
            fatal(p, "cannot grow a trace buffer: %s", strerror(ENOMEM));
            return;
        }
        size_t room = c->cap - c->end;
        ssize_t n = read(c->fd, c->buf + c->end, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            /* EOF, or ECONNRESET from a peer that died: the stream ended.
             * Everything complete was delivered; a tail means it was cut. */
            if (c->end > c->start)
                report_stream(p, c, "stream ends inside a record");
            else if (c->state != CONN_STREAM)
                s->stats.rejected++; /* never said HELLO */
            conn_close(s, i);
            p->progress = 1;
            return;
        }
        c->end += (size_t)n;
        c->last_ns = now_ns();
        s->stats.bytes += (uint64_t)n;
        if (drain(p, i) != DRAIN_MORE)
            return;
        if ((size_t)n < room)
            return; /* the socket is drained: skip the read that says EAGAIN */
    }
}

static void accept_conns(pump *p)
{
    tm_session *s = p->s;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == EPERM)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* EMFILE and friends: the pending connection would keep the
             * socket readable and the pump spinning. */
            fatal(p, "cannot accept a trace connection: %s", strerror(errno));
            return;
        }
        struct ucred cr;
        socklen_t crlen = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) != 0 || cr.uid != getuid()) {
            close(fd);
            s->stats.rejected++;
            continue;
        }
        if (s->nconn == s->conn_cap) {
            size_t ncap = s->conn_cap ? s->conn_cap * 2 : 4;
            conn *nc = realloc(s->conns, ncap * sizeof *nc);
            if (!nc) {
                close(fd);
                fatal(p, "cannot accept a trace connection: %s", strerror(ENOMEM));
                return;
            }
            s->conns = nc;
            s->conn_cap = ncap;
        }
        conn *c = &s->conns[s->nconn];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->state = CONN_PREAMBLE;
        c->peer_pid = cr.pid;
        c->last_ns = now_ns();
        tm_wire_decoder_init(&c->dec);
        if (make_room(c) != 0) {
            close(fd);
            fatal(p, "cannot accept a trace connection: %s", strerror(ENOMEM));
            return;
        }
        s->nconn++;
        p->progress = 1;
    }
}

static void try_reap(pump *p)
{
    tm_session *s = p->s;
    int st;
    pid_t r;
    do
        r = waitpid(s->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        /* The pidfd said "exited" but the process cannot be waited for yet
         * (another thread still finishing): poll with waitpid from now on
         * rather than spin on a pidfd that stays readable. */
        close_fd(&s->pidfd);
        return;
    }
    s->reaped = 1;
    s->reaped_ns = now_ns();
    close_fd(&s->pidfd);
    p->progress = 1;
    if (r < 0) {
        /* ECHILD: a SIGCHLD handler or SIG_IGN elsewhere in tmtop took it. */
        s->lost = 1;
        fatal(p, "the target (pid %ld) was reaped behind tmtop's back: %s", (long)s->pid,
              strerror(errno));
        return;
    }
    s->wstatus = st;
}

/* After the exit, gives up on streams silent for SILENCE_NS (a daemonised
 * grandchild may hold a copy of the socket and never close it).  Returns the
 * milliseconds until the next such deadline, or -1 if none. */
static int give_up_silent(pump *p, int64_t now)
{
    tm_session *s = p->s;
    int64_t next = -1;
    for (size_t i = s->nconn; i-- > 0;) {
        int64_t since = s->conns[i].last_ns > s->reaped_ns ? s->conns[i].last_ns : s->reaped_ns;
        int64_t due = since + SILENCE_NS;
        if (due <= now) {
            s->stats.abandoned++;
            conn_close(s, i);
            p->progress = 1;
        } else if (next < 0 || due - now < next) {
            next = due - now;
        }
    }
    return next < 0 ? -1 : (int)((next + 999999) / 1000000);
}

static int min_timeout(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static int pump_result(pump *p)
{
    if (p->fatal)
        return -1;
    return p->stop;
}

int tm_session_pump(tm_session *s, int timeout_ms, tm_record_fn fn, void *ctx, tm_err *err)
{
    if (err) {
        err->code = TM_OK;
        err->msg[0] = '\0';
    }
    pump p = {.s = s, .fn = fn, .ctx = ctx, .err = err};
    int64_t deadline = timeout_ms < 0 ? -1 : now_ns() + (int64_t)timeout_ms * 1000000;

    /* Records left buffered when the callback stopped the last call. */
    for (size_t i = s->nconn; i-- > 0;)
        if (s->conns[i].end > s->conns[i].start && drain(&p, i) == DRAIN_STOPPED)
            return p.stop;

    for (;;) {
        if (!s->reaped && s->pidfd < 0)
            try_reap(&p);
        int wait = -1;
        if (s->reaped) {
            wait = give_up_silent(&p, now_ns());
            if (s->nconn == 0) {
                accept_conns(&p); /* late connections still in the backlog */
                if (s->nconn == 0)
                    return p.fatal ? -1 : 0;
            }
        }
        if (p.fatal || p.stop)
            return pump_result(&p);
        if (p.progress)
            return 1;

        if (deadline >= 0) {
            int64_t left = deadline - now_ns();
            wait = min_timeout(wait, left > 0 ? (int)((left + 999999) / 1000000) : 0);
        }
        if (!s->reaped && s->pidfd < 0)
            wait = min_timeout(wait, REAP_POLL_MS);

        size_t need = s->nconn + 2;
        if (need > s->pfd_cap) {
            struct pollfd *np = realloc(s->pfd, need * sizeof *np);
            if (!np)
                return fatal(&p, "poll: %s", strerror(ENOMEM));
            s->pfd = np;
            s->pfd_cap = need;
        }
        size_t npoll = 0, polled_conns = s->nconn;
        s->pfd[npoll++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        s->pfd[npoll++] = (struct pollfd){.fd = s->reaped ? -1 : s->pidfd, .events = POLLIN};
        for (size_t i = 0; i < polled_conns; i++)
            s->pfd[npoll++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};

        int n = poll(s->pfd, npoll, wait);
        if (n < 0 && errno != EINTR)
            return fatal(&p, "poll: %s", strerror(errno));
        if (n > 0) {
            /* Backwards: conn_close moves the last connection into the
             * closed slot, and that one has been serviced already. */
            for (size_t i = polled_conns; i-- > 0;)
                if (s->pfd[2 + i].revents && !p.stop && !p.fatal)
                    service_conn(&p, i);
            if (s->pfd[1].revents && !s->reaped)
                try_reap(&p);
            if (s->pfd[0].revents && !p.fatal)
                accept_conns(&p);
        }
        if (p.fatal || p.stop)
            return pump_result(&p);
        if (p.progress && !s->reaped)
            return 1;
        if (!p.progress && deadline >= 0 && now_ns() >= deadline)
            return 1;
        /* After the exit, loop once more so that a call that ended the last
         * stream can already return 0. */
    }
}
