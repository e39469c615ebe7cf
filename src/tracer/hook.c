/* hook.c - the C entry points of libtmtop-hook.so, preloaded into the target
 * by tmtop: malloc, calloc, realloc, free, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc; the exec family and fork; dlopen and dlclose;
 * close, close_range, closefrom, dup2 and dup3 (to keep the hook's own
 * descriptors out of the target's way).
 * (operator new/delete: hook_cxx.c; everything behind them: hook_core.c.)
 *
 * Each allocation function forwards to the next definition (dlsym
 * RTLD_NEXT).  A call made while the calling thread is already inside the
 * hook (libstdc++'s new calling malloc, the unwinder's first-use TLS block,
 * dlsym) passes straight through unrecorded.  Order is truth: FREE goes into
 * the stream before the real free runs, ALLOC after the real allocation
 * returned.  reallocarray is not interposed: glibc's calls realloc through
 * the PLT, so it is recorded once, as a realloc. */
#include "hook_internal.h"
#include "hook_walk.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wire.h"

/* ---- the malloc family ----------------------------------------------------- */
TM_EXPORT void *malloc(size_t n)
{
    if (TM_UNLIKELY(!tm_real.malloc)) {
        tm_hook_resolve();
        if (!tm_real.malloc)
            return tm_hook_arena_alloc(n, 16);
    }
    if (!tm_hook_enter()) {
        void *p = tm_real.malloc(n);
        if (tm_hook_tls.inside && p && tm_hook_state == TM_HOOK_ON)
            tm_hook_note_internal(p);
        return p;
    }
    void *p = tm_real.malloc(n);
    if (p)
        tm_hook_on_alloc(TM_ALLOC_MALLOC, (uintptr_t)p, n);
    tm_hook_leave();
    return p;
}

TM_EXPORT void free(void *p)
{
    if (!p || tm_hook_in_arena(p))
        return;
    if (TM_UNLIKELY(!tm_real.free)) {
        tm_hook_resolve();
        if (!tm_real.free)
            return; /* leak rather than crash */
    }
    if (TM_UNLIKELY(__atomic_load_n(&tm_hook_internal_n, __ATOMIC_RELAXED)) &&
        tm_hook_take_internal(p)) {
        tm_real.free(p); /* the hook's own block */
        return;
    }
    if (!tm_hook_enter()) {
        tm_real.free(p);
        return;
    }
    tm_hook_on_free((uintptr_t)p, TM_FREE_FREE);
    tm_real.free(p);
    tm_hook_leave();
}

TM_EXPORT void *calloc(size_t nmemb, size_t size)
{
    if (TM_UNLIKELY(!tm_real.calloc)) {
        tm_hook_resolve();
        if (!tm_real.calloc) {
            size_t n;
            if (__builtin_mul_overflow(nmemb, size, &n)) {
                errno = ENOMEM;
                return NULL;
            }
            return tm_hook_arena_alloc(n, 16); /* static storage: already zero */
        }
    }
    if (!tm_hook_enter()) {
        void *p = tm_real.calloc(nmemb, size);
        if (tm_hook_tls.inside && p && tm_hook_state == TM_HOOK_ON)
            tm_hook_note_internal(p);
        return p;
    }
    void *p = tm_real.calloc(nmemb, size);
    if (p)
        tm_hook_on_alloc(TM_ALLOC_CALLOC, (uintptr_t)p, (uint64_t)nmemb * size);
    tm_hook_leave();
    return p;
}

TM_EXPORT void *realloc(void *p, size_t n)
{
    if (TM_UNLIKELY(!tm_real.realloc)) {
        tm_hook_resolve();
        if (!tm_real.realloc) {
            void *q = tm_hook_arena_alloc(n, 16);
            if (q && p) {
                size_t room = tm_hook_arena_room(p);
                memcpy(q, p, n < room ? n : room);
            }
            return q;
        }
    }
    if (tm_hook_in_arena(p)) {
        /* A block from the bootstrap arena moves to the real heap (the arena
         * is never reused): a new allocation as far as the stream knows. */
        size_t room = tm_hook_arena_room(p);
        void *q = tm_real.malloc(n);
        if (q)
            memcpy(q, p, n < room ? n : room);
        if (q && tm_hook_enter()) {
            tm_hook_on_alloc(TM_ALLOC_REALLOC, (uintptr_t)q, n);
            tm_hook_leave();
        }
        return q;
    }
    if (!tm_hook_enter())
        return tm_real.realloc(p, n);
    uintptr_t old = (uintptr_t)p;
    if (!old) {
        void *q = tm_real.realloc(NULL, n);
        if (q)
            tm_hook_on_alloc(TM_ALLOC_REALLOC, (uintptr_t)q, n);
        tm_hook_leave();
        return q;
    }
    /* The block may move or go: its FREE is in the stream before another
     * thread can be handed the address; undone if the call fails. */
    tm_hook_on_free(old, TM_FREE_REALLOC_PRE);
    void *q = tm_real.realloc(p, n);
    if (q)
        tm_hook_on_realloc(old, (uintptr_t)q, n);
    else if (n == 0)
        tm_hook_on_realloc(old, 0, 0); /* glibc freed the block */
    else
        tm_hook_on_realloc_failed(old);
    tm_hook_leave();
    return q;
}

/* The memalign family: each reaches only its own symbol in glibc, and is
 * recorded as TM_ALLOC_MEMALIGN with the requested size, only on success. */
TM_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (TM_UNLIKELY(!tm_real.posix_memalign)) {
        tm_hook_resolve();
        if (!tm_real.posix_memalign) {
            void *p = tm_hook_arena_alloc(n, align);
            if (!p)
                return errno;
            *out = p;
            return 0;
        }
    }
    if (!tm_hook_enter())
        return tm_real.posix_memalign(out, align, n);
    int r = tm_real.posix_memalign(out, align, n);
    if (r == 0)
        tm_hook_on_alloc(TM_ALLOC_MEMALIGN, (uintptr_t)*out, n);
    tm_hook_leave();
    return r;
}

#define DEFINE_ALIGNED(name, PARAMS, ARGS, BOOT_ALIGN, BOOT_SIZE)                                  \
    TM_EXPORT void *name PARAMS                                                                    \
    {                                                                                              \
        if (TM_UNLIKELY(!tm_real.name)) {                                                          \
            tm_hook_resolve();                                                                     \
            if (!tm_real.name)                                                                     \
                return tm_hook_arena_alloc(BOOT_SIZE, BOOT_ALIGN);                                 \
        }                                                                                          \
        if (!tm_hook_enter())                                                                      \
            return tm_real.name ARGS;                                                              \
        void *p = tm_real.name ARGS;                                                               \
        if (p)                                                                                     \
            tm_hook_on_alloc(TM_ALLOC_MEMALIGN, (uintptr_t)p, n);                                  \
        tm_hook_leave();                                                                           \
        return p;                                                                                  \
    }

DEFINE_ALIGNED(aligned_alloc, (size_t align, size_t n), (align, n), align, n)
DEFINE_ALIGNED(memalign, (size_t align, size_t n), (align, n), align, n)
DEFINE_ALIGNED(valloc, (size_t n), (n), 4096, n)
DEFINE_ALIGNED(pvalloc, (size_t n), (n), 4096, (n + 4095) & ~(size_t)4095)

/* ---- exec -------------------------------------------------------------------------
 * Destructors do not run at exec: flush and send EXEC first.  No END: if the
 * exec fails, tracing goes on in the same stream; if it succeeds, the
 * close-on-exec socket simply closes.  The execl variants build their argv
 * as glibc does and take the execv route. */
static int do_execve(const char *path, char *const argv[], char *const envp[])
{
    tm_hook_resolve_wait();
    if (!tm_real.execve) {
        errno = ENOSYS;
        return -1;
    }
    tm_hook_before_exec(path);
    int r = tm_real.execve(path, argv, envp);
    tm_hook_after_exec();
    return r;
}

static int do_execv(const char *path, char *const argv[])
{
    tm_hook_resolve_wait();
    if (!tm_real.execv) {
        errno = ENOSYS;
        return -1;
    }
    tm_hook_before_exec(path);
    int r = tm_real.execv(path, argv);
    tm_hook_after_exec();
    return r;
}

static int do_execvp(const char *file, char *const argv[])
{
    tm_hook_resolve_wait();
    if (!tm_real.execvp) {
        errno = ENOSYS;
        return -1;
    }
    tm_hook_before_exec(file);
    int r = tm_real.execvp(file, argv);
    tm_hook_after_exec();
    return r;
}

/* _exit skips atexit handlers, so without this a program that leaves through
 * it (dash, daemons, the child half of many fork patterns) would end its
 * stream without END and be reported as incomplete.  tm_hook_finish does
 * nothing in a forked or vfork'ed child (not our pid), inside the hook (a
 * signal handler that interrupted it), or when tracing is off.  The process
 * then ends exactly as glibc's _exit ends it. */
__attribute__((noreturn)) static void exit_now(int status)
{
    tm_hook_finish();
    for (;;)
        syscall(SYS_exit_group, status);
}

TM_EXPORT void _exit(int status)
{
    exit_now(status);
}

TM_EXPORT void _Exit(int status)
{
    exit_now(status);
}

TM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return do_execve(path, argv, envp);
}

TM_EXPORT int execv(const char *path, char *const argv[])
{
    return do_execv(path, argv);
}

TM_EXPORT int execvp(const char *file, char *const argv[])
{
    return do_execvp(file, argv);
}

TM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    tm_hook_resolve_wait();
    if (!tm_real.execvpe) {
        errno = ENOSYS;
        return -1;
    }
    tm_hook_before_exec(file);
    int r = tm_real.execvpe(file, argv, envp);
    tm_hook_after_exec();
    return r;
}

TM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    tm_hook_resolve_wait();
    if (!tm_real.fexecve) {
        errno = ENOSYS;
        return -1;
    }
    /* "/proc/self/fd/N", formatted by hand. */
    char path[32] = "/proc/self/fd/";
    char digits[12];
    int nd = 0;
    unsigned v = fd < 0 ? 0 : (unsigned)fd;
    do
        digits[nd++] = (char)('0' + v % 10);
    while ((v /= 10) && nd < (int)sizeof digits);
    size_t k = strlen(path);
    while (nd)
        path[k++] = digits[--nd];
    path[k] = 0;
    tm_hook_before_exec(path);
    int r = tm_real.fexecve(fd, argv, envp);
    tm_hook_after_exec();
    return r;
}

/* The number of arguments from arg to the terminating NULL (0 if arg is
 * NULL); -1 with E2BIG past INT_MAX, as glibc. */
static long count_args(const char *arg, va_list ap)
{
    long n = 1;
    if (!arg)
        return 0;
    while (va_arg(ap, const char *)) {
        if (++n == 0x7fffffff) {
            errno = E2BIG;
            return -1;
        }
    }
    return n;
}

/* Fills argv[0..argc] (argv[argc] = NULL) from arg and the variadic list. */
#define COLLECT_ARGV(argv, argc, arg, ap)                                                          \
    do {                                                                                           \
        argv[0] = arg;                                                                             \
        for (long i_ = 1; i_ < argc; i_++)                                                         \
            argv[i_] = va_arg(ap, const char *);                                                   \
        argv[argc] = NULL;                                                                         \
    } while (0)

TM_EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    long argc = count_args(arg, ap);
    va_end(ap);
    if (argc < 0)
        return -1;
    const char *argv[argc + 1];
    va_start(ap, arg);
    COLLECT_ARGV(argv, argc, arg, ap);
    va_end(ap);
    return do_execv(path, (char *const *)argv);
}

TM_EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    long argc = count_args(arg, ap);
    va_end(ap);
    if (argc < 0)
        return -1;
    const char *argv[argc + 1];
    va_start(ap, arg);
    COLLECT_ARGV(argv, argc, arg, ap);
    va_end(ap);
    return do_execvp(file, (char *const *)argv);
}

TM_EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    long argc = count_args(arg, ap);
    va_end(ap);
    if (argc < 0)
        return -1;
    const char *argv[argc + 1];
    va_start(ap, arg);
    COLLECT_ARGV(argv, argc, arg, ap);
    if (argc > 0)
        (void)va_arg(ap, const char *); /* the NULL after the arguments */
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return do_execve(path, (char *const *)argv, envp);
}

/* ---- fork ----------------------------------------------------------------------------
 * pthread_atfork handlers (hook_core.c) flush and hold the stream across the
 * fork and switch the child off, or with TMTOP_FOLLOW give it a stream of its
 * own; this wrapper adds FORK with the child's pid, which only fork's return
 * value gives the parent. */
TM_EXPORT pid_t fork(void)
{
    tm_hook_resolve_wait();
    if (!tm_real.fork) {
        errno = ENOSYS;
        return -1;
    }
    pid_t pid = tm_real.fork();
    if (pid > 0)
        tm_hook_after_fork(pid);
    return pid;
}

/* ---- dlopen / dlclose ------------------------------------------------------------------
 * glibc's dlopen looks at its return address to find the calling object:
 * its RPATH/RUNPATH, $ORIGIN and namespace.  A C wrapper calling the real
 * dlopen would make the hook the caller and break a program whose RUNPATH
 * finds its plugins.  So dlopen is an assembly stub that asks
 * tm_hook_dlopen_route where to go and jumps there with the caller's own
 * return address still on the stack:
 *  - a path with a '/' and no '$' from the main program (the only cases
 *    where the caller makes no difference: the main program's RPATH is
 *    searched for every dependency anyway) goes to dlopen_tracked, which
 *    calls the real dlopen and emits the new MODULE records at once;
 *  - anything else goes straight to the real dlopen.  Its modules are
 *    recorded by the next timer tick, or before the first STACK that has an
 *    address in them, whichever comes first. */
typedef void *(*dlopen_fn)(const char *, int);

static void *dlopen_tracked(const char *file, int mode)
{
    void *h = tm_real.dlopen(file, mode);
    if (h)
        tm_hook_modules_changed();
    return h;
}

static void *dlopen_missing(const char *file, int mode)
{
    (void)file;
    (void)mode;
    return NULL;
}

__attribute__((used)) dlopen_fn tm_hook_dlopen_route(const char *file, int mode, uintptr_t ra)
{
    (void)mode;
    tm_hook_resolve_wait();
    if (!tm_real.dlopen)
        return dlopen_missing;
    if (file && strchr(file, '/') && !strchr(file, '$') && tm_hook_in_main_exe(ra) &&
        __atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) == TM_HOOK_ON && !tm_hook_tls.guard)
        return dlopen_tracked;
    return tm_real.dlopen;
}

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        ".p2align 4\n"
        "dlopen:\n"
        ".cfi_startproc\n"
        "  endbr64\n"
        "  pushq %rdi\n"
        ".cfi_adjust_cfa_offset 8\n"
        "  pushq %rsi\n"
        ".cfi_adjust_cfa_offset 8\n"
        "  subq $8, %rsp\n" /* 16-byte alignment for the call */
        ".cfi_adjust_cfa_offset 8\n"
        "  movq 24(%rsp), %rdx\n" /* the caller's return address */
        "  call tm_hook_dlopen_route\n"
        "  addq $8, %rsp\n"
        ".cfi_adjust_cfa_offset -8\n"
        "  popq %rsi\n"
        ".cfi_adjust_cfa_offset -8\n"
        "  popq %rdi\n"
        ".cfi_adjust_cfa_offset -8\n"
        "  jmp *%rax\n"
        ".cfi_endproc\n"
        ".size dlopen, .-dlopen\n");
#endif
/* Elsewhere dlopen is not interposed: modules are found by the timer and by
 * the check before each new STACK. */

TM_EXPORT int dlclose(void *handle)
{
    tm_hook_resolve_wait();
    if (!tm_real.dlclose)
        return -1;
    int r = tm_real.dlclose(handle);
    if (r == 0) {
        tm_unwind_forget();        /* its code may be gone, and other code come there */
        tm_hook_modules_changed(); /* MODULE_GONE */
    }
    return r;
}

/* ---- descriptors ------------------------------------------------------------------------
 * The close and dup2 families step around the hook's socket, its
 * /proc/self/statm descriptor and libunwind's validation pipe
 * (tm_hook_own_fds), so that closefrom(3) or a dup2 over every number
 * neither cuts the trace, nor puts tracer bytes in the target's files, nor
 * lets libunwind read from or write into them.  Closing one of them
 * "succeeds" and leaves it open; a dup2 onto one first moves ours elsewhere
 * (or retires libunwind, whose numbers cannot move), then does what the
 * target asked. */
static int is_own_fd(int fd, const int *own, int n)
{
    for (int i = 0; i < n; i++)
        if (own[i] == fd)
            return 1;
    return 0;
}

TM_EXPORT int close(int fd)
{
    int own[TM_HOOK_OWN_FDS_MAX];
    int n = tm_hook_own_fds(own);
    if (n && is_own_fd(fd, own, n) && tm_hook_fd_owner())
        return 0;
    return tm_hook_sys_close(fd);
}

/* Closes [lo, hi] with the real close_range, or one by one. */
static int close_span(unsigned lo, unsigned hi, int flags)
{
    if (lo > hi)
        return 0;
    if (tm_real.close_range && tm_real.close_range(lo, hi, flags) == 0)
        return 0;
    if (flags) /* CLOSE_RANGE_UNSHARE has no one-by-one form */
        return -1;
    long max = sysconf(_SC_OPEN_MAX); /* nothing is open past the limit */
    if (max > 0 && hi >= (unsigned long)max)
        hi = (unsigned)max - 1;
    for (unsigned fd = lo; fd <= hi && fd < 0x7fffffffu; fd++)
        tm_hook_sys_close((int)fd);
    return 0;
}

TM_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    tm_hook_resolve_wait();
    int own[TM_HOOK_OWN_FDS_MAX];
    int n = tm_hook_own_fds(own);
    /* CLOSE_RANGE_CLOEXEC only marks: ours are close-on-exec already. */
    if (!n || (flags & CLOSE_RANGE_CLOEXEC) || first > last || (unsigned)own[n - 1] < first ||
        (unsigned)own[0] > last || !tm_hook_fd_owner()) {
        if (!tm_real.close_range) {
            errno = ENOSYS;
            return -1;
        }
        return tm_real.close_range(first, last, flags);
    }
    unsigned lo = first;
    int r = 0;
    for (int i = 0; i < n; i++) {
        unsigned fd = (unsigned)own[i];
        if (fd < lo || fd > last)
            continue;
        if (fd > lo)
            r |= close_span(lo, fd - 1, flags);
        lo = fd + 1;
        if (fd == last)
            return r;
    }
    r |= close_span(lo, last, flags);
    return r;
}

TM_EXPORT void closefrom(int lowfd)
{
    tm_hook_resolve_wait();
    int own[TM_HOOK_OWN_FDS_MAX];
    int n = tm_hook_own_fds(own);
    unsigned lo = lowfd < 0 ? 0 : (unsigned)lowfd;
    if (n && (unsigned)own[n - 1] >= lo && !tm_hook_fd_owner())
        n = 0;
    for (int i = 0; i < n; i++) {
        unsigned fd = (unsigned)own[i];
        if (fd < lo)
            continue;
        if (fd > lo)
            close_span(lo, fd - 1, 0);
        lo = fd + 1;
    }
    if (tm_real.closefrom)
        tm_real.closefrom((int)lo);
    else
        close_span(lo, ~0u - 1, 0);
}

TM_EXPORT int dup2(int oldfd, int newfd)
{
    tm_hook_resolve_wait();
    int own[TM_HOOK_OWN_FDS_MAX];
    int n = tm_hook_own_fds(own);
    if (n && oldfd != newfd && is_own_fd(newfd, own, n) && tm_hook_fd_owner())
        tm_hook_fd_evict(newfd);
    if (!tm_real.dup2) {
        errno = ENOSYS;
        return -1;
    }
    return tm_real.dup2(oldfd, newfd);
}

TM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    tm_hook_resolve_wait();
    int own[TM_HOOK_OWN_FDS_MAX];
    int n = tm_hook_own_fds(own);
    if (n && oldfd != newfd && is_own_fd(newfd, own, n) && tm_hook_fd_owner())
        tm_hook_fd_evict(newfd);
    if (!tm_real.dup3) {
        errno = ENOSYS;
        return -1;
    }
    return tm_real.dup3(oldfd, newfd, flags);
}

/* ---- start and end ------------------------------------------------------------------------ */
__attribute__((constructor)) static void hook_constructor(void)
{
    tm_hook_constructor();
}

/* Normally tm_hook_finish already ran as the atexit handler registered by
 * the constructor; this covers the cases where it did not. */
__attribute__((destructor)) static void hook_destructor(void)
{
    tm_hook_finish();
}
