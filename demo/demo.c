/* demo.c - a small program with a memory story for tmtop to tell: a cache
 * that grows and is never trimmed (a leak), a buffer grown with realloc,
 * temporary strings that are freed, and a list built and torn down.
 *
 *   tmtop --report ./build/tmtop-demo            (add a number of rounds)   */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct node {
    struct node *next;
    int key;
    char payload[40];
};

struct cache_entry {
    char *name;
    size_t len;
};

static struct cache_entry *cache;
static size_t cache_len, cache_cap;

/* Remembers a name forever: the cache is never trimmed, so it leaks. */
static void cache_remember(const char *name)
{
    if (cache_len == cache_cap) {
        cache_cap = cache_cap ? 2 * cache_cap : 16;
        cache = realloc(cache, cache_cap * sizeof *cache);
    }
    cache[cache_len].name = strdup(name);
    cache[cache_len].len = strlen(name);
    cache_len++;
}

static struct node *list_build(int n)
{
    struct node *head = NULL;
    for (int i = 0; i < n; i++) {
        struct node *x = malloc(sizeof *x);
        x->next = head;
        x->key = i;
        snprintf(x->payload, sizeof x->payload, "node %d", i);
        head = x;
    }
    return head;
}

static void list_free(struct node *head)
{
    while (head) {
        struct node *next = head->next;
        free(head);
        head = next;
    }
}

static char *format_line(int round, int i)
{
    char *line = malloc(96);
    snprintf(line, 96, "round %d item %d", round, i);
    return line;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    int delay_ms = argc > 2 ? atoi(argv[2]) : 0;
    struct timespec pause = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    size_t checksum = 0;

    for (int r = 0; r < rounds; r++) {
        struct node *list = list_build(1000);
        for (int i = 0; i < 100; i++) {
            char *line = format_line(r, i);
            checksum += strlen(line);
            if (i % 10 == 0)
                cache_remember(line);
            free(line);
        }
        list_free(list);
        if (delay_ms)
            nanosleep(&pause, NULL);
    }
    printf("demo: %d rounds, %zu cached names, checksum %zu\n", rounds, cache_len, checksum);
    return 0;
}
