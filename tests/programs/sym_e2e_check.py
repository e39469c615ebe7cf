#!/usr/bin/env python3
"""sym_e2e_check.py - end-to-end check of the symbolizer on optimised code.

Runs `tmtop --report --json` on sym_e2e_opt (built -O2 -g) and checks:
  * the site (lineno key, and the site frame of the traceback key) of each
    allocation is the user's line marked MARK:<name> in the source: inside
    the inlined function for the inlined malloc, the push_back line for the
    vector's growth (not new_allocator.h), the `new std::string` line;
  * --raw-site moves the vector's site into /usr/include;
  * every frame of the traceback key that lies in the program agrees with
    `addr2line -f -i -C -e PROGRAM` on the same address - 1 (function,
    file and line of every inline level).

usage: sym_e2e_check.py TMTOP PROGRAM SOURCE [ADDR2LINE] [NM]
Exit status 0 when every check passed, 1 otherwise.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

failures = 0


def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print("FAIL: " + what)
    return ok


def markers(src):
    out = {}
    with open(src, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.search(r"MARK:(\w+)", line)
            if m:
                out[m.group(1)] = n
    return out


def run_report(tmtop, prog, tmp, opts):
    out = os.path.join(tmp, "report.json")
    cmd = [tmtop, "--report", "--json", "--limit", "0", "-o", out] + opts + ["--", prog]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if not check(p.returncode == 0, "%s exited %d: %s" % (" ".join(cmd), p.returncode,
                                                          p.stderr.decode()[-2000:])):
        return None, p.stdout.decode()
    with open(out, encoding="utf-8") as f:
        return json.load(f), p.stdout.decode()


def load_bias(prog, stdout, nm):
    m = re.search(r"make_buffers=(0x[0-9a-f]+)", stdout)
    if not check(m is not None, "program printed its make_buffers address: %r" % stdout):
        return None
    syms = subprocess.run([nm, prog], stdout=subprocess.PIPE, check=True).stdout.decode()
    for line in syms.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "_Z12make_buffersi":
            return int(m.group(1), 16) - int(parts[0], 16)
    check(False, "nm finds make_buffers in %s" % prog)
    return None


def elf_funcs(nm, prog):
    """[(start, end, demangled name)] of the program's function symbols."""
    out = subprocess.run([nm, "-C", "-S", "--defined-only", prog], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    funcs = []
    for line in out.splitlines():
        m = re.match(r"([0-9a-f]+) ([0-9a-f]+) [tTwW] (.*)$", line)
        if m:
            lo = int(m.group(1), 16)
            funcs.append((lo, lo + int(m.group(2), 16), m.group(3)))
    return funcs


def bfd_naming_quirk(got, want, funcs, pc):
    """binutils names a scope that DWARF gives no linkage name (here the
    static inline fill_buffer) after the ELF symbol covering the address;
    tmtop keeps the DWARF name.  Accepted when files and lines agree and at
    each differing name one side is that covering symbol."""
    if not want or len(got) != len(want):
        return False
    cover = [n for lo, hi, n in funcs if lo <= pc < hi]
    for (gf, gfile, gl), (wf, wfile, wl) in zip(got, want):
        if (gfile, gl) != (wfile, wl):
            return False
        if gf != wf and not (gf in cover or wf in cover):
            return False
    return True


def bfd_file_error(got, want, eu):
    """binutils 2.40's addr2line reads file number 1 of a DWARF 5 line table
    as entry 0 (the CU's primary file); tmtop numbers files as DWARF 5 says,
    like eu-addr2line and llvm-symbolizer.  Accepted when the frames agree
    with addr2line in names and lines, and with eu-addr2line in files and
    lines."""
    if not want or not eu or len(got) != len(want) or len(got) != len(eu):
        return False
    return all(g[0] == w[0] and g[2] == w[2] and g[1] == e[1] and g[2] == e[2]
               for g, w, e in zip(got, want, eu))


def addr2line(tool, prog, addrs):
    """addr -> [(function, file, line)] as `addr2line -a -f -i -C` prints them."""
    inp = "".join("0x%x\n" % a for a in addrs)
    # eu-addr2line exits 1 when an address has no answer: the output still counts
    p = subprocess.run([tool, "-a", "-f", "-i", "-C", "-e", prog], input=inp.encode(),
                       stdout=subprocess.PIPE, check=tool == "addr2line")
    res, cur, func = {}, None, None
    for line in p.stdout.decode().splitlines():
        if func is None and line.startswith("0x"):
            cur = int(line, 16)
            res[cur] = []
            continue
        if func is None:
            func = line.split(" inlined at ")[0]  # eu-addr2line's suffix
            continue
        loc = re.sub(r" \(discriminator \d+\)$", "", line)
        loc = re.sub(r"(:\d+):\d+$", r"\1", loc)  # eu-addr2line's column
        file, _, ln = loc.rpartition(":")
        res[cur].append((None if func == "??" else func, None if file == "??" else file,
                         int(ln) if ln.isdigit() else 0))
        func = None
    return res


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    tmtop, prog, src = sys.argv[1:4]
    a2l = sys.argv[4] if len(sys.argv) > 4 else "addr2line"
    nm = sys.argv[5] if len(sys.argv) > 5 else "nm"
    prog = os.path.abspath(prog)
    mk = markers(src)
    srcname = os.path.basename(src)
    with tempfile.TemporaryDirectory(prefix="sym_e2e.") as tmp:
        lineno, _ = run_report(tmtop, prog, tmp, [])
        trace, stdout = run_report(tmtop, prog, tmp, ["--key", "traceback"])
        raw, _ = run_report(tmtop, prog, tmp, ["--raw-site"])
    if not lineno or not trace or not raw:
        return 1

    # -- sites, lineno key: (line -> (size, count)) for our source file
    expect = {  # marker -> (count, size, function)
        "inline_malloc": (8, sum(100 + i for i in range(8)), "fill_buffer"),
        "push_back": (1, 8192, "grow_vector(int)"),
        "vector_new": (1, 24, "grow_vector(int)"),
        "string_new": (2, 32 + 201, "make_string(int)"),
    }
    allowed = {mk[k] for k in expect} | {mk["printf"]}  # stdout's buffer
    ours = {}
    for st in lineno["stats"]:
        f = st.get("file") or ""
        if os.path.basename(f) == srcname:
            check(st["line"] in allowed, "lineno: site %s:%d is a marked line" % (f, st["line"]))
            ours[st["line"]] = st
        else:
            check(not f.startswith("/usr/include/"), "lineno: no site in %s" % f)
    for name, (count, size, func) in expect.items():
        st = ours.get(mk[name])
        if check(st is not None, "lineno: a site at MARK:%s (line %d)" % (name, mk[name])):
            check((st["count"], st["size"], st["function"]) == (count, size, func),
                  "lineno: MARK:%s is %r, expected count %d size %d in %s"
                  % (name, (st["count"], st["size"], st["function"]), count, size, func))

    # -- --raw-site: the vector growth is reported inside the allocator
    raw_files = {os.path.basename(st.get("file") or "") for st in raw["stats"]}
    check("new_allocator.h" in raw_files, "--raw-site: a site in new_allocator.h (%s)"
          % sorted(raw_files))

    # -- traceback key: site frames and inline chains
    found = set()
    for st in trace["stats"]:
        fr, site = st["frames"], st["site"]
        if site is None or site < 0 or site >= len(fr):
            continue
        sf = fr[site]
        if os.path.basename(sf.get("file") or "") != srcname:
            continue
        name = [k for k in expect if mk[k] == sf["line"]]
        if not name:
            continue
        found.add(name[0])
        # every frame inside the site is a system frame
        for f in fr[:site]:
            check(not (f.get("file") or "").endswith(srcname),
                  "traceback MARK:%s: frame above the site is not the user's: %r" % (name[0], f))
        if name[0] == "inline_malloc":
            check(sf.get("inlined") is True and site + 1 < len(fr) and
                  fr[site + 1]["function"] == "make_buffers(int)" and
                  fr[site + 1]["line"] == mk["inline_call"],
                  "traceback: fill_buffer is inlined into make_buffers at MARK:inline_call: %r"
                  % fr[site:site + 2])
        if name[0] == "push_back":
            check(site > 0 and any("push_back" in (f["function"] or "") for f in fr[:site]),
                  "traceback: push_back's inlined std:: frames precede the site")
    for k in expect:
        check(k in found, "traceback: a stack whose site is MARK:%s" % k)

    # -- agreement with addr2line on every address inside the program
    bias = load_bias(prog, stdout, nm)
    if bias is None:
        return 1
    groups = {}  # address -> frames of that address, in order
    innermost = set()
    for st in trace["stats"]:
        fr = st["frames"]
        if fr and fr[0]["module"] == prog:
            innermost.add(int(fr[0]["address"], 16))
        for f in fr:
            if f["module"] == prog:
                a = int(f["address"], 16)
                groups.setdefault(a, [])
                if len(groups[a]) < sum(1 for g in fr if g["address"] == f["address"]):
                    groups[a].append((f["function"], f["file"], f["line"]))
    check(len(innermost) >= 3, "at least 3 innermost addresses in the program (%d)"
          % len(innermost))
    addrs = sorted(groups)
    ref = addr2line(a2l, prog, [a - 1 - bias for a in addrs])
    funcs = elf_funcs(nm, prog)
    eu = addr2line("eu-addr2line", prog, [a - 1 - bias for a in addrs])
    same = quirks = filebugs = 0
    for a in addrs:
        pc = a - 1 - bias
        want = ref.get(pc)
        ok = want == groups[a]
        quirk = not ok and bfd_naming_quirk(groups[a], want, funcs, pc)
        filebug = not ok and not quirk and bfd_file_error(groups[a], want, eu.get(pc))
        same += ok
        quirks += quirk
        filebugs += filebug
        check(ok or quirk or filebug, "0x%x (file 0x%x): tmtop %r, addr2line %r, eu-addr2line %r"
              % (a, pc, groups[a], want, eu.get(pc)))
    print("sym_e2e: %d addresses in the program: %d identical to addr2line, %d differ only by"
          " bfd's symbol naming of inlined static functions, %d by binutils' DWARF 5 file"
          " numbering; %d innermost" % (len(addrs), same, quirks, filebugs, len(innermost)))
    print("sym_e2e: %s" % ("ok" if not failures else "%d failures" % failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
