#!/usr/bin/env python3
"""End-to-end exactness tests of `tmtop --report`.

Runs the target programs of tests/programs under tmtop and checks the report
against numbers known from the programs themselves: live bytes and blocks of
every allocation site, the totals, the exit status, the untouched standard
streams, the text format, the grouping keys, filters and options; and
against valgrind's memcheck on the same programs (test "valgrind").

Sites are found by scanning the sources for marker comments, never by line
number:
    /* @site:NAME */   an allocation line of the program; its expected live
                       size and count at exit are given below (absent from
                       the expectations = no live block may remain there)
    /* @call:NAME */   a call line on the way to a site (cumulative and
                       traceback checks); never a site itself
    /* @libc:NAME */   a call into glibc that allocates for its own purposes
                       (pthread_create's thread descriptor, dlopen's link
                       map): may hold live blocks, checked against valgrind

Usage (CTest runs one test per invocation, see tests/cmake/e2e.cmake):
    e2e.py --tmtop BUILD/tmtop --bindir DIR --srcdir tests/programs TEST...
    e2e.py --list
Exit status: 0 passed, 1 failed, 77 skipped (no valgrind for "valgrind").
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
MARKER = re.compile(r"/\*\s*@(site|call|libc):(\w+)\s*\*/")
TEXT_STAT = re.compile(
    r"^(?P<where>\S.*?): size=(?P<size>[^,]+), count=(?P<count>\d+), average=(?P<avg>.+)$"
)


# ---- the target programs ---------------------------------------------------


class Program:
    def __init__(self, exe, sources, args=(), stdin=b"", stdout=None):
        self.exe = exe
        self.sources = list(sources)
        self.args = list(args)
        self.stdin = stdin
        self.stdout = stdout  # expected stdout bytes, or None


PROGRAMS = {
    "basic": Program("e2e_basic", ["e2e_basic.c"]),
    "sizes": Program("e2e_sizes", ["e2e_sizes.c"], stdout=b"sizes: done\n"),
    "multi": Program(
        "e2e_multi", ["e2e_multi_main.c", "e2e_multi_lib.c"], stdout=b"multi: done\n"
    ),
    "realloc": Program("e2e_realloc", ["e2e_realloc.c"], stdout=b"realloc: done ok\n"),
    "memalign": Program("e2e_memalign", ["e2e_memalign.c"], stdout=b"memalign: done ok\n"),
    "cxx": Program("e2e_cxx", ["e2e_cxx.cpp"], stdout=b"cxx: done 100 1 1000\n"),
    "threads": Program("e2e_threads", ["e2e_threads.c"]),
    "threadchurn": Program("e2e_threadchurn", ["e2e_threadchurn.c"]),
    "dlopen": Program("e2e_dlopen", ["e2e_dlopen.c", "e2e_plugin.c"]),
    "exit": Program("e2e_exit", ["e2e_exit.c"]),
    "signal": Program("e2e_signal", ["e2e_signal.c"]),
    "fork": Program("e2e_fork", ["e2e_fork.c"]),
    "deep": Program("e2e_deep", ["e2e_deep.c"], stdout=b"deep: done\n"),
    "fds": Program("e2e_fds", ["e2e_fds.c"], stdout=b"fds: done\n"),
    "walk": Program("walk_shapes", ["walk_shapes.c"], stdout=b"walk_shapes: done 300\n"),
}


def threads_expect(nthreads, nblocks, nchurn):
    """What e2e_threads allocates (keep in step with block_size() there)."""

    def block_size(t, i):
        return 8 + (t * 131 + i * 17) % 200

    leaked = [(t, i) for t in range(nthreads) for i in range(0, nblocks, 4)]
    slots_all = sum(block_size(t, i) for t in range(nthreads) for i in range(nblocks))
    return {
        "leak_size": sum(block_size(t, i) for t, i in leaked),
        "leak_count": len(leaked),
        "leaked_table": len(leaked) * 8 + 1,
        # slots + reallocs + churn + slot tables + the leaked table; glibc's
        # per-thread allocations come on top (see test_threads)
        "user_allocations": nthreads * (nblocks + len(range(1, nblocks, 4)) + nchurn) +
        nthreads + 1,
        # at the barrier every slot and every slot table is live
        "peak_at_least": slots_all + nthreads * nblocks * 8,
    }


# ---- tracemalloc's size format (Lib/tracemalloc.py, _format_size) ----------


def format_size(size, sign=False):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 100 and unit != "B":
            return ("%+.1f %s" if sign else "%.1f %s") % (size, unit)
        if abs(size) < 10 * 1024 or unit == "TiB":
            return ("%+.0f %s" if sign else "%.0f %s") % (size, unit)
        size /= 1024


def address(v):
    """A frame address as JSON gives it: an integer or a "0x..." string."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and re.fullmatch(r"0x[0-9a-fA-F]+", v):
        return int(v, 16)
    return None


# ---- harness -----------------------------------------------------------------


class Result:
    def __init__(self, rc, stdout, stderr, report, data):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.report = report  # report text (JSON or not), "" if none
        self.data = data  # parsed JSON or None


def no_core():
    # The signal tests kill their target with SIGSEGV/SIGABRT: no core files.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Ctx:
    def __init__(self, opts):
        self.tmtop = opts.tmtop
        self.bindir = opts.bindir
        self.srcdir = os.path.realpath(opts.srcdir)
        self.valgrind = opts.valgrind
        self.verbose = opts.verbose
        self.tmp = tempfile.mkdtemp(prefix="tmtop-e2e-")
        self.checks = 0
        self.failures = []
        self.markers = {}
        self.runs = 0
        self.label = ""  # names the current run in failure messages

    # -- assertions: collect every failure of a test, do not stop at the first
    def check(self, cond, msg):
        self.checks += 1
        if self.label:
            msg = "[%s] %s" % (self.label, msg)
        if not cond:
            self.failures.append(msg)
            print("FAIL: " + msg, flush=True)
        elif self.verbose:
            print("ok: " + msg, flush=True)
        return cond

    def eq(self, actual, expected, what):
        return self.check(actual == expected, "%s: got %r, expected %r" % (what, actual, expected))

    # -- programs and markers
    def exe(self, prog):
        return os.path.join(self.bindir, PROGRAMS[prog].exe)

    def plugin(self):
        return os.path.join(self.bindir, "e2e_plugin.so")

    def marks(self, prog):
        """{name: (kind, basename, line)} over the program's sources."""
        if prog in self.markers:
            return self.markers[prog]
        out = {}
        for src in PROGRAMS[prog].sources:
            with open(os.path.join(self.srcdir, src), encoding="utf-8") as f:
                for lineno, text in enumerate(f, 1):
                    for kind, name in MARKER.findall(text):
                        if name in out:
                            raise SystemExit("duplicate marker %s in %s" % (name, src))
                        out[name] = (kind, src, lineno)
        self.markers[prog] = out
        return out

    def where(self, prog, name):
        kind, src, line = self.marks(prog)[name]
        return (src, line)

    # -- running
    def run(self, cmd, stdin=b"", timeout=90):
        self.runs += 1
        if self.verbose:
            print("$ " + " ".join(cmd), flush=True)
        try:
            p = subprocess.run(
                cmd,
                input=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=timeout,
                preexec_fn=no_core,
            )
        except subprocess.TimeoutExpired:
            self.check(False, "timed out after %ds: %s" % (timeout, " ".join(cmd)))
            return None
        return p

    def tmtop_run(self, prog, args=None, opts=(), as_json=True, stdin=None, to_file=True):
        """Runs `tmtop --report [opts] [--json --limit 0] -o FILE -- PROGRAM ARGS`."""
        p = PROGRAMS[prog]
        argv = [self.exe(prog)] + list(p.args if args is None else args)
        out = os.path.join(self.tmp, "report-%d.%s" % (self.runs, "json" if as_json else "txt"))
        cmd = [self.tmtop, "--report"] + list(opts)
        if as_json:
            cmd += ["--json"]
            if not any(o == "--limit" for o in opts):
                cmd += ["--limit", "0"]
        if to_file:
            cmd += ["-o", out]
        cmd += ["--"] + argv
        r = self.run(cmd, stdin=p.stdin if stdin is None else stdin)
        if r is None:
            return None
        report = ""
        if to_file:
            if not self.check(os.path.exists(out), "%s: report file %s written" % (prog, out)):
                self.show(r)
                return Result(r.returncode, r.stdout, r.stderr, "", None)
            with open(out, encoding="utf-8", errors="replace") as f:
                report = f.read()
        else:
            report = r.stderr.decode("utf-8", "replace")
        data = None
        if as_json:
            try:
                data = json.loads(report)
            except ValueError as e:
                self.check(False, "%s: report is not JSON (%s): %r" % (prog, e, report[:600]))
                self.show(r)
            else:
                self.check_schema(prog, data, opts)
        return Result(r.returncode, r.stdout, r.stderr, report, data)

    def show(self, r):
        sys.stdout.write("--- tmtop stderr:\n%s\n" % r.stderr.decode("utf-8", "replace")[-3000:])

    # -- report checks
    def check_schema(self, prog, d, opts):
        key = "lineno"
        if "--key" in opts:
            key = opts[list(opts).index("--key") + 1]
        frames = 64
        if "--frames" in opts:
            frames = int(opts[list(opts).index("--frames") + 1])
        ok = self.check(isinstance(d, dict), "%s: JSON is an object" % prog)
        if not ok:
            return
        for f in ("version", "program", "pid", "exit", "current", "peak", "blocks",
                  "allocations", "key", "frames", "stats"):
            self.check(f in d, "%s: JSON has %r" % (prog, f))
        self.eq(d.get("version"), 1, "%s: version" % prog)
        self.eq(d.get("program"), self.exe(prog), "%s: program as given" % prog)
        self.eq(d.get("key"), key, "%s: key" % prog)
        self.eq(d.get("frames"), frames, "%s: frames" % prog)
        pid = d.get("pid")
        self.check(isinstance(pid, int) and pid > 0, "%s: pid %r > 0" % (prog, pid))
        ex = d.get("exit")
        self.check(
            isinstance(ex, dict) and len(ex) == 1 and ("status" in ex or "signal" in ex),
            "%s: exit is {status} or {signal}: %r" % (prog, ex),
        )
        for f in ("current", "peak", "blocks", "allocations"):
            v = d.get(f)
            self.check(isinstance(v, int) and v >= 0, "%s: %s %r is a count" % (prog, f, v))
        if isinstance(d.get("peak"), int) and isinstance(d.get("current"), int):
            self.check(d["peak"] >= d["current"], "%s: peak >= current" % prog)
        stats = d.get("stats")
        if not self.check(isinstance(stats, list), "%s: stats is a list" % prog):
            d["stats"] = []
            return
        want = {
            "lineno": {"file", "line", "function", "size", "count"},
            "filename": {"file", "size", "count"},
            "traceback": {"frames", "size", "count"},
        }[key]
        # Keys beyond the documented ones are allowed (additions, not changes).
        bad = [s for s in stats if not isinstance(s, dict) or not want <= set(s)]
        self.check(not bad, "%s: every %s stat has %s: %r" % (prog, key, sorted(want), bad[:2]))
        if key == "traceback":
            fkeys = {"function", "file", "line", "module", "address"}
            badf = [f for s in stats for f in s.get("frames", []) if not fkeys <= set(f)
                    or address(f["address"]) is None]
            self.check(not badf, "%s: every frame has %s, address an integer or '0x...': %r"
                       % (prog, sorted(fkeys), badf[:2]))
        order = [(s.get("size", 0), s.get("count", 0)) for s in stats]
        self.check(order == sorted(order, reverse=True),
                   "%s: stats sorted by (size, count) descending" % prog)

    def user_stats(self, prog, d, key="lineno"):
        """Stats whose site is in the program's sources: {(src, line): (size, count)}
        (line 0 for the filename key).  Checks their file paths are absolute."""
        srcs = set(PROGRAMS[prog].sources)
        out = {}
        for s in d.get("stats", []):
            f = s.get("file")
            if not f or os.path.basename(f) not in srcs:
                continue
            self.check(os.path.isabs(f) and os.path.dirname(os.path.realpath(f)) == self.srcdir,
                       "%s: site file %r is the absolute path of the source" % (prog, f))
            k = (os.path.basename(f), s.get("line", 0) if key == "lineno" else 0)
            self.check(k not in out, "%s: one stat per key, %r twice" % (prog, k))
            out[k] = (s.get("size"), s.get("count"))
        return out

    def check_sites(self, prog, d, expected, all_user=True):
        """expected: {site name: (size, count)}.  Every other @site marker of
        the program must have no live block; no stat may sit on a line
        without a marker; @libc lines may (their numbers are glibc's).
        all_user: every stat's site must be in the program's sources -- the
        programs allocate nothing that is not reached from their own lines,
        so a site in glibc, the loader or the hook is a misattribution."""
        if all_user:
            srcs = set(PROGRAMS[prog].sources)
            foreign = [(s.get("file"), s.get("line"), s.get("function"), s.get("size"),
                        s.get("count")) for s in d.get("stats", [])
                       if os.path.basename(s.get("file") or "") not in srcs]
            self.check(not foreign, "%s: every site is in the program's sources; these are "
                       "not (file, line, function, size, count): %r" % (prog, foreign[:5]))
        stats = self.user_stats(prog, d)
        marks = self.marks(prog)
        for name, (kind, src, line) in sorted(marks.items()):
            if kind == "site":
                got = stats.get((src, line), (0, 0))
                self.eq(got, expected.get(name, (0, 0)),
                        "%s: site %s (%s:%d) live (size, count)" % (prog, name, src, line))
        for name in expected:
            self.check(name in marks and marks[name][0] == "site",
                       "%s: expectation %s names a @site marker" % (prog, name))
        by_line = {(src, line): (kind, name) for name, (kind, src, line) in marks.items()}
        for k, v in sorted(stats.items()):
            kind = by_line.get(k, (None,))[0]
            allowed = kind in ("site", "libc")
            self.check(allowed, "%s: stat at %s:%d %r is on a marked allocation line (%s)"
                       % (prog, k[0], k[1], v, kind or "no marker"))
        return stats

    def check_sums(self, prog, d):
        """With the lineno key, no filter and no limit every live block is in
        exactly one stat."""
        st = d.get("stats", [])
        self.eq(sum(s.get("size", 0) for s in st), d.get("current"),
                "%s: sum of stat sizes = current" % prog)
        self.eq(sum(s.get("count", 0) for s in st), d.get("blocks"),
                "%s: sum of stat counts = blocks" % prog)

    def check_totals(self, prog, d, **want):
        for k, v in want.items():
            self.eq(d.get(k), v, "%s: %s" % (prog, k))

    def check_function(self, prog, d, name, function):
        src, line = self.where(prog, name)
        for s in d.get("stats", []):
            if s.get("file") and os.path.basename(s["file"]) == src and s.get("line") == line:
                self.eq(s.get("function"), function, "%s: function of site %s" % (prog, name))
                return
        self.check(False, "%s: site %s has a stat" % (prog, name))

    def check_exit(self, prog, r, status=None, signal=None):
        if status is not None:
            self.eq(r.rc, status, "%s: tmtop exit status" % prog)
            if r.data:
                self.eq(r.data.get("exit"), {"status": status}, "%s: JSON exit" % prog)
        else:
            self.eq(r.rc, 128 + signal, "%s: tmtop exit status 128+%d" % (prog, signal))
            if r.data:
                self.eq(r.data.get("exit"), {"signal": signal}, "%s: JSON exit" % prog)


# ---- the tests -----------------------------------------------------------------


def test_basic(c):
    """malloc/calloc/strdup/malloc(0), failed calls, freed and leaked blocks,
    standard streams untouched, totals."""
    stdin = b"line one\nline two\n\x00binary\xff\n"
    r = c.tmtop_run("basic", stdin=stdin)
    if not r or not r.data:
        return
    d = r.data
    c.check_exit("basic", r, status=0)
    c.eq(r.stdout, stdin + b"basic: done, 110 kept, failed calls ok\n", "basic: stdout untouched")
    c.check(b"basic: a line on stderr\n" in r.stderr, "basic: the target's stderr line passes")
    c.check_sites("basic", d, {
        "node": (48000, 1000),
        "calloc": (5000, 5),
        "half": (3200, 100),
        "strdup": (33, 3),
        "zero": (0, 1),  # malloc(0): a live block of 0 bytes
        "zero2": (0, 1),
    })
    c.check_function("basic", d, "node", "make_node")
    c.check_function("basic", d, "calloc", "main")
    c.check_sums("basic", d)
    # 1000 + 5 + 500 + 200 + 3 + 2 + 50 successful calls; the two failed
    # calls are not allocations.  Peak: after the 200 "half" blocks,
    # 48000 + 5000 + 6400.
    c.check_totals("basic", d, current=56233, blocks=1110, allocations=1760, peak=59400)


def test_multi(c):
    """Sites in two source files."""
    r = c.tmtop_run("multi")
    if not r or not r.data:
        return
    c.check_exit("multi", r, status=0)
    c.eq(r.stdout, PROGRAMS["multi"].stdout, "multi: stdout untouched")
    c.check_sites("multi", r.data, MULTI_SITES)
    c.check_function("multi", r.data, "lib_strings", "lib_make_strings")
    c.check_function("multi", r.data, "lib_table", "lib_make_table")
    c.check_sums("multi", r.data)
    # 4 + (1 + 10) + 1 + (1 + 5) + 100; peak: everything leaked plus the
    # largest churn block (199 bytes) at the very end.
    c.check_totals("multi", r.data, current=2020, blocks=22, allocations=122, peak=2219)


MULTI_SITES = {
    "main_own": (800, 4),
    "lib_vec": (120, 2),
    "lib_strings": (300, 15),
    "lib_table": (800, 1),
}


def test_realloc(c):
    r = c.tmtop_run("realloc")
    if not r or not r.data:
        return
    c.check_exit("realloc", r, status=0)
    c.eq(r.stdout, PROGRAMS["realloc"].stdout, "realloc: stdout untouched")
    c.check_sites("realloc", r.data, {
        "r_blocker": (16, 1),
        "r_shrink": (40, 1),  # the chain's block, at the last realloc's line
        "r_null": (24, 1),  # untouched by the failed realloc of it
        "r_same": (64, 1),
        "r_loop": (65536, 1),
        "r_array": (120, 1),
    })
    c.check_sums("realloc", r.data)
    # Successful calls: 2 mallocs + 5 chain reallocs + realloc(NULL) +
    # malloc x + malloc y + realloc y + 17 loop reallocs + reallocarray = 29;
    # not the failed realloc, not realloc(x, 0) (it frees and returns NULL).
    # Peak: the chain's 600000-byte block next to the 16-byte blocker (a
    # realloc frees its old block before the new one counts).
    c.check_totals("realloc", r.data, current=65800, blocks=6, allocations=29, peak=600016)


def test_memalign(c):
    r = c.tmtop_run("memalign", args=["pvalloc"])
    if not r or not r.data:
        return
    c.check_exit("memalign", r, status=0)
    c.eq(r.stdout, PROGRAMS["memalign"].stdout, "memalign: stdout untouched")
    c.check_sites("memalign", r.data, {
        "posix_memalign": (300, 3),
        "aligned_alloc": (1024, 2),
        "memalign": (1000, 1),
        "valloc": (3000, 1),
        "pvalloc": (5000, 1),  # requested bytes, not the page glibc rounds to
    })
    c.check_sums("memalign", r.data)
    # 3 + 2 + 1 + 1 + 1 leaked, 10 x 4 freed; peak: the 8 leaked blocks plus
    # 64 + 4096 + 10 live together in the loop.
    c.check_totals("memalign", r.data, current=10324, blocks=8, allocations=48, peak=14494)


CXX_SITES = {
    "new_node": (1600, 100),
    "new_array": (2000, 2),
    "new_array_cookie": (248, 1),  # 10 x 24 bytes + the 8-byte array cookie
    "new_aligned": (64, 1),
    "new_nothrow": (16, 1),
    "vec_obj": (24, 1),
    "vec_push": (4096, 1),  # capacity 1024 ints, at the user's push_back line
}
# Calls made by the program: global_ctor 1, new_node 100, new_deleted 50,
# new_array 2, new_array_deleted 1, cookie 1, aligned 2, nothrow 1,
# vec_obj 1, vec_push 11 (capacity 1, 2, 4, ... 1024), reserve 1, string 1,
# the exception object and its message 2 = 174; plus libstdc++'s exception
# emergency pool (72704 bytes in GCC 12), allocated by libstdc++'s ELF
# constructor, which the loader runs before any preloaded library's
# constructor (LD_DEBUG=files shows libstdc++'s init first): the hook must
# trace calls that come before its own initialisation.  The pool is freed
# at exit by __gnu_cxx::__freeres, as valgrind does.
CXX_POOL = 72704
CXX_ALLOCATIONS = 174 + 1


def test_cxx(c):
    r = c.tmtop_run("cxx")
    if not r or not r.data:
        return
    d = r.data
    c.check_exit("cxx", r, status=0)
    c.eq(r.stdout, PROGRAMS["cxx"].stdout, "cxx: stdout untouched")
    # global_ctor is absent: the global's destructor freed it during exit.
    c.check_sites("cxx", d, CXX_SITES)
    c.check_function("cxx", d, "vec_push", "main")
    c.check_sums("cxx", d)
    # Peak: the pool, the global's 16 bytes, the blocks leaked before the
    # vector (1600 + 2000 + 248 + 64 + 16 + 24) and the vector's last growth,
    # when its new 4096-byte buffer and its old 2048-byte one are both live.
    c.check_totals("cxx", d, current=8048, blocks=107, allocations=CXX_ALLOCATIONS,
                   peak=CXX_POOL + 16 + 3952 + 4096 + 2048)


def test_threads(c):
    """Threads allocating, freeing each other's blocks and churning.  Run
    several times: an ordering bug shows up as a wrong count."""
    params = (6, 3000, 8000)
    e = threads_expect(*params)
    for run in range(3):
        c.label = "run %d" % run
        r = c.tmtop_run("threads", args=[str(p) for p in params])
        if not r or not r.data:
            return
        d = r.data
        tag = "threads#%d" % run
        c.check_exit("threads", r, status=0)
        c.eq(r.stdout, b"threads: done %d %d %d, %d leaked\n" % (params + (e["leak_count"],)),
             "%s: stdout untouched" % tag)
        st = c.check_sites("threads", d, {
            "t_slot": (e["leak_size"], e["leak_count"]),
            "t_leaked": (e["leaked_table"], 1),
        })
        c.check_sums("threads", d)
        # glibc allocates one DTV (TLS vector) per new thread with calloc in
        # pthread_create; the joined threads' stacks stay cached with it, so
        # the create line holds exactly one live block per thread.  Its size
        # depends on how many modules have TLS (the hook has some), so it is
        # taken from the report and checked against valgrind elsewhere.
        create = st.get(c.where("threads", "t_create"), (0, 0))
        c.eq(create[1], params[0], "%s: one live DTV block per thread at pthread_create" % tag)
        c.check_totals("threads", d,
                       current=e["leak_size"] + e["leaked_table"] + create[0],
                       blocks=e["leak_count"] + 1 + params[0],
                       allocations=e["user_allocations"] + params[0])
        c.check(d.get("peak", 0) >= e["peak_at_least"],
                "%s: peak %r >= %d (every slot live at the barrier)"
                % (tag, d.get("peak"), e["peak_at_least"]))


def threadchurn_expect(waves, nthreads, nblocks):
    """What e2e_threadchurn allocates (keep in step with block_size() there)."""
    def block_size(w, t, i):
        return 16 + (w * 7 + t * 13 + i * 29) % 97
    kept = [(w, t, i) for w in range(waves) for t in range(nthreads)
            for i in range(1, nblocks, 2)]
    return {
        "block_size": sum(block_size(*k) for k in kept),
        "block_count": len(kept),
        "exit_count": waves * nthreads,
        # per thread: its TLS block, its blocks, 200 churned, one at exit;
        # then the tables
        "allocations": waves * nthreads * (1 + nblocks + 200 + 1) + nthreads,
        "frees": waves * nthreads * ((nblocks + 1) // 2 + 200 + 1) + nthreads,
    }


def with_env(name, value, fn):
    """Runs fn() with the environment variable name set to value (None:
    unset), then restores it."""
    saved = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        return fn()
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def test_threadchurn(c, stamps=None):
    """Waves of short-lived threads, more at once than the hook has
    per-thread buffers for, freeing each other's blocks and allocating in
    their exit destructors.  stamps="counter" makes the hook order events
    by its global counter instead of the TSC."""
    params = (3, 80, 300)
    e = threadchurn_expect(*params)
    if stamps:
        with_env("TMTOP_HOOK_STAMPS", stamps, lambda: threadchurn_runs(c, params, e))
    else:
        threadchurn_runs(c, params, e)


def threadchurn_runs(c, params, e):
    """Two runs of e2e_threadchurn with params, checked against e."""
    for run in range(2):
        c.label = "run %d" % run
        r = c.tmtop_run("threadchurn", args=[str(p) for p in params])
        if not r or not r.data:
            return
        d = r.data
        tag = "threadchurn#%d" % run
        c.check_exit("threadchurn", r, status=0)
        c.eq(r.stdout, b"threadchurn: done %d %d %d, %d exits\n"
             % (params + (e["exit_count"],)), "%s: stdout untouched" % tag)
        st = c.check_sites("threadchurn", d, {
            "tc_block": (e["block_size"], e["block_count"]),
            "tc_exit": (40 * e["exit_count"], e["exit_count"]),
        })
        c.check_sums("threadchurn", d)
        # One DTV per thread stack; later waves reuse the cached stacks.
        create = st.get(c.where("threadchurn", "tc_create"), (0, 0))
        c.eq(create[1], params[1], "%s: one live DTV block per thread stack" % tag)
        c.check_totals("threadchurn", d,
                       current=e["block_size"] + 40 * e["exit_count"] + create[0],
                       blocks=e["block_count"] + e["exit_count"] + params[1],
                       allocations=e["allocations"] + params[1],
                       frees=e["frees"])
        # glibc frees a reused stack's dynamic TLS block, which the
        # unwinder allocated inside the hook (never recorded): the hook
        # knows it for its own and does not record that free either.
        c.eq(d.get("unknown_frees"), 0, "%s: unknown frees" % tag)


WALK_CHECK = re.compile(rb"tmtop-hook: unwind check: (\d+) stacks compared, (\d+) differ, "
                        rb"(\d+) declined, (\d+) from the memo\n")


def traceback_stats(d):
    """A report's traceback rows without the addresses (they move with ASLR)."""
    rows = []
    for st in d.get("stats", []):
        frames = tuple((f.get("function"), f.get("file"), f.get("line"), f.get("module"))
                       for f in st.get("frames", []))
        rows.append((frames, st.get("size"), st.get("count"), bool(st.get("truncated"))))
    return sorted(rows, key=repr)


def test_walk(c):
    """The hook's own stack walk (src/tracer/hook_walk.c) against libunwind,
    on an optimised program with every frame shape it must walk or decline
    (walk_shapes.c).  TMTOP_HOOK_UNWIND=check makes the hook walk every stack
    both ways and count the stacks that differ; then a run on the own walk
    and a run on libunwind alone must report the same tracebacks."""
    for frames in ("64", "10"):
        c.label = "check, --frames %s" % frames
        r = with_env("TMTOP_HOOK_UNWIND", "check", lambda: c.tmtop_run(
            "walk", opts=["--frames", frames, "--key", "traceback"]))
        if not r:
            return
        c.check_exit("walk", r, status=0)
        c.eq(r.stdout, PROGRAMS["walk"].stdout, "stdout untouched")
        m = WALK_CHECK.search(r.stderr)
        if not c.check(m is not None, "the hook's check line on stderr"):
            c.show(r)
            continue
        compared, differ, declined, memo = (int(g) for g in m.groups())
        c.eq(differ, 0, "stacks where the own walk and libunwind differ")
        c.check(b"stacks differ at" not in r.stderr, "no stack differs")
        # 300 rounds of ~72 allocations in the main thread, 3 x 1500 x ~2 in threads
        c.check(compared >= 25000, "own walks compared: %d" % compared)
        c.check(memo * 2 >= compared, "walks answered from the memo: %d of %d" % (memo, compared))
        # the signal frames (300) and makecontext's trampoline decline
        c.check(300 <= declined <= 2000, "walks declined: %d" % declined)
    c.label = ""
    rows = {}
    for mode in (None, "libunwind"):
        r = with_env("TMTOP_HOOK_UNWIND", mode, lambda: c.tmtop_run(
            "walk", opts=["--key", "traceback"]))
        if not r or not r.data:
            return
        c.check_exit("walk", r, status=0)
        c.check_sums("walk", r.data)
        rows[mode] = traceback_stats(r.data)
    c.check(len(rows[None]) >= 80, "distinct tracebacks: %d" % len(rows[None]))
    c.check(rows[None] == rows["libunwind"],
            "the same tracebacks, sizes and counts on the own walk and on libunwind "
            "(%d and %d rows)" % (len(rows[None]), len(rows["libunwind"])))


def test_dlopen(c):
    """A dlopen'ed library's sites, with the library kept and unloaded."""
    for mode in ("keep", "close"):
        c.label = mode
        r = c.tmtop_run("dlopen", args=[c.plugin(), mode])
        if not r or not r.data:
            return
        d = r.data
        tag = "dlopen-" + mode
        c.check_exit("dlopen", r, status=0)
        c.eq(r.stdout, b"dlopen: done %s ok\n" % (b"closed" if mode == "close" else b"kept"),
             "%s: stdout untouched" % tag)
        st = c.check_sites("dlopen", d, {
            "plugin_ctor": (33, 1),
            "plugin_block": (2880, 40),
            "after_dlopen": (123, 1),
        })
        c.check_function("dlopen", d, "plugin_block", "plugin_make")
        c.check_function("dlopen", d, "plugin_ctor", "plugin_init")
        c.check_sums("dlopen", d)
        # The loader's blocks sit at the dlopen line (and nowhere else).
        loader = st.get(c.where("dlopen", "dlopen"), (0, 0))
        c.check(loader[1] >= 1, "%s: the loader's blocks are at the dlopen line: %r"
                % (tag, loader))
        c.check_totals("dlopen", d, current=33 + 2880 + 123 + loader[0],
                       blocks=1 + 40 + 1 + loader[1])
        # 1 + 40 + 40 + 1 by the programs; dlopen's own calls come on top.
        c.check(d.get("allocations", 0) > 82,
                "%s: allocations %r > 82 (the program's, plus the loader's)"
                % (tag, d.get("allocations")))
    # The unloaded plugin's frames still resolve, module included.
    c.label = "close traceback"
    r = c.tmtop_run("dlopen", args=[c.plugin(), "close"], opts=["--key", "traceback"])
    if r and r.data:
        src, line = c.where("dlopen", "plugin_block")
        hits = [s for s in r.data["stats"]
                if any(f.get("file") and os.path.basename(f["file"]) == src
                       and f.get("line") == line for f in s["frames"])]
        if c.eq(len(hits), 1, "dlopen-close: one traceback through plugin_block"):
            fr = [f for f in hits[0]["frames"] if f.get("function") == "plugin_make"]
            c.check(fr and fr[0].get("module") and
                    os.path.basename(fr[0]["module"]) == "e2e_plugin.so",
                    "dlopen-close: plugin_make's module is e2e_plugin.so: %r" % fr[:1])


def test_exit_status(c):
    stdin = b"to stdout, unchanged\n"
    r = c.tmtop_run("exit", stdin=stdin)
    if r and r.data:
        c.check_exit("exit", r, status=3)
        c.eq(r.stdout, stdin + b"exit: leaving with 3\nexit: atexit handler ran\n",
             "exit: stdout untouched")
        c.check_sites("exit", r.data, {"exit_kept": (2100, 7), "in_atexit": (77, 1)})
        c.check_sums("exit", r.data)
        c.check_totals("exit", r.data, current=2177, blocks=8, allocations=9, peak=3100)
    # _exit: no atexit handler runs (neither the program's nor the hook's).
    c.label = "_exit"
    r = c.tmtop_run("exit", args=["_exit"], stdin=b"")
    if r and r.data:
        c.check_exit("exit", r, status=4)
        c.eq(r.stdout, b"exit: leaving with 4\n", "exit-_exit: stdout untouched")
        c.check_sites("exit", r.data, {"exit_kept": (2100, 7), "freed_by_atexit": (1000, 1)})
        c.check_sums("exit", r.data)
        c.check_totals("exit", r.data, current=3100, blocks=8, allocations=8, peak=3100)
        # The hook interposes _exit, so the stream still ends with END.
        c.eq(r.data.get("complete"), True, "exit-_exit: the trace is complete")
    # exec: the stream ends at the EXEC record; complete up to there, marked
    # execd, and the text report says so instead of calling it incomplete.
    c.label = "exec"
    r = c.run([c.tmtop, "--report", "--json", "-o", os.path.join(c.tmp, "exec.json"), "--",
               "/bin/sh", "-c", "exec /bin/true"])
    if r:
        c.eq(r.returncode, 0, "exec: status")
        with open(os.path.join(c.tmp, "exec.json")) as f:
            d = json.load(f)
        c.eq(d.get("complete"), True, "exec: complete up to the exec")
        c.eq(d.get("execd"), True, "exec: marked execd")
    r = c.run([c.tmtop, "--report", "--", "/bin/sh", "-c", "exec /bin/true"])
    if r:
        err = r.stderr.decode() if isinstance(r.stderr, bytes) else r.stderr
        c.check("exec'd another program" in err and "incomplete" not in err,
                "exec-text: says exec'd, not incomplete: %r" % err[-300:])
    # The text report too carries the exit status in tmtop's own status.
    c.label = "text"
    r = c.tmtop_run("exit", as_json=False, stdin=b"")
    if r:
        c.eq(r.rc, 3, "exit-text: tmtop exit status")
    # tmtop's own failures: a report it cannot write (checked before the
    # program starts), a program that does not exist.
    c.label = "unwritable -o"
    r = c.run([c.tmtop, "--report", "-o", os.path.join(c.tmp, "no-dir", "r.txt"), "--",
               c.exe("exit")])
    if r:
        c.check(r.returncode not in (0, 3), "tmtop fails: status %d" % r.returncode)
        c.eq(r.stdout, b"", "the program did not run")
        c.check(r.stderr.startswith(b"tmtop: "), "one tmtop message: %r" % r.stderr[:200])
    c.label = "no such program"
    r = c.run([c.tmtop, "--report", "--", os.path.join(c.tmp, "no-such-program")])
    if r:
        c.check(r.returncode != 0, "tmtop fails: status %d" % r.returncode)
        c.check(r.stderr.startswith(b"tmtop: "), "one tmtop message: %r" % r.stderr[:200])


def test_fork(c):
    """A forked child's blocks and a system() command stay out of the report."""
    r = c.tmtop_run("fork")
    if r and r.data:
        c.check_exit("fork", r, status=0)
        c.eq(r.stdout, b"fork: child done\nfork: parent done 0 5\n", "fork: stdout untouched")
        c.check_sites("fork", r.data, {"before_fork": (1000, 10), "after_fork": (1000, 5)})
        c.check_sums("fork", r.data)
        c.check_totals("fork", r.data, current=2000, blocks=15, allocations=15, peak=2000)


def test_deep(c):
    """A 100-deep recursion: site, --frames truncation, cumulative counts."""
    src = "e2e_deep.c"
    leaf, rec, call = (c.where("deep", n)[1] for n in ("deep_leaf", "recurse", "call_deep"))
    r = c.tmtop_run("deep")
    if r and r.data:
        c.check_exit("deep", r, status=0)
        c.eq(r.stdout, PROGRAMS["deep"].stdout, "deep: stdout untouched")
        c.check_sites("deep", r.data, {"deep_leaf": (192, 3)})
        c.check_sums("deep", r.data)
        c.check_totals("deep", r.data, current=192, blocks=3, allocations=3, peak=192)

    def user_lines(frames):
        return [(os.path.basename(f.get("file") or ""), f.get("line"), f.get("function"))
                for f in frames]

    c.label = "traceback"
    r = c.tmtop_run("deep", opts=["--key", "traceback"])
    if r and r.data:
        st = r.data["stats"]
        if c.eq(len(st), 1, "deep traceback: one stack"):
            c.eq((st[0]["size"], st[0]["count"]), (192, 3), "deep traceback: its stat")
            # the default --frames 64 keeps the 64 innermost frames
            c.eq(user_lines(st[0]["frames"]),
                 [(src, leaf, "recurse")] + [(src, rec, "recurse")] * 63,
                 "deep traceback: 64 innermost frames, innermost first")
    c.label = "traceback --frames 1024"
    r = c.tmtop_run("deep", opts=["--key", "traceback", "--frames", "1024"])
    if r and r.data:
        st = r.data["stats"]
        if c.eq(len(st), 1, "deep traceback: one stack"):
            got = user_lines(st[0]["frames"])
            c.eq(got[:102], [(src, leaf, "recurse")] + [(src, rec, "recurse")] * 100 +
                 [(src, call, "main")], "deep traceback: the whole recursion, then main")
            c.check(all(g[0] != src for g in got[102:]) and len(got) > 102,
                    "deep traceback: only the C runtime's frames after main: %r" % got[102:])
    c.label = "cumulative"
    r = c.tmtop_run("deep", opts=["--cumulative", "--frames", "1024"])
    if r and r.data:
        c.eq(c.user_stats("deep", r.data),
             {(src, leaf): (192, 3), (src, rec): (100 * 192, 300), (src, call): (192, 3)},
             "deep --cumulative: the recursive line counts each block once per frame")
    r = c.tmtop_run("deep", opts=["--cumulative", "--key", "filename", "--frames", "1024"])
    if r and r.data:
        c.eq(c.user_stats("deep", r.data, key="filename"), {(src, 0): (102 * 192, 306)},
             "deep --cumulative --key filename: once per frame in the file")


def test_fds(c):
    """The target closes every inherited descriptor and dup2s its own file
    over all the others: nothing is lost, nothing lands in its file."""
    path = os.path.join(c.tmp, "fds-output.txt")
    r = c.tmtop_run("fds", args=[path])
    if r and r.data:
        c.check_exit("fds", r, status=0)
        c.eq(r.stdout, PROGRAMS["fds"].stdout, "fds: stdout untouched")
        with open(path, "rb") as f:
            c.eq(f.read(), b"the target's own bytes\n", "fds: its file holds its bytes only")
        c.check_sites("fds", r.data, {"fds_before": (100, 10), "fds_closed": (300, 10),
                                      "fds_after": (400, 20)})
        c.check_sums("fds", r.data)
        c.check_totals("fds", r.data, current=800, blocks=40, allocations=140, peak=1800)


def test_signal(c):
    for how, sig in (("segv", 11), ("abort", 6)):
        c.label = how
        r = c.tmtop_run("signal", args=[how])
        if not r or not r.data:
            continue
        c.check_exit("signal", r, signal=sig)
        c.eq(r.stdout, b"signal: dying by %s\n" % how.encode(), "signal-%s: stdout untouched"
             % how)
        c.check_sites("signal", r.data, {"before_crash": (5000, 20)})
        c.check_sums("signal", r.data)
        c.check_totals("signal", r.data, current=5000, blocks=20, allocations=50, peak=5099)
    c.label = "text"
    r = c.tmtop_run("signal", args=["segv"], as_json=False)
    if r:
        c.eq(r.rc, 139, "signal-text: tmtop exit status")
        c.check("size=5000 B, count=20, average=250 B" in r.report,
                "signal-text: report written after the crash")


SIZES_TEXT = {
    # site: (size, count) -> the text tracemalloc prints
    "b95": (95, 1),
    "k15_5": (15872, 2),
    "k279": (285190, 3002),
    "m12_3": (12897485, 1),
    "avg_tie": (189, 2),
    "b10239": (10239, 1),
    "k10_0": (10240, 1),
    "k100_0": (102349, 1),
    "k100": (102400, 1),
    "k278_tie": (285184, 1),
    "k10_2_tie": (10496, 1),
    "k10240": (10485759, 1),
    "m10_0": (10485760, 1),
}
# The strings these must give, written out so a bug in format_size() above
# cannot hide one in tmtop.
SIZES_LITERAL = {
    "b95": ("95 B", "95 B"),
    "k15_5": ("15.5 KiB", "7936 B"),  # below 10 KiB it counts bytes: never "1.5 KiB"
    "k279": ("279 KiB", "95 B"),
    "m12_3": ("12.3 MiB", "12.3 MiB"),
    "avg_tie": ("189 B", "94 B"),  # 94.5 rounds half to even, as %.0f does
    "b10239": ("10239 B", "10239 B"),
    "k10_0": ("10.0 KiB", "10.0 KiB"),
    "k100_0": ("100.0 KiB", "100.0 KiB"),
    "k100": ("100 KiB", "100 KiB"),
    "k278_tie": ("278 KiB", "278 KiB"),
    "k10_2_tie": ("10.2 KiB", "10.2 KiB"),  # 10.25 rounds half to even
    "k10240": ("10240 KiB", "10240 KiB"),
    "m10_0": ("10.0 MiB", "10.0 MiB"),
}


def text_stats(c, prog, report, key="lineno"):
    """Parses `where: size=S, count=N, average=A` lines: {(src, line): (S, N, A)}
    for the program's sources, plus the list of all stat lines in order."""
    srcs = set(PROGRAMS[prog].sources)
    out, lines = {}, []
    for text in report.splitlines():
        m = TEXT_STAT.match(text)
        if not m:
            continue
        lines.append(text)
        where = m.group("where")
        mm = re.match(r"^(.*?)(?::(\d+))?$", where)
        f, line = mm.group(1), int(mm.group(2) or 0)
        if os.path.basename(f) in srcs:
            out[(os.path.basename(f), line if key == "lineno" else 0)] = (
                m.group("size"), int(m.group("count")), m.group("avg"))
    return out, lines


def test_text_format(c):
    """tracemalloc's text format, every branch of _format_size, limits, the
    report on stderr."""
    for name, (size, count) in SIZES_TEXT.items():
        lit = SIZES_LITERAL[name]
        assert (format_size(size), format_size(size / count)) == lit, (name, lit)
    r = c.tmtop_run("sizes", opts=["--limit", "0"], as_json=False)
    if r:
        c.eq(r.rc, 0, "sizes-text: exit status")
        c.eq(r.stdout, PROGRAMS["sizes"].stdout, "sizes-text: stdout untouched")
        st, lines = text_stats(c, "sizes", r.report)
        for name, (size, count) in SIZES_TEXT.items():
            want = (SIZES_LITERAL[name][0], count, SIZES_LITERAL[name][1])
            c.eq(st.get(c.where("sizes", name)), want, "sizes-text: %s line" % name)
        c.eq(len(lines), len(SIZES_TEXT), "sizes-text: one line per site, nothing else")
        exp = "%s:%d: size=279 KiB, count=3002, average=95 B" % (
            os.path.join(c.srcdir, "e2e_sizes.c"), c.where("sizes", "k279")[1])
        c.check(any(l == exp or l.endswith("/" + exp.rsplit("/", 1)[1]) for l in lines),
                "sizes-text: the exact line %r" % exp)
    # JSON agrees with the text.
    r = c.tmtop_run("sizes")
    if r and r.data:
        c.check_sites("sizes", r.data, {n: v for n, v in SIZES_TEXT.items()})
        total = sum(v[0] for v in SIZES_TEXT.values())
        n = sum(v[1] for v in SIZES_TEXT.values())
        c.check_totals("sizes", r.data, current=total, blocks=n, allocations=n, peak=total)
    # --limit N keeps the N largest, in order; the default is 10.
    by_size = sorted(SIZES_TEXT, key=lambda n: SIZES_TEXT[n], reverse=True)
    r = c.tmtop_run("sizes", opts=["--limit", "3"], as_json=False)
    if r:
        st, lines = text_stats(c, "sizes", r.report)
        c.eq(len(lines), 3, "sizes-text --limit 3: three lines")
        got = [re.match(r"^(.*?):(\d+):", l) for l in lines]
        got = [(os.path.basename(m.group(1)), int(m.group(2))) for m in got if m]
        c.eq(got, [c.where("sizes", n) for n in by_size[:3]], "sizes-text --limit 3: largest")
    r = c.tmtop_run("sizes", opts=["--limit", "3"])
    if r and r.data:
        c.eq([(os.path.basename(s["file"]), s["line"]) for s in r.data["stats"]],
             [c.where("sizes", n) for n in by_size[:3]], "sizes --json --limit 3: largest")
        c.eq(r.data.get("current"), sum(v[0] for v in SIZES_TEXT.values()),
             "sizes --json --limit 3: totals are not limited")
    r = c.tmtop_run("sizes", opts=[], as_json=False)
    if r:
        st, lines = text_stats(c, "sizes", r.report)
        c.eq(len(lines), 10, "sizes-text: default limit 10")
    # Without -o the report goes to stderr, after the target's own output.
    r = c.tmtop_run("basic", opts=["--limit", "0"], as_json=False, to_file=False, stdin=b"")
    if r:
        c.eq(r.rc, 0, "basic-stderr: exit status")
        c.eq(r.stdout, b"basic: done, 110 kept, failed calls ok\n", "basic-stderr: stdout")
        st, lines = text_stats(c, "basic", r.report)
        c.eq(st.get(c.where("basic", "node")), ("46.9 KiB", 1000, "48 B"),
             "basic-stderr: node line on stderr")
        err = r.report
        c.check(err.find("basic: a line on stderr") < err.find("size=46.9 KiB"),
                "basic-stderr: report after the target's stderr")


def test_keys(c):
    """--key filename and --key traceback."""
    r = c.tmtop_run("multi", opts=["--key", "filename"])
    if r and r.data:
        st = c.user_stats("multi", r.data, key="filename")
        c.eq(st, {("e2e_multi_main.c", 0): (800, 4), ("e2e_multi_lib.c", 0): (1220, 18)},
             "multi --key filename")
        c.check_sums("multi", r.data)
    r = c.tmtop_run("multi", opts=["--key", "filename"], as_json=False)
    if r:
        st, lines = text_stats(c, "multi", r.report, key="filename")
        c.eq(st.get(("e2e_multi_lib.c", 0)), ("1220 B", 18, "68 B"),
             "multi --key filename text line")
    r = c.tmtop_run("multi", opts=["--key", "traceback"])
    if r and r.data:
        d = r.data
        c.check_sums("multi", d)
        lib_src, lib_line = c.where("multi", "lib_strings")
        want = {
            c.where("multi", "call_strings")[1]: (200, 10),
            c.where("multi", "call_strings2")[1]: (100, 5),
        }
        got = {}
        for s in d["stats"]:
            fr = s["frames"]
            user = [f for f in fr if f.get("file")
                    and os.path.basename(f["file"]) in PROGRAMS["multi"].sources]
            if not user or (os.path.basename(user[0]["file"]), user[0]["line"]) != (lib_src,
                                                                                    lib_line):
                continue
            c.eq(user[0].get("function"), "lib_make_strings", "multi traceback: site function")
            c.check(len(user) >= 2 and user[1]["function"] == "main" and
                    os.path.basename(user[1]["file"]) == "e2e_multi_main.c",
                    "multi traceback: the caller is main in e2e_multi_main.c: %r" % user[1:2])
            if len(user) >= 2:
                got[user[1]["line"]] = (s["size"], s["count"])
            # innermost first, reaching main, with modules and addresses
            names = [f.get("function") for f in fr]
            c.check("main" in names and "lib_make_strings" in names and
                    names.index("main") > names.index("lib_make_strings"),
                    "multi traceback: innermost first, up to main: %r" % names)
            c.check(all((address(f.get("address")) or 0) > 0 for f in fr),
                    "multi traceback: every frame has an address")
            c.check(os.path.basename(user[0].get("module") or "") == "e2e_multi",
                    "multi traceback: module of the site is the executable: %r"
                    % user[0].get("module"))
        c.eq(got, want, "multi traceback: one stat per call line of lib_make_strings")
    # --frames N limits the captured depth.
    r = c.tmtop_run("basic", opts=["--key", "traceback", "--frames", "2"], stdin=b"")
    if r and r.data:
        src, line = c.where("basic", "node")
        hit = [s for s in r.data["stats"] if s["frames"] and s["frames"][0].get("line") == line
               and os.path.basename(s["frames"][0].get("file") or "") == src]
        if c.eq(len(hit), 1, "basic --frames 2: one traceback at the node site"):
            c.eq([f.get("function") for f in hit[0]["frames"]], ["make_node", "main"],
                 "basic --frames 2: frames")
            c.eq((hit[0]["size"], hit[0]["count"]), (48000, 1000), "basic --frames 2: stat")
        user = [s for s in r.data["stats"] if s["frames"] and
                os.path.basename(s["frames"][0].get("file") or "") == src]
        c.check(user and all(len(s["frames"]) <= 2 for s in user),
                "basic --frames 2: no user stack deeper than 2 (no inlining at -O0)")
    r = c.tmtop_run("basic", opts=["--frames", "1"], stdin=b"")
    if r and r.data:
        # With one frame, strdup's blocks have only strdup (in libc) in their
        # stack: they must not land on a user line (the strdup line included).
        c.check_sites("basic", r.data, {
            "node": (48000, 1000), "calloc": (5000, 5), "half": (3200, 100),
            "zero": (0, 1), "zero2": (0, 1)}, all_user=False)
        c.check_sums("basic", r.data)


def test_cumulative(c):
    r = c.tmtop_run("multi", opts=["--cumulative"])
    if r and r.data:
        st = c.user_stats("multi", r.data)
        w = lambda n: c.where("multi", n)  # noqa: E731
        want = {
            w("main_own"): (800, 4),
            w("lib_vec"): (120, 2),
            w("lib_strings"): (300, 15),
            w("lib_table"): (800, 1),
            w("call_strings"): (80 + 200, 11),
            w("call_strings2"): (40 + 100, 6),
            w("call_table"): (800, 1),
        }
        c.eq(st, want, "multi --cumulative: every user line on the way")
    r = c.tmtop_run("multi", opts=["--cumulative", "--key", "filename"])
    if r and r.data:
        st = c.user_stats("multi", r.data, key="filename")
        c.eq(st, {("e2e_multi_main.c", 0): (2020, 22), ("e2e_multi_lib.c", 0): (1220, 18)},
             "multi --cumulative --key filename")
    r = c.run([c.tmtop, "--report", "--cumulative", "--key", "traceback", "--", c.exe("multi")])
    if r:
        c.eq(r.returncode, 2, "--cumulative --key traceback is a usage error")
        c.eq(r.stdout, b"", "usage error: the program did not run")


def test_filters(c):
    def files(d):
        return sorted({os.path.basename(s["file"]) if s.get("file") else None
                       for s in d["stats"]}, key=str)

    main, lib = "e2e_multi_main.c", "e2e_multi_lib.c"
    r = c.tmtop_run("multi", opts=["--include", "*_lib.c"])
    if r and r.data:
        c.eq(files(r.data), [lib], "--include *_lib.c: only lib sites")
        c.eq(c.user_stats("multi", r.data),
             {c.where("multi", n): MULTI_SITES[n] for n in ("lib_vec", "lib_strings",
                                                            "lib_table")},
             "--include *_lib.c: lib stats")
        c.eq(r.data.get("current"), 2020, "--include: totals are not filtered")
    r = c.tmtop_run("multi", opts=["--exclude", "*_lib.c"])
    if r and r.data:
        c.check(lib not in files(r.data), "--exclude *_lib.c: no lib site")
        c.eq(c.user_stats("multi", r.data), {c.where("multi", "main_own"): (800, 4)},
             "--exclude *_lib.c: main's stat")
    r = c.tmtop_run("multi", opts=["--include", "*_lib.c", "--include", "*_main.c"])
    if r and r.data:
        c.eq(files(r.data), [lib, main], "two --include: either matches")
    r = c.tmtop_run("multi", opts=["--include", "*e2e_multi*", "--exclude", "*lib*"])
    if r and r.data:
        c.eq(files(r.data), [main], "--include and --exclude: exclusion wins")
    r = c.tmtop_run("multi", opts=["--include", "e2e_multi_lib.c"])
    if r and r.data:
        c.eq(files(r.data), [], "--include without '*': the glob is matched on the full path")
    r = c.tmtop_run("multi", opts=["--include", os.path.join(c.srcdir, "e2e_multi_[l]ib.c")])
    if r and r.data:
        c.eq(files(r.data), [lib], "--include with the absolute path and a bracket glob")


def test_site_options(c):
    """--skip, --raw-site and --all-frames."""
    w = lambda n: c.where("multi", n)  # noqa: E731
    c.label = "--skip"
    r = c.tmtop_run("multi", opts=["--skip", "*_lib.c"])
    if r and r.data:
        # the lib file is "system" now: its blocks go to main's call lines
        c.eq(c.user_stats("multi", r.data),
             {w("main_own"): (800, 4), w("call_strings"): (280, 11),
              w("call_strings2"): (140, 6), w("call_table"): (800, 1)},
             "multi --skip *_lib.c: sites move out to the callers")
        c.check_sums("multi", r.data)
    c.label = "--raw-site"
    r = c.tmtop_run("cxx", opts=["--raw-site"])
    if r and r.data:
        # the vector's buffer now sits in the inlined std:: code
        c.check_sites("cxx", r.data, {k: v for k, v in CXX_SITES.items() if k != "vec_push"},
                      all_user=False)
        c.check_sums("cxx", r.data)
    r = c.tmtop_run("basic", opts=["--raw-site"], stdin=b"")
    if r and r.data:
        c.check_sites("basic", r.data, {"node": (48000, 1000), "calloc": (5000, 5),
                                        "half": (3200, 100), "zero": (0, 1), "zero2": (0, 1)},
                      all_user=False)
    c.label = "--all-frames"
    r = c.tmtop_run("multi", opts=["--all-frames", "--include", "*_main.c"])
    if r and r.data:
        c.eq(c.user_stats("multi", r.data), {w(n): v for n, v in MULTI_SITES.items()},
             "multi --all-frames --include *_main.c: every stack passes through main")
    r = c.tmtop_run("multi", opts=["--all-frames", "--exclude", "*_lib.c"])
    if r and r.data:
        c.eq(c.user_stats("multi", r.data), {w("main_own"): (800, 4)},
             "multi --all-frames --exclude *_lib.c: any lib frame excludes")


# ---- valgrind ---------------------------------------------------------------

VG_USE = re.compile(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks")
VG_TOTAL = re.compile(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, "
                      r"([\d,]+) bytes allocated")
VG_RECORD = re.compile(r"^==\d+== ([\d,]+)(?: \(([\d,]+) direct, ([\d,]+) indirect\))? bytes in "
                       r"([\d,]+) blocks are .* in loss record")
VG_FRAME = re.compile(r"^==\d+==\s+(?:at|by) 0x[0-9A-Fa-f]+: (.*?)(?: \((.*)\))?$")


def num(s):
    return int(s.replace(",", ""))


def valgrind_run(c, prog, args):
    log = os.path.join(c.tmp, "vg-%d.log" % c.runs)
    cmd = [c.valgrind, "--tool=memcheck", "--run-libc-freeres=no", "--leak-check=full",
           "--show-leak-kinds=all", "--errors-for-leak-kinds=none", "--num-callers=64",
           "--fullpath-after=", "--child-silent-after-fork=yes", "--log-file=" + log, "--",
           c.exe(prog)] + list(args)
    r = c.run(cmd, stdin=PROGRAMS[prog].stdin)
    if r is None or not os.path.exists(log):
        c.check(False, "valgrind ran %s" % prog)
        return None
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    m1, m2 = VG_USE.search(text), VG_TOTAL.search(text)
    if not c.check(m1 and m2, "valgrind summary of %s %s" % (prog, args)):
        print(text[-2000:])
        return None
    out = {"current": num(m1.group(1)), "blocks": num(m1.group(2)), "allocs": num(m2.group(1)),
           "frees": num(m2.group(2)), "bytes": num(m2.group(3)), "sites": {}, "unresolved": 0}
    # Live blocks per site: the innermost frame of each loss record that is
    # in the program's sources (what tmtop calls the site).
    srcs = {os.path.join(c.srcdir, s): s for s in PROGRAMS[prog].sources}
    rec = None
    for line in text.splitlines() + ["==0== "]:
        m = VG_RECORD.match(line)
        if m:
            rec = [num(m.group(2) or m.group(1)), num(m.group(4)), None]
            continue
        if rec is None:
            continue
        f = VG_FRAME.match(line)
        if f:
            if rec[2] is None:
                mm = re.match(r"^(.*):(\d+)$", f.group(2) or "")
                if mm and os.path.realpath(mm.group(1)) in srcs:
                    rec[2] = (srcs[os.path.realpath(mm.group(1))], int(mm.group(2)))
                elif f.group(1) == "???":
                    rec[2] = "???"
            continue
        key = rec[2]
        if key == "???":
            out["unresolved"] += 1
        else:
            s, n = out["sites"].get(key, (0, 0))
            out["sites"][key] = (s + rec[0], n + rec[1])
        rec = None
    return out


def test_valgrind(c):
    """The same runs under valgrind: allocation calls, bytes and blocks in use
    at exit, and the live blocks of every site must agree.  Differences that
    come from how the two tools work are asserted exactly, with the reason."""
    if not c.valgrind:
        print("SKIP: valgrind not found")
        return SKIP
    threads = ("4", "1000", "2000")
    runs = [
        ("basic", []), ("sizes", []), ("multi", []), ("realloc", []), ("memalign", []),
        ("cxx", []), ("threads", list(threads)), ("dlopen", [c.plugin(), "keep"]),
        ("dlopen", [c.plugin(), "close"]), ("exit", []), ("exit", ["_exit"]),
        ("signal", ["segv"]), ("fork", []), ("deep", []),
        ("fds", [os.path.join(c.tmp, "vg-fds.txt")]),
    ]
    for prog, args in runs:
        tag = "valgrind %s %s" % (prog, " ".join(os.path.basename(a) for a in args))
        c.label = tag
        vg = valgrind_run(c, prog, args)
        r = c.tmtop_run(prog, args=args)
        if not vg or not r or not r.data:
            continue
        d = r.data
        tm_sites = c.user_stats(prog, d)
        d_allocs = d_current = 0
        site_delta = {}
        if prog == "realloc" and vg["bytes"] >= 1 << 62:
            # valgrind 3.19 counts realloc(q, 2^62) as one alloc (and its
            # 2^62 bytes) before the call fails; it is no allocation.
            d_allocs = 1
        if prog == "threads":
            # pthread_create callocs each thread's DTV: 16 bytes per TLS
            # module id, plus 14 surplus and 2 header slots.  Under valgrind
            # libc is the only TLS module: 17 x 16 = 272 bytes.  Under tmtop
            # the hook (its initial-exec guard) and the libunwind.so.8 it
            # dlopens both have a PT_TLS segment (readelf -l): 19 x 16 = 304
            # bytes, 32 more per thread.  Same calls, same count, same site.
            k = c.where("threads", "t_create")
            n = int(threads[0])
            d_current = 32 * n
            site_delta[k] = (32 * n, 0)
        # Everything else is equal, as measured: the loader's own blocks in
        # the program's dlopen included (the hook's earlier, untraced dlopen
        # of libunwind does not change what the plugin's dlopen allocates).
        c.eq(d["allocations"] + d_allocs, vg["allocs"],
             "%s: tmtop allocations + %d = valgrind allocs" % (tag, d_allocs))
        c.eq(d["current"] - d_current, vg["current"],
             "%s: tmtop current - %d = valgrind bytes in use at exit" % (tag, d_current))
        c.eq(d["blocks"], vg["blocks"], "%s: tmtop blocks = valgrind blocks in use at exit" % tag)
        if args[-1:] == ["close"]:
            # valgrind cannot name the frames of an unloaded library ("???"):
            # its two plugin records have no site; compare the other sites.
            c.eq(vg["unresolved"], 2, "%s: valgrind lost the unloaded plugin's frames" % tag)
            tm_sites = {k: v for k, v in tm_sites.items() if k[0] != "e2e_plugin.c"}
        want = dict(vg["sites"])
        for k, (ds, dn) in site_delta.items():
            s, n = want.get(k, (0, 0))
            want[k] = (s + ds, n + dn)
        c.eq(tm_sites, want, "%s: live (size, count) of every site agree" % tag)


TESTS = {
    "basic": test_basic,
    "multi": test_multi,
    "realloc": test_realloc,
    "memalign": test_memalign,
    "cxx": test_cxx,
    "threads": test_threads,
    "threadchurn": test_threadchurn,
    "threadchurn_counter": lambda c: test_threadchurn(c, stamps="counter"),
    "dlopen": test_dlopen,
    "exit_status": test_exit_status,
    "signal": test_signal,
    "fork": test_fork,
    "deep": test_deep,
    "fds": test_fds,
    "walk": test_walk,
    "text_format": test_text_format,
    "keys": test_keys,
    "cumulative": test_cumulative,
    "filters": test_filters,
    "site_options": test_site_options,
    "valgrind": test_valgrind,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tmtop", help="the tmtop executable")
    ap.add_argument("--bindir", help="where the e2e programs and e2e_plugin.so are")
    ap.add_argument("--srcdir", help="tests/programs")
    ap.add_argument("--valgrind", default=shutil.which("valgrind"), help="valgrind to use")
    ap.add_argument("--keep", action="store_true", help="keep the reports")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--list", action="store_true", help="list the tests")
    ap.add_argument("tests", nargs="*")
    opts = ap.parse_args()
    if opts.list:
        print("\n".join(TESTS))
        return 0
    if not (opts.tmtop and opts.bindir and opts.srcdir and opts.tests):
        ap.error("--tmtop, --bindir, --srcdir and a test are required")
    for t in opts.tests:
        if t not in TESTS:
            ap.error("unknown test %r (see --list)" % t)
    if not os.access(opts.tmtop, os.X_OK):
        print("FAIL: %s is not an executable tmtop" % opts.tmtop)
        return 1
    c = Ctx(opts)
    skipped = 0
    try:
        for t in opts.tests:
            if TESTS[t](c) == SKIP:
                skipped += 1
    finally:
        if opts.keep:
            print("reports kept in " + c.tmp)
        else:
            shutil.rmtree(c.tmp, ignore_errors=True)
    if c.failures:
        print("%d of %d checks failed" % (len(c.failures), c.checks))
        return 1
    if skipped == len(opts.tests):
        return SKIP
    print("%d checks passed" % c.checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
