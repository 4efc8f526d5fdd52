/* dp: the differentially private release of the advertiser aggregates.
 *
 * Mechanism (per definition, window and group, after contribution bounding
 * in aggregate.c: a person counts in at most L0 groups over ALL definitions
 * of a window, and adds at most Linf events to each):
 *   people' = people + DLap(b_p),  b_p = L0 / eps_p
 *   events' = events + DLap(b_e),  b_e = L0 * Linf / eps_e
 *   released iff people' >= max(T, k)
 * with eps_p = eps_e = eps / 2. Adding or removing one person changes the
 * people counts by at most L0 in L1 norm and the event counts by at most
 * L0 * Linf, so the counts are (eps, 0)-DP (Laplace mechanism, sequential
 * composition); a group that only this person populates is released with
 * probability P(1 + DLap(b_p) >= T) for each of at most L0 such groups, which
 * T bounds by delta (private partition selection, as in Google's
 * differential-privacy library and Desfontaines et al. 2022). Whole release
 * of one window: (eps, delta)-DP per person. The threshold is the smallest
 * integer T with 1 - (1 - P(DLap(b_p) >= T - 1))^L0 <= delta.
 *
 * DLap(b) is the discrete Laplace distribution, P(x) proportional to
 * exp(-|x| / b) on the integers, sampled exactly with integer arithmetic
 * only (Canonne, Kamath, Steinke 2020, algorithms 1 and 2): no floating
 * point touches a sample, so the attack on floating-point Laplace (Mironov
 * 2012) does not apply. Scales are rationals t/s; epsilon is read as an exact
 * decimal (at most 6 fractional digits).
 *
 * Randomness comes from kn_dp_rng, a ChaCha20 keystream under a 32-byte seed
 * (the caller derives it from a secret key and the group's identity, so a
 * replay draws the same noise). */
#ifndef KN_DP_H
#define KN_DP_H

#include <stdbool.h>
#include <stdint.h>

#define KN_DP_MAX_EPSILON 20
#define KN_DP_EPS_DEN_MAX 1000000

struct kn_dp_rng {
	uint8_t key[32];
	uint64_t block;
	uint8_t buf[64];
	unsigned pos;
};

void kn_dp_rng_init(struct kn_dp_rng *r, const uint8_t seed[32]);
void kn_dp_rng_wipe(struct kn_dp_rng *r);
/* Uniform on [0, n), n > 0, by rejection (no modulo bias). */
uint64_t kn_dp_uniform(struct kn_dp_rng *r, uint64_t n);
/* true with probability exp(-num / den), exactly; den > 0. */
bool kn_dp_bernoulli_exp(struct kn_dp_rng *r, uint64_t num, uint64_t den);
/* One draw of DLap(t / s); t, s in [1, 2^52]. */
int64_t kn_dp_discrete_laplace(struct kn_dp_rng *r, uint64_t t, uint64_t s);

/* Parses a positive decimal ("1", "0.5", "1.25") into eps_num / eps_den,
 * reduced. -EINVAL for anything else, more than 6 fractional digits, or a
 * value outside (0, KN_DP_MAX_EPSILON]. */
int kn_dp_parse_epsilon(const char *s, uint64_t *num, uint64_t *den);

struct kn_dp_budget {
	uint64_t eps_num, eps_den; /* epsilon per person per window */
	double delta;		   /* per person per window, in (0, 1) */
	int64_t l0;		   /* groups per person per window, all definitions */
	int64_t linf;		   /* events per person per group */
};

struct kn_dp_params {
	uint64_t people_t, people_s; /* people noise scale b_p = t / s */
	uint64_t events_t, events_s; /* event noise scale b_e = t / s */
	int64_t threshold;	     /* T: release iff people' >= max(T, k) */
	double people_scale, events_scale, epsilon;
	double delta_group; /* P(a one-person group is released) */
	double delta;	    /* the whole window's delta: <= budget delta */
};

/* Noise scales and threshold for a budget. -EINVAL if the budget is
 * invalid (epsilon or delta out of range, bounds < 1) or its scales would
 * not fit the exact sampler. */
int kn_dp_params(const struct kn_dp_budget *b, struct kn_dp_params *p);

/* P(DLap(b) >= m), m >= 1. */
double kn_dp_tail(double b, int64_t m);

#endif
