// e2e_cxx.cpp - C++ allocations: new/delete, new[]/delete[] (with the array
// cookie of a type with a destructor), aligned and nothrow new, std::vector
// growth (the site is the user's push_back line, not the inlined std::
// code), std::string, an exception, and a global whose constructor allocates
// before main and whose destructor frees at exit.
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "e2e_common.h"

struct Node {
    int value;
    Node *next;
};

struct WithDtor {
    ~WithDtor()
    {
        pad[0] = 0;
    }
    char pad[24];
};

struct alignas(64) Aligned {
    char bytes[64];
};

struct Global {
    Global()
    {
        p = new int[4]; /* @site:global_ctor */
    }
    ~Global()
    {
        delete[] p;
    }
    int *p;
};

static Global global;
static void *keep[256];
static std::vector<int> *leaked_vec;

static int use_string(int n)
{
    std::string s(static_cast<size_t>(n), 'x'); /* @site:string */
    return static_cast<int>(s.size());
}

int main()
{
    int k = 0;
    for (int i = 0; i < 100; i++)
        keep[k++] = new Node{i, nullptr}; /* @site:new_node */
    for (int i = 0; i < 50; i++) {
        Node *n = new Node{i, nullptr}; /* @site:new_deleted */
        delete n;
    }
    for (int i = 0; i < 2; i++)
        keep[k++] = new int[250]; /* @site:new_array */
    int *tmp = new int[10];       /* @site:new_array_deleted */
    delete[] tmp;
    keep[k++] = new WithDtor[10]; /* @site:new_array_cookie */
    keep[k++] = new Aligned;      /* @site:new_aligned */
    Aligned *a = new Aligned;     /* @site:new_aligned_deleted */
    delete a;
    keep[k++] = new (std::nothrow) Node{1, nullptr}; /* @site:new_nothrow */

    leaked_vec = new std::vector<int>; /* @site:vec_obj */
    for (int i = 0; i < 1000; i++)
        leaked_vec->push_back(i); /* @site:vec_push */
    {
        std::vector<double> scratch;
        scratch.reserve(100); /* @site:vec_reserve_freed */
    }

    int len = use_string(100);
    int caught = 0;
    try {
        throw std::runtime_error("e2e exception"); /* @site:throw */
    } catch (const std::exception &) {
        caught = 1;
    }
    e2e_say(1, "cxx: done %d %d %zu\n", len, caught, leaked_vec->size());
    return 0;
}
