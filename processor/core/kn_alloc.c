#include "kn_alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Atomic: the run loop's workers may allocate at once (not per record). */
static atomic_ulong alloc_count;
static atomic_ulong fail_at; /* 0: never fail */

static int should_fail(void)
{
	unsigned long n = atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed) + 1;
	unsigned long at = atomic_load_explicit(&fail_at, memory_order_relaxed);

	return at && n >= at;
}

void kn_alloc_fail_after(unsigned long n)
{
	fail_at = n ? alloc_count + n : 0;
}

unsigned long kn_alloc_count(void)
{
	return alloc_count;
}

void *kn_malloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *kn_calloc(size_t nmemb, size_t size)
{
	return should_fail() ? NULL : calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *kn_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *kn_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = kn_malloc(len + 1);

	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *kn_strdup(const char *s)
{
	return kn_strndup(s, strlen(s));
}

void kn_free(void *p)
{
	free(p);
}
