/* tui_phases.c - a target whose allocations the live-view tests control.
 *
 *   tui_phases CONTROL_FIFO
 *
 * reads commands, one per line, from CONTROL_FIFO (its standard input is
 * the pseudo-terminal tmtop gives it, which nobody types into):
 *   alloc SITE N SIZE   N blocks of SIZE bytes at site a, b or c
 *   free SITE N         frees the N oldest live blocks of the site
 *   say TEXT            writes TEXT and a newline to standard output
 *   ignore-term         ignores SIGTERM from now on
 *   crash               dies of SIGSEGV
 *   exit CODE           exits with CODE (live blocks stay: leaks)
 * and exits with status 0 at the end of the commands.  Each site's malloc is
 * on a line of its own with a marker comment; tests/tui/tui_e2e.py finds the
 * lines from the markers.  No stdio: its buffers would be allocations too. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>

#include "e2e_common.h"

#define MAX_BLOCKS 100000

static void *blocks[3][MAX_BLOCKS];
static size_t first[3], count[3];

__attribute__((noinline)) static void *alloc_a(size_t size)
{
    return malloc(size); /* @site:a */
}

__attribute__((noinline)) static void *alloc_b(size_t size)
{
    return malloc(size); /* @site:b */
}

__attribute__((noinline)) static void *alloc_c(size_t size)
{
    return calloc(1, size); /* @site:c */
}

static void do_alloc(int site, long n, long size)
{
    for (long i = 0; i < n && first[site] + count[site] < MAX_BLOCKS; i++) {
        void *p = site == 0   ? alloc_a((size_t)size)
                  : site == 1 ? alloc_b((size_t)size)
                              : alloc_c((size_t)size);
        blocks[site][first[site] + count[site]++] = p;
    }
}

static void do_free(int site, long n)
{
    for (long i = 0; i < n && count[site] > 0; i++) {
        free(blocks[site][first[site]]);
        first[site]++;
        count[site]--;
    }
}

static void run(char *line)
{
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    else
        arg = line + strlen(line);
    char *end;
    if (!strcmp(line, "alloc") || !strcmp(line, "free")) {
        int site = arg[0] - 'a';
        if (site < 0 || site > 2)
            return;
        long n = strtol(arg + 1, &end, 10);
        if (!strcmp(line, "alloc"))
            do_alloc(site, n, strtol(end, NULL, 10));
        else
            do_free(site, n);
    } else if (!strcmp(line, "say")) {
        e2e_say(1, "%s\n", arg);
    } else if (!strcmp(line, "ignore-term")) {
        signal(SIGTERM, SIG_IGN);
    } else if (!strcmp(line, "crash")) {
        raise(SIGSEGV);
    } else if (!strcmp(line, "exit")) {
        exit((int)strtol(arg, NULL, 10)); /* exit, not _exit: the hook flushes at exit */
    }
}

int main(int argc, char **argv)
{
    static char buf[4096];
    size_t len = 0;
    if (argc < 2) {
        e2e_say(2, "usage: tui_phases CONTROL_FIFO\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        e2e_say(2, "tui_phases: cannot open %s\n", argv[1]);
        return 2;
    }
    e2e_say(1, "tui_phases: ready\n");
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = '\0';
            run(buf);
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, len - used);
            len -= used;
        }
        if (len == sizeof buf - 1)
            len = 0; /* an overlong line: dropped */
    }
    return 0;
}
