/* e2e_signal.c - allocates, then dies from a signal: a real SIGSEGV (write
 * through a null pointer) or abort().  tmtop must exit with 128+N and still
 * write its report.  A dying process runs no exit handler, so the program
 * pauses first: the hook's timer flush (every 10 ms by default) has sent
 * every event by then.
 * Usage: e2e_signal segv|abort */
#include <time.h>

#include "e2e_common.h"

static void *keep[64];

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "segv";
    for (int i = 0; i < 20; i++)
        keep[i] = malloc(250); /* @site:before_crash */
    for (int i = 0; i < 30; i++)
        free(malloc(99)); /* @site:freed_before_crash */
    e2e_say(1, "signal: dying by %s\n", how);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (!strcmp(how, "abort"))
        abort();
    *(volatile int *)keep[63] = 1; /* keep[63] is NULL: SIGSEGV */
    return 0;
}
