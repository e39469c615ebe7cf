/* test_tui_fixture.h - what the live explorer's unit tests share: a store
 * built from synthetic wire records (through the real decoder, see
 * test_store_stream.h), a fake resolver that knows a few return addresses,
 * a source file to show in the detail, and a model over all of it. */
#ifndef TMTOP_TEST_TUI_FIXTURE_H
#define TMTOP_TEST_TUI_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "render.h"
#include "test_store_stream.h"

/* The fake program: return addresses and where they are.  Lines of app.c
 * are real lines of the source file the fixture writes. */
typedef struct fake_sym {
    uint64_t addr;
    const char *function;
    const char *file; /* "@app" / "@util": the fixture's files */
    uint32_t line;
} fake_sym;

enum {
    A_NODE = 0x1010,   /* app.c:3 make_node */
    A_MAIN1 = 0x1100,  /* app.c:8 main -> make_node */
    A_MAIN2 = 0x1110,  /* app.c:9 main -> helper */
    A_MAIN3 = 0x1120,  /* app.c:10 main -> strdup */
    A_HELPER = 0x2020, /* util.c:20 helper */
    A_STRDUP = 0x3000, /* a system header frame: skipped as the site */
    A_LEAF = 0x4000,   /* util.c:30 leaf (inlined into helper2) */
    A_MAIN4 = 0x1130,  /* app.c:11 main -> leaf */
};

static char fx_app[256], fx_util[256];

static const fake_sym fake_syms[] = {
    {A_NODE, "make_node", "@app", 3},
    {A_MAIN1, "main", "@app", 8},
    {A_MAIN2, "main", "@app", 9},
    {A_MAIN3, "main", "@app", 10},
    {A_MAIN4, "main", "@app", 11},
    {A_HELPER, "helper", "@util", 20},
    {A_LEAF, "leaf", "@util", 30},
    {A_STRDUP, "__strdup_inline", "/usr/include/x86_64-linux-gnu/bits/string_fortified.h", 5},
};

/* Addresses answered "pending" while fx_pending_on is set. */
static int fx_pending_on;
static int fx_calls;

static int fake_resolve(void *ctx, const tm_module *mod, uint64_t address, tm_frame *out, int max)
{
    (void)ctx;
    (void)max;
    fx_calls++;
    memset(out, 0, sizeof *out);
    out->address = address;
    out->offset = address;
    out->module = mod ? mod->path : "/opt/demo/app";
    if (fx_pending_on) {
        out->flags = TM_FRAME_PENDING;
        return 1;
    }
    for (size_t i = 0; i < sizeof fake_syms / sizeof fake_syms[0]; i++) {
        const fake_sym *f = &fake_syms[i];
        if (f->addr != address)
            continue;
        out->function = f->function;
        out->file = !strcmp(f->file, "@app")    ? fx_app
                    : !strcmp(f->file, "@util") ? fx_util
                                                : f->file;
        out->line = f->line;
        if (address == A_LEAF && max >= 2) {
            /* an inlined call: leaf inside helper2 */
            out->flags = TM_FRAME_INLINED;
            out[1] = out[0];
            out[1].flags = 0;
            out[1].function = "helper2";
            out[1].line = 40;
            return 2;
        }
        return 1;
    }
    return 1; /* unknown: module + offset */
}

/* Writes the fake sources into a temporary directory. */
static void fx_write_sources(void)
{
    char dir[] = "/tmp/tmtop-tui-test-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(fx_app, sizeof fx_app, "%s/app.c", dir);
    snprintf(fx_util, sizeof fx_util, "%s/util.c", dir);
    FILE *f = fopen(fx_app, "w");
    fputs("#include <stdlib.h>\n"
          "static void *make_node(size_t n) {\n"
          "    return malloc(n); /* the node line */\n"
          "}\n"
          "int main(void) {\n"
          "    void *p;\n"
          "    for (int i = 0; i < 100; i++)\n"
          "        p = make_node(48);\n"
          "    helper();\n"
          "    p = strdup(\"x\");\n"
          "    leaf();\n"
          "}\n",
          f);
    fclose(f);
    f = fopen(fx_util, "w");
    for (int i = 1; i <= 50; i++)
        fprintf(f, "\tutil line %d\n", i);
    fclose(f);
}

static void fx_remove_sources(void)
{
    char dir[256];
    unlink(fx_app);
    unlink(fx_util);
    snprintf(dir, sizeof dir, "%s", fx_app);
    *strrchr(dir, '/') = '\0';
    rmdir(dir);
}

/* The fixture's program: a store with three sites.
 *   stack 1  make_node <- main:8   100 blocks x 48 B   (4800 B)
 *   stack 2  helper <- main:9        5 blocks x 1000 B (5000 B)
 *   stack 3  strdup(sys) <- main:10  3 blocks x 11 B   (33 B)
 * Pointers: stack 1 at 0x100000 + 0x100 * i, stack 2 at 0x200000 + ...,
 * stack 3 at 0x300000 + ... */
static void fx_program(tstream *t)
{
    ts_open(t);
    CHECK(ev_hello(t, 4242, 1, 64, "/opt/demo/app") == 0);
    CHECK(ev_stack(t, 1, 2, (uint64_t)A_NODE, (uint64_t)A_MAIN1) == 0);
    CHECK(ev_stack(t, 2, 2, (uint64_t)A_HELPER, (uint64_t)A_MAIN2) == 0);
    CHECK(ev_stack(t, 3, 2, (uint64_t)A_STRDUP, (uint64_t)A_MAIN3) == 0);
    for (uint64_t i = 0; i < 100; i++)
        ev_alloc(t, 1, 0x100000 + 0x100 * i, 48);
    for (uint64_t i = 0; i < 5; i++)
        ev_alloc(t, 2, 0x200000 + 0x1000 * i, 1000);
    for (uint64_t i = 0; i < 3; i++)
        ev_alloc(t, 3, 0x300000 + 0x100 * i, 11);
    ev_tick(t, 1000000000ull, 1 << 20);
}

static tm_resolver fx_resolver = {fake_resolve, NULL};

static tui_model *fx_model(tstream *t, tm_key key)
{
    tui_model_config c;
    memset(&c, 0, sizeof c);
    c.data.store = t->s;
    c.data.res = fx_resolver;
    c.query.key = key;
    c.program = "./app --flag";
    c.frames = 64;
    c.log_path = "/tmp/tmtop-4242.log";
    c.unicode = 1;
    tui_model *m = tui_model_new(&c);
    CHECK(m != NULL);
    tui_target tg = {.pid = 4242, .started = 1};
    tui_model_set_target(m, &tg);
    tui_model_refresh(m, 2000000000ull);
    return m;
}

/* Presses the keys of a string ("gg/" ...), at model time 3 s. */
static unsigned fx_keys(tui_model *m, const char *keys)
{
    unsigned r = 0;
    for (const char *k = keys; *k; k++)
        r |= tui_model_key(m, (unsigned char)*k, 3000000000ull);
    return r;
}

static const char *fx_label(const tui_model *m, size_t row)
{
    static char buf[1024];
    return tui_model_row_label(m, row, buf, sizeof buf);
}

/* Renders m on a fresh grid and returns row r as text. */
static const char *fx_screen_row(const tui_model *m, int r)
{
    static tui_grid g;
    static char buf[4096];
    tui_grid_init(&g, m->rows, m->cols);
    tui_render(m, &g);
    tui_grid_row_text(&g, r, buf, sizeof buf);
    return buf;
}

/* Whether any row of the rendered screen contains s. */
static int fx_screen_has(const tui_model *m, const char *s)
{
    tui_grid g = {0, 0, NULL};
    char buf[4096];
    int found = 0;
    tui_grid_init(&g, m->rows, m->cols);
    tui_render(m, &g);
    for (int r = 0; r < g.rows && !found; r++)
        found = strstr(tui_grid_row_text(&g, r, buf, sizeof buf), s) != NULL;
    tui_grid_fini(&g);
    return found;
}

/* Prints the rendered screen (for failures and debugging). */
static void fx_dump(const tui_model *m)
{
    tui_grid g = {0, 0, NULL};
    char buf[4096];
    tui_grid_init(&g, m->rows, m->cols);
    tui_render(m, &g);
    for (int r = 0; r < g.rows; r++)
        fprintf(stderr, "|%s\n", tui_grid_row_text(&g, r, buf, sizeof buf));
    tui_grid_fini(&g);
}

#endif
