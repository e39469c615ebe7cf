/* test_tui_output.c - the scrollback of the traced program's output: escape
 * sequences dropped, carriage returns, tabs, long lines, the bound, and the
 * log that keeps every byte. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "output.h"

static char lines[64][TUI_OUTPUT_LINE + 1];

static uint64_t fed;

static void feed(tui_output *o, const char *s)
{
    fed += strlen(s);
    tui_output_feed(o, s, strlen(s));
}

static void test_text(void)
{
    tui_output *o = tui_output_new(100, -1);
    CHECK(o != NULL);
    fed = 0;
    CHECK_U64(tui_output_lines(o), 0);
    feed(o, "hello\nwor");
    CHECK_U64(tui_output_lines(o), 2); /* the unfinished line shows */
    feed(o, "ld\r\n");                 /* CRLF ends a line */
    CHECK_U64(tui_output_lines(o), 2);
    /* colours, a title (OSC), cursor moves: dropped */
    feed(o, "\033[1;31mred\033[0m plain \033]0;title\007end\n");
    feed(o, "\033]2;other title\033\\x\033(By\n");
    /* a progress bar redrawn with CR: only its last state remains */
    feed(o, "10%\r50%\r100%\n");
    /* a CR split from its LF by the read boundary */
    feed(o, "split\r");
    feed(o, "\nafter\n");
    feed(o, "a\tb\bc\x07\x01!\n");
    size_t n = tui_output_copy(o, 0, 64, lines);
    CHECK_U64(n, 8);
    CHECK_STR(lines[0], "hello");
    CHECK_STR(lines[1], "world");
    CHECK_STR(lines[2], "red plain end");
    CHECK_STR(lines[3], "xy");
    CHECK_STR(lines[4], "100%");
    CHECK_STR(lines[5], "split");
    CHECK_STR(lines[6], "after");
    CHECK_STR(lines[7], "a       c!"); /* tab to column 8, backspace over the b */
    /* a window in the middle, and past the end */
    CHECK_U64(tui_output_copy(o, 6, 64, lines), 2);
    CHECK_STR(lines[0], "after");
    CHECK_U64(tui_output_copy(o, 20, 64, lines), 0);
    /* UTF-8 passes through; a backspace removes a whole character */
    feed(o, "caf\xc3\xa9\n\xc3\xa9\xc3\xa9\b\n");
    n = tui_output_copy(o, 8, 64, lines);
    CHECK_U64(n, 2);
    CHECK_STR(lines[0], "caf\xc3\xa9");
    CHECK_STR(lines[1], "\xc3\xa9");
    CHECK_U64(tui_output_bytes(o, NULL), fed);
    tui_output_free(o);
}

static void test_bounds(void)
{
    tui_output *o = tui_output_new(10, -1);
    char buf[64];
    for (int i = 0; i < 25; i++) {
        snprintf(buf, sizeof buf, "line %d\n", i);
        feed(o, buf);
    }
    /* only the last 10 lines are kept */
    CHECK_U64(tui_output_lines(o), 10);
    CHECK_U64(tui_output_copy(o, 0, 64, lines), 10);
    CHECK_STR(lines[0], "line 15");
    CHECK_STR(lines[9], "line 24");
    tui_output_free(o);

    /* a line longer than TUI_OUTPUT_LINE continues on the next one */
    o = tui_output_new(10, -1);
    char *big = malloc(TUI_OUTPUT_LINE + 11);
    memset(big, 'x', TUI_OUTPUT_LINE + 10);
    big[TUI_OUTPUT_LINE + 10] = '\0';
    feed(o, big);
    feed(o, "\n");
    CHECK_U64(tui_output_lines(o), 2);
    tui_output_copy(o, 0, 64, lines);
    CHECK_U64(strlen(lines[0]), TUI_OUTPUT_LINE);
    CHECK_U64(strlen(lines[1]), 10);
    free(big);
    tui_output_free(o);
}

static void test_log(void)
{
    char path[] = "/tmp/tmtop-tui-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    tui_output *o = tui_output_new(4, fd);
    const char raw[] = "\033[32mgreen\033[0m\r\nprogress\r";
    tui_output_feed(o, raw, sizeof raw - 1);
    int failed = 1;
    CHECK_U64(tui_output_bytes(o, &failed), sizeof raw - 1);
    CHECK(!failed);
    tui_output_free(o); /* closes the log */
    char back[256] = "";
    int rfd = open(path, O_RDONLY);
    ssize_t n = read(rfd, back, sizeof back - 1);
    close(rfd);
    unlink(path);
    CHECK_I64(n, (long)(sizeof raw - 1));
    CHECK(memcmp(back, raw, sizeof raw - 1) == 0); /* the log keeps every byte */

    /* a log that cannot be written: the pane still works */
    o = tui_output_new(4, open("/dev/full", O_WRONLY));
    feed(o, "still here\n");
    CHECK_U64(tui_output_bytes(o, &failed), 11);
    CHECK(failed);
    CHECK_U64(tui_output_copy(o, 0, 4, lines), 1);
    CHECK_STR(lines[0], "still here");
    tui_output_free(o);
}

int main(void)
{
    test_text();
    test_bounds();
    test_log();
    return check_done("tui_output");
}
