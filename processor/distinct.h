/* distinct: how many different people, exactly while it matters.
 *
 * A counter holds an exact set of 64-bit person fingerprints until it has
 * more than exact_limit members, then converts to a HyperLogLog sketch of
 * precision KN_HLL_P (2^14 one-byte registers, 16 KiB) seeded with every
 * member of the set. Exact limit >= 4k is enforced by the config, so the
 * release decision "users >= k" is always taken in the exact regime: a group
 * that switched to HLL has more than exact_limit >= k true members.
 *
 * HLL error: standard error 1.04 / sqrt(2^14) = 0.81 %; the estimator uses
 * linear counting while it is the better one (small ranges), so right after
 * the switch (~4096 of 16384 registers set) the error is well under 1 %.
 * Fingerprints must be well mixed (kanon uses XXH64 of the pseudonym). */
#ifndef KN_DISTINCT_H
#define KN_DISTINCT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KN_HLL_P 14
#define KN_HLL_M (1u << KN_HLL_P)

struct kn_distinct {
	uint32_t n;    /* members of the exact set */
	uint32_t cap;  /* slots of set (power of two), 0 before first add */
	uint64_t *set; /* open addressing; 0 marks an empty slot */
	uint8_t *hll;  /* non-NULL once converted */
};

/* Adds fp. Returns 1 if the count may have changed (new member, or any HLL
 * add), 0 for a known member, -ENOMEM. A zero-initialized struct is valid. */
int kn_distinct_add(struct kn_distinct *d, uint64_t fp, uint32_t exact_limit);
/* Exact member count, or the HLL estimate (*exact = false). */
uint64_t kn_distinct_count(const struct kn_distinct *d, bool *exact);
size_t kn_distinct_bytes(const struct kn_distinct *d);
void kn_distinct_free(struct kn_distinct *d);

#endif
