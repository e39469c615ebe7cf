/* keymap.h - the live explorer's actions and the one table of key bindings.
 *
 * Every key the explorer understands is a row of tui_bindings[]: the key
 * handler, the help screen (?) and the footer hints are all generated from
 * it, so they cannot drift apart.  Private to src/tui; no curses here: keys
 * are plain ints (printable ASCII as itself, TUI_KEY_* for the others), and
 * curses.c translates ncurses' codes. */
#ifndef TMTOP_TUI_KEYMAP_H
#define TMTOP_TUI_KEYMAP_H

#include <stddef.h>

/* Special keys, outside the byte range. */
enum {
    TUI_KEY_ESC = 27,
    TUI_KEY_ENTER = '\n',
    TUI_KEY_CTRL_C = 3,
    TUI_KEY_CTRL_U = 21,
    TUI_KEY_UP = 0x1000,
    TUI_KEY_DOWN,
    TUI_KEY_LEFT,
    TUI_KEY_RIGHT,
    TUI_KEY_PGUP,
    TUI_KEY_PGDN,
    TUI_KEY_HOME,
    TUI_KEY_END,
    TUI_KEY_BACKSPACE,
    TUI_KEY_RESIZE,
};

/* X(name, help text): the actions, in the order the help screen lists them. */
#define TUI_ACTIONS(X)                                                                             \
    X(UP, "move the selection up (scroll in other views)")                                         \
    X(DOWN, "move the selection down")                                                             \
    X(PGUP, "one page up")                                                                         \
    X(PGDN, "one page down")                                                                       \
    X(HOME, "first row")                                                                           \
    X(END, "last row")                                                                             \
    X(ENTER, "show the traceback of the selected row; choose, in a list")                          \
    X(PREV, "detail: the previous traceback of this site")                                         \
    X(NEXT, "detail: the next traceback of this site")                                             \
    X(BACK, "close the help, the detail, the output or the prompt")                                \
    X(KEY, "group by lineno -> filename -> traceback")                                             \
    X(CUMULATIVE, "toggle cumulative statistics (every frame counts)")                             \
    X(SNAPSHOT, "take a snapshot (numbered)")                                                      \
    X(DIFF, "diff now against the last snapshot; again: the live view")                            \
    X(DIFF_PICK, "choose the two snapshots (or a snapshot and now) to compare")                    \
    X(INCLUDE, "include filter: keep sites whose file matches a glob")                             \
    X(EXCLUDE, "exclude filter: drop sites whose file matches a glob")                             \
    X(ALL_FRAMES, "filters match any frame of the stack, not only the site")                       \
    X(CLEAR, "clear the filters")                                                                  \
    X(RESET_PEAK, "reset the peak to the current traced memory")                                   \
    X(PAUSE, "pause or resume screen updates (tracing goes on)")                                   \
    X(OUTPUT, "show the program's output")                                                         \
    X(WRITE, "write the current view to a file as a report (text and JSON)")                       \
    X(PROC_NEXT, "--follow-fork: show the next traced process (its own snapshots)")                \
    X(PROC_PREV, "--follow-fork: show the previous traced process")                                \
    X(PROC_PICK, "--follow-fork: choose the process to show from a list")                          \
    X(HELP, "this help")                                                                           \
    X(QUIT, "quit: a running program gets SIGTERM, then SIGKILL after 2 s")

typedef enum tui_action {
    TUI_ACT_NONE = 0,
#define X(name, help) TUI_ACT_##name,
    TUI_ACTIONS(X)
#undef X
        TUI_ACT_COUNT
} tui_action;

typedef struct tui_binding {
    int key;
    tui_action action;
    const char *footer; /* short label for the footer hints, NULL: not shown there */
} tui_binding;

/* The table; tui_nbindings rows.  Static storage. */
extern const tui_binding tui_bindings[];
extern const size_t tui_nbindings;

/* The action bound to key, or TUI_ACT_NONE. */
tui_action tui_keymap_lookup(int key);

/* The help text of an action (static string). */
const char *tui_action_help(tui_action a);

/* A key's printable name ("q", "Up", "PgDn", "Esc", "Enter"); static or
 * written into buf (at least 16 bytes); returns the name. */
const char *tui_key_name(int key, char *buf, size_t len);

/* The help screen: line i (0 <= i < tui_help_lines()) of "keys   text",
 * written into buf; keys bound to one action are listed together. */
size_t tui_help_lines(void);
void tui_help_line(size_t i, char *buf, size_t len);

/* The footer: "?:help g:key ..." from the bindings with a footer label,
 * cut at a whole entry to fit width.  Returns buf. */
char *tui_footer(char *buf, size_t len, int width);

#endif
