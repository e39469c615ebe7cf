/* test_tui_screen.c - the curses layer on a real pseudo-terminal: what a
 * grid draws, that a second draw sends only what changed, keys, colours or
 * none (NO_COLOR), and that closing gives the terminal back. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "check.h"
#include "keymap.h"
#include "render.h"
#include "screen.h"

/* Everything the "terminal" received, read by a thread so that curses never
 * blocks on a full pty. */
static int master = -1;
static char got[1 << 20];
static atomic_size_t ngot;
static atomic_int stop_reader;

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_reader)) {
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        size_t n = atomic_load(&ngot);
        ssize_t r = read(master, got + n, sizeof got - 1 - n);
        if (r > 0)
            atomic_store(&ngot, n + (size_t)r);
    }
    return NULL;
}

/* Waits for the reader to catch up (the output is quiet for 100 ms). */
static size_t quiet(void)
{
    size_t last = (size_t)-1, n;
    while ((n = atomic_load(&ngot)) != last) {
        last = n;
        usleep(100000);
    }
    return n;
}

static int seen_since(size_t from, const char *s)
{
    size_t n = atomic_load(&ngot);
    got[n] = '\0';
    return memmem(got + from, n - from, s, strlen(s)) != NULL;
}

static void test_screen(int mono)
{
    int slave;
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    CHECK(openpty(&master, &slave, NULL, NULL, &ws) == 0);
    fcntl(master, F_SETFL, O_NONBLOCK);
    atomic_store(&ngot, 0);
    atomic_store(&stop_reader, 0);
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    FILE *in = fdopen(dup(slave), "r"), *out = fdopen(dup(slave), "w");

    tm_err err = {0};
    tui_screen *s = tui_screen_open(in, out, "xterm-256color", mono, &err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "screen: %s\n", err.msg);
        return;
    }
    CHECK(tui_screen_colour(s) == !mono);
    int rows, cols;
    tui_screen_size(s, &rows, &cols);
    CHECK_I64(rows, 24);
    CHECK_I64(cols, 80);

    tui_grid g = {0, 0, NULL};
    tui_grid_init(&g, rows, cols);
    tui_grid_put(&g, 0, 0, " tmtop title", TUI_ROLE_TITLE, -1);
    tui_grid_put(&g, 5, 10, "hello grid", TUI_ROLE_NORMAL, -1);
    tui_grid_put(&g, 6, 10, "a diff +5", TUI_ROLE_GROW, -1);
    size_t before = quiet();
    tui_screen_draw(s, &g);
    size_t first = quiet() - before;
    CHECK(seen_since(before, "hello grid"));
    CHECK(seen_since(before, "tmtop title"));
    /* colour: an SGR colour sequence; mono: none, attributes only */
    if (mono)
        CHECK(!seen_since(before, "\033[3"));
    else
        CHECK(seen_since(before, "\033[3") || seen_since(before, "\033[9"));

    /* one changed word: far fewer bytes than the first draw */
    tui_grid_put(&g, 5, 16, "world", TUI_ROLE_NORMAL, -1);
    before = quiet();
    tui_screen_draw(s, &g);
    size_t second = quiet() - before;
    CHECK(seen_since(before, "world"));
    CHECK(!seen_since(before, "tmtop title"));
    CHECK(second * 4 < first);
    /* nothing changed: nothing sent */
    before = quiet();
    tui_screen_draw(s, &g);
    CHECK_U64(quiet() - before, 0);

    /* keys */
    CHECK_I64(tui_screen_key(s), -1);
    CHECK(write(master, "q\033OA\033[6~\r\177", 10) == 10);
    usleep(100000);
    CHECK_I64(tui_screen_key(s), 'q');
    CHECK_I64(tui_screen_key(s), TUI_KEY_UP);
    CHECK_I64(tui_screen_key(s), TUI_KEY_PGDN);
    CHECK_I64(tui_screen_key(s), TUI_KEY_ENTER);
    CHECK_I64(tui_screen_key(s), TUI_KEY_BACKSPACE);
    CHECK_I64(tui_screen_key(s), -1);
    CHECK(write(master, "\033", 1) == 1); /* a lone Esc, after the escape delay */
    usleep(100000);
    int k = tui_screen_key(s);
    if (k == -1) {
        usleep(100000);
        k = tui_screen_key(s);
    }
    CHECK_I64(k, TUI_KEY_ESC);

    /* the terminal changes size: a resize key, then the new size */
    ws.ws_row = 30;
    ws.ws_col = 100;
    ioctl(master, TIOCSWINSZ, &ws);
    raise(SIGWINCH);
    usleep(50000);
    CHECK_I64(tui_screen_key(s), TUI_KEY_RESIZE);
    tui_screen_size(s, &rows, &cols);
    CHECK_I64(rows, 30);
    CHECK_I64(cols, 100);

    /* closing: the normal screen back (rmcup) and the cursor visible */
    before = quiet();
    tui_screen_close(s);
    quiet();
    CHECK(seen_since(before, "\033[?1049l"));
    CHECK(seen_since(before, "\033[?25h"));

    atomic_store(&stop_reader, 1);
    pthread_join(t, NULL);
    tui_grid_fini(&g);
    fclose(in);
    fclose(out);
    close(slave);
    close(master);
}

static void test_no_terminal(void)
{
    tm_err err = {0};
    FILE *in = fopen("/dev/null", "r"), *out = fopen("/dev/null", "w");
    /* an unknown terminal type is an error, never an exit */
    tui_screen *s = tui_screen_open(in, out, "no-such-terminal-type", 0, &err);
    CHECK(s == NULL);
    CHECK(strstr(err.msg, "no-such-terminal-type") != NULL);
    fclose(in);
    fclose(out);
}

int main(void)
{
    setenv("TERM", "xterm-256color", 1);
    unsetenv("NO_COLOR");
    test_screen(0);
    setenv("NO_COLOR", "1", 1);
    test_screen(1);
    test_no_terminal();
    return check_done("tui_screen");
}
