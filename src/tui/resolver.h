/* resolver.h - a tm_resolver that never blocks: symbolization on its own
 * thread, behind a cache.
 *
 * The live explorer queries the store under its lock, ten times a second; a
 * DWARF load of a large module takes far longer.  The front resolver answers
 * from the cache, or queues the address for the back end and answers with a
 * TM_FRAME_PENDING frame (module + offset), which the store does not cache and
 * asks for again on its next query.  The back end (tm_sym in tmtop, a fake in
 * tests) is called only from the resolver's thread, which is how libdwarf
 * wants it: one tm_sym, one thread. */
#ifndef TMTOP_TUI_RESOLVER_H
#define TMTOP_TUI_RESOLVER_H

#include <stddef.h>

#include "store.h"

typedef struct tui_resolver tui_resolver;

/* Starts the resolver thread.  backend is used only on that thread; its frame
 * strings must outlive the tui_resolver.  notify (may be NULL) is called on
 * the resolver thread when answers arrived (after a few, or when the queue ran
 * empty) and must not block.  Returns NULL when out of memory or the thread
 * cannot start.  Owned: tui_resolver_free. */
tui_resolver *tui_resolver_new(tm_resolver backend, void (*notify)(void *ctx), void *notify_ctx);

/* Stops and joins the thread, frees the cache. */
void tui_resolver_free(tui_resolver *r);

/* The non-blocking front, for tm_snapshot_statistics and friends.  Thread-safe;
 * valid until tui_resolver_free. */
tm_resolver tui_resolver_front(tui_resolver *r);

/* Addresses queued or being resolved right now. */
size_t tui_resolver_busy(tui_resolver *r);

/* Pending frames handed out by the front since the start: a counter that
 * only grows.  A query during which it did not move saw only final answers. */
uint64_t tui_resolver_pending_answers(tui_resolver *r);

#endif
