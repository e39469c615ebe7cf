// hook_cxx.cpp - every operator new/delete variant called once, in pairs,
// then a throwing new whose bad_alloc must not leave the hook's guard set.
#include <cstdint>
#include <cstdio>
#include <new>

#include "hook_common.h"

static void *p[16];

struct Obj {
    char bytes[4001];
};

int main()
{
    hook_mark(HOOK_MARK_BEGIN);
    const std::align_val_t al{64};
    p[1] = ::operator new(5001);
    ::operator delete(p[1]);
    p[2] = ::operator new[](5002);
    ::operator delete[](p[2]);
    p[3] = ::operator new(5003);
    ::operator delete(p[3], 5003);
    p[4] = ::operator new[](5004);
    ::operator delete[](p[4], 5004);
    p[5] = ::operator new(5005, std::nothrow);
    ::operator delete(p[5], std::nothrow);
    p[6] = ::operator new[](5006, std::nothrow);
    ::operator delete[](p[6], std::nothrow);
    p[7] = ::operator new(5007, al);
    ::operator delete(p[7], al);
    p[8] = ::operator new[](5008, al);
    ::operator delete[](p[8], al);
    p[9] = ::operator new(5009, al);
    ::operator delete(p[9], 5009, al);
    p[10] = ::operator new[](5010, al);
    ::operator delete[](p[10], 5010, al);
    p[11] = ::operator new(5011, al, std::nothrow);
    ::operator delete(p[11], al, std::nothrow);
    p[12] = ::operator new[](5012, al, std::nothrow);
    ::operator delete[](p[12], al, std::nothrow);

    int caught = 0;
    try {
        volatile std::size_t huge = SIZE_MAX / 4;
        char *c = new char[huge];
        c[0] = 1;
    } catch (const std::bad_alloc &) {
        caught = 1;
    }
    Obj *o = new Obj; // recorded: the guard was cleared by the unwinding
    delete o;
    hook_mark(HOOK_MARK_END);
    std::printf("caught=%d\n", caught);
    for (int i = 1; i <= 12; i++)
        std::printf("p%d=%p\n", i, p[i]);
    return 0;
}
