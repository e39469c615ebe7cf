/* e2e_exit.c - exits with status 3 through exit(3), after an atexit handler
 * of its own has freed one block and allocated another: tmtop's numbers are
 * those after the program's atexit handlers ran.  With "_exit" it leaves
 * through _exit(4) instead (no atexit handler runs), after a pause long
 * enough for the hook's timer to flush what came before.
 * Usage: e2e_exit [_exit] */
#include <time.h>

#include "e2e_common.h"

static void *freed_at_exit;
static void *allocated_at_exit;
static void *keep[16];

static void at_exit(void)
{
    free(freed_at_exit);
    allocated_at_exit = malloc(77); /* @site:in_atexit */
    e2e_say(1, "exit: atexit handler ran\n");
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "_exit");
    atexit(at_exit);
    freed_at_exit = malloc(1000); /* @site:freed_by_atexit */
    for (int i = 0; i < 7; i++)
        keep[i] = malloc(300); /* @site:exit_kept */
    e2e_echo_stdin();
    e2e_say(1, "exit: leaving with %d\n", quick ? 4 : 3);
    if (quick) {
        /* _exit runs no atexit handler: only the hook's timer has flushed. */
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        _exit(4);
    }
    exit(3);
}
