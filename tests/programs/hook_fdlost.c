/* hook_fdlost.c - the program's fd 3 is a socket given by the test.
 * 1. Through libc, the program closes every descriptor from 4 up and dup2()s
 *    fd 3 over every number below 1024, the hook's included: the hook must
 *    step aside and keep every event.
 * 2. With a raw dup2 system call, which no hook sees, it puts fd 3 over the
 *    hook's socket: the hook must notice before its next flush, say so once
 *    on stderr, and never write into the program's socket. */
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hook_common.h"

/* The first socket at or above 4 that is not fd 3's socket. */
static int find_hook_socket(void)
{
    struct stat mine;
    if (fstat(3, &mine) != 0)
        return -1;
    for (int fd = 4; fd < 65536; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino != mine.st_ino)
            return fd;
    }
    return -1;
}

static void *keep[3];

int main(void)
{
    static const char mine[] = "app-bytes\n";
    if (write(3, mine, sizeof mine - 1) < 0)
        return 1;
    int before = find_hook_socket();
    hook_mark(HOOK_MARK_BEGIN);
    keep[0] = malloc(4001);
    closefrom(4);
    keep[1] = malloc(4002);
    for (int fd = 4; fd < 1024; fd++)
        dup2(3, fd);
    keep[2] = malloc(4003);
    hook_mark(HOOK_MARK_END);
    usleep(50 * 1000); /* timer ticks: RSS still read from our statm fd */
    int after = find_hook_socket();

    if (after < 0 || syscall(SYS_dup2, 3, after) < 0)
        return 2;
    for (int i = 0; i < 20000; i++)
        free(malloc(100));
    usleep(50 * 1000);
    printf("before=%d\nafter=%d\n", before, after);
    return 5;
}
