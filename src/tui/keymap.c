/* keymap.c - the bindings table and what is generated from it. */
#include "keymap.h"

#include <stdio.h>
#include <string.h>

/* Several keys may share an action; the first key of an action is the one the
 * help screen names first.  Footer labels appear in table order. */
const tui_binding tui_bindings[] = {
    {'?', TUI_ACT_HELP, "help"},
    {'q', TUI_ACT_QUIT, "quit"},
    {TUI_KEY_CTRL_C, TUI_ACT_QUIT, NULL},
    {TUI_KEY_UP, TUI_ACT_UP, NULL},
    {'k', TUI_ACT_UP, NULL},
    {TUI_KEY_DOWN, TUI_ACT_DOWN, NULL},
    {'j', TUI_ACT_DOWN, NULL},
    {TUI_KEY_PGUP, TUI_ACT_PGUP, NULL},
    {TUI_KEY_PGDN, TUI_ACT_PGDN, NULL},
    {TUI_KEY_HOME, TUI_ACT_HOME, NULL},
    {TUI_KEY_END, TUI_ACT_END, NULL},
    {TUI_KEY_ENTER, TUI_ACT_ENTER, NULL},
    {'\r', TUI_ACT_ENTER, NULL},
    {TUI_KEY_LEFT, TUI_ACT_PREV, NULL},
    {'h', TUI_ACT_PREV, NULL},
    {TUI_KEY_RIGHT, TUI_ACT_NEXT, NULL},
    {'l', TUI_ACT_NEXT, NULL},
    {TUI_KEY_ESC, TUI_ACT_BACK, NULL},
    {TUI_KEY_BACKSPACE, TUI_ACT_BACK, NULL},
    {'g', TUI_ACT_KEY, "key"},
    {'c', TUI_ACT_CUMULATIVE, "cumul"},
    {'s', TUI_ACT_SNAPSHOT, "snap"},
    {'d', TUI_ACT_DIFF, "diff"},
    {'D', TUI_ACT_DIFF_PICK, NULL},
    {'/', TUI_ACT_INCLUDE, "incl"},
    {'!', TUI_ACT_EXCLUDE, "excl"},
    {'a', TUI_ACT_ALL_FRAMES, NULL},
    {'x', TUI_ACT_CLEAR, NULL},
    {'r', TUI_ACT_RESET_PEAK, NULL},
    {'p', TUI_ACT_PAUSE, "pause"},
    {'o', TUI_ACT_OUTPUT, "out"},
    {'w', TUI_ACT_WRITE, "write"},
    {'n', TUI_ACT_PROC_NEXT, NULL},
    {'N', TUI_ACT_PROC_PREV, NULL},
    {'P', TUI_ACT_PROC_PICK, NULL},
};
const size_t tui_nbindings = sizeof tui_bindings / sizeof tui_bindings[0];

static const char *const action_help[] = {"",
#define X(name, help) help,
                                          TUI_ACTIONS(X)
#undef X
};

tui_action tui_keymap_lookup(int key)
{
    for (size_t i = 0; i < tui_nbindings; i++)
        if (tui_bindings[i].key == key)
            return tui_bindings[i].action;
    return TUI_ACT_NONE;
}

const char *tui_action_help(tui_action a)
{
    return a > TUI_ACT_NONE && a < TUI_ACT_COUNT ? action_help[a] : "";
}

const char *tui_key_name(int key, char *buf, size_t len)
{
    switch (key) {
    case TUI_KEY_UP:
        return "Up";
    case TUI_KEY_DOWN:
        return "Down";
    case TUI_KEY_LEFT:
        return "Left";
    case TUI_KEY_RIGHT:
        return "Right";
    case TUI_KEY_PGUP:
        return "PgUp";
    case TUI_KEY_PGDN:
        return "PgDn";
    case TUI_KEY_HOME:
        return "Home";
    case TUI_KEY_END:
        return "End";
    case TUI_KEY_BACKSPACE:
        return "Bksp";
    case TUI_KEY_ESC:
        return "Esc";
    case TUI_KEY_ENTER:
        return "Enter";
    case '\r':
        return NULL; /* an alias of Enter: not listed */
    default:
        break;
    }
    if (key > 0 && key < 32)
        snprintf(buf, len, "^%c", '@' + key);
    else if (key > 32 && key < 127)
        snprintf(buf, len, "%c", key);
    else
        snprintf(buf, len, "#%d", key);
    return buf;
}

size_t tui_help_lines(void)
{
    return TUI_ACT_COUNT - 1;
}

void tui_help_line(size_t i, char *buf, size_t len)
{
    tui_action a = (tui_action)(i + 1);
    char keys[64] = "", name[16];
    size_t used = 0;
    for (size_t b = 0; b < tui_nbindings; b++) {
        if (tui_bindings[b].action != a)
            continue;
        const char *n = tui_key_name(tui_bindings[b].key, name, sizeof name);
        if (!n)
            continue;
        int w = snprintf(keys + used, sizeof keys - used, "%s%s", used ? " " : "", n);
        if (w < 0 || (size_t)w >= sizeof keys - used)
            break;
        used += (size_t)w;
    }
    snprintf(buf, len, "%-14s %s", keys, tui_action_help(a));
}

char *tui_footer(char *buf, size_t len, int width)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t b = 0; b < tui_nbindings; b++) {
        const tui_binding *t = &tui_bindings[b];
        if (!t->footer)
            continue;
        char name[16], item[48];
        int w = snprintf(item, sizeof item, "%s%s:%s", used ? " " : "",
                         tui_key_name(t->key, name, sizeof name), t->footer);
        if (w < 0 || used + (size_t)w >= len || (int)(used + (size_t)w) > width)
            break;
        memcpy(buf + used, item, (size_t)w + 1);
        used += (size_t)w;
    }
    return buf;
}
