#!/usr/bin/env python3
"""Hardening tests of tmtop: the target never notices tmtop, tmtop never lies,
no input crashes it.  One CTest test per scenario (tests/cmake/hardening.cmake).

    hard.py --tmtop BUILD/tmtop --bindir DIR --srcdir tests/programs TEST...
    hard.py --list

Scenarios:
  threads      8 threads, cross-thread frees and address reuse: exact totals
  sigalrm      malloc in a SIGALRM handler that interrupts malloc: no deadlock
  dlopen       dlopen/dlclose in a loop while 3 threads allocate: no deadlock
  crash_segv   the target dies of SIGSEGV / abort() / SIGKILL from outside:
  crash_abort  tmtop names the signal, keeps what it received, writes the
  crash_kill   report (incomplete when END is missing) and exits 128+N
  untouched    a probe prints what it sees of itself, with and without tmtop
  badinput     every bad command line and every damaged recording (--load):
               one line on stderr, non-zero exit, nothing left behind
  inject       connections to the channel from outside never reach the report
  scale        10^6 live blocks over 10^5 distinct stacks, end to end
  valgrind     memcheck on tmtop's report path: 0 errors, 0 bytes lost

Exit status: 0 passed, 1 failed, 77 skipped.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

SKIP = 77
MARKER = re.compile(r"/\*\s*@site:(\w+)\s*\*/")


class Skip(Exception):
    pass


class Ctx:
    def __init__(self, opts):
        self.tmtop = os.path.realpath(opts.tmtop)
        self.bindir = os.path.realpath(opts.bindir)
        self.srcdir = os.path.realpath(opts.srcdir)
        self.verbose = opts.verbose
        self.failures = 0

    def check(self, cond, msg):
        if not cond:
            self.failures += 1
            print("FAIL: " + msg)
        elif self.verbose:
            print("ok: " + msg)
        return cond

    def eq(self, actual, expected, what):
        return self.check(actual == expected, "%s: got %r, want %r" % (what, actual, expected))

    def exe(self, name):
        return os.path.join(self.bindir, name)

    def line_of(self, source, site):
        with open(os.path.join(self.srcdir, source)) as f:
            for n, text in enumerate(f, 1):
                m = MARKER.search(text)
                if m and m.group(1) == site:
                    return n
        raise RuntimeError("no @site:%s in %s" % (site, source))

    def run(self, cmd, timeout=30, **kw):
        """Runs cmd; a timeout is a failure (a deadlock), never a hang."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen(cmd, start_new_session=True, preexec_fn=no_core, **kw)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            self.check(False, "%s timed out after %d s (deadlock?)" % (" ".join(cmd), timeout))
            return p.returncode, out or b"", err or b""
        return p.returncode, out or b"", err or b""

    def report(self, args, timeout=30, opts=(), **kw):
        """tmtop --report --json -o FILE args: (rc, stdout, stderr, report dict or None)."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "report.json")
            cmd = [self.tmtop, "--report", "--json", "--limit", "0", "-o", path] + list(opts)
            rc, out, err = self.run(cmd + ["--"] + list(args), timeout=timeout, **kw)
            data = None
            if os.path.exists(path):
                with open(path) as f:
                    text = f.read()
                try:
                    data = json.loads(text)
                except ValueError:
                    self.check(False, "report is not JSON: %r" % text[:300])
            if self.verbose:
                print("rc=%s stderr=%r" % (rc, err[-2000:]))
            return rc, out, err, data

    def site(self, data, source, site):
        """(size, count) of the stats at source:line of @site."""
        line = self.line_of(source, site)
        size = count = 0
        for st in data["stats"]:
            if st.get("file") and os.path.basename(st["file"]) == source and st["line"] == line:
                size += st["size"]
                count += st["count"]
        return size, count


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def parse_kv(text):
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


# ---- 1. threads ----------------------------------------------------------------


def test_threads(c):
    nthreads, iters = 8, int(os.environ.get("HARD_THREADS_ITERS", "500000"))
    # The same program without work: glibc's own allocations (thread
    # descriptors, the first stdio use) are the same in both runs, so the
    # difference of the totals is exactly the program's own calls.
    base = c.report([c.exe("hard_threads"), str(nthreads), "0"])
    t0 = time.time()
    rc, out, err, d = c.report([c.exe("hard_threads"), str(nthreads), str(iters)], timeout=50)
    secs = time.time() - t0
    if not (c.eq(rc, 0, "exit status") and d and base[3]):
        return
    want = parse_kv(out.decode())
    b = base[3]
    print("threads: %d x %d pairs in %.1f s under tmtop" % (nthreads, iters, secs))
    c.eq(want["allocations"], nthreads * iters, "program's own count")
    c.eq(d["allocations"] - b["allocations"], want["allocations"], "allocation calls")
    c.eq(d["current"] - b["current"], want["live_bytes"], "live bytes at exit")
    c.eq(d["blocks"] - b["blocks"], want["live_blocks"], "live blocks at exit")
    c.eq(c.site(d, "hard_threads.c", "slot"), (want["live_bytes"], want["live_blocks"]),
         "live size and count at the slot line")
    c.eq(d["frees"] - b["frees"], want["allocations"] - want["live_blocks"], "free calls")
    # glibc frees a few blocks of its own at thread exit that it allocated
    # internally (never through malloc): they are counted as unknown frees,
    # visibly, and touch none of the totals above.
    print("threads: %d unknown frees (%d without work)" % (d["unknown_frees"], b["unknown_frees"]))
    c.check(d["complete"], "the trace is complete")
    c.check(d["current"] <= d["peak"] <= b["peak"] + want["max_live_bytes"],
            "peak %d within [%d, %d]" % (d["peak"], d["current"],
                                         b["peak"] + want["max_live_bytes"]))


def test_sigalrm(c):
    rc, out, err, d = c.report([c.exe("hard_sigalrm"), "200000"], timeout=40)
    c.eq(rc, 0, "exit status")
    handled = parse_kv(out.decode()).get("handled", 0)
    c.check(handled > 0, "the handler ran (%d times)" % handled)
    if d:
        print("sigalrm: %d handler runs, %d allocation calls" % (handled, d["allocations"]))
        c.check(d["allocations"] >= 2 * 200000, "every churn allocation seen")
        c.eq(c.site(d, "hard_sigalrm.c", "handler"), (0, 0), "nothing live at the handler line")


def test_dlopen(c):
    rc, out, err, d = c.report([c.exe("hard_dlopen"), c.exe("hard_plugin.so"), "300", "100000"],
                               timeout=40)
    c.eq(rc, 0, "exit status")
    c.eq(out.decode().strip(), "dlopen: rounds=300", "rounds")
    if d:
        c.check(d["complete"], "the trace is complete")
        c.check(d["allocations"] >= 3 * 100000 + 300 * 4, "every allocation seen")
        plugin = [s for s in d["stats"] if s.get("file") and s["file"].endswith("hard_plugin.c")]
        c.eq(sum(s["size"] for s in plugin), 0, "nothing of the plugin is live")


# ---- 3. crashes and kills ---------------------------------------------------------


def crash(c, mode, signum):
    args = [c.exe("hard_crash"), mode]
    if mode != "wait":
        rc, out, err, d = c.report(args)
    else:
        with tempfile.TemporaryDirectory() as dd:
            path = os.path.join(dd, "r.json")
            p = subprocess.Popen([c.tmtop, "--report", "--json", "-o", path, "--"] + args,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            line = p.stdout.readline().decode()
            m = re.match(r"ready (\d+)", line)
            if c.check(m is not None, "the target said ready: %r" % line):
                os.kill(int(m.group(1)), signal.SIGKILL)
            try:
                out, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                out, err = p.communicate()
                c.check(False, "tmtop did not finish after its target was killed")
            rc = p.returncode
            d = json.load(open(path)) if os.path.exists(path) else None
    c.eq(rc, 128 + signum, "tmtop's exit status")
    text = err.decode()
    c.check(re.search(r"killed by signal %d\b" % signum, text) is not None,
            "stderr names signal %d: %r" % (signum, text))
    if not c.check(d is not None, "a report was written"):
        return
    c.eq(d["exit"], {"signal": signum}, "report's exit")
    c.eq(c.site(d, "hard_crash.c", "leak"), (1000, 10), "the leak flushed before the crash")
    if mode == "wait":
        c.eq(d["complete"], False, "a SIGKILLed trace is marked incomplete")
    # A missing END must be visible in the text report too.
    if mode != "wait" and not d["complete"]:
        _, _, err2 = c.run([c.tmtop, "--report", "--"] + args)
        c.check(b"incomplete" in err2, "the text report says incomplete")
    print("%s: complete=%s" % (mode, d["complete"]))


def test_crash_segv(c):
    crash(c, "segv", signal.SIGSEGV)


def test_crash_abort(c):
    crash(c, "abort", signal.SIGABRT)


def test_crash_kill(c):
    crash(c, "wait", signal.SIGKILL)
    # and the text report of a killed target says the trace is incomplete
    p = subprocess.Popen([c.tmtop, "--report", "--", c.exe("hard_crash"), "wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    m = re.match(r"ready (\d+)", p.stdout.readline().decode())
    if m:
        os.kill(int(m.group(1)), signal.SIGKILL)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
    c.check(b"incomplete" in err, "text report warns that the trace is incomplete: %r" % err[-600:])


# ---- 5. the target untouched --------------------------------------------------------


def probe(c, args, under, extra_env=None, pass_fds=(), **kw):
    env = dict(os.environ)
    env.update(extra_env or {})
    cmd = [c.exe("hard_probe")] + args
    if under:
        cmd = [c.tmtop, "--report", "-o", os.devnull, "--"] + cmd
    return c.run(cmd, env=env, pass_fds=pass_fds, **kw)


def test_untouched(c):
    # An environment and dispositions worth preserving: an ignored signal, a
    # blocked one, an extra variable, a pre-existing LD_PRELOAD-free env.
    env = {"HARD_PROBE_VAR": "x=y z", "LC_ALL": "C"}
    env.pop("LD_PRELOAD", None)

    def pre():
        no_core()
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        os.umask(0o027)

    def run(args, under):
        e = dict(os.environ)
        e.pop("LD_PRELOAD", None)
        e.update(env)
        cmd = [c.exe("hard_probe")] + args
        if under:
            cmd = [c.tmtop, "--report", "-o", os.devnull, "--"] + cmd
        p = subprocess.run(cmd, env=e, preexec_fn=pre, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    for args in ([], ["exit", "3"], ["exit", "255"], ["sigpipe"], ["kill", "15"], ["kill", "6"]):
        d_rc, d_out, _ = run(args, False)
        t_rc, t_out, t_err = run(args, True)
        # The descriptors line is test untouched_fds (a known bug of the hook).
        d_out = re.sub(r"(?m)^fds 3\.\.63 .*\n", "", d_out)
        t_out = re.sub(r"(?m)^fds 3\.\.63 .*\n", "", t_out)
        want_rc = d_rc if d_rc >= 0 else 128 - d_rc
        c.eq(t_rc, want_rc, "exit status of probe %s" % args)
        if d_out != t_out:
            diff = [l for l in set(d_out.splitlines()) ^ set(t_out.splitlines())]
            c.check(False, "probe %s sees itself differently under tmtop: %s" %
                    (args, sorted(diff)[:20]))
        c.check("TMTOP_" not in t_out and "LD_PRELOAD" not in t_out,
                "no hook variable in the target's environment")
    # stdin, stdout and stderr are the target's own: a file in, a file out
    with tempfile.TemporaryDirectory() as d:
        for under in (False, True):
            with open(os.path.join(d, "in"), "w") as f:
                f.write("hello")
            fi = open(os.path.join(d, "in"))
            fo = open(os.path.join(d, "out%d" % under), "w")
            cmd = [c.exe("hard_probe")]
            if under:
                cmd = [c.tmtop, "--report", "-o", os.path.join(d, "rep"), "--"] + cmd
            subprocess.run(cmd, stdin=fi, stdout=fo, stderr=subprocess.DEVNULL, timeout=30)
            fi.close()
            fo.close()
        a = open(os.path.join(d, "out0")).read()
        b = open(os.path.join(d, "out1")).read()
        c.eq([l for l in b.splitlines() if l.startswith("fd ")],
             [l for l in a.splitlines() if l.startswith("fd ")], "standard streams (files)")


def test_untouched_fds(c):
    """The hook's own descriptors stay out of the target's low fd numbers: the
    first open() of a traced program returns what it returns without tmtop.
    Known bug: libunwind's validation pipe (opened when the hook initialises
    libunwind) lands on fds 3 and 4."""
    d_rc, d_out, _ = probe(c, [], False)
    t_rc, t_out, _ = probe(c, [], True)
    line = re.compile(r"(?m)^fds 3\.\.63 open: (\d+)$")
    c.eq(line.search(t_out.decode()).group(1), line.search(d_out.decode()).group(1),
         "descriptors 3..63 open in the target")


# ---- 6. bad input --------------------------------------------------------------------


def test_badinput(c):
    work = tempfile.mkdtemp(prefix="tm-bad-")
    try:
        bad_input(c, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bad_input(c, work):
    plain = os.path.join(work, "plain.txt")
    with open(plain, "w") as f:
        f.write("not a program\n")
    noexec = os.path.join(work, "noexec")
    shutil.copy(c.exe("hard_probe"), noexec)
    os.chmod(noexec, 0o644)
    notelf = os.path.join(work, "notelf")
    with open(notelf, "wb") as f:
        f.write(b"\x00\x01garbage" * 10)
    os.chmod(notelf, 0o755)
    setuid = os.path.join(work, "setuid")
    shutil.copy(c.exe("hard_probe"), setuid)
    os.chmod(setuid, 0o4755)
    setgid = os.path.join(work, "setgid")
    shutil.copy(c.exe("hard_probe"), setgid)
    os.chmod(setgid, 0o2755)
    link = os.path.join(work, "victim-link")
    victim = os.path.join(work, "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    os.symlink(victim, link)
    probe = c.exe("hard_probe")
    cases = [
        ("missing program", ["--report", os.path.join(work, "no-such-program")]),
        ("missing in PATH", ["--report", "tm-no-such-program-anywhere"]),
        ("a directory", ["--report", work]),
        ("not executable", ["--report", noexec]),
        ("not ELF", ["--report", notelf]),
        ("a text file", ["--report", plain]),
        ("setuid", ["--report", setuid]),
        ("setgid", ["--report", setgid]),
        ("unknown option", ["--report", "--bogus", probe]),
        ("unknown short option", ["--report", "-Z", probe]),
        ("--frames 0", ["--report", "--frames", "0", probe]),
        ("--frames 100000", ["--report", "--frames", "100000", probe]),
        ("--frames -1", ["--report", "--frames", "-1", probe]),
        ("--frames x", ["--report", "--frames", "12x", probe]),
        ("--frames missing", ["--report", "--frames"]),
        ("--limit huge", ["--report", "--limit", "99999999999999999999999", probe]),
        ("--key bad", ["--report", "--key", "bogus", probe]),
        ("no program", ["--report"]),
        ("cumulative traceback", ["--report", "--cumulative", "--key", "traceback", probe]),
        ("-o into a missing dir", ["--report", "-o", os.path.join(work, "nodir", "r"), probe]),
        ("-o over a symlink", ["--report", "-o", link, probe]),
        ("-o missing program", ["--report", "-o", os.path.join(work, "r.json"),
                                os.path.join(work, "no-such-program")]),
        ("-o a directory", ["--report", "-o", work, probe]),
    ]
    if os.path.exists(c.exe("hard_static")):
        cases.append(("static binary", ["--report", c.exe("hard_static")]))
    cases += recording_cases(c, work, probe, link)
    before = sorted(os.listdir(work))
    for what, args in cases:
        env = dict(os.environ, TMPDIR=work)  # temporary files would show up in work
        rc, out, err = c.run([c.tmtop] + args, cwd=work, env=env, timeout=20)
        lines = err.decode(errors="replace").splitlines()
        c.check(rc not in (0, None) and rc > 0, "%s: non-zero exit (got %s)" % (what, rc))
        c.check(rc < 128, "%s: tmtop did not die of a signal (rc %s)" % (what, rc))
        c.check(len(lines) == 1 and lines[0].startswith("tmtop: "),
                "%s: one line on stderr starting 'tmtop: ', got %r" % (what, lines))
        c.eq(out, b"", "%s: nothing on stdout" % what)
        c.check(b"\x1b" not in err, "%s: no terminal escape sequences" % what)
        after = sorted(os.listdir(work))
        c.eq(after, before, "%s: nothing left behind in the working directory" % what)
    c.eq(open(victim).read(), "precious\n", "the symlink's target is untouched")
    # The hook's abstract socket dies with tmtop: none of ours remains.
    with open("/proc/net/unix") as f:
        socks = [l for l in f if "@tmtop." in l]
    mine = [l for l in socks if re.search(r"@tmtop\.%d\." % os.getpid(), l)]
    c.eq(mine, [], "no stray abstract socket")
    # A binary without any debug information or symbols still gives a report.
    stripped = os.path.join(work, "stripped-probe")
    if shutil.which("strip"):
        subprocess.run(["strip", "--strip-all", "-o", stripped, probe], check=True)
        rc, out, err, d = c.report([stripped, "exit", "0"], timeout=20)
        c.eq(rc, 0, "stripped binary: exit status")
        if c.check(d is not None, "stripped binary: a report"):
            c.check(d["allocations"] > 0, "stripped binary: allocations counted")
            c.check(all("size" in s for s in d["stats"]), "stripped binary: statistics")
    # The one file loader (--load): a damaged recording is named with the
    # byte where it goes wrong, and the exit status is 2.
    for what, args in cases:
        if args[0] != "--load" or what.startswith("--load usage"):
            continue
        rc, out, err = c.run([c.tmtop] + args, cwd=work, timeout=20)
        text = err.decode(errors="replace")
        c.eq(rc, 2, "%s: exit status 2" % what)
        if what.startswith("--load corrupt"):
            c.check(re.match(r"^tmtop: %s: .+ at byte \d+\n$" % re.escape(args[1]), text),
                    "%s: 'tmtop: FILE: what at byte N', got %r" % (what, text))


def recording_cases(c, work, probe, link):
    """Bad recordings for --load and bad destinations for --record, as
    bad_input cases.  Makes a good recording of the probe in work first."""
    good = os.path.join(work, "good.rec")
    rc, out, err = c.run([c.tmtop, "--report", "-o", os.devnull, "--record", good, "--", probe,
                          "exit", "0"], cwd=work, timeout=20)
    c.check(rc == 0 and os.path.getsize(good) > 100, "a good recording (rc %s, %r)" % (rc, err))
    with open(good, "rb") as f:
        blob = f.read()
    files = {
        "empty": b"",
        "garbage": b"\x00\x01garbage" * 10,
        "magic only": b"TMTOPREC",
        "cut in the header": blob[:30],
        "cut in a chunk": blob[:len(blob) // 2],
        "cut before the end mark": blob[:len(blob) - 25],
        "one byte short": blob[:-1],
        "bytes after the end": blob + b"\n",
        "another version": blob[:8] + b"\x02\x00" + blob[10:],
        "a stream of garbage": blob[:len(blob) // 2] + b"\xff" * (len(blob) // 2),
    }
    cases = []
    for name, data in files.items():
        path = os.path.join(work, "bad-" + name.replace(" ", "-") + ".rec")
        with open(path, "wb") as f:
            f.write(data)
        cases.append(("--load corrupt: " + name, ["--load", path, "--report"]))
        cases.append(("--load corrupt -o: " + name,
                      ["--load", path, "--report", "--json", "-o", os.path.join(work, "r.json")]))
    # through a symlink to a damaged file: read, refused the same way
    slink = os.path.join(work, "link-to-cut.rec")
    os.symlink(os.path.join(work, "bad-cut-in-a-chunk.rec"), slink)
    cases.append(("--load corrupt: through a symlink", ["--load", slink, "--report"]))
    cases += [
        ("--load a directory", ["--load", work, "--report"]),
        ("--load a missing file", ["--load", os.path.join(work, "nothing.rec"), "--report"]),
        ("--load /dev/null", ["--load", "/dev/null", "--report"]),
        ("--load usage: with a program", ["--load", good, "--report", probe]),
        ("--load usage: with --record", ["--load", good, "--record",
                                         os.path.join(work, "x.rec"), "--report"]),
        ("--load usage: with --frames", ["--load", good, "--frames", "3", "--report"]),
        ("--record over a symlink", ["--report", "--record", link, probe]),
        ("--record into a missing dir", ["--report", "--record",
                                         os.path.join(work, "nodir", "r.rec"), probe]),
        ("--record a directory", ["--report", "--record", work, probe]),
        ("--record missing program", ["--report", "--record", os.path.join(work, "r.rec"),
                                      os.path.join(work, "no-such-program")]),
    ]
    return cases


# ---- 9. security -----------------------------------------------------------------------


def test_inject(c):
    rc, out, err, d = c.report([c.exe("hard_inject")], timeout=40)
    text = out.decode()
    print(text.strip())
    c.eq(rc, 0, "exit status")
    for mode in ("wrongtoken", "nohello", "garbage", "otheruid"):
        m = re.search(r"inject %s: (\w+)" % mode, text)
        if not c.check(m is not None, "attempt %s ran" % mode):
            continue
        if m.group(1) == "skipped":
            print("inject %s skipped (not root)" % mode)
            continue
        c.check(m.group(1) in ("closed", "refused"),
                "tmtop hung up on the %s connection (got %s)" % (mode, m.group(1)))
    if not c.check(d is not None, "a report"):
        return
    injected = [s for s in d["stats"] if s["size"] and s["size"] % 6209758 == 0]
    c.eq(injected, [], "no injected block in the report")
    c.check(d["current"] < 6209758, "current bytes exclude the injected blocks")
    c.eq(c.site(d, "hard_inject.c", "own"), (777, 1), "the program's own leak")
    c.check(d["complete"], "the real stream is complete")


# ---- 10. scale ---------------------------------------------------------------------------


def test_scale(c):
    n, stacks = int(os.environ.get("HARD_SCALE_BLOCKS", "1000000")), 100000
    t0 = time.time()
    rc, out, err, d = c.report([c.exe("hard_scale"), "live", str(n), str(stacks)], timeout=55,
                               opts=["--key", "traceback", "--limit", "20"])
    secs = time.time() - t0
    c.eq(rc, 0, "exit status")
    if not c.check(d is not None, "a report"):
        return
    print("scale: %d live blocks over %d stacks, report in %.1f s" % (n, stacks, secs))
    want_bytes = sum(16 + i % 7 for i in range(n))
    line = c.line_of("hard_scale.c", "scale")
    scale = [s for s in d["stats"] if s["frames"][s["site"]].get("line") == line]
    c.eq(len(d["stats"]), 20, "limit 20 statistics")
    per_stack = n // stacks
    # Sorted by size: every stack has exactly n/stacks blocks; a merged pair
    # of stacks would show twice as many.
    c.check(len(scale) >= 19, "the top tracebacks are the scale site (%d)" % len(scale))
    for s in scale:
        c.eq(s["count"], per_stack, "blocks of one stack")
    table = 8 * n + 1
    c.check(d["current"] >= want_bytes + table, "current %d >= %d" % (d["current"],
                                                                     want_bytes + table))
    c.check(d["blocks"] >= n + 1, "blocks %d >= %d" % (d["blocks"], n + 1))
    # lineno key over the same run: the site holds everything exactly
    rc, out, err, d = c.report([c.exe("hard_scale"), "live", str(n), str(stacks)], timeout=55)
    if d:
        c.eq(c.site(d, "hard_scale.c", "scale"), (want_bytes, n), "the site's live size, count")


# ---- 8. valgrind on tmtop ------------------------------------------------------------------


def test_valgrind(c):
    vg = shutil.which("valgrind")
    if not vg:
        raise Skip("valgrind not installed")
    with open(c.tmtop, "rb") as f:
        if b"__asan_init" in f.read():
            raise Skip("tmtop is built with AddressSanitizer, which valgrind cannot run")
    with tempfile.TemporaryDirectory() as d:
        for key in ("traceback", "lineno"):
            path = os.path.join(d, "r")
            cmd = [vg, "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", "--child-silent-after-fork=yes",
                   "--trace-children=no", c.tmtop, "--report", "--key", key, "-o", path, "--",
                   c.exe("hard_crash"), "abort"]
            rc, out, err = c.run(cmd, timeout=55)
            text = err.decode(errors="replace")
            c.eq(rc, 128 + signal.SIGABRT, "tmtop under valgrind (--key %s): exit status" % key)
            m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            c.check(m is not None and m.group(1) == "0", "0 errors (--key %s): %s" %
                    (key, m.group(0) if m else text[-1500:]))
            m = re.search(r"definitely lost: ([\d,]+) bytes", text)
            c.check(m is None or m.group(1) == "0", "0 bytes definitely lost (--key %s)" % key)
            c.check(os.path.getsize(path) > 0, "the report was written")


TESTS = {name[5:]: fn for name, fn in list(globals().items()) if name.startswith("test_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmtop")
    ap.add_argument("--bindir")
    ap.add_argument("--srcdir")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("tests", nargs="*")
    opts = ap.parse_args()
    if opts.list:
        print("\n".join(TESTS))
        return 0
    c = Ctx(opts)
    skipped = False
    for t in opts.tests or list(TESTS):
        if t not in TESTS:
            print("unknown test %s" % t)
            return 2
        try:
            TESTS[t](c)
        except Skip as e:
            print("SKIP %s: %s" % (t, e))
            skipped = True
    if c.failures:
        print("%d check(s) failed" % c.failures)
        return 1
    return SKIP if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
