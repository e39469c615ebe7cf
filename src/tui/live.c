/* live.c - tm_tui_run: the program, the threads and the UI loop.
 *
 * Threads, and what each one owns:
 *  - ingest: tm_session_pump (the session is touched by no one else, even to
 *    send a signal) and tm_store_apply under store_mu, taken once per batch of
 *    records rather than once per record;
 *  - io: reads the program's pseudo-terminal into the scrollback and the log,
 *    so the program never blocks on its output;
 *  - resolver (resolver.c): the tm_sym and every libdwarf call;
 *  - UI (the caller's thread): the terminal, the model, and every signal.
 * The UI takes store_mu only to snapshot the store and run a query; a slow
 * terminal or a paused view therefore never slows the ingestion down. */
#define _GNU_SOURCE
#include "tui.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "output.h"
#include "render.h"
#include "resolver.h"
#include "screen.h"
#include "symbolize.h"
#include "tracer.h"

#define REFRESH_NS 100000000ull /* at most ten refreshes a second */
#define KILL_GRACE_NS 2000000000ull
#define BATCH 4096       /* records applied per lock hold */
#define PUMP_STOP 0x7f00 /* on_record's "let the UI in" answer */
#define SCROLLBACK 10000 /* lines of program output kept */

typedef struct live {
    tm_session *sess;
    tm_store *store;
    uint32_t pid;
    pthread_mutex_t store_mu;
    int locked;     /* ingest thread: holds store_mu */
    unsigned batch; /* records since the lock was taken */
    uint64_t applied;

    atomic_uint_fast64_t gen; /* bumped whenever records were applied */
    atomic_int stop;
    atomic_int kill_sig; /* a signal the UI wants sent to the program */
    atomic_int sym_news; /* the resolver has answers */
    atomic_int wake_pending;
    int wake_r, wake_w; /* wakes the UI's poll */
    int stop_r, stop_w; /* wakes the io thread for the exit */

    pthread_mutex_t state_mu; /* guards the fields below */
    int exited, wstatus, done;
    char problem[320]; /* a trace problem to show once */
    int problem_new;

    tui_output *out;
    int pty_fd;
} live;

static volatile sig_atomic_t quit_signal;
static int sig_wake_fd = -1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wakes the UI thread; at most one byte waits in the pipe. */
static void wake(live *lv)
{
    if (atomic_exchange(&lv->wake_pending, 1) == 0) {
        char b = 1;
        if (write(lv->wake_w, &b, 1) < 0) {
            /* full pipe: the UI is awake already */
        }
    }
}

static void on_symbols(void *ctx)
{
    live *lv = ctx;
    atomic_store(&lv->sym_news, 1);
    wake(lv);
}

static void note_problem(live *lv, const char *what)
{
    pthread_mutex_lock(&lv->state_mu);
    if (!lv->problem[0]) {
        snprintf(lv->problem, sizeof lv->problem, "%s", what);
        lv->problem_new = 1;
    }
    pthread_mutex_unlock(&lv->state_mu);
}

/* ---- ingest thread ----------------------------------------------------------- */

static int on_record(void *ctx, uint32_t pid, const tm_wire_rec *rec)
{
    live *lv = ctx;
    if (pid != lv->pid)
        return 0; /* other processes (traced children) are not shown */
    if (!lv->locked) {
        /* Taken here, not around the pump: the pump polls before it
         * delivers anything and returns right after, so the lock is never
         * held while it waits. */
        pthread_mutex_lock(&lv->store_mu);
        lv->locked = 1;
    }
    tm_err err = {0};
    if (tm_store_apply(lv->store, rec, &err) != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "the trace is inconsistent: %s", err.msg);
        note_problem(lv, msg);
    }
    lv->applied++;
    if (++lv->batch >= BATCH)
        return PUMP_STOP; /* the record is consumed; the pump hands back */
    return 0;
}

static void *ingest_main(void *arg)
{
    live *lv = arg;
    int seen_exit = 0;
    while (!atomic_load(&lv->stop)) {
        int sig = atomic_exchange(&lv->kill_sig, 0);
        if (sig)
            tm_session_kill(lv->sess, sig);
        tm_err err = {0};
        uint64_t before = lv->applied;
        int rc = tm_session_pump(lv->sess, 50, on_record, lv, &err);
        if (lv->locked) {
            lv->locked = 0;
            lv->batch = 0;
            pthread_mutex_unlock(&lv->store_mu);
        }
        if (lv->applied != before) {
            atomic_fetch_add(&lv->gen, 1);
            wake(lv);
        }
        int ws;
        if (!seen_exit && tm_session_exited(lv->sess, &ws)) {
            seen_exit = 1;
            pthread_mutex_lock(&lv->state_mu);
            lv->exited = 1;
            lv->wstatus = ws;
            pthread_mutex_unlock(&lv->state_mu);
            wake(lv);
        }
        if (err.code != TM_OK)
            note_problem(lv, err.msg);
        if (rc == 0)
            break;
        if (rc < 0) {
            struct timespec ts = {0, 100000000}; /* a channel error: do not spin */
            nanosleep(&ts, NULL);
        }
    }
    pthread_mutex_lock(&lv->state_mu);
    lv->done = 1;
    pthread_mutex_unlock(&lv->state_mu);
    wake(lv);
    return NULL;
}

/* ---- io thread ---------------------------------------------------------------- */

static void *io_main(void *arg)
{
    live *lv = arg;
    char buf[65536];
    while (!atomic_load(&lv->stop)) {
        struct pollfd p[2] = {{lv->pty_fd, POLLIN, 0}, {lv->stop_r, POLLIN, 0}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        ssize_t r = read(lv->pty_fd, buf, sizeof buf);
        if (r > 0) {
            tui_output_feed(lv->out, buf, (size_t)r);
            wake(lv);
            continue;
        }
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        break; /* EIO: every holder of the terminal's other side has gone */
    }
    return NULL;
}

/* ---- setup helpers -------------------------------------------------------------- */

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    /* Signals (resize, Ctrl-C from kill, ...) go to the UI thread only. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* $TMPDIR/tmtop-<pid>.log, created new (never through an existing name). */
static int open_log(pid_t pid, char *path, size_t len)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0])
        dir = "/tmp";
    for (int i = 1; i < 100; i++) {
        if (i == 1)
            snprintf(path, len, "%s/tmtop-%ld.log", dir, (long)pid);
        else
            snprintf(path, len, "%s/tmtop-%ld-%d.log", dir, (long)pid, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

static void on_quit_signal(int sig)
{
    quit_signal = sig;
    if (sig_wake_fd >= 0) {
        int e = errno;
        char b = 2;
        if (write(sig_wake_fd, &b, 1) < 0) {
            /* the UI is awake already */
        }
        errno = e;
    }
}

static void on_fatal_signal(int sig)
{
    tui_screen_emergency(); /* leave no garbage on the terminal, then die as we would have */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(struct sigaction *saved)
{
    static const int quit_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    static const int fatal_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_quit_signal;
    for (size_t i = 0; i < 4; i++)
        sigaction(quit_sigs[i], &sa, &saved[i]);
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < 5; i++)
        sigaction(fatal_sigs[i], &sa, &saved[4 + i]);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, &saved[9]);
}

static void restore_signals(const struct sigaction *saved)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV,
                               SIGBUS, SIGFPE,  SIGILL, SIGABRT, SIGPIPE};
    for (size_t i = 0; i < 10; i++)
        sigaction(sigs[i], &saved[i], NULL);
}

static void lock_store(void *ctx)
{
    pthread_mutex_lock(&((live *)ctx)->store_mu);
}

static void unlock_store(void *ctx)
{
    pthread_mutex_unlock(&((live *)ctx)->store_mu);
}

typedef struct data_ctx {
    live *lv;
    tui_resolver *res;
} data_ctx;

static void data_lock(void *ctx)
{
    lock_store(((data_ctx *)ctx)->lv);
}

static void data_unlock(void *ctx)
{
    unlock_store(((data_ctx *)ctx)->lv);
}

static uint64_t data_pending(void *ctx)
{
    return tui_resolver_pending_answers(((data_ctx *)ctx)->res);
}

/* The command as typed, for the title bar. */
static char *join_argv(char *const *argv)
{
    size_t n = 1;
    for (char *const *a = argv; *a; a++)
        n += strlen(*a) + 1;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    for (char *const *a = argv; *a; a++) {
        size_t k = strlen(*a);
        if (p != s)
            *p++ = ' ';
        memcpy(p, *a, k);
        p += k;
    }
    *p = '\0';
    return s;
}

/* ---- the UI loop ------------------------------------------------------------------ */

typedef struct ui {
    live *lv;
    tui_model *m;
    tui_screen *scr;
    tui_grid grid;
    int dirty;
    uint64_t seen_gen, last_refresh, quit_at, killed_at;
    uint64_t pace; /* time between two refreshes */
    uint64_t last_draw, seen_out;
    int dirty_later; /* something to draw, but not before REFRESH_NS after the last draw */
    int quitting;
} ui;

static void ui_resize(ui *u)
{
    int rows, cols;
    tui_screen_size(u->scr, &rows, &cols);
    if (tui_grid_init(&u->grid, rows, cols) == 0)
        tui_model_resize(u->m, rows, cols);
    /* the program's terminal follows ours */
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(u->lv->pty_fd, TIOCSWINSZ, &ws);
    u->dirty = 1;
}

static void ui_begin_quit(ui *u, uint64_t now)
{
    if (u->quitting)
        return;
    u->quitting = 1;
    u->quit_at = now;
    if (!u->m->target.exited) {
        atomic_store(&u->lv->kill_sig, SIGTERM);
        u->m->target.stopping = 1;
        u->dirty = 1;
    }
}

static void ui_sync_target(ui *u)
{
    live *lv = u->lv;
    tui_target t = u->m->target;
    pthread_mutex_lock(&lv->state_mu);
    t.exited = lv->exited;
    t.wstatus = lv->wstatus;
    t.done = lv->done;
    char problem[320] = "";
    if (lv->problem_new) {
        lv->problem_new = 0;
        snprintf(problem, sizeof problem, "%s", lv->problem);
    }
    pthread_mutex_unlock(&lv->state_mu);
    if (t.exited != u->m->target.exited || t.done != u->m->target.done) {
        tui_model_set_target(u->m, &t);
        u->dirty = 1;
    }
    if (problem[0]) {
        tui_model_message(u->m, 1, "%s", problem);
        u->dirty = 1;
    }
}

static int ui_loop(ui *u)
{
    live *lv = u->lv;
    tui_model *m = u->m;
    ui_resize(u);
    tui_model_refresh(m, now_ns());
    u->last_refresh = now_ns();
    u->pace = REFRESH_NS;
    for (;;) {
        uint64_t now = now_ns();
        ui_sync_target(u);
        if (quit_signal)
            ui_begin_quit(u, now);
        if (u->quitting) {
            if (m->target.exited)
                break;
            if (!u->killed_at && now - u->quit_at >= KILL_GRACE_NS) {
                atomic_store(&lv->kill_sig, SIGKILL);
                u->killed_at = now;
            }
        }

        /* new data: a refresh at most every `pace` (REFRESH_NS, longer when
         * a query takes long, so that the store's lock stays free for the
         * ingest thread at least nine tenths of the time) */
        uint64_t gen = atomic_load(&lv->gen);
        int due = now - u->last_refresh >= u->pace;
        if (due && (gen != u->seen_gen || atomic_load(&lv->sym_news))) {
            atomic_store(&lv->sym_news, 0);
            if (gen != u->seen_gen) {
                u->seen_gen = gen;
                tui_model_refresh(m, now);
            } else {
                tui_model_requery(m);
            }
            uint64_t took = now_ns() - now;
            u->pace = took * 9 > REFRESH_NS ? took * 9 : REFRESH_NS;
            u->last_refresh = now;
            u->dirty = 1;
        }
        if (m->msg[0] && now >= m->msg_until && !m->write_path) {
            m->msg[0] = '\0';
            u->dirty = 1;
        }
        /* new output in the output view: drawn at the same capped rate */
        if (m->view == TUI_VIEW_OUTPUT) {
            uint64_t bytes = tui_output_bytes(lv->out, NULL);
            if (bytes != u->seen_out) {
                u->seen_out = bytes;
                u->dirty_later = 1;
            }
        }
        if (u->dirty_later && now - u->last_draw >= REFRESH_NS)
            u->dirty = 1;

        /* keys draw at once; only the cells that changed reach the terminal */
        if (u->dirty) {
            m->now_ns = now;
            tui_render(m, &u->grid);
            tui_screen_draw(u->scr, &u->grid);
            u->dirty = u->dirty_later = 0;
            u->last_draw = now;
        }

        /* sleep until a key, a wake-up, or the next possible refresh */
        int timeout = 250;
        if (gen != u->seen_gen || atomic_load(&lv->sym_news)) {
            uint64_t since = now - u->last_refresh;
            timeout = since >= u->pace ? 0 : (int)((u->pace - since) / 1000000) + 1;
        }
        if (u->dirty_later) {
            uint64_t since = now - u->last_draw;
            int t = since >= REFRESH_NS ? 0 : (int)((REFRESH_NS - since) / 1000000) + 1;
            timeout = t < timeout ? t : timeout;
        }
        if (u->quitting)
            timeout = 50;
        struct pollfd p[2] = {{0, POLLIN, 0}, {lv->wake_r, POLLIN, 0}};
        int n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && p[1].revents) {
            char buf[64];
            atomic_store(&lv->wake_pending, 0);
            while (read(lv->wake_r, buf, sizeof buf) > 0)
                ;
        }
        /* keys (also after EINTR: a resize arrives as SIGWINCH) */
        int k;
        while ((k = tui_screen_key(u->scr)) != -1) {
            if (k == TUI_KEY_RESIZE) {
                ui_resize(u);
                continue;
            }
            unsigned r = tui_model_key(m, k, now_ns());
            if (r & TUI_R_REDRAW)
                u->dirty = 1;
            if (r & TUI_R_QUIT)
                ui_begin_quit(u, now_ns());
        }
    }
    return m->target.exited ? tui_exit_status(m->target.wstatus) : 2;
}

/* ---- entry point ------------------------------------------------------------------- */

int tm_tui_available(void)
{
    return 1;
}

int tm_tui_run(const tm_tui_config *cfg)
{
    tm_err err = {0};
    char resolved[4096], log_path[4096] = "";
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fputs("tmtop: the live view needs a terminal; use --report to write a report\n", stderr);
        return 2;
    }
    /* Fail on a bad program before the screen flashes. */
    if (tm_tracer_check_program(cfg->argv[0], resolved, sizeof resolved, &err) != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        return 2;
    }
    setlocale(LC_CTYPE, ""); /* LC_CTYPE only: numbers keep their '.' */

    live lv;
    memset(&lv, 0, sizeof lv);
    lv.wake_r = lv.wake_w = lv.stop_r = lv.stop_w = lv.pty_fd = -1;
    pthread_mutex_init(&lv.store_mu, NULL);
    pthread_mutex_init(&lv.state_mu, NULL);
    int pw[2], ps[2];
    if (pipe2(pw, O_CLOEXEC | O_NONBLOCK) != 0 || pipe2(ps, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "tmtop: pipe: %s\n", strerror(errno));
        return 2;
    }
    lv.wake_r = pw[0];
    lv.wake_w = pw[1];
    lv.stop_r = ps[0];
    lv.stop_w = ps[1];

    struct sigaction saved[10];
    install_signals(saved);
    sig_wake_fd = lv.wake_w;

    int status = 2;
    char *program = join_argv(cfg->argv);
    tm_sym *sym = tm_sym_new(NULL);
    lv.store = tm_store_new();
    tui_resolver *res = NULL;
    tui_model *m = NULL;
    pthread_t ingest_t, io_t;
    int have_ingest = 0, have_io = 0;
    ui u;
    memset(&u, 0, sizeof u);
    data_ctx dc = {&lv, NULL};
    if (!program || !sym || !lv.store) {
        fputs("tmtop: out of memory\n", stderr);
        goto out;
    }
    res = tui_resolver_new(tm_sym_resolver(sym), on_symbols, &lv);
    if (!res) {
        fputs("tmtop: cannot start the symbolizer thread\n", stderr);
        goto out;
    }
    dc.res = res;

    u.scr = tui_screen_open(stdin, stdout, NULL, 0, &err);
    if (!u.scr) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        goto out;
    }
    int rows, cols;
    tui_screen_size(u.scr, &rows, &cols);
    tm_launch l = {.argv = cfg->argv,
                   .hook_path = cfg->hook_path,
                   .max_frames = cfg->frames,
                   .use_pty = 1,
                   .pty_rows = (unsigned short)rows,
                   .pty_cols = (unsigned short)cols};
    lv.sess = tm_session_start(&l, &err);
    if (!lv.sess) {
        tui_screen_close(u.scr);
        u.scr = NULL;
        fprintf(stderr, "tmtop: %s\n", err.msg);
        goto out;
    }
    lv.pid = (uint32_t)tm_session_pid(lv.sess);
    lv.pty_fd = tm_session_pty_fd(lv.sess);
    int log_fd = open_log((pid_t)lv.pid, log_path, sizeof log_path);
    if (log_fd < 0)
        log_path[0] = '\0';
    lv.out = tui_output_new(SCROLLBACK, log_fd);

    tui_model_config mc = {
        .data = {.store = lv.store,
                 .res = tui_resolver_front(res),
                 .lock = data_lock,
                 .unlock = data_unlock,
                 .pending = data_pending,
                 .ctx = &dc},
        .query = cfg->query,
        .program = program,
        .frames = cfg->frames,
        .log_path = log_path[0] ? log_path : NULL,
        .output = lv.out,
        .unicode = tui_screen_unicode(u.scr),
    };
    m = lv.out ? tui_model_new(&mc) : NULL;
    if (!m || start_thread(&ingest_t, ingest_main, &lv) != 0) {
        tui_screen_close(u.scr);
        u.scr = NULL;
        fputs("tmtop: out of memory\n", stderr);
        tm_session_kill(lv.sess, SIGKILL);
        while (tm_session_pump(lv.sess, 1000, NULL, NULL, &err) > 0)
            ;
        goto out;
    }
    have_ingest = 1;
    have_io = start_thread(&io_t, io_main, &lv) == 0;
    tui_target t = {.pid = (pid_t)lv.pid, .started = 1};
    tui_model_set_target(m, &t);

    u.lv = &lv;
    u.m = m;
    status = ui_loop(&u);
    tui_screen_close(u.scr);
    u.scr = NULL;

out:
    atomic_store(&lv.stop, 1);
    if (lv.stop_w >= 0) {
        char b = 1;
        if (write(lv.stop_w, &b, 1) < 0) {
            /* the io thread is gone already */
        }
    }
    if (have_io)
        pthread_join(io_t, NULL);
    if (have_ingest)
        pthread_join(ingest_t, NULL);
    sig_wake_fd = -1;
    restore_signals(saved);
    if (m && m->target.exited) {
        char ex[96];
        int log_failed = 0;
        uint64_t bytes = lv.out ? tui_output_bytes(lv.out, &log_failed) : 0;
        fprintf(stderr, "tmtop: %s %s", cfg->argv[0], tui_model_exit_text(m, ex, sizeof ex));
        if (bytes && log_path[0] && !log_failed)
            fprintf(stderr, "; its output is in %s", log_path);
        fputc('\n', stderr);
        if (!bytes && log_path[0])
            unlink(log_path); /* nothing was written: no file left behind */
    }
    tui_model_free(m); /* the snapshots, before the store they borrow */
    tui_grid_fini(&u.grid);
    tui_resolver_free(res);
    tm_store_free(lv.store);
    tm_sym_free(sym); /* after the store: its cached frames borrow the strings */
    tm_session_free(lv.sess);
    tui_output_free(lv.out);
    free(program);
    int fds[] = {lv.wake_r, lv.wake_w, lv.stop_r, lv.stop_w};
    for (size_t i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pthread_mutex_destroy(&lv.store_mu);
    pthread_mutex_destroy(&lv.state_mu);
    return status;
}
