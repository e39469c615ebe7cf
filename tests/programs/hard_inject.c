/* hard_inject.c - a traced program that attacks its own trace channel: it
 * finds tmtop's abstract socket and token where another process could (the
 * name in /proc/net/unix, the token in /proc/PID/environ, which only the same
 * uid or root can read) and connects from outside the hook to inject a block
 * of INJECT_SIZE bytes:
 *   wrongtoken  same uid, HELLO with a wrong token
 *   nohello     same uid, records without a HELLO
 *   garbage     same uid, random bytes
 *   otheruid    a child that dropped to uid/gid 65534, with the right token
 *               (only when running as root; "skipped" otherwise)
 * For each it prints "inject MODE: closed" when tmtop hung up on it, or
 * "inject MODE: open".  Then it leaks one 777-byte block of its own at the
 * @site line and exits 0.  None of the injected blocks may reach the report. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_common.h"
#include "wire.h"

#define INJECT_SIZE 6209758u

static char sockname[108];
static uint64_t token;

static void find_channel(void)
{
    /* The hook clears its variables from environ, but the strings the kernel
     * placed on the stack remain visible in /proc/self/environ. */
    static char buf[1 << 16];
    int fd = open("/proc/self/environ", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(buf + i) + 1) {
        if (!strncmp(buf + i, "TMTOP_SOCK=", 11))
            snprintf(sockname, sizeof sockname, "%s", buf + i + 11);
        else if (!strncmp(buf + i, "TMTOP_TOKEN=", 12))
            token = strtoull(buf + i + 12, NULL, 16);
    }
}

static int dial(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t len = strlen(sockname);
    memcpy(a.sun_path + 1, sockname, len);
    if (connect(fd, (struct sockaddr *)&a,
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static size_t events(uint8_t *b, uint64_t tok, int hello)
{
    size_t n = tm_wire_put_preamble(b);
    if (hello)
        n += tm_wire_put_hello(b + n, (uint32_t)getpid(), (uint32_t)getppid(), tok, 1, 0, 64,
                               "/injected");
    uint64_t ip = 0x401000;
    n += tm_wire_put_stack(b + n, 1, 0, &ip, 1);
    for (int i = 0; i < 10; i++)
        n += tm_wire_put_alloc(b + n, 1, TM_ALLOC_MALLOC, 0x7000000 + 0x1000 * (uint64_t)i,
                               INJECT_SIZE);
    n += tm_wire_put_end(b + n, TM_END_EXIT, 0, 0, 0);
    return n;
}

/* Sends buf and waits up to 2 s for tmtop to close the connection. */
static const char *attempt(const uint8_t *buf, size_t len)
{
    int fd = dial();
    if (fd < 0)
        return "refused";
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    struct pollfd p = {fd, POLLIN, 0};
    const char *what = "open";
    char c;
    if (poll(&p, 1, 2000) > 0 && recv(fd, &c, 1, 0) <= 0)
        what = "closed";
    close(fd);
    return what;
}

int main(void)
{
    static uint8_t buf[8192];
    find_channel();
    if (!sockname[0]) {
        e2e_say(2, "inject: no TMTOP_SOCK in /proc/self/environ\n");
        return 3;
    }
    e2e_say(1, "inject wrongtoken: %s\n", attempt(buf, events(buf, token ^ 0x5a5a, 1)));
    e2e_say(1, "inject nohello: %s\n", attempt(buf, events(buf, token, 0)));
    uint32_t x = 12345;
    for (size_t i = 0; i < 4096; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    e2e_say(1, "inject garbage: %s\n", attempt(buf, 4096));
    if (geteuid() == 0) {
        int p[2];
        if (pipe(p) != 0)
            return 4;
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            const char *what = "setuid failed";
            if (setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
                setresuid(65534, 65534, 65534) == 0)
                what = attempt(buf, events(buf, token, 1));
            ssize_t w = write(p[1], what, strlen(what));
            (void)w;
            _exit(0);
        }
        close(p[1]);
        char r[64] = {0};
        ssize_t n = read(p[0], r, sizeof r - 1);
        (void)n;
        close(p[0]);
        waitpid(pid, NULL, 0);
        e2e_say(1, "inject otheruid: %s\n", r);
    } else {
        e2e_say(1, "inject otheruid: skipped\n");
    }
    static void *mine;
    mine = malloc(777); /* @site:own */
    return mine ? 0 : 1;
}
