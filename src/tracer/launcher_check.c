/* launcher_check.c - before launch: find the program as execvp(3) would and
 * refuse, with one clear reason, what the hook cannot trace (RESEARCH.md §4.1,
 * §4.2); find the hook library itself.  The ELF checks use plain pread() on
 * the header and program headers: no libelf in the launcher. */
#define _GNU_SOURCE
#include "tracer.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HOST_MACHINE EM_PPC64
#endif

/* Linux follows at most this many nested #! interpreters (BINPRM_MAX_RECURSION
 * is 4 plus the final binary). */
#define MAX_SCRIPT_DEPTH 4

/* The kernel reads at most this much of a #! line (BINPRM_BUF_SIZE). */
#define SHEBANG_MAX 256

static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int stat_error(const char *name, int e, tm_err *err)
{
    if (e == ENOENT || e == ENOTDIR)
        return tm_err_set(err, TM_E_NOTFOUND, "%s: no such file", name);
    if (e == EACCES)
        return tm_err_set(err, TM_E_IO, "%s: permission denied", name);
    return tm_err_set(err, TM_E_IO, "%s: %s", name, strerror(e));
}

static int check_file(const char *name, int depth, tm_err *err);

/* The file starts with "#!": the hook will go into the interpreter, so the
 * interpreter must pass the same checks. */
static int check_script(const char *name, int fd, int depth, tm_err *err)
{
    char line[SHEBANG_MAX + 1];
    ssize_t n = pread_full(fd, line, SHEBANG_MAX, 0);
    if (n < 0)
        return tm_err_set(err, TM_E_IO, "%s: cannot read: %s", name, strerror(errno));
    line[n] = '\0';
    char *p = line + 2;
    while (*p == ' ' || *p == '\t')
        p++;
    char *end = p;
    while (*end && *end != ' ' && *end != '\t' && *end != '\n')
        end++;
    *end = '\0';
    if (!*p)
        return tm_err_set(err, TM_E_FORMAT, "%s: empty #! line", name);
    if (depth >= MAX_SCRIPT_DEPTH)
        return tm_err_set(err, TM_E_FORMAT, "%s: too many levels of #! interpreters", name);
    tm_err sub = {0};
    if (check_file(p, depth + 1, &sub) != 0)
        return tm_err_set(err, sub.code, "%s: #! interpreter %s", name, sub.msg);
    return 0;
}

/* Reads the number of program headers, following the PN_XNUM escape to
 * section header 0. Returns 0 on a malformed file. */
static size_t phdr_count(int fd, const Elf64_Ehdr *eh)
{
    if (eh->e_phnum != PN_XNUM)
        return eh->e_phnum;
    Elf64_Shdr sh0;
    if (eh->e_shoff == 0 || pread_full(fd, &sh0, sizeof sh0, (off_t)eh->e_shoff) != sizeof sh0)
        return 0;
    return sh0.sh_info;
}

/* Whether the dynamic section has DF_1_PIE in DT_FLAGS_1, which the linker
 * sets on every PIE, static-pie included, and never on a shared library. */
static int has_pie_flag(int fd, const Elf64_Phdr *dyn)
{
    Elf64_Dyn d[64];
    uint64_t size = dyn->p_filesz < 65536 ? dyn->p_filesz : 65536;
    for (uint64_t off = 0; off < size; off += sizeof d) {
        ssize_t n = pread_full(fd, d, sizeof d, (off_t)(dyn->p_offset + off));
        if (n <= 0)
            return 0;
        for (size_t i = 0; i < (size_t)n / sizeof d[0]; i++) {
            if (d[i].d_tag == DT_NULL)
                return 0;
            if (d[i].d_tag == DT_FLAGS_1)
                return (d[i].d_un.d_val & DF_1_PIE) != 0;
        }
    }
    return 0;
}

/* The 64-bit ELF part: machine, type, and the PT_INTERP that makes the
 * program dynamically linked (a static-pie has none either). */
static int check_elf(const char *name, int fd, const unsigned char *ident, size_t have, tm_err *err)
{
    if (have < EI_NIDENT)
        return tm_err_set(err, TM_E_FORMAT, "%s: truncated ELF file", name);
    if (ident[EI_CLASS] == ELFCLASS32)
        return tm_err_set(err, TM_E_FORMAT, "%s: 32-bit programs are not supported", name);
    if (ident[EI_CLASS] != ELFCLASS64)
        return tm_err_set(err, TM_E_FORMAT, "%s: not an ELF executable (unknown ELF class)", name);
    if (ident[EI_DATA] != ELFDATA2LSB)
        return tm_err_set(err, TM_E_FORMAT, "%s: big-endian programs are not supported", name);
    if (have < sizeof(Elf64_Ehdr))
        return tm_err_set(err, TM_E_FORMAT, "%s: truncated ELF file", name);

    Elf64_Ehdr eh;
    memcpy(&eh, ident, sizeof eh);
#ifdef HOST_MACHINE
    if (eh.e_machine != HOST_MACHINE)
        return tm_err_set(err, TM_E_FORMAT,
                          "%s: built for another machine (ELF machine %u); cannot run here", name,
                          eh.e_machine);
#endif
    if (eh.e_type == ET_REL)
        return tm_err_set(err, TM_E_FORMAT, "%s: an object file, not an executable", name);
    if (eh.e_type == ET_CORE)
        return tm_err_set(err, TM_E_FORMAT, "%s: a core dump, not an executable", name);
    if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
        return tm_err_set(err, TM_E_FORMAT, "%s: not an executable ELF file", name);

    size_t phnum = phdr_count(fd, &eh);
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || phnum == 0 || phnum > 65536 || eh.e_phoff == 0)
        return tm_err_set(err, TM_E_FORMAT, "%s: corrupt ELF file (program headers)", name);
    Elf64_Phdr *ph = malloc(phnum * sizeof *ph);
    if (!ph)
        return tm_err_set(err, TM_E_NOMEM, "%s: out of memory", name);
    ssize_t n = pread_full(fd, ph, phnum * sizeof *ph, (off_t)eh.e_phoff);
    if (n < 0) {
        int e = errno;
        free(ph);
        return tm_err_set(err, TM_E_IO, "%s: cannot read: %s", name, strerror(e));
    }
    if ((size_t)n != phnum * sizeof *ph) {
        free(ph);
        return tm_err_set(err, TM_E_FORMAT, "%s: truncated ELF file", name);
    }
    const Elf64_Phdr *interp = NULL, *dyn = NULL;
    for (size_t i = 0; i < phnum; i++) {
        if (ph[i].p_type == PT_INTERP && !interp)
            interp = &ph[i];
        if (ph[i].p_type == PT_DYNAMIC && !dyn)
            dyn = &ph[i];
    }
    if (!interp) {
        /* No interpreter: static, static-pie (ET_DYN flagged PIE), or a
         * shared library that is no program at all. */
        int lib = eh.e_type == ET_DYN && dyn && !has_pie_flag(fd, dyn);
        free(ph);
        if (lib)
            return tm_err_set(err, TM_E_FORMAT, "%s: a shared library, not a program", name);
        return tm_err_set(err, TM_E_FORMAT,
                          "%s: statically linked; the allocation hook cannot be preloaded into it",
                          name);
    }

    /* A missing interpreter (a musl or foreign-distribution binary) would
     * make execve fail with a bare ENOENT on a file that plainly exists. */
    char ipath[PATH_MAX];
    uint64_t isz = interp->p_filesz;
    off_t ioff = (off_t)interp->p_offset;
    free(ph);
    if (isz < 2 || isz > sizeof ipath || pread_full(fd, ipath, (size_t)isz, ioff) != (ssize_t)isz ||
        ipath[isz - 1] != '\0')
        return tm_err_set(err, TM_E_FORMAT, "%s: corrupt ELF file (PT_INTERP)", name);
    if (access(ipath, F_OK) != 0)
        return tm_err_set(err, TM_E_NOTFOUND,
                          "%s: its program interpreter %s is missing (built for another system?)",
                          name, ipath);
    return 0;
}

/* All checks on one path; name is both what is opened and what messages say. */
static int check_file(const char *name, int depth, tm_err *err)
{
    struct stat st;
    if (stat(name, &st) != 0)
        return stat_error(name, errno, err);
    if (S_ISDIR(st.st_mode))
        return tm_err_set(err, TM_E_USAGE, "%s: is a directory", name);
    if (!S_ISREG(st.st_mode))
        return tm_err_set(err, TM_E_USAGE, "%s: not a regular file", name);
    /* access() answers as execve would, root included (root needs one x bit). */
    if (access(name, X_OK) != 0)
        return tm_err_set(err, TM_E_USAGE, "%s: permission denied (not executable)", name);
    /* Secure-execution mode (AT_SECURE) makes the loader ignore a preload
     * given by path.  Refused whenever the bit is set, even where the ids
     * would not change (file owned by the caller): predictable, and tracing a
     * setuid program is not what tmtop is for. */
    if (st.st_mode & (S_ISUID | S_ISGID))
        return tm_err_set(err, TM_E_USAGE, "%s: setuid/setgid binaries ignore LD_PRELOAD", name);
    if (getxattr(name, "security.capability", NULL, 0) > 0)
        return tm_err_set(err, TM_E_USAGE,
                          "%s: has file capabilities; such binaries ignore LD_PRELOAD", name);

    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* An execute-only file runs, and the loader preloads into it, but
         * it cannot be inspected: let it go. */
        if (errno == EACCES)
            return 0;
        return tm_err_set(err, TM_E_IO, "%s: cannot open: %s", name, strerror(errno));
    }
    unsigned char hdr[sizeof(Elf64_Ehdr)];
    ssize_t n = pread_full(fd, hdr, sizeof hdr, 0);
    int rc;
    if (n < 0)
        rc = tm_err_set(err, TM_E_IO, "%s: cannot read: %s", name, strerror(errno));
    else if (n >= 2 && hdr[0] == '#' && hdr[1] == '!')
        rc = check_script(name, fd, depth, err);
    else if (n < SELFMAG || memcmp(hdr, ELFMAG, SELFMAG) != 0)
        rc = tm_err_set(err, TM_E_FORMAT, "%s: not an ELF executable", name);
    else
        rc = check_elf(name, fd, hdr, (size_t)n, err);
    close(fd);
    return rc;
}

static int copy_out(char *out, size_t out_len, const char *path, tm_err *err)
{
    size_t n = strlen(path);
    if (!out || n + 1 > out_len)
        return tm_err_set(err, TM_E_USAGE, "%s: path too long", path);
    memcpy(out, path, n + 1);
    return 0;
}

/* execvp's PATH search (glibc): entries in order, an empty entry is the
 * current directory, and a candidate that exists but cannot be executed does
 * not stop the search. */
static int search_path(const char *prog, char *found, size_t found_len, tm_err *err)
{
    const char *path = getenv("PATH");
    char defpath[256];
    if (!path) {
        size_t n = confstr(_CS_PATH, defpath, sizeof defpath);
        path = n > 0 && n <= sizeof defpath ? defpath : "/bin:/usr/bin";
    }
    size_t plen = strlen(prog);
    char cand[PATH_MAX], denied[PATH_MAX] = "";
    for (const char *p = path;; p++) {
        const char *colon = strchrnul(p, ':');
        size_t dlen = (size_t)(colon - p);
        const char *dir = dlen ? p : ".";
        if (!dlen)
            dlen = 1;
        if (dlen + 1 + plen < sizeof cand) {
            memcpy(cand, dir, dlen);
            cand[dlen] = '/';
            memcpy(cand + dlen + 1, prog, plen + 1);
            struct stat st;
            if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access(cand, X_OK) == 0)
                    return copy_out(found, found_len, cand, err);
                if (!denied[0])
                    memcpy(denied, cand, strlen(cand) + 1);
            }
        }
        if (!*colon)
            break;
        p = colon;
    }
    if (denied[0])
        return tm_err_set(err, TM_E_USAGE, "%s: permission denied (not executable)", denied);
    return tm_err_set(err, TM_E_NOTFOUND, "%s: command not found in PATH", prog);
}

int tm_tracer_check_program(const char *prog, char *resolved, size_t resolved_len, tm_err *err)
{
    char path[PATH_MAX];
    if (!prog || !*prog)
        return tm_err_set(err, TM_E_USAGE, "no program given");
    if (strchr(prog, '/')) {
        if (copy_out(path, sizeof path, prog, err) != 0)
            return -1;
    } else if (search_path(prog, path, sizeof path, err) != 0) {
        return -1;
    }
    if (check_file(path, 0, err) != 0)
        return -1;
    if (resolved)
        return copy_out(resolved, resolved_len, path, err);
    return 0;
}

/* ---- the hook library ---------------------------------------------------- */

static int usable_hook(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

int tm_tracer_find_hook(char *out, size_t out_len, tm_err *err)
{
    char exe[PATH_MAX], dir3[PATH_MAX + 16] = "", cand[PATH_MAX + 48];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = NULL;
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
    }
    if (slash) {
        *slash = '\0';
        /* The build tree (and a tarball layout): the hook beside tmtop. */
        snprintf(cand, sizeof cand, "%s/%s", exe, TM_HOOK_NAME);
        if (usable_hook(cand))
            return copy_out(out, out_len, cand, err);
    } else {
        exe[0] = '\0';
    }
    snprintf(cand, sizeof cand, "%s/%s", TMTOP_HOOK_INSTALL_DIR, TM_HOOK_NAME);
    if (cand[0] == '/' && usable_hook(cand))
        return copy_out(out, out_len, cand, err);
    if (slash) {
        /* A relocated install (cmake --install --prefix P): P/bin/tmtop and
         * the hook at the same relative place as in the configured prefix. */
        snprintf(dir3, sizeof dir3, "%s/%s", exe, TMTOP_HOOK_RELATIVE_DIR);
        snprintf(cand, sizeof cand, "%s/%s", dir3, TM_HOOK_NAME);
        char real[PATH_MAX];
        if (usable_hook(cand) && realpath(cand, real))
            return copy_out(out, out_len, real, err);
    }
    return tm_err_set(err, TM_E_NOTFOUND, "cannot find %s (looked in %s%s%s%s%s)", TM_HOOK_NAME,
                      exe, exe[0] ? ", " : "", TMTOP_HOOK_INSTALL_DIR, dir3[0] ? ", " : "", dir3);
}
