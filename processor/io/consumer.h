/* consumer: reading Kafka, in kanon's terms.
 *
 * Two ways to get partitions:
 *   - group mode (kn_consumer_opts.subscribe): the consumer group assigns
 *     them. Before partitions go, the revoke hook runs inside
 *     kn_consumer_poll (the at-least-once loop delivers and commits there),
 *     so no acknowledged work is lost and no unacknowledged offset is
 *     committed. A lost assignment (the group moved on while the broker was
 *     unreachable) is not an error: the group assigns partitions again when
 *     the member rejoins.
 *   - assign mode (kn_consumer_assign): the caller names every partition and
 *     where to start, after reading what was committed with its metadata
 *     (the exactly-once loop keeps its restart state there).
 * Auto-commit is off in every role: only the caller decides what is
 * committed. Consumer errors are logged here and not returned; a fatal one
 * makes kn_consumer_healthy false. Every blocking call is bounded (kafka.h). */
#ifndef KN_CONSUMER_H
#define KN_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kafka.h"

struct kn_consumer;

/* A consumed record, or the mark that a partition reached its end (eof:
 * no payload). Everything points into the transport's message, valid until
 * kn_consumer_release. */
struct kn_msg {
	const uint8_t *payload;
	size_t len;
	const uint8_t *key;
	size_t key_len;
	const char *topic;
	int topic_idx; /* index in kn_consumer_opts.topics; -1: another topic */
	int32_t partition;
	int64_t offset;
	int64_t ts_ms; /* the record's Kafka timestamp; 0: none */
	bool eof;
	void *held; /* the transport's */
};

/* Called on revocation with the partitions about to go; lost: they already
 * belong to another member, so committing for them would fail. */
typedef void(kn_revoke_cb)(void *opaque, const struct kn_tp *parts, int n, bool lost);
/* Called when partitions are assigned, before any of their records is
 * read: sets where each starts (parts[i].offset; KN_OFFSET_NONE: where the
 * group's committed offset says). */
typedef void(kn_assign_cb)(void *opaque, struct kn_tp *parts, int n);

/* The consumer copies group; topics must outlive it (kn_msg.topic_idx and
 * the diagnosis read them). */
struct kn_consumer_opts {
	enum kn_client role;
	const char *group;	   /* consumer group (NULL: kafka.group_id) */
	const char *const *topics; /* what kn_msg.topic_idx indexes; subscribed in group mode */
	int n_topics;
	bool subscribe;		 /* group mode */
	kn_revoke_cb *on_revoke; /* group mode (may be NULL) */
	/* Group mode (may be NULL). With it, a poll during which the group
	 * rebalanced returns nothing, and every assigned partition starts
	 * again where on_assign said: no record read before the rebalance is
	 * handed out after it (exactly-once stages rebuild their state from
	 * those start offsets). Forces an eager assignor. */
	kn_assign_cb *on_assign;
	void *opaque;		  /* for on_revoke and on_assign */
	const char *const *extra; /* name, value pairs over the role's (NULL-terminated) */
	/* A producer whose delivery reports kn_consumer_poll serves while it
	 * waits for input (NULL: none). It must outlive the consumer. */
	struct kn_producer *serve;
};

/* Creates the consumer (and subscribes in group mode). Returns 0 or a
 * negative errno with errstr set (a bad property names the property). */
int kn_consumer_new(const struct kn_config *c, const struct kn_consumer_opts *o,
		    struct kn_consumer **out, char *errstr, size_t errsz);
/* Closes and frees; with leave it leaves the group first when there is time
 * before until and the stop deadline (kafka_rd.h's kn_kafka_close). Accepts
 * NULL. */
void kn_consumer_close(struct kn_consumer *k, bool leave, int64_t until);

/* ---- assign mode ---- */

/* Partitions of topic: the count, -ENOENT (no such topic), -ETIMEDOUT,
 * -ECANCELED (stopped first) or -EIO, with errstr set but for -ENOENT. */
int kn_consumer_partitions(struct kn_consumer *k, const char *topic, int64_t until, char *errstr,
			   size_t errsz);
/* The group's committed offsets of tps[0..n) (topic, partition in; offset
 * out, KN_OFFSET_NONE when nothing is committed) and their metadata (meta,
 * meta_len: owned by k, valid until the next call or the close). Returns 0,
 * or -ECANCELED / -EIO with errstr set. */
int kn_consumer_committed(struct kn_consumer *k, struct kn_tp *tps, int n, int64_t until,
			  char *errstr, size_t errsz);
/* Reads exactly these partitions, each from its offset (or a KN_OFFSET_*).
 * Returns 0 or -EIO with errstr set. */
int kn_consumer_assign(struct kn_consumer *k, const struct kn_tp *tps, int n, char *errstr,
		       size_t errsz);

/* ---- reading ---- */

/* Fills msgs with up to max records and end-of-partition marks, waiting at
 * most timeout_ms for the first (less when a signal arrives). Returns the
 * count (0 on timeout). Serves the consumer's callbacks (rebalances,
 * statistics, commit results) and, as they arrive while it waits, the
 * delivery reports of opts.serve. */
int kn_consumer_poll(struct kn_consumer *k, struct kn_msg *msgs, int max, int timeout_ms);
/* Moves the reading position of tps[0..n) (assigned) to their offsets:
 * what was fetched beyond is dropped. Returns 0 or -EIO. */
int kn_consumer_seek(struct kn_consumer *k, const struct kn_tp *tps, int n);
/* Gives msgs[0..n) back to the transport. */
void kn_consumer_release(struct kn_consumer *k, struct kn_msg *msgs, int n);

/* Commits positions (offsets only; tps NULL: the positions of the messages
 * consumed so far, auto-stored). until 0: asynchronously (returns 0 or
 * -EIO when the request could not be made); else waits for the broker's
 * answer until then or the stop's drain deadline: 0, -EIO, -ETIMEDOUT or
 * -ECANCELED. */
int kn_consumer_commit(struct kn_consumer *k, const struct kn_tp *tps, int n, int64_t until);

/* ---- state ---- */

/* True when partitions are assigned and every one is at its end. */
bool kn_consumer_at_eof(const struct kn_consumer *k);
/* False after a fatal consumer error. */
bool kn_consumer_healthy(const struct kn_consumer *k);
/* True when that error was another member joining with this one's
 * group.instance.id (static membership: a second instance of one name). */
bool kn_consumer_fenced(const struct kn_consumer *k);
int kn_consumer_assigned(const struct kn_consumer *k);
bool kn_consumer_ever_assigned(const struct kn_consumer *k);
/* Monotonic ms since which no partition is assigned (since creation, or
 * since the last one was revoked or lost); 0 while some are. */
int64_t kn_consumer_unassigned_since(const struct kn_consumer *k);
/* Monotonic ms of the last commit the broker accepted (0: none yet). */
int64_t kn_consumer_last_commit(const struct kn_consumer *k);
/* Messages behind the partitions' ends: from librdkafka's statistics
 * (every 5 s) in group mode; in assign mode from the cached high watermarks
 * against the positions the caller gives (tps[i].offset < 0: not read yet).
 * -1 while unknown. */
int64_t kn_consumer_lag(const struct kn_consumer *k);
int64_t kn_consumer_lag_of(struct kn_consumer *k, const struct kn_tp *tps, int n);
/* Low and high watermark of a partition, asking the broker (bounded). Returns
 * 0 or -EIO. */
int kn_consumer_watermarks(struct kn_consumer *k, const char *topic, int32_t partition, int64_t *lo,
			   int64_t *hi, int64_t until);
/* Why nothing is assigned, in words for an operator: the assignment was
 * taken away, the input topics are missing (asks the broker, at most 5 s),
 * no broker answers, or the group gives this member nothing. */
void kn_consumer_diagnose(struct kn_consumer *k, char *buf, size_t size);

#endif
