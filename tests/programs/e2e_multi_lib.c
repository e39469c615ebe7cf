/* e2e_multi_lib.c - the second source file of e2e_multi: allocation sites
 * reached from several call lines of e2e_multi_main.c. */
#include <stdlib.h>

#include "e2e_multi.h"

void **lib_make_strings(int n)
{
    void **v = malloc((size_t)n * sizeof *v); /* @site:lib_vec */
    for (int i = 0; i < n; i++)
        v[i] = malloc(20); /* @site:lib_strings */
    return v;
}

void *lib_make_table(int n)
{
    return calloc((size_t)n, 8); /* @site:lib_table */
}

void lib_churn(int n)
{
    for (int i = 0; i < n; i++)
        free(malloc(100 + (size_t)i)); /* @site:lib_churn */
}
