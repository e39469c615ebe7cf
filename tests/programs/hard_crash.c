/* hard_crash.c - leaks a known set of blocks, waits long enough for the hook's
 * timer to flush them, then dies.
 *
 * usage: hard_crash segv|abort|wait
 *   segv   writes through a null pointer (SIGSEGV)
 *   abort  calls abort() (SIGABRT)
 *   wait   prints "ready PID" and sleeps until killed from outside
 * The leak: 10 blocks of 100 bytes at the @site line. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_common.h"

static void *leak[10];

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "segv";
    for (int i = 0; i < 10; i++)
        leak[i] = malloc(100); /* @site:leak */
    usleep(200 * 1000);        /* many flush intervals */
    if (!strcmp(mode, "segv")) {
        volatile int *volatile p = NULL;
        *p = 1;
    } else if (!strcmp(mode, "abort")) {
        abort();
    } else {
        e2e_say(1, "ready %ld\n", (long)getpid());
        for (;;)
            pause();
    }
    return 0;
}
