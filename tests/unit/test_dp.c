/* The exact discrete Laplace sampler against its pmf, and the release
 * parameters against a brute-force summation of the same pmf. (OpenDP
 * checks the parameters independently: tests/integration/test_dp.py.) */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "kt.h"

#define DRAWS 1000000

static void seeded(struct kn_dp_rng *r, uint8_t tag)
{
	uint8_t seed[32] = {tag, 1, 2, 3};

	kn_dp_rng_init(r, seed);
}

/* Chi-square critical value for df degrees of freedom at p = 1e-4
 * (Wilson-Hilferty). A correct sampler fails one run in 10^4 seeds; the
 * seeds are fixed, so the outcome is the same every time. */
static double chi2_crit(int df)
{
	double z = 3.719, a = 2.0 / (9.0 * df);

	return df * pow(1 - a + z * sqrt(a), 3);
}

static void test_uniform_unbiased(void)
{
	struct kn_dp_rng r;
	uint64_t n[3] = {0};
	double chi = 0;

	seeded(&r, 1);
	for (int i = 0; i < 300000; i++)
		n[kn_dp_uniform(&r, 3)]++;
	for (int i = 0; i < 3; i++)
		chi += pow((double)n[i] - 100000, 2) / 100000;
	KT_CHECK(chi < chi2_crit(2));
	KT_CHECK(kn_dp_uniform(&r, 1) == 0);
}

static void test_bernoulli_exp(void)
{
	static const uint64_t g[][2] = {{0, 1}, {1, 3}, {1, 1}, {5, 2}, {7, 7}};
	struct kn_dp_rng r;

	seeded(&r, 2);
	for (size_t k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
		const int n = 200000;
		double p = exp(-(double)g[k][0] / (double)g[k][1]), hits = 0;
		for (int i = 0; i < n; i++)
			hits += kn_dp_bernoulli_exp(&r, g[k][0], g[k][1]);
		double sd = sqrt(n * p * (1 - p)) + 1e-9;
		KT_CHECK(fabs(hits - n * p) <= 5 * sd);
	}
}

/* pmf of DLap(b) at x. */
static long double pmf(long double b, int64_t x)
{
	long double q = expl(-1 / b);

	return (1 - q) / (1 + q) * powl(q, (long double)llabs(x));
}

/* 10^6 draws of DLap(t/s) binned over the integers where the expectation is
 * at least 5, the two tails pooled into one bin each. */
static void chi_square(uint64_t t, uint64_t s, uint8_t tag)
{
	long double b = (long double)t / (long double)s, q = expl(-1 / b);
	int64_t m = 0;
	static uint64_t cnt[4003];
	struct kn_dp_rng r;
	double sum = 0, sq = 0;

	while (m < 2000 && DRAWS * pmf(b, m + 1) >= 5)
		m++;
	memset(cnt, 0, sizeof(cnt));
	seeded(&r, tag);
	for (int i = 0; i < DRAWS; i++) {
		int64_t x = kn_dp_discrete_laplace(&r, t, s);
		sum += (double)x;
		sq += (double)x * (double)x;
		cnt[x < -m ? 0 : x > m ? 2 * m + 2 : x + m + 1]++;
	}
	/* P(X > m) = q^(m+1) / (1 + q). */
	long double tail = powl(q, (long double)(m + 1)) / (1 + q), chi = 0;
	for (int64_t i = 0; i <= 2 * m + 2; i++) {
		long double p = i == 0 || i == 2 * m + 2 ? tail : pmf(b, i - m - 1);
		long double e = DRAWS * p;
		chi += (cnt[i] - e) * (cnt[i] - e) / e;
	}
	double var = (double)(2 * q / ((1 - q) * (1 - q)));
	KT_CHECK((double)chi < chi2_crit((int)(2 * m + 2)));
	KT_CHECK(fabs(sum / DRAWS) < 5 * sqrt(var / DRAWS));
	KT_CHECK(fabs(sq / DRAWS / var - 1) < 0.02);
	KT_CHECK(cnt[0] > 0 || tail * DRAWS < 1); /* the tails are reached */
}

static void test_discrete_laplace_matches_pmf(void)
{
	chi_square(1, 1, 3);	/* scale 1 */
	chi_square(7, 2, 4);	/* 3.5: a fraction */
	chi_square(1, 3, 5);	/* 1/3: mostly zeros */
	chi_square(40, 1, 6);	/* 40: wide */
	chi_square(2000, 3, 7); /* 666.7 */
}

static void test_stream_is_deterministic(void)
{
	struct kn_dp_rng a, b, c;
	int same = 0;

	seeded(&a, 9);
	seeded(&b, 9);
	seeded(&c, 10);
	for (int i = 0; i < 1000; i++) {
		int64_t x = kn_dp_discrete_laplace(&a, 10, 1);
		KT_CHECK(x == kn_dp_discrete_laplace(&b, 10, 1));
		same += x == kn_dp_discrete_laplace(&c, 10, 1);
	}
	KT_CHECK(same < 100); /* P(equal) ~ 0.05 per draw for scale 10 */
	kn_dp_rng_wipe(&a);
	KT_CHECK(a.block == 0 && a.key[0] == 0);
}

static void test_parse_epsilon(void)
{
	uint64_t n, d;

	KT_CHECK(!kn_dp_parse_epsilon("1", &n, &d) && n == 1 && d == 1);
	KT_CHECK(!kn_dp_parse_epsilon("0.5", &n, &d) && n == 1 && d == 2);
	KT_CHECK(!kn_dp_parse_epsilon("1.25", &n, &d) && n == 5 && d == 4);
	KT_CHECK(!kn_dp_parse_epsilon("0.000001", &n, &d) && n == 1 && d == 1000000);
	KT_CHECK(!kn_dp_parse_epsilon("20", &n, &d) && n == 20 && d == 1);
	static const char *bad[] = {"0",    "0.0", "-1", "abc",	  "1.",	       ".5", "1e-3",
				    "20.5", "21",  "",	 "1.2.3", "0.0000001", " 1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		KT_CHECK(kn_dp_parse_epsilon(bad[i], &n, &d) == -EINVAL);
}

/* P(DLap(b) >= m) by summing the pmf (independent of kn_dp_tail's closed
 * form). */
static long double tail_sum(long double b, int64_t m)
{
	long double s = 0;

	for (int64_t x = m; x < m + 200 * (int64_t)ceill(b) + 2000; x++)
		s += pmf(b, x);
	return s;
}

static void test_params_grid(void)
{
	static const char *eps[] = {"0.1", "0.5", "1", "2", "4"};
	static const double delta[] = {1e-3, 1e-6, 1e-9};
	static const int64_t l0[] = {1, 2, 4, 10};
	struct kn_dp_params p;

	for (size_t e = 0; e < 5; e++)
		for (size_t di = 0; di < 3; di++)
			for (size_t li = 0; li < 4; li++) {
				struct kn_dp_budget bu = {
					.delta = delta[di], .l0 = l0[li], .linf = 5};
				KT_CHECK(!kn_dp_parse_epsilon(eps[e], &bu.eps_num, &bu.eps_den));
				KT_CHECK(!kn_dp_params(&bu, &p));
				long double b = (long double)p.people_t / p.people_s;
				double ev = (double)bu.eps_num / (double)bu.eps_den;
				KT_CHECK(fabsl(b - 2.0L * l0[li] / ev) < 1e-9L * b);
				KT_CHECK(fabs(p.events_scale - 2.0 * l0[li] * 5 / ev) <
					 1e-9 * p.events_scale);
				/* T is the smallest threshold that keeps the window's
				 * delta within the budget. */
				long double dg = -expm1l(log1pl(-delta[di]) / l0[li]);
				KT_CHECK(tail_sum(b, p.threshold - 1) <= dg * (1 + 1e-9L));
				KT_CHECK(p.threshold == 2 ||
					 tail_sum(b, p.threshold - 2) > dg * (1 - 1e-9L));
				KT_CHECK(p.delta <= delta[di] * (1 + 1e-9));
			}
}

static void test_params_refused(void)
{
	struct kn_dp_params p;
	struct kn_dp_budget ok = {1, 1, 1e-6, 4, 10}, b;

	KT_CHECK(!kn_dp_params(&ok, &p));
	b = ok, b.delta = 0;
	KT_CHECK(kn_dp_params(&b, &p) == -EINVAL);
	b = ok, b.delta = 1;
	KT_CHECK(kn_dp_params(&b, &p) == -EINVAL);
	b = ok, b.delta = NAN;
	KT_CHECK(kn_dp_params(&b, &p) == -EINVAL);
	b = ok, b.l0 = 0;
	KT_CHECK(kn_dp_params(&b, &p) == -EINVAL);
	b = ok, b.linf = 0;
	KT_CHECK(kn_dp_params(&b, &p) == -EINVAL);
	b = ok, b.eps_num = 21;
	KT_CHECK(kn_dp_params(&b, &p) == -EINVAL);
}

int main(void)
{
	KT_RUN(test_uniform_unbiased);
	KT_RUN(test_bernoulli_exp);
	KT_RUN(test_discrete_laplace_matches_pmf);
	KT_RUN(test_stream_is_deterministic);
	KT_RUN(test_parse_epsilon);
	KT_RUN(test_params_grid);
	KT_RUN(test_params_refused);
	return kt_done();
}
