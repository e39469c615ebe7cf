/* model.c - the live explorer's state machine: keys in, query results out. */
#define _GNU_SOURCE /* sigabbrev_np, open_memstream */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "output.h"
#include "report.h"

#define MSG_NS 4000000000ull         /* a footer message stays this long */
#define WRITE_WAIT_NS 10000000000ull /* a report waits at most this long for symbols */
#define SERIES_CAP 4096

/* ---- small helpers -------------------------------------------------------- */

/* The table rows last asked for: rows first .. first+n-1 in order. */
struct tui_rows {
    tm_stat *v;
    size_t first, n;
};

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void lock(tui_model *m)
{
    if (m->data.lock)
        m->data.lock(m->data.ctx);
}

static void unlock(tui_model *m)
{
    if (m->data.unlock)
        m->data.unlock(m->data.ctx);
}

static uint64_t pending_answers(tui_model *m)
{
    return m->data.pending ? m->data.pending(m->data.ctx) : 0;
}

static const char *base_name(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : path;
}

void tui_model_message(tui_model *m, int error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->msg, sizeof m->msg, fmt, ap);
    va_end(ap);
    m->msg_error = error;
    m->msg_until = m->now_ns + MSG_NS;
}

/* ---- source lines ---------------------------------------------------------- */

#define SRC_FILES 16
#define SRC_MAX_BYTES (8u << 20)

typedef struct srcfile {
    char *path;
    char *text;     /* NULL: unreadable */
    uint32_t *line; /* offsets of line starts */
    uint32_t nlines;
    uint64_t used; /* for eviction */
} srcfile;

struct tui_srccache {
    srcfile f[SRC_FILES];
    uint64_t clock;
    char out[256];
};

static void src_drop(srcfile *f)
{
    free(f->path);
    free(f->text);
    free(f->line);
    memset(f, 0, sizeof *f);
}

static void src_load(srcfile *f, const char *path)
{
    f->path = strdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SRC_MAX_BYTES) {
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *text = malloc(size + 1);
    while (text && got < size) {
        ssize_t r = read(fd, text + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!text)
        return;
    text[got] = '\0';
    uint32_t n = 1;
    for (size_t i = 0; i < got; i++)
        n += text[i] == '\n';
    f->line = malloc(n * sizeof *f->line);
    if (!f->line) {
        free(text);
        return;
    }
    f->line[0] = 0;
    f->nlines = 1;
    for (size_t i = 0; i < got; i++)
        if (text[i] == '\n') {
            text[i] = '\0';
            f->line[f->nlines++] = (uint32_t)(i + 1);
        }
    f->text = text;
}

const char *tui_model_source_line(const tui_model *m, const char *file, uint32_t line)
{
    struct tui_srccache *c = m->src;
    if (!c || !file || !line || file[0] != '/')
        return NULL;
    srcfile *f = NULL, *victim = &c->f[0];
    for (int i = 0; i < SRC_FILES; i++) {
        if (c->f[i].path && strcmp(c->f[i].path, file) == 0) {
            f = &c->f[i];
            break;
        }
        if (!c->f[i].path || c->f[i].used < victim->used)
            victim = &c->f[i];
    }
    if (!f) {
        src_drop(victim);
        src_load(victim, file);
        f = victim;
    }
    f->used = ++c->clock;
    if (!f->text || line > f->nlines)
        return NULL;
    const char *s = f->text + f->line[line - 1];
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = 0;
    for (; s[n] && n + 1 < sizeof c->out; n++)
        c->out[n] = s[n] == '\t' || s[n] == '\r' ? ' ' : s[n];
    while (n && c->out[n - 1] == ' ')
        n--;
    c->out[n] = '\0';
    return c->out;
}

/* ---- frames and keys ------------------------------------------------------ */

/* Whether two frames are the same key under key (as the store groups them).
 * A frame still waiting for its symbols is known only by its address. */
static int frame_same(const tm_frame *a, const tm_frame *b, tm_key key)
{
    if ((a->flags | b->flags) & TM_FRAME_PENDING)
        return a->address == b->address;
    if (a->file || b->file)
        return a->file && b->file && strcmp(a->file, b->file) == 0 &&
               (key == TM_KEY_FILENAME || a->line == b->line);
    int same_mod =
        (!a->module && !b->module) || (a->module && b->module && strcmp(a->module, b->module) == 0);
    if (key == TM_KEY_FILENAME)
        return same_mod;
    if (a->function || b->function)
        return a->function && b->function && strcmp(a->function, b->function) == 0 && same_mod;
    return same_mod && (a->module ? a->offset == b->offset : a->address == b->address);
}

static int frames_same(const tm_frame *a, uint32_t na, const tm_frame *b, uint32_t nb, tm_key key)
{
    if (na != nb)
        return 0;
    tm_key fk = key == TM_KEY_FILENAME ? TM_KEY_FILENAME : TM_KEY_LINENO;
    for (uint32_t i = 0; i < na; i++)
        if (!frame_same(&a[i], &b[i], fk))
            return 0;
    return 1;
}

static tm_frame *frames_dup(const tm_frame *f, uint32_t n)
{
    tm_frame *c = malloc((n ? n : 1) * sizeof *c);
    if (c && n)
        memcpy(c, f, n * sizeof *c);
    return c;
}

char *tui_frame_label(const tm_frame *f, tm_key key, char *buf, size_t len)
{
    if (f->flags & TM_FRAME_PENDING) {
        if (f->module)
            snprintf(buf, len, "%s+0x%" PRIx64 " ...", base_name(f->module), f->offset);
        else
            snprintf(buf, len, "0x%" PRIx64 " ...", f->address);
    } else if (f->file) {
        if (key == TM_KEY_FILENAME)
            snprintf(buf, len, "%s", base_name(f->file));
        else if (f->function)
            snprintf(buf, len, "%s:%" PRIu32 " %s", base_name(f->file), f->line, f->function);
        else
            snprintf(buf, len, "%s:%" PRIu32, base_name(f->file), f->line);
    } else if (key == TM_KEY_FILENAME) {
        snprintf(buf, len, "%s", f->module ? base_name(f->module) : "<unknown>");
    } else if (f->function) {
        snprintf(buf, len, "%s in %s", f->function, f->module ? base_name(f->module) : "??");
    } else if (f->module) {
        snprintf(buf, len, "%s+0x%" PRIx64, base_name(f->module), f->offset);
    } else {
        snprintf(buf, len, "0x%" PRIx64, f->address);
    }
    return buf;
}

char *tui_model_row_label(const tui_model *m, size_t row, char *buf, size_t len)
{
    buf[0] = '\0';
    const tm_stat *st = tui_model_stat(m, row);
    if (!st)
        return buf;
    if (m->key != TM_KEY_TRACEBACK || st->nframes == 0)
        return tui_frame_label(&st->frames[0], m->key, buf, len);
    /* a traceback: its frames from the site outward, "a.c:3 f < b.c:9 main" */
    size_t used = 0;
    for (uint32_t i = st->site_index; i < st->nframes && used + 1 < len; i++) {
        char one[256];
        tui_frame_label(&st->frames[i], TM_KEY_LINENO, one, sizeof one);
        int w = snprintf(buf + used, len - used, "%s%s", i > st->site_index ? " < " : "", one);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

int tui_model_row_pending(const tui_model *m, size_t row)
{
    const tm_stat *st = tui_model_stat(m, row);
    if (!st)
        return 0;
    uint32_t from = m->key == TM_KEY_TRACEBACK ? st->site_index : 0;
    uint32_t to = m->key == TM_KEY_TRACEBACK ? st->nframes : (st->nframes ? 1 : 0);
    for (uint32_t i = from; i < to; i++)
        if (st->frames[i].flags & TM_FRAME_PENDING)
            return 1;
    return 0;
}

/* ---- target --------------------------------------------------------------- */

int tui_exit_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return 1;
}

char *tui_model_exit_text(const tui_model *m, char *buf, size_t len)
{
    const tui_target *t = &m->target;
    if (!t->started)
        snprintf(buf, len, "starting");
    else if (!t->exited)
        snprintf(buf, len, t->stopping ? "stopping" : "running");
    else if (WIFEXITED(t->wstatus))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(t->wstatus));
    else if (WIFSIGNALED(t->wstatus)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(t->wstatus));
        snprintf(buf, len, "killed by SIG%s (signal %d)", abbrev ? abbrev : "?",
                 WTERMSIG(t->wstatus));
    } else
        snprintf(buf, len, "ended");
    return buf;
}

void tui_model_set_target(tui_model *m, const tui_target *t)
{
    m->target = *t;
}

/* ---- layout ---------------------------------------------------------------- */

tui_layout tui_layout_for(int rows, int cols)
{
    tui_layout l;
    memset(&l, 0, sizeof l);
    l.too_small = rows < TUI_MIN_ROWS || cols < TUI_MIN_COLS;
    if (rows < TUI_MIN_ROWS)
        rows = TUI_MIN_ROWS; /* keep the arithmetic sane; nothing is drawn */
    int extra = rows - TUI_MIN_ROWS;
    l.chart_top = 2;
    l.chart_rows = 4 + (extra > 0 ? extra / 4 : 0);
    if (l.chart_rows > 12)
        l.chart_rows = 12;
    l.title_row = l.chart_top + l.chart_rows;
    l.head_row = l.title_row + 1;
    l.body_top = l.head_row + 1;
    l.status_row = rows - 2;
    l.footer_row = rows - 1;
    l.body_rows = l.status_row - l.body_top;
    return l;
}

/* Lines a view can show at once. */
static size_t page_of(const tui_model *m, tui_view v)
{
    const tui_layout *l = &m->lay;
    int n;
    switch (v) {
    case TUI_VIEW_HELP:
    case TUI_VIEW_OUTPUT:
        n = l->status_row - l->chart_top - 1; /* these use the chart's rows too */
        break;
    case TUI_VIEW_DETAIL:
        n = l->status_row - l->body_top;
        break;
    default:
        n = l->body_rows;
    }
    return n > 0 ? (size_t)n : 1;
}

size_t tui_detail_lines(const tui_model *m)
{
    if (m->det_cur >= m->ndet)
        return 0;
    const tui_trace *t = &m->det[m->det_cur];
    size_t n = 0;
    for (uint32_t i = 0; i < t->nframes; i++)
        n += 1 + (tui_model_source_line(m, t->frames[i].file, t->frames[i].line) != NULL);
    return n;
}

static size_t output_lines(const tui_model *m)
{
    return m->output ? tui_output_lines(m->output) : 0;
}

static size_t clamp_top(size_t top, size_t total, size_t page)
{
    if (total <= page)
        return 0;
    return top > total - page ? total - page : top;
}

/* Keeps every position inside its list and the selection on screen. */
static void clamp(tui_model *m)
{
    size_t page = page_of(m, TUI_VIEW_TABLE);
    if (m->sel >= m->nrows)
        m->sel = m->nrows ? m->nrows - 1 : 0;
    if (m->sel < m->top)
        m->top = m->sel;
    if (m->sel >= m->top + page)
        m->top = m->sel - page + 1;
    m->top = clamp_top(m->top, m->nrows, page);
    if (m->det_cur >= m->ndet)
        m->det_cur = m->ndet ? m->ndet - 1 : 0;
    m->det_top = clamp_top(m->det_top, tui_detail_lines(m), page_of(m, TUI_VIEW_DETAIL));
    m->help_top = clamp_top(m->help_top, tui_help_lines(), page_of(m, TUI_VIEW_HELP));
    size_t outn = output_lines(m), outp = page_of(m, TUI_VIEW_OUTPUT);
    if (m->out_follow)
        m->out_top = outn > outp ? outn - outp : 0;
    m->out_top = clamp_top(m->out_top, outn, outp);
    if (m->pick_sel > m->nsnaps)
        m->pick_sel = m->nsnaps;
}

void tui_model_resize(tui_model *m, int rows, int cols)
{
    m->rows = rows;
    m->cols = cols;
    m->lay = tui_layout_for(rows, cols);
    clamp(m);
}

/* ---- lifetime --------------------------------------------------------------- */

static void set_filters(tui_model *m, const tm_filter *f, size_t n)
{
    for (size_t i = 0; i < m->nfilters; i++)
        free(m->filters[i].pattern);
    free(m->filters);
    m->filters = NULL;
    m->nfilters = 0;
    if (!n)
        return;
    m->filters = calloc(n, sizeof *m->filters);
    if (!m->filters)
        return;
    for (size_t i = 0; i < n; i++) {
        m->filters[i].inclusive = f[i].inclusive;
        m->filters[i].pattern = xstrdup(f[i].pattern ? f[i].pattern : "*");
        m->all_frames |= f[i].all_frames != 0;
        if (m->filters[i].pattern)
            m->nfilters++;
    }
}

tui_model *tui_model_new(const tui_model_config *cfg)
{
    tui_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->data = cfg->data;
    m->key = cfg->query.key;
    m->cumulative = cfg->query.cumulative;
    m->raw_site = cfg->query.raw_site;
    m->skip = cfg->query.skip;
    m->nskip = cfg->query.nskip;
    set_filters(m, cfg->query.filters, cfg->query.filters ? cfg->query.nfilters : 0);
    m->program = xstrdup(cfg->program ? cfg->program : "");
    m->log_path = xstrdup(cfg->log_path);
    m->cwd = getcwd(NULL, 0); /* NULL (a deleted directory): names stay absolute */
    m->frames = cfg->frames;
    m->output = cfg->output;
    m->unicode = cfg->unicode;
    m->next_snap = 1;
    m->diff_new = -1;
    m->alloc_rate = -1;
    m->out_follow = 1;
    m->src = calloc(1, sizeof *m->src);
    m->table = tm_view_new();
    m->traces = tm_view_new();
    m->win = calloc(1, sizeof *m->win);
    m->series = malloc(SERIES_CAP * sizeof *m->series);
    m->series_cap = SERIES_CAP;
    if (!m->program || !m->src || !m->series || !m->table || !m->traces || !m->win) {
        tui_model_free(m);
        return NULL;
    }
    tui_model_resize(m, TUI_MIN_ROWS, TUI_MIN_COLS);
    return m;
}

static void detail_clear(tui_model *m)
{
    for (size_t i = 0; i < m->ndet; i++)
        free(m->det[i].frames);
    free(m->det);
    m->det = NULL;
    m->ndet = 0;
}

void tui_model_free(tui_model *m)
{
    if (!m)
        return;
    detail_clear(m);
    free(m->det_key);
    free(m->sel_key);
    tm_view_free(m->table);
    tm_view_free(m->traces);
    if (m->win)
        free(m->win->v);
    free(m->win);
    if (m->now)
        tm_snapshot_free(m->now);
    for (size_t i = 0; i < m->nsnaps; i++)
        tm_snapshot_free(m->snaps[i].snap);
    free(m->snaps);
    set_filters(m, NULL, 0);
    if (m->src)
        for (int i = 0; i < SRC_FILES; i++)
            src_drop(&m->src->f[i]);
    free(m->src);
    free(m->series);
    free(m->program);
    free(m->log_path);
    free(m->cwd);
    free(m->write_path);
    free(m);
}

/* ---- queries ----------------------------------------------------------------- */

tm_query tui_model_query(const tui_model *m, tm_filter *buf, size_t nbuf)
{
    tm_query q;
    memset(&q, 0, sizeof q);
    q.key = m->key;
    q.cumulative = m->cumulative && m->key != TM_KEY_TRACEBACK;
    size_t n = m->nfilters < nbuf ? m->nfilters : nbuf;
    for (size_t i = 0; i < n; i++)
        buf[i] = (tm_filter){m->filters[i].inclusive, m->filters[i].pattern, 0, m->all_frames};
    q.filters = n ? buf : NULL;
    q.nfilters = n;
    q.raw_site = m->raw_site;
    q.skip = m->skip;
    q.nskip = m->nskip;
    return q;
}

/* The two sides of the diff the table shows; NULL when not diffing. */
static const tm_snapshot *diff_new_snap(const tui_model *m)
{
    return m->diff_new < 0 ? m->now : m->snaps[m->diff_new].snap;
}

/* Statistics (or the diff) under q.  Call with the lock held. */
static tm_stats *run_query(tui_model *m, const tm_query *q, tm_err *err)
{
    if (m->diff)
        return tm_snapshot_compare(diff_new_snap(m), m->snaps[m->diff_old].snap, q, &m->data.res,
                                   err);
    return tm_snapshot_statistics(m->now, q, &m->data.res, err);
}

/* Whether the traceback st belongs to the detail's row. */
static int trace_matches(const tui_model *m, const tm_stat *st)
{
    if (!m->det_nkey || !st->nframes)
        return 0;
    if (m->key == TM_KEY_TRACEBACK)
        return frames_same(st->frames, st->nframes, m->det_key, m->det_nkey, m->key);
    /* cumulative rows count every frame from the site outward */
    uint32_t last = m->cumulative ? st->nframes : st->site_index + 1;
    for (uint32_t k = st->site_index; k < last; k++)
        if (frame_same(&st->frames[k], &m->det_key[0], m->key))
            return 1;
    return 0;
}

#define WIN_ROWS 256 /* rows put in order at a time */

const tm_stat *tui_model_stat(const tui_model *m, size_t row)
{
    struct tui_rows *w = m->win;
    if (row >= m->nrows || !w)
        return NULL;
    if (row < w->first || row >= w->first + w->n) {
        if (!w->v && !(w->v = malloc(WIN_ROWS * sizeof *w->v)))
            return NULL;
        /* a window around the row, so scrolling either way stays inside */
        w->first = row > WIN_ROWS / 4 ? row - WIN_ROWS / 4 : 0;
        w->n = tm_view_rows(m->table, w->first, WIN_ROWS, w->v);
        if (row < w->first || row >= w->first + w->n)
            return NULL;
    }
    return &w->v[row - w->first];
}

typedef struct match_ctx {
    const tui_model *m;
    const tm_frame *key;
    uint32_t nkey;
} match_ctx;

static int row_has_key(void *ctx, const tm_stat *st)
{
    const match_ctx *x = ctx;
    return frames_same(st->frames, st->nframes, x->key, x->nkey, x->m->key);
}

/* The row of the table whose key is frames (as frames_same sees it: a
 * pending frame is known by its address), or -1. */
static long find_row(tui_model *m, const tm_frame *key, uint32_t nkey)
{
    if (!key || !nkey || !m->nrows)
        return -1;
    long r = tm_view_find(m->table, key, nkey);
    if (r >= 0)
        return r;
    /* its symbols arrived (or went pending): the first row it matches */
    match_ctx x = {m, key, nkey};
    tm_stat st;
    if (tm_view_select(m->table, row_has_key, &x, &st, 1) == 0)
        return -1;
    return tm_view_find(m->table, st.frames, st.nframes);
}

static int trace_keep(void *ctx, const tm_stat *st)
{
    return trace_matches(ctx, st);
}

/* Finds the detail's row in the fresh table (its symbols may have arrived)
 * and collects its tracebacks.  Call with the lock held. */
static void detail_compute(tui_model *m, const tm_query *q)
{
    long r = find_row(m, m->det_key, m->det_nkey);
    const tm_stat *st = r >= 0 ? tui_model_stat(m, (size_t)r) : NULL;
    if (st) {
        tm_frame *k = frames_dup(st->frames, st->nframes);
        if (k) {
            free(m->det_key);
            m->det_key = k;
        }
        m->det_size = st->size;
        m->det_count = st->count;
        m->det_size_diff = st->size_diff;
        m->det_count_diff = st->count_diff;
    }
    tm_query tq = *q;
    tq.key = TM_KEY_TRACEBACK;
    tq.cumulative = 0;
    tm_err err = {0};
    const tm_snapshot *old = m->diff ? m->snaps[m->diff_old].snap : NULL;
    if (tm_view_update(m->traces, m->diff ? diff_new_snap(m) : m->now, old, &tq, &m->data.res,
                       &err) != 0)
        return; /* out of memory: the detail keeps what it had */
    /* One pass when the site's tracebacks fit (they mostly do); a second
     * only when there are more. */
    tm_stat *v = NULL;
    size_t n, cap = 64;
    for (;;) {
        tm_stat *nv = realloc(v, cap * sizeof *v);
        if (!nv) {
            free(v);
            return;
        }
        v = nv;
        n = tm_view_select(m->traces, trace_keep, m, v, cap);
        if (n <= cap)
            break;
        cap = n;
    }
    detail_clear(m);
    m->det = calloc(n ? n : 1, sizeof *m->det);
    for (size_t i = 0; m->det && i < n; i++) {
        const tm_stat *s = &v[i];
        tui_trace *t = &m->det[m->ndet];
        t->frames = frames_dup(s->frames, s->nframes);
        if (!t->frames)
            break;
        t->nframes = s->nframes;
        t->site = s->site_index;
        t->size = s->size;
        t->count = s->count;
        t->size_diff = s->size_diff;
        t->count_diff = s->count_diff;
        m->ndet++;
    }
    free(v);
}

/* Remembers the selected row's key, so the selection can follow it. */
static void follow_selection_key(tui_model *m)
{
    clamp(m);
    free(m->sel_key);
    m->sel_key = NULL;
    m->sel_nkey = 0;
    const tm_stat *st = tui_model_stat(m, m->sel);
    if (st) {
        m->sel_key = frames_dup(st->frames, st->nframes);
        m->sel_nkey = m->sel_key ? st->nframes : 0;
    }
}

/* After a query: the selection moves to where its row went. */
static void follow_selection(tui_model *m)
{
    long r = find_row(m, m->sel_key, m->sel_nkey);
    if (r >= 0)
        m->sel = (size_t)r;
    follow_selection_key(m);
}

static void write_retry(tui_model *m);

void tui_model_requery(tui_model *m)
{
    if (!m->now)
        return;
    tm_filter fbuf[64];
    tm_filter *fl = m->nfilters > 64 ? malloc(m->nfilters * sizeof *fl) : fbuf;
    if (!fl)
        return;
    tm_query q = tui_model_query(m, fl, m->nfilters > 64 ? m->nfilters : 64);
    tm_err err = {0};
    const tm_snapshot *old = m->diff ? m->snaps[m->diff_old].snap : NULL;
    m->win->n = 0; /* the rows move */
    lock(m);
    if (tm_view_update(m->table, m->diff ? diff_new_snap(m) : m->now, old, &q, &m->data.res,
                       &err) == 0) {
        m->nrows = tm_view_count(m->table);
        m->pending_rows = (int)tm_view_pending(m->table);
        m->query_error[0] = '\0';
        if (m->view == TUI_VIEW_DETAIL)
            detail_compute(m, &q);
    } else {
        m->nrows = 0;
        m->pending_rows = 0;
        snprintf(m->query_error, sizeof m->query_error, "%s", err.msg);
    }
    unlock(m);
    if (fl != fbuf)
        free(fl);
    follow_selection(m);
    if (m->write_path)
        write_retry(m);
}

/* The allocation rate over the last second or so of the series. */
static void update_rate(tui_model *m)
{
    m->alloc_rate = -1;
    if (m->nseries < 2)
        return;
    const tm_sample *last = &m->series[m->nseries - 1];
    size_t i = m->nseries - 1;
    while (i > 0 && last->time_ns - m->series[i - 1].time_ns <= 1000000000ull)
        i--;
    if (i == m->nseries - 1)
        i--; /* samples further apart than a second: use the previous one */
    const tm_sample *first = &m->series[i];
    if (last->time_ns <= first->time_ns)
        return;
    m->alloc_rate = (double)(last->allocations - first->allocations) * 1e9 /
                    (double)(last->time_ns - first->time_ns);
}

void tui_model_refresh(tui_model *m, uint64_t now_ns)
{
    m->now_ns = now_ns;
    if (!m->start_ns)
        m->start_ns = now_ns;
    if (m->msg[0] && now_ns >= m->msg_until && !m->write_path)
        m->msg[0] = '\0';
    if (!m->paused || !m->now) {
        lock(m);
        tm_snapshot *s = tm_store_snapshot(m->data.store);
        if (s) {
            if (m->now)
                tm_snapshot_free(m->now);
            m->now = s;
            m->totals = *tm_snapshot_totals(s);
            m->nseries = tm_store_series(m->data.store, m->series, m->series_cap);
        }
        unlock(m);
        update_rate(m);
    }
    tui_model_requery(m);
}

/* ---- reports --------------------------------------------------------------- */

static void side_name(const tui_model *m, long idx, char *buf, size_t len)
{
    if (idx < 0)
        snprintf(buf, len, "now");
    else
        snprintf(buf, len, "snapshot #%u", m->snaps[idx].number);
}

static int write_file(const char *path, const char *data, size_t len, char *why, size_t whylen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    if (close(fd) != 0) {
        snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Runs the report into memory; 1 when a frame in it was still pending. */
static int render_report(tui_model *m, char **text, size_t *tlen, char **json, size_t *jlen,
                         char *why, size_t whylen)
{
    FILE *tf = open_memstream(text, tlen);
    FILE *jf = open_memstream(json, jlen);
    tm_filter fbuf[64];
    tm_filter *fl = m->nfilters > 64 ? malloc(m->nfilters * sizeof *fl) : fbuf;
    int rc = -1;
    if (!tf || !jf || !fl) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    tm_query q = tui_model_query(m, fl, m->nfilters > 64 ? m->nfilters : 64);
    tm_err err = {0};
    lock(m);
    uint64_t before = pending_answers(m);
    if (!m->diff) {
        tm_report_opts o = {.query = q,
                            .limit = 0,
                            .json = 0,
                            .program = m->program,
                            .frames = m->frames,
                            .exited = m->target.exited,
                            .wstatus = m->target.wstatus};
        rc = tm_report_write(tf, m->data.store, &m->data.res, &o, &err);
        o.json = 1;
        if (rc == 0)
            rc = tm_report_write(jf, m->data.store, &m->data.res, &o, &err);
    } else {
        tm_stats *st = run_query(m, &q, &err);
        if (st) {
            char sn[32], so[32];
            side_name(m, m->diff_new, sn, sizeof sn);
            side_name(m, (long)m->diff_old, so, sizeof so);
            tm_report_diff_opts d = {.base = {.query = q,
                                              .limit = 0,
                                              .program = m->program,
                                              .frames = m->frames,
                                              .exited = m->target.exited,
                                              .wstatus = m->target.wstatus},
                                     .new_name = sn,
                                     .old_name = so,
                                     .new_totals = tm_snapshot_totals(diff_new_snap(m)),
                                     .old_totals = tm_snapshot_totals(m->snaps[m->diff_old].snap)};
            rc = tm_report_write_diff(tf, st, &d, &err);
            d.base.json = 1;
            if (rc == 0)
                rc = tm_report_write_diff(jf, st, &d, &err);
            tm_stats_free(st);
        }
    }
    int pending = pending_answers(m) != before;
    unlock(m);
    if (rc != 0)
        snprintf(why, whylen, "%s", err.msg);
    else
        rc = pending;
out:
    if (tf)
        fclose(tf);
    if (jf)
        fclose(jf);
    if (fl != fbuf)
        free(fl);
    return rc;
}

static int do_write(tui_model *m, const char *path, int may_wait)
{
    char *text = NULL, *json = NULL, why[512] = "";
    size_t tlen = 0, jlen = 0;
    int rc = render_report(m, &text, &tlen, &json, &jlen, why, sizeof why);
    if (rc == 1 && may_wait) {
        free(text);
        free(json);
        return 1;
    }
    char jpath[4096];
    size_t n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".txt") == 0)
        snprintf(jpath, sizeof jpath, "%.*s.json", (int)(n - 4), path);
    else
        snprintf(jpath, sizeof jpath, "%s.json", path);
    if (rc >= 0 && (write_file(path, text, tlen, why, sizeof why) != 0 ||
                    write_file(jpath, json, jlen, why, sizeof why) != 0))
        rc = -1;
    free(text);
    free(json);
    if (rc < 0) {
        tui_model_message(m, 1, "report: %s", why);
        return -1;
    }
    tui_model_message(m, 0, "wrote %s and %s", path, jpath);
    return 0;
}

static void write_retry(tui_model *m)
{
    char *path = m->write_path;
    int may_wait = m->now_ns - m->write_since < WRITE_WAIT_NS;
    m->write_path = NULL;
    if (do_write(m, path, may_wait) == 1) {
        m->write_path = path;
        return;
    }
    free(path);
}

int tui_model_write(tui_model *m, const char *path)
{
    free(m->write_path);
    m->write_path = NULL;
    int rc = do_write(m, path, 1);
    if (rc == 1) {
        m->write_path = strdup(path);
        m->write_since = m->now_ns;
        tui_model_message(m, 0, "writing %s once the symbols are resolved...", path);
        return 0;
    }
    return rc;
}

/* ---- actions ----------------------------------------------------------------- */

static void open_detail(tui_model *m)
{
    const tm_stat *st = tui_model_stat(m, m->sel);
    if (!st)
        return;
    free(m->det_key);
    m->det_key = frames_dup(st->frames, st->nframes);
    m->det_nkey = m->det_key ? st->nframes : 0;
    m->det_cur = m->det_top = 0;
    m->view = TUI_VIEW_DETAIL;
    tui_model_requery(m);
}

static void query_changed(tui_model *m)
{
    if (m->view == TUI_VIEW_DETAIL)
        m->view = TUI_VIEW_TABLE;
    tui_model_requery(m);
}

static void take_snapshot(tui_model *m)
{
    tui_snap *v = realloc(m->snaps, (m->nsnaps + 1) * sizeof *v);
    if (!v) {
        tui_model_message(m, 1, "out of memory");
        return;
    }
    m->snaps = v;
    lock(m);
    tm_snapshot *s = tm_store_snapshot(m->data.store);
    unlock(m);
    if (!s) {
        tui_model_message(m, 1, "out of memory taking a snapshot");
        return;
    }
    tui_snap *n = &m->snaps[m->nsnaps++];
    n->snap = s;
    n->number = m->next_snap++;
    n->time_ns = m->now_ns;
    const tm_totals *t = tm_snapshot_totals(s);
    char a[TM_SIZE_BUF];
    tui_model_message(m, 0, "snapshot #%u: %s in %" PRIu64 " blocks", n->number,
                      tm_format_size(a, (double)t->current, 0), t->blocks);
    if (m->diff && m->diff_new < 0)
        tui_model_requery(m); /* nothing changes, but keep the selection fresh */
}

static void open_prompt(tui_model *m, tui_prompt p)
{
    m->prompt = p;
    m->plen = 0;
    m->pbuf[0] = '\0';
    if (p == TUI_PROMPT_WRITE) {
        /* a name that does not exist yet, in the current directory */
        for (unsigned i = 1; i < 1000; i++) {
            if (i == 1)
                snprintf(m->pbuf, sizeof m->pbuf, "tmtop-%ld.txt", (long)m->target.pid);
            else
                snprintf(m->pbuf, sizeof m->pbuf, "tmtop-%ld-%u.txt", (long)m->target.pid, i);
            if (access(m->pbuf, F_OK) != 0)
                break;
        }
        m->plen = strlen(m->pbuf);
    }
}

static void add_filter(tui_model *m, int inclusive, const char *pattern)
{
    tui_filter *v = realloc(m->filters, (m->nfilters + 1) * sizeof *v);
    char *p = strdup(pattern);
    if (!v || !p) {
        free(p);
        if (v)
            m->filters = v;
        tui_model_message(m, 1, "out of memory");
        return;
    }
    m->filters = v;
    m->filters[m->nfilters++] = (tui_filter){inclusive, p};
    query_changed(m);
    if (m->nrows == 0 && !strchr(pattern, '*') && pattern[0] != '/')
        tui_model_message(m, 0, "no site matches; patterns match whole paths: try */%s", pattern);
}

static unsigned prompt_key(tui_model *m, int key)
{
    switch (key) {
    case TUI_KEY_ESC:
        m->prompt = TUI_PROMPT_NONE;
        return TUI_R_REDRAW;
    case TUI_KEY_CTRL_C:
        m->prompt = TUI_PROMPT_NONE;
        return TUI_R_REDRAW | TUI_R_QUIT;
    case TUI_KEY_CTRL_U:
        m->plen = 0;
        m->pbuf[0] = '\0';
        return TUI_R_REDRAW;
    case TUI_KEY_BACKSPACE:
    case 0x7f:
    case 8:
        while (m->plen && ((unsigned char)m->pbuf[m->plen - 1] & 0xC0) == 0x80)
            m->plen--; /* a whole UTF-8 character */
        if (m->plen)
            m->plen--;
        m->pbuf[m->plen] = '\0';
        return TUI_R_REDRAW;
    case TUI_KEY_ENTER:
    case '\r': {
        tui_prompt p = m->prompt;
        m->prompt = TUI_PROMPT_NONE;
        if (!m->plen)
            return TUI_R_REDRAW;
        if (p == TUI_PROMPT_WRITE)
            tui_model_write(m, m->pbuf);
        else
            add_filter(m, p == TUI_PROMPT_INCLUDE, m->pbuf);
        return TUI_R_REDRAW;
    }
    default:
        if (key >= 32 && key < 256 && key != 0x7f && m->plen + 1 < sizeof m->pbuf) {
            m->pbuf[m->plen++] = (char)key;
            m->pbuf[m->plen] = '\0';
            return TUI_R_REDRAW;
        }
        return 0;
    }
}

unsigned tui_model_key(tui_model *m, int key, uint64_t now_ns)
{
    m->now_ns = now_ns;
    if (m->prompt)
        return prompt_key(m, key);
    tui_action a = tui_keymap_lookup(key);
    if (a == TUI_ACT_NONE)
        return 0;
    return tui_model_apply(m, a);
}

/* Moves a position in a list of total items, page lines per page. */
static size_t move(size_t pos, tui_action a, size_t total, size_t page)
{
    size_t last = total ? total - 1 : 0;
    switch (a) {
    case TUI_ACT_UP:
        return pos ? pos - 1 : 0;
    case TUI_ACT_DOWN:
        return pos < last ? pos + 1 : last;
    case TUI_ACT_PGUP:
        return pos > page ? pos - page : 0;
    case TUI_ACT_PGDN:
        return pos + page < last ? pos + page : last;
    case TUI_ACT_HOME:
        return 0;
    case TUI_ACT_END:
        return last;
    default:
        return pos;
    }
}

static int is_nav(tui_action a)
{
    return a == TUI_ACT_UP || a == TUI_ACT_DOWN || a == TUI_ACT_PGUP || a == TUI_ACT_PGDN ||
           a == TUI_ACT_HOME || a == TUI_ACT_END;
}

/* Scrolls a view whose first shown line is *top. */
static void scroll(size_t *top, tui_action a, size_t total, size_t page)
{
    size_t maxtop = total > page ? total - page : 0;
    switch (a) {
    case TUI_ACT_END:
        *top = maxtop;
        break;
    case TUI_ACT_DOWN:
        *top = *top < maxtop ? *top + 1 : maxtop;
        break;
    case TUI_ACT_PGDN:
        *top = *top + page < maxtop ? *top + page : maxtop;
        break;
    default:
        *top = move(*top, a, maxtop + 1, page);
    }
}

static unsigned pick_choose(tui_model *m)
{
    /* item 0 is "now", item i >= 1 the i-th newest snapshot */
    long idx = m->pick_sel == 0 ? -1 : (long)(m->nsnaps - m->pick_sel);
    if (m->pick_step == 0) {
        if (idx < 0) {
            tui_model_message(m, 1, "choose a snapshot as the older side");
            return TUI_R_REDRAW;
        }
        m->pick_old = (size_t)idx;
        m->pick_step = 1;
        m->pick_sel = 0;
        return TUI_R_REDRAW;
    }
    if (idx == (long)m->pick_old) {
        tui_model_message(m, 1, "choose another side than snapshot #%u",
                          m->snaps[m->pick_old].number);
        return TUI_R_REDRAW;
    }
    m->diff = 1;
    m->diff_old = m->pick_old;
    m->diff_new = idx;
    m->view = TUI_VIEW_TABLE;
    tui_model_requery(m);
    return TUI_R_REDRAW;
}

static unsigned view_action(tui_model *m, tui_action a, int *handled)
{
    *handled = 1;
    switch (m->view) {
    case TUI_VIEW_HELP:
        if (is_nav(a))
            scroll(&m->help_top, a, tui_help_lines(), page_of(m, TUI_VIEW_HELP));
        else if (a == TUI_ACT_BACK || a == TUI_ACT_HELP)
            m->view = TUI_VIEW_TABLE;
        else if (a == TUI_ACT_QUIT)
            return TUI_R_QUIT;
        return TUI_R_REDRAW; /* every other key is ignored while help is open */
    case TUI_VIEW_PICK:
        if (is_nav(a))
            m->pick_sel = move(m->pick_sel, a, m->nsnaps + 1, page_of(m, TUI_VIEW_PICK));
        else if (a == TUI_ACT_ENTER)
            return pick_choose(m);
        else if (a == TUI_ACT_BACK || a == TUI_ACT_DIFF_PICK)
            m->view = TUI_VIEW_TABLE;
        else if (a == TUI_ACT_QUIT)
            return TUI_R_QUIT;
        return TUI_R_REDRAW;
    case TUI_VIEW_OUTPUT:
        if (is_nav(a)) {
            size_t total = output_lines(m), page = page_of(m, TUI_VIEW_OUTPUT);
            scroll(&m->out_top, a, total, page);
            m->out_follow = m->out_top + page >= total;
            return TUI_R_REDRAW;
        }
        if (a == TUI_ACT_BACK || a == TUI_ACT_OUTPUT) {
            m->view = TUI_VIEW_TABLE;
            return TUI_R_REDRAW;
        }
        break;
    case TUI_VIEW_DETAIL:
        if (is_nav(a)) {
            scroll(&m->det_top, a, tui_detail_lines(m), page_of(m, TUI_VIEW_DETAIL));
            return TUI_R_REDRAW;
        }
        if (a == TUI_ACT_PREV || a == TUI_ACT_NEXT) {
            if (a == TUI_ACT_PREV && m->det_cur > 0)
                m->det_cur--;
            else if (a == TUI_ACT_NEXT && m->det_cur + 1 < m->ndet)
                m->det_cur++;
            m->det_top = 0;
            return TUI_R_REDRAW;
        }
        if (a == TUI_ACT_BACK || a == TUI_ACT_ENTER) {
            m->view = TUI_VIEW_TABLE;
            return TUI_R_REDRAW;
        }
        break;
    case TUI_VIEW_TABLE:
        if (is_nav(a)) {
            m->sel = move(m->sel, a, m->nrows, page_of(m, TUI_VIEW_TABLE));
            follow_selection_key(m);
            return TUI_R_REDRAW;
        }
        if (a == TUI_ACT_ENTER) {
            open_detail(m);
            return TUI_R_REDRAW;
        }
        if (a == TUI_ACT_BACK) {
            m->msg[0] = '\0';
            return TUI_R_REDRAW;
        }
        break;
    }
    *handled = 0;
    return 0;
}

unsigned tui_model_apply(tui_model *m, tui_action a)
{
    int handled;
    unsigned r = view_action(m, a, &handled);
    if (handled) {
        clamp(m);
        return r;
    }
    switch (a) {
    case TUI_ACT_KEY:
        m->key = m->key == TM_KEY_LINENO     ? TM_KEY_FILENAME
                 : m->key == TM_KEY_FILENAME ? TM_KEY_TRACEBACK
                                             : TM_KEY_LINENO;
        free(m->sel_key);
        m->sel_key = NULL;
        m->sel_nkey = 0;
        m->sel = m->top = 0;
        query_changed(m);
        break;
    case TUI_ACT_CUMULATIVE:
        if (m->key == TM_KEY_TRACEBACK) {
            tui_model_message(m, 1, "cumulative needs the lineno or filename key (g)");
            break;
        }
        m->cumulative = !m->cumulative;
        query_changed(m);
        break;
    case TUI_ACT_SNAPSHOT:
        take_snapshot(m);
        break;
    case TUI_ACT_DIFF:
        if (m->diff) {
            m->diff = 0;
            query_changed(m);
            tui_model_message(m, 0, "live view");
        } else if (!m->nsnaps) {
            tui_model_message(m, 1, "no snapshot to compare with: take one with s");
        } else {
            m->diff = 1;
            m->diff_old = m->nsnaps - 1;
            m->diff_new = -1;
            query_changed(m);
        }
        break;
    case TUI_ACT_DIFF_PICK:
        if (!m->nsnaps) {
            tui_model_message(m, 1, "no snapshot to compare with: take one with s");
            break;
        }
        m->view = TUI_VIEW_PICK;
        m->pick_step = 0;
        m->pick_sel = 1;
        break;
    case TUI_ACT_INCLUDE:
        open_prompt(m, TUI_PROMPT_INCLUDE);
        break;
    case TUI_ACT_EXCLUDE:
        open_prompt(m, TUI_PROMPT_EXCLUDE);
        break;
    case TUI_ACT_WRITE:
        open_prompt(m, TUI_PROMPT_WRITE);
        break;
    case TUI_ACT_ALL_FRAMES:
        m->all_frames = !m->all_frames;
        tui_model_message(m, 0, "filters match %s", m->all_frames ? "any frame" : "the site");
        if (m->nfilters)
            query_changed(m);
        break;
    case TUI_ACT_CLEAR:
        set_filters(m, NULL, 0);
        tui_model_message(m, 0, "filters cleared");
        query_changed(m);
        break;
    case TUI_ACT_RESET_PEAK:
        lock(m);
        tm_store_reset_peak(m->data.store);
        unlock(m);
        if (!m->paused)
            tui_model_refresh(m, m->now_ns);
        tui_model_message(m, 0, "peak reset");
        break;
    case TUI_ACT_PAUSE:
        m->paused = !m->paused;
        if (!m->paused)
            tui_model_refresh(m, m->now_ns);
        tui_model_message(m, 0, m->paused ? "paused: tracing goes on" : "resumed");
        break;
    case TUI_ACT_OUTPUT:
        m->view = TUI_VIEW_OUTPUT;
        m->out_follow = 1;
        break;
    case TUI_ACT_HELP:
        m->view = TUI_VIEW_HELP;
        m->help_top = 0;
        break;
    case TUI_ACT_QUIT:
        return TUI_R_QUIT;
    default:
        return 0;
    }
    clamp(m);
    return TUI_R_REDRAW;
}
