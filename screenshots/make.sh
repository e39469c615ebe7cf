#!/bin/sh
# make.sh - the pictures of tmtop's live view, from real runs.
#
#   screenshots/make.sh [BUILD_DIR]        (default: build)
#
# Runs BUILD_DIR/tmtop on the bundled demo (demo/demo.c, built afresh) in a
# private tmux server, moves through the views with send-keys, captures the
# pane with its colours (capture-pane -e) and renders each capture to a PNG
# with ansi2png.py: live.png, diff.png, traceback.png, help.png.
# Needs tmux, python3 with Pillow (Debian: python3-pil) and a monospace font
# (Debian: fonts-dejavu-core).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
tmtop=$build/tmtop
cols=100
rows=30
for f in "$tmtop"; do
    [ -x "$f" ] || { echo "make.sh: $f is missing: build tmtop first" >&2; exit 1; }
done
command -v tmux >/dev/null || { echo "make.sh: tmux is not installed" >&2; exit 1; }
# a python3 with Pillow: $PYTHON, the first python3 on PATH, or the system's
py=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
    if "$p" -c 'import PIL' 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || { echo "make.sh: python3 needs Pillow (apt-get install python3-pil)" >&2; exit 1; }

work=$(mktemp -d /tmp/tmtop-XXXXXX)
sock=tmtop-shots-$$
tm() { tmux -L "$sock" -f /dev/null "$@"; }
cleanup() { tm kill-server 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "captures kept in $work" || rm -rf "$work"; }
trap cleanup EXIT INT TERM

# Waits (up to 20 s) until the screen shows a text.
wait_for() {
    i=0
    until tm capture-pane -t s -p | grep -qF -- "$1"; do
        i=$((i + 1))
        [ $i -lt 400 ] || { echo "make.sh: timed out waiting for '$1'" >&2; tm capture-pane -t s -p >&2; exit 1; }
        sleep 0.05
    done
}

shot() {
    tm capture-pane -t s -p -e -N > "$work/$1.ansi"
    "$py" "$here/ansi2png.py" --cols $cols --rows $rows "$work/$1.ansi" "$here/$1.png"
    echo "wrote screenshots/$1.png"
}

# The demo, built again in a neutral folder ($work/src) so the pictures show
# no path of the machine that made them: 150 rounds 100 ms apart (about 15 s),
# the cache growing every round.
mkdir -p "$work/src"
cp "$here/../demo/demo.c" "$work/src/demo.c"
(cd "$work/src" && ${CC:-cc} -g -O0 -o tmtop-demo demo.c)
tm new-session -d -s s -x $cols -y $rows \
    "cd $work/src && env LANG=C.UTF-8 TERM=screen-256color TMPDIR=$work $tmtop ./tmtop-demo 150 100; sleep 600"
wait_for "Top lines"
sleep 4
wait_for "cache_remember"
shot live

# a snapshot, a few seconds of growth, then the diff against it
tm send-keys -t s s
wait_for "snapshot #1"
sleep 3
tm send-keys -t s d
wait_for "Diff now against #1"
sleep 1
shot diff

# back to the live view; the traceback of the top row
tm send-keys -t s d
wait_for "Top lines"
tm send-keys -t s Home Enter
wait_for "Traceback of"
sleep 1
shot traceback

tm send-keys -t s Escape '?'
wait_for "Esc or ?: close"
shot help

tm send-keys -t s Escape q
