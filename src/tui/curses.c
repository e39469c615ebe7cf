/* curses.c - the only file that talks to ncurses. */
#define _XOPEN_SOURCE_EXTENDED 1
#define _GNU_SOURCE
#include "screen.h"

#ifdef TUI_WIDE_CURSES
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>

#include <langinfo.h>
#include <stdlib.h>
#include <string.h>

#include "keymap.h"

struct tui_screen {
    SCREEN *scr;
    FILE *in, *out;
    int colour, unicode;
    int no_alt; /* no alternate screen: the view is wiped before leaving */
    attr_t attr[TUI_ROLE_COUNT];
    short pair[TUI_ROLE_COUNT];
    tui_cell *shown; /* what the terminal shows, shown_rows * shown_cols; NULL: unknown */
    int shown_rows, shown_cols;
};

#if defined(__SANITIZE_ADDRESS__)
/* ncurses keeps its terminfo "prescreen" for the life of the process (it
 * frees it only in its debug builds): not a leak of tmtop's. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libtinfo.so\n";
}
#endif

/* For tui_screen_emergency: a fatal signal has no other way to find it. */
static tui_screen *current;

/* Colours and attributes by role: {fg, bg, attributes with colour,
 * attributes without}.  -1 is the terminal's default colour. */
static const struct {
    short fg, bg;
    attr_t colour_attr, mono_attr;
} role_style[TUI_ROLE_COUNT] = {
    [TUI_ROLE_NORMAL] = {-1, -1, A_NORMAL, A_NORMAL},
    [TUI_ROLE_TITLE] = {COLOR_WHITE, COLOR_BLUE, A_BOLD, A_REVERSE},
    [TUI_ROLE_BAD] = {COLOR_WHITE, COLOR_RED, A_BOLD, A_REVERSE | A_BOLD},
    [TUI_ROLE_LABEL] = {COLOR_CYAN, -1, A_NORMAL, A_DIM},
    [TUI_ROLE_VALUE] = {-1, -1, A_BOLD, A_BOLD},
    [TUI_ROLE_CHART] = {COLOR_GREEN, -1, A_NORMAL, A_NORMAL},
    [TUI_ROLE_PEAK] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
    [TUI_ROLE_AXIS] = {COLOR_CYAN, -1, A_NORMAL, A_DIM},
    [TUI_ROLE_MODE] = {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_BOLD | A_UNDERLINE},
    [TUI_ROLE_HEAD] = {COLOR_BLACK, COLOR_GREEN, A_NORMAL, A_UNDERLINE},
    [TUI_ROLE_SELECTED] = {COLOR_BLACK, COLOR_YELLOW, A_NORMAL, A_REVERSE},
    [TUI_ROLE_GROW] = {COLOR_RED, -1, A_BOLD, A_BOLD},
    [TUI_ROLE_SHRINK] = {COLOR_GREEN, -1, A_NORMAL, A_NORMAL},
    [TUI_ROLE_PENDING] = {-1, -1, A_DIM, A_DIM},
    [TUI_ROLE_SYSTEM] = {-1, -1, A_DIM, A_DIM},
    [TUI_ROLE_SITE] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
    [TUI_ROLE_SOURCE] = {COLOR_CYAN, -1, A_NORMAL, A_NORMAL},
    [TUI_ROLE_STATUS] = {COLOR_BLACK, COLOR_WHITE, A_NORMAL, A_REVERSE},
    [TUI_ROLE_MESSAGE] = {COLOR_GREEN, -1, A_BOLD, A_BOLD},
    [TUI_ROLE_ERROR] = {COLOR_RED, -1, A_BOLD, A_BOLD | A_UNDERLINE},
    [TUI_ROLE_KEY] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
    [TUI_ROLE_PROMPT] = {COLOR_YELLOW, -1, A_BOLD, A_BOLD},
    [TUI_ROLE_CURSOR] = {-1, -1, A_REVERSE, A_REVERSE},
};

static void setup_roles(tui_screen *s)
{
    for (int r = 0; r < TUI_ROLE_COUNT; r++) {
        s->pair[r] = 0;
        s->attr[r] = s->colour ? role_style[r].colour_attr : role_style[r].mono_attr;
        if (s->colour && (role_style[r].fg != -1 || role_style[r].bg != -1)) {
            short pair = (short)(r + 1);
            if (pair < COLOR_PAIRS && init_pair(pair, role_style[r].fg, role_style[r].bg) == OK)
                s->pair[r] = pair;
        }
    }
}

tui_screen *tui_screen_open(FILE *in, FILE *out, const char *term, int mono, tm_err *err)
{
    tui_screen *s = calloc(1, sizeof *s);
    if (!s) {
        tm_err_set(err, TM_E_NOMEM, "out of memory");
        return NULL;
    }
    s->in = in;
    s->out = out;
    /* newterm, unlike initscr, returns an error instead of exiting */
    s->scr = newterm(term, out, in);
    if (!s->scr) {
        const char *t = term ? term : getenv("TERM");
        tm_err_set(err, TM_E_USAGE, "cannot use the terminal (TERM=%s)", t ? t : "unset");
        free(s);
        return NULL;
    }
    set_term(s->scr);
    /* a terminal that cannot move its cursor (TERM=dumb) cannot show the view */
    const char *cup = tigetstr("cup");
    if (!cup || cup == (const char *)-1) {
        const char *t = term ? term : getenv("TERM");
        endwin();
        delscreen(s->scr);
        free(s);
        tm_err_set(err, TM_E_USAGE, "the terminal (TERM=%s) cannot move its cursor",
                   t ? t : "unset");
        return NULL;
    }
    const char *smcup = tigetstr("smcup");
    s->no_alt = !smcup || smcup == (const char *)-1;
    current = s;
    raw(); /* Ctrl-C and Ctrl-Z are keys: q and ^C quit cleanly */
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    const char *nc = getenv("NO_COLOR");
    s->colour = !mono && !(nc && nc[0]) && has_colors();
    if (s->colour) {
        start_color();
        use_default_colors();
    }
    setup_roles(s);
#ifdef TUI_WIDE_CURSES
    const char *cs = nl_langinfo(CODESET);
    s->unicode = cs && strcmp(cs, "UTF-8") == 0;
#endif
    return s;
}

void tui_screen_close(tui_screen *s)
{
    if (!s)
        return;
    if (current == s)
        current = NULL;
    set_term(s->scr);
    if (s->no_alt) {
        /* nothing restores the screen as it was: at least leave it blank */
        erase();
        refresh();
    }
    curs_set(1);
    endwin();
    delscreen(s->scr);
    free(s->shown);
    free(s);
}

void tui_screen_emergency(void)
{
    if (current)
        endwin();
}

void tui_screen_size(tui_screen *s, int *rows, int *cols)
{
    set_term(s->scr);
    getmaxyx(stdscr, *rows, *cols);
}

int tui_screen_unicode(const tui_screen *s)
{
    return s->unicode;
}

int tui_screen_colour(const tui_screen *s)
{
    return s->colour;
}

int tui_screen_key(tui_screen *s)
{
    (void)s;
    int k = wgetch(stdscr);
    switch (k) {
    case ERR:
        return -1;
    case KEY_UP:
        return TUI_KEY_UP;
    case KEY_DOWN:
        return TUI_KEY_DOWN;
    case KEY_LEFT:
        return TUI_KEY_LEFT;
    case KEY_RIGHT:
        return TUI_KEY_RIGHT;
    case KEY_PPAGE:
        return TUI_KEY_PGUP;
    case KEY_NPAGE:
        return TUI_KEY_PGDN;
    case KEY_HOME:
    case KEY_FIND:
        return TUI_KEY_HOME;
    case KEY_END:
    case KEY_SELECT:
        return TUI_KEY_END;
    case KEY_BACKSPACE:
    case 127:
    case 8:
        return TUI_KEY_BACKSPACE;
    case KEY_ENTER:
    case '\r':
    case '\n':
        return TUI_KEY_ENTER;
    case KEY_RESIZE:
        return TUI_KEY_RESIZE;
    default:
        return k >= 0 && k < 256 ? k : -1; /* other function keys: ignored */
    }
}

void tui_screen_invalidate(tui_screen *s)
{
    free(s->shown);
    s->shown = NULL;
}

static void put_cell(tui_screen *s, int row, int col, const tui_cell *c)
{
    attr_t a = s->attr[c->role < TUI_ROLE_COUNT ? c->role : 0];
    short pair = s->pair[c->role < TUI_ROLE_COUNT ? c->role : 0];
#ifdef TUI_WIDE_CURSES
    if (s->unicode && c->ch >= 0x80) {
        wchar_t w[2] = {(wchar_t)c->ch, 0};
        cchar_t cc;
        setcchar(&cc, w, a, pair, NULL);
        mvadd_wch(row, col, &cc);
        return;
    }
#endif
    chtype ch = c->ch < 0x80 ? (chtype)c->ch : '?';
    if (c->ch == 0x2502)
        ch = ACS_VLINE;
    else if (c->ch == 0x2508)
        ch = ACS_HLINE;
    else if (c->ch >= 0x2581 && c->ch <= 0x2588)
        ch = ACS_BLOCK;
    mvaddch(row, col, ch | a | COLOR_PAIR(pair));
}

void tui_screen_draw(tui_screen *s, const tui_grid *g)
{
    set_term(s->scr);
    if (!s->shown || g->rows != s->shown_rows || g->cols != s->shown_cols) {
        free(s->shown);
        s->shown = NULL;
        s->shown_rows = g->rows;
        s->shown_cols = g->cols;
        clearok(curscr, TRUE);
    }
    for (int r = 0; r < g->rows; r++) {
        for (int c = 0; c < g->cols; c++) {
            const tui_cell *cell = &g->cells[r * g->cols + c];
            if (s->shown) {
                const tui_cell *old = &s->shown[r * g->cols + c];
                if (old->ch == cell->ch && old->role == cell->role)
                    continue;
            }
            /* the bottom-right cell would scroll some terminals: curses
             * handles it, but an error there is harmless */
            put_cell(s, r, c, cell);
        }
    }
    wnoutrefresh(stdscr);
    doupdate();
    size_t n = (size_t)g->rows * (size_t)g->cols;
    if (!s->shown)
        s->shown = malloc(n * sizeof *s->shown);
    if (s->shown)
        memcpy(s->shown, g->cells, n * sizeof *s->shown);
}
