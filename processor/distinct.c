#include "distinct.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "kn_alloc.h"

/* 0 marks an empty slot, so the fingerprint 0 is stored as 1: a collision
 * of probability 2^-64, the same as any other pair of fingerprints. */
static uint64_t nz(uint64_t fp)
{
	return fp ? fp : 1;
}

static int set_insert(uint64_t *set, uint32_t cap, uint64_t fp)
{
	uint32_t i = (uint32_t)(fp ^ (fp >> 32)) & (cap - 1);

	while (set[i]) {
		if (set[i] == fp)
			return 0;
		i = (i + 1) & (cap - 1);
	}
	set[i] = fp;
	return 1;
}

static int grow(struct kn_distinct *d)
{
	uint32_t ncap = d->cap ? d->cap * 2 : 16;
	uint64_t *ns = kn_calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (uint32_t i = 0; i < d->cap; i++)
		if (d->set[i])
			set_insert(ns, ncap, d->set[i]);
	kn_free(d->set);
	d->set = ns;
	d->cap = ncap;
	return 0;
}

static void hll_add(uint8_t *hll, uint64_t fp)
{
	uint32_t idx = (uint32_t)(fp >> (64 - KN_HLL_P));
	uint64_t rest = fp << KN_HLL_P | (1ULL << (KN_HLL_P - 1)); /* sentinel bounds rho */
	uint8_t rho = (uint8_t)(__builtin_clzll(rest) + 1);

	if (rho > hll[idx])
		hll[idx] = rho;
}

static int to_hll(struct kn_distinct *d)
{
	d->hll = kn_calloc(KN_HLL_M, 1);
	if (!d->hll)
		return -ENOMEM;
	for (uint32_t i = 0; i < d->cap; i++)
		if (d->set[i])
			hll_add(d->hll, d->set[i]);
	kn_free(d->set);
	d->set = NULL;
	d->cap = 0;
	return 0;
}

int kn_distinct_add(struct kn_distinct *d, uint64_t fp, uint32_t exact_limit)
{
	fp = nz(fp);
	if (d->hll) {
		hll_add(d->hll, fp);
		return 1;
	}
	if ((d->n + 1) * 2 > d->cap && grow(d))
		return -ENOMEM;
	if (!set_insert(d->set, d->cap, fp))
		return 0;
	if (++d->n > exact_limit && to_hll(d))
		return -ENOMEM;
	return 1;
}

uint64_t kn_distinct_count(const struct kn_distinct *d, bool *exact)
{
	double sum = 0, m = KN_HLL_M, est;
	uint32_t zeros = 0;

	*exact = !d->hll;
	if (!d->hll)
		return d->n;
	for (uint32_t i = 0; i < KN_HLL_M; i++) {
		sum += ldexp(1.0, -d->hll[i]);
		zeros += !d->hll[i];
	}
	est = (0.7213 / (1 + 1.079 / m)) * m * m / sum;
	if (est <= 2.5 * m && zeros) /* small range: linear counting is better */
		est = m * log(m / zeros);
	return (uint64_t)llround(est);
}

size_t kn_distinct_bytes(const struct kn_distinct *d)
{
	return d->hll ? KN_HLL_M : (size_t)d->cap * sizeof(uint64_t);
}

void kn_distinct_free(struct kn_distinct *d)
{
	kn_free(d->set);
	kn_free(d->hll);
	memset(d, 0, sizeof(*d));
}
