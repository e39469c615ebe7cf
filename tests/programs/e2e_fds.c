/* e2e_fds.c - a target that closes every descriptor it did not open
 * (closefrom(3), as daemons do) and then puts its own file on every
 * descriptor number from 3 to 1023 with dup2, whatever tmtop's hook was
 * using.  Its allocations before and after must still be counted exactly,
 * and its file must hold only what it wrote itself.
 * Usage: e2e_fds FILE */
#include <fcntl.h>

#include "e2e_common.h"

static void *keep[64];

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int k = 0;
    for (int i = 0; i < 10; i++)
        keep[k++] = malloc(10); /* @site:fds_before */
    closefrom(3);
    for (int i = 0; i < 10; i++)
        keep[k++] = malloc(30); /* @site:fds_closed */
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 2;
    for (int i = 3; i < 1024; i++)
        if (i != fd)
            dup2(fd, i); /* fails past the descriptor limit: fine */
    for (int i = 0; i < 20; i++)
        keep[k++] = malloc(20); /* @site:fds_after */
    for (int i = 0; i < 100; i++)
        free(malloc(1000)); /* @site:fds_churn */
    if (write(fd, "the target's own bytes\n", 23) != 23)
        return 2;
    e2e_say(1, "fds: done\n");
    return 0;
}
