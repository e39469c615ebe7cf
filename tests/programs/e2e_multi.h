/* e2e_multi.h - the functions e2e_multi_lib.c gives e2e_multi_main.c. */
#ifndef E2E_MULTI_H
#define E2E_MULTI_H

/* Returns a leaked vector of n leaked 20-byte blocks. */
void **lib_make_strings(int n);
/* Returns a leaked zeroed table of n 8-byte entries. */
void *lib_make_table(int n);
/* Allocates and frees n blocks. */
void lib_churn(int n);

#endif
