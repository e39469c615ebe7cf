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
 * terminal or a paused view therefore never slows the ingestion down.
 *
 * With --follow-fork every traced process has its own store (created by the
 * ingest thread when its stream begins) and its own model (created by the UI
 * thread when the user first switches to it): snapshots, diffs, key and
 * filters belong to one process.  With --record the ingest thread also hands
 * every record to the recording's writer, which buffers.  With --load there
 * is no program, no session and no thread but the UI (and the resolver): the
 * stores come filled from the recording. */
#define _GNU_SOURCE
#include "tui.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "tracefile.h"
#include "tracer.h"

#define REFRESH_NS 100000000ull /* at most ten refreshes a second */
#define KILL_GRACE_NS 2000000000ull
#define BATCH 4096       /* records applied per lock hold */
#define PUMP_STOP 0x7f00 /* on_record's "let the UI in" answer */
#define SCROLLBACK 10000 /* lines of program output kept */
#define MAX_PROCS TM_TRACEFILE_MAX_PROCS

typedef struct live {
    tm_session *sess;
    tm_store *store; /* the target's: stores[0] */
    uint32_t pid;
    /* every traced process; nprocs grows under store_mu (ingest thread) */
    tm_store *stores[MAX_PROCS];
    uint32_t pids[MAX_PROCS];
    atomic_size_t nprocs;
    size_t last; /* ingest thread: index of the last record's process */
    int follow, loaded, owns_stores;
    tm_tracefile_writer *rec; /* --record: ingest thread only, until joined */
    int rec_failed;
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

/* The store of pid (ingest thread), created for a new process when
 * following forks; NULL when it is not shown.  Called with store_mu held. */
static tm_store *store_of(live *lv, uint32_t pid)
{
    size_t n = atomic_load(&lv->nprocs);
    if (lv->last < n && lv->pids[lv->last] == pid)
        return lv->stores[lv->last];
    for (size_t i = 0; i < n; i++)
        if (lv->pids[i] == pid) {
            lv->last = i;
            return lv->stores[i];
        }
    if (!lv->follow || n == MAX_PROCS)
        return NULL;
    tm_store *s = tm_store_new();
    if (!s)
        return NULL;
    lv->stores[n] = s;
    lv->pids[n] = pid;
    lv->last = n;
    atomic_store(&lv->nprocs, n + 1); /* after the slot is filled: the UI reads up to nprocs */
    return s;
}

static int on_record(void *ctx, uint32_t pid, const tm_wire_rec *rec)
{
    live *lv = ctx;
    if (lv->rec && !lv->rec_failed && tm_tracefile_record(lv->rec, pid, rec) != 0) {
        lv->rec_failed = 1;
        note_problem(lv, "the recording cannot be written; tracing goes on");
    }
    if (pid != lv->pid && !lv->follow)
        return 0; /* other processes are shown with --follow-fork only */
    if (!lv->locked) {
        /* Taken here, not around the pump: the pump polls before it
         * delivers anything and returns right after, so the lock is never
         * held while it waits. */
        pthread_mutex_lock(&lv->store_mu);
        lv->locked = 1;
    }
    tm_err err = {0};
    tm_store *st = store_of(lv, pid);
    if (st && tm_store_apply(st, rec, &err) != 0) {
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
    tui_model *m;                 /* the model shown: models[cur] */
    tui_model *models[MAX_PROCS]; /* one per process, created when first shown */
    size_t cur;
    tui_model_config mc; /* for the models created later; store set per process */
    tui_screen *scr;
    tui_grid grid;
    int dirty;
    uint64_t seen_gen, last_refresh, quit_at, killed_at;
    uint64_t pace; /* time between two refreshes */
    uint64_t last_draw, seen_out;
    int dirty_later; /* something to draw, but not before REFRESH_NS after the last draw */
    int quitting;
    int picking;     /* P: the list of processes is open */
    size_t pick_pos; /* its selection, a position in ui_order */
} ui;

static void ui_resize(ui *u)
{
    int rows, cols;
    tui_screen_size(u->scr, &rows, &cols);
    if (tui_grid_init(&u->grid, rows, cols) == 0)
        for (size_t i = 0; i < MAX_PROCS; i++)
            if (u->models[i])
                tui_model_resize(u->models[i], rows, cols);
    /* the program's terminal follows ours */
    if (u->lv->pty_fd >= 0) {
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        ioctl(u->lv->pty_fd, TIOCSWINSZ, &ws);
    }
    u->dirty = 1;
}

/* The target's model: its target field is the program's state. */
static const tui_target *ui_target(const ui *u)
{
    return &u->models[0]->target;
}

static void ui_begin_quit(ui *u, uint64_t now)
{
    if (u->quitting)
        return;
    u->quitting = 1;
    u->quit_at = now;
    if (!ui_target(u)->exited && !u->lv->loaded) {
        atomic_store(&u->lv->kill_sig, SIGTERM);
        for (size_t i = 0; i < MAX_PROCS; i++)
            if (u->models[i])
                u->models[i]->target.stopping = 1;
        u->dirty = 1;
    }
}

/* A process's state for its model: the target's is the program's; a
 * child's stream that ended counts as exited (no wait status: the title says
 * which), and every process is done when all streams are. */
static void ui_sync_target(ui *u)
{
    live *lv = u->lv;
    pthread_mutex_lock(&lv->state_mu);
    int exited = lv->exited, wstatus = lv->wstatus, done = lv->done;
    char problem[320] = "";
    if (lv->problem_new) {
        lv->problem_new = 0;
        snprintf(problem, sizeof problem, "%s", lv->problem);
    }
    pthread_mutex_unlock(&lv->state_mu);
    for (size_t i = 0; i < MAX_PROCS; i++) {
        tui_model *m = u->models[i];
        if (!m)
            continue;
        tui_target t = m->target;
        t.done = done;
        if (i == 0) {
            t.exited = exited;
            t.wstatus = wstatus;
        } else {
            t.exited = done || m->totals.ended || m->totals.execd;
        }
        if (t.exited != m->target.exited || t.done != m->target.done) {
            tui_model_set_target(m, &t);
            u->dirty |= m == u->m;
        }
    }
    if (problem[0]) {
        tui_model_message(u->m, 1, "%s", problem);
        u->dirty = 1;
    }
}

/* Shows process i (0: the target), creating its model the first time. */
static void ui_show_proc(ui *u, size_t i, uint64_t now)
{
    live *lv = u->lv;
    if (i >= atomic_load(&lv->nprocs))
        return;
    if (!u->models[i]) {
        tui_model_config mc = u->mc;
        mc.data.store = lv->stores[i];
        tui_model *m = tui_model_new(&mc);
        if (!m) {
            tui_model_message(u->m, 1, "out of memory");
            return;
        }
        tui_target t = {.pid = (pid_t)lv->pids[i], .started = 1};
        tui_model_set_target(m, &t);
        tui_model_resize(m, u->grid.rows, u->grid.cols);
        u->models[i] = m;
    }
    u->cur = i;
    u->m = u->models[i];
    ui_sync_target(u);
    tui_model_refresh(u->m, now);
    u->dirty = 1;
}

/* The processes in the order the view steps through them, as the report
 * lists them: the target, then each process right after its parent (depth
 * first, siblings in the order their streams began; a grandchild's stream
 * may begin before its parent's), processes whose parent is not traced
 * last.  Writes store indexes to order; returns how many. */
static size_t ui_order(const ui *u, size_t *order)
{
    live *lv = u->lv;
    size_t n = atomic_load(&lv->nprocs);
    uint32_t ppid[MAX_PROCS];
    pthread_mutex_lock(&lv->store_mu);
    for (size_t i = 0; i < n; i++) {
        tm_totals t;
        tm_store_totals(lv->stores[i], &t);
        ppid[i] = t.ppid;
    }
    pthread_mutex_unlock(&lv->store_mu);
    return tm_proc_order(n, lv->pids, ppid, order);
}

/* The position of the shown process in ui_order, from 0. */
static size_t ui_position(const ui *u, size_t *n)
{
    size_t order[MAX_PROCS];
    *n = ui_order(u, order);
    for (size_t i = 0; i < *n; i++)
        if (order[i] == u->cur)
            return i;
    return 0;
}

/* n / N: the next or the previous process, in ui_order. */
static void ui_switch(ui *u, int step, uint64_t now)
{
    size_t order[MAX_PROCS];
    size_t n = ui_order(u, order);
    if (n <= 1) {
        tui_model_message(u->m, 1,
                          u->lv->follow
                              ? "only one process is traced so far"
                              : "one process: run with --follow-fork to trace its children");
        u->dirty = 1;
        return;
    }
    size_t pos = 0;
    while (pos < n && order[pos] != u->cur)
        pos++;
    ui_show_proc(u, order[(pos + (step > 0 ? 1 : n - 1)) % n], now);
}

/* The title bar when there are several processes (or a recording): which
 * process is shown, its state, and how many there are. */
static void ui_draw_title(const ui *u)
{
    const live *lv = u->lv;
    const tui_model *m = u->m;
    if (!lv->follow && !lv->loaded)
        return; /* render.c's title says it all */
    size_t n, pos = ui_position(u, &n);
    tui_grid *g = (tui_grid *)&u->grid;
    if (g->rows < TUI_MIN_ROWS || g->cols < TUI_MIN_COLS)
        return;
    char state[128], right[96], who[64];
    if (u->cur == 0) {
        tui_model_exit_text(m, state, sizeof state);
        snprintf(who, sizeof who, "pid %ld", (long)m->target.pid);
    } else {
        snprintf(state, sizeof state, "%s",
                 m->totals.execd   ? "exec'd"
                 : m->totals.ended ? "exited"
                 : m->target.done  ? "ended"
                                   : "running");
        snprintf(who, sizeof who, "pid %ld child of %ld", (long)m->target.pid,
                 (long)m->totals.ppid);
    }
    if (m->target.done && !m->totals.ended && !m->totals.execd)
        snprintf(state + strlen(state), sizeof state - strlen(state), ", incomplete");
    if (lv->loaded)
        snprintf(state + strlen(state), sizeof state - strlen(state), " (recording)");
    snprintf(right, sizeof right, "process %zu/%zu%s  ?:help ", pos + 1, n, n > 1 ? " n:next" : "");
    char exe[256];
    if (u->cur == 0) {
        snprintf(exe, sizeof exe, "%s", m->program);
    } else {
        /* the store's, under its lock: the ingest thread may be applying HELLO */
        pthread_mutex_lock((pthread_mutex_t *)&lv->store_mu);
        snprintf(exe, sizeof exe, "%s", tm_store_exe(lv->stores[u->cur]));
        pthread_mutex_unlock((pthread_mutex_t *)&lv->store_mu);
    }
    for (int c = 0; c < g->cols; c++)
        g->cells[c] = (tui_cell){' ', TUI_ROLE_TITLE};
    int rlen = (int)strlen(right);
    int c = tui_grid_put(g, 0, 0, " tmtop ", TUI_ROLE_TITLE, -1);
    c += tui_grid_put(g, 0, c, who, TUI_ROLE_TITLE, -1);
    c += tui_grid_put(g, 0, c, "  ", TUI_ROLE_TITLE, -1);
    int bad = u->cur == 0 && m->target.exited &&
              !(WIFEXITED(m->target.wstatus) && WEXITSTATUS(m->target.wstatus) == 0);
    c += tui_grid_put(g, 0, c, state, bad ? TUI_ROLE_BAD : TUI_ROLE_TITLE, -1);
    c += tui_grid_put(g, 0, c, "  ", TUI_ROLE_TITLE, -1);
    if (c < g->cols - rlen - 1)
        tui_grid_put(g, 0, c, exe[0] ? exe : "?", TUI_ROLE_TITLE, g->cols - rlen - 1 - c);
    tui_grid_put(g, 0, g->cols - rlen < 0 ? 0 : g->cols - rlen, right, TUI_ROLE_TITLE, -1);
}

/* P: the processes as a list over the table, one row each: pid, parent,
 * state, traced memory and blocks as of now, program. */
static void ui_draw_picker(const ui *u)
{
    const live *lv = u->lv;
    const tui_layout *l = &u->m->lay;
    tui_grid *g = (tui_grid *)&u->grid;
    if (l->too_small || g->rows < TUI_MIN_ROWS || g->cols < TUI_MIN_COLS)
        return;
    size_t order[MAX_PROCS];
    size_t n = ui_order(u, order);
    for (int r = l->title_row; r < l->body_top + l->body_rows; r++)
        for (int c = 0; c < g->cols; c++)
            g->cells[r * g->cols + c] = (tui_cell){' ', TUI_ROLE_NORMAL};
    for (int c = 0; c < g->cols; c++)
        g->cells[l->title_row * g->cols + c] = (tui_cell){' ', TUI_ROLE_MODE};
    char line[512];
    snprintf(line, sizeof line, " Processes: %zu traced  (Enter: show, Esc: close)", n);
    tui_grid_put(g, l->title_row, 0, line, TUI_ROLE_MODE, -1);
    snprintf(line, sizeof line, "  %8s %8s  %-10s %10s %8s  %s", "Pid", "Parent", "State", "Traced",
             "Blocks", "Program");
    tui_grid_put(g, l->head_row, 0, line, TUI_ROLE_HEAD, -1);
    size_t top = u->pick_pos >= (size_t)l->body_rows ? u->pick_pos - (size_t)l->body_rows + 1 : 0;
    for (size_t i = top; i < n && (int)(i - top) < l->body_rows; i++) {
        tm_totals t;
        char exe[256], size[TM_SIZE_BUF];
        pthread_mutex_lock((pthread_mutex_t *)&lv->store_mu);
        tm_store_totals(lv->stores[order[i]], &t);
        snprintf(exe, sizeof exe, "%s", tm_store_exe(lv->stores[order[i]]));
        pthread_mutex_unlock((pthread_mutex_t *)&lv->store_mu);
        const char *state = t.execd                                     ? "exec'd"
                            : t.ended                                   ? "exited"
                            : lv->done || (order[i] == 0 && lv->exited) ? "incomplete"
                                                                        : "running";
        snprintf(line, sizeof line, "%c %8u %8u  %-10s %10s %8" PRIu64 "  %s",
                 order[i] == u->cur ? '*' : ' ', t.pid, t.ppid, state,
                 tm_format_size(size, (double)t.current, 0), t.blocks, exe);
        tui_grid_put(g, l->body_top + (int)(i - top), 0, line,
                     i == u->pick_pos ? TUI_ROLE_SELECTED : TUI_ROLE_NORMAL, -1);
    }
}

/* Keys while the list is open. */
static void ui_picker_key(ui *u, tui_action a, uint64_t now)
{
    size_t order[MAX_PROCS];
    size_t n = ui_order(u, order);
    size_t page = u->m->lay.body_rows > 1 ? (size_t)u->m->lay.body_rows : 1;
    switch (a) {
    case TUI_ACT_UP:
        u->pick_pos = u->pick_pos ? u->pick_pos - 1 : 0;
        break;
    case TUI_ACT_DOWN:
        u->pick_pos = u->pick_pos + 1 < n ? u->pick_pos + 1 : u->pick_pos;
        break;
    case TUI_ACT_PGUP:
        u->pick_pos = u->pick_pos > page ? u->pick_pos - page : 0;
        break;
    case TUI_ACT_PGDN:
        u->pick_pos = u->pick_pos + page < n ? u->pick_pos + page : n - 1;
        break;
    case TUI_ACT_HOME:
        u->pick_pos = 0;
        break;
    case TUI_ACT_END:
        u->pick_pos = n - 1;
        break;
    case TUI_ACT_ENTER:
        u->picking = 0;
        if (u->pick_pos < n)
            ui_show_proc(u, order[u->pick_pos], now);
        break;
    case TUI_ACT_BACK:
    case TUI_ACT_PROC_PICK:
        u->picking = 0;
        break;
    case TUI_ACT_QUIT:
        u->picking = 0;
        ui_begin_quit(u, now);
        break;
    default:
        break;
    }
    u->dirty = 1;
}

/* Keys the UI answers itself: process switching, and in a recording the
 * keys that need a running program.  Returns 1 when the key was taken. */
static int ui_own_key(ui *u, int k, uint64_t now)
{
    tui_model *m = u->m;
    tui_action a = tui_keymap_lookup(k);
    if (u->picking) {
        ui_picker_key(u, a, now);
        return 1;
    }
    if (m->prompt || m->view == TUI_VIEW_HELP || m->view == TUI_VIEW_PICK)
        return 0;
    if (a == TUI_ACT_PROC_NEXT || a == TUI_ACT_PROC_PREV) {
        ui_switch(u, a == TUI_ACT_PROC_NEXT ? 1 : -1, now);
        return 1;
    }
    if (a == TUI_ACT_PROC_PICK) {
        size_t n;
        u->pick_pos = ui_position(u, &n);
        u->picking = 1;
        u->dirty = 1;
        return 1;
    }
    if (u->lv->loaded && (a == TUI_ACT_PAUSE || a == TUI_ACT_OUTPUT)) {
        tui_model_message(m, 1, "%s",
                          a == TUI_ACT_PAUSE
                              ? "a recording: nothing runs, nothing to pause"
                              : "a recording: the program's output was not recorded");
        u->dirty = 1;
        return 1;
    }
    return 0;
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
        m = u->m;
        if (quit_signal)
            ui_begin_quit(u, now);
        if (u->quitting) {
            if (ui_target(u)->exited || lv->loaded)
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
            ui_draw_title(u);
            if (u->picking)
                ui_draw_picker(u);
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
            if (ui_own_key(u, k, now_ns())) {
                m = u->m;
                continue;
            }
            unsigned r = tui_model_key(m, k, now_ns());
            if (r & TUI_R_REDRAW)
                u->dirty = 1;
            if (r & TUI_R_QUIT)
                ui_begin_quit(u, now_ns());
        }
    }
    if (lv->loaded)
        return 0;
    return ui_target(u)->exited ? tui_exit_status(ui_target(u)->wstatus) : 2;
}

/* ---- entry point ------------------------------------------------------------------- */

int tm_tui_available(void)
{
    return 1;
}

/* The resolver of a recording: modules changed on disk since the recording
 * answer module+offset (see tm_tui_config.stale). */
typedef struct stale_res {
    tm_resolver inner;
    int (*stale)(void *ctx, const tm_module *mod);
    void *ctx;
} stale_res;

static int stale_resolve(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    stale_res *sr = ctx;
    if (mod && max >= 1 && sr->stale(sr->ctx, mod)) {
        memset(out, 0, sizeof *out);
        out->module = mod->path;
        out->address = address;
        out->offset = address - mod->load_bias;
        return 1;
    }
    return sr->inner.resolve(sr->inner.ctx, mod, address, out, max);
}

int tm_tui_run(const tm_tui_config *cfg)
{
    tm_err err = {0};
    char resolved[4096], log_path[4096] = "";
    int loaded = cfg->procs != NULL;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fputs("tmtop: the live view needs a terminal; use --report to write a report\n", stderr);
        return 2;
    }
    /* Fail on a bad program before the screen flashes. */
    if (!loaded && tm_tracer_check_program(cfg->argv[0], resolved, sizeof resolved, &err) != 0) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        return 2;
    }
    if (loaded && (cfg->nprocs < 1 || cfg->nprocs > MAX_PROCS)) {
        fputs("tmtop: the recording holds no process to show\n", stderr);
        return 2;
    }
    setlocale(LC_CTYPE, ""); /* LC_CTYPE only: numbers keep their '.' */

    live lv;
    memset(&lv, 0, sizeof lv);
    lv.wake_r = lv.wake_w = lv.stop_r = lv.stop_w = lv.pty_fd = -1;
    lv.follow = cfg->follow_fork;
    lv.loaded = loaded;
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
    /* The recording, like the program, fails before the screen opens. */
    if (!loaded && cfg->record_path &&
        !(lv.rec = tm_tracefile_create(cfg->record_path, cfg->frames,
                                       cfg->follow_fork ? TM_TRACEFILE_FOLLOW_FORK : 0,
                                       cfg->argv[0], &err))) {
        fprintf(stderr, "tmtop: %s\n", err.msg);
        for (size_t i = 0; i < 2; i++) {
            close(pw[i]);
            close(ps[i]);
        }
        return 2;
    }

    struct sigaction saved[10];
    install_signals(saved);
    sig_wake_fd = lv.wake_w;

    int status = 2;
    char *program = loaded ? strdup(cfg->program ? cfg->program : "") : join_argv(cfg->argv);
    tm_sym *sym = tm_sym_new(NULL);
    if (loaded) {
        for (size_t i = 0; i < cfg->nprocs; i++) {
            tm_totals t;
            tm_store_totals(cfg->procs[i], &t);
            lv.stores[i] = cfg->procs[i];
            lv.pids[i] = t.pid;
        }
        atomic_store(&lv.nprocs, cfg->nprocs);
        lv.exited = cfg->exited;
        lv.wstatus = cfg->wstatus;
        lv.done = 1;
    } else {
        lv.stores[0] = tm_store_new();
        lv.owns_stores = 1;
    }
    lv.store = lv.stores[0];
    tui_resolver *res = NULL;
    pthread_t ingest_t, io_t;
    int have_ingest = 0, have_io = 0;
    ui u;
    memset(&u, 0, sizeof u);
    data_ctx dc = {&lv, NULL};
    stale_res sr = {tm_sym_resolver(sym), cfg->stale, cfg->stale_ctx};
    if (!program || !sym || !lv.store) {
        fputs("tmtop: out of memory\n", stderr);
        goto out;
    }
    tm_resolver base = cfg->stale ? (tm_resolver){stale_resolve, &sr} : tm_sym_resolver(sym);
    res = tui_resolver_new(base, on_symbols, &lv);
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
    if (!loaded) {
        tm_launch l = {.argv = cfg->argv,
                       .hook_path = cfg->hook_path,
                       .max_frames = cfg->frames,
                       .use_pty = 1,
                       .pty_rows = (unsigned short)rows,
                       .pty_cols = (unsigned short)cols,
                       .follow_fork = cfg->follow_fork};
        lv.sess = tm_session_start(&l, &err);
        if (!lv.sess) {
            tui_screen_close(u.scr);
            u.scr = NULL;
            fprintf(stderr, "tmtop: %s\n", err.msg);
            goto out;
        }
        lv.pid = (uint32_t)tm_session_pid(lv.sess);
        lv.pids[0] = lv.pid;
        atomic_store(&lv.nprocs, 1);
        lv.pty_fd = tm_session_pty_fd(lv.sess);
        int log_fd = open_log((pid_t)lv.pid, log_path, sizeof log_path);
        if (log_fd < 0)
            log_path[0] = '\0';
        lv.out = tui_output_new(SCROLLBACK, log_fd);
    } else {
        lv.pid = lv.pids[0];
    }

    u.mc = (tui_model_config){
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
    tui_model *m = lv.out || loaded ? tui_model_new(&u.mc) : NULL;
    if (!m || (!loaded && start_thread(&ingest_t, ingest_main, &lv) != 0)) {
        tui_screen_close(u.scr);
        u.scr = NULL;
        fputs("tmtop: out of memory\n", stderr);
        if (lv.sess) {
            tm_session_kill(lv.sess, SIGKILL);
            while (tm_session_pump(lv.sess, 1000, NULL, NULL, &err) > 0)
                ;
        }
        tui_model_free(m);
        goto out;
    }
    u.models[0] = m;
    have_ingest = !loaded;
    have_io = !loaded && start_thread(&io_t, io_main, &lv) == 0;
    tui_target t = {.pid = (pid_t)lv.pid,
                    .started = 1,
                    .exited = lv.exited,
                    .wstatus = lv.wstatus,
                    .done = lv.done};
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
    if (!loaded && u.models[0] && u.models[0]->target.exited) {
        char ex[96];
        int log_failed = 0;
        uint64_t bytes = lv.out ? tui_output_bytes(lv.out, &log_failed) : 0;
        fprintf(stderr, "tmtop: %s %s", cfg->argv[0],
                tui_model_exit_text(u.models[0], ex, sizeof ex));
        if (bytes && log_path[0] && !log_failed)
            fprintf(stderr, "; its output is in %s", log_path);
        fputc('\n', stderr);
        if (!bytes && log_path[0])
            unlink(log_path); /* nothing was written: no file left behind */
    }
    if (lv.rec) {
        /* the ingest thread is joined: the writer is ours */
        if (!lv.sess) {
            tm_tracefile_discard(lv.rec); /* the program never started */
        } else if (tm_tracefile_finish(lv.rec, lv.pid, lv.exited, lv.wstatus, &err) != 0) {
            fprintf(stderr, "tmtop: %s\n", err.msg);
            if (status == 0)
                status = 2;
        } else {
            fprintf(stderr, "tmtop: recorded to %s\n", cfg->record_path);
        }
    }
    for (size_t i = 0; i < MAX_PROCS; i++)
        tui_model_free(u.models[i]); /* the snapshots, before the stores they borrow */
    tui_grid_fini(&u.grid);
    tui_resolver_free(res);
    if (lv.owns_stores)
        for (size_t i = 0; i < atomic_load(&lv.nprocs) || (i == 0 && lv.stores[0]); i++)
            tm_store_free(lv.stores[i]);
    tm_sym_free(sym); /* after the stores: their cached frames borrow the strings */
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
