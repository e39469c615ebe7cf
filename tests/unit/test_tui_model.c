/* test_tui_model.c - the live explorer's model driven by keys, without a
 * terminal: key sequences in, rows out. */
#include <sys/stat.h>
#include <sys/wait.h>

#include "keymap.h"
#include "test_tui_fixture.h"

static void check_row(const tui_model *m, size_t r, const char *label, uint64_t size,
                      uint64_t count)
{
    CHECK(r < m->nrows);
    if (r >= m->nrows)
        return;
    CHECK_STR(fx_label(m, r), label);
    CHECK_U64(tui_model_stat(m, r)->size, size);
    CHECK_U64(tui_model_stat(m, r)->count, count);
}

static void test_live_rows(void)
{
    tstream t;
    fx_program(&t);
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    if (getenv("TUI_DUMP"))
        fx_dump(m);
    CHECK_U64(m->nrows, 3);
    /* sorted by size, as tracemalloc sorts */
    check_row(m, 0, "util.c:20 helper", 5000, 5);
    check_row(m, 1, "app.c:3 make_node", 4800, 100);
    check_row(m, 2, "app.c:10 main", 33, 3); /* the system frame is skipped */
    CHECK_U64(m->totals.current, 9833);
    CHECK_U64(m->totals.blocks, 108);
    CHECK_U64(m->totals.rss, 1 << 20);
    CHECK_STR(m->program, "./app --flag");

    /* g cycles lineno -> filename -> traceback -> lineno */
    CHECK(fx_keys(m, "g") & TUI_R_REDRAW);
    CHECK(m->key == TM_KEY_FILENAME);
    check_row(m, 0, "util.c", 5000, 5);
    check_row(m, 1, "app.c", 4833, 103);
    fx_keys(m, "g");
    CHECK(m->key == TM_KEY_TRACEBACK);
    check_row(m, 0, "util.c:20 helper < app.c:9 main", 5000, 5);
    check_row(m, 1, "app.c:3 make_node < app.c:8 main", 4800, 100);
    check_row(m, 2, "app.c:10 main", 33, 3);
    CHECK_U64(tui_model_stat(m, 2)->site_index, 1);
    /* cumulative does not apply to tracebacks */
    fx_keys(m, "c");
    CHECK(m->cumulative == 0);
    CHECK(m->msg_error);
    fx_keys(m, "g");
    CHECK(m->key == TM_KEY_LINENO);

    /* c: every frame from the site outward counts */
    fx_keys(m, "c");
    CHECK(m->cumulative);
    CHECK_U64(m->nrows, 5);
    /* equal sizes and counts: descending by key, as tracemalloc sorts */
    check_row(m, 0, "util.c:20 helper", 5000, 5);
    check_row(m, 1, "app.c:9 main", 5000, 5);
    check_row(m, 2, "app.c:8 main", 4800, 100);
    check_row(m, 3, "app.c:3 make_node", 4800, 100);
    check_row(m, 4, "app.c:10 main", 33, 3);
    fx_keys(m, "c");
    CHECK_U64(m->nrows, 3);

    tui_model_free(m);
    ts_close(&t);
}

static void test_navigation(void)
{
    tstream t;
    ts_open(&t);
    ev_hello(&t, 1, 0, 64, "/opt/demo/app");
    /* 60 sites of decreasing size: unknown addresses, module + offset */
    for (uint32_t s = 1; s <= 60; s++) {
        ev_stack(&t, s, 1, (uint64_t)(0x9000 + s * 16));
        ev_alloc(&t, s, 0x500000 + s * 0x1000, 1000 - s);
    }
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    CHECK_U64(m->nrows, 60);
    CHECK_U64(m->lay.body_rows, 14);
    CHECK_STR(fx_label(m, 0), "app+0x9010");
    CHECK_U64(m->sel, 0);
    fx_keys(m, "jjj");
    CHECK_U64(m->sel, 3);
    fx_keys(m, "k");
    CHECK_U64(m->sel, 2);
    tui_model_key(m, TUI_KEY_DOWN, 0);
    CHECK_U64(m->sel, 3);
    tui_model_key(m, TUI_KEY_PGDN, 0);
    CHECK_U64(m->sel, 17);
    CHECK(m->sel >= m->top && m->sel < m->top + 14);
    tui_model_key(m, TUI_KEY_END, 0);
    CHECK_U64(m->sel, 59);
    CHECK_U64(m->top, 46);
    tui_model_key(m, TUI_KEY_PGUP, 0);
    CHECK_U64(m->sel, 45);
    CHECK(m->sel >= m->top && m->sel < m->top + 14);
    tui_model_key(m, TUI_KEY_HOME, 0);
    CHECK_U64(m->sel, 0);
    CHECK_U64(m->top, 0);
    tui_model_key(m, TUI_KEY_UP, 0);
    CHECK_U64(m->sel, 0);

    /* resize: the layout grows, positions stay inside it */
    tui_model_key(m, TUI_KEY_END, 0);
    tui_model_resize(m, 40, 120);
    CHECK(!m->lay.too_small);
    CHECK(m->lay.body_rows > 14);
    CHECK_U64(m->sel, 59);
    CHECK_U64(m->top, 60 - (size_t)m->lay.body_rows);
    tui_model_resize(m, 20, 70);
    CHECK(m->lay.too_small);
    CHECK(fx_screen_has(m, "terminal too small: 70x20, tmtop needs 80x24"));
    tui_model_resize(m, 24, 80);
    CHECK(!m->lay.too_small);
    CHECK(m->sel >= m->top && m->sel < m->top + 14);

    /* the selection follows its site when the rows move */
    tui_model_key(m, TUI_KEY_HOME, 0);
    fx_keys(m, "jj"); /* the third largest: stack 3 */
    CHECK_STR(fx_label(m, m->sel), "app+0x9030");
    ev_alloc(&t, 60, 0x900000, 5000); /* stack 60 jumps to the top */
    tui_model_refresh(m, 4000000000ull);
    CHECK_STR(fx_label(m, 0), "app+0x93c0");
    CHECK_U64(m->sel, 3);
    CHECK_STR(fx_label(m, m->sel), "app+0x9030");

    tui_model_free(m);
    ts_close(&t);
}

static void test_snapshot_diff(void)
{
    tstream t;
    fx_program(&t);
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    /* d without a snapshot: an error, no diff */
    fx_keys(m, "d");
    CHECK(!m->diff && m->msg_error);
    fx_keys(m, "s");
    CHECK_U64(m->nsnaps, 1);
    CHECK_U64(m->snaps[0].number, 1);
    CHECK(strstr(m->msg, "snapshot #1") != NULL);

    /* the program moves on: 50 nodes freed, helper's blocks all freed, a
     * new site appears */
    for (uint64_t i = 0; i < 50; i++)
        ev_free(&t, 0x100000 + 0x100 * i);
    for (uint64_t i = 0; i < 5; i++)
        ev_free(&t, 0x200000 + 0x1000 * i);
    ev_stack(&t, 4, 2, (uint64_t)A_LEAF, (uint64_t)A_MAIN4);
    for (uint64_t i = 0; i < 7; i++)
        ev_alloc(&t, 4, 0x400000 + 0x100 * i, 100);
    tui_model_refresh(m, 5000000000ull);
    CHECK_U64(m->totals.current, 2400 + 33 + 700);

    fx_keys(m, "d");
    CHECK(m->diff);
    CHECK_U64(m->diff_old, 0);
    CHECK_I64(m->diff_new, -1);
    CHECK_U64(m->nrows, 4);
    /* sorted by |size_diff|: the vanished site first, size 0, negative */
    check_row(m, 0, "util.c:20 helper", 0, 0);
    CHECK_I64(tui_model_stat(m, 0)->size_diff, -5000);
    CHECK_I64(tui_model_stat(m, 0)->count_diff, -5);
    check_row(m, 1, "app.c:3 make_node", 2400, 50);
    CHECK_I64(tui_model_stat(m, 1)->size_diff, -2400);
    CHECK_I64(tui_model_stat(m, 1)->count_diff, -50);
    /* a new site: size_diff = size; the inlined leaf is the site */
    check_row(m, 2, "util.c:30 leaf", 700, 7);
    CHECK_I64(tui_model_stat(m, 2)->size_diff, 700);
    CHECK_I64(tui_model_stat(m, 2)->count_diff, 7);
    check_row(m, 3, "app.c:10 main", 33, 3);
    CHECK_I64(tui_model_stat(m, 3)->size_diff, 0);
    if (getenv("TUI_DUMP"))
        fx_dump(m);
    CHECK(fx_screen_has(m, "Diff now against #1: 4 lines"));
    CHECK(fx_screen_has(m, "-5000 B"));
    CHECK(fx_screen_has(m, "\u0394Size"));

    /* the diff stays live: more blocks at the new site */
    ev_alloc(&t, 4, 0x400800, 100);
    tui_model_refresh(m, 6000000000ull);
    CHECK_I64(tui_model_stat(m, 2)->size_diff, 800);

    /* d again: back to the live view */
    fx_keys(m, "d");
    CHECK(!m->diff);
    CHECK_U64(m->nrows, 3);

    /* D: snapshot #1 against #2 */
    fx_keys(m, "s");
    CHECK_U64(m->nsnaps, 2);
    ev_alloc(&t, 1, 0x700000, 48);
    tui_model_refresh(m, 7000000000ull);
    fx_keys(m, "D");
    CHECK(m->view == TUI_VIEW_PICK);
    CHECK_U64(m->pick_sel, 1); /* the newest snapshot, #2 */
    fx_keys(m, "j");           /* #1 */
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->pick_step, 1);
    CHECK_U64(m->pick_old, 0);
    /* the same side twice is refused */
    fx_keys(m, "j");
    fx_keys(m, "j");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK(m->msg_error && m->view == TUI_VIEW_PICK);
    fx_keys(m, "k"); /* #2 */
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK(m->view == TUI_VIEW_TABLE);
    CHECK(m->diff);
    CHECK_U64(m->diff_old, 0);
    CHECK_I64(m->diff_new, 1);
    CHECK(fx_screen_has(m, "Diff #2 against #1"));
    /* #2 does not have the node allocated after it */
    for (size_t r = 0; r < m->nrows; r++)
        if (!strcmp(fx_label(m, r), "app.c:3 make_node"))
            CHECK_U64(tui_model_stat(m, r)->count, 50);
    /* Esc cancels the picker */
    fx_keys(m, "D");
    tui_model_key(m, TUI_KEY_ESC, 0);
    CHECK(m->view == TUI_VIEW_TABLE);

    tui_model_free(m);
    ts_close(&t);
}

static void test_filters(void)
{
    tstream t;
    fx_program(&t);
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    fx_keys(m, "/");
    CHECK(m->prompt == TUI_PROMPT_INCLUDE);
    CHECK(fx_screen_has(m, "include files matching"));
    fx_keys(m, "*util.cX");
    tui_model_key(m, TUI_KEY_BACKSPACE, 0);
    CHECK_STR(m->pbuf, "*util.c");
    /* keys are text while the prompt is open */
    CHECK(m->key == TM_KEY_LINENO);
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK(m->prompt == TUI_PROMPT_NONE);
    CHECK_U64(m->nfilters, 1);
    CHECK_U64(m->nrows, 1);
    check_row(m, 0, "util.c:20 helper", 5000, 5);
    CHECK(fx_screen_has(m, "filters:+*util.c"));

    /* a second inclusive filter widens (ORed) */
    fx_keys(m, "/*app.c");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->nrows, 3);
    /* an exclusive one narrows */
    fx_keys(m, "!*util.c");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->nrows, 2);
    CHECK(fx_screen_has(m, "filters:+*util.c +*app.c -*util.c"));

    /* x clears; an exclusion on the site only, then with all_frames */
    fx_keys(m, "x");
    CHECK_U64(m->nfilters, 0);
    CHECK_U64(m->nrows, 3);
    fx_keys(m, "!*app.c");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->nrows, 1); /* helper's site is in util.c */
    fx_keys(m, "a");
    CHECK(m->all_frames);
    CHECK_U64(m->nrows, 0); /* every stack has main in app.c */
    CHECK(fx_screen_has(m, "no site matches the filters"));
    CHECK(fx_screen_has(m, "(all frames)"));
    fx_keys(m, "ax");

    /* Esc cancels a prompt; an empty pattern adds nothing */
    fx_keys(m, "/abc");
    tui_model_key(m, TUI_KEY_ESC, 0);
    CHECK_U64(m->nfilters, 0);
    fx_keys(m, "!");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->nfilters, 0);
    /* a bare name matches nothing (whole paths): a hint */
    fx_keys(m, "/app.c");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->nrows, 0);
    CHECK(strstr(m->msg, "try */app.c") != NULL);

    tui_model_free(m);
    ts_close(&t);
}

static void test_initial_query(void)
{
    tstream t;
    fx_program(&t);
    tm_filter f[1] = {{0, "*util.c", 0, 1}};
    tui_model_config c;
    memset(&c, 0, sizeof c);
    c.data.store = t.s;
    c.data.res = fx_resolver;
    c.query.key = TM_KEY_FILENAME;
    c.query.cumulative = 1;
    c.query.filters = f;
    c.query.nfilters = 1;
    c.program = "app";
    tui_model *m = tui_model_new(&c);
    tui_model_refresh(m, 1);
    CHECK(m->key == TM_KEY_FILENAME && m->cumulative && m->all_frames);
    CHECK_U64(m->nfilters, 1);
    /* exclusive *util.c over all frames drops helper's stack */
    CHECK_U64(m->nrows, 1);
    /* cumulative: app.c counts once per frame of stack 1 (make_node and main) */
    check_row(m, 0, "app.c", 2 * 4800 + 33, 2 * 100 + 3);
    tui_model_free(m);
    ts_close(&t);
}

static void test_detail(void)
{
    tstream t;
    fx_program(&t);
    /* a second traceback to make_node, from another line of main */
    ev_stack(&t, 5, 2, (uint64_t)A_NODE, (uint64_t)A_MAIN2);
    ev_alloc(&t, 5, 0x600000, 48);
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    fx_keys(m, "j");
    CHECK_STR(fx_label(m, m->sel), "app.c:3 make_node");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK(m->view == TUI_VIEW_DETAIL);
    CHECK_U64(m->det_size, 4848);
    CHECK_U64(m->det_count, 101);
    CHECK_U64(m->ndet, 2);
    CHECK_U64(m->det[0].count, 100);
    CHECK_U64(m->det[0].nframes, 2);
    CHECK_U64(m->det[0].frames[1].line, 8);
    CHECK_U64(m->det[1].count, 1);
    CHECK_U64(m->det[1].frames[1].line, 9);
    /* frames, with file:line and module, and the source line */
    if (getenv("TUI_DUMP"))
        fx_dump(m);
    CHECK(fx_screen_has(m, "Traceback of app.c:3 make_node"));
    CHECK(fx_screen_has(m, "traceback 1/2: 4800 B, 100 blocks"));
    CHECK(fx_screen_has(m, "> #0  make_node"));
    CHECK(fx_screen_has(m, "app.c:3  (app)"));
    CHECK(fx_screen_has(m, "return malloc(n); /* the node line */"));
    CHECK(fx_screen_has(m, "p = make_node(48);"));
    CHECK_U64(tui_detail_lines(m), 4);
    /* Right: the next traceback */
    tui_model_key(m, TUI_KEY_RIGHT, 0);
    CHECK_U64(m->det_cur, 1);
    CHECK(fx_screen_has(m, "traceback 2/2"));
    CHECK(fx_screen_has(m, "helper();"));
    tui_model_key(m, TUI_KEY_RIGHT, 0);
    CHECK_U64(m->det_cur, 1);
    fx_keys(m, "h");
    CHECK_U64(m->det_cur, 0);
    /* live: the detail follows new blocks */
    ev_alloc(&t, 1, 0x610000, 48);
    tui_model_refresh(m, 4000000000ull);
    CHECK_U64(m->det_count, 102);
    CHECK_U64(m->det[0].count, 101);
    /* Esc: back to the table, where we were */
    tui_model_key(m, TUI_KEY_ESC, 0);
    CHECK(m->view == TUI_VIEW_TABLE);
    CHECK_STR(fx_label(m, m->sel), "app.c:3 make_node");

    /* the system frame below a site is shown, dimmed, before the site */
    fx_keys(m, "j");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->ndet, 1);
    CHECK_U64(m->det[0].site, 1);
    CHECK(fx_screen_has(m, "  #0  __strdup_inline"));
    CHECK(fx_screen_has(m, "> #1  main"));
    /* a query change closes the detail */
    fx_keys(m, "g");
    CHECK(m->view == TUI_VIEW_TABLE);

    /* traceback key: the row is the traceback; inlined frames expand */
    ev_stack(&t, 6, 2, (uint64_t)A_LEAF, (uint64_t)A_MAIN4);
    ev_alloc(&t, 6, 0x620000, 77);
    tui_model_refresh(m, 5000000000ull);
    fx_keys(m, "g");
    CHECK(m->key == TM_KEY_TRACEBACK);
    size_t r;
    for (r = 0; r < m->nrows; r++)
        if (!strcmp(fx_label(m, r), "util.c:30 leaf < util.c:40 helper2 < app.c:11 main"))
            break;
    CHECK(r < m->nrows);
    while (m->sel < r)
        fx_keys(m, "j");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK_U64(m->ndet, 1);
    CHECK_U64(m->det[0].nframes, 3);
    CHECK(fx_screen_has(m, "leaf (inlined)"));

    tui_model_free(m);
    ts_close(&t);
}

static int pending_counter;
static uint64_t fx_pending_answers(void *ctx)
{
    (void)ctx;
    return (uint64_t)pending_counter;
}

static int counting_resolve(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out,
                            int max)
{
    int n = fake_resolve(ctx, mod, address, out, max);
    if (out[0].flags & TM_FRAME_PENDING)
        pending_counter++;
    return n;
}

static void test_pending_symbols(void)
{
    tstream t;
    fx_program(&t);
    fx_pending_on = 1;
    tui_model_config c;
    memset(&c, 0, sizeof c);
    c.data.store = t.s;
    c.data.res = (tm_resolver){counting_resolve, NULL};
    c.data.pending = fx_pending_answers;
    c.program = "app";
    tui_model *m = tui_model_new(&c);
    tui_model_refresh(m, 1);
    /* every site waits for its symbols: module + offset, marked */
    CHECK_U64(m->nrows, 3);
    CHECK_U64(m->pending_rows, 3);
    CHECK_STR(fx_label(m, 0), "app+0x2020 ...");
    CHECK(tui_model_row_pending(m, 0));
    CHECK(fx_screen_has(m, "(symbolizing...)"));
    fx_keys(m, "j");
    CHECK_STR(fx_label(m, m->sel), "app+0x1010 ...");

    /* w waits for the symbols */
    char dir[] = "/tmp/tmtop-tui-w-XXXXXX", path[512], jpath[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/r.txt", dir);
    snprintf(jpath, sizeof jpath, "%s/r.json", dir);
    CHECK(tui_model_write(m, path) == 0);
    CHECK(m->write_path != NULL);
    CHECK(access(path, F_OK) != 0);

    /* the symbols arrive: labels change, the selection stays on its site */
    fx_pending_on = 0;
    tui_model_requery(m);
    CHECK_U64(m->pending_rows, 0);
    CHECK_STR(fx_label(m, m->sel), "app.c:3 make_node");
    CHECK(!fx_screen_has(m, "(symbolizing...)"));
    /* and the report was written with them */
    CHECK(m->write_path == NULL);
    CHECK(access(path, F_OK) == 0);
    CHECK(access(jpath, F_OK) == 0);
    FILE *f = fopen(path, "r");
    char buf[8192] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    CHECK(strstr(buf, "util.c:20: size=5000 B, count=5, average=1000 B") != NULL);
    CHECK(strstr(buf, "app.c:3: size=4800 B, count=100, average=48 B") != NULL);
    unlink(path);
    unlink(jpath);
    rmdir(dir);
    tui_model_free(m);
    ts_close(&t);
}

static void test_write(void)
{
    tstream t;
    fx_program(&t);
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    char dir[] = "/tmp/tmtop-tui-w-XXXXXX", cwd[4096];
    CHECK(mkdtemp(dir) != NULL);
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(dir) == 0);
    /* the prompt proposes a new name in the current directory */
    fx_keys(m, "w");
    CHECK(m->prompt == TUI_PROMPT_WRITE);
    CHECK_STR(m->pbuf, "tmtop-4242.txt");
    tui_model_key(m, TUI_KEY_ENTER, 0);
    CHECK(access("tmtop-4242.txt", F_OK) == 0);
    CHECK(access("tmtop-4242.json", F_OK) == 0);
    CHECK(strstr(m->msg, "wrote tmtop-4242.txt and tmtop-4242.json") != NULL);
    fx_keys(m, "w");
    CHECK_STR(m->pbuf, "tmtop-4242-2.txt");
    tui_model_key(m, TUI_KEY_ESC, 0);

    /* a diff is written as tracemalloc's StatisticDiff */
    fx_keys(m, "s");
    ev_alloc(&t, 2, 0x280000, 1000);
    for (uint64_t i = 0; i < 10; i++)
        ev_free(&t, 0x100000 + 0x100 * i);
    tui_model_refresh(m, 5000000000ull);
    fx_keys(m, "d");
    CHECK(tui_model_write(m, "diff.txt") == 0);
    FILE *f = fopen("diff.txt", "r");
    char buf[8192] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    CHECK(strstr(buf, "util.c:20: size=6000 B (+1000 B), count=6 (+1), average=1000 B") != NULL);
    CHECK(strstr(buf, "app.c:3: size=4320 B (-480 B), count=90 (-10), average=48 B") != NULL);
    CHECK(strstr(buf, "app.c:10: size=33 B (+0 B), count=3 (+0), average=11 B") != NULL);
    f = fopen("diff.json", "r");
    n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    CHECK(strstr(buf, "\"size\":6000,\"count\":6,\"size_diff\":1000,\"count_diff\":1") != NULL);
    CHECK(strstr(buf, "\"old\":\"snapshot #1\"") != NULL);
    /* an unwritable path: an error in the footer */
    CHECK(tui_model_write(m, "no/such/dir/r.txt") == -1);
    CHECK(m->msg_error);
    unlink("tmtop-4242.txt");
    unlink("tmtop-4242.json");
    unlink("diff.txt");
    unlink("diff.json");
    CHECK(chdir(cwd) == 0);
    rmdir(dir);
    tui_model_free(m);
    ts_close(&t);
}

static void test_views_and_keys(void)
{
    tstream t;
    fx_program(&t);
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    /* help: generated from the one key table */
    fx_keys(m, "?");
    CHECK(m->view == TUI_VIEW_HELP);
    if (getenv("TUI_DUMP"))
        fx_dump(m);
    CHECK(fx_screen_has(m, "Keys"));
    CHECK(fx_screen_has(m, "g              group by lineno -> filename -> traceback"));
    CHECK(fx_screen_has(m, "Up k           move the selection up"));
    /* other keys do nothing while help is open */
    fx_keys(m, "g");
    CHECK(m->key == TM_KEY_LINENO);
    tui_model_key(m, TUI_KEY_END, 0);
    CHECK(m->help_top > 0);
    CHECK(fx_screen_has(m, "q ^C           quit"));
    tui_model_key(m, TUI_KEY_ESC, 0);
    CHECK(m->view == TUI_VIEW_TABLE);
    fx_keys(m, "??");
    CHECK(m->view == TUI_VIEW_TABLE);

    /* pause: the view stays, tracing goes on */
    fx_keys(m, "p");
    CHECK(m->paused);
    ev_alloc(&t, 3, 0x380000, 11);
    tui_model_refresh(m, 4000000000ull);
    CHECK_U64(m->totals.blocks, 108);
    CHECK(fx_screen_has(m, "PAUSED"));
    /* a query change while paused works on the frozen data */
    fx_keys(m, "g");
    CHECK_U64(m->nrows, 2);
    CHECK_U64(tui_model_stat(m, 1)->count, 103);
    fx_keys(m, "gg");
    fx_keys(m, "p");
    CHECK(!m->paused);
    CHECK_U64(m->totals.blocks, 109);

    /* r: the peak comes down to the current */
    for (uint64_t i = 0; i < 100; i++)
        ev_free(&t, 0x100000 + 0x100 * i);
    tui_model_refresh(m, 5000000000ull);
    CHECK_U64(m->totals.peak, 9844);
    fx_keys(m, "r");
    CHECK_U64(m->totals.peak, m->totals.current);
    CHECK_U64(m->totals.peak, 5044);

    /* o: the output view, toggled */
    fx_keys(m, "o");
    CHECK(m->view == TUI_VIEW_OUTPUT);
    CHECK(fx_screen_has(m, "(no output)"));
    fx_keys(m, "o");
    CHECK(m->view == TUI_VIEW_TABLE);

    /* q and Ctrl-C quit, even from a prompt */
    CHECK(fx_keys(m, "q") & TUI_R_QUIT);
    fx_keys(m, "/");
    CHECK(tui_model_key(m, TUI_KEY_CTRL_C, 0) & TUI_R_QUIT);
    CHECK(!(fx_keys(m, "Z") & TUI_R_QUIT));

    /* the program's end, in the title */
    tui_target tg = {.pid = 4242, .started = 1, .exited = 1, .wstatus = 3 << 8};
    tui_model_set_target(m, &tg);
    CHECK(fx_screen_has(m, "pid 4242  exited with status 3"));
    CHECK_I64(tui_exit_status(3 << 8), 3);
    tg.wstatus = SIGSEGV;
    tui_model_set_target(m, &tg);
    CHECK(fx_screen_has(m, "killed by SIGSEGV (signal 11)"));
    CHECK_I64(tui_exit_status(SIGSEGV), 128 + SIGSEGV);
    tui_model_free(m);
    ts_close(&t);
}

static void test_render(void)
{
    tstream t;
    fx_program(&t);
    /* a series: memory over time, with a peak in the middle */
    for (uint64_t i = 0; i < 30; i++) {
        ev_alloc(&t, 1, 0x800000 + 0x100 * i, 1000);
        ev_tick(&t, 1000000000ull + (i + 1) * 10000000ull, 2 << 20);
    }
    for (uint64_t i = 0; i < 30; i++) {
        ev_free(&t, 0x800000 + 0x100 * i);
        ev_tick(&t, 1300000000ull + (i + 1) * 10000000ull, 2 << 20);
    }
    tui_model *m = fx_model(&t, TM_KEY_LINENO);
    if (getenv("TUI_DUMP"))
        fx_dump(m);
    /* header: the program, pid, state, totals, rate, RSS */
    CHECK_STR(fx_screen_row(m, 0), " tmtop ./app --flag  pid 4242  running"
                                   "                                   ?:help");
    CHECK(strstr(fx_screen_row(m, 1), "traced 9833 B  peak 38.9 KiB  blocks 108") != NULL);
    CHECK(strstr(fx_screen_row(m, 1), "RSS 2048 KiB") != NULL);
    CHECK(strstr(fx_screen_row(m, 1), "alloc rate ") != NULL);
    /* the chart: the scale is the peak, a bar reaches the top row */
    CHECK(strncmp(fx_screen_row(m, 2), " 38.9 KiB \u2502", 13) == 0);
    CHECK(strstr(fx_screen_row(m, 2), "\u2588") != NULL);
    CHECK(strstr(fx_screen_row(m, 3), "peak") != NULL);
    CHECK(strncmp(fx_screen_row(m, 5), "        0 \u2502", 12) == 0);
    /* the table */
    CHECK_STR(fx_screen_row(m, 6), " Top lines: 3");
    CHECK_STR(fx_screen_row(m, 7), "      Size    Count   Average  Site");
    CHECK_STR(fx_screen_row(m, 8), "    5000 B        5    1000 B  util.c:20 helper");
    CHECK_STR(fx_screen_row(m, 9), "    4800 B      100      48 B  app.c:3 make_node");
    CHECK_STR(fx_screen_row(m, 10), "      33 B        3      11 B  app.c:10 main");
    CHECK_STR(fx_screen_row(m, 22), " key:lineno cumul:off filters:none snaps:0 "
                                    "log:/tmp/tmtop-4242.log       ?:help");
    CHECK_STR(fx_screen_row(m, 23), "?:help q:quit g:key c:cumul s:snap d:diff /:incl !:excl "
                                    "p:pause o:out w:write");
    /* roles: the selected row, the title bar */
    tui_grid g = {0, 0, NULL};
    tui_grid_init(&g, 24, 80);
    tui_render(m, &g);
    CHECK(g.cells[8 * 80 + 40].role == TUI_ROLE_SELECTED);
    CHECK(g.cells[9 * 80 + 4].role == TUI_ROLE_NORMAL);
    CHECK(g.cells[0].role == TUI_ROLE_TITLE);
    CHECK(g.cells[22 * 80].role == TUI_ROLE_STATUS);

    /* an ASCII terminal: no block or box characters */
    m->unicode = 0;
    fx_keys(m, "s");
    fx_keys(m, "d");
    CHECK(strncmp(fx_screen_row(m, 2), " 38.9 KiB |", 11) == 0);
    CHECK(strchr(fx_screen_row(m, 2), '#') != NULL);
    CHECK(strstr(fx_screen_row(m, 7), "+-Size") != NULL);
    for (int r = 0; r < 24; r++)
        for (const char *p = fx_screen_row(m, r); *p; p++)
            if ((unsigned char)*p >= 0x80) {
                CHECK(!"ASCII only");
                r = 24;
                break;
            }

    /* killed before the last flush: the trace is incomplete */
    tui_target tg = {.pid = 4242, .started = 1, .exited = 1, .wstatus = SIGKILL, .done = 1};
    tui_model_set_target(m, &tg);
    fx_keys(m, "d");
    CHECK(strstr(fx_screen_row(m, 6), "[trace incomplete]") != NULL);
    CHECK(strstr(fx_screen_row(m, 0), "killed by SIGKILL (signal 9)") != NULL);
    CHECK(g.cells[0].role == TUI_ROLE_TITLE);
    tui_render(m, &g);
    CHECK(g.cells[0 * 80 + 34].role == TUI_ROLE_BAD);
    tui_grid_fini(&g);
    tui_model_free(m);
    ts_close(&t);
}

static void test_keymap(void)
{
    /* every action has a key and a help line; no key is bound twice */
    for (int a = TUI_ACT_NONE + 1; a < TUI_ACT_COUNT; a++) {
        int bound = 0;
        for (size_t b = 0; b < tui_nbindings; b++)
            bound |= tui_bindings[b].action == (tui_action)a;
        CHECK(bound);
        CHECK(tui_action_help((tui_action)a)[0] != '\0');
    }
    for (size_t b = 0; b < tui_nbindings; b++)
        for (size_t c = b + 1; c < tui_nbindings; c++)
            CHECK(tui_bindings[b].key != tui_bindings[c].key);
    CHECK_U64(tui_help_lines(), TUI_ACT_COUNT - 1);
    CHECK(tui_keymap_lookup('g') == TUI_ACT_KEY);
    CHECK(tui_keymap_lookup('D') == TUI_ACT_DIFF_PICK);
    CHECK(tui_keymap_lookup('Z') == TUI_ACT_NONE);
    char buf[256];
    tui_footer(buf, sizeof buf, 79);
    CHECK(strlen(buf) <= 79);
    CHECK(strncmp(buf, "?:help q:quit g:key c:cumul s:snap d:diff", 41) == 0);
    tui_footer(buf, sizeof buf, 20);
    CHECK_STR(buf, "?:help q:quit g:key");
}

int main(void)
{
    fx_write_sources();
    test_live_rows();
    test_navigation();
    test_snapshot_diff();
    test_filters();
    test_initial_query();
    test_detail();
    test_pending_symbols();
    test_write();
    test_views_and_keys();
    test_render();
    test_keymap();
    fx_remove_sources();
    (void)fx_screen_row;
    return check_done("tui_model");
}
