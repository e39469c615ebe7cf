/* hard_probe.c - prints what a process can observe about how it was started,
 * so that a run under tmtop can be compared with a direct run: signal
 * dispositions and mask, environment, the standard streams, fds, limits,
 * umask, process group.  Allocates and frees a little so the hook has work.
 *
 * usage: hard_probe [exit N | sigpipe | kill N]
 *   exit N    exits with status N after printing
 *   sigpipe   writes into a pipe with no reader (dies of SIGPIPE unless ignored)
 *   kill N    raises signal N */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e_common.h"

extern char **environ;

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *fd_kind(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return "closed";
    if (S_ISFIFO(st.st_mode))
        return "fifo";
    if (S_ISREG(st.st_mode))
        return "file";
    if (S_ISCHR(st.st_mode))
        return "chr";
    if (S_ISSOCK(st.st_mode))
        return "sock";
    return "other";
}

int main(int argc, char **argv)
{
    free(malloc(64));
    for (int s = 1; s < NSIG; s++) {
        struct sigaction sa;
        if (sigaction(s, NULL, &sa) != 0)
            continue;
        const char *d = sa.sa_handler == SIG_DFL   ? "dfl"
                        : sa.sa_handler == SIG_IGN ? "ign"
                                                   : "handler";
        e2e_say(1, "sig %d %s flags=%#x\n", s, d, (unsigned)sa.sa_flags);
    }
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    e2e_say(1, "mask");
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&mask, s))
            e2e_say(1, " %d", s);
    e2e_say(1, "\n");
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 1) * sizeof *env);
    memcpy(env, environ, (n + 1) * sizeof *env);
    qsort(env, n, sizeof *env, cmp);
    for (size_t i = 0; i < n; i++)
        e2e_say(1, "env %s\n", env[i]);
    free(env);
    for (int fd = 0; fd < 3; fd++)
        e2e_say(1, "fd %d %s flags=%#x\n", fd, fd_kind(fd), (unsigned)fcntl(fd, F_GETFL));
    /* Descriptors above 2 the program did not open: the hook's channel is
     * expected to be invisible or at least not on a low number. */
    int low = 0;
    for (int fd = 3; fd < 64; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            low++;
    e2e_say(1, "fds 3..63 open: %d\n", low);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    e2e_say(1, "nofile %llu %llu\n", (unsigned long long)rl.rlim_cur,
            (unsigned long long)rl.rlim_max);
    getrlimit(RLIMIT_CORE, &rl);
    e2e_say(1, "core %llu\n", (unsigned long long)rl.rlim_cur);
    mode_t um = umask(022);
    umask(um);
    e2e_say(1, "umask %03o\n", (unsigned)um);
    e2e_say(1, "pgrp same as parent: %d\n", getpgrp() == getpgid(getppid()));
    e2e_say(1, "argv");
    for (int i = 0; i < argc; i++)
        e2e_say(1, " [%s]", i ? argv[i] : "argv0");
    e2e_say(1, "\n");
    if (argc > 2 && !strcmp(argv[1], "exit"))
        return atoi(argv[2]);
    if (argc > 2 && !strcmp(argv[1], "kill")) {
        signal(atoi(argv[2]), SIG_DFL);
        raise(atoi(argv[2]));
    }
    if (argc > 1 && !strcmp(argv[1], "sigpipe")) {
        int p[2];
        if (pipe(p) != 0)
            return 5;
        close(p[0]);
        ssize_t w = write(p[1], "x", 1);
        e2e_say(1, "sigpipe: write returned %zd errno %d\n", w, w < 0 ? errno : 0);
        return 6;
    }
    return 0;
}
