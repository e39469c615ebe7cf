/* e2e_multi_main.c - allocation sites spread over two source files, each
 * lib site reached from distinct call lines (for --key traceback,
 * --cumulative and --include/--exclude). */
#include "e2e_common.h"
#include "e2e_multi.h"

static void *keep[64];

int main(void)
{
    int k = 0;
    for (int i = 0; i < 4; i++)
        keep[k++] = malloc(200);      /* @site:main_own */
    keep[k++] = lib_make_strings(10); /* @call:call_strings */
    keep[k++] = lib_make_table(100);  /* @call:call_table */
    keep[k++] = lib_make_strings(5);  /* @call:call_strings2 */
    lib_churn(100);                   /* @call:call_churn */
    e2e_say(1, "multi: done\n");
    return 0;
}
