/* e2e_fork.c - the target forks a child that allocates and exits, and runs
 * a shell command: neither the child's allocations nor the command's may
 * reach the target's report.  The parent's own blocks before and after the
 * fork are exact. */
#include <sys/wait.h>

#include "e2e_common.h"

static void *keep[64];

int main(void)
{
    int k = 0;
    for (int i = 0; i < 10; i++)
        keep[k++] = malloc(100); /* @site:before_fork */
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: its blocks are its own, never the parent's. */
        for (int i = 0; i < 50; i++)
            keep[i] = malloc(1000); /* @site:in_child */
        free(keep[0]);
        e2e_say(1, "fork: child done\n");
        exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int rc = system("exit 5");
    for (int i = 0; i < 5; i++)
        keep[k++] = malloc(200); /* @site:after_fork */
    e2e_say(1, "fork: parent done %d %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return 0;
}
