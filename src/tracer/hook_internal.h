/* hook_internal.h - private interface between the pieces of libtmtop-hook.so.
 *
 *   hook.c       the interposed C entry points (malloc family, exec family,
 *                fork, dlopen/dlclose) and the ELF constructor/destructor
 *   hook_cxx.c   the C++ operator new/delete family (built with -fexceptions)
 *   hook_core.c  everything behind them: real-function resolution, bootstrap
 *                arena, the channel, the event buffer, stack capture and
 *                dedup, module tracking, timer thread, fork and exit handling
 *   hook_walk.c  the own stack walk (hook_walk.h), libunwind's stand-in for
 *                the common frame shapes
 *
 * Rules for every function declared here: no malloc, no stdio, errno is
 * preserved, and nothing ever aborts the target. */
#ifndef TMTOP_HOOK_INTERNAL_H
#define TMTOP_HOOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define TM_EXPORT __attribute__((visibility("default")))
#define TM_LIKELY(x) __builtin_expect(!!(x), 1)
#define TM_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Per-thread state.  Initial-exec TLS: reading it never calls
 * __tls_get_addr, so it never allocates. */
struct tm_hook_tls {
    unsigned guard;  /* non-zero while this thread is inside the hook (or is the
                        timer thread): allocation calls pass straight through */
    uint64_t nested; /* calls passed through because of the guard, not yet
                        folded into the process total */
    unsigned inside; /* non-zero while the hook's own machinery runs (stack
                        capture, recording): what is allocated then is the
                        hook's (tm_hook_note_internal), unlike the blocks
                        operator new gets from malloc under the guard */
};
extern __thread struct tm_hook_tls tm_hook_tls __attribute__((tls_model("initial-exec")));

/* Process state (tm_hook_state). */
enum {
    TM_HOOK_UNINIT = 0,   /* nothing done yet */
    TM_HOOK_STARTING = 1, /* one thread is connecting; the others pass through */
    TM_HOOK_ON = 2,       /* recording */
    TM_HOOK_OFF = 3,      /* pass-through forever: no channel, channel lost,
                             stream ended, or a forked child not
                             followed (TMTOP_FOLLOW unset) */
};
extern int tm_hook_state;

/* The next definitions in the lookup order (dlsym(RTLD_NEXT)).  The C
 * allocator is resolved on the first call; the C++ operators may appear
 * later (a C program dlopen()ing C++ code): tm_hook_cxx_fn resolves them. */
struct tm_hook_real {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execv)(const char *, char *const[]);
    int (*execvp)(const char *, char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    int (*fork)(void);
    void *(*dlopen)(const char *, int);
    int (*dlclose)(void *);
    int (*close)(int);
    int (*close_range)(unsigned, unsigned, int);
    void (*closefrom)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
};
extern struct tm_hook_real tm_real;

/* Resolves tm_real (idempotent; a nested call made by dlsym itself returns at
 * once, and the caller then serves the request from the bootstrap arena). */
void tm_hook_resolve(void);
/* The same, for the functions that cannot fall back on the arena (exec,
 * fork, dup2, ...): waits a little for another thread's resolution. */
void tm_hook_resolve_wait(void);

/* The static bootstrap arena: memory handed out while dlsym runs.  It is never
 * reused or freed; free() ignores pointers inside it. */
void *tm_hook_arena_alloc(size_t size, size_t align);
int tm_hook_in_arena(const void *p);
size_t tm_hook_arena_room(const void *p); /* bytes from p to the arena's end */

/* Connects and sends the preamble and HELLO (safe from any allocation call:
 * only system calls).  Called by the first allocation call or the
 * constructor, whichever comes first. */
void tm_hook_start(void);
/* Counts a call that went unrecorded because another thread was starting. */
void tm_hook_count_lost(void);

/* The constructor's part: environment cleanup, modules, unwinder, atfork,
 * atexit and the timer thread (never done from inside an allocation call). */
void tm_hook_constructor(void);
/* END + flush + shutdown, once (atexit handler, or the ELF destructor). */
void tm_hook_finish(void);

/* Called by every interposed allocation function.  Returns 1 when the call
 * must be recorded, and then has set the guard (tm_hook_leave() clears it);
 * 0 when it must pass straight through. */
static inline int tm_hook_enter(void)
{
    if (tm_hook_tls.guard) {
        tm_hook_tls.nested++;
        return 0;
    }
    int s = __atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE);
    if (TM_UNLIKELY(s != TM_HOOK_ON)) {
        if (s == TM_HOOK_STARTING)
            tm_hook_count_lost();
        if (s != TM_HOOK_UNINIT)
            return 0;
        tm_hook_start();
        if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON)
            return 0;
    }
    tm_hook_tls.guard = 1;
    return 1;
}

static inline void tm_hook_leave(void)
{
    tm_hook_tls.guard = 0;
}

/* Blocks allocated while the hook's own machinery ran in this thread
 * (tm_hook_tls.inside: glibc's dynamic TLS for the unwinder...) are the
 * hook's own, never recorded; glibc may free them later from the target's
 * code (a dead thread's TLS when its stack is reused), and such a free must
 * not be recorded either.  tm_hook_note_internal remembers p (a few hundred
 * at a time; beyond that such frees show as unknown frees);
 * tm_hook_take_internal forgets p and says whether it was one. */
extern unsigned tm_hook_internal_n;
void tm_hook_note_internal(const void *p);
int tm_hook_take_internal(const void *p);

/* Recording, with the guard set by tm_hook_enter().  Stacks are captured
 * inside (before any lock); the hook's own frames are removed.
Pointers travel as integers: realloc's old pointer is
 * recorded after the block may have been freed. */
void tm_hook_on_alloc(uint8_t kind, uint64_t ptr, uint64_t size);
void tm_hook_on_free(uint64_t ptr, uint8_t kind);
/* realloc(old != 0) completed: new_ptr 0 with size 0 means it freed. */
void tm_hook_on_realloc(uint64_t old_ptr, uint64_t new_ptr, uint64_t size);
void tm_hook_on_realloc_failed(uint64_t old_ptr);

/* Flushes and appends EXEC before an exec of path (a no-op when off or in a
 * vfork child). */
void tm_hook_before_exec(const char *path);
/* After an exec announced by tm_hook_before_exec failed: the stream goes on
 * (what was recorded meanwhile was held back, not lost). */
void tm_hook_after_exec(void);
/* After fork() returned child_pid > 0 in the parent: appends FORK. */
void tm_hook_after_fork(int child_pid);
/* After a module may have been loaded or unloaded by the caller. */
void tm_hook_modules_changed(void);
/* The descriptors the close and dup2 families step around: the hook's own
 * (the socket, /proc/self/statm) and those libunwind opened for itself (its
 * memory-validation pipe).  Fills fds (ascending) and returns how many there
 * are: 0 when off, in a forked child, or when called from inside the hook (a
 * signal handler interrupting it, libunwind closing its own).  No system
 * call. */
#define TM_HOOK_OWN_FDS_MAX 6
int tm_hook_own_fds(int fds[TM_HOOK_OWN_FDS_MAX]);
/* 0 in a vfork child (our memory, its own descriptors): it may do as it
 * likes with the numbers.  A system call: only when one of ours is hit. */
int tm_hook_fd_owner(void);
/* The target is about to put something else on fd, one of tm_hook_own_fds:
 * moves the hook's own to another number first (near the top of
 * RLIMIT_NOFILE); for one of libunwind's, which cannot move, stops using
 * libunwind (stacks then come from libgcc's unwinder).  -1 if it could not
 * (the flush-time check then stops tracing). */
int tm_hook_fd_evict(int fd);
/* close(2) on the real function, for the hook's own descriptors. */
int tm_hook_sys_close(int fd);

/* 1 if addr lies in the main executable (as loaded at startup). */
int tm_hook_in_main_exe(uintptr_t addr);

/* Resolves a C++ operator by mangled name: RTLD_NEXT, else the libstdc++
 * already loaded in the process.  self is the hook's own definition, which is
 * never returned.  NULL if the name is defined nowhere else. */
void *tm_hook_cxx_fn(const char *name, void *self);

#endif
