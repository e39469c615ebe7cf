/* output.h - the traced program's output: a bounded scrollback of plain text
 * lines for the output pane, and the raw bytes in a log file.
 *
 * The program runs on its own pseudo-terminal; tmtop's I/O thread reads the
 * master side and feeds every byte here, so the program never blocks on a
 * full terminal and never draws over the explorer.  Terminal control
 * sequences (CSI, OSC, other escapes) are dropped from the scrollback, a lone
 * carriage return starts its line over, tabs become spaces; the log keeps the
 * bytes as they came.  Thread-safe: one thread feeds while another copies. */
#ifndef TMTOP_TUI_OUTPUT_H
#define TMTOP_TUI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct tui_output tui_output;

/* Longest scrollback line in bytes; longer lines continue on the next one. */
#define TUI_OUTPUT_LINE 512

/* New scrollback keeping the last max_lines lines (owned: tui_output_free).
 * log_fd >= 0 receives every byte and is closed by tui_output_free; -1: no log.
 * Returns NULL when out of memory. */
tui_output *tui_output_new(size_t max_lines, int log_fd);
void tui_output_free(tui_output *o);

/* Appends n bytes of program output. */
void tui_output_feed(tui_output *o, const char *buf, size_t n);

/* Lines held now, the unfinished last line included. */
size_t tui_output_lines(tui_output *o);

/* Bytes fed since the start, and whether writing the log failed. */
uint64_t tui_output_bytes(tui_output *o, int *log_failed);

/* Copies lines first .. first+n-1 (0 = the oldest held) into out, one
 * NUL-terminated line per TUI_OUTPUT_LINE + 1 bytes.  Returns how many were
 * copied (fewer past the end). */
size_t tui_output_copy(tui_output *o, size_t first, size_t n, char (*out)[TUI_OUTPUT_LINE + 1]);

#endif
