/* screen.h - the terminal, as far as the rest of the explorer sees it:
 * open, size, keys, and drawing a grid.  curses.c implements it and is the
 * only file that includes <curses.h>.  Private to src/tui. */
#ifndef TMTOP_TUI_SCREEN_H
#define TMTOP_TUI_SCREEN_H

#include <stdio.h>

#include "common.h"
#include "render.h"

typedef struct tui_screen tui_screen;

/* Takes over the terminal on in/out (full screen, raw keys, no echo, hidden
 * cursor).  term NULL: $TERM.  Colours by role unless the terminal has none,
 * NO_COLOR is set, or mono is non-zero.  Returns NULL with err set when the
 * terminal cannot be used.  Owned: tui_screen_close. */
tui_screen *tui_screen_open(FILE *in, FILE *out, const char *term, int mono, tm_err *err);

/* Gives the terminal back as it was (leaves the alternate screen, shows the
 * cursor) and frees s. */
void tui_screen_close(tui_screen *s);

/* For a fatal signal handler: restores the terminal, nothing else. */
void tui_screen_emergency(void);

void tui_screen_size(tui_screen *s, int *rows, int *cols);

/* Whether the grid may hold block and box characters (a UTF-8 locale and a
 * wide-character curses). */
int tui_screen_unicode(const tui_screen *s);

/* Whether colours are in use. */
int tui_screen_colour(const tui_screen *s);

/* The next key without waiting: a TUI_KEY_* or character, TUI_KEY_RESIZE
 * after the terminal changed size, or -1 when none is waiting. */
int tui_screen_key(tui_screen *s);

/* Shows g, writing only the cells that differ from the last grid shown
 * (everything after a resize or tui_screen_invalidate). */
void tui_screen_draw(tui_screen *s, const tui_grid *g);
void tui_screen_invalidate(tui_screen *s);

#endif
