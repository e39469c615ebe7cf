/* hook_output.c - output and exit status must be the same with and without
 * the hook. */
#include <string.h>
#include <unistd.h>

#include "hook_common.h"

int main(void)
{
    for (int i = 0; i < 3000; i++) {
        char *s = malloc(64);
        snprintf(s, 64, "line %d of stdout\n", i);
        fputs(s, stdout);
        if (i % 100 == 0)
            fprintf(stderr, "stderr %d\n", i);
        free(s);
    }
    fflush(stdout);
    static const char raw[] = "raw write\n";
    if (write(1, raw, sizeof raw - 1) < 0)
        return 1;
    usleep(20 * 1000);
    printf("last line\n");
    return 3;
}
