#include <math.h>
#include <xxhash.h>

#include "distinct.h"
#include "kt.h"

static uint64_t fp(uint64_t i)
{
	return XXH64(&i, sizeof(i), 12345);
}

static void test_exact_regime(void)
{
	struct kn_distinct d = {0};
	bool exact;

	for (int rep = 0; rep < 3; rep++) /* duplicates never count twice */
		for (uint64_t i = 0; i < 4096; i++)
			kn_distinct_add(&d, fp(i), 4096);
	KT_CHECK(kn_distinct_count(&d, &exact) == 4096 && exact);
	KT_CHECK(kn_distinct_add(&d, 0, 8192) == 1); /* fingerprint 0 is a member too */
	KT_CHECK(kn_distinct_add(&d, 0, 8192) == 0);
	KT_CHECK(kn_distinct_count(&d, &exact) == 4097 && exact);
	kn_distinct_free(&d);
}

static void test_switch_and_error(void)
{
	/* Across sizes from just past the switch to 2M, the estimate stays within
	 * 3 standard errors (3 x 0.81 %). */
	const uint64_t sizes[] = {4097, 5000, 20000, 100000, 2000000};

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct kn_distinct d = {0};
		bool exact;
		for (uint64_t i = 0; i < sizes[s]; i++)
			kn_distinct_add(&d, fp(i + 1000000 * s), 4096);
		uint64_t est = kn_distinct_count(&d, &exact);
		double err = fabs((double)est - (double)sizes[s]) / (double)sizes[s];
		KT_CHECK(!exact);
		KT_CHECK(err < 3 * 1.04 / 128);
		printf("  %8llu true, %8llu estimated, error %.3f %%\n",
		       (unsigned long long)sizes[s], (unsigned long long)est, 100 * err);
		KT_CHECK(kn_distinct_bytes(&d) == KN_HLL_M);
		kn_distinct_free(&d);
	}
}

static void test_switch_point(void)
{
	struct kn_distinct d = {0};
	bool exact;

	for (uint64_t i = 0; i < 100; i++)
		kn_distinct_add(&d, fp(i), 100);
	KT_CHECK(kn_distinct_count(&d, &exact) == 100 && exact);
	kn_distinct_add(&d, fp(100), 100);
	KT_CHECK(!exact || kn_distinct_count(&d, &exact) != 0);
	kn_distinct_count(&d, &exact);
	KT_CHECK(!exact); /* limit + 1 members: converted */
	kn_distinct_free(&d);
}

int main(void)
{
	KT_RUN(test_exact_regime);
	KT_RUN(test_switch_and_error);
	KT_RUN(test_switch_point);
	return kt_done();
}
