/* offsets: at-least-once bookkeeping between consumed and acknowledged.
 *
 * Every consumed message is tracked, in consumption order, per partition.
 * Its output's delivery report acks it (out of order is fine: outputs go to
 * several partitions). The committable position of a partition is one past
 * the last offset of the longest fully-acked prefix, so an input offset is
 * committed only after its output, and every output before it, is durable.
 *
 * Invariant per partition: head <= tail, tail - head <= cap; entries
 * [head, tail) are tracked and not yet folded into commit_pos; entry head is
 * unacked whenever head < tail after kn_offsets_ack returns.
 *
 * Tokens carry a partition generation, so a late ack for a partition that was
 * revoked and forgotten is ignored rather than corrupting its successor.
 * Pure bookkeeping: no Kafka calls, single-threaded (acks come from the
 * producer's delivery-report callback served on the same thread). */
#ifndef KN_OFFSETS_H
#define KN_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct kn_offsets;

struct kn_commit {
	const char *topic; /* owned by kn_offsets; valid until kn_offsets_forget */
	int32_t partition;
	int64_t offset; /* next offset to consume: last acked + 1 */
};

/* max_in_flight bounds tracked-but-unacked messages over all partitions. */
struct kn_offsets *kn_offsets_new(size_t max_in_flight);
void kn_offsets_destroy(struct kn_offsets *o);

/* Tracks a consumed message; tag is the caller's (run.c: its batch id),
 * handed back by the ack. Returns 0 and sets *token, -EAGAIN when
 * max_in_flight is reached (serve delivery reports, then retry), or -ENOMEM. */
int kn_offsets_track(struct kn_offsets *o, const char *topic, int32_t partition, int64_t offset,
		     uint32_t tag, uint64_t *token);
/* Acks a tracked message. Returns 1 and sets *tag when it was pending; 0 for
 * unknown, stale or already acked tokens (ignored). */
int kn_offsets_ack(struct kn_offsets *o, uint64_t token, uint32_t *tag);
size_t kn_offsets_in_flight(const struct kn_offsets *o);

/* Writes up to max positions that advanced since the last collect (or all
 * known positions if all != 0) to out. Returns the count. */
int kn_offsets_collect(struct kn_offsets *o, struct kn_commit *out, int max, int all);
/* Drops a partition (after revocation). Its pending tokens become stale. */
void kn_offsets_forget(struct kn_offsets *o, const char *topic, int32_t partition);

#endif
