/* launch_fake.c - a target for the launcher's test that plays the hook's part
 * itself: it reads TMTOP_SOCK and TMTOP_TOKEN, connects and writes a hand-made
 * stream with the wire.h encoders.  The first argument picks a scenario:
 *
 *   stream N CODE   preamble, HELLO, STACK 7, N ALLOCs, END; exit(CODE)
 *   badtoken        as "stream 10 0" with a wrong token in HELLO
 *   otheruid        (as root) become uid 65534, then "stream 10 0"
 *   nohello         preamble then ALLOC: no HELLO first
 *   garbage         a valid start, then a malformed record and junk
 *   truncated       a valid start, then half a record, then exit
 *   daemon END      HELLO, fork a child that sleeps holding the socket (its pid
 *                   in a FORK record), END if END is 1, exit(0)
 *   sleep           HELLO, then wait to be killed
 *   twoproc N       fork; parent and child each send their own stream
 *   print           no socket: print to stdout (for the pty test)
 *
 * With LAUNCH_FAKE_OUT set, it first writes what it inherited (environment,
 * signal dispositions, mask, whether the preloaded library is in) there. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

static uint8_t out[64 * 1024 + TM_WIRE_MAX_RECORD];
static size_t used;
static int sock = -1;

static void flush(void)
{
    size_t off = 0;
    while (off < used) {
        ssize_t n = send(sock, out + off, used - off, MSG_NOSIGNAL);
        if (n <= 0) {
            perror("launch_fake: send");
            exit(90);
        }
        off += (size_t)n;
    }
    used = 0;
}

static void room(void)
{
    if (used >= 64 * 1024)
        flush();
}

static void connect_tmtop(void)
{
    const char *name = getenv("TMTOP_SOCK");
    if (!name) {
        fprintf(stderr, "launch_fake: TMTOP_SOCK not set\n");
        exit(91);
    }
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(a.sun_path + 1, name, len);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&a,
                            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0) {
        perror("launch_fake: connect");
        exit(92);
    }
}

static uint64_t token(void)
{
    const char *t = getenv("TMTOP_TOKEN");
    return t ? strtoull(t, NULL, 16) : 0;
}

static void put_start(uint64_t tok)
{
    used += tm_wire_put_preamble(out + used);
    used += tm_wire_put_hello(out + used, (uint32_t)getpid(), (uint32_t)getppid(), tok, 0, 0, 64,
                              "/launch_fake");
}

static void put_stack(void)
{
    uint64_t ips[3] = {1, 2, 3};
    used += tm_wire_put_stack(out + used, 7, 0, ips, 3);
}

static void put_allocs(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        used += tm_wire_put_alloc(out + used, 7, TM_ALLOC_MALLOC, 0x1000 + 16 * (uint64_t)i, i + 1);
        room();
    }
}

static void put_end(void)
{
    used += tm_wire_put_end(out + used, TM_END_EXIT, 1, 2, 3);
}

static const char *disposition(int sig)
{
    struct sigaction sa;
    sigaction(sig, NULL, &sa);
    return sa.sa_handler == SIG_IGN ? "ign" : sa.sa_handler == SIG_DFL ? "dfl" : "handler";
}

static void report_inherited(void)
{
    const char *path = getenv("LAUNCH_FAKE_OUT");
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    const char *pre = getenv("LD_PRELOAD");
    const char *frames = getenv("TMTOP_FRAMES");
    const char *tok = getenv("TMTOP_TOKEN");
    sigset_t mask;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    fprintf(f, "LD_PRELOAD=%s\n", pre ? pre : "(unset)");
    fprintf(f, "TMTOP_FRAMES=%s\n", frames ? frames : "(unset)");
    fprintf(f, "TMTOP_TOKEN_LEN=%zu\n", tok ? strlen(tok) : 0);
    fprintf(f, "nop=%d\n", dlsym(RTLD_DEFAULT, "launch_nop_loaded") != NULL);
    fprintf(f, "SIGINT=%s\n", disposition(SIGINT));
    fprintf(f, "SIGQUIT=%s\n", disposition(SIGQUIT));
    fprintf(f, "SIGPIPE=%s\n", disposition(SIGPIPE));
    fprintf(f, "USR1blocked=%d\n", sigismember(&mask, SIGUSR1));
    fclose(f);
}

static void one_stream(unsigned long n, uint64_t tok)
{
    connect_tmtop();
    put_start(tok);
    put_stack();
    put_allocs(n);
    put_end();
    flush();
}

int main(int argc, char **argv)
{
    report_inherited();
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "stream") && argc > 3) {
        one_stream(strtoul(argv[2], NULL, 10), token());
        return atoi(argv[3]);
    }
    if (!strcmp(mode, "badtoken")) {
        one_stream(10, token() + 1);
        return 0;
    }
    if (!strcmp(mode, "otheruid")) {
        /* Run as root by the test: become nobody, then connect. */
        if (setgid(65534) != 0 || setuid(65534) != 0)
            return 93;
        one_stream(10, token());
        return 0;
    }
    if (!strcmp(mode, "nohello")) {
        connect_tmtop();
        used += tm_wire_put_preamble(out + used);
        put_allocs(3);
        put_end();
        flush();
        return 0;
    }
    if (!strcmp(mode, "garbage")) {
        connect_tmtop();
        put_start(token());
        put_stack();
        put_allocs(2);
        /* An ALLOC whose payload is 3 bytes: the decoder must refuse it. */
        static const uint8_t bad[] = {TM_REC_ALLOC, 3, 0, 0, 0};
        memcpy(out + used, bad, sizeof bad);
        used += sizeof bad;
        memset(out + used, 0xff, 100);
        used += 100;
        put_end();
        flush();
        return 0;
    }
    if (!strcmp(mode, "truncated")) {
        connect_tmtop();
        put_start(token());
        put_allocs(1);
        used -= 10; /* cut the ALLOC */
        flush();
        return 0;
    }
    if (!strcmp(mode, "daemon") && argc > 2) {
        connect_tmtop();
        put_start(token());
        put_allocs(5);
        flush();
        pid_t child = fork();
        if (child == 0) {
            /* The grandchild keeps the socket but not the test's output. */
            int null = open("/dev/null", O_RDWR);
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            sleep(20);
            _exit(0);
        }
        used += tm_wire_put_fork(out + used, (uint32_t)child);
        if (atoi(argv[2]))
            put_end();
        flush();
        return 0;
    }
    if (!strcmp(mode, "sleep")) {
        connect_tmtop();
        put_start(token());
        flush();
        for (;;)
            pause();
    }
    if (!strcmp(mode, "twoproc") && argc > 2) {
        unsigned long n = strtoul(argv[2], NULL, 10);
        pid_t child = fork();
        one_stream(n, token()); /* each process connects on its own */
        if (child > 0) {
            int st;
            waitpid(child, &st, 0);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
        }
        return 0;
    }
    if (!strcmp(mode, "print")) {
        struct winsize ws = {0};
        ioctl(1, TIOCGWINSZ, &ws);
        printf("hello from the target: tty=%d size=%ux%u\n", isatty(1), ws.ws_row, ws.ws_col);
        fflush(stdout);
        return 0;
    }
    fprintf(stderr, "launch_fake: unknown mode '%s'\n", mode);
    return 2;
}
