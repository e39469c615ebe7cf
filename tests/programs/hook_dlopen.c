/* hook_dlopen.c - a plugin found through the program's RUNPATH
 * ($ORIGIN/hook-plugins) by its bare name, which works only if the hook's
 * dlopen keeps the caller; then the same plugin by absolute path. */
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#include "hook_common.h"

typedef void *(*alloc_fn)(size_t);

static int use_plugin(const char *name, size_t size, size_t after)
{
    void *h = dlopen(name, RTLD_NOW);
    if (!h) {
        printf("dlopen %s: %s\n", name, dlerror());
        return 1;
    }
    hook_mark(after);
    alloc_fn f = (alloc_fn)dlsym(h, "hook_plugin_alloc");
    if (!f)
        return 1;
    free(f(size));
    dlclose(h);
    hook_mark(after + 1);
    printf("ok %s\n", name);
    return 0;
}

int main(void)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 64);
    if (n <= 0)
        return 2;
    path[n] = 0;
    strcpy(strrchr(path, '/'), "/hook-plugins/libhook_plugin.so");
    int bad = use_plugin("libhook_plugin.so", 9001, 9100);
    bad |= use_plugin(path, 9002, 9200);
    return bad;
}
