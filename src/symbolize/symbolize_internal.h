/* symbolize_internal.h - pieces of the symbolizer shared between its files:
 * the string intern table, the flat per-object lookup tables, and the ELF,
 * debug-file and DWARF loaders that fill them.  Not a public interface. */
#ifndef TMTOP_SYMBOLIZE_INTERNAL_H
#define TMTOP_SYMBOLIZE_INTERNAL_H

#include <gelf.h>
#include <libelf.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growable arrays ------------------------------------------------------
 * Makes room for `need` elements of size elem in *p (capacity *cap, doubled
 * as needed).  Returns 0, or -1 when out of memory (*p is left untouched). */
int sym_grow(void **p, size_t *cap, size_t need, size_t elem);

/* ---- string interning -----------------------------------------------------
 * Every string a frame carries lives in the intern table, so frames can hold
 * plain const char * for the symbolizer's lifetime and equal strings share
 * one copy (file names repeat in every CU of a module). */
typedef struct sym_intern sym_intern;

/* New table (owned: sym_intern_free), NULL when out of memory. */
sym_intern *sym_intern_new(void);
void sym_intern_free(sym_intern *in);
/* The interned copy of s[0..n) (borrowed for the table's life), NULL when out
 * of memory.  s need not be NUL-terminated. */
const char *sym_intern_strn(sym_intern *in, const char *s, size_t n);
const char *sym_intern_str(sym_intern *in, const char *s);
/* Bytes held by the table (arena + hash slots). */
size_t sym_intern_bytes(const sym_intern *in);

/* ---- per-object lookup tables ---------------------------------------------
 * One loaded object (a module file plus the debug file found for it).  All
 * arrays are sorted by address for binary search; strings are interned. */

/* A line-table row.  end marks the end of a sequence: "no line from here". */
typedef struct sym_row {
    uint64_t addr;
    const char *file;
    uint32_t line;
    uint32_t end;
} sym_row;

/* A function scope: an out-of-line function (parent -1) or an inlined call
 * (parent = index of the enclosing scope, always lower than its own index).
 * name is the raw DWARF name (linkage name when there is one). */
typedef struct sym_scope {
    const char *name;
    const char *call_file; /* inlined: where the parent called this scope */
    uint64_t entry;        /* the scope's first address (low_pc or first range) */
    uint32_t call_line;
    uint32_t flags; /* SYM_SCOPE_* */
    int32_t parent;
} sym_scope;

/* An out-of-line function whose DWARF gives no linkage name in a language
 * binutils demangles (C++ and others, not C): addr2line names it after the
 * ELF symbol that starts at its entry, which is its full qualified name
 * (gcc writes only DW_AT_name "_M_manager" for members of templates
 * instantiated on lambda types, and "main"). */
#define SYM_SCOPE_NAME_FROM_SYMTAB 1u

/* A disjoint address segment [lo, hi) whose innermost scope is scope. */
typedef struct sym_seg {
    uint64_t lo, hi;
    uint32_t scope;
} sym_seg;

/* An ELF function symbol.  sec_end bounds the lookup to the symbol's
 * section; file is the STT_FILE name binutils would attach to it (see
 * sym_elf_symbols), NULL if none. */
typedef struct sym_func {
    uint64_t addr;
    uint64_t size; /* st_size, 1 when 0 */
    uint64_t sec_end;
    const char *name; /* raw (mangled) */
    const char *file;
    uint32_t order; /* position in the symbol table */
    uint32_t sized; /* st_size was non-zero: the symbol ends at addr + size */
} sym_func;

typedef struct sym_obj {
    char *path; /* module path (owned) */
    uint8_t build_id[64];
    uint32_t build_id_len;  /* as given by the module record */
    const char *debug_path; /* file DWARF came from (interned), NULL if none */
    sym_row *rows;
    size_t nrows;
    sym_scope *scopes;
    size_t nscopes;
    sym_seg *segs;
    size_t nsegs;
    sym_func *funcs;
    size_t nfuncs;
    struct sym_pending *pending; /* DWARF still loading (symbolize.c), else NULL */
} sym_obj;

void sym_obj_free(sym_obj *o);

/* Lookups in o at file vaddr pc.  Each returns NULL when nothing covers pc. */
const sym_row *sym_obj_row(const sym_obj *o, uint64_t pc);
const sym_seg *sym_obj_seg(const sym_obj *o, uint64_t pc);
/* sym_obj_func: the function symbol covering pc.  A symbol with a size
 * covers [addr, addr + size) only; one without (asm labels) covers up to the
 * next symbol or its section's end. */
const sym_func *sym_obj_func(const sym_obj *o, uint64_t pc);

/* ---- ELF (libelf) ----------------------------------------------------------
 * An opened ELF file.  Fields are zero/-1 when closed. */
typedef struct sym_elf {
    int fd;
    Elf *elf;
} sym_elf;

/* Opens path read-only and checks it is an ELF file.  Returns 0, or -1 (f
 * stays closed) when it cannot be opened or is not ELF. */
int sym_elf_open(sym_elf *f, const char *path);
void sym_elf_close(sym_elf *f);
/* Copies the NT_GNU_BUILD_ID descriptor into out (up to max bytes) and returns
 * its length, 0 when the file has none. */
size_t sym_elf_build_id(Elf *e, uint8_t *out, size_t max);
/* Reads .gnu_debuglink: the file name (into name, NUL-terminated, at most
 * namemax bytes) and its CRC-32.  Returns 0, or -1 when absent or malformed. */
int sym_elf_debuglink(Elf *e, char *name, size_t namemax, uint32_t *crc);
/* 1 when the file carries DWARF (.debug_info with contents), else 0. */
int sym_elf_has_dwarf(Elf *e);
/* 1 when the file has a symbol table of type sh_type (SHT_SYMTAB or
 * SHT_DYNSYM) with contents, else 0. */
int sym_elf_has_symbols(Elf *e, unsigned sh_type);
/* Appends the function symbols (STT_FUNC, STT_GNU_IFUNC) of the sh_type
 * table to *funcs and *n (capacity *cap).  Returns 0, or -1 when out of
 * memory. */
int sym_elf_symbols(Elf *e, unsigned sh_type, sym_intern *in, sym_func **funcs, size_t *n,
                    size_t *cap);
/* Sorts funcs by (address, table order), for sym_obj_func. */
void sym_funcs_finish(sym_func *funcs, size_t n);

/* ---- debug file search (debugfile.c) --------------------------------------
 * The zlib CRC-32 of a whole file, as .gnu_debuglink stores it.  Returns 0
 * and sets *crc, or -1 on a read error. */
int sym_file_crc32(int fd, uint32_t *crc);

typedef struct sym_files {
    sym_elf module;       /* the module file itself, fd -1 when missing or rejected */
    sym_elf debug;        /* a separate debug file, fd -1 when none was found */
    const sym_elf *dwarf; /* &module or &debug: the file to read DWARF from;
                             NULL when neither has DWARF */
    char dwarf_path[4096];
} sym_files;

/* Opens the module at path and finds the file holding its DWARF (RESEARCH
 * §1.9): <debug_root>/.build-id/xx/rest.debug, then .gnu_debuglink (CRC
 * checked) in DIR, DIR/.debug and <debug_root>/DIR, then the module itself.
 * A candidate whose build-id differs from build_id (when build_id_len > 0)
 * is rejected, the module file included.  Never fails: whatever could not be
 * found stays closed.  Close with sym_files_close. */
void sym_files_open(sym_files *f, const char *path, const uint8_t *build_id, size_t build_id_len,
                    const char *debug_root);
void sym_files_close(sym_files *f);

/* ---- DWARF (dwarf.c) -------------------------------------------------------
 * Reads the CUs of part `part` of nparts of the DWARF in fd (all of them
 * when nparts is 1; else the CUs starting in the part-th contiguous share
 * of .debug_info) into o's rows, scopes and segments.  Partial or corrupt
 * DWARF loads what it can; each libdwarf error survived is added to
 * *errors.  Returns 0, or -1 when nothing could be read. */
int sym_dwarf_load(sym_obj *o, int fd, sym_intern *in, uint64_t *errors, unsigned part,
                   unsigned nparts);

/* sym_dwarf_load run in forked children (isolate.c): a libdwarf crash on
 * corrupt input kills a child, not tmtop; the share of the CUs that child
 * read is lost (all of them: finish returns -1 and the module falls back to
 * ELF symbols).  Large debug info is split between up to SYM_LOAD_MAX_PARTS
 * children running at once when CPUs are idle.
 *
 * In two steps, so that the caller can do other work (or answer other
 * lookups) while the children read: sym_dwarf_start forks them and returns
 * 0, or -1 when they cannot be forked (l is then empty: load in this process
 * with sym_dwarf_load).  fd must stay open until finish or abandon.
 * sym_dwarf_ready says, without blocking, whether finishing would still wait
 * for libdwarf (0) or not (1); sym_dwarf_finish receives and merges the
 * tables into o (empty arrays on entry) and returns 0, or -1 when no child
 * delivered; sym_dwarf_abandon kills and reaps the children instead. */
#define SYM_LOAD_MAX_PARTS 4
typedef struct sym_load {
    unsigned nparts;              /* children running; 0 = none */
    int pipe[SYM_LOAD_MAX_PARTS]; /* the tables, or only a done byte when data is used */
    int data[SYM_LOAD_MAX_PARTS]; /* memfd holding the tables, -1 if none */
    int pid[SYM_LOAD_MAX_PARTS];
    int64_t deadline_ms; /* CLOCK_MONOTONIC */
} sym_load;
int sym_dwarf_start(sym_load *l, int fd);
int sym_dwarf_ready(const sym_load *l);
int sym_dwarf_finish(sym_load *l, sym_obj *o, sym_intern *in, uint64_t *errors);
void sym_dwarf_abandon(sym_load *l);

/* Called once before any libdwarf use (global libdwarf settings). */
void sym_dwarf_global_init(void);

#endif
