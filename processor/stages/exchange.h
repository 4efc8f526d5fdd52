/* exchange: the records of kanon's internal topics, between the stages of
 * the aggregation topology (engine/stage.h).
 *
 *   contribution  deid -> bound, keyed by the person: eligible events as
 *                 their window, the input partition they came from, the
 *                 person's fingerprint (64 bits of a hash of the pseudonym:
 *                 enough to tell the people of one window apart, and less
 *                 than the pseudonym), the dimension values the definitions
 *                 use, and how many events had exactly these (the deid stage
 *                 coalesces a transaction's identical ones, kn_xch_coalesce);
 *   partial       bound -> release, keyed by the group: one bound
 *                 partition's exact bounded tally of a group in a window;
 *   mark          both ways, to every partition: "upstream partition `from`
 *                 (of `n_from`) has reached stream time `value`" and whether
 *                 it is active, idle or ended. Every record of that upstream
 *                 partition before the mark (in each downstream partition)
 *                 is accounted for by it.
 *
 * Layout: 'K', version 1, a type byte, then fixed-size big-endian integers
 * and strings with a one-byte length (255: null). Every value is checked on
 * decoding against the bounds of what kanon emits (the closed vocabularies
 * and generalizations of event.h), so a record no kanon wrote is refused
 * with a reason, never half-read. Pure functions: no I/O, no allocation. */
#ifndef KN_EXCHANGE_H
#define KN_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"

enum kn_xch_type {
	KN_XCH_CONTRIB = 'C',
	KN_XCH_PARTIAL = 'P',
	KN_XCH_MARK = 'M',
};

#define KN_XCH_MAX_BYTES  2048	  /* any encoded record fits */
#define KN_XCH_DIM_MAX	  253	  /* longest dimension value (a host name) */
#define KN_XCH_MAX_EVENTS 1000000 /* events in one contribution (>= any Linf) */

struct kn_xch_mark {
	uint32_t from, n_from;
	int64_t value;
	enum kn_part_state state;
};

/* A decoded record: strings point into the record's bytes (not
 * NUL-terminated there: copied into buf). */
struct kn_xch {
	enum kn_xch_type type;
	struct kn_xch_mark mark;
	/* contribution */
	struct kn_agg_point point;
	uint32_t part;
	uint32_t n_events; /* >= 1 */
	/* partial */
	const char *def;
	int64_t window_start;
	const char *dim[KN_DIMS]; /* NULL: null */
	uint64_t events, users;
	bool early;
	char buf[KN_DIMS * (KN_XCH_DIM_MAX + 1) + 256];
};

/* Encoders return the length written to out (KN_XCH_MAX_BYTES), or 0 when
 * a value is out of bounds (a dimension longer than KN_XCH_DIM_MAX). Only
 * the dimensions in dims (bit per enum kn_dim) are written. */
size_t kn_xch_contrib(uint8_t *out, const struct kn_agg_point *pt, uint32_t part, uint32_t dims,
		      uint32_t n_events);
size_t kn_xch_partial(uint8_t *out, const struct kn_agg_row *row);
size_t kn_xch_mark(uint8_t *out, const struct kn_xch_mark *m);

/* Decodes; returns 0, or -EINVAL with why set (a short static reason). */
int kn_xch_decode(const uint8_t *in, size_t len, struct kn_xch *x, const char **why);

/* Restart state of a stage's partition in offset-commit metadata: the end
 * of the last window released there, and every upstream partition's stream
 * time and state. Returns the length written (< size), or 0 when it does not
 * fit (then only emitted_until is kept: "<tag> e=<n>"). */
size_t kn_xch_state_fmt(char *out, size_t size, char tag, int64_t emitted_until, int n,
			const int64_t *max_ts, const enum kn_part_state *state);
/* Parses what kn_xch_state_fmt wrote for tag; *n_got is the number of
 * partitions restored into max_ts/state (0: not kept), at most n.
 * Returns 0, or -EINVAL (not ours: start afresh). */
int kn_xch_state_parse(const char *in, size_t len, char tag, int64_t *emitted_until, int n,
		       int64_t *max_ts, enum kn_part_state *state, int *n_got);

/* Coalescing contributions: identical records (all but their event count)
 * become one with the sum. Insertion order is kept, so what is written does
 * not depend on hashing. */
struct kn_xch_coalesce;

typedef int(kn_xch_send_fn)(void *opaque, int32_t partition, const uint8_t *rec, size_t len);

/* max_records: distinct records held before kn_xch_coalesce_add says full. */
struct kn_xch_coalesce *kn_xch_coalesce_new(size_t max_records);
void kn_xch_coalesce_destroy(struct kn_xch_coalesce *c);
/* Adds a contribution of one event (from kn_xch_contrib), bound for
 * partition. Returns 0, 1 when it is full (flush, then add again) or
 * -ENOMEM. */
int kn_xch_coalesce_add(struct kn_xch_coalesce *c, const uint8_t *rec, size_t len,
			int32_t partition);
/* Sends every record with its event count, in first-seen order, then
 * empties. Stops at the first error send returns (and returns it); what was
 * not sent is dropped with the rest (the transaction fails anyway). */
int kn_xch_coalesce_flush(struct kn_xch_coalesce *c, kn_xch_send_fn *send, void *opaque);
/* Forgets everything held (the transaction it was for was aborted). */
void kn_xch_coalesce_clear(struct kn_xch_coalesce *c);
size_t kn_xch_coalesce_count(const struct kn_xch_coalesce *c);

#endif
