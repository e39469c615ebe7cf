/* common.h - vocabulary shared by every tmtop module: errors, modules, frames,
 * and tracemalloc's size format.  No module-specific state lives here. */
#ifndef TMTOP_COMMON_H
#define TMTOP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define TMTOP_VERSION "0.1.0"

/* ---- errors --------------------------------------------------------------
 * Library code (wire, store, symbolize, report) returns a status and fills an
 * error object the caller owns.  It never prints and never exits. */
enum {
    TM_OK = 0,
    TM_E_IO = 1,      /* a system call failed; msg names the object and errno */
    TM_E_FORMAT = 2,  /* malformed input (stream, file, option value) */
    TM_E_VERSION = 3, /* a stream or file of an unsupported version */
    TM_E_NOMEM = 4,
    TM_E_USAGE = 5,
    TM_E_NOTFOUND = 6,
};

typedef struct tm_err {
    int code;
    char msg[256];
} tm_err;

/* Sets err (if non-NULL) to code and a printf-formatted message.
 * Always returns -1 so callers can write `return tm_err_set(...)`. */
int tm_err_set(tm_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Makes *p (an array of *cap elements of elem bytes) hold at least need,
 * doubling its capacity (from 16).  0, or -1 (out of memory or overflow)
 * with *p and *cap as they were. */
int tm_grow(void **p, size_t *cap, size_t need, size_t elem);

/* The order tmtop shows traced processes in: the target, then each process
 * right after its parent (depth first, siblings in the order of their
 * indexes, i.e. of their streams; a grandchild's stream may begin before
 * its parent's).  pid[i] and ppid[i] describe process i; writes the indexes
 * in that order to order[0..n) and returns n.  For the few processes one
 * run traces (it works on the stack). */
size_t tm_proc_order(size_t n, const uint32_t *pid, const uint32_t *ppid, size_t *order);

/* ---- modules -------------------------------------------------------------
 * A loaded object of the target as the hook saw it (dl_iterate_phdr). */
#define TM_BUILD_ID_MAX 64
#define TM_MODULE_MAX_SEGS 16

typedef struct tm_segment {
    uint64_t vaddr; /* p_vaddr, relative to load_bias */
    uint64_t memsz; /* p_memsz */
    uint32_t flags; /* p_flags (PF_X, PF_W, PF_R) */
} tm_segment;

typedef struct tm_module {
    uint32_t id;        /* dense id assigned by the hook; stable for the stream */
    uint64_t load_bias; /* dlpi_addr */
    const char *path;   /* absolute path as the loader knows it; "" never (the
                           hook substitutes the executable's path) */
    uint8_t build_id[TM_BUILD_ID_MAX];
    uint32_t build_id_len; /* 0 when the module has no NT_GNU_BUILD_ID */
    uint32_t nseg;
    tm_segment seg[TM_MODULE_MAX_SEGS];
} tm_module;

/* ---- frames --------------------------------------------------------------
 * One frame of a symbolized stack.  A return address can expand into several
 * frames when the call was inlined: innermost first, each with its own
 * function and file:line.  All strings are interned by whoever produced the
 * frame (the symbolizer) and stay valid for that producer's lifetime.
 * Unknown values: function/file NULL, line 0. */
enum {
    TM_FRAME_INLINED = 1u << 0, /* an inlined scope, not a real call frame */
    TM_FRAME_SYMTAB = 1u << 1,  /* function came from ELF symbols, not DWARF */
    TM_FRAME_PENDING = 1u << 2, /* not resolved yet: module+offset only; ask again later */
};

typedef struct tm_frame {
    const char *function; /* demangled where C++; NULL if unknown */
    const char *file;     /* source file, absolute where DWARF gives it; NULL */
    uint32_t line;        /* 0 if unknown */
    uint32_t flags;       /* TM_FRAME_* */
    const char *module;   /* path of the module; NULL if outside every module */
    uint64_t address;     /* the return address as captured in the target */
    uint64_t offset;      /* address - module load bias (file-relative vaddr) */
} tm_frame;

/* ---- sizes ---------------------------------------------------------------
 * tracemalloc's _format_size: "95 B", "10239 B", "10.0 KiB", "279 KiB",
 * "12.3 MiB" (bytes up to 10 KiB, one decimal below 100 of a unit).
 * With sign != 0 the number carries an explicit sign ("+1.5 KiB", "-96 B",
 * "+0 B").  buf must hold at least TM_SIZE_BUF bytes; returns buf. */
#define TM_SIZE_BUF 32
char *tm_format_size(char *buf, double size, int sign);

#endif
