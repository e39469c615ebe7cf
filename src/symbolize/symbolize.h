/* symbolize.h - return addresses of a traced process to function and
 * file:line, from DWARF (libdwarf) with ELF symbol tables as the fallback.
 *
 * Runs in tmtop, never in the target.  A module's debug info is loaded on the
 * first address that needs it and cached; every distinct (module, address)
 * is resolved once.  libdwarf is not thread-safe: one tm_sym must be used by
 * one thread at a time (the caller serialises).
 *
 * Lookups use address - 1 (the call instruction, not the return address).
 * Corrupt or missing debug info never crashes: the answer degrades to ELF
 * symbol + offset, then to module + offset.  To guarantee that, a module's
 * DWARF is read by a short-lived forked child process that sends the tables
 * back through a memfd or a pipe (libdwarf 20210528, the fallback reader,
 * can crash on corrupt input); the child closes every inherited descriptor
 * and tmtop waits for it by pid.  The environment variable
 * TMTOP_SYM_PARTS=N (1-4, for tests and benchmarks) splits the reading
 * between N children; the default is one.  An ELF symbol with a size names only
 * the addresses it covers: past its end the answer is module + offset.
 *
 * Results are cached by (module id, address): module ids must name the same
 * module for the lifetime of s (one tm_sym per traced process). */
#ifndef TMTOP_SYMBOLIZE_H
#define TMTOP_SYMBOLIZE_H

#include <stdint.h>

#include "common.h"
#include "store.h"

typedef struct tm_sym tm_sym;

typedef struct tm_sym_opts {
    int demangle;           /* demangle C++ names (default on via tm_sym_new(NULL)) */
    const char *debug_root; /* root of separate debug files; NULL = "/usr/lib/debug" */
} tm_sym_opts;

/* New symbolizer (owned: tm_sym_free).  opts may be NULL for defaults.
 * Returns NULL only when out of memory. */
tm_sym *tm_sym_new(const tm_sym_opts *opts);
void tm_sym_free(tm_sym *s);

/* Resolves the return address `address`, captured in module mod (NULL when
 * no module contained it), into frames, innermost first: an inlined call
 * gives one frame per inline level, as `addr2line -f -i` prints them.  Writes
 * at most max frames and returns how many (>= 1).  Strings are interned and
 * valid until tm_sym_free. */
int tm_sym_resolve(tm_sym *s, const tm_module *mod, uint64_t address, tm_frame *out, int max);

/* A tm_resolver that calls tm_sym_resolve on s. */
tm_resolver tm_sym_resolver(tm_sym *s);

/* Non-blocking use, for a UI whose resolver thread must keep answering
 * while a large module loads (glibc: 0.2-0.4 s).  Same threading rule: one
 * thread at a time.
 *
 * tm_sym_resolve_nowait is tm_sym_resolve except that it never waits for a
 * module's debug info: a module seen for the first time has its load begun
 * (the files found and its ELF symbols read here, a few ms; the DWARF read
 * by forked children, see above), and while the load runs (or while four
 * other loads run) it writes one frame with module and offset only, flags
 * TM_FRAME_PENDING, and returns 1.  A pending answer is not cached: ask
 * again later.  Addresses of modules already loaded, and cached addresses,
 * are answered in full at once, also during another module's load.
 *
 * tm_sym_loading completes, without waiting, every load whose children are
 * done, and returns how many loads are still running (0: no address will
 * come back pending, unless it belongs to a module never asked for). */
int tm_sym_resolve_nowait(tm_sym *s, const tm_module *mod, uint64_t address, tm_frame *out,
                          int max);
size_t tm_sym_loading(tm_sym *s);

/* A tm_resolver that calls tm_sym_resolve_nowait on s. */
tm_resolver tm_sym_resolver_nowait(tm_sym *s);

/* Counters for tests and benchmarks. */
typedef struct tm_sym_stats {
    uint64_t lookups; /* tm_sym_resolve calls */
    uint64_t cache_hits;
    uint64_t modules_loaded; /* loads begun (a background load counts when it starts) */
    uint64_t dwarf_errors;   /* libdwarf errors survived (a failed DWARF load counts one) */
} tm_sym_stats;
void tm_sym_get_stats(const tm_sym *s, tm_sym_stats *out);

#endif
