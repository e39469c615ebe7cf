/* hook_fork.c - the child's allocations must never reach the parent's
 * stream; the parent's stream gets FORK(child pid). */
#include <sys/wait.h>
#include <unistd.h>

#include "hook_common.h"

int main(void)
{
    hook_mark(HOOK_MARK_BEGIN);
    void *a = malloc(2001);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        free(malloc(2002));
        void *leak = malloc(2002);
        (void)leak;
        exit(0); /* runs the atexit handlers: the hook's must stay silent */
    }
    int st = 0;
    waitpid(pid, &st, 0);
    void *b = malloc(2003);
    free(a);
    free(b);
    hook_mark(HOOK_MARK_END);
    printf("child=%d status=%d\n", (int)pid, st);
    return 0;
}
