/* aggregate: tumbling event-time windows of non-personal group counts,
 * released through a differentially private mechanism (dp.h).
 *
 * Eligibility (kn_agg_eligible) is one rule for every definition: both
 * consents given, not a minor's, not sensitive.
 *
 * State per open window:
 *   - a group dictionary over all definitions: (definition, dimension
 *     values) -> group index;
 *   - a person table: person fingerprint -> the groups, of any definition,
 *     that person counts in, with their (capped) event counts.
 * The person table makes the contribution bounds exact AND independent of
 * arrival order (which matters for exactly-once: a replay after a crash
 * interleaves partitions differently):
 *   - events per person per group are capped at max_events_per_person
 *     (Linf; a saturating counter: min(n, cap) whatever the order);
 *   - groups per person per window, over ALL definitions together, are
 *     capped at max_groups_per_person (L0) by keeping the groups with the
 *     smallest rank XXH3(person, group): the same bottom-L0 set whatever
 *     the order. Evicted contributions count as "bounded" (metrics only).
 * At close, each group's distinct people are the entries naming it (exact)
 * and the release decision is dp.h's (mode KN_AGG_DP), or users >= k on
 * exact counts (KN_AGG_K_ANONYMITY, kept for comparison only: open to
 * differencing). The noise of a group is drawn from a stream seeded by the
 * key file's noise key, a hash of everything that shapes the counts (scope,
 * windows, bounds, mechanism, definitions) and the group's identity, so a
 * replay releases the same values and another configuration other noise.
 * Rows come out sorted by dimension values; under dp a definition's window
 * summary only when it released a group.
 *
 * Time: an event joins window [floor(ts / W) W, + W). Per partition p,
 * max_ts[p] is the largest event time seen among eligible events, each
 * capped at its Kafka record time (a clock set ahead moves nothing past the
 * moment its record was written); an event is late iff its window's end +
 * lateness <= max_ts[p] (out of order inside an open window is on time), or
 * its window was already released. The watermark is min
 * over active partitions of max_ts[p] - lateness; windows ending at or
 * before it close. An accepted event can never belong to a closed window
 * (its own partition's bound forbids it), so the released rows do not
 * depend on how partitions interleave. Partitions idle past a grace period
 * leave the minimum.
 *
 * Exactly-once support: for each partition the aggregator knows the first
 * offset still needed by an open window and max_ts[p] just before it
 * (kn_aggregator_checkpoint); together with emitted_until (every window
 * ending at or before it is already released) that is the whole restart
 * state, small enough for Kafka offset-commit metadata.
 *
 * Stages (kn_agg_opts.stage). The same state serves the three stages of
 * the scaled-out topology (engine/stage.h), so one process and many give
 * the same rows:
 *   - KN_AGG_WHOLE: everything above, in one aggregator;
 *   - KN_AGG_BOUND: takes the contributions of the people of one internal
 *     partition (kn_aggregator_add_point); partition stream times come only
 *     from the upstream marks (kn_aggregator_mark), never from the events;
 *     a closing window gives every group's EXACT bounded tally as a row
 *     (users_exact; early says whether it closed early), no summary;
 *   - KN_AGG_RELEASE: sums such tallies (kn_aggregator_add_partial) from
 *     every bound partition, its "partitions" being those, and releases
 *     them as KN_AGG_WHOLE does once every one of them has passed the
 *     window (marks again, lateness 0). Each person lives in exactly one
 *     bound partition, so the distinct-people tallies add up exactly, and
 *     the noise depends on the group alone. */
#ifndef KN_AGGREGATE_H
#define KN_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp.h"
#include "event.h"

struct kn_keys;

enum kn_dim {
	KN_DIM_EVENT_TYPE,
	KN_DIM_GEO,
	KN_DIM_IP_PREFIX,
	KN_DIM_OS,
	KN_DIM_APP_VERSION,
	KN_DIM_URL_DOMAIN,
	KN_DIM_QUERY_CATEGORY,
	KN_DIMS
};

const char *kn_dim_name(enum kn_dim d);
int kn_dim_by_name(const char *name); /* -1 if unknown */

struct kn_agg_def {
	const char *name;
	uint32_t dims;	   /* bit (1 << enum kn_dim) per dimension */
	int geo_precision; /* for KN_DIM_GEO: cell length, <= the de-identified one */
	int64_t k;
};

enum kn_agg_mode {
	KN_AGG_DP,	    /* differentially private (the default) */
	KN_AGG_K_ANONYMITY, /* exact counts of groups with >= k people */
};

enum kn_agg_stage {
	KN_AGG_WHOLE,	/* add, bound, release: one aggregator */
	KN_AGG_BOUND,	/* points in, exact partial tallies out */
	KN_AGG_RELEASE, /* partial tallies in, released rows out */
};

/* How an upstream partition stands for the watermark: active (holds it
 * back at its stream time), idle (left out until it is active again), or
 * ended (--until-eof read it to its end; when every partition has ended,
 * every window closes). */
enum kn_part_state {
	KN_PART_ACTIVE,
	KN_PART_IDLE,
	KN_PART_ENDED
};

struct kn_agg_opts {
	int64_t window_ms;
	int64_t lateness_ms;
	int64_t max_events_per_person; /* Linf: per group per window */
	int64_t max_groups_per_person; /* L0: per window, all definitions */
	enum kn_agg_mode mode;
	struct kn_dp_params dp;		  /* mode KN_AGG_DP */
	const struct kn_keys *noise_keys; /* mode KN_AGG_DP: borrowed */
	const char *scope;		  /* the deployment (topics, transactional id): borrowed */
	enum kn_id_kind person;		  /* which pseudonym defines a person */
	int64_t epoch_ms;		  /* key epoch length (0: single epoch) */
	int64_t max_state_bytes;	  /* beyond it the oldest window closes early */
	int n_partitions;
	enum kn_agg_stage stage;
};

struct kn_agg_row {
	const struct kn_agg_def *def;
	int64_t window_start, window_end, key_epoch;
	const char *dim[KN_DIMS]; /* NULL: null or not a dimension of def */
	uint64_t events, users;	  /* noisy under KN_AGG_DP */
	bool users_exact;	  /* exact counts: KN_AGG_K_ANONYMITY, KN_AGG_BOUND */
	bool early;		  /* KN_AGG_BOUND: the window closed early there */
};

struct kn_agg_summary {
	const struct kn_agg_def *def;
	int64_t window_start, window_end;
	/* Derived from the released rows only: what was suppressed or bounded
	 * is counted in kn_agg_metrics (operators), never here. */
	uint64_t groups_released, events_released;
	/* Closed before the input's own watermark (every partition with data,
	 * idle or not) had passed it: by the state cap (always early), by the
	 * end-of-input flush, or while an idle partition was left out. Except
	 * for the cap, the same in every run of the same input. */
	bool early;
};

/* Called for every released group, then once per definition and window. */
struct kn_agg_sink {
	void (*row)(void *opaque, const struct kn_agg_row *row);
	void (*summary)(void *opaque, const struct kn_agg_summary *s);
	void *opaque;
};

enum kn_agg_result {
	KN_AGG_ADDED,
	KN_AGG_LATE,	   /* its window closed for its partition, or was released */
	KN_AGG_INELIGIBLE, /* kn_agg_eligible said no */
	KN_AGG_NO_PERSON,  /* no pseudonym of the person kind */
	KN_AGG_ERROR,	   /* out of memory */
};

struct kn_agg_metrics {
	uint64_t added, late, ineligible, no_person, bounded, early_closed, windows_closed;
	uint64_t windows_full; /* late because MAX_WINDOWS windows were open */
	uint64_t groups_suppressed, events_suppressed; /* exact: operators only */
	double epsilon_spent; /* per person, summed over released windows */
	uint64_t open_windows, open_groups, state_bytes;
};

struct kn_aggregator;

/* The one eligibility rule of the aggregates, applied to every definition. */
bool kn_agg_eligible(const struct kn_deid *d);

/* The start of the window of ts (floor, also before 1970). */
int64_t kn_agg_window_start(int64_t ts_ms, int64_t window_ms);

/* Where an eligible event moves its partition's stream time: its event
 * time, but never past the moment its record was written (record_ms > 0),
 * so a device clock set ahead cannot make other people's events late. */
static inline int64_t kn_agg_stream_time(int64_t ts_ms, int64_t record_ms)
{
	return record_ms > 0 && ts_ms > record_ms ? record_ms : ts_ms;
}

/* The lateness rule: an event is late iff its window's end + lateness is at
 * or behind its partition's stream time (max_ts, after the event moved it). */
static inline bool kn_agg_late(int64_t window_end, int64_t lateness_ms, int64_t max_ts)
{
	return window_end > INT64_MAX - lateness_ms || window_end + lateness_ms <= max_ts;
}

/* One eligible event reduced to what the aggregates read. */
struct kn_agg_point {
	uint64_t person; /* fingerprint of the person's pseudonym, never 0 */
	int64_t window_start;
	const char *dim[KN_DIMS]; /* never NULL: "" is null; geo_cell at full precision */
};

/* d's point in the window of ts_ms; false when d has no pseudonym of the
 * person kind. The strings point into d (and a static type name). */
bool kn_agg_point_of(const struct kn_deid *d, enum kn_id_kind person, int64_t window_ms,
		     int64_t ts_ms, struct kn_agg_point *pt);

/* defs and o are copied (defs' strings are borrowed: keep them alive). */
struct kn_aggregator *kn_aggregator_new(const struct kn_agg_def *defs, int n_defs,
					const struct kn_agg_opts *o);
void kn_aggregator_destroy(struct kn_aggregator *a);

/* Offers one de-identified event with its raw event time and its Kafka
 * record time (record_ms <= 0: none), from input partition index part at
 * offset. An ineligible event changes nothing; an eligible one moves its
 * partition's stream time to min(ts_ms, record_ms). */
enum kn_agg_result kn_aggregator_add(struct kn_aggregator *a, const struct kn_deid *d,
				     int64_t ts_ms, int64_t record_ms, int part, int64_t offset);

/* KN_AGG_BOUND: adds n_events events at a point from upstream partition
 * part (for the watermark) found at offset of the consumed partition (for
 * the restart): the same as adding them one by one. Late only when its
 * window was already closed here. */
enum kn_agg_result kn_aggregator_add_point(struct kn_aggregator *a, const struct kn_agg_point *pt,
					   uint32_t n_events, int part, int64_t offset);

/* KN_AGG_RELEASE: adds one bound partition's tally of a group (definition
 * index def, dimension values dim as in a row: NULL is null) from bound
 * partition part, found at offset. */
enum kn_agg_result kn_aggregator_add_partial(struct kn_aggregator *a, int def, int64_t window_start,
					     const char *const dim[KN_DIMS], uint64_t events,
					     uint64_t users, bool early, int part, int64_t offset);

/* An upstream partition's mark: its stream time moves up to max_ts (never
 * back) and its state becomes state. */
void kn_aggregator_mark(struct kn_aggregator *a, int part, int64_t max_ts,
			enum kn_part_state state);
/* What the aggregator knows of part: its stream time (INT64_MIN: none). */
enum kn_part_state kn_aggregator_part(const struct kn_aggregator *a, int part, int64_t *max_ts);
/* The watermark: every window ending at or before it is closed once
 * kn_aggregator_advance has run (INT64_MIN: none yet); *state says whether
 * every partition has ended (KN_PART_ENDED), none is active (KN_PART_IDLE),
 * or some is. */
int64_t kn_aggregator_watermark(const struct kn_aggregator *a, enum kn_part_state *state);
/* The first offset (of the consumed partition) any open window still
 * needs, or position when none does. */
int64_t kn_aggregator_first_offset(const struct kn_aggregator *a, int64_t position);
bool kn_aggregator_idle_now(const struct kn_aggregator *a); /* no open window */
/* The active upstream partitions the oldest open window waits for (at
 * most max into parts); their count. *start gets that window's start
 * (INT64_MAX without an open window), so a caller holding several
 * aggregators can name what its oldest window of all waits for. */
int kn_aggregator_waiting(const struct kn_aggregator *a, int64_t *start, int *parts, int max);

/* Closes every window the watermark has passed (all of them if flush: the
 * end of the input), and the oldest ones while state exceeds
 * max_state_bytes, releasing rows to sink in window order. Returns the
 * number of windows closed, or -ENOMEM. */
int kn_aggregator_advance(struct kn_aggregator *a, bool flush, const struct kn_agg_sink *sink);

/* Marks a partition idle (excluded from the watermark) or active again. */
void kn_aggregator_set_idle(struct kn_aggregator *a, int part, bool idle);
/* Sets a partition's state (enum kn_part_state). */
void kn_aggregator_set_state(struct kn_aggregator *a, int part, enum kn_part_state state);

/* Restart state: see the file comment. */
void kn_aggregator_restore(struct kn_aggregator *a, int part, int64_t max_ts,
			   int64_t emitted_until);
void kn_aggregator_checkpoint(const struct kn_aggregator *a, int part, int64_t position,
			      int64_t *offset, int64_t *max_ts);
int64_t kn_aggregator_emitted_until(const struct kn_aggregator *a);
void kn_aggregator_metrics(const struct kn_aggregator *a, struct kn_agg_metrics *m);

#endif
