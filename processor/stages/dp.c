#include "dp.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#define MAX_SCALE_PART (1ULL << 52)

void kn_dp_rng_init(struct kn_dp_rng *r, const uint8_t seed[32])
{
	memcpy(r->key, seed, sizeof(r->key));
	r->block = 0;
	r->pos = sizeof(r->buf);
}

void kn_dp_rng_wipe(struct kn_dp_rng *r)
{
	sodium_memzero(r, sizeof(*r));
}

static uint64_t next64(struct kn_dp_rng *r)
{
	static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
	uint64_t v;

	if (r->pos + 8 > sizeof(r->buf)) {
		/* Keystream block r->block: ChaCha20 of zeros at that counter. */
		memset(r->buf, 0, sizeof(r->buf));
		crypto_stream_chacha20_xor_ic(r->buf, r->buf, sizeof(r->buf), nonce, r->block++,
					      r->key);
		r->pos = 0;
	}
	memcpy(&v, r->buf + r->pos, 8);
	r->pos += 8;
	return v;
}

uint64_t kn_dp_uniform(struct kn_dp_rng *r, uint64_t n)
{
	/* Accept only below the largest multiple of n: every residue equally
	 * likely. */
	uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;

	do
		x = next64(r);
	while (x >= lim);
	return x % n;
}

/* true with probability num / den, num <= den. */
static bool bernoulli(struct kn_dp_rng *r, uint64_t num, uint64_t den)
{
	return kn_dp_uniform(r, den) < num;
}

/* CKS20 algorithm 1 for gamma = num / den in [0, 1]: the number K of
 * successive successes of Bernoulli(gamma / k), k = 1, 2, ... is odd with
 * probability exp(-gamma). */
static bool bexp_small(struct kn_dp_rng *r, uint64_t num, uint64_t den)
{
	uint64_t k = 1;

	for (;;) {
		/* den * k cannot overflow in practice (P(K > 2^11) < 1 / 2^11!);
		 * stopping there biases nothing measurable. */
		if (k > UINT64_MAX / den || !bernoulli(r, num, den * k))
			break;
		k++;
	}
	return k & 1;
}

bool kn_dp_bernoulli_exp(struct kn_dp_rng *r, uint64_t num, uint64_t den)
{
	/* exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma))). */
	for (uint64_t i = num / den; i > 0; i--)
		if (!bexp_small(r, 1, 1))
			return false;
	return bexp_small(r, num % den, den);
}

int64_t kn_dp_discrete_laplace(struct kn_dp_rng *r, uint64_t t, uint64_t s)
{
	/* CKS20 algorithm 2: X = U + t V with U uniform on [0, t) accepted with
	 * probability exp(-U / t) and V geometric (success exp(-1)) is
	 * geometric with ratio exp(-1 / t); floor(X / s) is geometric with ratio
	 * exp(-s / t), and a random sign (the double zero rejected) makes it
	 * DLap(t / s). */
	for (;;) {
		uint64_t u = kn_dp_uniform(r, t), v = 0;
		if (!kn_dp_bernoulli_exp(r, u, t))
			continue;
		while (kn_dp_bernoulli_exp(r, 1, 1))
			v++;
		uint64_t y = (u + t * v) / s; /* t < 2^52, v < 2^11 in practice */
		bool neg = bernoulli(r, 1, 2);
		if (neg && y == 0)
			continue;
		return neg ? -(int64_t)y : (int64_t)y;
	}
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

int kn_dp_parse_epsilon(const char *s, uint64_t *num, uint64_t *den)
{
	uint64_t n = 0, d = 1;
	int frac = -1;

	if (!*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p == '.' && frac < 0 && p != s && p[1]) {
			frac = 0;
			continue;
		}
		if (*p < '0' || *p > '9' || n > (uint64_t)KN_DP_MAX_EPSILON * KN_DP_EPS_DEN_MAX)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
		if (frac >= 0 && ++frac > 6)
			return -EINVAL;
		if (frac > 0)
			d *= 10;
	}
	if (!n || n > (uint64_t)KN_DP_MAX_EPSILON * d)
		return -EINVAL;
	uint64_t g = gcd(n, d);
	*num = n / g;
	*den = d / g;
	return 0;
}

double kn_dp_tail(double b, int64_t m)
{
	/* P(X >= m) = sum_{x >= m} c e^{-x/b}, c = (1 - e^{-1/b}) / (1 + e^{-1/b}),
	 * = e^{-m/b} / (1 + e^{-1/b}). */
	return exp(-(double)m / b) / (1 + exp(-1 / b));
}

/* t / s reduced; -EINVAL if it does not fit the sampler. */
static int scale(uint64_t t, uint64_t s, uint64_t *ot, uint64_t *os)
{
	uint64_t g = gcd(t, s);

	*ot = t / g;
	*os = s / g;
	return *ot > MAX_SCALE_PART || *os > MAX_SCALE_PART ? -EINVAL : 0;
}

int kn_dp_params(const struct kn_dp_budget *b, struct kn_dp_params *p)
{
	memset(p, 0, sizeof(*p));
	if (!b->eps_num || !b->eps_den || b->eps_num > (uint64_t)KN_DP_MAX_EPSILON * b->eps_den ||
	    b->eps_den > KN_DP_EPS_DEN_MAX || !(b->delta > 0 && b->delta < 1) || b->l0 < 1 ||
	    b->l0 > 1000000 || b->linf < 1 || b->linf > 1000000)
		return -EINVAL;
	/* Half of epsilon each: b = L0 / (eps / 2) = 2 L0 den / num. */
	uint64_t l0 = (uint64_t)b->l0, linf = (uint64_t)b->linf;
	if (scale(2 * l0 * b->eps_den, b->eps_num, &p->people_t, &p->people_s) ||
	    scale(2 * l0 * linf * b->eps_den, b->eps_num, &p->events_t, &p->events_s))
		return -EINVAL;
	p->people_scale = (double)p->people_t / (double)p->people_s;
	p->events_scale = (double)p->events_t / (double)p->events_s;
	p->epsilon = (double)b->eps_num / (double)b->eps_den;

	/* Per group: delta_g with 1 - (1 - delta_g)^L0 = delta. */
	double dg = -expm1(log1p(-b->delta) / (double)b->l0);
	double bp = p->people_scale;
	int64_t m = (int64_t)ceil(-bp * log(dg * (1 + exp(-1 / bp))));
	if (m < 1)
		m = 1;
	while (m > 1 && kn_dp_tail(bp, m - 1) <= dg)
		m--;
	while (kn_dp_tail(bp, m) > dg)
		m++;
	p->threshold = m + 1; /* 1 + DLap >= T  <=>  DLap >= T - 1 = m */
	p->delta_group = kn_dp_tail(bp, m);
	p->delta = -expm1((double)b->l0 * log1p(-p->delta_group));
	return 0;
}
