/* hook_cxx.c - the C++ operator new/delete family, defined in C under their
 * Itanium-ABI names, forwarding to the next definition (libstdc++, or the
 * target's jemalloc/tcmalloc whose operators bypass malloc).
 *
 * Every new is one ALLOC of kind TM_ALLOC_NEW (scalar) or TM_ALLOC_NEW_ARRAY
 * (array) with the requested size; the malloc or aligned_alloc that the
 * operator makes inside is nested and not recorded.  The aligned variants
 * (std::align_val_t) are recorded with the same kinds, not as MEMALIGN: the
 * kind says which delete must free the block, and the alignment is not part
 * of the wire record.  Every delete of a non-null pointer is one FREE of kind
 * TM_FREE_DELETE / TM_FREE_DELETE_ARRAY, appended before the real delete.
 *
 * A throwing operator new can leave through an exception with the guard
 * set: this file is compiled with -fexceptions so that the cleanup attribute
 * below clears it during unwinding. */
#include "hook_internal.h"

#include <stdlib.h>

#include "wire.h"

typedef void *(*new_fn)(size_t);
typedef void *(*new_nt_fn)(size_t, const void *);
typedef void *(*new_al_fn)(size_t, size_t);
typedef void *(*new_al_nt_fn)(size_t, size_t, const void *);
typedef void (*del_fn)(void *);
typedef void (*del_sz_fn)(void *, size_t);
typedef void (*del_al_fn)(void *, size_t);
typedef void (*del_sz_al_fn)(void *, size_t, size_t);
typedef void (*del_nt_fn)(void *, const void *);
typedef void (*del_al_nt_fn)(void *, size_t, const void *);

/* The real operator, looked up on first use (a C program may load
 * libstdc++ long after the hook started). */
#define REAL(type, sym)                                                                            \
    ({                                                                                             \
        static type real_;                                                                         \
        type f_ = __atomic_load_n(&real_, __ATOMIC_ACQUIRE);                                       \
        if (TM_UNLIKELY(!f_)) {                                                                    \
            f_ = (type)tm_hook_cxx_fn(#sym, (void *)sym);                                          \
            __atomic_store_n(&real_, f_, __ATOMIC_RELEASE);                                        \
        }                                                                                          \
        f_;                                                                                        \
    })

static void guard_cleanup(int *armed)
{
    if (*armed)
        tm_hook_leave();
}

/* Enters the hook for the enclosing scope; tm_armed says whether to record. */
#define TRACK_SCOPE int tm_armed __attribute__((cleanup(guard_cleanup))) = tm_hook_enter()

/* Without any C++ runtime in the process nobody could have called these;
 * fall back on the C allocator all the same rather than crash. */
static void *fallback_new(size_t n, size_t align)
{
    if (!tm_real.malloc)
        tm_hook_resolve();
    if (align <= 16)
        return tm_real.malloc ? tm_real.malloc(n ? n : 1) : NULL;
    void *p = NULL;
    return tm_real.posix_memalign && tm_real.posix_memalign(&p, align, n ? n : 1) == 0 ? p : NULL;
}

static void fallback_delete(void *p)
{
    if (!tm_real.free)
        tm_hook_resolve();
    if (tm_real.free)
        tm_real.free(p);
}

/* ---- new ------------------------------------------------------------------------ */
#define NEW_BODY(type, sym, kind, n, align, call)                                                  \
    type real = REAL(type, sym);                                                                   \
    TRACK_SCOPE;                                                                                   \
    void *p = real ? call : fallback_new(n, align);                                                \
    if (tm_armed && p)                                                                             \
        tm_hook_on_alloc(kind, (uintptr_t)p, n);                                                   \
    return p

TM_EXPORT void *_Znwm(size_t n)
{
    NEW_BODY(new_fn, _Znwm, TM_ALLOC_NEW, n, 0, real(n));
}

TM_EXPORT void *_Znam(size_t n)
{
    NEW_BODY(new_fn, _Znam, TM_ALLOC_NEW_ARRAY, n, 0, real(n));
}

TM_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt)
{
    NEW_BODY(new_nt_fn, _ZnwmRKSt9nothrow_t, TM_ALLOC_NEW, n, 0, real(n, nt));
}

TM_EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt)
{
    NEW_BODY(new_nt_fn, _ZnamRKSt9nothrow_t, TM_ALLOC_NEW_ARRAY, n, 0, real(n, nt));
}

TM_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t al)
{
    NEW_BODY(new_al_fn, _ZnwmSt11align_val_t, TM_ALLOC_NEW, n, al, real(n, al));
}

TM_EXPORT void *_ZnamSt11align_val_t(size_t n, size_t al)
{
    NEW_BODY(new_al_fn, _ZnamSt11align_val_t, TM_ALLOC_NEW_ARRAY, n, al, real(n, al));
}

TM_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt)
{
    NEW_BODY(new_al_nt_fn, _ZnwmSt11align_val_tRKSt9nothrow_t, TM_ALLOC_NEW, n, al,
             real(n, al, nt));
}

TM_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt)
{
    NEW_BODY(new_al_nt_fn, _ZnamSt11align_val_tRKSt9nothrow_t, TM_ALLOC_NEW_ARRAY, n, al,
             real(n, al, nt));
}

/* ---- delete ------------------------------------------------------------------------ */
#define DELETE_BODY(type, sym, kind, p, call)                                                      \
    type real = REAL(type, sym);                                                                   \
    if (p && tm_hook_in_arena(p))                                                                  \
        return;                                                                                    \
    if (p) {                                                                                       \
        TRACK_SCOPE;                                                                               \
        if (tm_armed)                                                                              \
            tm_hook_on_free((uintptr_t)p, kind);                                                   \
        if (real)                                                                                  \
            call;                                                                                  \
        else                                                                                       \
            fallback_delete(p);                                                                    \
    } else if (real) {                                                                             \
        call;                                                                                      \
    }

TM_EXPORT void _ZdlPv(void *p)
{
    DELETE_BODY(del_fn, _ZdlPv, TM_FREE_DELETE, p, real(p));
}

TM_EXPORT void _ZdaPv(void *p)
{
    DELETE_BODY(del_fn, _ZdaPv, TM_FREE_DELETE_ARRAY, p, real(p));
}

TM_EXPORT void _ZdlPvm(void *p, size_t n)
{
    DELETE_BODY(del_sz_fn, _ZdlPvm, TM_FREE_DELETE, p, real(p, n));
}

TM_EXPORT void _ZdaPvm(void *p, size_t n)
{
    DELETE_BODY(del_sz_fn, _ZdaPvm, TM_FREE_DELETE_ARRAY, p, real(p, n));
}

TM_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt)
{
    DELETE_BODY(del_nt_fn, _ZdlPvRKSt9nothrow_t, TM_FREE_DELETE, p, real(p, nt));
}

TM_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt)
{
    DELETE_BODY(del_nt_fn, _ZdaPvRKSt9nothrow_t, TM_FREE_DELETE_ARRAY, p, real(p, nt));
}

TM_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t al)
{
    DELETE_BODY(del_al_fn, _ZdlPvSt11align_val_t, TM_FREE_DELETE, p, real(p, al));
}

TM_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t al)
{
    DELETE_BODY(del_al_fn, _ZdaPvSt11align_val_t, TM_FREE_DELETE_ARRAY, p, real(p, al));
}

TM_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al)
{
    DELETE_BODY(del_sz_al_fn, _ZdlPvmSt11align_val_t, TM_FREE_DELETE, p, real(p, n, al));
}

TM_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al)
{
    DELETE_BODY(del_sz_al_fn, _ZdaPvmSt11align_val_t, TM_FREE_DELETE_ARRAY, p, real(p, n, al));
}

TM_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    DELETE_BODY(del_al_nt_fn, _ZdlPvSt11align_val_tRKSt9nothrow_t, TM_FREE_DELETE, p,
                real(p, al, nt));
}

TM_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    DELETE_BODY(del_al_nt_fn, _ZdaPvSt11align_val_tRKSt9nothrow_t, TM_FREE_DELETE_ARRAY, p,
                real(p, al, nt));
}
