#include "kt.h"
#include "trace.h"

/* A batch is acked when all of its delivery reports are back, whether they
 * come before or after the loop has finished producing it. */
static void test_ack_accounting(void)
{
	struct kn_trace *t = kn_trace_new();
	struct kn_tspan a, b, c;

	kn_trace_begin(t, &a, 3, 0);
	kn_trace_begin(t, &b, 2, 0);
	KT_CHECK(a.id == 1 && b.id == 2);
	kn_trace_delivered(t, kn_trace_tag(&a)); /* early: a still producing */
	kn_trace_mark(t, &a, KN_STAGE_PRODUCE, 3);
	kn_trace_await(t, &a, 3);
	KT_CHECK(kn_trace_stats(t)->batches_acked == 0);
	kn_trace_delivered(t, kn_trace_tag(&a));
	kn_trace_delivered(t, 999); /* not a batch in flight: ignored */
	KT_CHECK(kn_trace_stats(t)->batches_acked == 0);
	kn_trace_delivered(t, kn_trace_tag(&a));
	KT_CHECK(kn_trace_stats(t)->batches_acked == 1);
	kn_trace_delivered(t, kn_trace_tag(&a)); /* a late duplicate: ignored */
	KT_CHECK(kn_trace_stats(t)->batches_acked == 1);
	/* Everything dropped by the policy: nothing to wait for. */
	kn_trace_mark(t, &b, KN_STAGE_PRODUCE, 0);
	kn_trace_await(t, &b, 0);
	KT_CHECK(kn_trace_stats(t)->batches_acked == 2);
	KT_CHECK(kn_trace_stats(t)->stage[KN_STAGE_ACK].count == 2);
	KT_CHECK(kn_trace_stats(t)->stage[KN_STAGE_PRODUCE].count == 2);
	/* End to end only for batches with a Kafka timestamp. */
	KT_CHECK(kn_trace_stats(t)->end_to_end.count == 0);
	kn_trace_begin(t, &c, 1, 1000);
	KT_CHECK(kn_trace_stats(t)->stage[KN_STAGE_CONSUME].count == 1);
	kn_trace_await(t, &c, 1);
	kn_trace_delivered(t, kn_trace_tag(&c));
	KT_CHECK(kn_trace_stats(t)->end_to_end.count == 1);
	KT_CHECK(kn_trace_stats(t)->batches == 3);
	kn_trace_destroy(t);
}

static void test_hist_buckets(void)
{
	struct kn_hist h = {0};

	kn_hist_add(&h, 0);
	kn_hist_add(&h, 1);
	kn_hist_add(&h, 1023);
	kn_hist_add(&h, 1024);
	kn_hist_add(&h, -5);	    /* clock skew: counted as 0 */
	kn_hist_add(&h, 1LL << 40); /* beyond the last bound */
	KT_CHECK(h.bucket[0] == 2 && h.bucket[1] == 1);
	KT_CHECK(h.bucket[10] == 1 && h.bucket[11] == 1);
	KT_CHECK(h.bucket[KN_LAT_BUCKETS - 1] == 1 && h.count == 6);
}

int main(void)
{
	KT_RUN(test_ack_accounting);
	KT_RUN(test_hist_buckets);
	return kt_done();
}
