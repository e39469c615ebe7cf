/* hook_core.c - the machinery behind the interposed functions of
 * libtmtop-hook.so: resolution of the real functions, the bootstrap arena,
 * the trace channel and its buffer, stack capture and dedup, module records,
 * the timer thread, fork and exit.
 *
 * Nothing here calls malloc or stdio: memory comes from mmap or static
 * storage.  Locks, always taken in this order (a thread holding one never
 * waits for an earlier one):
 *   g_merge_lock (the merger: per-thread rings -> wire stream)
 *   the loader's dl_load_write_lock (held inside dl_iterate_phdr callbacks)
 *     -> g_scan_lock (module table; only ever taken inside such a callback)
 *       -> g_lock (shared buffer, stack table)
 *         -> g_send_lock (the socket)
 * g_merge_lock is never taken with any of the others held.  Allocation
 * events themselves take no lock: they go to the thread's own ring (see
 * "the event stream").
 * Stacks are captured before g_lock is taken: the unwinder may take the
 * loader's lock, and a thread inside dlopen holding it may be waiting for
 * g_lock in its own malloc. */
#include "hook_internal.h"
#include "hook_walk.h"

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
#include <linux/membarrier.h>
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

/* ---- the event stream ------------------------------------------------------
 * Allocation events (ALLOC, FREE, REALLOC, REALLOC_FAILED) go into a ring of
 * the calling thread's own: no lock, no cache line written by another
 * thread on the hot path.  Everything else (STACK, MODULE, TICK, FORK, EXEC,
 * END, the preamble and HELLO, and the events of a thread without a ring)
 * is appended to the shared buffer under g_lock.  Every entry carries a
 * stamp.  The merger (the timer thread when a ring is half full or the
 * flush interval passed; a thread whose ring is full; exec and exit) takes
 * g_merge_lock and interleaves the entries by stamp into the wire stream,
 * up to a watermark below which no entry can still appear.
 *
 * Why the order is exact.  Stamps come from the TSC when the kernel's
 * clocksource is "tsc" (it checked that the CPUs' counters agree), else
 * from a global counter.  A FREE (and realloc's FREE_REALLOC_PRE) is
 * stamped before the real free() runs and an ALLOC (and realloc's
 * completion) after the real malloc() returned, so when one thread's freed
 * block comes back from another thread's malloc, the FREE's stamp is the
 * smaller: the same order the single lock used to give.  A STACK (and the
 * MODULEs before it) is stamped under g_lock before its id can be used, and
 * the event using it is stamped after.
 *
 * The watermark.  A thread sets its ring's busy flag before it takes a
 * stamp and clears it after the entry is published.  The merger reads a
 * stamp T0 under g_lock (later shared entries stamp above it), makes every
 * thread's earlier stores visible with membarrier(2) (or, where that is
 * missing, the threads publish busy with a full barrier), then reads the
 * flags: a thread not busy at that point takes any later stamp above T0; a
 * busy one stamps at least its ring's last stamp.  Everything below the
 * smallest of these is final.
 *
 * Ends.  END is stamped under g_lock and marks the stream ended: the
 * merger drops ring entries stamped after it.  exec and exit drain
 * everything stamped before the call.  A forked child drops every entry of
 * its parent. */
#define OUT_SIZE (64 * 1024)
struct tm_buf {
    uint8_t *data;
    size_t len;
};
static struct tm_buf g_out; /* the merger's output (g_merge_lock) */
static pthread_mutex_t g_merge_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_send_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_scan_lock = PTHREAD_MUTEX_INITIALIZER;

/* g_lock: the shared buffer's and the stack table's lock.  A futex lock (0
 * free, 1 held, 2 held with sleepers) that spins briefly first: the critical
 * sections are short.  Alone on its cache line, so that spinners do not
 * steal unrelated data. */
static union {
    int word;
    char line[64];
} g_lock_u __attribute__((aligned(64)));
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

/* ---- stamps ---- */
static int g_tsc;  /* stamps are TSC readings (set once, before any stamp) */
static int g_asym; /* membarrier(PRIVATE_EXPEDITED) is registered */
static union {
    uint64_t v;
    char line[64];
} g_ctr_u __attribute__((aligned(64)));

static inline uint64_t stamp_now(void)
{
#if defined(__x86_64__)
    if (TM_LIKELY(g_tsc)) {
        /* lfence: the earlier loads (the real malloc's view of the heap)
         * are done before the counter is read. */
        __builtin_ia32_lfence();
        return __builtin_ia32_rdtsc();
    }
#endif
    return __atomic_add_fetch(&g_ctr_u.v, 1, __ATOMIC_SEQ_CST);
}

/* The stamp of a ring event, without stamp_now()'s lfence.  A FREE needs
 * its stamp read before the real free() publishes the block: rdtsc is read
 * before it retires, and the stores of free() become visible only after
 * they retire.  An ALLOC needs its stamp read after the real malloc()'s
 * loads: between the two lies the whole stack capture (an unwinder walk,
 * far more instructions than the reorder buffer holds), so those loads
 * retired before rdtsc could even be issued. */
static inline uint64_t stamp_event(void)
{
#if defined(__x86_64__)
    if (TM_LIKELY(g_tsc))
        return __builtin_ia32_rdtsc();
#endif
    return __atomic_add_fetch(&g_ctr_u.v, 1, __ATOMIC_SEQ_CST);
}

/* Chooses the stamp source and the barrier (start, and a followed child). */
static void stamps_init(void)
{
#if defined(__x86_64__)
    char b[32] = {0};
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, b, sizeof b - 1);
        tm_hook_sys_close(fd);
        g_tsc = n >= 3 && memcmp(b, "tsc", 3) == 0 && (n == 3 || b[3] == '\n');
    }
#endif
    const char *force = getenv("TMTOP_HOOK_STAMPS"); /* tests: "counter" */
    if (force && strcmp(force, "counter") == 0)
        g_tsc = 0;
    g_asym = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

/* ---- the shared buffer (g_lock) ----
 * Entries: u64 stamp, u32 length, then that many bytes of wire records. */
#define SH_HDR 12
static uint8_t *g_sh;
static size_t g_sh_len, g_sh_cap;
static uint64_t g_sh_stamp;  /* stamp of the last entry committed */
static uint64_t g_end_stamp; /* END's stamp (g_lock): entries after it are dropped */
static uint64_t g_hold;      /* (g_lock) an exec is under way: nothing stamped from here on
                                goes out unless it fails (tm_hook_after_exec) */

/* Grows *buf (an mmap'd area of *cap bytes) to hold need bytes. */
static int area_grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 1;
    size_t n = *cap ? *cap : 256 * 1024;
    while (n < need)
        n *= 2;
    void *p = *buf ? mremap(*buf, *cap, n, MREMAP_MAYMOVE) : map_anon(n);
    if (!p || p == MAP_FAILED)
        return 0;
    *buf = p;
    *cap = n;
    return 1;
}

/* g_lock held.  Makes room for a record of need bytes; 0 if nothing may be
 * appended (the stream ended, the channel is gone, no memory). */
static int reserve_locked(size_t need)
{
    if (g_ended || !__atomic_load_n(&g_chan_ok, __ATOMIC_ACQUIRE))
        return 0;
    return area_grow(&g_sh, &g_sh_cap, g_sh_len + SH_HDR + need);
}

static inline uint8_t *tail(void)
{
    return g_sh + g_sh_len + SH_HDR;
}

/* g_lock held: stamps and appends the n bytes written at tail(). */
static void commit(size_t n)
{
    uint8_t *h = g_sh + g_sh_len;
    uint64_t s = stamp_now();
    uint32_t len = (uint32_t)n;
    memcpy(h, &s, 8);
    memcpy(h + 8, &len, 4);
    g_sh_len += SH_HDR + n;
    g_sh_stamp = s;
}

static inline void fold_nested(void)
{
    if (TM_UNLIKELY(tm_hook_tls.nested)) {
        __atomic_add_fetch(&g_nested_total, tm_hook_tls.nested, __ATOMIC_RELAXED);
        tm_hook_tls.nested = 0;
    }
}

/* ---- per-thread rings ---- */
#define RING_SLOTS 2048 /* a power of two */
#define RING_MAX 64     /* threads beyond this many use the shared buffer */
#define EV_MAX 31       /* the largest allocation event, REALLOC, is 30 bytes */
struct ring_slot {
    uint64_t stamp;
    uint8_t len;
    uint8_t rec[EV_MAX];
};
_Static_assert(TM_WIRE_REALLOC_LEN <= EV_MAX && TM_WIRE_ALLOC_LEN <= EV_MAX, "slot too small");
enum { RING_FREE, RING_LIVE, RING_DEAD };
struct tm_ring { // NOLINT(clang-analyzer-optin.performance.Padding): lines kept apart on purpose
    /* the owner's line */
    uint64_t head; /* slots published (release) */
    uint64_t last; /* stamp of the last slot published */
    uint64_t seen; /* tail as the owner last read it: the owner reads the
                      merger's line only when this says half full */
    int busy;      /* between taking a stamp and publishing its slot */
    /* the merger's line */
    _Alignas(64) uint64_t tail; /* slots consumed (release) */
    uint64_t snap;              /* head as the merger saw it this round */
    uint64_t pos;               /* the merger's position this round */
    struct tm_ring *next;       /* the registry: append-only */
    int state;                  /* RING_*: DEAD when its thread exited */
    _Alignas(64) struct ring_slot slots[RING_SLOTS];
};
static struct tm_ring *g_rings; /* registry head (atomic) */
static unsigned g_rings_n;
static pthread_key_t g_ring_key;
static int g_ring_key_ok;
static __thread struct tm_ring *t_ring __attribute__((tls_model("initial-exec")));
static __thread int t_ring_gone __attribute__((tls_model("initial-exec")));

static void merge_now(int flush);
static uint64_t merge_round(int force, int flush);

/* The key's destructor, at the thread's exit: the merger frees the ring
 * once it is drained.  What the exiting thread allocates afterwards goes to
 * the shared buffer. */
static void ring_detach(void *p)
{
    struct tm_ring *r = p;
    t_ring = NULL;
    t_ring_gone = 1;
    if (r)
        __atomic_store_n(&r->state, RING_DEAD, __ATOMIC_RELEASE);
}

static __attribute__((noinline)) struct tm_ring *ring_attach(void)
{
    if (t_ring_gone || !g_ring_key_ok)
        return NULL;
    struct tm_ring *r;
    for (r = __atomic_load_n(&g_rings, __ATOMIC_ACQUIRE); r; r = r->next) {
        int s = RING_FREE;
        if (__atomic_load_n(&r->state, __ATOMIC_RELAXED) == RING_FREE &&
            __atomic_compare_exchange_n(&r->state, &s, RING_LIVE, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            goto got;
    }
    if (__atomic_add_fetch(&g_rings_n, 1, __ATOMIC_RELAXED) > RING_MAX)
        return NULL; /* g_rings_n stays above the cap: no further tries */
    r = map_anon(sizeof *r);
    if (!r)
        return NULL;
    r->state = RING_LIVE;
    r->next = __atomic_load_n(&g_rings, __ATOMIC_RELAXED);
    while (
        !__atomic_compare_exchange_n(&g_rings, &r->next, r, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
got:
    t_ring = r;
    pthread_setspecific(g_ring_key, r); /* may calloc (key >= 32): passes through */
    return r;
}

static __attribute__((noinline)) void ring_full(struct tm_ring *r, uint64_t used)
{
    if (used < RING_SLOTS - 1) {
        /* Half full: merge now unless another thread is merging (then it
         * takes this ring's entries too, as far as the watermark allows). */
        if (pthread_mutex_trylock(&g_merge_lock) == 0) {
            merge_round(0, 0);
            pthread_mutex_unlock(&g_merge_lock);
            r->seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        }
        return;
    }
    /* Full: merge here, until the watermark passes enough of it. */
    while (r->head - (r->seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE)) >= RING_SLOTS - 1) {
        merge_now(0);
        if (r->head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >= RING_SLOTS - 1)
            sched_yield();
    }
}

/* The calling thread's ring with room for one slot, or NULL: use the
 * shared buffer. */
static inline struct tm_ring *ring_room(void)
{
    struct tm_ring *r = t_ring;
    if (TM_UNLIKELY(!r) && !(r = ring_attach()))
        return NULL;
    if (TM_UNLIKELY(r->head - r->seen >= RING_SLOTS / 2)) {
        r->seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
        uint64_t used = r->head - r->seen;
        if (used >= RING_SLOTS / 2)
            ring_full(r, used);
    }
    return r;
}

/* Marks the ring busy and stamps its next slot. */
static inline struct ring_slot *ring_open(struct tm_ring *r)
{
    if (TM_LIKELY(g_asym)) {
        __atomic_store_n(&r->busy, 1, __ATOMIC_RELAXED);
        __asm__ __volatile__("" ::: "memory");
    } else {
        __atomic_store_n(&r->busy, 1, __ATOMIC_SEQ_CST);
    }
    struct ring_slot *s = &r->slots[r->head & (RING_SLOTS - 1)];
    s->stamp = stamp_event();
    return s;
}

static inline void ring_close(struct tm_ring *r, const struct ring_slot *s)
{
    r->last = s->stamp;
    __atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&r->busy, 0, __ATOMIC_RELEASE);
}

/* ---- the merger (g_merge_lock) ---- */
static uint8_t *g_pend; /* shared entries moved out of g_sh, not yet merged */
static size_t g_pend_off, g_pend_len, g_pend_cap;

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

static void out_flush(void)
{
    if (!g_out.len)
        return;
    pthread_mutex_lock(&g_send_lock);
    send_buf(&g_out);
    pthread_mutex_unlock(&g_send_lock);
}

static inline void emit(const uint8_t *p, size_t n)
{
    if (TM_LIKELY(OUT_SIZE - g_out.len >= n)) {
        memcpy(g_out.data + g_out.len, p, n);
        g_out.len += n;
        return;
    }
    while (n) {
        if (g_out.len == OUT_SIZE)
            out_flush();
        size_t k = OUT_SIZE - g_out.len < n ? OUT_SIZE - g_out.len : n;
        memcpy(g_out.data + g_out.len, p, k);
        g_out.len += k;
        p += k;
        n -= k;
    }
}

/* The merger's heap of inputs (g_merge_lock): a ring, or NULL for the
 * shared entries, by the stamp of its first entry. */
struct heap_ent {
    uint64_t stamp;
    struct tm_ring *r;
};
static struct heap_ent g_heap[RING_MAX + 1];
static int g_heap_n;

static inline int heap_less(const struct heap_ent *a, const struct heap_ent *b)
{
    return a->stamp < b->stamp || (a->stamp == b->stamp && !a->r && b->r);
}

static void heap_push(uint64_t stamp, struct tm_ring *r)
{
    int i = g_heap_n++;
    struct heap_ent e = {stamp, r};
    while (i > 0 && heap_less(&e, &g_heap[(i - 1) / 2])) {
        g_heap[i] = g_heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g_heap[i] = e;
}

static struct tm_ring *heap_pop(void)
{
    struct tm_ring *top = g_heap[0].r;
    struct heap_ent e = g_heap[--g_heap_n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= g_heap_n)
            break;
        if (c + 1 < g_heap_n && heap_less(&g_heap[c + 1], &g_heap[c]))
            c++;
        if (!heap_less(&g_heap[c], &e))
            break;
        g_heap[i] = g_heap[c];
        i = c;
    }
    if (g_heap_n)
        g_heap[i] = e;
    return top;
}

/* One round: emits every entry stamped below the watermark, which it
 * returns.  force: ignore busy threads (a thread stuck for over a second).
 * flush: send what was emitted; else (a thread's ring filling up) only once
 * half of the output buffer is used: every send wakes tmtop, and in a
 * virtual machine each wakeup costs the sender tens of microseconds.  The
 * timer's round, every flush interval, sends the rest. */
static uint64_t merge_round(int force, int flush)
{
    int e = errno;
    lock_take();
    uint64_t t0 = stamp_now();
    uint64_t end = g_end_stamp, hold = g_hold;
    if (g_sh_len) {
        if (g_pend_off == g_pend_len) {
            g_pend_off = g_pend_len = 0;
        } else if (g_pend_off > g_pend_len / 2) {
            memmove(g_pend, g_pend + g_pend_off, g_pend_len - g_pend_off);
            g_pend_len -= g_pend_off;
            g_pend_off = 0;
        }
        if (area_grow(&g_pend, &g_pend_cap, g_pend_len + g_sh_len)) {
            memcpy(g_pend + g_pend_len, g_sh, g_sh_len);
            g_pend_len += g_sh_len;
        }
        g_sh_len = 0;
    }
    lock_give();
    if (g_asym)
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    else
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t w = hold && hold < t0 ? hold : t0;
    struct tm_ring *rings = __atomic_load_n(&g_rings, __ATOMIC_ACQUIRE);
    for (struct tm_ring *r = rings; r; r = r->next) {
        r->pos = r->tail;
        if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == RING_FREE) {
            r->snap = r->pos;
            continue;
        }
        if (!force && __atomic_load_n(&r->busy, __ATOMIC_ACQUIRE)) {
            uint64_t l = __atomic_load_n(&r->last, __ATOMIC_RELAXED);
            if (l < w)
                w = l;
        }
        r->snap = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
    }
    /* k-way merge over a heap of the inputs' first stamps; the shared
     * entries win ties (a STACK before its use).  The input on top gives a
     * run of entries, up to the next input's stamp: with one busy thread,
     * its whole ring at once. */
    uint64_t limit = end ? end : UINT64_MAX;
    g_heap_n = 0;
    if (g_pend_off < g_pend_len) {
        uint64_t s;
        memcpy(&s, g_pend + g_pend_off, 8);
        if (s < w)
            heap_push(s, NULL);
    }
    for (struct tm_ring *r = rings; r; r = r->next) {
        if (r->pos != r->snap && r->slots[r->pos & (RING_SLOTS - 1)].stamp < w)
            heap_push(r->slots[r->pos & (RING_SLOTS - 1)].stamp, r);
    }
    while (g_heap_n) {
        struct tm_ring *br = heap_pop();
        uint64_t next = g_heap_n ? g_heap[0].stamp : w;
        if (!br) {
            uint32_t len;
            memcpy(&len, g_pend + g_pend_off + 8, 4);
            emit(g_pend + g_pend_off + SH_HDR, len);
            g_pend_off += SH_HDR + len;
            uint64_t s;
            if (g_pend_off < g_pend_len && (memcpy(&s, g_pend + g_pend_off, 8), s < w))
                heap_push(s, NULL);
            continue;
        }
        /* The first entry goes in any case (another ring may have the same
         * stamp); then the run stops at the next input's. */
        uint64_t p = br->pos, stop = br->snap;
        do {
            const struct ring_slot *sl = &br->slots[p & (RING_SLOTS - 1)];
            if (p != br->pos && sl->stamp >= next)
                break;
            if (sl->stamp >= limit)
                continue;
            if (TM_LIKELY(OUT_SIZE - g_out.len >= EV_MAX)) {
                memcpy(g_out.data + g_out.len, sl->rec, EV_MAX); /* fixed size */
                g_out.len += sl->len;
            } else {
                emit(sl->rec, sl->len);
            }
        } while (++p != stop);
        br->pos = p;
        if (p != stop && br->slots[p & (RING_SLOTS - 1)].stamp < w)
            heap_push(br->slots[p & (RING_SLOTS - 1)].stamp, br);
    }
    /* Entries stamped after END never go out: drop them as they come. */
    for (struct tm_ring *r = rings; r; r = r->next) {
        if (end) {
            while (r->pos != r->snap && r->slots[r->pos & (RING_SLOTS - 1)].stamp > end)
                r->pos++;
        }
        if (r->pos != r->tail)
            __atomic_store_n(&r->tail, r->pos, __ATOMIC_RELEASE);
        int dead = RING_DEAD;
        if (r->tail == r->snap && !__atomic_load_n(&r->busy, __ATOMIC_ACQUIRE) &&
            __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == RING_DEAD &&
            __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == r->tail)
            __atomic_compare_exchange_n(&r->state, &dead, RING_FREE, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED);
    }
    if (flush || !g_flush_ms || g_out.len >= OUT_SIZE / 2)
        out_flush();
    errno = e;
    return w;
}

/* One round (a thread whose ring is full, the timer). */
static void merge_now(int flush)
{
    pthread_mutex_lock(&g_merge_lock);
    merge_round(0, flush);
    pthread_mutex_unlock(&g_merge_lock);
}

/* Everything stamped up to t (drain: before the call) is on the wire when
 * it returns (or the channel is gone).  Never with g_lock held. */
static void drain_until(uint64_t t)
{
    uint64_t deadline = 0;
    pthread_mutex_lock(&g_merge_lock);
    for (int force = 0;;) {
        if (merge_round(force, 1) > t || force)
            break;
        /* A busy thread holds the watermark back for the few instructions
         * of its publication; one preempted there needs a time slice. */
        uint64_t now = mono_ns();
        if (!deadline)
            deadline = now + 1000000000u;
        else if (now > deadline)
            force = 1;
        sched_yield();
    }
    pthread_mutex_unlock(&g_merge_lock);
}

static void drain(void)
{
    drain_until(stamp_now());
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

/* Four independent lanes, then one final mix: a deep stack costs about a
 * cycle per frame instead of a chain of dependent multiplies. */
static uint64_t hash_ips(const uint64_t *ips, unsigned depth, unsigned flags)
{
    const uint64_t k1 = 0xff51afd7ed558ccdull, k2 = 0xc4ceb9fe1a85ec53ull;
    uint64_t a = 0x9e3779b97f4a7c15ull ^ depth, b = 0x165667b19e3779f9ull ^ flags;
    uint64_t c = 0x27d4eb2f165667c5ull, d = 0x85ebca77c2b2ae63ull;
    unsigned i = 0;
    for (; i + 4 <= depth; i += 4) {
        a = (a ^ ips[i]) * k1;
        b = (b ^ ips[i + 1]) * k2;
        c = (c ^ ips[i + 2]) * k1;
        d = (d ^ ips[i + 3]) * k2;
    }
    for (; i < depth; i++)
        a = (a ^ ips[i]) * k1;
    uint64_t h = a ^ (b << 17 | b >> 47) ^ (c << 31 | c >> 33) ^ (d << 47 | d >> 17);
    h ^= h >> 33;
    h *= k1;
    h ^= h >> 33;
    h *= k2;
    return h ^ (h >> 33);
}

/* The library unwinders, for the stacks the own walk declines. */
static __attribute__((noinline)) unsigned stack_walk_lib(uint64_t *buf, unsigned cap)
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
    return n;
}

/* The first frame of buf[0..n) that is the caller's: after the unwinder's
 * frames, then the hook's own (whatever inlining did to their number). */
static inline unsigned skip_own(const uint64_t *buf, unsigned n)
{
    unsigned i = 0;
    while (i < n && i < SLACK && !in_self(buf[i]))
        i++;
    if (i == n || i == SLACK)
        i = 0;
    while (i < n && in_self(buf[i]))
        i++;
    return i;
}

/* TMTOP_HOOK_UNWIND: "libunwind" never uses the own walk; "check" walks
 * every stack both ways and says on stderr where they differ. */
enum { UNW_FAST, UNW_LIB, UNW_CHECK };
static int g_unw_mode = UNW_FAST;
static uint64_t g_chk_n, g_chk_bad; /* atomic */

static int g_chk_fd = 2; /* TMTOP_HOOK_UNWIND_LOG: a file to append the lines to */

static void say(const char *s)
{
    ssize_t r = write(g_chk_fd, s, strlen(s));
    (void)r;
}

static char *fmt_u64(char *p, uint64_t v, int hex)
{
    char t[24];
    int k = 0;
    do {
        t[k++] = "0123456789abcdef"[v % (hex ? 16 : 10)];
        v /= hex ? 16 : 10;
    } while (v);
    while (k)
        *p++ = t[--k];
    return p;
}

static __attribute__((noinline)) void unwind_check(const uint64_t *fast, unsigned n, unsigned cap)
{
    uint64_t lib[TM_MAX_FRAMES + SLACK];
    unsigned m = stack_walk_lib(lib, cap < TM_MAX_FRAMES + SLACK ? cap : TM_MAX_FRAMES + SLACK);
    unsigned i = skip_own(fast, n), j = skip_own(lib, m), k = 0;
    /* Compared as recorded: cut to the frame limit (this function's own
     * frames make libunwind's buffer fill up sooner). */
    if (n - i > g_frames)
        n = i + g_frames + 1;
    if (m - j > g_frames)
        m = j + g_frames + 1;
    while (i + k < n && j + k < m && fast[i + k] == lib[j + k])
        k++;
    __atomic_add_fetch(&g_chk_n, 1, __ATOMIC_RELAXED);
    if ((i + k == n && j + k == m) || (k >= g_frames && n - i > g_frames && m - j > g_frames))
        return;
    if (__atomic_add_fetch(&g_chk_bad, 1, __ATOMIC_RELAXED) > 10)
        return;
    char line[256], *p = line;
    p = stpcpy(p, "tmtop-hook: unwind check: stacks differ at frame ");
    p = fmt_u64(p, k, 0);
    p = stpcpy(p, ": own 0x");
    p = fmt_u64(p, i + k < n ? fast[i + k] : 0, 1);
    p = stpcpy(p, ", libunwind 0x");
    p = fmt_u64(p, j + k < m ? lib[j + k] : 0, 1);
    p = stpcpy(p, " (depth ");
    p = fmt_u64(p, n - i, 0);
    p = stpcpy(p, " / ");
    p = fmt_u64(p, m - j, 0);
    p = stpcpy(p, ")\n");
    *p = 0;
    say(line);
}

static void unwind_check_report(void)
{
    if (g_unw_mode != UNW_CHECK)
        return;
    uint64_t done, declined, reused;
    tm_unwind_counts(&done, &declined, &reused);
    char line[256], *p = line;
    p = stpcpy(p, "tmtop-hook: unwind check: ");
    p = fmt_u64(p, __atomic_load_n(&g_chk_n, __ATOMIC_RELAXED), 0);
    p = stpcpy(p, " stacks compared, ");
    p = fmt_u64(p, __atomic_load_n(&g_chk_bad, __ATOMIC_RELAXED), 0);
    p = stpcpy(p, " differ, ");
    p = fmt_u64(p, declined, 0);
    p = stpcpy(p, " declined, ");
    p = fmt_u64(p, reused, 0);
    p = stpcpy(p, " from the memo\n");
    *p = 0;
    say(line);
}

/* Fills buf[0..cap) and describes in st the caller's stack: the first frame
 * is the return address into whoever called the interposed function.  The
 * own walk starts in the frame this is inlined into; libunwind takes the
 * stacks it declines (and all of them with TMTOP_HOOK_UNWIND=libunwind). */
/* The id of the stack this thread recorded last, when its own walk found
 * it; t_last_ok is cleared when a stack came from libunwind (the walk's
 * memo does not follow those) and when the ids restart (follow_child). */
static __thread uint32_t t_last_id __attribute__((tls_model("initial-exec")));
static __thread int t_last_ok __attribute__((tls_model("initial-exec")));

/* What stack_capture found: the thread's last stack again (st untouched:
 * its id is t_last_id), a stack from the own walk, or one from libunwind. */
enum { CAP_SAME, CAP_OWN, CAP_LIB };

static inline __attribute__((always_inline)) int stack_capture(uint64_t *buf, unsigned cap,
                                                               struct tm_stack *st)
{
    struct tm_unw_start us;
    TM_UNW_START(us);
    int same = 0, how = CAP_OWN;
    int *samep = g_unw_mode == UNW_FAST && t_last_ok ? &same : NULL;
    unsigned n = g_unw_mode != UNW_LIB ? tm_unwind_walk(buf, cap, &us, samep) : 0;
    if (same)
        return CAP_SAME;
    if (TM_UNLIKELY(g_unw_mode == UNW_CHECK) && n)
        unwind_check(buf, n, cap);
    if (!n) {
        how = CAP_LIB;
        n = stack_walk_lib(buf, cap);
    }
    unsigned i = skip_own(buf, n);
    st->ips = buf + i;
    st->depth = n - i;
    st->flags = 0;
    if (st->depth > g_frames) {
        st->depth = g_frames;
        st->flags = TM_STACK_TRUNCATED;
    }
    st->hash = hash_ips(st->ips, st->depth, st->flags);
    st->scanned = 0;
    return how;
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
/* Captures the caller's stack into buf (STACK_CAP() entries) before any
 * lock (unwinding may take the loader's lock) and finds its id, adding the
 * stack (and its STACK record) when it is new.  0 when nothing may be
 * recorded.  Inlined, so that the unwinder walks one frame of the hook's
 * fewer (the caller's buf is a variable-length array, which would keep
 * this from being inlined); the hook's own frames are skipped by address
 * in stack_capture. */
#define STACK_CAP() (g_frames + SLACK)
static inline __attribute__((always_inline)) int stack_id(uint64_t *buf, uint32_t *id)
{
    struct tm_stack st;
    int how = stack_capture(buf, STACK_CAP(), &st);
    if (how == CAP_SAME) {
        *id = t_last_id;
        return 1;
    }
    int ok = stk_cached(&st, id);
    if (!ok) {
        lock_take();
        ok = intern_locked(&st, 0, id);
        lock_give();
    }
    t_last_ok = ok && how == CAP_OWN;
    if (t_last_ok)
        t_last_id = *id;
    return ok;
}

/* Records one event of len bytes: into the calling thread's ring r, or
 * into the shared buffer when it has none. */
static inline void record(struct tm_ring *r, const uint8_t rec[EV_MAX], size_t len)
{
    if (TM_LIKELY(r)) {
        struct ring_slot *s = ring_open(r);
        memcpy(s->rec, rec, EV_MAX); /* fixed size: two moves, no call */
        s->len = (uint8_t)len;
        ring_close(r, s);
    } else {
        lock_take();
        if (reserve_locked(len)) {
            memcpy(tail(), rec, len);
            commit(len);
        }
        lock_give();
    }
    fold_nested();
}

void tm_hook_on_alloc(uint8_t kind, uint64_t ptr, uint64_t size)
{
    int e = errno;
    tm_hook_tls.inside++;
    uint32_t id;
    uint8_t b[EV_MAX];
    uint64_t buf[STACK_CAP()];
    struct tm_ring *r = ring_room();
    if (stack_id(buf, &id))
        record(r, b, tm_wire_put_alloc(b, id, kind, ptr, size));
    tm_hook_tls.inside--;
    errno = e;
}

void tm_hook_on_free(uint64_t ptr, uint8_t kind)
{
    int e = errno;
    tm_hook_tls.inside++;
    uint8_t b[EV_MAX];
    record(ring_room(), b, tm_wire_put_free(b, ptr, kind));
    tm_hook_tls.inside--;
    errno = e;
}

void tm_hook_on_realloc(uint64_t old_ptr, uint64_t new_ptr, uint64_t size)
{
    int e = errno;
    tm_hook_tls.inside++;
    uint32_t id;
    uint8_t b[EV_MAX];
    uint64_t buf[STACK_CAP()];
    struct tm_ring *r = ring_room();
    if (stack_id(buf, &id))
        record(r, b, tm_wire_put_realloc(b, id, old_ptr, new_ptr, size));
    tm_hook_tls.inside--;
    errno = e;
}

void tm_hook_on_realloc_failed(uint64_t old_ptr)
{
    int e = errno;
    tm_hook_tls.inside++;
    uint8_t b[EV_MAX];
    record(ring_room(), b, tm_wire_put_realloc_failed(b, old_ptr));
    tm_hook_tls.inside--;
    errno = e;
}

/* ---- the hook's own blocks ----------------------------------------------------
 * Open addressing over pointers, lock-free: 0 empty, 1 a deleted slot.
 * Probes are bounded, so that deleted slots piling up over a long run of
 * thread churn never make the check every free() does slow: a block that
 * finds no room is simply not remembered (its free would show as unknown).
 * 8 KiB: small enough to stay in cache for that check. */
#define INTERNAL_SLOTS 1024
#define INTERNAL_PROBE 8
static uintptr_t g_internal[INTERNAL_SLOTS] __attribute__((aligned(64)));
unsigned tm_hook_internal_n; /* blocks noted and not taken (atomic) */

static inline size_t internal_hash(uintptr_t p)
{
    return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ull >> 54) & (INTERNAL_SLOTS - 1);
}

void tm_hook_note_internal(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    size_t h = internal_hash(p);
    for (size_t k = 0; k < INTERNAL_PROBE; k++) {
        uintptr_t *slot = &g_internal[(h + k) & (INTERNAL_SLOTS - 1)];
        uintptr_t v = __atomic_load_n(slot, __ATOMIC_RELAXED);
        if ((v == 0 || v == 1) &&
            __atomic_compare_exchange_n(slot, &v, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            __atomic_add_fetch(&tm_hook_internal_n, 1, __ATOMIC_RELEASE);
            return;
        }
    }
}

int tm_hook_take_internal(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    size_t h = internal_hash(p);
    for (size_t k = 0; k < INTERNAL_PROBE; k++) {
        uintptr_t *slot = &g_internal[(h + k) & (INTERNAL_SLOTS - 1)];
        uintptr_t v = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (v == 0)
            return 0;
        if (v == p &&
            __atomic_compare_exchange_n(slot, &v, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            __atomic_sub_fetch(&tm_hook_internal_n, 1, __ATOMIC_RELEASE);
            return 1;
        }
    }
    return 0;
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
    fold_nested();
    lock_take();
    uint64_t t = stamp_now();
    if (reserve_locked(TM_WIRE_EXEC_MAX)) {
        commit(tm_wire_put_exec(tail(), path ? path : ""));
        t = g_sh_stamp;
    }
    /* EXEC is the last record of a successful exec: what the timer or the
     * other threads record until the new image replaces us waits. */
    g_hold = t + 1;
    lock_give();
    drain_until(t);
    tm_hook_tls.guard--;
    errno = e;
}

void tm_hook_after_exec(void)
{
    if (!g_hold || getpid() != g_pid)
        return;
    int e = errno;
    tm_hook_tls.guard++;
    lock_take();
    g_hold = 0;
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

static int g_fork_held;   /* fork_prepare took g_merge_lock, g_lock and g_send_lock */
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
    pthread_mutex_lock(&g_merge_lock);
    lock_take();
    pthread_mutex_lock(&g_send_lock);
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
        pthread_mutex_unlock(&g_merge_lock);
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
    g_ended = 0;
    g_end_stamp = 0;
    g_hold = 0;
    g_lost_said = 0;
    g_stop = 0;
    g_nested_total = 0;
    __atomic_store_n(&g_lost, 0, __ATOMIC_RELAXED);
    /* membarrier's registration belongs to the parent's address space. */
    stamps_init();
    tm_hook_tls.nested = 0;
    /* Stacks: ids restart at 0 in the new stream. */
    if (g_stk)
        munmap(g_stk, (g_stk_mask + 1) * sizeof *g_stk);
    g_stk = NULL;
    g_stk_mask = g_stk_count = 0;
    g_next_stack = 0;
    g_empty_stack = UINT32_MAX;
    memset(t_stk_cache, 0, sizeof t_stk_cache); /* the only thread left */
    t_last_ok = 0;
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
    drain();
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
    pthread_mutex_init(&g_merge_lock, NULL);
    /* Every entry not yet merged is the parent's. */
    g_sh_len = 0;
    g_pend_off = g_pend_len = 0;
    g_out.len = 0;
    for (struct tm_ring *r = g_rings; r; r = r->next) {
        r->tail = r->seen = r->head;
        r->busy = 0;
        r->state = r == t_ring ? RING_LIVE : RING_FREE;
    }
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

/* The timer thread: every g_flush_ms a TICK, a module check and a merge
 * round, so that a quiet program's events reach tmtop within that time. */
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
        lock_give();
        merge_now(1);
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
    lock_give();
    drain();
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
    g_out.data = map_anon(OUT_SIZE);
    g_mods = map_anon(MOD_CAP * sizeof *g_mods);
    if (!g_out.data || !g_mods || !area_grow(&g_sh, &g_sh_cap, 1) || channel_open() != 0)
        return 0;
    stamps_init();
    g_ring_key_ok = pthread_key_create(&g_ring_key, ring_detach) == 0;
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
    /* The own walk, checked against libunwind or not at all (tests). */
    const char *mode = getenv("TMTOP_HOOK_UNWIND");
    if (mode && strcmp(mode, "libunwind") == 0)
        g_unw_mode = UNW_LIB;
    else if (mode && strcmp(mode, "check") == 0 && unw_ok)
        g_unw_mode = UNW_CHECK;
    const char *log = getenv("TMTOP_HOOK_UNWIND_LOG");
    if (g_unw_mode == UNW_CHECK && log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0)
            g_chk_fd = move_fd_high(fd);
    }
    if (g_unw_mode != UNW_LIB)
        tm_unwind_init();
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
        drain();
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
    unwind_check_report();
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
    fold_nested();
    lock_take();
    if (reserve_locked(TM_WIRE_END_LEN)) {
        commit(tm_wire_put_end(tail(), TM_END_EXIT, 0,
                               __atomic_load_n(&g_nested_total, __ATOMIC_RELAXED),
                               __atomic_load_n(&g_lost, __ATOMIC_RELAXED)));
        g_end_stamp = g_sh_stamp;
    } else {
        g_end_stamp = stamp_now();
    }
    g_ended = 1; /* nothing after END */
    __atomic_store_n(&tm_hook_state, TM_HOOK_OFF, __ATOMIC_RELEASE);
    lock_give();
    drain();
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
