/* hook_exec.c - a failed exec (execvp) keeps tracing in the same stream; a
 * successful one (execle) runs the new image untraced. */
#define _GNU_SOURCE /* environ */
#include <string.h>
#include <unistd.h>

#include "hook_common.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        free(malloc(3003)); /* untraced: the hook left the environment */
        printf("child\n");
        hook_print_env();
        return 0;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = 0;
    hook_mark(HOOK_MARK_BEGIN);
    free(malloc(3001));
    char *const args[] = {"hook-exec", NULL};
    execvp("/nonexistent/hook-exec", args);
    free(malloc(3002));
    printf("parent\n");
    fflush(stdout);
    execle(self, self, "child", (char *)NULL, environ);
    return 3;
}
