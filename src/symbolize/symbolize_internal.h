/* symbolize_internal.h - pieces of the symbolizer shared between its files:
 * the string intern table, the flat per-object lookup tables, and the ELF,
 * debug-file and DWARF loaders that fill them.  Not a public interface. */
#ifndef TMTOP_SYMBOLIZE_INTERNAL_H
#define TMTOP_SYMBOLIZE_INTERNAL_H

#include <gelf.h>
#include <libelf.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_reader.h"
#include "common.h"

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
 * ELF symbols).  TMTOP_SYM_PARTS=N splits the load between N (at most
 * SYM_LOAD_MAX_PARTS) children running at once; one by default.
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

/* ---- DIEs read without libdwarf (dies.c) -----------------------------------
 * The sections of one file that the DIE walk and the line programs read, raw
 * (compressed ones inflated).  A missing section has p NULL. */
typedef struct sym_sec {
    const unsigned char *p;
    size_t n;
} sym_sec;

typedef struct sym_secs {
    Elf *elf; /* owns the bytes */
    sym_sec info, abbrev, str, line_str, str_offsets, addr, rnglists, ranges, line;
} sym_secs;

/* Opens the sections of the ELF file in fd (which must stay open until
 * sym_secs_close).  Returns 0, or -1 (s empty) when the file is not a
 * little-endian ELF file on a little-endian host. */
int sym_secs_open(sym_secs *s, int fd);
void sym_secs_close(sym_secs *s);

typedef struct sym_abbrev {
    uint64_t code;
    uint32_t tag, children;
    uint32_t first, nattr; /* the unit's specs[first .. first + nattr) */
    uint32_t walked;       /* a tag the DIE walk visits (SYM_DIE_WALK) */
} sym_abbrev;

typedef struct sym_aspec {
    uint32_t at, form;
    int64_t implicit; /* DW_FORM_implicit_const's value */
} sym_aspec;

/* One compile (or partial) unit.  Zero it once; sym_cu_open reuses its
 * arrays from unit to unit; sym_cu_free frees them. */
typedef struct sym_cu {
    const sym_secs *s;
    uint64_t off, end;         /* the unit's bytes in .debug_info: [off, end) */
    const unsigned char *dies; /* its first DIE, the unit DIE */
    unsigned version, addr_size, offsz, unit_type;
    int ready; /* bases read: other DIEs can be read */
    int has_str_base, has_addr_base, has_rng_base;
    uint64_t str_offsets_base, addr_base, rnglists_base;
    sym_abbrev *abbrevs;
    size_t nabbrevs, abbrevs_cap;
    sym_aspec *specs;
    size_t nspecs, specs_cap;
    uint32_t *bycode; /* abbreviation code -> index + 1, 0 = none */
    size_t bycode_n;
} sym_cu;

/* Reads the unit header at .debug_info offset off, its abbreviations and
 * its unit DIE's bases.  Returns 0, or -1 when the unit is malformed or of a
 * kind this reader leaves to libdwarf (type, skeleton and split units,
 * split DWARF bases, DWARF versions other than 2-5). */
int sym_cu_open(sym_cu *cu, const sym_secs *s, uint64_t off);
void sym_cu_free(sym_cu *cu);

/* The attributes the DIE walk uses (sym_die.has bits). */
#define SYM_DIE_NAME 0x001u
#define SYM_DIE_LINKAGE 0x002u
#define SYM_DIE_MIPS_LINKAGE 0x004u
#define SYM_DIE_ORIGIN 0x008u
#define SYM_DIE_SPEC 0x010u
#define SYM_DIE_SIBLING 0x020u
#define SYM_DIE_LOWPC 0x040u
#define SYM_DIE_HIGHPC 0x080u
#define SYM_DIE_RANGES 0x100u
#define SYM_DIE_CALL_FILE 0x200u
#define SYM_DIE_CALL_LINE 0x400u
#define SYM_DIE_COMP_DIR 0x800u /* unit DIEs */
#define SYM_DIE_LANGUAGE 0x1000u
#define SYM_DIE_STMT_LIST 0x2000u

/* A DIE's tag and the attributes of SYM_DIE_*, each as libdwarf would give
 * it (the first of its name; references as global .debug_info offsets,
 * those into other files left out; strings point into the sections). */
typedef struct sym_die {
    uint64_t off;
    const unsigned char *next; /* first byte after its attributes */
    uint32_t tag, children, has;
    int highpc_const; /* high_pc is an offset from low_pc */
    int ranges_x;     /* ranges is a DW_FORM_rnglistx index */
    uint64_t lowpc, highpc, ranges, origin, spec, sibling, call_file, call_line;
    uint64_t language, stmt_list;
    const char *name, *linkage, *mips_linkage, *comp_dir;
} sym_die;

/* What sym_die_read reads of a DIE: all of SYM_DIE_*; the same for tags
 * the DIE walk visits (functions, inlined calls, blocks, namespaces,
 * classes) but only DW_AT_sibling of the others; only DW_AT_sibling. */
#define SYM_DIE_ALL 0
#define SYM_DIE_WALK 1
#define SYM_DIE_SIBLING_ONLY 2

/* Reads the DIE at *pp (mode: SYM_DIE_ALL, _WALK or _SIBLING_ONLY).  Returns
 * 1 (d filled, *pp past its attributes, at its first child if it has
 * children), 0 for a null entry (*pp past it), or -1 when the DIE cannot be
 * read or uses a form or value this reader does not take (the caller then
 * leaves the unit to libdwarf). */
int sym_die_read(const sym_cu *cu, const unsigned char **pp, sym_die *d, int mode);
/* Sets *pp past d's subtree (by DW_AT_sibling when it has a usable one).
 * Returns 0 or -1. */
int sym_die_skip_children(const sym_cu *cu, const sym_die *d, const unsigned char **pp);
/* Reads the DIE at global offset off, which must lie in cu.  Returns 0 or -1. */
int sym_die_at(const sym_cu *cu, uint64_t off, sym_die *d);

typedef struct sym_range {
    uint64_t lo, hi;
} sym_range;

/* d's address ranges into *buf (capacity *cap, grown): low_pc/high_pc,
 * else DW_AT_ranges (.debug_rnglists for DWARF 5, .debug_ranges with base
 * cu_base before), as dwarf.c's libdwarf reading gives them.  Returns how
 * many, or -1 when they cannot be read; *oom is set when memory ran out. */
int sym_die_ranges(const sym_cu *cu, const sym_die *d, uint64_t cu_base, sym_range **buf,
                   size_t *cap, int *oom);

/* For tests: how sym_dwarf_load reads.  1 (the default): everything without
 * libdwarf (dies.c and dwarf.c's own line program and file table readers),
 * and when they give up on something, 2: libdwarf for the units, their file
 * names and unusual line programs, dies.c for the DIEs of each unit it can
 * read, libdwarf's DIEs for the others; 0: libdwarf only (as before dies.c);
 * 3: without libdwarf only (what it cannot read fails the load).
 * The counters add up the units read without libdwarf (1) and with it (2,
 * 0) in this process. */
extern int sym_dwarf_use_own_dies;
extern unsigned long sym_dwarf_units_own, sym_dwarf_units_libdwarf;

/* Called once before any libdwarf use (global libdwarf settings). */
void sym_dwarf_global_init(void);

#endif
