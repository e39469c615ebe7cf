/* render.h - draws the model into a plain grid of cells, with no terminal.
 *
 * A cell is a character (a Unicode code point taking one column) and a role:
 * what the text is, not how it looks.  curses.c maps roles to colours or, on
 * a monochrome terminal or with NO_COLOR, to attributes, and writes only the
 * cells that changed.  Tests read the grid back as text, like tmux's
 * capture-pane.  Private to src/tui. */
#ifndef TMTOP_TUI_RENDER_H
#define TMTOP_TUI_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef enum tui_role {
    TUI_ROLE_NORMAL = 0,
    TUI_ROLE_TITLE,    /* the top bar */
    TUI_ROLE_BAD,      /* in the top bar: a program that failed or was killed */
    TUI_ROLE_LABEL,    /* "current", "peak", ... */
    TUI_ROLE_VALUE,    /* the numbers next to them */
    TUI_ROLE_CHART,    /* memory over time */
    TUI_ROLE_PEAK,     /* the peak in the chart */
    TUI_ROLE_AXIS,     /* the chart's scale */
    TUI_ROLE_MODE,     /* the table's title: live, diff, paused */
    TUI_ROLE_HEAD,     /* column headers */
    TUI_ROLE_SELECTED, /* the selected row */
    TUI_ROLE_GROW,     /* a positive difference */
    TUI_ROLE_SHRINK,   /* a negative difference */
    TUI_ROLE_PENDING,  /* waiting for symbols */
    TUI_ROLE_SYSTEM,   /* frames below the site (system code) */
    TUI_ROLE_SITE,     /* the site frame in a traceback */
    TUI_ROLE_SOURCE,   /* a source line */
    TUI_ROLE_STATUS,   /* the status bar */
    TUI_ROLE_MESSAGE,  /* a footer message */
    TUI_ROLE_ERROR,    /* a footer error */
    TUI_ROLE_KEY,      /* key names in help and hints */
    TUI_ROLE_PROMPT,   /* the prompt's question */
    TUI_ROLE_CURSOR,   /* the prompt's cursor */
    TUI_ROLE_COUNT
} tui_role;

typedef struct tui_cell {
    uint32_t ch; /* code point, one column wide */
    uint8_t role;
} tui_cell;

typedef struct tui_grid {
    int rows, cols;
    tui_cell *cells; /* rows * cols */
} tui_grid;

/* Sets g to rows x cols blank cells; returns 0 or -1 when out of memory. */
int tui_grid_init(tui_grid *g, int rows, int cols);
void tui_grid_fini(tui_grid *g);

/* Writes UTF-8 text at (row, col), at most maxcols columns (-1: to the edge).
 * Control characters and characters wider or narrower than one column show as
 * '?'.  Returns the columns written. */
int tui_grid_put(tui_grid *g, int row, int col, const char *text, tui_role role, int maxcols);

/* Row as UTF-8 text without trailing blanks; returns buf. */
char *tui_grid_row_text(const tui_grid *g, int row, char *buf, size_t len);

/* Draws the whole screen for m into g (which has m->rows x m->cols cells). */
void tui_render(const tui_model *m, tui_grid *g);

#endif
