/* hard_plugin.c - the library hard_dlopen loads and unloads in a loop. */
#include <stdlib.h>

void hard_plugin_make(int n, void **out)
{
    for (int i = 0; i < n; i++)
        out[i] = malloc(40);
}
