#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const key_names[] = {"lineno", "filename", "traceback"};

/* ---- text ---------------------------------------------------------------- */

/* A file name as the user wants to read it: relative to the current directory
 * when it lies below it, as given otherwise. */
static const char *display_path(const char *path, const char *cwd)
{
    size_t n = strlen(cwd);
    if (path && n > 1 && strncmp(path, cwd, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path;
}

static const char *base_name(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : path;
}

/* "file.c:42", "file.c", or for frames without a source file the function and
 * module ("make_node in libfoo.so"), or the module and offset. */
static void print_where(FILE *out, const tm_frame *f, int with_line, const char *cwd)
{
    if (f->file) {
        fputs(display_path(f->file, cwd), out);
        if (with_line)
            fprintf(out, ":%" PRIu32, f->line);
    } else if (f->function) {
        fprintf(out, "%s in %s", f->function, f->module ? base_name(f->module) : "??");
    } else if (f->module) {
        fprintf(out, "%s+0x%" PRIx64, base_name(f->module), f->offset);
    } else {
        fprintf(out, "0x%" PRIx64, f->address);
    }
}

/* One Statistic (or StatisticDiff when diff is set) as tracemalloc prints it;
 * the traceback key adds every frame below, the site marked '>'. */
static void print_stat_text(FILE *out, const tm_stat *st, tm_key key, int diff, const char *cwd)
{
    char a[TM_SIZE_BUF], b[TM_SIZE_BUF], c[TM_SIZE_BUF];
    const tm_frame *site = &st->frames[key == TM_KEY_TRACEBACK ? st->site_index : 0];
    print_where(out, site, key != TM_KEY_FILENAME, cwd);
    if (diff)
        fprintf(out, ": size=%s (%s), count=%" PRIu64 " (%+" PRId64 ")",
                tm_format_size(a, (double)st->size, 0), tm_format_size(b, (double)st->size_diff, 1),
                st->count, st->count_diff);
    else
        fprintf(out, ": size=%s, count=%" PRIu64, tm_format_size(a, (double)st->size, 0),
                st->count);
    if (st->count)
        fprintf(out, ", average=%s", tm_format_size(c, (double)st->size / st->count, 0));
    fputc('\n', out);
    if (key != TM_KEY_TRACEBACK)
        return;
    for (uint32_t i = 0; i < st->nframes; i++) {
        const tm_frame *f = &st->frames[i];
        fputs(i == st->site_index ? "  > " : "    ", out);
        print_where(out, f, 1, cwd);
        if (f->function && f->file)
            fprintf(out, " %s", f->function);
        if (f->flags & TM_FRAME_INLINED)
            fputs(" (inlined)", out);
        fputc('\n', out);
    }
}

static void print_exit_text(FILE *out, const tm_report_opts *o)
{
    if (!o->exited)
        fputs("is still running", out);
    else if (WIFSIGNALED(o->wstatus))
        fprintf(out, "was killed by signal %d (%s)", WTERMSIG(o->wstatus),
                strsignal(WTERMSIG(o->wstatus)));
    else
        fprintf(out, "exited with status %d", WEXITSTATUS(o->wstatus));
}

/* The header line of a process: the target's names the program and its exit,
 * a followed child's its pid and its parent's. */
static void write_text_head(FILE *out, const tm_totals *t, const tm_report_opts *o, int child)
{
    if (child) {
        fprintf(out, "\nchild pid %" PRIu32 " (parent %" PRIu32 ")\n", t->pid, t->ppid);
        return;
    }
    fprintf(out, "tmtop report: %s (pid %" PRIu32 ") ", o->program, t->pid);
    print_exit_text(out, o);
    fputc('\n', out);
}

/* Everything below the header: totals, warning, statistics. */
static void write_text(FILE *out, const tm_totals *t, const tm_stats *st, const tm_report_opts *o,
                       const char *cwd)
{
    char cur[TM_SIZE_BUF], peak[TM_SIZE_BUF];
    fprintf(out,
            "traced memory: current=%s in %" PRIu64 " blocks, peak=%s, %" PRIu64
            " allocation calls, stack depth %u\n",
            tm_format_size(cur, (double)t->current, 0), t->blocks,
            tm_format_size(peak, (double)t->peak, 0), t->allocations, o->frames);
    if (t->execd)
        fputs("note: the process then exec'd another program, which was not traced\n", out);
    else if (!t->ended)
        fputs("warning: the trace is incomplete: the process ended before the hook flushed "
              "its last events\n",
              out);
    size_t n = o->limit && o->limit < st->n ? o->limit : st->n;
    static const char *const what[] = {"lines", "files", "tracebacks"};
    fprintf(out, "%s %zu %s%s:\n", n < st->n ? "Top" : "All", n, what[o->query.key],
            o->query.cumulative ? " (cumulative)" : "");
    for (size_t i = 0; i < n; i++)
        print_stat_text(out, &st->v[i], o->query.key, 0, cwd);
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_str(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void json_frame(FILE *out, const tm_frame *f)
{
    fputs("{\"function\":", out);
    json_str(out, f->function);
    fputs(",\"file\":", out);
    json_str(out, f->file);
    fprintf(out, ",\"line\":%" PRIu32 ",\"module\":", f->line);
    json_str(out, f->module);
    fprintf(out, ",\"address\":\"0x%" PRIx64 "\"", f->address);
    if (f->flags & TM_FRAME_INLINED)
        fputs(",\"inlined\":true", out);
    fputc('}', out);
}

/* {"version":1,"program":…,"pid":…,"exit":… — the opening every JSON
 * document of tmtop shares. */
static void json_head(FILE *out, const tm_totals *t, const tm_report_opts *o)
{
    fputs("{\"version\":1,\"program\":", out);
    json_str(out, o->program);
    fprintf(out, ",\"pid\":%" PRIu32 ",\"exit\":", t->pid);
    if (!o->exited)
        fputs("null", out);
    else if (WIFSIGNALED(o->wstatus))
        fprintf(out, "{\"signal\":%d}", WTERMSIG(o->wstatus));
    else
        fprintf(out, "{\"status\":%d}", WEXITSTATUS(o->wstatus));
}

/* The "stats" array's items and its closing bracket; diff adds
 * size_diff/count_diff. */
static void json_stats(FILE *out, const tm_stats *st, const tm_report_opts *o, int diff)
{
    size_t n = o->limit && o->limit < st->n ? o->limit : st->n;
    for (size_t i = 0; i < n; i++) {
        const tm_stat *s = &st->v[i];
        fputs(i ? ",\n{" : "\n{", out);
        if (o->query.key == TM_KEY_TRACEBACK) {
            fputs("\"frames\":[", out);
            for (uint32_t j = 0; j < s->nframes; j++) {
                if (j)
                    fputc(',', out);
                json_frame(out, &s->frames[j]);
            }
            fprintf(out, "],\"site\":%" PRIu32, s->site_index);
        } else {
            const tm_frame *f = &s->frames[0];
            fputs("\"file\":", out);
            json_str(out, f->file);
            if (o->query.key == TM_KEY_LINENO) {
                fprintf(out, ",\"line\":%" PRIu32 ",\"function\":", f->line);
                json_str(out, f->function);
            }
            if (!f->file) {
                fputs(",\"module\":", out);
                json_str(out, f->module);
            }
        }
        fprintf(out, ",\"size\":%" PRIu64 ",\"count\":%" PRIu64, s->size, s->count);
        if (diff)
            fprintf(out, ",\"size_diff\":%" PRId64 ",\"count_diff\":%" PRId64, s->size_diff,
                    s->count_diff);
        fputc('}', out);
    }
    fputc(']', out);
}

/* The fields of one process after its pid: totals, settings and "stats". */
static void write_json(FILE *out, const tm_totals *t, const tm_stats *st, const tm_report_opts *o)
{
    fprintf(out,
            ",\"current\":%" PRIu64 ",\"peak\":%" PRIu64 ",\"blocks\":%" PRIu64
            ",\"allocations\":%" PRIu64 ",\"frees\":%" PRIu64 ",\"unknown_frees\":%" PRIu64
            ",\"complete\":%s,%s\"frames\":%u,\"key\":\"%s\",\"cumulative\":%s,\"stats\":[",
            t->current, t->peak, t->blocks, t->allocations, t->frees, t->unknown_frees,
            t->ended || t->execd ? "true" : "false", t->execd ? "\"execd\":true," : "", o->frames,
            key_names[o->query.key], o->query.cumulative ? "true" : "false");
    json_stats(out, st, o, 0);
}

/* One process of the report: procs[0] the target, the others children
 * (index > 0), whose JSON objects go into "children". */
static int write_proc(FILE *out, tm_store *s, size_t index, const tm_resolver *res,
                      const tm_report_opts *o, const char *cwd, tm_err *err)
{
    tm_snapshot *snap = tm_store_snapshot(s);
    if (!snap)
        return tm_err_set(err, TM_E_NOMEM, "out of memory taking the final snapshot");
    tm_stats *st = tm_snapshot_statistics(snap, &o->query, res, err);
    if (!st) {
        tm_snapshot_free(snap);
        return -1;
    }
    const tm_totals *t = tm_snapshot_totals(snap);
    if (!o->json) {
        write_text_head(out, t, o, index > 0);
        write_text(out, t, st, o, cwd);
    } else if (index == 0) {
        json_head(out, t, o);
        write_json(out, t, st, o);
    } else {
        fprintf(out, "%s{\"pid\":%" PRIu32 ",\"ppid\":%" PRIu32, index > 1 ? ",\n" : "\n", t->pid,
                t->ppid);
        write_json(out, t, st, o);
        fputc('}', out);
    }
    tm_stats_free(st);
    tm_snapshot_free(snap);
    return 0;
}

/* children: write the "children" array (JSON) even when n == 1. */
static int write_procs(FILE *out, tm_store *const *procs, size_t n, int children,
                       const tm_resolver *res, const tm_report_opts *o, tm_err *err)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (write_proc(out, procs[i], i, res, o, cwd, err) != 0)
            return -1;
        if (o->json && i == 0 && children)
            fputs(",\"children\":[", out);
    }
    if (o->json)
        fputs(children ? "]}\n" : "}\n", out);
    if (fflush(out) != 0 || ferror(out))
        return tm_err_set(err, TM_E_IO, "cannot write the report: %s", strerror(errno));
    return 0;
}

int tm_report_write(FILE *out, tm_store *s, const tm_resolver *res, const tm_report_opts *o,
                    tm_err *err)
{
    return write_procs(out, &s, 1, 0, res, o, err);
}

int tm_report_write_procs(FILE *out, tm_store *const *procs, size_t n, const tm_resolver *res,
                          const tm_report_opts *o, tm_err *err)
{
    if (n == 0)
        return tm_err_set(err, TM_E_USAGE, "no process to report");
    return write_procs(out, procs, n, 1, res, o, err);
}

int tm_report_write_diff(FILE *out, const tm_stats *st, const tm_report_diff_opts *d, tm_err *err)
{
    static const char *const what[] = {"lines", "files", "tracebacks"};
    const tm_report_opts *o = &d->base;
    const tm_totals *tn = d->new_totals, *to = d->old_totals;
    int cumulative = o->query.cumulative && o->query.key != TM_KEY_TRACEBACK;
    if (o->json) {
        json_head(out, tn, o);
        fprintf(out,
                ",\"current\":%" PRIu64 ",\"peak\":%" PRIu64 ",\"blocks\":%" PRIu64
                ",\"frames\":%u,\"key\":\"%s\",\"cumulative\":%s,\"diff\":{\"new\":",
                tn->current, tn->peak, tn->blocks, o->frames, key_names[o->query.key],
                cumulative ? "true" : "false");
        json_str(out, d->new_name);
        fputs(",\"old\":", out);
        json_str(out, d->old_name);
        fprintf(out, ",\"old_current\":%" PRIu64 ",\"old_blocks\":%" PRIu64 "},\"stats\":[",
                to->current, to->blocks);
        json_stats(out, st, o, 1);
        fputs("}\n", out);
    } else {
        char a[TM_SIZE_BUF], b[TM_SIZE_BUF], cwd[4096];
        if (!getcwd(cwd, sizeof cwd))
            cwd[0] = '\0';
        fprintf(out, "tmtop diff: %s (pid %" PRIu32 ") ", o->program, tn->pid);
        print_exit_text(out, o);
        fprintf(out,
                "\n%s: current=%s in %" PRIu64 " blocks; %s: current=%s in %" PRIu64 " blocks\n",
                d->new_name, tm_format_size(a, (double)tn->current, 0), tn->blocks, d->old_name,
                tm_format_size(b, (double)to->current, 0), to->blocks);
        size_t n = o->limit && o->limit < st->n ? o->limit : st->n;
        fprintf(out, "%s %zu %s%s, %s against %s:\n", n < st->n ? "Top" : "All", n,
                what[o->query.key], cumulative ? " (cumulative)" : "", d->new_name, d->old_name);
        for (size_t i = 0; i < n; i++)
            print_stat_text(out, &st->v[i], o->query.key, 1, cwd);
    }
    if (fflush(out) != 0 || ferror(out))
        return tm_err_set(err, TM_E_IO, "cannot write the report: %s", strerror(errno));
    return 0;
}
