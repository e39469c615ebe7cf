/* e2e_plugin.c - a library that e2e_dlopen loads with dlopen: its blocks
 * belong to its own lines, even after dlclose unmapped it. */
#include <stdlib.h>

void *plugin_ctor_block;

__attribute__((constructor)) static void plugin_init(void)
{
    plugin_ctor_block = malloc(33); /* @site:plugin_ctor */
}

/* Fills out[0..n) with leaked 72-byte blocks and churns a little. */
void plugin_make(int n, void **out)
{
    for (int i = 0; i < n; i++)
        out[i] = malloc(72); /* @site:plugin_block */
    for (int i = 0; i < n; i++)
        free(malloc(16)); /* @site:plugin_churn */
}
