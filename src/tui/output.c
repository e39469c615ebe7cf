/* output.c - scrollback and log of the traced program's output. */
#include "output.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum esc_state { ST_TEXT, ST_ESC, ST_ESC_INT, ST_CSI, ST_OSC, ST_OSC_ESC };

struct tui_output {
    pthread_mutex_t mu;
    char (*ring)[TUI_OUTPUT_LINE + 1]; /* finished lines, oldest at head */
    size_t max, head, n;
    char cur[TUI_OUTPUT_LINE + 1]; /* the unfinished line */
    size_t curlen;
    int pending_cr; /* a CR was seen: CRLF ends the line, CR+text starts it over */
    enum esc_state st;
    int log_fd, log_failed;
    uint64_t bytes;
};

tui_output *tui_output_new(size_t max_lines, int log_fd)
{
    tui_output *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->max = max_lines ? max_lines : 1;
    o->ring = calloc(o->max, sizeof *o->ring);
    if (!o->ring) {
        free(o);
        return NULL;
    }
    pthread_mutex_init(&o->mu, NULL);
    o->log_fd = log_fd;
    return o;
}

void tui_output_free(tui_output *o)
{
    if (!o)
        return;
    if (o->log_fd >= 0)
        close(o->log_fd);
    pthread_mutex_destroy(&o->mu);
    free(o->ring);
    free(o);
}

static void end_line(tui_output *o)
{
    size_t slot = (o->head + o->n) % o->max;
    if (o->n == o->max) {
        slot = o->head;
        o->head = (o->head + 1) % o->max;
    } else {
        o->n++;
    }
    memcpy(o->ring[slot], o->cur, o->curlen);
    o->ring[slot][o->curlen] = '\0';
    o->curlen = 0;
}

static void put_char(tui_output *o, char c)
{
    if (o->curlen == TUI_OUTPUT_LINE)
        end_line(o); /* a very long line continues on the next one */
    o->cur[o->curlen++] = c;
}

static void text_byte(tui_output *o, unsigned char c)
{
    if (o->pending_cr) {
        o->pending_cr = 0;
        if (c == '\n') {
            end_line(o);
            return;
        }
        o->curlen = 0; /* CR then text: the line is being redrawn (a progress bar) */
    }
    switch (c) {
    case '\n':
        end_line(o);
        return;
    case '\r':
        o->pending_cr = 1;
        return;
    case '\t':
        do
            put_char(o, ' ');
        while (o->curlen % 8);
        return;
    case '\b':
        /* step back over one character, UTF-8 continuation bytes included */
        while (o->curlen && ((unsigned char)o->cur[o->curlen - 1] & 0xC0) == 0x80)
            o->curlen--;
        if (o->curlen)
            o->curlen--;
        return;
    case 0x1b:
        o->st = ST_ESC;
        return;
    default:
        if (c < 0x20 || c == 0x7f)
            return; /* other controls (BEL, ...) have no text */
        put_char(o, (char)c);
    }
}

void tui_output_feed(tui_output *o, const char *buf, size_t n)
{
    pthread_mutex_lock(&o->mu);
    o->bytes += n;
    if (o->log_fd >= 0 && !o->log_failed) {
        const char *p = buf;
        size_t left = n;
        while (left) {
            ssize_t w = write(o->log_fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                o->log_failed = 1; /* the pane still works; the status line says so */
                break;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (o->st) {
        case ST_TEXT:
            text_byte(o, c);
            break;
        case ST_ESC:
            o->st = c == '['                ? ST_CSI
                    : c == ']'              ? ST_OSC
                    : c >= 0x20 && c < 0x30 ? ST_ESC_INT
                                            : ST_TEXT;
            break;
        case ST_ESC_INT: /* ESC ( B and friends: intermediates, then a final byte */
            if (c >= 0x30 && c <= 0x7e)
                o->st = ST_TEXT;
            break;
        case ST_CSI: /* parameters and intermediates until a final byte */
            if (c >= 0x40 && c <= 0x7e)
                o->st = ST_TEXT;
            break;
        case ST_OSC: /* until BEL or ESC \ */
            if (c == 0x07)
                o->st = ST_TEXT;
            else if (c == 0x1b)
                o->st = ST_OSC_ESC;
            break;
        case ST_OSC_ESC:
            o->st = c == '\\' ? ST_TEXT : ST_OSC;
            break;
        }
    }
    pthread_mutex_unlock(&o->mu);
}

size_t tui_output_lines(tui_output *o)
{
    pthread_mutex_lock(&o->mu);
    size_t n = o->n + (o->curlen > 0);
    pthread_mutex_unlock(&o->mu);
    return n;
}

uint64_t tui_output_bytes(tui_output *o, int *log_failed)
{
    pthread_mutex_lock(&o->mu);
    uint64_t b = o->bytes;
    if (log_failed)
        *log_failed = o->log_failed;
    pthread_mutex_unlock(&o->mu);
    return b;
}

size_t tui_output_copy(tui_output *o, size_t first, size_t n, char (*out)[TUI_OUTPUT_LINE + 1])
{
    pthread_mutex_lock(&o->mu);
    size_t total = o->n + (o->curlen > 0), k = 0;
    for (size_t i = first; i < total && k < n; i++, k++) {
        if (i < o->n) {
            memcpy(out[k], o->ring[(o->head + i) % o->max], TUI_OUTPUT_LINE + 1);
        } else {
            memcpy(out[k], o->cur, o->curlen);
            out[k][o->curlen] = '\0';
        }
    }
    pthread_mutex_unlock(&o->mu);
    return k;
}
