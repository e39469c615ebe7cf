#!/usr/bin/env python3
"""tmtop --report --follow-fork end to end: per-process reports of a target,
its forked child and grandchild (tests/programs/follow_fork.c), and the
default (no option) where children stay untraced.

Usage: follow.py --tmtop BUILD/tmtop --bindir BUILD/tests/e2e
                 --srcdir tests/programs TEST...
Reuses the helpers of e2e.py (same directory)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

e2e.PROGRAMS["follow"] = e2e.Program(
    "follow_fork",
    ["follow_fork.c"],
    stdout=b"follow: grandchild done\nfollow: child done 0\nfollow: parent done 0\n",
)
CHURN = 20000
PARENT = {"parent_before": (333, 3), "parent_after": (444, 2)}
CHILD = {"child": (1332, 4)}
GRANDCHILD = {"grandchild": (1776, 4)}


def check_parent(c, r):
    """The target's numbers; returns them for comparison between runs."""
    d = r.data
    c.check_exit("follow", r, status=0)
    c.eq(r.stdout, e2e.PROGRAMS["follow"].stdout, "follow: stdout untouched")
    stats = c.check_sites("follow", d, PARENT)
    c.check_sums("follow", d)
    # pthread_create's TLS block stays allocated (glibc's, its size is not ours).
    tls = stats.get(c.where("follow", "thread_tls"), (0, 0))
    c.check(tls[1] <= 1, "follow: at most one block kept by pthread_create: %r" % (tls,))
    c.check_totals("follow", d, current=777 + tls[0], blocks=5 + tls[1], peak=777 + tls[0],
                   allocations=5 + CHURN + tls[1], frees=CHURN, unknown_frees=0, complete=True)
    return {k: d.get(k) for k in ("current", "blocks", "peak", "allocations", "frees")}


def test_json(c):
    """--follow-fork --json: exact numbers and sites for each of the three."""
    r = c.tmtop_run("follow", opts=["--follow-fork"])
    if not (r and r.data):
        return
    check_parent(c, r)
    d = r.data
    kids = d.get("children")
    if not c.check(isinstance(kids, list) and len(kids) == 2,
                   "follow: two children, got %r" % (kids if not isinstance(kids, list)
                                                     else [k.get("pid") for k in kids])):
        return
    child = [k for k in kids if k.get("ppid") == d["pid"]]
    if not c.eq(len(child), 1, "follow: one child of the target"):
        return
    child = child[0]
    grand = [k for k in kids if k.get("ppid") == child.get("pid")]
    if not c.eq(len(grand), 1, "follow: one grandchild, child of the child"):
        return
    grand = grand[0]
    for name, k in (("child", child), ("grandchild", grand)):
        for f in ("pid", "ppid", "current", "peak", "blocks", "allocations", "frees",
                  "unknown_frees", "complete", "frames", "key", "cumulative", "stats"):
            c.check(f in k, "follow: %s has %r" % (name, f))
        c.check(k.get("pid") not in (d["pid"], None), "follow: %s has its own pid" % name)
        c.eq(k.get("key"), "lineno", "follow: %s key" % name)
    c.label = "child"
    c.check_sites("follow", child, CHILD)
    c.check_sums("follow", child)
    c.check_totals("follow", child, current=1332, blocks=4, peak=1332, allocations=4, frees=0,
                   unknown_frees=1, complete=True)
    c.label = "grandchild"
    c.check_sites("follow", grand, GRANDCHILD)
    c.check_sums("follow", grand)
    c.check_totals("follow", grand, current=1776, blocks=4, peak=2220, allocations=5, frees=1,
                   unknown_frees=0, complete=True)
    c.label = ""


def test_without(c):
    """Without the option no child is traced and the target's numbers are
    the same."""
    r = c.tmtop_run("follow")
    if not (r and r.data):
        return
    without = check_parent(c, r)
    c.check("children" not in r.data, "follow: no children without --follow-fork")
    r = c.tmtop_run("follow", opts=["--follow-fork"])
    if r and r.data:
        c.eq(check_parent(c, r), without, "follow: the target's totals with and without")


def test_text(c):
    """The text report: the target as usual, then one header per child."""
    r = c.tmtop_run("follow", opts=["--follow-fork", "--limit", "0"], as_json=False)
    if not r:
        return
    c.eq(r.rc, 0, "follow: tmtop exit status")
    rep = r.report
    c.check(rep.startswith("tmtop report: %s (pid " % c.exe("follow")),
            "follow: the target's report comes first: %r" % rep[:200])
    heads = re.findall(r"^child pid (\d+) \(parent (\d+)\)$", rep, re.M)
    c.eq(len(heads), 2, "follow: two child headers")
    if len(heads) == 2:
        c.eq(heads[1][1], heads[0][0], "follow: the second child's parent is the first child")
    src, line = c.where("follow", "grandchild")
    c.check(re.search(r"^(?:.*/)?%s:%d: size=1776 B, count=4, average=444 B$" % (re.escape(src), line),
                      rep, re.M) is not None, "follow: the grandchild's site in the text")
    c.check(rep.count("traced memory: ") == 3, "follow: three 'traced memory' lines")


TESTS = {"json": test_json, "without": test_without, "text": test_text}

if __name__ == "__main__":
    e2e.TESTS = TESTS
    sys.exit(e2e.main())
