/* launch_nop.c - a tiny shared library that stands in for libtmtop-hook.so in
 * the launcher's test: preloading it must work, and the fake target checks
 * that it was loaded by looking its symbol up. */
__attribute__((visibility("default"))) int launch_nop_loaded = 1;
