#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "avrobin.h"
#include "clock.h"
#include "erasure.h"
#include "kafka_conf.h"
#include "kn_alloc.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "sink.h"
#include "source.h"
#include "stop.h"
#include "trace.h"

#define MAX_COMMITS 4096

struct run {
	const struct kn_config *cfg;
	struct kn_stack st;
	struct kn_pipeline *pipe; /* = st.pipe */
	struct kn_offsets *offs;
	struct kn_source *src;
	struct kn_sink *sink;
	struct kn_metrics *metrics;
	struct kn_metrics_snapshot snap;
	struct kn_commit commits[MAX_COMMITS];
	struct kn_trace *trace;
	struct kn_batch *b;	    /* the pipeline's view of batch[] */
	rd_kafka_message_t **batch; /* as consumed */
	char failed[512];	    /* first delivery failure */
	uint64_t produced, dead_lettered, dropped;
	uint64_t acked, acked_seen; /* records done; the count publish() last saw */
	int64_t last_progress;	    /* mono ms of the last delivery or commit */
	bool leave;		    /* the broker answered at the end: leave the group */
};

int kn_run_maintain_keys(struct kn_keys *keys, const struct kn_config *c, char *errstr,
			 size_t errsz)
{
	int64_t before = kn_keys_first_epoch(keys);
	int err = kn_keys_maintain(keys, c->key_file, c->epoch_ms, c->key_retention_ms,
				   kn_wall_ms(), errstr, errsz);

	if (err < 0)
		return -EIO;
	if (err > 0) /* KN_KEYS_IN_MEMORY, KN_KEYS_NOT_FOLLOWED: said, and carried on */
		kn_warn("keys", "%s", errstr);
	if (kn_keys_first_epoch(keys) != before)
		kn_info("keys", "epochs before %lld are retired: their keys are destroyed",
			(long long)kn_keys_first_epoch(keys));
	return 0;
}

int kn_stack_open(const struct kn_config *c, unsigned what, struct kn_stack *s, char *errstr,
		  size_t errsz)
{
	int err;

	memset(s, 0, sizeof(*s));
	err = kn_keys_load(c->key_file, c->prf, c->epoch_ms, kn_wall_ms(), &s->keys, errstr, errsz);
	if (!err && (what & KN_STACK_MAINTAIN))
		err = kn_run_maintain_keys(s->keys, c, errstr, errsz);
	if (!err)
		err = kn_schemas_load(c, &s->schemas, errstr, errsz);
	if (!err && !(s->pipe = kn_pipeline_new(c, s->schemas, s->keys, errstr, errsz)))
		err = -EINVAL;
	if (!err && (what & KN_STACK_ERASURE) && c->erasure_enabled &&
	    !(err = kn_erasure_new(c, s->keys, &s->erasure, errstr, errsz)))
		kn_pipeline_set_erasure(s->pipe, s->erasure);
	if (err)
		kn_stack_close(s);
	return err;
}

int kn_run_preflight(const struct kn_config *c, const char *metrics_addr, char *errstr,
		     size_t errsz)
{
	struct kn_stack st;
	int err = kn_kafka_check_conf(c, errstr, errsz);

	if (!err && metrics_addr)
		err = kn_metrics_check_addr(metrics_addr, errstr, errsz);
	if (!err && !(err = kn_stack_open(c, 0, &st, errstr, errsz)))
		kn_stack_close(&st);
	return err;
}

void kn_stack_close(struct kn_stack *s)
{
	kn_erasure_destroy(s->erasure);
	kn_pipeline_destroy(s->pipe);
	kn_schemas_destroy(s->schemas);
	kn_keys_destroy(s->keys);
	memset(s, 0, sizeof(*s));
}

static void on_delivery(void *opaque, uint64_t token, int err, const char *reason)
{
	struct run *r = opaque;

	if (err) {
		/* Leave it unacked: its offset, and every later one of its
		 * partition, stays uncommitted and is redone after restart. */
		if (!r->failed[0])
			snprintf(r->failed, sizeof(r->failed), "delivery failed: %s", reason);
		return;
	}
	uint32_t batch;
	if (kn_offsets_ack(r->offs, token, &batch))
		kn_trace_delivered(r->trace, batch);
	r->acked++; /* publish() turns it into a time: no clock read per record */
}

/* Commits what was acknowledged: what moved since the last commit,
 * asynchronously (until 0); or every known position, waiting for the
 * broker until then (an earlier asynchronous commit may have failed
 * unseen). Returns 0 (also when nothing is known) or the kn_source_commit
 * error. */
static int commit(struct run *r, int64_t until)
{
	int n = kn_offsets_collect(r->offs, r->commits, MAX_COMMITS, until != 0);
	int err = n ? kn_source_commit(r->src, r->commits, n, until) : 0;

	if (n && !err && until)
		r->last_progress = kn_mono_ms();
	return err;
}

/* Before partitions go: deliver what is in flight, commit it, forget them.
 * Lost partitions are someone else's already: their commit would fail. */
static void on_revoke(void *opaque, const rd_kafka_topic_partition_list_t *parts, bool lost)
{
	struct run *r = opaque;
	int64_t until = kn_mono_ms() + KN_RUN_SHUTDOWN_MS;

	if (kn_sink_flush(r->sink, until))
		kn_warn("run", "revoke: %d record(s) still unacknowledged",
			kn_sink_queued(r->sink));
	if (!lost)
		commit(r, until);
	for (int i = 0; i < parts->cnt; i++)
		kn_offsets_forget(r->offs, parts->elems[i].topic, parts->elems[i].partition);
}

/* After a stop, waiting for the producer is worth it only until the drain
 * deadline (stop.h); before one, for as long as the broker takes. */
static bool give_up_waiting(void)
{
	return kn_stop_requested() && !kn_stop_drain_wait(INT64_MAX);
}

/* Produces one record's result, waiting for queue space if needed; *queued
 * counts what will come back as a delivery report. Returns 0 or -EIO
 * (fatal), -ECANCELED (stopped while waiting: the record stays
 * unacknowledged and is redone by the next run). */
static int emit(struct run *r, const rd_kafka_message_t *m, const struct kn_rec *rec,
		uint64_t token, uint32_t *queued)
{
	struct kn_dead_letter dl;
	int err;

	if (rec->state == KN_REC_DROPPED) {
		/* Withheld by the policy: nothing to write, so nothing to wait for. */
		kn_offsets_ack(r->offs, token, &(uint32_t){0});
		r->dropped++;
		r->acked++;
		return 0;
	}
	if (rec->state == KN_REC_DEAD)
		dl = (struct kn_dead_letter){
			.reason = kn_dead_reason_name(rec->v.reason),
			.detail = rec->v.detail,
			.src_topic = rd_kafka_topic_name(m->rkt),
			.src_partition = m->partition,
			.src_offset = m->offset,
			.schema_id = rec->v.schema_id,
			.payload = r->cfg->dlq_include_payload ? m->payload : NULL,
			.payload_len = r->cfg->dlq_include_payload ? m->len : 0,
		};
	for (;;) {
		err = rec->state == KN_REC_OUT
			      ? kn_sink_produce(r->sink, rec->key_len ? rec->key : NULL,
						rec->key_len, r->b->arena + rec->out_off,
						rec->out_len, rec->out_ts, token)
			      : kn_sink_dead_letter(r->sink, &dl, token);
		if (err != -EAGAIN)
			break;
		/* Local queue full: let deliveries drain. */
		if (give_up_waiting())
			return -ECANCELED;
		kn_sink_poll(r->sink, 50);
	}
	if (!err) {
		rec->state == KN_REC_OUT ? r->produced++ : r->dead_lettered++;
		(*queued)++;
	}
	return err;
}

/* Tracks every message of the batch and produces its result, in order.
 * After a stop request the rest of the batch is left untracked: its offsets
 * are not committed, so the next run reads it again. Returns 0, -EIO or
 * -ECANCELED (see emit). */
static int produce_batch(struct run *r, const struct kn_tspan *span, uint32_t *queued)
{
	int err = 0;

	for (int i = 0; i < r->b->n; i++) {
		rd_kafka_message_t *m = r->batch[i];
		uint64_t token;
		if (!err && !kn_stop_requested()) {
			while ((err = kn_offsets_track(r->offs, rd_kafka_topic_name(m->rkt),
						       m->partition, m->offset, kn_trace_tag(span),
						       &token)) == -EAGAIN &&
			       !kn_stop_requested())
				kn_sink_poll(r->sink, 50);
			if (err == -EAGAIN) /* stopped while in-flight records were at the cap */
				err = 0;
			else if (!err)
				err = emit(r, m, &r->b->rec[i], token, queued);
		}
		rd_kafka_message_destroy(m);
	}
	return err;
}

/* One batch through the pipeline's steps, each step's end marked. */
static int process_batch(struct run *r, int n)
{
	struct kn_batch *b = r->b;
	int64_t min_ts = INT64_MAX, now = kn_wall_ms();
	struct kn_tspan span;
	uint32_t queued = 0;
	int err;

	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		const rd_kafka_message_t *m = r->batch[i];
		int64_t ts = rd_kafka_message_timestamp(m, NULL);
		b->rec[i] = (struct kn_rec){.msg = m->payload,
					    .len = m->len,
					    .expected_type = kn_source_topic_type(r->src, m->rkt),
					    .ref_ms = ts > 0 ? ts : now};
		if (ts > 0 && ts < min_ts)
			min_ts = ts;
	}
	b->n = n;
	kn_trace_begin(r->trace, &span, (uint32_t)n, min_ts == INT64_MAX ? 0 : min_ts);
	kn_trace_mark(r->trace, &span, KN_STAGE_DECODE, (uint32_t)kn_pipeline_decode(r->pipe, b));
	kn_trace_mark(r->trace, &span, KN_STAGE_POLICY, (uint32_t)kn_pipeline_admit(r->pipe, b));
	kn_trace_mark(r->trace, &span, KN_STAGE_DEID, (uint32_t)kn_pipeline_deidentify(r->pipe, b));
	err = produce_batch(r, &span, &queued);
	kn_trace_mark(r->trace, &span, KN_STAGE_PRODUCE, queued);
	kn_trace_await(r->trace, &span, queued);
	return err;
}

static int setup(struct run *r, const struct kn_config *c, char *errstr, size_t errsz)
{
	int err;

	r->cfg = c;
	r->last_progress = kn_mono_ms();
	if ((err = kn_stack_open(c, KN_STACK_MAINTAIN | KN_STACK_ERASURE, &r->st, errstr, errsz)))
		return err;
	r->pipe = r->st.pipe;
	r->offs = kn_offsets_new((size_t)c->max_in_flight);
	r->batch = kn_calloc((size_t)c->batch_size, sizeof(*r->batch));
	r->b = kn_batch_new((int)c->batch_size, false);
	r->trace = kn_trace_new();
	if (!r->offs || !r->batch || !r->b || !r->trace) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	err = kn_sink_new(c, on_delivery, r, &r->sink, errstr, errsz);
	if (!err)
		err = kn_source_new(c, on_revoke, r, &r->src, errstr, errsz);
	return err;
}

static void teardown(struct run *r)
{
	/* Leaving the group may call on_revoke, which needs the sink. */
	kn_source_destroy(r->src, r->leave, kn_mono_ms() + KN_RUN_SHUTDOWN_MS);
	kn_sink_destroy(r->sink);
	kn_offsets_destroy(r->offs);
	kn_free(r->batch);
	kn_batch_destroy(r->b);
	kn_trace_destroy(r->trace);
	kn_metrics_stop(r->metrics);
	kn_stack_close(&r->st);
}

static void log_stats(const struct run *r)
{
	const struct kn_pipeline_stats *st = kn_pipeline_stats(r->pipe);
	char dead[512] = "";
	size_t off = 0;

	for (int i = 0; i < KN_DEAD_REASONS; i++)
		if (st->dead[i] && off < sizeof(dead))
			off += (size_t)snprintf(dead + off, sizeof(dead) - off, " %s=%" PRIu64,
						kn_dead_reason_name(i), st->dead[i]);
	const struct kn_policy_stats *ps = kn_pipeline_policy_stats(r->pipe);
	uint64_t invalid = 0;
	for (int k = 0; k < KN_ID_KINDS; k++)
		invalid += st->invalid_id[k];
	kn_info("run",
		"consumed=%" PRIu64 " deid=%" PRIu64 " dead_letter=%" PRIu64 " dropped=%" PRIu64
		" (no_analytics_consent=%" PRIu64 " no_ads_consent=%" PRIu64 " erased=%" PRIu64
		" minor=%" PRIu64 ") minors=%" PRIu64 " sensitive=%" PRIu64
		" invalid_identifier=%" PRIu64 " geo_withheld=%" PRIu64 "%s",
		st->in, r->produced, r->dead_lettered, r->dropped,
		st->dropped[KN_DROP_NO_ANALYTICS], st->dropped[KN_DROP_NO_ADS],
		st->dropped[KN_DROP_ERASED], st->dropped[KN_DROP_MINOR], ps->minors, ps->sensitive,
		invalid, st->geo_withheld, dead);
}

static void publish(struct run *r)
{
	struct kn_metrics_snapshot *s = &r->snap;

	if (!r->metrics)
		return;
	if (r->acked != r->acked_seen) { /* progress since the last batch */
		r->acked_seen = r->acked;
		r->last_progress = kn_mono_ms();
	}
	s->pipe = *kn_pipeline_stats(r->pipe);
	s->policy = *kn_pipeline_policy_stats(r->pipe);
	s->produced = r->produced;
	s->dead_lettered = r->dead_lettered;
	s->trace = *kn_trace_stats(r->trace);
	s->assigned = kn_source_assigned(r->src);
	s->consumer_lag = kn_source_lag(r->src);
	s->last_progress_ms = r->last_progress > kn_source_last_commit(r->src)
				      ? r->last_progress
				      : kn_source_last_commit(r->src);
	s->work_pending = kn_offsets_in_flight(r->offs) > 0 || s->consumer_lag > 0;
	s->stall_ms = r->cfg->stall_timeout_ms;
	s->healthy = false;
	if (r->failed[0] || kn_sink_error(r->sink))
		snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "producer: %.140s",
			 r->failed[0] ? r->failed : kn_sink_error(r->sink));
	else if (!kn_source_healthy(r->src))
		snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "consumer: fatal error");
	else if (!s->assigned)
		snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason),
			 "no input partition assigned");
	else
		s->healthy = true;
	kn_metrics_publish(r->metrics, s);
}

/* --until-eof and no partition: wait out a rebalance or an outage for
 * run.assignment_wait (longer than the session timeout, so a crashed
 * predecessor's partitions come back in time), then say what happened. */
static bool assignment_given_up(struct run *r)
{
	int64_t since = kn_source_unassigned_since(r->src);
	char why[400];

	if (!since || kn_mono_ms() - since < r->cfg->assign_wait_ms)
		return false;
	kn_source_diagnose(r->src, why, sizeof(why));
	snprintf(r->failed, sizeof(r->failed),
		 "--until-eof: no input partition %s for %lld s (run.assignment_wait): %s",
		 kn_source_ever_assigned(r->src) ? "assigned again" : "assigned",
		 (long long)(r->cfg->assign_wait_ms / 1000), why);
	return true;
}

static int loop(struct run *r, const struct kn_run_opts *o)
{
	int64_t last_commit = kn_mono_ms(), last_keys = 0, seen = 0;
	int err = 0;

	while (!kn_stop_requested() && !r->failed[0] && !kn_sink_error(r->sink)) {
		if (kn_mono_ms() - last_keys >= KN_KEYS_CHECK_MS) {
			if (kn_run_maintain_keys(r->st.keys, r->cfg, r->failed, sizeof(r->failed)))
				break;
			last_keys = kn_mono_ms();
		}
		int n = kn_source_poll_batch(r->src, r->batch, (int)r->cfg->batch_size, 100);
		int64_t t0 = kn_mono_us();
		err = process_batch(r, n);
		if (n)
			kn_hist_add(&r->snap.batch, kn_mono_us() - t0);
		publish(r);
		if (err)
			break;
		seen += n;
		kn_sink_poll(r->sink, 0);
		if (r->st.erasure && kn_erasure_poll(r->st.erasure)) {
			snprintf(r->failed, sizeof(r->failed), "%s",
				 kn_erasure_error(r->st.erasure));
			break;
		}
		if (kn_mono_ms() - last_commit >= r->cfg->commit_interval_ms) {
			commit(r, 0);
			last_commit = kn_mono_ms();
		}
		if (o->max_messages && seen >= o->max_messages)
			break;
		if (o->until_eof && assignment_given_up(r))
			break;
		if (o->until_eof && n == 0 && kn_source_at_eof(r->src) &&
		    !kn_sink_flush(r->sink, kn_mono_ms() + KN_RUN_SHUTDOWN_MS) &&
		    kn_offsets_in_flight(r->offs) == 0)
			break;
	}
	return err;
}

/* The way out: deliver what is queued and commit what was delivered, within
 * KN_RUN_SHUTDOWN_MS and the stop's drain deadline. Returns 0 when every
 * record consumed was delivered and committed, else -ECANCELED (the next
 * run redoes the rest). */
static int drain(struct run *r)
{
	int64_t until = kn_mono_ms() + KN_RUN_SHUTDOWN_MS;
	int ferr = kn_sink_flush(r->sink, until);
	int cerr = commit(r, until);
	size_t open = kn_offsets_in_flight(r->offs);

	/* Only a broker that answered is worth a LeaveGroup: one that does not
	 * would hold the close for 5 s (kn_kafka_close). */
	r->leave = !ferr && !cerr;
	if (!open && !cerr)
		return 0;
	kn_warn("run",
		"stopping with %zu record(s) not yet delivered%s: the next run redoes them "
		"(nothing is lost)",
		open, cerr ? " and the last offsets not committed" : "");
	return -ECANCELED;
}

int kn_run(const struct kn_config *c, const struct kn_run_opts *o, char *errstr, size_t errstr_size)
{
	struct run *r = kn_calloc(1, sizeof(*r));
	int err;

	if (!r) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	/* The endpoint first: /healthz says "starting" while Kafka connects. */
	err = o->metrics_addr ? kn_metrics_start(o->metrics_addr, &r->metrics, errstr, errstr_size)
			      : 0;
	if (!err)
		err = setup(r, c, errstr, errstr_size);
	if (err == -ECANCELED) { /* stopped before the first record: nothing to redo */
		kn_info("run", "stopped while starting");
		err = 0;
	}
	if (err || kn_stop_requested())
		goto out;
	kn_info("run", "consuming %d topic(s) as group '%s', writing '%s' (dead letters '%s')",
		c->n_inputs, c->group_id, c->topic_output, c->topic_dead_letter);
	err = loop(r, o);
	int drained = drain(r);
	log_stats(r);
	if (!err && (r->failed[0] || kn_sink_error(r->sink))) {
		snprintf(errstr, errstr_size, "%s",
			 r->failed[0] ? r->failed : kn_sink_error(r->sink));
		err = -EIO;
	} else if (err && err != -ECANCELED) {
		snprintf(errstr, errstr_size, "%s",
			 kn_sink_error(r->sink) ? kn_sink_error(r->sink) : "produce failed");
	} else {
		err = drained;
		if (err)
			snprintf(errstr, errstr_size,
				 "stopped before all consumed records were delivered and "
				 "committed; they are redone on restart");
	}
	if (o->stats)
		*o->stats = *kn_pipeline_stats(r->pipe);
out:
	kn_stop_settle(kn_run_exit_code(err)); /* whatever the teardown does now */
	teardown(r);
	kn_free(r);
	return err;
}

int kn_run_exit_code(int err)
{
	switch (err) {
	case 0:
		return KN_EXIT_OK;
	case KN_RUN_ABANDONED:
		return KN_EXIT_ABANDONED;
	case KN_RUN_FENCED:
		return KN_EXIT_FENCED;
	default:
		return KN_EXIT_FAILURE;
	}
}
