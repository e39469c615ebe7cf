/* e2e_basic.c - malloc, calloc, strdup, malloc(0), failed calls, freed and
 * leaked blocks at known sites.  Every allocation line carries a marker
 * comment; tests/e2e/e2e.py finds the lines from the markers and checks
 * tmtop's numbers for them (live bytes and blocks at exit).
 *
 * stdin is copied to stdout and one line goes to stderr, so the driver can
 * check that the target keeps its standard streams. */
#include <stdint.h>

#include "e2e_common.h"

#define NODES 1000
#define NODE_SIZE 48

static void *nodes[NODES];
static void *keep[512];
static volatile size_t huge = (size_t)1 << 62; /* volatile: no compile-time size warning */

static void *make_node(size_t n)
{
    return malloc(n); /* @site:node */
}

int main(void)
{
    int k = 0;

    for (int i = 0; i < NODES; i++)
        nodes[i] = make_node(NODE_SIZE);

    for (int i = 0; i < 5; i++)
        keep[k++] = calloc(10, 100); /* @site:calloc */

    /* Allocated and freed: no live block may remain at this line. */
    for (int i = 0; i < 500; i++) {
        void *p = malloc(64); /* @site:freed */
        free(p);
    }

    /* 200 blocks, every other one freed: 100 live. */
    void *half[200];
    for (int i = 0; i < 200; i++)
        half[i] = malloc(32); /* @site:half */
    for (int i = 0; i < 200; i += 2)
        free(half[i]);
    for (int i = 1; i < 200; i += 2)
        keep[k++] = half[i];

    /* strdup allocates inside libc: the site is still this line. */
    for (int i = 0; i < 3; i++)
        keep[k++] = strdup("hello, e2e"); /* @site:strdup */

    /* malloc(0) returns a unique pointer in glibc: a live block of 0 bytes. */
    keep[k++] = malloc(0); /* @site:zero */
    keep[k++] = malloc(0); /* @site:zero2 */

    /* Failed calls are not allocations. */
    void *fail1 = malloc(huge);       /* @site:fail_malloc */
    void *fail2 = calloc(huge, huge); /* @site:fail_calloc */
    free(NULL);

    /* Freed by a free of the whole chain later: a linked list. */
    struct cell {
        struct cell *next;
        char pad[24];
    } *head = NULL;
    for (int i = 0; i < 50; i++) {
        struct cell *c = malloc(sizeof *c); /* @site:list */
        c->next = head;
        head = c;
    }
    while (head) {
        struct cell *n = head->next;
        free(head);
        head = n;
    }

    e2e_echo_stdin();
    e2e_say(1, "basic: done, %d kept, failed calls %s\n", k, !fail1 && !fail2 ? "ok" : "BAD");
    e2e_say(2, "basic: a line on stderr\n");
    return 0;
}
