/* kn_alloc: the one allocator every kanon module goes through.
 *
 * Like SQLite's pluggable allocator, it exists so tests can make the Nth
 * allocation fail (kn_alloc_fail_after) and prove every cleanup path.
 * All functions return NULL on failure and never abort. */
#ifndef KN_ALLOC_H
#define KN_ALLOC_H

#include <stddef.h>

void *kn_malloc(size_t n);
void *kn_calloc(size_t nmemb, size_t size);
void *kn_realloc(void *p, size_t n);
char *kn_strdup(const char *s);
char *kn_strndup(const char *s, size_t n);
void kn_free(void *p);

/* Test hook: allocation number n (1-based, counted from this call) and all
 * after it fail. n = 0 disables injection. */
void kn_alloc_fail_after(unsigned long n);
/* Allocations made since process start (for "no allocation on the hot path" tests). */
unsigned long kn_alloc_count(void);

#endif
