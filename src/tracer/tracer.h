/* tracer.h - launching a program under tmtop's allocation hook and reading
 * the trace streams of its processes.
 *
 * Two halves live in src/tracer:
 *  - the hook, libtmtop-hook.so, preloaded into the target (hook.c).  Its
 *    interface is the allocation functions it interposes and the environment
 *    below; it writes the wire format of wire.h.
 *  - the launcher (launcher.c), linked into tmtop, whose API is this header.
 *
 * The channel: tmtop listens on an abstract-namespace UNIX stream socket
 * (no filesystem name) and passes its name and a random 64-bit token in the
 * environment.  The hook connects from its constructor, sends the preamble and
 * a HELLO carrying the token; tmtop drops a connection whose peer has another
 * uid (SO_PEERCRED) or whose HELLO has a wrong token. */
#ifndef TMTOP_TRACER_H
#define TMTOP_TRACER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"
#include "wire.h"

/* Environment the launcher sets for the hook; the hook removes them (and
 * itself from LD_PRELOAD) in its constructor so exec'd programs run untraced. */
#define TM_ENV_SOCK "TMTOP_SOCK"         /* abstract socket name, without the NUL */
#define TM_ENV_TOKEN "TMTOP_TOKEN"       /* 16 hex digits */
#define TM_ENV_FRAMES "TMTOP_FRAMES"     /* stack depth, decimal */
#define TM_ENV_FLUSH_MS "TMTOP_FLUSH_MS" /* timer flush interval, default 10 */
/* "1": forked children are traced as their own processes (own connection,
 * own HELLO with ppid = the parent); else they run untraced.  exec'd programs
 * always run untraced. */
#define TM_ENV_FOLLOW "TMTOP_FOLLOW"

#define TM_HOOK_NAME "libtmtop-hook.so"
#define TM_DEFAULT_FRAMES 64
#define TM_MAX_FRAMES 1024

/* Checks that prog can be traced and finds it as execvp(3) would.
 * Fails with a one-line reason in err for: not found, a directory, not
 * executable, not an ELF file, a static binary (no PT_INTERP: the hook cannot
 * load), a setuid/setgid binary (the loader ignores LD_PRELOAD).
 * On success writes the path that will be executed to resolved. */
int tm_tracer_check_program(const char *prog, char *resolved, size_t resolved_len, tm_err *err);

/* Finds libtmtop-hook.so next to the running tmtop executable, or in the
 * install location.  Writes its absolute path to out. */
int tm_tracer_find_hook(char *out, size_t out_len, tm_err *err);

typedef struct tm_launch {
    char *const *argv;     /* argv[0] is the program, as for execvp */
    const char *hook_path; /* absolute path of libtmtop-hook.so */
    unsigned max_frames;   /* 1..TM_MAX_FRAMES */
    int use_pty;           /* run the target on a new pseudo-terminal (live view);
                              0: it inherits tmtop's stdin, stdout, stderr */
    unsigned short pty_rows, pty_cols;
    int follow_fork; /* trace forked children too (TM_ENV_FOLLOW): each opens
                        its own stream, delivered with its own pid */
} tm_launch;

typedef struct tm_session tm_session;

/* Validates the program, opens the channel, forks and execs the target under
 * the hook.  Returns the session (owned: tm_session_free) or NULL with err
 * set; nothing is left running on failure.  While a session lives, tmtop
 * ignores SIGINT and SIGQUIT (the terminal's signals are the target's to
 * handle, as with system(3)) unless use_pty is set. */
tm_session *tm_session_start(const tm_launch *l, tm_err *err);

pid_t tm_session_pid(const tm_session *s);

/* The pty master when use_pty was set, else -1.  Owned by the session. */
int tm_session_pty_fd(const tm_session *s);

/* Called for every decoded record, in stream order per process.  pid is the
 * process whose stream it came from.  A non-zero return stops the pump and
 * is returned from tm_session_pump. rec and the pointers in it borrow the
 * session's buffer: valid only during the call.  Each stream delivers the
 * PREAMBLE, then its HELLO, then the rest. */
typedef int (*tm_record_fn)(void *ctx, uint32_t pid, const tm_wire_rec *rec);

/* Waits up to timeout_ms (-1: until something happens) for trace data, the
 * target's exit or new connections, decodes everything that arrived and calls
 * fn for each record.  Returns 1 while there may be more to come, 0 once the
 * target has exited and every stream has ended (END or EOF; a stream that
 * stays silent for a second after the exit is given up), or -1 with err set
 * on a channel error. A corrupt stream closes that connection and is
 * reported through err once, with the pump going on with the others.
 * (err->code is reset to TM_OK on entry, so a return >= 0 with err->code set
 * means a stream was dropped during this call.) */
int tm_session_pump(tm_session *s, int timeout_ms, tm_record_fn fn, void *ctx, tm_err *err);

/* Counters of the channel since tm_session_start, for diagnostics and
 * throughput measurements. */
typedef struct tm_session_stats {
    uint64_t bytes;     /* trace bytes read from every connection */
    uint64_t records;   /* records passed to the callback */
    unsigned streams;   /* connections whose HELLO was accepted */
    unsigned rejected;  /* connections dropped before delivering anything: another
                           uid, a first record other than HELLO, a wrong token */
    unsigned corrupt;   /* streams closed on a decode error or cut inside a record */
    unsigned abandoned; /* streams given up: silent for 1 s after the target's exit */
} tm_session_stats;

void tm_session_get_stats(const tm_session *s, tm_session_stats *out);

/* After the target was reaped: 1 and its wait status in *wstatus, else 0. */
int tm_session_exited(const tm_session *s, int *wstatus);

/* Sends sig to the target (its process group when it runs on a pty). */
void tm_session_kill(tm_session *s, int sig);

/* Closes the channel; a target still running is left running.  Restores
 * SIGINT/SIGQUIT. */
void tm_session_free(tm_session *s);

#endif
