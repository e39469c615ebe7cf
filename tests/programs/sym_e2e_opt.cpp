// sym_e2e_opt.cpp - end-to-end symbolizer target built with -O2 -g: one
// allocation made inside a function gcc inlines (always_inline, so even -O2
// keeps it inlined), one through std::vector growth (push_back inlined from
// /usr/include, operator new in libstdc++), one through std::string.  The
// site tmtop reports must be the line marked MARK:<name> (the test reads the
// markers), and the frames must agree with addr2line -f -i -C.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// Keeps every block live (a leak at exit) and stops -O2 from eliding them.
static void *volatile keep[64];
static std::vector<long> *volatile keep_vec;
static std::string *volatile keep_str;

static inline __attribute__((always_inline)) char *fill_buffer(std::size_t n, int c)
{
    char *p = static_cast<char *>(std::malloc(n)); // MARK:inline_malloc
    if (!p)
        std::abort();
    std::memset(p, c, n);
    return p;
}

__attribute__((noinline)) void make_buffers(int count)
{
    for (int i = 0; i < count; i++)
        keep[i] = fill_buffer(100 + static_cast<std::size_t>(i), i); // MARK:inline_call
}

__attribute__((noinline)) void grow_vector(int count)
{
    auto *v = new std::vector<long>(); // MARK:vector_new
    for (int i = 0; i < count; i++)
        v->push_back(i * 3); // MARK:push_back
    keep_vec = v;
}

__attribute__((noinline)) void make_string(int n)
{
    keep_str = new std::string(static_cast<std::size_t>(n), 'x'); // MARK:string_new
}

int main(int argc, char **)
{
    make_buffers(8 * argc);
    grow_vector(1000 * argc);
    make_string(200 * argc);
    // The checker derives the load bias of this PIE from this address.
    void *where = reinterpret_cast<void *>(&make_buffers);
    std::size_t total = keep_vec->size() + keep_str->size();
    std::printf("sym_e2e_opt: %zu make_buffers=%p\n", total, where); // MARK:printf
    return 0;
}
