/* tracefile.h - tmtop's recordings: everything the traced processes sent,
 * written to a file while they run (tmtop --record FILE) and read back
 * later (tmtop --load FILE) to rebuild the same stores and reports.
 *
 * File layout (little-endian, like the wire format of wire.h):
 *
 *   header   "TMTOPREC"                      8 bytes, magic
 *            u16 version                     TM_TRACEFILE_VERSION; other versions
 *                                            are refused
 *            u16 reserved                    0
 *            u32 frames                      tmtop's --frames for the run (1..1024)
 *            u32 flags                       TM_TRACEFILE_FOLLOW_FORK
 *            u16 program_len                 <= TM_TRACEFILE_MAX_PROGRAM
 *            program[program_len]            the program as the user typed it
 *   chunks   u8 tag, u32 pid, u32 len        9 bytes, then len bytes of payload
 *                                            (1 <= len <= TM_TRACEFILE_MAX_CHUNK)
 *
 *   tag 'D'  data: whole wire records (wire.h) of the stream of process pid,
 *            in stream order.  The first 'D' chunk of a pid begins with the
 *            wire preamble, then that process's HELLO (whose pid is the
 *            chunk's); a record never straddles two chunks.  Chunks of
 *            different processes interleave in the order tmtop read them.
 *   tag 'X'  exit of the target, pid = the target's pid, payload
 *            u8 exited (1: reaped), i32 wait status.  At most once.
 *   tag 'Z'  end of the recording, pid = 0, payload u64 chunks (the 'D' and
 *            'X' chunks before it), u64 records (wire records in them).
 *            Always last: a file without it, or with bytes after it, is
 *            truncated or corrupt.
 *
 * The writer re-encodes the records tmtop decoded (tm_wire_put_*) rather
 * than tapping the socket's raw bytes: the launcher hands out decoded
 * records only, a stream the launcher rejected never reaches the file, and
 * every chunk holds whole records.  Records of a newer minor wire version
 * that this tmtop skipped are not recorded; strings longer than the
 * encoders' 4096-byte limit are cut there.
 *
 * The reader checks everything (magic, version, lengths, every record with
 * tm_wire_decode, HELLO first, the end mark and its counts) and stops at the
 * first problem with a message "<what> at byte N", N the file offset of the
 * chunk or record at fault. */
#ifndef TMTOP_TRACEFILE_H
#define TMTOP_TRACEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "wire.h"

#define TM_TRACEFILE_MAGIC "TMTOPREC"
#define TM_TRACEFILE_VERSION 1
#define TM_TRACEFILE_HEADER_LEN 22 /* without the program name */
#define TM_TRACEFILE_CHUNK_HEADER 9
#define TM_TRACEFILE_MAX_CHUNK (1u << 20)
#define TM_TRACEFILE_MAX_PROGRAM 4096
#define TM_TRACEFILE_MAX_PROCS 64 /* processes in one recording, as tmtop traces */

enum { TM_TRACEFILE_FOLLOW_FORK = 1u << 0 };

enum { TM_TRACEFILE_DATA = 'D', TM_TRACEFILE_EXIT = 'X', TM_TRACEFILE_END = 'Z' };

/* ---- writing --------------------------------------------------------------- */

typedef struct tm_tracefile_writer tm_tracefile_writer;

/* Creates path for a recording (O_CREAT|O_EXCL, mode 0644 before the umask;
 * an existing file is truncated, as -o does; a symlink is never followed;
 * O_CLOEXEC) and buffers its header.  program is copied.  Returns the writer
 * (owned: tm_tracefile_finish or tm_tracefile_discard) or NULL with err set
 * ("cannot write PATH: reason"). */
tm_tracefile_writer *tm_tracefile_create(const char *path, unsigned frames, uint32_t flags,
                                         const char *program, tm_err *err);

/* Appends one decoded record of process pid, as tm_record_fn receives it.
 * Writes are buffered (one write(2) per few hundred KiB).  The records of
 * more than TM_TRACEFILE_MAX_PROCS processes are left out (tmtop shows no
 * more either).  Returns 0, or -1
 * once the file could not be written (the first error is kept for
 * tm_tracefile_finish; later calls do nothing and return -1). */
int tm_tracefile_record(tm_tracefile_writer *w, uint32_t pid, const tm_wire_rec *rec);

/* Writes the target's exit and the end mark, flushes and closes the file,
 * frees w.  Returns 0, or -1 with err set; on failure the file is removed
 * when tm_tracefile_create created it. */
int tm_tracefile_finish(tm_tracefile_writer *w, uint32_t target_pid, int exited, int wstatus,
                        tm_err *err);

/* Closes the file, removes it when tm_tracefile_create created it, frees w
 * (NULL: nothing).  For a run that did not start. */
void tm_tracefile_discard(tm_tracefile_writer *w);

/* ---- reading --------------------------------------------------------------- */

typedef struct tm_tracefile_info {
    uint16_t version;
    uint32_t frames, flags;
    char program[TM_TRACEFILE_MAX_PROGRAM + 1]; /* NUL-terminated */
    /* from the 'X' chunk; valid once tm_tracefile_read returned 0 */
    int have_exit, exited, wstatus;
    uint32_t target_pid; /* the 'X' chunk's pid, else the first stream's */
    uint64_t chunks, records, bytes;
} tm_tracefile_info;

/* Called for every record, in file order, with the pid of its stream (records
 * of types this tmtop does not know are skipped, as the wire allows); each
 * stream delivers its PREAMBLE, then its HELLO, then the rest, as
 * tm_record_fn does.  rec borrows the reader's buffer.  Returns 0, or -1
 * with err->msg set to what is wrong with the record: the reader then stops
 * with that message followed by " at byte N". */
typedef int (*tm_tracefile_fn)(void *ctx, uint32_t pid, const tm_wire_rec *rec, tm_err *err);

/* Reads a whole recording from fd (a file or a pipe; read to its end).
 * info (may be NULL) gets the header at once and the rest at the end.
 * Returns 0, or -1 with err set to a one-line reason: TM_E_IO "read error:
 * ...", TM_E_VERSION, or TM_E_FORMAT "<what> at byte N" (bad magic, an
 * empty file, a truncated header or chunk, an impossible length, an unknown
 * chunk, a corrupt record, a missing end mark, bytes after it). */
int tm_tracefile_read_fd(int fd, tm_tracefile_info *info, tm_tracefile_fn fn, void *ctx,
                         tm_err *err);

/* The same over a buffer in memory (tests, fuzzers). */
int tm_tracefile_read_mem(const uint8_t *buf, size_t len, tm_tracefile_info *info,
                          tm_tracefile_fn fn, void *ctx, tm_err *err);

#endif
