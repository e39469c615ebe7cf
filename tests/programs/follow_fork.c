/* follow_fork.c - tmtop --follow-fork: the target, its child and its
 * grandchild each allocate known amounts on their own lines.  A thread of
 * the target churns malloc/free while it forks, so that the child is made
 * from a process busy in the hook.  The child frees one block it inherited
 * from the parent: an unknown free in its own report (its stream never saw
 * that block allocated), a live block still in the parent's.
 *
 *   parent      3 x 111 (before the fork) + 2 x 222 (after): 777 B in 5 blocks,
 *               5 + CHURN allocations (the churn's blocks are all freed),
 *               plus what glibc keeps of the thread (its TLS block)
 *   child       4 x 333 live, 1 unknown free, forks the grandchild
 *   grandchild  5 x 444 allocated, 1 freed: 1776 B in 4 blocks, peak 2220 */
#include <pthread.h>
#include <sys/wait.h>

#include "e2e_common.h"

#define CHURN 20000

static void *keep[16];

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < CHURN; i++) {
        void *p = malloc(64); /* @site:churn */
        free(p);
    }
    return NULL;
}

static void grandchild(void)
{
    void *g[5];
    for (int i = 0; i < 5; i++)
        g[i] = malloc(444); /* @site:grandchild */
    free(g[2]);
    e2e_say(1, "follow: grandchild done\n");
    exit(0);
}

static void child(void)
{
    free(keep[0]); /* the parent's: unknown to the child's stream */
    for (int i = 0; i < 4; i++)
        keep[i] = malloc(333); /* @site:child */
    pid_t pid = fork();
    if (pid == 0)
        grandchild();
    int status = 0;
    waitpid(pid, &status, 0);
    e2e_say(1, "follow: child done %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    exit(0);
}

int main(void)
{
    for (int i = 0; i < 3; i++)
        keep[i] = malloc(111); /* @site:parent_before */
    pthread_t t;
    if (pthread_create(&t, NULL, churn, NULL) != 0) /* @libc:thread_tls */
        return 3;
    pid_t pid = fork();
    if (pid == 0)
        child();
    int status = 0;
    waitpid(pid, &status, 0);
    pthread_join(t, NULL);
    for (int i = 3; i < 5; i++)
        keep[i] = malloc(222); /* @site:parent_after */
    e2e_say(1, "follow: parent done %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
