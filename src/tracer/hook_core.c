/* hook_core.c - the machinery behind the interposed functions of
 * libtmtop-hook.so: resolution of the real functions, the bootstrap arena,
 * the trace channel and its buffer, stack capture and dedup, module records,
 * the timer thread, fork and exit.
 *
 * Nothing here calls malloc or stdio: memory comes from mmap or static
 * storage.  Locks, always taken in this order (a thread holding one never
 * waits for an earlier one):
 *   the loader's dl_load_write_lock (held inside dl_iterate_phdr callbacks)
 *     -> g_scan_lock (module table; only ever taken inside such a callback)
 *       -> g_lock (event buffer, stack table, counters)
 *         -> g_send_lock (the socket: one sender at a time, in buffer order)
 * Stacks are captured before g_lock is taken: the unwinder may take the
 * loader's lock, and a thread inside dlopen holding it may be waiting for
 * g_lock in its own malloc. */
#include "hook_internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "tracer.h"
#include "wire.h"

__thread struct tm_hook_tls tm_hook_tls __attribute__((tls_model("initial-exec")));
int tm_hook_state;
struct tm_hook_real tm_real;

/* ---- bootstrap arena ------------------------------------------------------
 * dlsym may allocate (an error string, dlerror's per-thread buffer) before
 * malloc itself is resolved.  Those few requests are served here. */
#define ARENA_SIZE (64 * 1024)
static _Alignas(4096) unsigned char g_arena[ARENA_SIZE];
static size_t g_arena_used;

void *tm_hook_arena_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    if (align & (align - 1) || align > 4096) {
        errno = EINVAL;
        return NULL;
    }
    if (size == 0)
        size = 1;
    size_t old = __atomic_load_n(&g_arena_used, __ATOMIC_RELAXED), start;
    do {
        start = (old + align - 1) & ~(align - 1);
        if (size > ARENA_SIZE || start > ARENA_SIZE - size) {
            errno = ENOMEM;
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(&g_arena_used, &old, start + size, 1, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return g_arena + start;
}

int tm_hook_in_arena(const void *p)
{
    return (const unsigned char *)p >= g_arena && (const unsigned char *)p < g_arena + ARENA_SIZE;
}

size_t tm_hook_arena_room(const void *p)
{
    return (size_t)(g_arena + ARENA_SIZE - (const unsigned char *)p);
}

/* ---- real functions ------------------------------------------------------ */
static int g_resolving, g_resolved;

#define RESOLVE(field, name)                                                                       \
    __atomic_store_n(&tm_real.field, (__typeof__(tm_real.field))dlsym(RTLD_NEXT, name),            \
                     __ATOMIC_RELEASE)

void tm_hook_resolve(void)
{
    if (__atomic_load_n(&g_resolved, __ATOMIC_ACQUIRE))
        return;
    /* A nested call (dlsym allocating) or a second thread: the caller falls
     * back on the arena until the first resolution completes. */
    if (__atomic_exchange_n(&g_resolving, 1, __ATOMIC_ACQ_REL))
        return;
    int e = errno;
    tm_hook_tls.guard++;
    /* The allocator first, so that what dlsym allocates for the later
     * lookups goes to the real heap. */
    RESOLVE(malloc, "malloc");
    RESOLVE(free, "free");
    RESOLVE(calloc, "calloc");
    RESOLVE(realloc, "realloc");
    RESOLVE(posix_memalign, "posix_memalign");
    RESOLVE(aligned_alloc, "aligned_alloc");
    RESOLVE(memalign, "memalign");
    RESOLVE(valloc, "valloc");
    RESOLVE(pvalloc, "pvalloc");
    RESOLVE(execve, "execve");
    RESOLVE(execv, "execv");
    RESOLVE(execvp, "execvp");
    RESOLVE(execvpe, "execvpe");
    RESOLVE(fexecve, "fexecve");
    RESOLVE(fork, "fork");
    RESOLVE(dlopen, "dlopen");
    RESOLVE(dlclose, "dlclose");
    RESOLVE(close, "close");
    RESOLVE(close_range, "close_range");
    RESOLVE(closefrom, "closefrom");
    RESOLVE(dup2, "dup2");
    RESOLVE(dup3, "dup3");
    tm_hook_tls.guard--;
    __atomic_store_n(&g_resolved, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&g_resolving, 0, __ATOMIC_RELEASE);
    errno = e;
}

void tm_hook_resolve_wait(void)
{
    tm_hook_resolve();
    /* Another thread is resolving (this one would be inside it if its guard
     * were set).  Bounded: never wait for ever on a lock-holding thread. */
    for (int i = 0;
         i < 100000 && !tm_hook_tls.guard && !__atomic_load_n(&g_resolved, __ATOMIC_ACQUIRE); i++)
        sched_yield();
}

void *tm_hook_cxx_fn(const char *name, void *self)
{
    int e = errno;
    tm_hook_resolve();
    tm_hook_tls.guard++;
    void *f = dlsym(RTLD_NEXT, name);
    if (!f || f == self) {
        /* libstdc++ loaded RTLD_LOCAL (a C program dlopen()ed C++ code):
         * not in the global scope, but its own scope has the definition. */
        void *h = tm_real.dlopen ? tm_real.dlopen("libstdc++.so.6", RTLD_NOW | RTLD_NOLOAD) : NULL;
        f = h ? dlsym(h, name) : NULL;
        if (f == self)
            f = NULL;
        if (h && tm_real.dlclose)
            tm_real.dlclose(h);
    }
    if (!f)
        (void)dlerror(); /* do not leave our failed lookup for the target's dlerror() */
    tm_hook_tls.guard--;
    errno = e;
    return f;
}

/* ---- settings and process state ------------------------------------------ */
static int g_launched;            /* TMTOP_SOCK was set: clean the environment */
static int g_follow;              /* TMTOP_FOLLOW=1: forked children open their own stream */
static struct sockaddr_un g_addr; /* tmtop's abstract socket, for the children */
static socklen_t g_alen;
static unsigned g_frames = TM_DEFAULT_FRAMES;
static unsigned g_flush_ms = 10;
static uint64_t g_token;
static pid_t g_pid;
static long g_page = 4096;
static char g_exe[4096];

static int g_fd = -1; /* the socket, >= 500 */
static dev_t g_dev;
static ino_t g_ino;
static int g_statm_fd = -1;
static int g_chan_ok;           /* the channel may be written */
static int g_ended;             /* END appended (g_lock): nothing more may be */
static int g_lost_said;         /* the "channel lost" line was written */
static int g_finished;          /* tm_hook_finish ran (or must never run: forked child) */
static int g_stop;              /* the timer thread must exit */
static uint64_t g_nested_total; /* g_lock */
static uint64_t g_lost;         /* atomic: calls not recorded while another thread started */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *map_anon(size_t n)
{
    void *p =
        mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Decimal, without strtoul's locale machinery.  def when s is not a number. */
static unsigned parse_uint(const char *s, unsigned def, unsigned max)
{
    if (!s || *s < '0' || *s > '9')
        return def;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return max;
    }
    return *s ? def : (unsigned)v;
}

static uint64_t parse_hex64(const char *s)
{
    uint64_t v = 0;
    for (int i = 0; s && s[i] && i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return 0;
        v = v << 4 | d;
    }
    return v;
}

/* The hook's own close() is interposed like the target's: ours go to the
 * real one. */
int tm_hook_sys_close(int fd)
{
    return tm_real.close ? tm_real.close(fd) : (int)syscall(SYS_close, fd);
}

/* Moves fd to the first free number >= 500, out of the target's way. */
static int move_fd_high(int fd)
{
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 500);
    if (hi < 0)
        return fd;
    tm_hook_sys_close(fd);
    return hi;
}

/* ---- the channel ---------------------------------------------------------- */
static void channel_lost(void)
{
    __atomic_store_n(&g_chan_ok, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&tm_hook_state, TM_HOOK_OFF, __ATOMIC_RELEASE);
    if (!__atomic_exchange_n(&g_lost_said, 1, __ATOMIC_ACQ_REL)) {
        static const char msg[] = "tmtop: trace channel lost; tracing stopped\n";
        ssize_t r = write(2, msg, sizeof msg - 1);
        (void)r;
    }
}

static int fd_is_ours(void)
{
    struct stat st;
    return g_fd >= 0 && fstat(g_fd, &st) == 0 && st.st_dev == g_dev && st.st_ino == g_ino;
}

/* ---- the event buffer ------------------------------------------------------
 * Two 64 KiB buffers: events are appended to g_buf[g_cur] under g_lock; a
 * full one is swapped out and sent under g_send_lock only, so the others go
 * on appending while it is on its way.  The swap takes g_send_lock before it
 * lets go of g_lock, which keeps buffers on the wire in the order they were
 * filled. */
#define BUF_SIZE (64 * 1024)
struct tm_buf {
    uint8_t *data;
    size_t len;
};
static struct tm_buf g_buf[2];
static unsigned g_cur;
static pthread_mutex_t g_send_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_scan_lock = PTHREAD_MUTEX_INITIALIZER;

/* g_lock: the event buffer's lock, taken twice per malloc/free pair by every
 * thread, so it must cost next to nothing.  A futex lock (0 free, 1 held,
 * 2 held with sleepers) that spins briefly first: the critical sections are
 * a few dozen nanoseconds, and a pthread mutex sent every contended thread
 * to sleep in the kernel (futex wait + wake per event with 4 threads on 2
 * cores).  The spin is bounded (the holder may have been preempted, or be
 * waiting for g_send_lock in flush_locked), then the waiter sleeps.  Alone
 * on its cache line, so that spinners do not steal unrelated data. */
static union {
    int word;
    char line[64];
} _Alignas(64) g_lock_u;
#define g_lock_word g_lock_u.word
#define LOCK_SPINS 256

static void futex_call(int op, int val)
{
    int e = errno; /* callers preserve the target's errno; EAGAIN is ours */
    syscall(SYS_futex, &g_lock_word, op, val, NULL, NULL, 0);
    errno = e;
}

static __attribute__((noinline)) void lock_slow(void)
{
    for (int i = 0, wait = 1; i < LOCK_SPINS; i += wait, wait = wait < 32 ? wait * 2 : wait) {
        /* Backing off: every read of the lock's line takes it away from the
         * holder, whose release then has to fetch it back. */
        for (int k = 0; k < wait; k++)
            __builtin_ia32_pause();
        int c = __atomic_load_n(&g_lock_word, __ATOMIC_RELAXED);
        if (c == 2)
            break;
        if (c == 0 &&
            __atomic_compare_exchange_n(&g_lock_word, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
    }
    while (__atomic_exchange_n(&g_lock_word, 2, __ATOMIC_ACQUIRE) != 0)
        futex_call(FUTEX_WAIT_PRIVATE, 2);
}

static inline void lock_take(void)
{
    int c = 0;
    if (TM_LIKELY(__atomic_compare_exchange_n(&g_lock_word, &c, 1, 0, __ATOMIC_ACQUIRE,
                                              __ATOMIC_RELAXED)))
        return;
    lock_slow();
}

static inline void lock_give(void)
{
    if (TM_UNLIKELY(__atomic_exchange_n(&g_lock_word, 0, __ATOMIC_RELEASE) == 2))
        futex_call(FUTEX_WAKE_PRIVATE, 1);
}

/* g_send_lock held.  Writes b to the socket and empties it. */
static void send_buf(struct tm_buf *b)
{
    size_t n = b->len;
    const uint8_t *p = b->data;
    b->len = 0;
    if (!n || !__atomic_load_n(&g_chan_ok, __ATOMIC_ACQUIRE))
        return;
    if (getpid() != g_pid) {
        /* A child made without fork()'s handlers (clone, _Fork): its stream
         * is its parent's, never to be written. */
        __atomic_store_n(&g_chan_ok, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&tm_hook_state, TM_HOOK_OFF, __ATOMIC_RELEASE);
        return;
    }
    if (!fd_is_ours()) { /* closed, or dup2()ed over by the target */
        channel_lost();
        return;
    }
    /* send() is a cancellation point: a thread cancelled in there would
     * leave g_send_lock held forever. */
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    while (n) {
        ssize_t k = send(g_fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            channel_lost();
            tm_hook_sys_close(g_fd);
            g_fd = -1;
            break;
        }
    }
    pthread_setcancelstate(old, NULL);
}

/* g_lock held; returns with it held, having released it during the send.
 * When it returns, everything appended before the call is on the wire. */
static void flush_locked(void)
{
    struct tm_buf *b = &g_buf[g_cur];
    if (b->len == 0)
        return;
    pthread_mutex_lock(&g_send_lock);
    g_cur ^= 1; /* the other buffer is empty: its sender has finished */
    lock_give();
    send_buf(b);
    pthread_mutex_unlock(&g_send_lock);
    lock_take();
}

/* g_lock held.  Makes room for need bytes; 0 if nothing may be appended. */
static int reserve_locked(size_t need)
{
    for (;;) {
        if (g_ended || !__atomic_load_n(&g_chan_ok, __ATOMIC_ACQUIRE))
            return 0;
        if (BUF_SIZE - g_buf[g_cur].len >= need)
            return 1;
        flush_locked();
    }
}

static inline uint8_t *tail(void)
{
    return g_buf[g_cur].data + g_buf[g_cur].len;
}

static inline void commit(size_t n)
{
    g_buf[g_cur].len += n;
}

static void fold_nested_locked(void)
{
    g_nested_total += tm_hook_tls.nested;
    tm_hook_tls.nested = 0;
}

/* ---- modules ----------------------------------------------------------------
 * Every loaded object gets a MODULE record before any stack can refer to it:
 * at start, after dlopen/dlclose, on each timer tick when the loader's
 * dlpi_adds/dlpi_subs counters moved, and before a STACK whose addresses lie
 * outside every known module (glibc's internal dlopen of NSS or gconv
 * modules passes no hook).  The table is append-only (dead slots are reused)
 * and read without a lock by that last check: a stale read costs at most a
 * needless rescan. */
#define MOD_CAP 16384
struct mod_ent {
    uintptr_t lo, hi;   /* lowest and highest PT_LOAD address, absolute */
    uintptr_t bias;     /* dlpi_addr */
    const void *phdr;   /* dlpi_phdr */
    uint64_t name_hash; /* tells a reloaded object at the same address apart */
    uint32_t id;
    int alive; /* published (atomic) */
    int seen;  /* in the current scan */
    int fresh; /* created by the current scan, not yet published */
};
static struct mod_ent *g_mods;
static unsigned g_mods_n; /* atomic: entries ever used */
static uint32_t g_next_mod;
static uint64_t g_adds, g_subs;
static int g_scanned_once;
static uintptr_t g_self_lo, g_self_hi; /* the hook's own code */
static uintptr_t g_exe_lo, g_exe_hi;   /* the main program */

/* Staged records of a scan (g_scan_lock): appended after the iteration, so
 * that g_lock is never waited for with the loader's lock held. */
static uint8_t *g_stage;
static size_t g_stage_len, g_stage_cap;

struct scan_ctx {
    int force;
    int locked;  /* took g_scan_lock */
    int changed; /* counters moved (or forced): full scan */
    uint64_t adds, subs;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; s && *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int stage_room(size_t need)
{
    if (g_stage_cap - g_stage_len >= need)
        return 1;
    size_t cap = g_stage_cap ? g_stage_cap * 2 : 256 * 1024;
    while (cap - g_stage_len < need)
        cap *= 2;
    void *p = g_stage ? mremap(g_stage, g_stage_cap, cap, MREMAP_MAYMOVE) : map_anon(cap);
    if (p == MAP_FAILED || !p)
        return 0;
    g_stage = p;
    g_stage_cap = cap;
    return 1;
}

/* The build-id from the object's PT_NOTE segments, as mapped in memory. */
static void read_build_id(const struct dl_phdr_info *info, tm_module *m)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        size_t align = ph->p_align == 8 ? 8 : 4;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            size_t name_off = sizeof *nh;
            size_t desc_off = name_off + ((nh->n_namesz + align - 1) & ~(align - 1));
            size_t next = desc_off + ((nh->n_descsz + align - 1) & ~(align - 1));
            if (next > (size_t)(end - p))
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                memcmp(p + name_off, "GNU", 4) == 0) {
                uint32_t n = nh->n_descsz > TM_BUILD_ID_MAX ? TM_BUILD_ID_MAX : nh->n_descsz;
                memcpy(m->build_id, p + desc_off, n);
                m->build_id_len = n;
                return;
            }
            p += next;
        }
    }
}

static struct mod_ent *mod_slot(void)
{
    unsigned n = __atomic_load_n(&g_mods_n, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < n; i++)
        if (!__atomic_load_n(&g_mods[i].alive, __ATOMIC_RELAXED) && !g_mods[i].fresh &&
            !g_mods[i].seen)
            return &g_mods[i];
    if (n == MOD_CAP)
        return NULL;
    return &g_mods[n]; /* published by the caller */
}

static int scan_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct scan_ctx *c = arg;
    (void)size;
    if (!c->locked) {
        /* First object: the loader's lock is held from here on, so taking
         * g_scan_lock now keeps the documented order. */
        pthread_mutex_lock(&g_scan_lock);
        c->locked = 1;
        c->adds = info->dlpi_adds;
        c->subs = info->dlpi_subs;
        if (!c->force && g_scanned_once && c->adds == g_adds && c->subs == g_subs)
            return 1; /* nothing changed: stop */
        c->changed = 1;
        unsigned n = __atomic_load_n(&g_mods_n, __ATOMIC_RELAXED);
        for (unsigned i = 0; i < n; i++)
            g_mods[i].seen = 0;
    }
    const char *name = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : NULL;
    uint64_t nh = name_hash(name ? name : g_exe);
    unsigned n = __atomic_load_n(&g_mods_n, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < n; i++) {
        struct mod_ent *e = &g_mods[i];
        if ((e->alive || e->fresh) && e->bias == info->dlpi_addr && e->phdr == info->dlpi_phdr &&
            e->name_hash == nh) {
            e->seen = 1;
            return 0;
        }
    }
    struct mod_ent *e = mod_slot();
    if (!e || !stage_room(TM_WIRE_MODULE_MAX))
        return 0; /* retried by a later scan */

    tm_module m;
    m.id = g_next_mod;
    m.load_bias = info->dlpi_addr;
    m.path = name ? name : g_exe;
    m.build_id_len = 0;
    m.nseg = 0;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    uintptr_t self = (uintptr_t)&tm_hook_on_alloc;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        if (m.nseg < TM_MODULE_MAX_SEGS) {
            m.seg[m.nseg].vaddr = ph->p_vaddr;
            m.seg[m.nseg].memsz = ph->p_memsz;
            m.seg[m.nseg].flags = ph->p_flags;
            m.nseg++;
        }
        uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
        if (a < lo)
            lo = a;
        if (b > hi)
            hi = b;
        if ((ph->p_flags & PF_X) && self >= a && self < b) {
            g_self_lo = a;
            g_self_hi = b;
        }
    }
    if (lo >= hi)
        return 0;
    read_build_id(info, &m);
    g_stage_len += tm_wire_put_module(g_stage + g_stage_len, &m);
    if (!name && !g_exe_hi) {
        g_exe_lo = lo;
        g_exe_hi = hi;
    }
    e->lo = lo;
    e->hi = hi;
    e->bias = info->dlpi_addr;
    e->phdr = info->dlpi_phdr;
    e->name_hash = nh;
    e->id = g_next_mod++;
    e->fresh = 1;
    e->seen = 1;
    if (e == &g_mods[n])
        __atomic_store_n(&g_mods_n, n + 1, __ATOMIC_RELEASE);
    return 0;
}

/* ---- the loader's lock across a followed fork --------------------------------
 * glibc 2.36 does not reinitialise the loader's dl_load_write_lock in a
 * forked child: a child forked while another thread was inside
 * dl_iterate_phdr deadlocks on its first call (measured: our timer's module
 * scan, or a stack capture, in the parent; the child hung in the scan of
 * follow_child).  When following, every call of ours that may take that
 * lock (module scans, unwinders) is counted, and fork_prepare closes the
 * gate and waits, bounded, until none is running; a thread already inside
 * one (a nested capture from a callback) passes the gate.  Calls made by
 * the target itself (its dlopen, its exceptions' unwinding in another
 * thread) are not covered: a child forked in the middle of one cannot
 * unwind and stays stuck, as it would without tmtop as soon as it used the
 * loader. */
static int g_dl_users; /* atomic */
static int g_dl_gate;  /* atomic: fork waiting */
static __thread unsigned t_dl_depth __attribute__((tls_model("initial-exec")));

static inline void dl_enter(void)
{
    if (!g_follow)
        return;
    if (t_dl_depth++)
        return;
    for (;;) {
        while (__atomic_load_n(&g_dl_gate, __ATOMIC_ACQUIRE))
            sched_yield();
        __atomic_add_fetch(&g_dl_users, 1, __ATOMIC_SEQ_CST);
        if (!__atomic_load_n(&g_dl_gate, __ATOMIC_SEQ_CST))
            return;
        __atomic_sub_fetch(&g_dl_users, 1, __ATOMIC_SEQ_CST);
    }
}

static inline void dl_leave(void)
{
    if (!g_follow)
        return;
    if (--t_dl_depth == 0)
        __atomic_sub_fetch(&g_dl_users, 1, __ATOMIC_RELEASE);
}

/* Closes the gate; 1 once no counted call is running (within about a
 * second), else reopens it and returns 0: the child is then not followed. */
static int dl_quiesce(void)
{
    __atomic_store_n(&g_dl_gate, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < 200000; i++) {
        if (__atomic_load_n(&g_dl_users, __ATOMIC_SEQ_CST) == 0)
            return 1;
        if (i < 100)
            sched_yield();
        else
            usleep(5);
    }
    __atomic_store_n(&g_dl_gate, 0, __ATOMIC_RELEASE);
    return 0;
}

/* The target's own threads are not gated: one of them inside the loader at
 * the fork leaves dl_load_write_lock held for ever in the child.  That lock
 * is found once (loader_lock_find, when following): inside a dl_iterate_phdr
 * callback it is the one recursive mutex of _rtld_global owned by the
 * calling thread, and outside it is free.  A child that finds it owned by
 * another thread of its parent is not followed (it runs untraced, as without
 * the option); when the lock cannot be identified, children are followed. */
static const int *g_loader_owner; /* pthread_mutex_t.__data.__owner, or NULL */
static pid_t g_fork_tid;          /* the forking thread, in the parent */
struct lock_find {
    const unsigned char *base;
    size_t size;
    size_t off;
    int found; /* candidates */
};

static int lock_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)info;
    (void)size;
    struct lock_find *f = arg;
    int tid = (int)gettid();
    for (size_t o = 0; o + sizeof(pthread_mutex_t) <= f->size; o += 8) {
        int w[3];
        memcpy(w, f->base + o, sizeof w); /* __lock, __count, __owner */
        if (w[0] != 0 && w[1] >= 1 && w[2] == tid) {
            f->off = o;
            f->found++;
        }
    }
    return 1; /* the first object is enough */
}

static void loader_lock_find(void)
{
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    void *g = dlsym(RTLD_DEFAULT, "_rtld_global");
    if (!g || !dladdr1(g, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym || !sym->st_size) {
        (void)dlerror();
        return;
    }
    struct lock_find f = {g, sym->st_size, 0, 0};
    dl_iterate_phdr(lock_find_cb, &f);
    if (f.found != 1)
        return;
    const int *owner = (const int *)(const void *)(f.base + f.off + 8);
    if (__atomic_load_n(owner, __ATOMIC_RELAXED) == 0)
        g_loader_owner = owner;
}

/* In the child: 1 if a thread other than the forking one held the loader's
 * lock at the fork (it is held for ever now). */
static int loader_lock_dead(void)
{
    if (!g_loader_owner)
        return 0;
    int o = __atomic_load_n(g_loader_owner, __ATOMIC_RELAXED);
    return o != 0 && o != g_fork_tid;
}

/* Length of the staged record at p. */
static size_t staged_len(const uint8_t *p)
{
    if (p[1] < 255)
        return 2u + p[1];
    uint32_t n;
    memcpy(&n, p + 2, 4);
    return 6u + n;
}

/* Emits MODULE / MODULE_GONE for what changed since the last scan (all
 * objects when force).  Never called with g_lock held. */
static void modules_refresh(int force)
{
    if (!g_mods)
        return;
    struct scan_ctx c = {.force = force};
    dl_enter();
    dl_iterate_phdr(scan_cb, &c);
    dl_leave();
    if (!c.locked)
        return;
    if (c.changed) {
        unsigned n = __atomic_load_n(&g_mods_n, __ATOMIC_RELAXED);
        for (unsigned i = 0; i < n; i++) {
            if (g_mods[i].alive && !g_mods[i].seen && stage_room(8))
                g_stage_len += tm_wire_put_module_gone(g_stage + g_stage_len, g_mods[i].id);
        }
        lock_take();
        for (size_t off = 0; off < g_stage_len;) {
            size_t len = staged_len(g_stage + off);
            if (!reserve_locked(len))
                break;
            memcpy(tail(), g_stage + off, len);
            commit(len);
            off += len;
        }
        lock_give();
        g_stage_len = 0;
        /* Published only now that their records are in the stream. */
        for (unsigned i = 0; i < n; i++) {
            struct mod_ent *e = &g_mods[i];
            if (e->fresh) {
                e->fresh = 0;
                __atomic_store_n(&e->alive, 1, __ATOMIC_RELEASE);
            } else if (e->alive && !e->seen) {
                __atomic_store_n(&e->alive, 0, __ATOMIC_RELEASE);
            }
            e->seen = 0;
        }
        g_adds = c.adds;
        g_subs = c.subs;
        g_scanned_once = 1;
    }
    pthread_mutex_unlock(&g_scan_lock);
}

int tm_hook_in_main_exe(uintptr_t addr)
{
    return addr >= g_exe_lo && addr < g_exe_hi;
}

/* 1 when some address lies in no published module. */
static int ips_unknown(const uint64_t *ips, unsigned depth)
{
    unsigned n = __atomic_load_n(&g_mods_n, __ATOMIC_ACQUIRE);
    uintptr_t lo = 0, hi = 0; /* the last module hit: neighbours share it */
    for (unsigned k = 0; k < depth; k++) {
        uintptr_t ip = ips[k];
        if (ip >= lo && ip < hi)
            continue;
        unsigned i;
        for (i = 0; i < n; i++) {
            const struct mod_ent *e = &g_mods[i];
            if (__atomic_load_n(&e->alive, __ATOMIC_ACQUIRE) && ip >= e->lo && ip < e->hi) {
                lo = e->lo;
                hi = e->hi;
                break;
            }
        }
        if (i == n)
            return 1;
    }
    return 0;
}

void tm_hook_modules_changed(void)
{
    if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON || tm_hook_tls.guard)
        return;
    int e = errno;
    tm_hook_tls.guard++;
    modules_refresh(0);
    tm_hook_tls.guard--;
    errno = e;
}

/* ---- stack capture ----------------------------------------------------------
 * unw_backtrace from a libunwind dlopen()ed RTLD_LOCAL (never DT_NEEDED:
 * Debian's libunwind exports the C++ unwinder ABI and would take over the
 * target's exceptions), else _Unwind_Backtrace from libgcc_s.  Both are
 * loaded by the constructor; until then stacks are empty. */
typedef int (*unw_backtrace_fn)(void **, int);
typedef _Unwind_Reason_Code (*uw_backtrace_fn)(_Unwind_Trace_Fn, void *);
typedef _Unwind_Ptr (*uw_getip_fn)(struct _Unwind_Context *);
static unw_backtrace_fn g_unw;
static uw_backtrace_fn g_uwbt;
static uw_getip_fn g_uwip;

/* Frames the unwinder and the hook itself may put on top of the caller's. */
#define SLACK 24

struct uw_state {
    uint64_t *ips;
    unsigned cap, n;
};

static _Unwind_Reason_Code uw_cb(struct _Unwind_Context *ctx, void *arg)
{
    struct uw_state *s = arg;
    if (s->n >= s->cap)
        return _URC_END_OF_STACK;
    uintptr_t ip = g_uwip(ctx);
    if (!ip)
        return _URC_END_OF_STACK;
    s->ips[s->n++] = ip;
    return _URC_NO_REASON;
}

struct tm_stack {
    const uint64_t *ips;
    unsigned depth, flags;
    uint64_t hash;
    int scanned; /* modules were rescanned for it already */
};

static inline int in_self(uint64_t ip)
{
    return ip >= g_self_lo && ip < g_self_hi;
}

static uint64_t hash_ips(const uint64_t *ips, unsigned depth, unsigned flags)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)depth << 32) ^ flags;
    for (unsigned i = 0; i < depth; i++) {
        h ^= ips[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

/* Fills buf[0..cap) and describes in st the caller's stack: the first frame
 * is the return address into whoever called the interposed function. */
static void stack_capture(uint64_t *buf, unsigned cap, struct tm_stack *st)
{
    unsigned n = 0;
    unw_backtrace_fn unw = __atomic_load_n(&g_unw, __ATOMIC_ACQUIRE);
    uw_backtrace_fn uwbt = __atomic_load_n(&g_uwbt, __ATOMIC_ACQUIRE);
    dl_enter(); /* both may take the loader's lock */
    if (unw) {
        int k = unw((void **)buf, (int)cap);
        n = k > 0 ? (unsigned)k : 0;
    } else if (uwbt) {
        struct uw_state s = {buf, cap, 0};
        uwbt(uw_cb, &s);
        n = s.n;
    }
    dl_leave();
    /* Skip the unwinder's frames, then the hook's own (whatever inlining
     * did to their number): the first frame after them is the caller. */
    unsigned i = 0;
    while (i < n && i < SLACK && !in_self(buf[i]))
        i++;
    if (i == n || i == SLACK)
        i = 0;
    while (i < n && in_self(buf[i]))
        i++;
    st->ips = buf + i;
    st->depth = n - i;
    st->flags = 0;
    if (st->depth > g_frames) {
        st->depth = g_frames;
        st->flags = TM_STACK_TRUNCATED;
    }
    st->hash = hash_ips(st->ips, st->depth, st->flags);
    st->scanned = 0;
}

/* ---- stack dedup --------------------------------------------------------------
 * Open addressing over (hash, exact IP array) -> dense u32 id; the IP arrays
 * live in an mmap'd bump arena.  All under g_lock. */
struct stk_slot {
    uint64_t hash;
    const uint64_t *ips; /* NULL: empty slot */
    uint32_t id;
    uint16_t depth, flags;
};
static struct stk_slot *g_stk;
static size_t g_stk_mask, g_stk_count;
static uint64_t *g_ipa;
static size_t g_ipa_left;
static uint32_t g_next_stack;
static uint32_t g_empty_stack = UINT32_MAX;

#define STACK_REC_LEN(depth) (6 + 8 + 8 * (size_t)(depth))

static struct stk_slot *stk_probe(struct stk_slot *tab, size_t mask, const struct tm_stack *st)
{
    for (size_t i = st->hash & mask;; i = (i + 1) & mask) {
        struct stk_slot *s = &tab[i];
        if (!s->ips)
            return s;
        if (s->hash == st->hash && s->depth == st->depth && s->flags == st->flags &&
            memcmp(s->ips, st->ips, 8 * (size_t)st->depth) == 0)
            return s;
    }
}

static int stk_grow(void)
{
    size_t cap = g_stk ? (g_stk_mask + 1) * 2 : 4096;
    struct stk_slot *t = map_anon(cap * sizeof *t);
    if (!t)
        return -1;
    if (g_stk) {
        for (size_t i = 0; i <= g_stk_mask; i++) {
            if (!g_stk[i].ips)
                continue;
            for (size_t j = g_stk[i].hash & (cap - 1);; j = (j + 1) & (cap - 1)) {
                if (!t[j].ips) {
                    t[j] = g_stk[i];
                    break;
                }
            }
        }
        munmap(g_stk, (g_stk_mask + 1) * sizeof *g_stk);
    }
    g_stk = t;
    g_stk_mask = cap - 1;
    return 0;
}

/* ---- per-thread stack cache ---------------------------------------------------
 * A direct-mapped cache of the stacks this thread met last, so that the
 * common case (a stack already in the table) needs no probe under g_lock.
 * Entries point into the IP arena, which is never unmapped, and an id read
 * from the table under g_lock has its STACK record in the stream already:
 * any record this thread appends later comes after it. */
#define STK_CACHE 64
struct stk_cache_ent {
    uint64_t hash;
    const uint64_t *ips; /* NULL: empty */
    uint32_t id;
    uint16_t depth, flags;
};
static __thread struct stk_cache_ent t_stk_cache[STK_CACHE]
    __attribute__((tls_model("initial-exec")));

static inline int stk_cached(const struct tm_stack *st, uint32_t *id)
{
    const struct stk_cache_ent *c = &t_stk_cache[st->hash & (STK_CACHE - 1)];
    if (c->ips && c->hash == st->hash && c->depth == st->depth && c->flags == st->flags &&
        memcmp(c->ips, st->ips, 8 * (size_t)st->depth) == 0) {
        *id = c->id;
        return 1;
    }
    return 0;
}

/* g_lock held; s is a filled slot of the table. */
static inline void stk_cache_put(const struct stk_slot *s)
{
    struct stk_cache_ent *c = &t_stk_cache[s->hash & (STK_CACHE - 1)];
    c->hash = s->hash;
    c->ips = s->ips;
    c->id = s->id;
    c->depth = s->depth;
    c->flags = s->flags;
}

/* g_lock held, room reserved. */
static uint32_t empty_stack_locked(void)
{
    if (g_empty_stack == UINT32_MAX) {
        g_empty_stack = g_next_stack++;
        commit(tm_wire_put_stack(tail(), g_empty_stack, 0, NULL, 0));
    }
    return g_empty_stack;
}

/* g_lock held, room reserved for STACK_REC_LEN(depth): inserts a stack not
 * in the table and appends its STACK record. */
static uint32_t stk_insert_locked(const struct tm_stack *st)
{
    if ((g_stk_count + 1) * 2 > g_stk_mask + 1 && stk_grow() != 0)
        return empty_stack_locked();
    if (g_ipa_left < st->depth) {
        size_t chunk = 1u << 17; /* 1 MiB of addresses */
        uint64_t *a = map_anon(chunk * 8);
        if (!a)
            return empty_stack_locked();
        g_ipa = a;
        g_ipa_left = chunk;
    }
    struct stk_slot *s = stk_probe(g_stk, g_stk_mask, st);
    memcpy(g_ipa, st->ips, 8 * (size_t)st->depth);
    s->ips = g_ipa;
    g_ipa += st->depth;
    g_ipa_left -= st->depth;
    s->hash = st->hash;
    s->depth = (uint16_t)st->depth;
    s->flags = (uint16_t)st->flags;
    s->id = g_next_stack++;
    g_stk_count++;
    commit(tm_wire_put_stack(tail(), s->id, (uint16_t)st->flags, st->ips, (uint16_t)st->depth));
    return s->id;
}

/* g_lock held.  Reserves room for a STACK of st plus extra bytes, then
 * finds or adds the stack.  Returns 0 when nothing may be appended. */
static int intern_locked(struct tm_stack *st, size_t extra, uint32_t *id)
{
    for (;;) {
        if (!reserve_locked(STACK_REC_LEN(st->depth) + extra))
            return 0;
        if (st->depth == 0) {
            *id = empty_stack_locked();
            return 1;
        }
        if (!g_stk && stk_grow() != 0) {
            *id = empty_stack_locked();
            return 1;
        }
        struct stk_slot *s = stk_probe(g_stk, g_stk_mask, st);
        if (s->ips) {
            *id = s->id;
            stk_cache_put(s);
            return 1;
        }
        if (!st->scanned && ips_unknown(st->ips, st->depth)) {
            /* A module loaded behind our back: its MODULE record must come
             * first.  Rescan without g_lock, then look again. */
            st->scanned = 1;
            lock_give();
            modules_refresh(0);
            lock_take();
            continue;
        }
        *id = stk_insert_locked(st);
        if (*id != g_empty_stack)
            stk_cache_put(stk_probe(g_stk, g_stk_mask, st));
        return 1;
    }
}

/* ---- recording ----------------------------------------------------------------- */
/* Captures the caller's stack before any lock (unwinding may take the
 * loader's lock), then takes the event lock and makes room for a record of
 * len bytes, after the stack's STACK record when the stack is new.  Returns 1
 * with *id set when there is room; the lock is held either way.  The hook's
 * own frames, this one included, are skipped by address in stack_capture. */
static int begin_stacked_event(size_t len, uint32_t *id)
{
    unsigned cap = g_frames + SLACK;
    uint64_t buf[cap];
    struct tm_stack st;
    stack_capture(buf, cap, &st);
    int cached = stk_cached(&st, id);
    lock_take();
    return cached ? reserve_locked(len) : intern_locked(&st, len, id);
}

void tm_hook_on_alloc(uint8_t kind, uint64_t ptr, uint64_t size)
{
    int e = errno;
    uint32_t id;
    if (begin_stacked_event(TM_WIRE_ALLOC_LEN, &id))
        commit(tm_wire_put_alloc(tail(), id, kind, ptr, size));
    fold_nested_locked();
    lock_give();
    errno = e;
}

void tm_hook_on_free(uint64_t ptr, uint8_t kind)
{
    int e = errno;
    lock_take();
    if (reserve_locked(TM_WIRE_FREE_LEN))
        commit(tm_wire_put_free(tail(), ptr, kind));
    fold_nested_locked();
    lock_give();
    errno = e;
}

void tm_hook_on_realloc(uint64_t old_ptr, uint64_t new_ptr, uint64_t size)
{
    int e = errno;
    uint32_t id;
    if (begin_stacked_event(TM_WIRE_REALLOC_LEN, &id))
        commit(tm_wire_put_realloc(tail(), id, old_ptr, new_ptr, size));
    fold_nested_locked();
    lock_give();
    errno = e;
}

void tm_hook_on_realloc_failed(uint64_t old_ptr)
{
    int e = errno;
    lock_take();
    if (reserve_locked(TM_WIRE_REALLOC_FAILED_LEN))
        commit(tm_wire_put_realloc_failed(tail(), old_ptr));
    fold_nested_locked();
    lock_give();
    errno = e;
}

void tm_hook_count_lost(void)
{
    __atomic_add_fetch(&g_lost, 1, __ATOMIC_RELAXED);
}

/* ---- libunwind's descriptors -------------------------------------------------
 * libunwind 1.6.2 validates addresses it is unsure of through a pipe
 * (src/x86_64/Ginit.c): tdep_init_mem_validate(), run once by tdep_init()
 * on the first unw_init_local() (our warm-up unw_backtrace in the
 * constructor, not at dlopen), does pipe2(O_CLOEXEC | O_NONBLOCK) into a
 * static int mem_validate_pipe[2].  Each validation (the frame-chain
 * fallback of unw_step when a frame has no DWARF, GUESSED frames in
 * unw_backtrace's fast trace; the mark is sticky for the rest of that
 * stack) read()s one byte from [0], then writes one byte at the address into
 * [1] with syscall(SYS_write).  When that read fails with anything but
 * EAGAIN (EBADF: closed behind its back) it close()s both numbers, whatever
 * they are now, and opens a new pipe on the lowest free ones.  It keeps the
 * numbers forever: they cannot be moved.  So:
 *  - the constructor makes them land high, next to ours: while libunwind
 *    initialises, every free number below UNW_FILL_TOP is taken by a
 *    throw-away dup (fill_low), then given back;
 *  - the new descriptors seen after the warm-up are libunwind's
 *    (g_unw_fds); the close family steps around them like ours, so that
 *    closefrom(3) leaves them alone instead of handing their numbers to the
 *    target's next files (which libunwind would then read from and write
 *    into, or close);
 *  - a dup2/dup3 onto one of them cannot move it: libunwind is retired
 *    (never called again, stacks come from libgcc's unwinder loaded as a
 *    standby) and the number is the target's.  A stack being unwound by
 *    libunwind in another thread at that very moment may still validate
 *    through the old number once. */
#define UNW_FDS_MAX 4
#define UNW_FILL_TOP 500
#define FD_PROBE_MAX 1024
static int g_unw_fds[UNW_FDS_MAX] = {-1, -1, -1, -1};

/* Takes every free descriptor below UNW_FILL_TOP with a dup of src, marking
 * them in filled.  Returns 0 (nothing taken) when RLIMIT_NOFILE is too low
 * for the trick: the fillers would use up the target's table, and nothing
 * could land above UNW_FILL_TOP anyway (ours stay low too then, see
 * move_fd_high); libunwind's pipe then takes the lowest free numbers, the
 * close family still protects them and the target's first files are
 * shifted by two. */
static int fill_low(uint64_t filled[UNW_FILL_TOP / 64 + 1], int src)
{
    struct rlimit rl;
    if (src < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
        (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < UNW_FILL_TOP + 64))
        return 0;
    for (;;) {
        int f = fcntl(src, F_DUPFD_CLOEXEC, 0); /* the lowest free number */
        if (f < 0)
            break;
        if (f >= UNW_FILL_TOP) {
            tm_hook_sys_close(f);
            break;
        }
        filled[f / 64] |= 1ull << (f % 64);
    }
    return 1;
}

static void unfill_low(const uint64_t filled[UNW_FILL_TOP / 64 + 1])
{
    for (int f = 0; f < UNW_FILL_TOP; f++)
        if (filled[f / 64] >> (f % 64) & 1)
            tm_hook_sys_close(f);
}

/* The open descriptors below FD_PROBE_MAX (no allocation). */
static void fds_probe(uint64_t map[FD_PROBE_MAX / 64])
{
    for (int i = 0; i < FD_PROBE_MAX / 64; i++)
        map[i] = 0;
    for (int f = 0; f < FD_PROBE_MAX; f++)
        if (fcntl(f, F_GETFD) >= 0)
            map[f / 64] |= 1ull << (f % 64);
}

/* fd, one of libunwind's, is about to become the target's (g_send_lock
 * held). */
static void unw_retire_locked(int fd)
{
    int hit = 0;
    for (int i = 0; i < UNW_FDS_MAX; i++)
        hit |= __atomic_load_n(&g_unw_fds[i], __ATOMIC_RELAXED) == fd;
    if (!hit)
        return;
    __atomic_store_n(&g_unw, NULL, __ATOMIC_RELEASE);
    for (int i = 0; i < UNW_FDS_MAX; i++)
        __atomic_store_n(&g_unw_fds[i], -1, __ATOMIC_RELAXED);
}

/* ---- the hook's descriptors ----------------------------------------------------
 * Targets close what they did not open (closefrom(3), daemons) and dup2
 * their own files over any number.  The interposed close and dup2 families
 * (hook.c) step around our two descriptors and libunwind's: a close of one
 * of them is ignored, a dup2 onto one moves ours out of the way first (or
 * retires libunwind).  What they
 * cannot see (a raw syscall) is caught by the check before each flush. */
int tm_hook_own_fds(int fds[TM_HOOK_OWN_FDS_MAX])
{
    if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON || tm_hook_tls.guard ||
        !__atomic_load_n(&g_chan_ok, __ATOMIC_ACQUIRE))
        return 0;
    int all[2 + UNW_FDS_MAX];
    all[0] = __atomic_load_n(&g_fd, __ATOMIC_RELAXED);
    all[1] = __atomic_load_n(&g_statm_fd, __ATOMIC_RELAXED);
    for (int i = 0; i < UNW_FDS_MAX; i++)
        all[2 + i] = __atomic_load_n(&g_unw_fds[i], __ATOMIC_RELAXED);
    int n = 0;
    for (int i = 0; i < 2 + UNW_FDS_MAX; i++) {
        int v = all[i];
        if (v < 0)
            continue;
        int j = n++; /* insertion: ascending */
        for (; j > 0 && fds[j - 1] > v; j--)
            fds[j] = fds[j - 1];
        fds[j] = v;
    }
    return n;
}

int tm_hook_fd_owner(void)
{
    /* A vfork child shares our memory but not our descriptor table. */
    return getpid() == g_pid;
}

int tm_hook_fd_evict(int fd)
{
    int e = errno;
    tm_hook_tls.guard++;
    pthread_mutex_lock(&g_send_lock);
    int *slot = fd == g_fd ? &g_fd : fd == g_statm_fd ? &g_statm_fd : NULL;
    int r = -1;
    if (slot) {
        /* Near the top of the table, where programs rarely aim. */
        struct rlimit rl;
        int base = 500;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur > 1024 + 256)
            base = (int)(rl.rlim_cur > INT_MAX ? INT_MAX : rl.rlim_cur) - 256;
        int moved = fcntl(fd, F_DUPFD_CLOEXEC, base);
        if (moved < 0)
            moved = fcntl(fd, F_DUPFD_CLOEXEC, 500);
        if (moved >= 0) {
            tm_hook_sys_close(fd);
            __atomic_store_n(slot, moved, __ATOMIC_RELAXED);
            r = 0;
        }
    } else {
        unw_retire_locked(fd);
        r = 0; /* libunwind's (retired now), or ours moved meanwhile */
    }
    pthread_mutex_unlock(&g_send_lock);
    tm_hook_tls.guard--;
    errno = e;
    return r;
}

/* ---- exec and fork ----------------------------------------------------------- */
void tm_hook_before_exec(const char *path)
{
    if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON || tm_hook_tls.guard)
        return;
    int e = errno;
    /* A vfork child shares our memory: the stream is its parent's. */
    if (getpid() != g_pid) {
        errno = e;
        return;
    }
    tm_hook_tls.guard++;
    lock_take();
    if (reserve_locked(TM_WIRE_EXEC_MAX))
        commit(tm_wire_put_exec(tail(), path ? path : ""));
    fold_nested_locked();
    flush_locked();
    lock_give();
    tm_hook_tls.guard--;
    errno = e;
}

void tm_hook_after_fork(int child_pid)
{
    if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON)
        return;
    int e = errno;
    lock_take();
    if (reserve_locked(6))
        commit(tm_wire_put_fork(tail(), (uint32_t)child_pid));
    lock_give();
    errno = e;
}

static int g_fork_held;   /* fork_prepare took g_lock and g_send_lock */
static int g_fork_follow; /* and the loader's lock is not ours to fear: follow */

static int channel_open(void);
static int send_hello(void);
static void start_timer(void);

static void fork_prepare(void)
{
    /* A fork from a signal handler that interrupted the hook in this thread
     * must not wait for the locks this thread holds; the child is switched
     * off without them all the same. */
    int inside = tm_hook_tls.guard != 0;
    tm_hook_tls.guard++;
    if (inside || __atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON)
        return;
    int e = errno;
    /* Before our locks: a counted call may be waiting for g_lock's holder. */
    g_fork_follow = g_follow && dl_quiesce();
    g_fork_tid = (pid_t)gettid();
    lock_take();
    pthread_mutex_lock(&g_send_lock);
    send_buf(&g_buf[g_cur]); /* the other buffer is empty: g_send_lock */
    g_fork_held = 1;
    errno = e;
}

static void fork_parent(void)
{
    __atomic_store_n(&g_dl_gate, 0, __ATOMIC_RELEASE);
    if (g_fork_held) {
        g_fork_held = 0;
        pthread_mutex_unlock(&g_send_lock);
        lock_give();
    }
    tm_hook_tls.guard--;
}

/* ---- following a forked child (TMTOP_FOLLOW) ----------------------------------
 * The child starts a stream of its own: a new connection, HELLO with its
 * pid and its parent's, stack ids from 0 again, every module re-sent, its
 * own timer thread.  Its blocks inherited from the parent are in no stream
 * of its own: its frees of them are unknown frees in its report (and the
 * parent's report still counts them live in the parent, as they are).
 * Run from the atfork child handler of a process that may have had other
 * threads: nothing here may malloc or wait for a lock another thread of the
 * parent could have held.  g_lock, g_send_lock and g_scan_lock were reset
 * by the caller; what was half-done by another thread at the fork (a module
 * scan's staging area) is dropped, not reused.  Two calls go beyond
 * async-signal-safety: dl_iterate_phdr (the module scan; the loader's lock
 * is known to be free, see "the loader's lock across a followed fork") and
 * pthread_create for the timer (supported by glibc in the child; its own
 * allocations pass through the hook, whose guard is set here).  libunwind
 * is left to the parent: its global cache lock may have been held by
 * another thread at the fork, so the child unwinds with libgcc's unwinder
 * (warmed by the parent) when it has it. */
static void follow_child(void)
{
    g_pid = getpid();
    g_cur = 0;
    g_ended = 0;
    g_lost_said = 0;
    g_stop = 0;
    g_nested_total = 0;
    __atomic_store_n(&g_lost, 0, __ATOMIC_RELAXED);
    tm_hook_tls.nested = 0;
    /* Stacks: ids restart at 0 in the new stream. */
    if (g_stk)
        munmap(g_stk, (g_stk_mask + 1) * sizeof *g_stk);
    g_stk = NULL;
    g_stk_mask = g_stk_count = 0;
    g_next_stack = 0;
    g_empty_stack = UINT32_MAX;
    memset(t_stk_cache, 0, sizeof t_stk_cache); /* the only thread left */
    /* Modules: all forgotten, so that the scan below sends them again. */
    memset(g_mods, 0, __atomic_load_n(&g_mods_n, __ATOMIC_RELAXED) * sizeof *g_mods);
    __atomic_store_n(&g_mods_n, 0, __ATOMIC_RELAXED);
    g_next_mod = 0;
    g_adds = g_subs = 0;
    g_scanned_once = 0;
    g_stage = NULL; /* possibly mid-mremap in another thread: leaked */
    g_stage_len = g_stage_cap = 0;
    /* /proc/self/statm was resolved to the parent when it was opened. */
    if (g_statm_fd >= 0)
        tm_hook_sys_close(g_statm_fd);
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    g_statm_fd = fd >= 0 ? move_fd_high(fd) : -1;
    if (__atomic_load_n(&g_uwbt, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&g_unw, NULL, __ATOMIC_RELEASE);
        for (int i = 0; i < UNW_FDS_MAX; i++)
            __atomic_store_n(&g_unw_fds[i], -1, __ATOMIC_RELAXED);
    }

    if (channel_open() != 0)
        return; /* stays off, like an unfollowed child */
    __atomic_store_n(&g_chan_ok, 1, __ATOMIC_RELEASE);
    if (!send_hello())
        return;
    modules_refresh(1);
    g_finished = 0; /* the inherited atexit handler sends END */
    __atomic_store_n(&tm_hook_state, TM_HOOK_ON, __ATOMIC_RELEASE);
    if (g_flush_ms)
        start_timer();
    lock_take();
    flush_locked();
    lock_give();
}

static void fork_child(void)
{
    int e = errno;
    /* Followed only when the parent was recording and fork_prepare holds
     * the locks (not a fork from a signal handler inside the hook). */
    int follow = g_fork_follow && g_fork_held && !loader_lock_dead();
    g_fork_follow = 0;
    /* The only thread: whatever its parent's threads were doing with the
     * loader, none of it was ours (dl_quiesce). */
    __atomic_store_n(&g_dl_gate, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_dl_users, 0, __ATOMIC_RELAXED);
    t_dl_depth = 0;
    /* The child never writes a byte into its parent's stream. */
    __atomic_store_n(&tm_hook_state, TM_HOOK_OFF, __ATOMIC_RELEASE);
    __atomic_store_n(&g_chan_ok, 0, __ATOMIC_RELEASE);
    g_finished = 1;
    g_fork_held = 0;
    __atomic_store_n(&g_lock_word, 0, __ATOMIC_RELAXED);
    pthread_mutex_init(&g_send_lock, NULL);
    pthread_mutex_init(&g_scan_lock, NULL);
    g_buf[0].len = g_buf[1].len = 0;
    /* Our copy of the socket only, and only if it is still ours; shutdown()
     * would cut the parent's connection too. */
    if (fd_is_ours())
        tm_hook_sys_close(g_fd);
    g_fd = -1;
    if (follow)
        follow_child();
    tm_hook_tls.guard--;
    errno = e;
}

/* ---- timer thread ---------------------------------------------------------------- */
static uint64_t read_rss(void)
{
    char b[128];
    pthread_mutex_lock(&g_send_lock); /* tm_hook_fd_evict may be moving it */
    ssize_t n = g_statm_fd >= 0 ? pread(g_statm_fd, b, sizeof b - 1, 0) : -1;
    pthread_mutex_unlock(&g_send_lock);
    if (n <= 0)
        return 0;
    b[n] = 0;
    const char *p = b;
    while (*p && *p != ' ') /* size */
        p++;
    while (*p == ' ')
        p++;
    uint64_t pages = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        pages = pages * 10 + (uint64_t)(*p - '0');
    return pages * (uint64_t)g_page;
}

static void *timer_main(void *arg)
{
    (void)arg;
    tm_hook_tls.guard = 1; /* for good: this thread is the hook's */
    struct timespec ts = {(time_t)(g_flush_ms / 1000), (long)(g_flush_ms % 1000) * 1000000L};
    for (;;) {
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        if (__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON)
            break;
        modules_refresh(0);
        uint64_t now = mono_ns(), rss = read_rss();
        lock_take();
        if (reserve_locked(TM_WIRE_TICK_LEN))
            commit(tm_wire_put_tick(tail(), now, rss));
        flush_locked();
        lock_give();
    }
    return NULL;
}

static void start_timer(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits "all blocked" */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t t;
    pthread_create(&t, &attr, timer_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- start ------------------------------------------------------------------------ */
/* Connects to g_addr and makes the socket g_fd.  Only system calls: also run
 * in a forked child (fork_child). */
static int channel_open(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int r;
    do
        r = connect(fd, (const struct sockaddr *)&g_addr, g_alen);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        tm_hook_sys_close(fd);
        return -1;
    }
    fd = move_fd_high(fd);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        tm_hook_sys_close(fd);
        return -1;
    }
    g_dev = st.st_dev;
    g_ino = st.st_ino;
    g_fd = fd;
    return 0;
}

/* Appends and sends the preamble and HELLO (g_chan_ok set, buffers empty).
 * Returns whether the channel still works. */
static int send_hello(void)
{
    lock_take();
    commit(tm_wire_put_preamble(tail()));
    commit(tm_wire_put_hello(tail(), (uint32_t)g_pid, (uint32_t)getppid(), g_token, mono_ns(), 0,
                             (uint16_t)g_frames, g_exe));
    flush_locked();
    lock_give();
    return __atomic_load_n(&g_chan_ok, __ATOMIC_ACQUIRE);
}

static int start_core(void)
{
    tm_hook_resolve();
    const char *sock = getenv(TM_ENV_SOCK);
    if (!sock)
        return 0;
    g_launched = 1;
    struct sockaddr_un a;
    size_t len = strlen(sock);
    if (len == 0 || len > sizeof a.sun_path - 1)
        return 0;
    g_token = parse_hex64(getenv(TM_ENV_TOKEN));
    g_frames = parse_uint(getenv(TM_ENV_FRAMES), TM_DEFAULT_FRAMES, TM_MAX_FRAMES);
    if (g_frames < 1)
        g_frames = 1;
    g_flush_ms = parse_uint(getenv(TM_ENV_FLUSH_MS), 10, 60000);
    g_pid = getpid();
    long pg = sysconf(_SC_PAGESIZE);
    if (pg > 0)
        g_page = pg;

    const char *follow = getenv(TM_ENV_FOLLOW);
    g_follow = follow && follow[0] == '1' && !follow[1];

    /* The abstract name is the address length's business: no NUL at the end. */
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path + 1, sock, len);
    g_addr = a;
    g_alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    uint8_t *bufs = map_anon(2 * BUF_SIZE);
    g_mods = map_anon(MOD_CAP * sizeof *g_mods);
    if (!bufs || !g_mods || channel_open() != 0)
        return 0;
    g_buf[0].data = bufs;
    g_buf[1].data = bufs + BUF_SIZE;
    ssize_t n = readlink("/proc/self/exe", g_exe, sizeof g_exe - 1);
    if (n > 0) {
        g_exe[n] = 0;
    } else {
        extern char *program_invocation_name;
        strncpy(g_exe, program_invocation_name ? program_invocation_name : "?", sizeof g_exe - 1);
    }
    __atomic_store_n(&g_chan_ok, 1, __ATOMIC_RELEASE);
    return send_hello();
}

void tm_hook_start(void)
{
    int expect = TM_HOOK_UNINIT;
    if (!__atomic_compare_exchange_n(&tm_hook_state, &expect, TM_HOOK_STARTING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        if (expect == TM_HOOK_STARTING)
            tm_hook_count_lost();
        return;
    }
    int e = errno;
    tm_hook_tls.guard++;
    int ok = start_core();
    __atomic_store_n(&tm_hook_state, ok ? TM_HOOK_ON : TM_HOOK_OFF, __ATOMIC_RELEASE);
    tm_hook_tls.guard--;
    errno = e;
}

/* ---- the environment of exec'd programs ------------------------------------------
 * Done in place, without malloc: our entry leaves LD_PRELOAD (the others
 * keep their order), the variable goes when nothing is left, and the
 * TMTOP_* variables go (unsetenv only moves pointers). */
static int is_hook_entry(const char *s, size_t n)
{
    size_t k = sizeof TM_HOOK_NAME - 1;
    if (n < k || memcmp(s + n - k, TM_HOOK_NAME, k) != 0)
        return 0;
    return n == k || s[n - k - 1] == '/';
}

static void env_cleanup(void)
{
    int emptied = 0;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            continue;
        char *w = *e + 11;
        const char *r = w;
        int kept = 0, removed = 0;
        while (*r) {
            while (*r == ':' || *r == ' ')
                r++;
            if (!*r)
                break;
            const char *s = r;
            while (*r && *r != ':' && *r != ' ')
                r++;
            size_t n = (size_t)(r - s);
            if (is_hook_entry(s, n)) {
                removed = 1;
                continue;
            }
            if (kept)
                *w++ = ':';
            memmove(w, s, n); /* w <= s: the value only shrinks */
            w += n;
            kept++;
        }
        if (removed) {
            *w = 0;
            if (!kept)
                emptied = 1;
        }
    }
    if (emptied)
        unsetenv("LD_PRELOAD");
    unsetenv(TM_ENV_SOCK);
    unsetenv(TM_ENV_TOKEN);
    unsetenv(TM_ENV_FRAMES);
    unsetenv(TM_ENV_FLUSH_MS);
    /* Even when following: a forked child keeps the setting in memory, and
     * exec'd programs run untraced. */
    unsetenv(TM_ENV_FOLLOW);
}

static _Unwind_Reason_Code uw_warm_cb(struct _Unwind_Context *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return _URC_END_OF_STACK;
}

static void load_unwinder(void)
{
    if (!tm_real.dlopen)
        return;
    /* Fillers from the dlopen to after the warm-up (see "libunwind's
     * descriptors"); what is open after and was not before is libunwind's. */
    uint64_t filled[UNW_FILL_TOP / 64 + 1] = {0};
    uint64_t before[FD_PROBE_MAX / 64], after[FD_PROBE_MAX / 64];
    int src = g_statm_fd >= 0 ? g_statm_fd : g_fd;
    int filling = fill_low(filled, src);
    fds_probe(before);
    void *h = tm_real.dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    unw_backtrace_fn f = h ? (unw_backtrace_fn)dlsym(h, "unw_backtrace") : NULL;
    int unw_ok = 0;
    if (f) {
        /* Initialises libunwind (its pipe) and warms its cache for this
         * thread. */
        void *probe[8];
        unw_ok = f(probe, 8) > 0;
    }
    fds_probe(after);
    int k = 0;
    for (int fd = 0; fd < FD_PROBE_MAX && k < UNW_FDS_MAX; fd++)
        if ((after[fd / 64] & ~before[fd / 64]) >> (fd % 64) & 1)
            g_unw_fds[k++] = fd;
    if (filling)
        unfill_low(filled);
    /* libgcc's unwinder: the one used without libunwind, the standby once
     * libunwind is retired.  Warmed now (its first use allocates). */
    h = tm_real.dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_LOCAL);
    uw_getip_fn ip = h ? (uw_getip_fn)dlsym(h, "_Unwind_GetIP") : NULL;
    uw_backtrace_fn bt = h ? (uw_backtrace_fn)dlsym(h, "_Unwind_Backtrace") : NULL;
    if (ip && bt) {
        bt(uw_warm_cb, NULL);
        g_uwip = ip;
        __atomic_store_n(&g_uwbt, bt, __ATOMIC_RELEASE);
    }
    if (unw_ok)
        __atomic_store_n(&g_unw, f, __ATOMIC_RELEASE);
    (void)dlerror();
}

static void finish_atexit(void)
{
    tm_hook_finish();
}

void tm_hook_constructor(void)
{
    int e = errno;
    if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) == TM_HOOK_UNINIT)
        tm_hook_start();
    tm_hook_tls.guard++;
    if (g_launched)
        env_cleanup();
    if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) == TM_HOOK_ON) {
        int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        g_statm_fd = fd >= 0 ? move_fd_high(fd) : -1;
        modules_refresh(1);
        load_unwinder();
        modules_refresh(0); /* libunwind and what it pulled in */
        if (g_follow)
            loader_lock_find();
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        /* Registered now, so it runs after the handlers the program
         * registers later and after its C++ static destructors. */
        atexit(finish_atexit);
        if (g_flush_ms)
            start_timer();
        lock_take();
        flush_locked();
        lock_give();
    }
    tm_hook_tls.guard--;
    errno = e;
}

/* ---- exit ----------------------------------------------------------------------- */
void tm_hook_finish(void)
{
    /* exit() from a signal handler that interrupted the hook in this thread:
     * the locks may be ours, so no END (the stream ends at EOF). */
    if (tm_hook_tls.guard)
        return;
    if (__atomic_exchange_n(&g_finished, 1, __ATOMIC_ACQ_REL))
        return;
    if (__atomic_load_n(&tm_hook_state, __ATOMIC_ACQUIRE) != TM_HOOK_ON || getpid() != g_pid)
        return;
    int e = errno;
    /* libstdc++'s emergency exception pool would show as a leak: free it
     * while its free() is still recorded. */
    tm_hook_tls.guard++;
    void (*freeres)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
    if (!freeres)
        (void)dlerror();
    tm_hook_tls.guard--;
    if (freeres && !tm_hook_tls.guard)
        freeres();

    tm_hook_tls.guard++;
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
    lock_take();
    fold_nested_locked();
    if (reserve_locked(TM_WIRE_END_LEN))
        commit(tm_wire_put_end(tail(), TM_END_EXIT, 0, g_nested_total,
                               __atomic_load_n(&g_lost, __ATOMIC_RELAXED)));
    g_ended = 1; /* nothing after END */
    __atomic_store_n(&tm_hook_state, TM_HOOK_OFF, __ATOMIC_RELEASE);
    flush_locked();
    lock_give();
    pthread_mutex_lock(&g_send_lock);
    if (__atomic_load_n(&g_chan_ok, __ATOMIC_ACQUIRE) && fd_is_ours()) {
        shutdown(g_fd, SHUT_RDWR);
        tm_hook_sys_close(g_fd);
    }
    g_fd = -1;
    __atomic_store_n(&g_chan_ok, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_send_lock);
    tm_hook_tls.guard--;
    errno = e;
}
