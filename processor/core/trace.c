#include "trace.h"

#include <time.h>

#include "kn_alloc.h"

/* Semaphores: a tracer that attaches to a probe increments its counter (the
 * kernel does it for uprobes with a reference counter offset), so the
 * arguments are prepared only while someone listens. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#define KN_SEMAPHORE(name)                                                                         \
	__attribute__((visibility("hidden"),                                                       \
		       section(".probes"))) volatile unsigned short kanon_##name##_semaphore
KN_SEMAPHORE(batch_consumed);
KN_SEMAPHORE(batch_decoded);
KN_SEMAPHORE(batch_policy);
KN_SEMAPHORE(batch_deid);
KN_SEMAPHORE(batch_aggregated);
KN_SEMAPHORE(batch_produced);
KN_SEMAPHORE(batch_acked);
KN_SEMAPHORE(txn_begin);
KN_SEMAPHORE(windows_emitted);
KN_SEMAPHORE(txn_committed);
KN_SEMAPHORE(stage_begin);
KN_SEMAPHORE(stage_committed);

#define KN_PROBE(name, id, n, ts)                                                                  \
	do {                                                                                       \
		if (__builtin_expect(kanon_##name##_semaphore, 0))                                 \
			STAP_PROBE3(kanon, name, (uint64_t)(id), (uint64_t)(n), (int64_t)(ts));    \
	} while (0)

/* Batches awaiting their delivery reports, by id modulo the ring size. A
 * batch still unacknowledged when its slot comes round again (4096 batches
 * later) is given up on: its ack interval goes unrecorded, as does that of
 * a batch whose delivery failed (the run stops on that anyway). */
#define ACK_RING 4096

struct pending {
	uint32_t tag;
	uint32_t expected;  /* UINT32_MAX until kn_trace_await says */
	uint32_t delivered; /* may run ahead of expected being known */
	bool open;
	struct kn_tspan span;
};

struct kn_trace {
	uint64_t next_id, next_cycle;
	struct kn_trace_stats st;
	struct pending ring[ACK_RING];
};

static const char *const names[KN_STAGES] = {
	[KN_STAGE_CONSUME] = "consume",
	[KN_STAGE_DECODE] = "decode",
	[KN_STAGE_POLICY] = "policy",
	[KN_STAGE_DEID] = "deid",
	[KN_STAGE_AGGREGATE] = "aggregate",
	[KN_STAGE_PRODUCE] = "produce",
	[KN_STAGE_ACK] = "ack",
	[KN_STAGE_WINDOW] = "window",
	[KN_STAGE_COMMIT] = "commit",
};

const char *kn_stage_name(enum kn_stage s)
{
	return s < KN_STAGES ? names[s] : "?";
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void kn_hist_add(struct kn_hist *h, int64_t us)
{
	int b = 0;

	if (us < 0)
		us = 0; /* clocks of two machines: a message "from the future" */
	while (b < KN_LAT_BUCKETS - 1 && (1ULL << b) <= (uint64_t)us)
		b++;
	h->bucket[b]++;
	h->sum_us += (uint64_t)us;
	h->count++;
}

struct kn_trace *kn_trace_new(void)
{
	return kn_calloc(1, sizeof(struct kn_trace));
}

void kn_trace_destroy(struct kn_trace *t)
{
	kn_free(t);
}

const struct kn_trace_stats *kn_trace_stats(const struct kn_trace *t)
{
	return &t->st;
}

/* Each probe is its own site: USDT names are fixed at compile time. */
static void fire(enum kn_stage s, const struct kn_tspan *b, uint32_t count)
{
	switch (s) {
	case KN_STAGE_CONSUME:
		KN_PROBE(batch_consumed, b->id, count, b->min_ts);
		break;
	case KN_STAGE_DECODE:
		KN_PROBE(batch_decoded, b->id, count, b->min_ts);
		break;
	case KN_STAGE_POLICY:
		KN_PROBE(batch_policy, b->id, count, b->min_ts);
		break;
	case KN_STAGE_DEID:
		KN_PROBE(batch_deid, b->id, count, b->min_ts);
		break;
	case KN_STAGE_AGGREGATE:
		KN_PROBE(batch_aggregated, b->id, count, b->min_ts);
		break;
	case KN_STAGE_PRODUCE:
		KN_PROBE(batch_produced, b->id, count, b->min_ts);
		break;
	case KN_STAGE_ACK:
		KN_PROBE(batch_acked, b->id, count, b->min_ts);
		break;
	case KN_STAGE_WINDOW:
		KN_PROBE(windows_emitted, b->id, count, b->min_ts);
		break;
	case KN_STAGE_COMMIT:
		KN_PROBE(txn_committed, b->id, count, b->min_ts);
		break;
	default:
		break;
	}
}

void kn_trace_begin(struct kn_trace *t, struct kn_tspan *b, uint32_t n, int64_t min_ts)
{
	*b = (struct kn_tspan){++t->next_id, n, min_ts, mono_ns()};
	/* Open for delivery reports now: some may come back before the batch
	 * has finished producing (the loop serves them while it waits for
	 * queue space). */
	t->ring[b->id % ACK_RING] = (struct pending){kn_trace_tag(b), UINT32_MAX, 0, true, *b};
	t->st.batches++;
	if (min_ts > 0)
		kn_hist_add(&t->st.stage[KN_STAGE_CONSUME], real_us() - min_ts * 1000);
	fire(KN_STAGE_CONSUME, b, n);
}

void kn_trace_mark(struct kn_trace *t, struct kn_tspan *b, enum kn_stage s, uint32_t count)
{
	int64_t now = mono_ns();

	kn_hist_add(&t->st.stage[s], (now - b->t_ns) / 1000);
	b->t_ns = now;
	fire(s, b, count);
}

static void acked(struct kn_trace *t, struct pending *p)
{
	p->open = false;
	kn_trace_mark(t, &p->span, KN_STAGE_ACK, p->span.n);
	if (p->span.min_ts > 0)
		kn_hist_add(&t->st.end_to_end, real_us() - p->span.min_ts * 1000);
	t->st.batches_acked++;
}

void kn_trace_await(struct kn_trace *t, const struct kn_tspan *b, uint32_t outstanding)
{
	struct pending *p = &t->ring[b->id % ACK_RING];

	if (!p->open || p->tag != kn_trace_tag(b))
		return;
	p->span = *b;
	p->expected = outstanding;
	if (p->delivered >= p->expected)
		acked(t, p);
}

void kn_trace_delivered(struct kn_trace *t, uint32_t tag)
{
	struct pending *p = &t->ring[tag % ACK_RING];

	if (!p->open || p->tag != tag)
		return; /* given up on, or not a batch's record */
	if (++p->delivered == p->expected)
		acked(t, p);
}

void kn_trace_txn_begin(struct kn_trace *t, struct kn_tspan *c, uint32_t records, int64_t min_ts)
{
	*c = (struct kn_tspan){++t->next_cycle, records, min_ts, mono_ns()};
	KN_PROBE(txn_begin, c->id, records, min_ts);
}

void kn_trace_txn_mark(struct kn_trace *t, struct kn_tspan *c, enum kn_stage s, uint32_t count)
{
	kn_trace_mark(t, c, s, count);
}

/* Stage cycles come from several threads: one counter for the process. */
static uint64_t stage_cycles;

void kn_trace_stage_begin(struct kn_tspan *c, int stage, uint32_t records)
{
	c->id = __atomic_add_fetch(&stage_cycles, 1, __ATOMIC_RELAXED);
	c->n = records;
	KN_PROBE(stage_begin, c->id, (uint64_t)stage, records);
}

void kn_trace_stage_end(const struct kn_tspan *c, int stage, uint32_t written)
{
	KN_PROBE(stage_committed, c->id, (uint64_t)stage, written);
}
