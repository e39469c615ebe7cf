#!/bin/sh
# Installs the build tree into a fresh prefix and runs the installed tmtop on
# the demo: the installed tmtop must find its installed hook (not the one in
# the build tree, which is removed from reach by copying nothing else).
# usage: install.sh BUILD_DIR DEMO
set -eu
build=$1 demo=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
test -x "$prefix/bin/tmtop"
hook=$(find "$prefix" -name libtmtop-hook.so)
test -n "$hook" || { echo "install.sh: no libtmtop-hook.so under $prefix" >&2; exit 1; }
"$prefix/bin/tmtop" --report --json -o "$prefix/out.json" "$demo" 2 >/dev/null
grep -q '"allocations":' "$prefix/out.json"
grep -q '"blocks":' "$prefix/out.json"
# The installed hook is the one that ran: without it, tracing must fail.
rm "$hook"
if "$prefix/bin/tmtop" --report "$demo" 1 >/dev/null 2>"$prefix/err"; then
  # It may still find the configured prefix's hook; only a build-tree hit is wrong.
  if grep -q "$build" "$prefix/err"; then exit 1; fi
else
  grep -q "cannot find libtmtop-hook.so" "$prefix/err"
fi
echo "install: ok ($hook)"
