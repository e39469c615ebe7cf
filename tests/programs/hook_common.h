/* hook_common.h - shared by the target programs of tests/unit/test_hook.c.
 * They are built with -O0 -fno-builtin so that every allocation call in the
 * source is a real call.  Allocations between the two markers are the ones
 * the test checks exactly. */
#ifndef HOOK_COMMON_H
#define HOOK_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#define HOOK_MARK_BEGIN 777001
#define HOOK_MARK_END 777002

static inline void hook_mark(size_t n)
{
    free(malloc(n));
}

/* What the test checks is gone from the environment. */
static inline void hook_print_env(void)
{
    static const char *const names[] = {"LD_PRELOAD", "TMTOP_SOCK", "TMTOP_TOKEN", "TMTOP_FRAMES",
                                        "TMTOP_FLUSH_MS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        printf("env %s=%s\n", names[i], v ? v : "(null)");
    }
}

#endif
