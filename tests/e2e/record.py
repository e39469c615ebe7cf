#!/usr/bin/env python3
"""tmtop --record / --load end to end: a recording of a real run, loaded
again, gives the report the live run gave, byte for byte (JSON and text,
every key, --follow-fork); a killed target's recording loads as incomplete;
a damaged recording fails with one line and exit status 2; a module rebuilt
since the recording is shown as module+offset, never as another build's lines.

Usage: record.py --tmtop BUILD/tmtop --bindir BUILD/tests/e2e
                 --srcdir tests/programs TEST...
Reuses the helpers of e2e.py (same directory)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

e2e.PROGRAMS["follow"] = e2e.Program("follow_fork", ["follow_fork.c"])
ONE_LINE = re.compile(r"^tmtop: (.+?): (.+) at byte (\d+)\n$")


def record_run(c, prog, opts, name, as_json=True, args=None):
    """tmtop --report OPTS --record REC -o LIVE -- PROG: (rc, rec, live bytes)."""
    p = e2e.PROGRAMS[prog]
    rec = os.path.join(c.tmp, name + ".rec")
    live = os.path.join(c.tmp, name + ".live")
    fmt = ["--json", "--limit", "0"] if as_json else ["--limit", "0"]
    cmd = ([c.tmtop, "--report"] + fmt + list(opts) + ["--record", rec, "-o", live, "--",
                                                      c.exe(prog)] +
           list(p.args if args is None else args))
    r = c.run(cmd, stdin=p.stdin)
    if r is None or not c.check(os.path.exists(rec) and os.path.exists(live),
                                "%s: recording and report written" % name):
        if r is not None:
            c.show(r)
        return None
    with open(live, "rb") as f:
        return r.returncode, rec, f.read()


def load(c, rec, opts, name, as_json=True):
    """tmtop --load REC --report OPTS -o FILE: (rc, stdout, stderr, report bytes or None)."""
    out = os.path.join(c.tmp, name + ".loaded")
    fmt = ["--json", "--limit", "0"] if as_json else ["--limit", "0"]
    r = c.run([c.tmtop, "--load", rec, "--report"] + fmt + list(opts) + ["-o", out])
    if r is None:
        return None
    data = None
    if os.path.exists(out):
        with open(out, "rb") as f:
            data = f.read()
    return r.returncode, r.stdout, r.stderr, data


def same_report(c, prog, opts, name, as_json=True, load_opts=None):
    rr = record_run(c, prog, opts, name, as_json)
    if not rr:
        return None
    rc, rec, live = rr
    lr = load(c, rec, opts if load_opts is None else load_opts, name, as_json)
    if not lr:
        return None
    c.eq(lr[0], 0, "%s: --load exit status" % name)
    c.eq(lr[2], b"", "%s: --load says nothing on stderr" % name)
    if not c.check(lr[3] == live, "%s: the loaded report is the live one, byte for byte" % name):
        print("--- live:\n%s\n--- loaded:\n%s" % (live[:1500].decode(errors="replace"),
                                                 (lr[3] or b"")[:1500].decode(errors="replace")))
    return rec, live


def test_identical(c):
    """Live --report --json against --load --report --json of its recording."""
    for prog in ("basic", "multi", "realloc", "cxx", "threads", "dlopen"):
        c.label = prog
        same_report(c, prog, [], prog)
    c.label = "keys"
    r = same_report(c, "basic", ["--key", "traceback"], "basic-tb")
    if r:
        # the other options apply at load time: another key, the same recording
        for key in ("filename", "lineno"):
            live = record_run(c, "basic", ["--key", key], "basic-" + key)
            lr = load(c, r[0], ["--key", key], "basic-tb-as-" + key)
            if live and lr:
                # pids differ between the two runs: compare without them
                strip = re.compile(rb'"pid":\d+')
                c.eq(strip.sub(b"", lr[3] or b""), strip.sub(b"", live[2]),
                     "--key %s applied to a recording" % key)
    c.label = "text"
    same_report(c, "multi", ["--cumulative"], "multi-text", as_json=False)
    c.label = "filters"
    same_report(c, "multi", ["--include", "*e2e_multi_lib.c"], "multi-incl")
    c.label = ""


def test_follow(c):
    """--follow-fork: every process of the recording, listed as live."""
    r = same_report(c, "follow", ["--follow-fork"], "follow")
    if r:
        d = __import__("json").loads(r[1])
        c.eq(len(d.get("children", [])), 2, "follow: two children in the loaded report")
    same_report(c, "follow", ["--follow-fork"], "follow-text", as_json=False)


def children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def test_killed(c):
    """A target SIGKILLed in the middle: its recording loads, incomplete, as
    the live report said."""
    rec = os.path.join(c.tmp, "killed.rec")
    live = os.path.join(c.tmp, "killed.live")
    p = subprocess.Popen([c.tmtop, "--report", "--json", "--limit", "0", "--record", rec,
                          "-o", live, "--", c.exe("basic")], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kids = []
    for _ in range(100):  # the target blocks reading its stdin, after its allocations
        kids = children_of(p.pid)
        if kids:
            break
        time.sleep(0.05)
    time.sleep(1.0)  # the hook's timer flushes every 10 ms
    if not c.check(kids, "killed: found the target"):
        p.kill()
        p.wait()
        return
    os.kill(kids[0], signal.SIGKILL)
    p.stdin.close()
    p.wait(timeout=60)
    c.eq(p.returncode, 128 + 9, "killed: tmtop's status")
    with open(live, "rb") as f:
        live_data = f.read()
    d = __import__("json").loads(live_data)
    c.eq(d.get("complete"), False, "killed: the live report is incomplete")
    lr = load(c, rec, [], "killed")
    if lr:
        c.eq(lr[0], 0, "killed: --load exit status")
        c.check(lr[3] == live_data, "killed: the loaded report is the live one")


def one_line(c, what, r, path):
    rc, out, err, data = r
    c.eq(rc, 2, "%s: exit status" % what)
    c.eq(out, b"", "%s: nothing on stdout" % what)
    c.check(data is None, "%s: no report file left behind" % what)
    m = ONE_LINE.match(err.decode(errors="replace"))
    c.check(m is not None and m.group(1) == path,
            "%s: one line 'tmtop: FILE: what at byte N' on stderr, got %r" % (what, err))
    return int(m.group(3)) if m else None


def test_corrupt(c):
    """Damaged copies of a real recording: cut in a chunk, cut between two,
    a record's byte flipped, a chunk length made impossible, bytes after the
    end: one line each, nothing written."""
    rr = record_run(c, "basic", [], "orig")
    if not rr:
        return
    with open(rr[1], "rb") as f:
        orig = f.read()
    plen = orig[20] | orig[21] << 8
    h = 22 + plen
    clen = int.from_bytes(orig[h + 5:h + 9], "little")
    cases = {
        "cut in the header": (orig[:15], "truncated header"),
        "cut in a chunk": (orig[:h + 9 + clen // 2], "chunk cut in the middle"),
        "cut after a chunk": (orig[:h + 9 + clen], "end-of-recording mark is missing"),
        "impossible length": (orig[:h + 5] + b"\xff\xff\xff\xff" + orig[h + 9:],
                              "impossible chunk length"),
        "bytes after the end": (orig + b"\0", "data after the end"),
        "bad magic": (b"X" + orig[1:], "bad magic"),
        "newer version": (orig[:8] + b"\x09\x00" + orig[10:], "version 9 is not supported"),
    }
    # a record made invalid: the first ALLOC's kind
    data = bytearray(orig)
    off = h + 9 + 8
    while data[off] != 2:
        ln = data[off + 1]
        off += 2 + (4 + int.from_bytes(data[off + 2:off + 6], "little") if ln == 255 else ln)
    data[off + 6] = 77
    cases["corrupt record"] = (bytes(data), "corrupt ALLOC record")
    for what, (blob, msg) in sorted(cases.items()):
        c.label = what
        path = os.path.join(c.tmp, "bad.rec")
        with open(path, "wb") as f:
            f.write(blob)
        r = load(c, path, [], "bad")
        if r:
            one_line(c, what, r, path)
            c.check(msg in r[2].decode(errors="replace"), "%s: says %r: %r" % (what, msg, r[2]))
    c.label = ""


def build_id_offset(path):
    """File offset and length of the NT_GNU_BUILD_ID descriptor (readelf -n)."""
    with open(path, "rb") as f:
        blob = f.read()
    i = blob.find(b"GNU\0", 0)
    while i >= 0:
        namesz, descsz, typ = (int.from_bytes(blob[i - 12 + k:i - 8 + k], "little")
                               for k in (0, 4, 8))
        if namesz == 4 and typ == 3 and 8 <= descsz <= 64:
            return i + 4, descsz
        i = blob.find(b"GNU\0", i + 1)
    return None


def test_stale(c):
    """The program rebuilt (another build-id) after the recording: said once
    on stderr, and its frames are module+offset, never its old lines."""
    exe = os.path.join(c.tmp, "e2e_basic")
    shutil.copy(c.exe("basic"), exe)
    rec = os.path.join(c.tmp, "stale.rec")
    r = c.run([c.tmtop, "--report", "--json", "--record", rec, "-o", os.devnull, "--", exe])
    if not r or not c.eq(r.returncode, 0, "stale: recording run"):
        return
    before = load(c, rec, [], "stale-before")
    if before and before[3]:
        c.check(b"e2e_basic.c" in before[3], "stale: lines of the program before the rebuild")
    where = build_id_offset(exe)
    if not c.check(where, "stale: the copy has a build-id"):
        return
    with open(exe, "r+b") as f:
        f.seek(where[0])
        bid = f.read(where[1])
        f.seek(where[0])
        f.write(bytes(b ^ 0xFF for b in bid))
    after = load(c, rec, [], "stale-after")
    if not after:
        return
    c.eq(after[0], 0, "stale: --load exit status")
    err = after[2].decode(errors="replace")
    c.eq(err.count("\n"), 1, "stale: one line on stderr: %r" % err)
    c.check(exe in err and "changed" in err, "stale: names the module: %r" % err)
    c.check(after[3] and b"e2e_basic.c" not in after[3],
            "stale: no line of the old build in the report")


TESTS = {"identical": test_identical, "follow": test_follow, "killed": test_killed,
         "corrupt": test_corrupt, "stale": test_stale}

if __name__ == "__main__":
    e2e.TESTS = TESTS
    sys.exit(e2e.main())
