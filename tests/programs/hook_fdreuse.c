/* hook_fdreuse.c - the program closes every descriptor from 3 up (as
 * daemons do), opens two files of its own, which land on 3 and 4, writes
 * into them, then allocates a lot from functions without unwind tables
 * (built with -fno-asynchronous-unwind-tables): libunwind falls back to the
 * frame chain there and validates every address through its pipe.  Its
 * files must still be open, hold exactly what it wrote, with the offsets
 * where it left them.  argv[1] is a directory for the two files. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hook_common.h"

static const char text_a[] = "the program's own file A\n";
static const char text_b[] = "the program's own file B, longer\n";

static void *keep[64];

/* Frame pointers and no CFI: each level is a frame libunwind has to guess. */
__attribute__((noinline)) static void churn(int depth, int i)
{
    if (depth > 0) {
        churn(depth - 1, i);
        return;
    }
    void *p = malloc((size_t)(16 + i % 200));
    free(keep[i % 64]);
    keep[i % 64] = p;
}

/* 1 if fd is open and holds exactly text, its offset at the end. */
static int intact(int fd, const char *text)
{
    size_t len = strlen(text);
    struct stat st;
    char got[128];
    if (fcntl(fd, F_GETFD) < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size != len || lseek(fd, 0, SEEK_CUR) != (off_t)len)
        return 0;
    ssize_t n = pread(fd, got, sizeof got, 0);
    return n == (ssize_t)len && memcmp(got, text, len) == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/a", argv[1]);
    snprintf(pb, sizeof pb, "%s/b", argv[1]);
    fflush(stdout);
    closefrom(3);
    int a = open(pa, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int b = open(pb, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (a < 0 || b < 0 || write(a, text_a, strlen(text_a)) != (ssize_t)strlen(text_a) ||
        write(b, text_b, strlen(text_b)) != (ssize_t)strlen(text_b))
        return 3;
    hook_mark(HOOK_MARK_BEGIN);
    for (int i = 0; i < 20000; i++)
        churn(i % 12, i);
    hook_mark(HOOK_MARK_END);
    int ok = intact(a, text_a) && intact(b, text_b);
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    printf("a=%d\nb=%d\nintact=%d\n", a, b, ok);
    return 0;
}
