/* hook_plugin.c - the library hook_dlopen loads. */
#include <stdlib.h>

__attribute__((visibility("default"))) void *hook_plugin_alloc(size_t n)
{
    return malloc(n);
}
