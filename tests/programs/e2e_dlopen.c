/* e2e_dlopen.c - loads e2e_plugin.so with dlopen, lets it allocate at its
 * own sites, and (with "close") unloads it before exit, so tmtop must
 * resolve the plugin's frames after the module is gone.  The loader's own
 * blocks are allocated through the traced malloc from inside dlopen: they
 * belong to the dlopen line (not asserted: glibc's business).
 * Usage: e2e_dlopen PLUGIN.so [close|keep] */
#include <dlfcn.h>

#include "e2e_common.h"

#define N 40

static void *blocks[N];

int main(int argc, char **argv)
{
    if (argc < 2) {
        e2e_say(2, "usage: e2e_dlopen PLUGIN.so [close|keep]\n");
        return 2;
    }
    int close_it = argc > 2 && !strcmp(argv[2], "close");
    void *h = dlopen(argv[1], RTLD_NOW); /* @libc:dlopen */
    if (!h) {
        e2e_say(2, "e2e_dlopen: cannot load %s\n", argv[1]);
        return 2;
    }
    void (*make)(int, void **) = (void (*)(int, void **))dlsym(h, "plugin_make");
    if (!make)
        return 2;
    make(N, blocks); /* @call:call_plugin */
    if (close_it)
        dlclose(h);            /* @libc:dlclose */
    void *after = malloc(123); /* @site:after_dlopen */
    e2e_say(1, "dlopen: done %s %s\n", close_it ? "closed" : "kept", after ? "ok" : "BAD");
    return 0;
}
