#include <errno.h>

#include "kt.h"
#include "offsets.h"

static uint32_t tag; /* the batch tag an ack hands back */

static int64_t pos(struct kn_offsets *o, const char *topic, int32_t part)
{
	struct kn_commit c[16];
	int n = kn_offsets_collect(o, c, 16, 1);

	for (int i = 0; i < n; i++)
		if (c[i].partition == part && !strcmp(c[i].topic, topic))
			return c[i].offset;
	return -1;
}

static void test_prefix_rule(void)
{
	struct kn_offsets *o = kn_offsets_new(1000);
	uint64_t t[5];

	/* Offsets 10..14, with a gap (a transaction marker) between 12 and 14. */
	const int64_t offs[5] = {10, 11, 12, 14, 15};
	for (int i = 0; i < 5; i++)
		KT_CHECK(kn_offsets_track(o, "in", 0, offs[i], (uint32_t)i + 7, &t[i]) == 0);
	KT_CHECK(kn_offsets_in_flight(o) == 5);
	KT_CHECK(pos(o, "in", 0) == -1); /* nothing acked */
	KT_CHECK(kn_offsets_ack(o, t[1], &tag) == 1 && tag == 8);
	kn_offsets_ack(o, t[3], &tag);
	KT_CHECK(pos(o, "in", 0) == -1); /* 10 still out: commit nothing */
	kn_offsets_ack(o, t[0], &tag);
	KT_CHECK(pos(o, "in", 0) == 12);	      /* 10, 11 done; 12 is next */
	KT_CHECK(kn_offsets_ack(o, t[0], &tag) == 0); /* duplicate ack: ignored */
	KT_CHECK(kn_offsets_in_flight(o) == 2);
	kn_offsets_ack(o, t[2], &tag);
	KT_CHECK(pos(o, "in", 0) == 15); /* through 14 */
	kn_offsets_ack(o, t[4], &tag);
	KT_CHECK(pos(o, "in", 0) == 16);
	KT_CHECK(kn_offsets_in_flight(o) == 0);
	kn_offsets_destroy(o);
}

static void test_partitions_independent_and_collect_delta(void)
{
	struct kn_offsets *o = kn_offsets_new(1000);
	uint64_t a, b;
	struct kn_commit c[8];

	kn_offsets_track(o, "in", 0, 5, 100, &a);
	kn_offsets_track(o, "in", 1, 7, 100, &b);
	kn_offsets_ack(o, b, &tag);
	KT_CHECK(kn_offsets_collect(o, c, 8, 0) == 1);
	KT_CHECK(c[0].partition == 1 && c[0].offset == 8);
	KT_CHECK(kn_offsets_collect(o, c, 8, 0) == 0); /* nothing new since */
	kn_offsets_ack(o, a, &tag);
	KT_CHECK(kn_offsets_collect(o, c, 8, 0) == 1 && c[0].partition == 0 && c[0].offset == 6);
	kn_offsets_destroy(o);
}

static void test_backpressure_and_growth(void)
{
	struct kn_offsets *o = kn_offsets_new(5000);
	uint64_t tok[5000], extra;

	for (int i = 0; i < 5000; i++) /* grows the ring past its first size */
		KT_CHECK(kn_offsets_track(o, "in", 3, 100 + i, 100, &tok[i]) == 0);
	KT_CHECK(kn_offsets_track(o, "in", 3, 6000, 100, &extra) == -EAGAIN);
	for (int i = 4999; i >= 0; i--) /* acked in reverse */
		kn_offsets_ack(o, tok[i], &tag);
	KT_CHECK(pos(o, "in", 3) == 5100);
	KT_CHECK(kn_offsets_track(o, "in", 3, 5100, 100, &extra) == 0);
	kn_offsets_destroy(o);
}

static void test_forget_makes_tokens_stale(void)
{
	struct kn_offsets *o = kn_offsets_new(100);
	uint64_t old, fresh;

	kn_offsets_track(o, "in", 0, 1, 100, &old);
	kn_offsets_forget(o, "in", 0);
	KT_CHECK(kn_offsets_in_flight(o) == 0);
	kn_offsets_track(o, "in", 0, 50, 100, &fresh); /* reassigned: new generation */
	KT_CHECK(kn_offsets_ack(o, old, &tag) == 0);   /* late ack from before: ignored */
	KT_CHECK(pos(o, "in", 0) == -1);
	kn_offsets_ack(o, fresh, &tag);
	KT_CHECK(pos(o, "in", 0) == 51);
	kn_offsets_destroy(o);
}

int main(void)
{
	KT_RUN(test_prefix_rule);
	KT_RUN(test_partitions_independent_and_collect_delta);
	KT_RUN(test_backpressure_and_growth);
	KT_RUN(test_forget_makes_tokens_stale);
	return kt_done();
}
