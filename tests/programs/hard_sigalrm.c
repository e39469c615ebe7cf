/* hard_sigalrm.c - a SIGALRM storm: an interval timer fires every 50 us while
 * the main thread (and a second thread) allocate in a loop, and the handler
 * itself calls malloc and free.  malloc is not async-signal-safe, but glibc
 * programs do this and the hook must not turn it into a deadlock: a handler
 * that interrupts the hook while it holds its lock must not wait on it.
 *
 * usage: hard_sigalrm SECONDS_OF_WORK_IN_ITERATIONS
 * Prints "sigalrm: handled=N" (N > 0) and exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "e2e_common.h"

static atomic_long handled;

static void on_alarm(int sig)
{
    (void)sig;
    void *p = malloc(24); /* @site:handler */
    free(p);
    atomic_fetch_add(&handled, 1);
}

static void *churn(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++)
        free(malloc(32 + (size_t)(i % 64)));
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, churn, (void *)n) != 0)
        return 3;
    churn((void *)n);
    pthread_join(t, NULL);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    e2e_say(1, "sigalrm: handled=%ld\n", atomic_load(&handled));
    return atomic_load(&handled) > 0 ? 0 : 1;
}
