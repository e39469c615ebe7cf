/* render.c - the screen as a grid of (character, role) cells. */
#define _XOPEN_SOURCE 700 /* wcwidth */
#include "render.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <wchar.h>

#include "keymap.h"
#include "output.h"

/* ---- grid ------------------------------------------------------------------- */

int tui_grid_init(tui_grid *g, int rows, int cols)
{
    tui_cell *c = calloc((size_t)(rows > 0 ? rows : 1) * (size_t)(cols > 0 ? cols : 1), sizeof *c);
    if (!c)
        return -1;
    free(g->cells);
    g->cells = c;
    g->rows = rows;
    g->cols = cols;
    for (int i = 0; i < rows * cols; i++)
        c[i].ch = ' ';
    return 0;
}

void tui_grid_fini(tui_grid *g)
{
    free(g->cells);
    g->cells = NULL;
    g->rows = g->cols = 0;
}

/* Decodes one UTF-8 character; invalid bytes come back as U+FFFD, one each. */
static uint32_t utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n = c < 0x80             ? 0
            : (c & 0xE0) == 0xC0 ? 1
            : (c & 0xF0) == 0xE0 ? 2
            : (c & 0xF8) == 0xF0 ? 3
                                 : -1;
    if (n < 0) {
        *p = s + 1;
        return 0xFFFD;
    }
    c &= n == 0 ? 0x7F : n == 1 ? 0x1F : n == 2 ? 0x0F : 0x07;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *p = s + 1;
            return 0xFFFD;
        }
        c = c << 6 | (s[i] & 0x3F);
    }
    *p = s + n + 1;
    return c;
}

/* One column wide?  The box, block and arrow characters tmtop draws are,
 * whatever the locale says; anything else asks wcwidth. */
static uint32_t displayable(uint32_t c)
{
    if (c >= 0x20 && c < 0x7F)
        return c;
    if (c < 0xA0)
        return '?';
    if ((c >= 0x2190 && c <= 0x21FF) || (c >= 0x2500 && c <= 0x259F) || c == 0x2026 || c == 0x0394)
        return c;
    return wcwidth((wchar_t)c) == 1 ? c : '?';
}

int tui_grid_put(tui_grid *g, int row, int col, const char *text, tui_role role, int maxcols)
{
    if (row < 0 || row >= g->rows || col < 0 || col >= g->cols || !text)
        return 0;
    int end = maxcols < 0 || col + maxcols > g->cols ? g->cols : col + maxcols;
    const unsigned char *p = (const unsigned char *)text;
    int c = col;
    while (*p && c < end) {
        tui_cell *cell = &g->cells[row * g->cols + c++];
        cell->ch = displayable(utf8_next(&p));
        cell->role = (uint8_t)role;
    }
    return c - col;
}

/* Fills columns [col, col+n) of a row with ch in role. */
static void fill(tui_grid *g, int row, int col, int n, uint32_t ch, tui_role role)
{
    if (row < 0 || row >= g->rows)
        return;
    for (int c = col; c < col + n && c < g->cols; c++) {
        if (c < 0)
            continue;
        g->cells[row * g->cols + c].ch = ch;
        g->cells[row * g->cols + c].role = (uint8_t)role;
    }
}

static void set_role(tui_grid *g, int row, int col, int n, tui_role role)
{
    if (row < 0 || row >= g->rows)
        return;
    for (int c = col; c < col + n && c < g->cols; c++)
        if (c >= 0)
            g->cells[row * g->cols + c].role = (uint8_t)role;
}

static size_t utf8_put(uint32_t c, char *out)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | c >> 12);
        out[1] = (char)(0x80 | (c >> 6 & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | c >> 18);
    out[1] = (char)(0x80 | (c >> 12 & 0x3F));
    out[2] = (char)(0x80 | (c >> 6 & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

char *tui_grid_row_text(const tui_grid *g, int row, char *buf, size_t len)
{
    size_t used = 0, keep = 0;
    buf[0] = '\0';
    if (row < 0 || row >= g->rows || len < 5)
        return buf;
    for (int c = 0; c < g->cols && used + 5 < len; c++) {
        uint32_t ch = g->cells[row * g->cols + c].ch;
        used += utf8_put(ch, buf + used);
        if (ch != ' ')
            keep = used;
    }
    buf[keep] = '\0';
    return buf;
}

/* ---- pieces ------------------------------------------------------------------- */

static int putf(tui_grid *g, int row, int col, tui_role role, int maxcols, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int putf(tui_grid *g, int row, int col, tui_role role, int maxcols, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return tui_grid_put(g, row, col, buf, role, maxcols);
}

/* Text right-aligned to end at column `end` (exclusive). */
static void put_right(tui_grid *g, int row, int end, const char *text, tui_role role)
{
    int n = (int)strlen(text); /* these are ASCII */
    tui_grid_put(g, row, end - n < 0 ? 0 : end - n, text, role, -1);
}

static char *size_str(char *buf, uint64_t v)
{
    return tm_format_size(buf, (double)v, 0);
}

static const char *key_name(tm_key k)
{
    return k == TM_KEY_LINENO ? "lineno" : k == TM_KEY_FILENAME ? "filename" : "traceback";
}

static void draw_title(const tui_model *m, tui_grid *g)
{
    char ex[96], pid[32] = "";
    fill(g, 0, 0, g->cols, ' ', TUI_ROLE_TITLE);
    tui_model_exit_text(m, ex, sizeof ex);
    if (m->target.pid > 0)
        snprintf(pid, sizeof pid, "  pid %ld", (long)m->target.pid);
    /* the program's command line gets what the rest leaves */
    int right = (int)strlen(pid) + 2 + (int)strlen(ex) + 9;
    int c = tui_grid_put(g, 0, 0, " tmtop ", TUI_ROLE_TITLE, -1);
    c += tui_grid_put(g, 0, c, m->program, TUI_ROLE_TITLE, g->cols - c - right);
    c += tui_grid_put(g, 0, c, pid, TUI_ROLE_TITLE, -1);
    c += tui_grid_put(g, 0, c, "  ", TUI_ROLE_TITLE, -1);
    int bad =
        m->target.exited && !(WIFEXITED(m->target.wstatus) && WEXITSTATUS(m->target.wstatus) == 0);
    tui_grid_put(g, 0, c, ex, bad ? TUI_ROLE_BAD : TUI_ROLE_TITLE, -1);
    put_right(g, 0, g->cols, "?:help ", TUI_ROLE_TITLE);
}

static int label_value(tui_grid *g, int row, int col, const char *label, const char *value)
{
    int c = col;
    c += tui_grid_put(g, row, c, label, TUI_ROLE_LABEL, -1);
    c += tui_grid_put(g, row, c, " ", TUI_ROLE_NORMAL, -1);
    c += tui_grid_put(g, row, c, value, TUI_ROLE_VALUE, -1);
    c += tui_grid_put(g, row, c, "  ", TUI_ROLE_NORMAL, -1);
    return c - col;
}

static void draw_numbers(const tui_model *m, tui_grid *g)
{
    const tm_totals *t = &m->totals;
    char a[TM_SIZE_BUF], v[64];
    int c = 1;
    c += label_value(g, 1, c, "traced", size_str(a, t->current));
    c += label_value(g, 1, c, "peak", size_str(a, t->peak));
    snprintf(v, sizeof v, "%" PRIu64, t->blocks);
    c += label_value(g, 1, c, "blocks", v);
    if (m->target.exited || m->alloc_rate < 0)
        snprintf(v, sizeof v, "%" PRIu64, t->allocations);
    else if (m->alloc_rate >= 10000)
        snprintf(v, sizeof v, "%.1fk/s", m->alloc_rate / 1000);
    else
        snprintf(v, sizeof v, "%.0f/s", m->alloc_rate);
    c += label_value(g, 1, c, m->target.exited || m->alloc_rate < 0 ? "allocs" : "alloc rate", v);
    if (t->rss)
        c += label_value(g, 1, c, "RSS", size_str(a, t->rss));
    if (m->nseries >= 2) {
        uint64_t span = m->series[m->nseries - 1].time_ns - m->series[0].time_ns;
        int n = snprintf(v, sizeof v, "chart: %.0f s", (double)span / 1e9);
        if (c + n + 1 < g->cols)
            put_right(g, 1, g->cols - 1, v, TUI_ROLE_AXIS);
    }
}

/* Memory over time: one column per sample (or the largest of a few), the
 * newest on the right, scaled to the peak, whose level is marked. */
static void draw_chart(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    const int axis = 10, h = l->chart_rows, w = g->cols - axis - 1;
    char a[TM_SIZE_BUF];
    if (h <= 0 || w <= 0)
        return;
    uint64_t vmax = m->totals.peak;
    for (size_t i = 0; i < m->nseries; i++)
        if (m->series[i].current > vmax)
            vmax = m->series[i].current;
    for (int r = 0; r < h; r++)
        tui_grid_put(g, l->chart_top + r, axis, m->unicode ? "\u2502" : "|", TUI_ROLE_AXIS, 1);
    put_right(g, l->chart_top, axis - 1, size_str(a, vmax), TUI_ROLE_AXIS);
    if (h >= 3)
        put_right(g, l->chart_top + 1, axis - 1, "peak", TUI_ROLE_PEAK);
    put_right(g, l->chart_top + h - 1, axis - 1, "0", TUI_ROLE_AXIS);
    if (!m->nseries || !vmax) {
        tui_grid_put(g, l->chart_top + h / 2, axis + 2,
                     m->nseries ? "nothing allocated yet" : "no samples yet", TUI_ROLE_AXIS, w);
        return;
    }
    size_t per = (m->nseries + (size_t)w - 1) / (size_t)w; /* samples per column */
    size_t ncols = (m->nseries + per - 1) / per;
    int x0 = axis + 1 + w - (int)ncols;
    /* the peak's level: a dotted line across the top where no bar reaches */
    int peak_row = (int)((double)(vmax - m->totals.peak) / (double)vmax * h);
    if (peak_row >= h)
        peak_row = h - 1;
    for (size_t col = 0; col < ncols; col++) {
        uint64_t v = 0;
        for (size_t k = col * per; k < (col + 1) * per && k < m->nseries; k++)
            if (m->series[k].current > v)
                v = m->series[k].current;
        int x = x0 + (int)col;
        long eighths = (long)((double)v / (double)vmax * h * 8 + 0.5);
        if (v && eighths == 0)
            eighths = 1; /* something live always shows */
        tui_role role = v == m->totals.peak ? TUI_ROLE_PEAK : TUI_ROLE_CHART;
        for (int r = 0; r < h; r++) {
            int row = l->chart_top + h - 1 - r; /* r = 0 is the bottom */
            long level = eighths - (long)r * 8;
            uint32_t ch = ' ';
            if (level >= 8)
                ch = m->unicode ? 0x2588 : '#';
            else if (level > 0)
                ch = m->unicode ? 0x2580 + (uint32_t)level : (level >= 4 ? '#' : '.');
            if (ch == ' ' && h - 1 - r == peak_row) {
                fill(g, row, x, 1, m->unicode ? 0x2508 : '-', TUI_ROLE_PEAK);
                continue;
            }
            fill(g, row, x, 1, ch, role);
        }
    }
    for (int x = axis + 1; x < x0; x++)
        fill(g, l->chart_top + peak_row, x, 1, m->unicode ? 0x2508 : '-', TUI_ROLE_PEAK);
}

static void side_name(const tui_model *m, long idx, char *buf, size_t len)
{
    if (idx < 0)
        snprintf(buf, len, m->paused ? "now (paused)" : "now");
    else
        snprintf(buf, len, "#%u", m->snaps[idx].number);
}

static void draw_mode(const tui_model *m, tui_grid *g, int row)
{
    static const char *const what[] = {"lines", "files", "tracebacks"};
    char buf[256], sn[32], so[32], a[TM_SIZE_BUF];
    fill(g, row, 0, g->cols, ' ', TUI_ROLE_MODE);
    const char *cumul = m->cumulative && m->key != TM_KEY_TRACEBACK ? " (cumulative)" : "";
    if (m->diff) {
        const tm_snapshot *nsnap = m->diff_new < 0 ? m->now : m->snaps[m->diff_new].snap;
        const tm_totals *tn = nsnap ? tm_snapshot_totals(nsnap) : &m->totals;
        const tm_totals *to = tm_snapshot_totals(m->snaps[m->diff_old].snap);
        side_name(m, m->diff_new, sn, sizeof sn);
        side_name(m, (long)m->diff_old, so, sizeof so);
        snprintf(buf, sizeof buf, " Diff %s against %s: %zu %s%s, traced %s, blocks %+" PRId64, sn,
                 so, m->nrows, what[m->key], cumul,
                 tm_format_size(a, (double)((int64_t)tn->current - (int64_t)to->current), 1),
                 (int64_t)tn->blocks - (int64_t)to->blocks);
    } else {
        snprintf(buf, sizeof buf, " Top %s%s: %zu%s%s", what[m->key], cumul, m->nrows,
                 m->paused ? "  [paused]" : "",
                 /* killed before the hook's last flush: the tail of the trace is lost */
                 m->target.done && !m->totals.ended ? "  [trace incomplete]" : "");
    }
    int c = tui_grid_put(g, row, 0, buf, TUI_ROLE_MODE, -1);
    if (m->query_error[0])
        putf(g, row, c, TUI_ROLE_ERROR, -1, "  %s", m->query_error);
    else if (m->pending_rows)
        tui_grid_put(g, row, c, "  (symbolizing...)", TUI_ROLE_MODE, -1);
}

/* Column layout of the table. */
enum { W_SIZE = 10, W_DSIZE = 11, W_COUNT = 9, W_DCOUNT = 9, W_AVG = 10 };

static void draw_table(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    char a[TM_SIZE_BUF], num[32], label[2048];
    draw_mode(m, g, l->title_row);
    fill(g, l->head_row, 0, g->cols, ' ', TUI_ROLE_HEAD);
    int c = 0;
    put_right(g, l->head_row, c += W_SIZE, "Size", TUI_ROLE_HEAD);
    if (m->diff)
        put_right(g, l->head_row, c += W_DSIZE, m->unicode ? "\u0394Size" : "+-Size",
                  TUI_ROLE_HEAD);
    put_right(g, l->head_row, c += W_COUNT, "Count", TUI_ROLE_HEAD);
    if (m->diff)
        put_right(g, l->head_row, c += W_DCOUNT, m->unicode ? "\u0394Count" : "+-Count",
                  TUI_ROLE_HEAD);
    put_right(g, l->head_row, c += W_AVG, "Average", TUI_ROLE_HEAD);
    const int site_col = c + 2;
    tui_grid_put(g, l->head_row, site_col, m->key == TM_KEY_TRACEBACK ? "Traceback" : "Site",
                 TUI_ROLE_HEAD, -1);

    if (!m->nrows) {
        const char *why = !m->now                           ? "waiting for the first data..."
                          : m->nfilters && m->totals.blocks ? "no site matches the filters"
                          : m->diff                         ? "no difference"
                                                            : "no live allocations";
        tui_grid_put(g, l->body_top + 1, site_col, why, TUI_ROLE_LABEL, -1);
        return;
    }
    for (int r = 0; r < l->body_rows; r++) {
        size_t i = m->top + (size_t)r;
        if (i >= m->nrows)
            break;
        const tm_stat *st = tui_model_stat(m, i);
        if (!st)
            break;
        int row = l->body_top + r, sel = i == m->sel;
        tui_role base = sel ? TUI_ROLE_SELECTED : TUI_ROLE_NORMAL;
        if (sel)
            fill(g, row, 0, g->cols, ' ', TUI_ROLE_SELECTED);
        c = 0;
        put_right(g, row, c += W_SIZE, size_str(a, st->size), base);
        if (m->diff) {
            tui_role dr = sel                 ? base
                          : st->size_diff > 0 ? TUI_ROLE_GROW
                          : st->size_diff < 0 ? TUI_ROLE_SHRINK
                                              : TUI_ROLE_NORMAL;
            put_right(g, row, c += W_DSIZE, tm_format_size(a, (double)st->size_diff, 1), dr);
        }
        snprintf(num, sizeof num, "%" PRIu64, st->count);
        put_right(g, row, c += W_COUNT, num, base);
        if (m->diff) {
            tui_role dr = sel                  ? base
                          : st->count_diff > 0 ? TUI_ROLE_GROW
                          : st->count_diff < 0 ? TUI_ROLE_SHRINK
                                               : TUI_ROLE_NORMAL;
            snprintf(num, sizeof num, "%+" PRId64, st->count_diff);
            put_right(g, row, c += W_DCOUNT, num, dr);
        }
        put_right(g, row, c += W_AVG,
                  st->count ? tm_format_size(a, (double)st->size / st->count, 0) : "-", base);
        tui_model_row_label(m, i, label, sizeof label);
        tui_grid_put(g, row, site_col, label,
                     !sel && tui_model_row_pending(m, i) ? TUI_ROLE_PENDING : base, -1);
    }
}

/* Columns of a UTF-8 string (one per character). */
static int text_cols(const char *s)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

/* A file name relative to the current directory when it lies below it. */
static const char *short_path(const tui_model *m, const char *path)
{
    size_t n = m->cwd ? strlen(m->cwd) : 0;
    if (n > 1 && strncmp(path, m->cwd, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path;
}

/* One frame of a traceback: function, file:line, (module).  A long
 * function name gives way to the file and line. */
static void frame_line(const tui_model *m, const tm_frame *f, uint32_t idx, uint32_t site,
                       tui_grid *g, int row)
{
    char where[1024], mod[256] = "";
    tui_role role = idx < site ? TUI_ROLE_SYSTEM : idx == site ? TUI_ROLE_SITE : TUI_ROLE_NORMAL;
    if (f->flags & TM_FRAME_PENDING)
        role = TUI_ROLE_PENDING;
    int c = putf(g, row, 0, role, -1, "%s#%-2u ", idx == site ? " > " : "   ", idx);
    if (f->file)
        snprintf(where, sizeof where, "  %s:%" PRIu32, short_path(m, f->file), f->line);
    else if (f->module)
        snprintf(where, sizeof where, "  +0x%" PRIx64, f->offset);
    else
        snprintf(where, sizeof where, "  0x%" PRIx64, f->address);
    if (f->module) {
        const char *b = strrchr(f->module, '/');
        snprintf(mod, sizeof mod, "  (%s)", b ? b + 1 : f->module);
    }
    const char *inl = f->flags & TM_FRAME_INLINED ? " (inlined)" : "";
    const char *fn = f->function ? f->function : "??";
    int room = g->cols - c - text_cols(where) - text_cols(mod) - (int)strlen(inl);
    if (room < 24)
        room = 24;
    if (text_cols(fn) > room) {
        c += tui_grid_put(g, row, c, fn, role, room - 1);
        c += tui_grid_put(g, row, c, m->unicode ? "\u2026" : "~", role, 1);
    } else {
        c += tui_grid_put(g, row, c, fn, role, -1);
    }
    c += tui_grid_put(g, row, c, inl, role, -1);
    c += tui_grid_put(g, row, c, where, role == TUI_ROLE_SITE ? TUI_ROLE_SITE : TUI_ROLE_LABEL, -1);
    tui_grid_put(g, row, c, mod, TUI_ROLE_LABEL, -1);
}

static void draw_detail(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    char label[1024], a[TM_SIZE_BUF], b[TM_SIZE_BUF], c1[TM_SIZE_BUF];
    fill(g, l->title_row, 0, g->cols, ' ', TUI_ROLE_MODE);
    label[0] = '\0';
    if (m->det_nkey) {
        if (m->key == TM_KEY_TRACEBACK)
            tui_frame_label(&m->det_key[0], TM_KEY_LINENO, label, sizeof label);
        else
            tui_frame_label(&m->det_key[0], m->key, label, sizeof label);
    }
    int c = putf(g, l->title_row, 0, TUI_ROLE_MODE, -1, " Traceback of %s", label);
    (void)c;
    put_right(g, l->title_row, g->cols, " Esc:back ", TUI_ROLE_MODE);

    fill(g, l->head_row, 0, g->cols, ' ', TUI_ROLE_HEAD);
    c = putf(g, l->head_row, 0, TUI_ROLE_HEAD, -1, " size=%s", size_str(a, m->det_size));
    if (m->diff)
        c += putf(g, l->head_row, c, TUI_ROLE_HEAD, -1, " (%s)",
                  tm_format_size(b, (double)m->det_size_diff, 1));
    c += putf(g, l->head_row, c, TUI_ROLE_HEAD, -1, ", count=%" PRIu64, m->det_count);
    if (m->diff)
        c += putf(g, l->head_row, c, TUI_ROLE_HEAD, -1, " (%+" PRId64 ")", m->det_count_diff);
    if (m->det_count)
        c += putf(g, l->head_row, c, TUI_ROLE_HEAD, -1, ", average=%s",
                  tm_format_size(c1, (double)m->det_size / m->det_count, 0));
    if (m->ndet) {
        const tui_trace *t = &m->det[m->det_cur];
        c += putf(g, l->head_row, c, TUI_ROLE_HEAD, -1,
                  "   traceback %zu/%zu: %s, %" PRIu64 " blocks", m->det_cur + 1, m->ndet,
                  size_str(a, t->size), t->count);
        if (m->ndet > 1)
            tui_grid_put(g, l->head_row, c, m->unicode ? "  \u2190/\u2192" : "  </>", TUI_ROLE_HEAD,
                         -1);
    }
    if (!m->ndet) {
        tui_grid_put(g, l->body_top + 1, 2,
                     m->det_count || m->det_size_diff ? "symbolizing..."
                                                      : "no live block has this site now",
                     TUI_ROLE_LABEL, -1);
        return;
    }
    const tui_trace *t = &m->det[m->det_cur];
    size_t line = 0;
    int row = l->body_top;
    for (uint32_t i = 0; i < t->nframes && row < l->status_row; i++) {
        const tm_frame *f = &t->frames[i];
        if (line++ >= m->det_top)
            frame_line(m, f, i, t->site, g, row++);
        const char *src = tui_model_source_line(m, f->file, f->line);
        if (src && row < l->status_row && line++ >= m->det_top) {
            int x = tui_grid_put(g, row, 8, m->unicode ? "\u2502 " : "| ", TUI_ROLE_SYSTEM, -1);
            tui_grid_put(g, row++, 8 + x, src, TUI_ROLE_SOURCE, -1);
        }
    }
}

static void draw_help(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    char buf[256];
    int top = l->chart_top;
    fill(g, top, 0, g->cols, ' ', TUI_ROLE_MODE);
    tui_grid_put(g, top, 0, " Keys", TUI_ROLE_MODE, -1);
    put_right(g, top, g->cols, " Esc or ?: close ", TUI_ROLE_MODE);
    size_t n = tui_help_lines();
    for (int r = top + 1; r < l->status_row; r++) {
        size_t i = m->help_top + (size_t)(r - top - 1);
        if (i >= n)
            break;
        tui_help_line(i, buf, sizeof buf);
        tui_grid_put(g, r, 2, buf, TUI_ROLE_NORMAL, -1);
        /* the keys column in its own role */
        set_role(g, r, 2, 14, TUI_ROLE_KEY);
    }
    if (m->help_top + (size_t)(l->status_row - top - 1) < n)
        put_right(g, l->status_row - 1, g->cols - 1, "(more: Down)", TUI_ROLE_LABEL);
}

static void draw_output(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    int top = l->chart_top, page = l->status_row - top - 1;
    fill(g, top, 0, g->cols, ' ', TUI_ROLE_MODE);
    size_t n = m->output ? tui_output_lines(m->output) : 0;
    putf(g, top, 0, TUI_ROLE_MODE, g->cols - 18, " Output: %zu lines%s%s", n,
         m->log_path ? ", log " : "", m->log_path ? m->log_path : "");
    put_right(g, top, g->cols, " Esc or o: close ", TUI_ROLE_MODE);
    if (!n) {
        tui_grid_put(g, top + 2, 2, "(no output)", TUI_ROLE_LABEL, -1);
        return;
    }
    char(*lines)[TUI_OUTPUT_LINE + 1] = malloc((size_t)page * sizeof *lines);
    if (!lines)
        return;
    size_t got = tui_output_copy(m->output, m->out_top, (size_t)page, lines);
    for (size_t i = 0; i < got; i++)
        tui_grid_put(g, top + 1 + (int)i, 0, lines[i], TUI_ROLE_NORMAL, -1);
    free(lines);
}

static void draw_pick(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    char a[TM_SIZE_BUF];
    fill(g, l->title_row, 0, g->cols, ' ', TUI_ROLE_MODE);
    if (m->pick_step == 0)
        tui_grid_put(g, l->title_row, 0, " Compare: choose the OLDER side (a snapshot), Enter",
                     TUI_ROLE_MODE, -1);
    else
        putf(g, l->title_row, 0, TUI_ROLE_MODE, -1,
             " Compare with #%u: choose the NEWER side (now or a snapshot), Enter",
             m->snaps[m->pick_old].number);
    put_right(g, l->title_row, g->cols, " Esc:cancel ", TUI_ROLE_MODE);
    fill(g, l->head_row, 0, g->cols, ' ', TUI_ROLE_HEAD);
    tui_grid_put(g, l->head_row, 0, "    Side        Taken      Traced     Blocks", TUI_ROLE_HEAD,
                 -1);
    size_t first = m->pick_sel >= (size_t)l->body_rows ? m->pick_sel - (size_t)l->body_rows + 1 : 0;
    for (int r = 0; r < l->body_rows; r++) {
        size_t i = first + (size_t)r;
        if (i > m->nsnaps)
            break;
        int row = l->body_top + r;
        tui_role role = i == m->pick_sel ? TUI_ROLE_SELECTED : TUI_ROLE_NORMAL;
        if (role == TUI_ROLE_SELECTED)
            fill(g, row, 0, g->cols, ' ', role);
        const tm_totals *t;
        char name[32], when[32];
        int chosen = 0;
        if (i == 0) {
            t = &m->totals;
            snprintf(name, sizeof name, "now");
            snprintf(when, sizeof when, "-");
        } else {
            const tui_snap *s = &m->snaps[m->nsnaps - i];
            t = tm_snapshot_totals(s->snap);
            snprintf(name, sizeof name, "#%u", s->number);
            snprintf(when, sizeof when, "+%.1f s",
                     (double)(s->time_ns - (m->start_ns < s->time_ns ? m->start_ns : s->time_ns)) /
                         1e9);
            chosen = m->pick_step == 1 && m->nsnaps - i == m->pick_old;
        }
        putf(g, row, 0, role, -1, "  %c %-8s %9s %11s %10" PRIu64, chosen ? '*' : ' ', name, when,
             size_str(a, t->current), t->blocks);
    }
}

static void draw_status(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    char buf[1024];
    size_t used = 0;
    fill(g, l->status_row, 0, g->cols, ' ', TUI_ROLE_STATUS);
    used += (size_t)snprintf(buf + used, sizeof buf - used, " key:%s cumul:%s", key_name(m->key),
                             m->key == TM_KEY_TRACEBACK ? "n/a"
                             : m->cumulative            ? "on"
                                                        : "off");
    if (m->nfilters) {
        used += (size_t)snprintf(buf + used, sizeof buf - used, " filters:");
        for (size_t i = 0; i < m->nfilters && used < sizeof buf - 64; i++)
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%c%.40s", i ? " " : "",
                                     m->filters[i].inclusive ? '+' : '-', m->filters[i].pattern);
        if (m->all_frames)
            used += (size_t)snprintf(buf + used, sizeof buf - used, " (all frames)");
    } else {
        used += (size_t)snprintf(buf + used, sizeof buf - used, " filters:none%s",
                                 m->all_frames ? " (all frames)" : "");
    }
    used += (size_t)snprintf(buf + used, sizeof buf - used, " snaps:%zu", m->nsnaps);
    if (m->paused)
        used += (size_t)snprintf(buf + used, sizeof buf - used, " PAUSED");
    if (m->log_path && used < sizeof buf - 64)
        snprintf(buf + used, sizeof buf - used, " log:%s", m->log_path);
    tui_grid_put(g, l->status_row, 0, buf, TUI_ROLE_STATUS, g->cols - 8);
    put_right(g, l->status_row, g->cols, " ?:help ", TUI_ROLE_STATUS);
}

static void draw_footer(const tui_model *m, tui_grid *g)
{
    const tui_layout *l = &m->lay;
    int row = l->footer_row;
    if (m->prompt) {
        static const char *const q[] = {
            "", "include files matching (fnmatch glob, e.g. */src/*): ",
            "exclude files matching (fnmatch glob): ", "write the report to: "};
        int c = tui_grid_put(g, row, 0, q[m->prompt], TUI_ROLE_PROMPT, -1);
        /* the tail of the text when it is longer than the room */
        int room = g->cols - c - 1;
        const char *t = m->pbuf;
        int len = 0;
        for (const unsigned char *p = (const unsigned char *)t; *p; p++)
            len += (*p & 0xC0) != 0x80;
        while (len > room && *t) {
            t++;
            while ((*(const unsigned char *)t & 0xC0) == 0x80)
                t++;
            len--;
        }
        c += tui_grid_put(g, row, c, t, TUI_ROLE_NORMAL, -1);
        fill(g, row, c, 1, ' ', TUI_ROLE_CURSOR);
        return;
    }
    if (m->msg[0]) {
        tui_grid_put(g, row, 0, m->msg, m->msg_error ? TUI_ROLE_ERROR : TUI_ROLE_MESSAGE, -1);
        return;
    }
    if (m->target.stopping && !m->target.exited) {
        tui_grid_put(g, row, 0, "stopping the program: SIGTERM sent, SIGKILL in 2 s...",
                     TUI_ROLE_MESSAGE, -1);
        return;
    }
    char buf[256];
    tui_footer(buf, sizeof buf, g->cols - 1);
    tui_grid_put(g, row, 0, buf, TUI_ROLE_NORMAL, -1);
    /* key names in their role: every "x:" */
    for (int c = 0; c + 1 < g->cols; c++) {
        tui_cell *cell = &g->cells[row * g->cols + c];
        if ((c == 0 || cell[-1].ch == ' ') && cell->ch != ' ') {
            int k = c;
            while (k < g->cols && g->cells[row * g->cols + k].ch != ':')
                k++;
            set_role(g, row, c, k - c, TUI_ROLE_KEY);
            c = k;
        }
    }
}

void tui_render(const tui_model *m, tui_grid *g)
{
    for (int i = 0; i < g->rows * g->cols; i++)
        g->cells[i] = (tui_cell){' ', TUI_ROLE_NORMAL};
    if (m->lay.too_small || g->rows < TUI_MIN_ROWS || g->cols < TUI_MIN_COLS) {
        char buf[128];
        snprintf(buf, sizeof buf, "terminal too small: %dx%d, tmtop needs %dx%d", g->cols, g->rows,
                 TUI_MIN_COLS, TUI_MIN_ROWS);
        int len = (int)strlen(buf), row = g->rows / 2;
        tui_grid_put(g, row, len < g->cols ? (g->cols - len) / 2 : 0, buf, TUI_ROLE_ERROR, -1);
        tui_grid_put(g, row + 1, g->cols > 6 ? (g->cols - 6) / 2 : 0, "q quit", TUI_ROLE_LABEL, -1);
        return;
    }
    draw_title(m, g);
    draw_numbers(m, g);
    switch (m->view) {
    case TUI_VIEW_HELP:
        draw_help(m, g);
        break;
    case TUI_VIEW_OUTPUT:
        draw_output(m, g);
        break;
    default:
        draw_chart(m, g);
        if (m->view == TUI_VIEW_DETAIL)
            draw_detail(m, g);
        else if (m->view == TUI_VIEW_PICK)
            draw_pick(m, g);
        else
            draw_table(m, g);
    }
    draw_status(m, g);
    draw_footer(m, g);
}
