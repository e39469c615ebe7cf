#!/usr/bin/env python3
"""End-to-end tests of tmtop's live view, driven through tmux.

Each test starts a private tmux server (its own -L socket), runs
`tmtop tui_phases FIFO` in a detached window of a fixed size, moves the
target through allocation phases by writing commands into the FIFO (see
tests/programs/tui_phases.c), presses keys with send-keys and reads the
screen with capture-pane.  Sites are found from the marker comments of
tui_phases.c (/* @site:a */), never by line number.

The screen is polled until it shows what is expected (or a timeout): the
hook flushes every 10 ms and the view refreshes ten times a second, so no
test sleeps for a fixed time except where time itself is checked.

Usage (CTest runs one test per invocation, see tests/cmake/tui.cmake):
    tui_e2e.py --tmtop BUILD/tmtop --phases BUILD/tests/tui/tui_phases \\
               --srcdir tests/programs TEST...
    tui_e2e.py --list
Exit status: 0 passed, 1 failed, 77 skipped (no tmux, or a tmtop without
the live view).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77
MARKER = re.compile(r"/\*\s*@site:(\w+)\s*\*/")
COLS, ROWS = 100, 30


class Failure(Exception):
    pass


class Ctx:
    def __init__(self, opts):
        self.tmtop = os.path.realpath(opts.tmtop)
        self.phases = os.path.realpath(opts.phases)
        self.src = os.path.join(os.path.realpath(opts.srcdir), "tui_phases.c")
        self.verbose = opts.verbose
        self.keep = opts.keep
        self.tmp = tempfile.mkdtemp(prefix="tmtop-tui-")
        self.checks = 0
        self.failures = []
        self.lines = {}
        with open(self.src, encoding="utf-8") as f:
            for n, text in enumerate(f, 1):
                for name in MARKER.findall(text):
                    self.lines[name] = n
                if re.match(r"int main\(", text):
                    self.main_line = n

    def check(self, cond, msg):
        self.checks += 1
        if not cond:
            self.failures.append(msg)
            print("FAIL: " + msg, flush=True)
        elif self.verbose:
            print("ok: " + msg, flush=True)
        return cond

    def site(self, name):
        """The table's label of a site: "tui_phases.c:42 alloc_a"."""
        return "tui_phases.c:%d alloc_%s" % (self.lines[name], name)


class Session:
    """tmtop on tui_phases in a private tmux server."""

    count = 0

    def __init__(self, ctx, cols=COLS, rows=ROWS, env=None, args=(), expect_target=True,
                 command=None):
        Session.count += 1
        self.ctx = ctx
        self.sock = "tmtop-tui-%d-%d" % (os.getpid(), Session.count)
        self.dir = os.path.join(ctx.tmp, "run%d" % Session.count)
        os.mkdir(self.dir)
        self.fifo = os.path.join(self.dir, "control")
        os.mkfifo(self.fifo)
        self.fd = None
        environ = {
            "TMPDIR": self.dir,
            "LANG": "C.UTF-8",
            "LC_ALL": "",
            "TERM": "screen",
            "NO_COLOR": "",
        }
        environ.update(env or {})
        exports = " ".join("%s=%s" % (k, shq(v)) for k, v in environ.items())
        # command: another program than tui_phases (its FIFO is not used)
        target = list(command) if command is not None else [ctx.phases, self.fifo]
        tm = " ".join(shq(a) for a in [ctx.tmtop, *args, *target])
        # the shell stays after tmtop, so its exit status and whatever it
        # left on the terminal can be read
        script = 'cd %s && env %s %s; echo "[tmtop exit $?]"; exec sleep 600' % (
            shq(self.dir),
            exports,
            tm,
        )
        self.tmux(
            "new-session", "-d", "-s", "t", "-x", str(cols), "-y", str(rows), "sh -c %s" % shq(script)
        )
        self.started = time.monotonic()
        if command is not None:
            self.wait_text("?:help")
            return
        if not expect_target:
            return
        # the FIFO opens once the target has opened its end
        deadline = time.monotonic() + 15
        while self.fd is None:
            try:
                self.fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                if time.monotonic() > deadline:
                    screen = self.capture()
                    if "no live view" in screen:
                        self.close()
                        raise NoLiveView()
                    raise Failure("the target never opened its FIFO; screen:\n" + screen)
                time.sleep(0.05)
        os.set_blocking(self.fd, True)
        # the view; the target's own output on tmtop's terminal means this
        # tmtop ran it without the view (a CLI not wired to the live view:
        # skipped, not failed)
        deadline = time.monotonic() + 10
        while "?:help" not in self.capture():
            if time.monotonic() > deadline:
                screen = self.capture()
                if "tui_phases: ready" in screen or "no live view" in screen:
                    self.close()
                    raise NoLiveView()
                raise Failure("the live view never appeared; screen:\n" + screen)
            time.sleep(0.05)

    def tmtop_pid(self):
        """tmtop's pid: the child of the pane's shell."""
        shell = self.tmux("list-panes", "-t", "t", "-F", "#{pane_pid}").strip()
        try:
            with open("/proc/%s/task/%s/children" % (shell, shell)) as f:
                kids = f.read().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def tmux(self, *args, check=True):
        # a UTF-8 locale for the server too, whatever the caller's is
        env = dict(os.environ, LANG="C.UTF-8")
        env.pop("LC_ALL", None)
        env.pop("LC_CTYPE", None)
        p = subprocess.run(
            ["tmux", "-L", self.sock, "-f", "/dev/null", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        if check and p.returncode != 0:
            raise Failure("tmux %s: %s" % (" ".join(args), p.stderr.strip()))
        return p.stdout

    def send(self, command):
        """One command to the target."""
        if self.ctx.verbose:
            print("> " + command, flush=True)
        os.write(self.fd, (command + "\n").encode())

    def keys(self, *keys):
        if self.ctx.verbose:
            print("keys: %s" % " ".join(keys), flush=True)
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def capture(self, escapes=False):
        args = ["capture-pane", "-t", "t", "-p", "-J"]
        if escapes:
            args.append("-e")
        return self.tmux(*args, check=False)

    def wait(self, pred, what, timeout=10):
        """Polls the screen until pred(screen) is true; returns the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if pred(screen):
                self.ctx.check(True, what)
                return screen
            if time.monotonic() > deadline:
                self.ctx.check(False, "%s; the screen was:\n%s" % (what, screen))
                return screen
            time.sleep(0.05)

    def wait_text(self, text, timeout=10):
        return self.wait(lambda s: text in s, "expected %r on the screen" % text, timeout)

    def wait_gone(self, text, timeout=10):
        return self.wait(lambda s: text not in s, "expected %r to go" % text, timeout)

    def row(self, screen, label):
        """The table row whose site is label, as a dict, or None."""
        for line in screen.splitlines():
            r = parse_row(line)
            if r and r["site"] == label:
                return r
        return None

    def wait_row(self, label, timeout=10, **expect):
        """Waits until the row of label has the expected fields."""
        got = {}

        def ok(screen):
            r = self.row(screen, label)
            got["row"] = r
            return r is not None and all(r.get(k) == v for k, v in expect.items())

        screen = self.wait(ok, "row %r with %r (last seen: %r)" % (label, expect, got), timeout)
        return got.get("row"), screen

    def exit_status(self, timeout=10):
        """tmtop's exit status, once the shell printed it."""
        screen = self.wait(
            lambda s: "[tmtop exit " in s, "tmtop to exit", timeout=timeout
        )
        m = re.search(r"\[tmtop exit (\d+)\]", screen)
        return (int(m.group(1)) if m else None), screen

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        self.tmux("kill-server", check=False)


class NoLiveView(Exception):
    pass


def shq(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


SIZE = r"-?\d+(?:\.\d)? (?:B|KiB|MiB|GiB|TiB)"
SIGNED = r"[+-]\d+(?:\.\d)? (?:B|KiB|MiB|GiB|TiB)"
LIVE_ROW = re.compile(r"^\s*(%s)\s+(\d+)\s+(%s|-)\s\s(\S.*?)\s*$" % (SIZE, SIZE))
DIFF_ROW = re.compile(
    r"^\s*(%s)\s+(%s)\s+(\d+)\s+([+-]\d+)\s+(%s|-)\s\s(\S.*?)\s*$" % (SIZE, SIGNED, SIZE)
)


def parse_row(line):
    m = DIFF_ROW.match(line)
    if m:
        return {
            "size": m.group(1),
            "size_diff": m.group(2),
            "count": int(m.group(3)),
            "count_diff": int(m.group(4)),
            "average": m.group(5),
            "site": m.group(6),
        }
    m = LIVE_ROW.match(line)
    if m:
        return {"size": m.group(1), "count": int(m.group(2)), "average": m.group(3), "site": m.group(4)}
    return None


def fmt(size, sign=False):
    """tracemalloc's _format_size."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 100 and unit != "B":
            return ("%+.1f %s" if sign else "%.1f %s") % (size, unit)
        if abs(size) < 10 * 1024 or unit == "TiB":
            return ("%+.0f %s" if sign else "%.0f %s") % (size, unit)
        size /= 1024


# ---- the tests -----------------------------------------------------------------


def test_live(c):
    """Live sites with their exact sizes and counts, updating as the target runs."""
    s = Session(c)
    try:
        s.wait_text("running")
        s.send("alloc a 10 100")
        s.send("alloc b 3 1000")
        s.wait_row(c.site("a"), size="1000 B", count=10, average="100 B")
        s.wait_row(c.site("b"), size="3000 B", count=3, average="1000 B")
        screen = s.capture()
        c.check(re.search(r"tmtop .*tui_phases .*pid \d+  running", screen) is not None, "title")
        c.check("traced " in screen and "peak " in screen and "blocks " in screen, "header")
        c.check("key:lineno cumul:off filters:none snaps:0" in screen, "status line")
        c.check("?:help" in screen, "help hint")
        # sorted by size: b (3000 B) above a (1000 B)
        lines = screen.splitlines()
        ib = [i for i, l in enumerate(lines) if c.site("b") in l]
        ia = [i for i, l in enumerate(lines) if c.site("a") in l]
        c.check(ib and ia and ib[0] < ia[0], "rows sorted by size")
        # a later phase: frees and a third site (calloc)
        s.send("free a 4")
        s.send("alloc c 7 64")
        s.wait_row(c.site("a"), size="600 B", count=6, average="100 B")
        s.wait_row(c.site("c"), size="448 B", count=7, average="64 B")
        s.send("free b 3")
        s.wait_gone(c.site("b"))
        s.keys("q")
        rc, screen = s.exit_status()
        c.check(rc == 128 + 15, "q stops the program with SIGTERM: exit %r" % rc)
    finally:
        s.close()


def test_snapshot_diff(c):
    """s takes numbered snapshots; d diffs now against the last one, with
    tracemalloc's signs: a new site has size_diff = size, a vanished one
    shows size 0 and a negative diff; D picks the two sides."""
    s = Session(c)
    try:
        s.send("alloc a 10 100")
        s.wait_row(c.site("a"), count=10)
        s.keys("s")
        s.wait_text("snapshot #1:")
        s.wait_text("snaps:1")
        s.send("free a 4")
        s.send("alloc c 2 50")
        s.wait_row(c.site("c"), count=2)
        s.keys("d")
        s.wait_text("Diff now against #1")
        s.wait_row(c.site("a"), size="600 B", size_diff="-400 B", count=6, count_diff=-4)
        s.wait_row(c.site("c"), size="100 B", size_diff="+100 B", count=2, count_diff=2)
        # the diff stays live; a vanished site: size 0, negative diff
        s.send("free a 6")
        s.wait_row(c.site("a"), size="0 B", size_diff="-1000 B", count=0, count_diff=-10)
        screen = s.capture()
        c.check("\u0394Size" in screen and "\u0394Count" in screen, "diff columns")
        # sorted by |size_diff|: a (-1000) above c (+100)
        lines = screen.splitlines()
        ia = [i for i, l in enumerate(lines) if c.site("a") in l]
        ic = [i for i, l in enumerate(lines) if c.site("c") in l]
        c.check(ia and ic and ia[0] < ic[0], "diff rows sorted by |size_diff|")
        # d again: the live view
        s.keys("d")
        s.wait_text("Top lines")
        s.wait_gone(c.site("a"))
        # D: snapshot #1 against snapshot #2
        s.keys("s")
        s.wait_text("snapshot #2:")
        s.send("alloc b 1 7")
        s.wait_row(c.site("b"), count=1)
        s.keys("D")
        s.wait_text("choose the OLDER side")
        s.keys("Down", "Enter")  # #2 is first, then #1
        s.wait_text("Compare with #1: choose the NEWER side")
        s.keys("Down", "Enter")  # now, then #2
        s.wait_text("Diff #2 against #1")
        # b came after #2: not in this diff
        screen = s.wait_row(c.site("c"), size="100 B", size_diff="+100 B", count=2, count_diff=2)[1]
        c.check(s.row(screen, c.site("b")) is None, "a site born after #2 is not in #2 - #1")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def test_filters(c):
    """/ and ! add tracemalloc filters from a prompt; x clears them; a
    toggles all_frames."""
    s = Session(c)
    try:
        s.send("alloc a 2 10")
        s.send("alloc b 3 10")
        s.wait_row(c.site("b"), count=3)
        # exclude the program's own file: none of its sites remain
        s.keys("!")
        s.wait_text("exclude files matching")
        s.type("*/tui_phases.c")
        s.keys("Enter")
        s.wait_text("filters:-*/tui_phases.c")
        s.wait_gone(c.site("a"))
        c.check(c.site("b") not in s.capture(), "excluded site gone")
        # x: back
        s.keys("x")
        s.wait_text("filters:none")
        s.wait_row(c.site("a"), count=2)
        # include a file no frame comes from: nothing matches
        s.keys("/")
        s.type("*/nowhere.c")
        s.keys("Enter")
        s.wait_text("no site matches the filters")
        # all_frames: still nothing (no frame is in nowhere.c)
        s.keys("a")
        s.wait_text("(all frames)")
        # a second inclusive filter ORs with the first
        s.keys("/")
        s.type("*phases.c")
        s.keys("Enter")
        s.wait_text("filters:+*/nowhere.c +*phases.c (all frames)")
        s.wait_row(c.site("a"), count=2)
        s.wait_row(c.site("b"), count=3)
        # Esc cancels a prompt; Backspace edits
        s.keys("!")
        s.type("abc")
        s.keys("BSpace")
        s.wait_text("exclude files matching (fnmatch glob): ab")
        s.keys("Escape")
        s.wait_gone("exclude files matching")
        c.check("-ab" not in s.capture(), "a cancelled prompt adds no filter")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def test_keys(c):
    """g cycles lineno -> filename -> traceback; c toggles cumulative."""
    s = Session(c)
    try:
        s.send("alloc a 2 100")
        s.send("alloc b 3 100")
        s.wait_row(c.site("b"), count=3)
        s.keys("g")
        s.wait_text("Top files")
        s.wait_text("key:filename")
        s.wait_row("tui_phases.c", size="500 B", count=5, average="100 B")
        s.keys("g")
        s.wait_text("Top tracebacks")
        s.wait_text("cumul:n/a")
        # a traceback row: the site, then its callers
        screen = s.wait_text(c.site("b") + " < tui_phases.c:")
        r = [l for l in screen.splitlines() if c.site("b") + " < " in l]
        c.check(r and "do_alloc" in r[0], "traceback row names the caller: %r" % r)
        s.keys("g")
        s.wait_text("Top lines")
        s.wait_row(c.site("b"), count=3)
        # cumulative: main's call line carries everything allocated below it
        s.keys("c")
        s.wait_text("Top lines (cumulative)")
        s.wait_text("cumul:on")
        s.wait(
            lambda scr: any(
                r and r["site"].endswith(" main") and r["count"] == 5
                for r in map(parse_row, scr.splitlines())
            ),
            "a main row with all 5 blocks",
        )
        s.keys("c")
        s.wait_text("cumul:off")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def test_detail(c):
    """Enter shows the selected row's traceback: function, file:line and
    module per frame, and the source line."""
    s = Session(c)
    try:
        s.send("alloc a 4 100")
        s.wait_row(c.site("a"), count=4)
        # select the row of site a and open it
        screen = s.capture()
        rows = [parse_row(l) for l in screen.splitlines()]
        rows = [r for r in rows if r]
        idx = [i for i, r in enumerate(rows) if r["site"] == c.site("a")]
        c.check(idx, "site a listed")
        s.keys("Home", *(["Down"] * (idx[0] if idx else 0)), "Enter")
        s.wait_text("Traceback of " + c.site("a"))
        # Frames are resolved off the UI thread and drawn as module+offset
        # until then: wait for each, do not judge the first capture.
        s.wait(lambda scr: "size=400 B, count=4, average=100 B" in scr, "detail header")
        site = r" > #\d+ +alloc_a +\S*tui_phases\.c:%d +\(tui_phases\)" % c.lines["a"]
        s.wait(lambda scr: re.search(site, scr), "the site frame with file:line and module")
        s.wait(lambda scr: "return malloc(size); /* @site:a */" in scr, "the source line")
        # the callers, as the symbolizer resolves them
        s.wait(lambda scr: re.search(r"#\d+ +do_alloc +\S*tui_phases\.c:\d+", scr), "the caller")
        s.wait(lambda scr: re.search(r"#\d+ +main +\S*tui_phases\.c:\d+", scr), "main")
        s.wait_text("do_alloc(site, n, strtol(end, NULL, 10));")
        # live: more blocks at the site
        s.send("alloc a 1 100")
        s.wait_text("size=500 B, count=5, average=100 B")
        s.keys("Escape")
        s.wait_text("Top lines")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def test_help(c):
    """? lists every key from the key table; Esc closes it."""
    s = Session(c)
    try:
        s.wait_text("running")
        s.keys("?")
        screen = s.wait_text("Esc or ?: close")
        for text in ("group by lineno -> filename -> traceback", "take a snapshot",
                     "include filter", "exclude filter"):
            c.check(text in screen, "help lists %r" % text)
        s.keys("End")
        screen = s.wait_text("quit: a running program gets SIGTERM")
        c.check("write the current view to a file" in screen, "help lists w")
        c.check("tmtop" in screen.splitlines()[0], "the header stays")
        s.keys("Escape")
        s.wait_text("Top lines")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def test_output(c):
    """The target's output goes to the o pane and to a log file named in the
    status line, never over the view."""
    s = Session(c)
    try:
        s.send("say hello-from-the-target")
        s.send("alloc a 1 10")
        s.wait_row(c.site("a"), count=1)
        screen = s.capture()
        c.check("hello-from-the-target" not in screen, "output not drawn over the view")
        m = re.search(r"log:(\S+\.log)", screen)
        c.check(m is not None, "status line names the log")
        s.keys("o")
        screen = s.wait_text("hello-from-the-target")
        c.check("tui_phases: ready" in screen, "the whole output")
        c.check(re.search(r"Output: \d+ lines, log ", screen) is not None, "output title")
        s.keys("o")
        s.wait_text("Top lines")
        s.send("exit 0")
        s.wait_text("exited with status 0")
        s.keys("q")
        rc, screen = s.exit_status()
        c.check(rc == 0, "exit status 0: %r" % rc)
        if m:
            log = m.group(1)
            c.check(os.path.isfile(log), "log file %s exists" % log)
            if os.path.isfile(log):
                with open(log, "rb") as f:
                    data = f.read()
                c.check(b"hello-from-the-target" in data, "log holds the output")
            c.check("its output is in " + log in screen, "tmtop names the log at exit")
    finally:
        s.close()


def test_exit_status(c):
    """After the program exits the view stays with its final state (what is
    still live leaked); tmtop exits with the program's status and leaves no
    trace of the view on the terminal."""
    s = Session(c)
    try:
        s.send("alloc a 5 100")
        s.send("exit 3")
        s.wait_text("exited with status 3")
        # the leaked blocks are still listed
        s.wait_row(c.site("a"), size="500 B", count=5)
        time.sleep(0.3)
        s.wait_text("exited with status 3")  # the view stays open
        s.keys("q")
        rc, screen = s.exit_status()
        c.check(rc == 3, "tmtop exits with the program's status: %r" % rc)
        c.check("key:lineno" not in screen and "Top lines" not in screen,
                "the view is gone from the terminal:\n" + screen)
        c.check("tmtop: " in screen and "exited with status 3" in screen, "a summary line")
    finally:
        s.close()


def test_signal(c):
    """A program killed by a signal: shown, and 128+N becomes tmtop's status."""
    s = Session(c)
    try:
        s.send("alloc b 2 10")
        s.wait_row(c.site("b"), count=2)
        s.send("crash")
        s.wait_text("killed by SIGSEGV (signal 11)")
        s.keys("q")
        rc, _ = s.exit_status()
        c.check(rc == 139, "exit status 128+11: %r" % rc)
    finally:
        s.close()


def test_quit(c):
    """q on a running program: SIGTERM; one that ignores it gets SIGKILL
    after 2 s.  Ctrl-C quits the same way."""
    s = Session(c)
    try:
        s.send("ignore-term")
        s.send("alloc a 1 10")
        s.wait_row(c.site("a"), count=1)
        t0 = time.monotonic()
        s.keys("q")
        s.wait_text("SIGKILL in 2 s")
        rc, _ = s.exit_status(timeout=10)
        took = time.monotonic() - t0
        c.check(rc == 128 + 9, "SIGKILL: exit %r" % rc)
        c.check(1.8 <= took <= 6, "SIGKILL after about 2 s: %.1f s" % took)
    finally:
        s.close()
    s = Session(c)
    try:
        s.wait_text("running")
        s.keys("C-c")
        rc, _ = s.exit_status()
        c.check(rc == 128 + 15, "Ctrl-C: SIGTERM, exit %r" % rc)
    finally:
        s.close()


def test_tmtop_signal(c):
    """tmtop itself gets SIGTERM (or its terminal goes, SIGHUP): it stops the
    program as q does and gives the terminal back."""
    for sig, name in ((15, "SIGTERM"), (1, "SIGHUP")):
        s = Session(c)
        try:
            s.send("alloc a 1 10")
            s.wait_row(c.site("a"), count=1)
            pid = s.tmtop_pid()
            c.check(pid is not None, "tmtop's pid")
            if pid:
                os.kill(pid, sig)
            rc, screen = s.exit_status()
            c.check(rc == 128 + 15, "%s to tmtop: the program got SIGTERM, exit %r" % (name, rc))
            c.check("key:lineno" not in screen, "%s: the view is gone:\n%s" % (name, screen))
        finally:
            s.close()


def test_terminals(c):
    """A monochrome terminal works; one that cannot move its cursor is refused."""
    s = Session(c, env={"TERM": "vt100"})
    try:
        s.send("alloc a 2 10")
        s.wait_row(c.site("a"), count=2)
        esc = s.capture(escapes=True)
        c.check(re.search(r"\x1b\[[0-9;]*(3[0-7]|4[0-7]|38;5;\d+)[;m]", esc) is None,
                "vt100: no colours")
        s.keys("q")
        rc, screen = s.exit_status()
        c.check(rc == 128 + 15, "vt100: exit %r" % rc)
        c.check("key:lineno" not in screen, "vt100 (no alternate screen): the view is wiped:\n" + screen)
    finally:
        s.close()
    s = Session(c, env={"TERM": "dumb"}, expect_target=False)
    try:
        rc, screen = s.exit_status()
        c.check(rc == 2, "TERM=dumb: exit %r" % rc)
        c.check("tmtop: the terminal (TERM=dumb) cannot move its cursor" in screen, "TERM=dumb refused")
    finally:
        s.close()


def test_resize(c):
    """Below 80x24 the view says so; it comes back when the terminal grows."""
    s = Session(c)
    try:
        s.send("alloc a 3 10")
        s.wait_row(c.site("a"), count=3)
        s.tmux("resize-window", "-t", "t", "-x", "60", "-y", "20")
        s.wait_text("terminal too small: 60x20, tmtop needs 80x24")
        s.tmux("resize-window", "-t", "t", "-x", "80", "-y", "24")
        s.wait_row(c.site("a"), count=3)
        screen = s.capture()
        lines = screen.splitlines()
        c.check(len(lines) == 24 and "key:lineno" in lines[22], "status line at the bottom")
        s.tmux("resize-window", "-t", "t", "-x", "120", "-y", "40")
        screen = s.wait(lambda scr: len(scr.splitlines()) == 40 and "key:lineno" in scr.splitlines()[38],
                        "the view fills 120x40")
        s.wait_row(c.site("a"), count=3)
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def test_colour(c):
    """Colours by role; NO_COLOR gives a monochrome view."""
    s = Session(c, env={"TERM": "screen-256color"})
    try:
        s.send("alloc a 1 10")
        s.wait_row(c.site("a"), count=1)
        esc = s.capture(escapes=True)
        c.check(re.search(r"\x1b\[[0-9;]*(3[0-7]|4[0-7]|38;5;\d+)[;m]", esc) is not None,
                "colour sequences by default")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()
    s = Session(c, env={"TERM": "screen-256color", "NO_COLOR": "1"})
    try:
        s.send("alloc a 1 10")
        s.wait_row(c.site("a"), count=1)
        esc = s.capture(escapes=True)
        c.check(re.search(r"\x1b\[[0-9;]*(3[0-7]|4[0-7]|38;5;\d+)[;m]", esc) is None,
                "no colour with NO_COLOR")
        c.check("\x1b[7m" in esc or "\x1b[1m" in esc or re.search(r"\x1b\[[0-9;]*7[;m]", esc),
                "attributes instead of colours")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def test_write(c):
    """w writes the current view as a report: text and JSON."""
    s = Session(c)
    try:
        s.send("alloc a 10 100")
        s.wait_row(c.site("a"), count=10)
        s.keys("w")
        screen = s.wait_text("write the report to: tmtop-")
        m = re.search(r"write the report to: (tmtop-\d+\.txt)", screen)
        s.keys("Enter")
        s.wait_text("wrote ")
        if c.check(m is not None, "default report name"):
            txt = os.path.join(s.dir, m.group(1))
            jsn = txt[:-4] + ".json"
            c.check(os.path.isfile(txt) and os.path.isfile(jsn), "both files written")
            with open(txt) as f:
                text = f.read()
            c.check(re.search(r"tui_phases\.c:%d: size=1000 B, count=10, average=100 B" % c.lines["a"],
                              text) is not None, "text report line:\n" + text)
            with open(jsn) as f:
                data = json.load(f)
            st = [x for x in data["stats"] if x.get("line") == c.lines["a"]]
            c.check(st and st[0]["size"] == 1000 and st[0]["count"] == 10, "JSON report: %r" % st)
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


def follow_sites(c):
    """{marker: "follow_fork.c:LINE function"} of tests/programs/follow_fork.c."""
    sites = {}
    with open(os.path.join(os.path.dirname(c.src), "follow_fork.c"), encoding="utf-8") as f:
        func = None
        for n, text in enumerate(f, 1):
            m = re.match(r"^(?:static )?\w+ \*?(\w+)\(", text)
            if m:
                func = m.group(1)
            for name in MARKER.findall(text):
                sites[name] = "follow_fork.c:%d %s" % (n, func)
    return sites


def title(screen):
    return screen.splitlines()[0] if screen else ""


def test_follow(c):
    """--follow-fork in the live view: the title names the process shown and
    how many are traced; n and N switch between the target, its child and
    the grandchild, each with its exact bytes and blocks, P lists them all to
    choose from; snapshots stay with their process; the recording made at the same time loads into the same
    view (--load), where p says nothing runs."""
    if not c.follow:
        print("SKIP: no --follow program given")
        return
    sites = follow_sites(c)
    rec = os.path.join(c.tmp, "follow.rec")
    s = Session(c, args=["--follow-fork", "--record", rec], command=[c.follow])
    try:
        # the target first, whatever order the streams arrived in
        s.wait(lambda sc: re.search(r"^ tmtop pid \d+  exited with status 0 .*process 1/3 n:next",
                                    title(sc)) is not None, "the target's title, 3 processes")
        s.wait_row(sites["parent_before"], size="333 B", count=3, average="111 B")
        s.wait_row(sites["parent_after"], size="444 B", count=2, average="222 B")
        parent = re.search(r"pid (\d+)", title(s.capture())).group(1)
        s.keys("s")
        s.wait_text("snaps:1")
        # n: the child, then the grandchild (each after its parent)
        s.keys("n")
        screen = s.wait(lambda sc: "process 2/3" in title(sc), "n shows process 2")
        m = re.search(r"pid (\d+) child of (\d+)  exited ", title(screen))
        c.check(m is not None and m.group(2) == parent,
                "the child's title names its parent %s: %r" % (parent, title(screen)))
        child = m.group(1) if m else None
        s.wait_row(sites["child"], size="1332 B", count=4, average="333 B")
        screen = s.capture()
        c.check(re.search(r"traced 1332 B\s+peak 1332 B\s+blocks 4\b", screen) is not None,
                "the child's totals: %r" % screen.splitlines()[1])
        c.check(s.row(screen, sites["parent_before"]) is None, "no parent site in the child")
        c.check("snaps:0" in screen, "snapshots belong to their process")
        s.keys("n")
        screen = s.wait(lambda sc: "process 3/3" in title(sc), "n shows process 3")
        c.check(child is not None and ("child of %s" % child) in title(screen),
                "the grandchild's parent is the child: %r" % title(screen))
        s.wait_row(sites["grandchild"], size="1776 B", count=4, average="444 B")
        # n wraps around to the target, N goes back
        s.keys("n")
        s.wait(lambda sc: "process 1/3" in title(sc), "n wraps to the target")
        s.wait_text("snaps:1")
        s.wait_row(sites["parent_after"], size="444 B", count=2)
        s.keys("N")
        s.wait(lambda sc: "process 3/3" in title(sc), "N goes back to the grandchild")
        s.keys("N")
        s.wait(lambda sc: "process 2/3" in title(sc), "N: the child")
        s.wait_row(sites["child"], size="1332 B", count=4)
        # P: the list of processes, each with its pid, parent, state and
        # traced memory; Enter shows the chosen one
        s.keys("P")
        screen = s.wait_text("Processes: 3 traced")
        rows = [l for l in screen.splitlines() if re.match(r"^[ *]\s+\d+\s+\d+\s+\S", l)]
        c.check(len(rows) == 3, "three processes in the list: %r" % rows)
        c.check(any(re.search(r"^\*\s+%s\s+%s\s+exited\s+1332 B\s+4\s" % (child, parent), l)
                    for l in rows), "the child's row, marked shown: %r" % rows)
        c.check(any(re.search(r"\s%s\s+exited\s+1776 B\s+4\s" % child, l) for l in rows),
                "the grandchild's row: %r" % rows)
        s.keys("End", "Enter")
        s.wait(lambda sc: "process 3/3" in title(sc), "Enter in the list shows the grandchild")
        s.wait_gone("Processes: 3 traced")
        s.wait_row(sites["grandchild"], size="1776 B", count=4, average="444 B")
        s.keys("P", "Home", "Enter")
        s.wait(lambda sc: "process 1/3" in title(sc), "Home Enter: the target")
        s.keys("P", "Escape")
        s.wait_gone("Processes: 3 traced")
        c.check("process 1/3" in title(s.capture()), "Esc closes the list, the target stays")
        # the keys are in the help
        s.keys("?")
        screen = s.wait_text("show the next traced process")
        c.check(re.search(r"^\s*n\s+--follow-fork: show the next", screen, re.M) is not None,
                "help lists n")
        s.keys("Escape")
        s.keys("q")
        rc, screen = s.exit_status()
        c.check(rc == 0, "exit status of the program: %r" % rc)
        c.check("recorded to %s" % rec in screen, "the recording is named on exit")
    finally:
        s.close()
    # the recording, in the live view
    s = Session(c, args=["--load", rec], command=[])
    try:
        s.wait(lambda sc: re.search(r"pid %s .*\(recording\).*process 1/3" % parent, title(sc))
               is not None, "the recording's target")
        s.wait_row(sites["parent_before"], size="333 B", count=3, average="111 B")
        s.keys("n")
        s.wait(lambda sc: "process 2/3" in title(sc), "n in a recording")
        s.wait_row(sites["child"], size="1332 B", count=4, average="333 B")
        s.keys("p")
        s.wait_text("a recording: nothing runs")
        s.keys("q")
        rc, screen = s.exit_status()
        c.check(rc == 0, "--load's view exits 0: %r" % rc)
    finally:
        s.close()


def test_one_process(c):
    """Without --follow-fork, n says how to get more processes."""
    s = Session(c)
    try:
        s.send("alloc a 1 100")
        s.wait_row(c.site("a"), count=1)
        s.keys("n")
        s.wait_text("run with --follow-fork")
        s.keys("q")
        s.exit_status()
    finally:
        s.close()


TESTS = {
    "follow": test_follow,
    "one_process": test_one_process,
    "live": test_live,
    "snapshot_diff": test_snapshot_diff,
    "filters": test_filters,
    "keys": test_keys,
    "detail": test_detail,
    "help": test_help,
    "output": test_output,
    "exit_status": test_exit_status,
    "signal": test_signal,
    "quit": test_quit,
    "tmtop_signal": test_tmtop_signal,
    "terminals": test_terminals,
    "resize": test_resize,
    "colour": test_colour,
    "write": test_write,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tmtop")
    ap.add_argument("--phases")
    ap.add_argument("--srcdir")
    ap.add_argument("--follow", help="tests/programs/follow_fork.c built (for 'follow')")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("tests", nargs="*")
    opts = ap.parse_args()
    if opts.list:
        print("\n".join(TESTS))
        return 0
    if not shutil.which("tmux"):
        print("SKIP: tmux is not installed")
        return SKIP
    if not (opts.tmtop and opts.phases and opts.srcdir):
        ap.error("--tmtop, --phases and --srcdir are required")
    names = opts.tests or list(TESTS)
    for n in names:
        if n not in TESTS:
            ap.error("unknown test %s (see --list)" % n)
    c = Ctx(opts)
    c.follow = os.path.realpath(opts.follow) if opts.follow else None
    try:
        for n in names:
            print("== %s" % n, flush=True)
            try:
                TESTS[n](c)
            except NoLiveView:
                print("SKIP: this tmtop has no live view")
                return SKIP
            except Failure as e:
                c.check(False, "%s: %s" % (n, e))
    finally:
        if not opts.keep:
            shutil.rmtree(c.tmp, ignore_errors=True)
    print("%d checks, %d failed" % (c.checks, len(c.failures)))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
