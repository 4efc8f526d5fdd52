#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "avrobin.h"
#include "clock.h"
#include "engine.h"
#include "erasure.h"
#include "kn_alloc.h"
#include "log.h"
#include "sreg.h"
#include "stage.h"
#include "stop.h"
#include "workers.h"

/* ---- what every front end opens ---- */

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

void kn_stack_close(struct kn_stack *s)
{
	kn_erasure_destroy(s->erasure);
	kn_pipeline_destroy(s->pipe);
	kn_schemas_destroy(s->schemas);
	kn_keys_destroy(s->keys);
	memset(s, 0, sizeof(*s));
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

struct kn_agg_def *kn_agg_defs_from_config(const struct kn_config *c)
{
	struct kn_agg_def *defs = kn_calloc((size_t)(c->n_aggs ? c->n_aggs : 1), sizeof(*defs));

	for (int i = 0; defs && i < c->n_aggs; i++)
		defs[i] = (struct kn_agg_def){c->aggs[i].name, c->aggs[i].dims,
					      (int)c->aggs[i].geo_precision, c->aggs[i].k};
	return defs;
}

struct kn_aggregator *kn_aggregator_from_config(const struct kn_config *c,
						const struct kn_agg_def *defs, int n_parts,
						const struct kn_keys *keys, int stage)
{
	struct kn_agg_opts ao = {.window_ms = c->agg_window_ms,
				 .lateness_ms = c->agg_lateness_ms,
				 .max_events_per_person = c->agg_max_events,
				 .max_groups_per_person = c->agg_max_groups,
				 .mode = (enum kn_agg_mode)c->agg_mode,
				 .dp = c->agg_dp,
				 .noise_keys = keys,
				 .scope = c->release_scope,
				 .person = (enum kn_id_kind)c->agg_person,
				 .epoch_ms = c->epoch_ms,
				 .max_state_bytes = c->agg_max_state_bytes,
				 .n_partitions = n_parts,
				 .stage = (enum kn_agg_stage)stage};
	return kn_aggregator_new(defs, c->n_aggs, &ao);
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

/* ---- one batch ---- */

int kn_engine_send(struct kn_engine *e, int i, uint64_t token)
{
	const struct kn_rec *r = &e->b->rec[i];
	const struct kn_msg *m = kn_engine_msg(e, i);
	bool payload = e->cfg->dlq_include_payload;
	int err;

	if (r->state == KN_REC_OUT) {
		err = kn_producer_send_wait(e->out, e->t_out, r->key_len ? r->key : NULL,
					    r->key_len, e->b->arena + r->out_off, r->out_len,
					    r->out_ts, NULL, token);
		e->produced += !err;
		return err;
	}
	struct kn_dead_letter dl = {.reason = kn_dead_reason_name(r->v.reason),
				    .detail = r->v.detail,
				    .src_topic = m->topic,
				    .src_partition = m->partition,
				    .src_offset = m->offset,
				    .schema_id = r->v.schema_id};
	/* An empty value, not a null one: a null value is a tombstone, which
	 * compaction of the dead-letter topic would remove. */
	err = kn_producer_send_wait(e->out, e->t_dlq, NULL, 0,
				    payload && m->payload ? (const void *)m->payload : "",
				    payload && m->payload ? m->len : 0, 0, &dl, token);
	e->dead += !err;
	return err;
}

/* The share of a partition: all its records go to one worker. */
static int worker_of(const struct kn_engine *e, const struct kn_msg *m)
{
	return e->n_wk == 1 ? 0
			    : (int)(((uint32_t)m->topic_idx * 1031u + (uint32_t)m->partition) %
				    (uint32_t)e->n_wk);
}

/* Splits the batch's records into the workers' shares; returns the
 * earliest Kafka timestamp among them (0: none) and *total. */
static int64_t gather(struct kn_engine *e, int n, int *total)
{
	int64_t min_ts = INT64_MAX, now = kn_wall_ms(); /* one clock read per batch */

	for (int w = 0; w < e->n_wk; w++)
		e->wk[w].b->n = 0;
	*total = 0;
	for (int i = 0; i < n; i++) {
		const struct kn_msg *m = &e->msgs[i];
		int part = -1;
		if (m->eof || !e->mode->accept(e, m, &part))
			continue;
		struct kn_worker *wk = &e->wk[worker_of(e, m)];
		struct kn_batch *b = wk->b;
		wk->msg_of[b->n] = i;
		wk->part_of[b->n] = part;
		b->rec[b->n++] = (struct kn_rec){
			.msg = m->payload,
			.len = m->len,
			.expected_type =
				m->topic_idx >= 0 ? (int)e->cfg->inputs[m->topic_idx].type : -1,
			.ref_ms = m->ts_ms ? m->ts_ms : now};
		(*total)++;
		if (m->ts_ms && m->ts_ms < min_ts)
			min_ts = m->ts_ms;
	}
	return min_ts == INT64_MAX ? 0 : min_ts;
}

/* ---- the pipeline steps, on every worker ---- */

static void step_decode(void *arg, int w)
{
	struct kn_worker *wk = &((struct kn_engine *)arg)->wk[w];

	wk->count = wk->b->n ? kn_pipeline_decode(wk->pipe, wk->b) : 0;
}

static void step_admit(void *arg, int w)
{
	struct kn_worker *wk = &((struct kn_engine *)arg)->wk[w];

	wk->count = wk->b->n ? kn_pipeline_admit(wk->pipe, wk->b) : 0;
}

static void step_deidentify(void *arg, int w)
{
	struct kn_worker *wk = &((struct kn_engine *)arg)->wk[w];

	wk->count = wk->b->n ? kn_pipeline_deidentify(wk->pipe, wk->b) : 0;
}

/* Runs one step on every worker; returns the records it left live. */
static uint32_t step(struct kn_engine *e, kn_work_fn *fn)
{
	uint32_t n = 0;

	kn_workers_run(e->pool, fn, e);
	for (int w = 0; w < e->n_wk; w++)
		n += (uint32_t)e->wk[w].count;
	return n;
}

/* Makes worker w's share the current one (engine.h). */
static void share(struct kn_engine *e, int w)
{
	e->b = e->wk[w].b;
	e->msg_of = e->wk[w].msg_of;
	e->part_of = e->wk[w].part_of;
}

static void publish(struct kn_engine *e);

/* What a wait for the registry ended with, besides 0 and an error. */
#define KN_BATCH_STOPPED 1

/* Waits ms while the loop's other duties go on: delivery reports, the
 * strategy's commits of the work done before (and exactly-once's heartbeat
 * transactions), metrics. Returns 0, KN_BATCH_STOPPED or the strategy's
 * error. */
static int pause_ms(struct kn_engine *e, int64_t ms)
{
	int err = 0;

	for (int64_t end = kn_mono_ms() + ms; !err && kn_mono_ms() < end;) {
		if (kn_stop_requested())
			return KN_BATCH_STOPPED;
		kn_producer_poll(e->out, 100);
		err = e->mode->tick(e);
		publish(e);
	}
	return err ? err : kn_stop_requested() ? KN_BATCH_STOPPED : 0;
}

/* Asks the registry about id until it answers: 0, -ENOENT (it lacks id),
 * KN_BATCH_STOPPED or an error. Meanwhile the records wait. */
static int ask(struct kn_engine *e, int32_t id)
{
	int64_t pause = 100;
	char errstr[600];
	int err;

	while ((err = kn_sreg_learn(e->reg, e->st.schemas, id, errstr, sizeof(errstr))) ==
	       -EAGAIN) {
		if (!e->registry_down_since) {
			kn_warn("registry", "%s: records of schema id %d wait", errstr, (int)id);
			e->registry_down_since = kn_mono_ms();
		}
		if ((err = pause_ms(e, pause)))
			return err;
		pause = pause * 2 > 5000 ? 5000 : pause * 2;
	}
	if (e->registry_down_since)
		kn_info("registry", "answering again after %lld ms",
			(long long)(kn_mono_ms() - e->registry_down_since));
	e->registry_down_since = 0;
	return err;
}

/* A framing id that is neither known nor refused for now. */
static bool unknown_id(struct kn_engine *e, const struct kn_msg *m, int32_t *id)
{
	int64_t v = m->eof ? -1 : kn_frame_get(m->payload, m->len);
	const struct kn_schema_entry *s;

	if (v < 0 || v > INT32_MAX)
		return false;
	*id = (int32_t)v;
	s = kn_schemas_find(e->st.schemas, *id);
	return !s || (s->retry_at_ms && kn_mono_ms() >= s->retry_at_ms);
}

/* Learns the framing ids of the batch that no one has told us about yet,
 * before any worker looks. Ids the registry lacks are asked about once more
 * after a short pause (a replica may lag), then refused for a while: their
 * records become dead letters. Returns 0, KN_BATCH_STOPPED (the batch is
 * left undone, so its input is redone after a restart) or an error. */
static int learn_ids(struct kn_engine *e, int n)
{
	int32_t missing[64], id;
	int n_missing = 0, err = 0;

	for (int i = 0; i < n && !err; i++) {
		bool seen = false;
		if (!unknown_id(e, &e->msgs[i], &id))
			continue;
		for (int k = 0; k < n_missing; k++)
			seen |= missing[k] == id;
		if (!seen && (err = ask(e, id)) == -ENOENT) {
			err = 0;
			if (n_missing < (int)(sizeof(missing) / sizeof(missing[0])))
				missing[n_missing++] = id;
			else
				kn_schemas_refuse(e->st.schemas, id, "not in registry",
						  kn_mono_ms() + KN_SREG_RETRY_MS);
		}
	}
	if (!err && n_missing)
		err = pause_ms(e, KN_SREG_NOT_FOUND_GRACE_MS);
	for (int k = 0; k < n_missing && !err; k++)
		if ((err = ask(e, missing[k])) == -ENOENT) {
			kn_warn("registry",
				"schema id %d is not in the registry: its records go to the "
				"dead-letter topic (asked again in %d s)",
				(int)missing[k], KN_SREG_RETRY_MS / 1000);
			err = kn_schemas_refuse(e->st.schemas, missing[k], "not in registry",
						kn_mono_ms() + KN_SREG_RETRY_MS);
		}
	if (err == -ENOMEM)
		snprintf(e->err, sizeof(e->err), "out of memory learning a schema id");
	return err;
}

/* n consumed messages through every step, each step's end marked; *total:
 * the records among them. */
static int process_batch(struct kn_engine *e, int n, int *total)
{
	struct kn_tspan span;
	uint32_t queued = 0, added = 0;
	int64_t min_ts;
	int err = 0, a;

	*total = 0;
	if (e->reg && (err = learn_ids(e, n)))
		return err; /* KN_BATCH_STOPPED: nothing of this batch is committed */
	min_ts = gather(e, n, total);
	if (!*total)
		return 0;
	kn_trace_begin(e->trace, &span, (uint32_t)*total, min_ts);
	kn_trace_mark(e->trace, &span, KN_STAGE_DECODE, step(e, step_decode));
	kn_trace_mark(e->trace, &span, KN_STAGE_POLICY, step(e, step_admit));
	kn_trace_mark(e->trace, &span, KN_STAGE_DEID, step(e, step_deidentify));
	if (e->cfg->n_aggs && e->mode->aggregate) {
		for (int w = 0; w < e->n_wk; w++) {
			share(e, w);
			if ((a = e->mode->aggregate(e, &added)) < 0)
				return a;
		}
		kn_trace_mark(e->trace, &span, KN_STAGE_AGGREGATE, added);
	}
	for (int w = 0; w < e->n_wk && !err; w++) {
		share(e, w);
		err = e->mode->emit(e, kn_trace_tag(&span), &queued);
	}
	kn_trace_mark(e->trace, &span, KN_STAGE_PRODUCE, queued);
	kn_trace_await(e->trace, &span, queued);
	return err;
}

/* The pipeline's counters over every worker. */
static void pipeline_stats(const struct kn_engine *e, struct kn_pipeline_stats *ps,
			   struct kn_policy_stats *pol)
{
	*ps = *kn_pipeline_stats(e->st.pipe);
	*pol = *kn_pipeline_policy_stats(e->st.pipe);
	for (int w = 1; w < e->n_wk; w++) {
		kn_pipeline_stats_add(ps, kn_pipeline_stats(e->wk[w].pipe));
		kn_policy_stats_add(pol, kn_pipeline_policy_stats(e->wk[w].pipe));
	}
}

/* ---- observation ---- */

static void publish(struct kn_engine *e)
{
	struct kn_metrics_snapshot *s = &e->snap;

	if (!e->metrics)
		return;
	pipeline_stats(e, &s->pipe, &s->policy);
	s->produced = e->produced;
	s->dead_lettered = e->dead;
	s->trace = *kn_trace_stats(e->trace);
	s->stall_ms = e->cfg->stall_timeout_ms;
	/* The aggregates' own counters come from their stages (metrics.c sums
	 * them); the strategy's health() adds what this loop counts. */
	if ((s->aggregating = e->cfg->n_aggs > 0)) {
		s->agg_dp = e->cfg->agg_mode == KN_AGG_DP;
		s->agg_epsilon = e->cfg->agg_dp.epsilon;
		s->agg_delta = e->cfg->agg_dp.delta;
	}
	e->mode->health(e, s);
	s->registry = e->reg != NULL;
	s->registry_waiting_ms = e->registry_down_since ? kn_mono_ms() - e->registry_down_since : 0;
	s->schema_ids_learned =
		(uint64_t)(kn_schemas_total(e->st.schemas) - kn_schemas_count(e->st.schemas));
	if (e->registry_down_since &&
	    kn_mono_ms() - e->registry_down_since >= e->cfg->stall_timeout_ms) {
		s->healthy = false;
		snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason),
			 "the schema registry does not answer: records wait");
	}
	kn_metrics_publish(e->metrics, s);
}

static void log_stats(struct kn_engine *e)
{
	struct kn_pipeline_stats pst, *st = &pst;
	struct kn_policy_stats pol, *ps = &pol;
	char dead[512] = "", more[768] = "";
	uint64_t invalid = 0;
	size_t off = 0;

	pipeline_stats(e, st, ps);
	for (int i = 0; i < KN_DEAD_REASONS; i++)
		if (st->dead[i] && off < sizeof(dead))
			off += (size_t)snprintf(dead + off, sizeof(dead) - off, " %s=%" PRIu64,
						kn_dead_reason_name(i), st->dead[i]);
	for (int k = 0; k < KN_ID_KINDS; k++)
		invalid += st->invalid_id[k];
	e->mode->log_stats(e, more, sizeof(more));
	kn_info("run",
		"workers=%d consumed=%" PRIu64 " deid=%" PRIu64 " dead_letter=%" PRIu64
		" dropped=%" PRIu64 " (no_analytics_consent=%" PRIu64 " no_ads_consent=%" PRIu64
		" erased=%" PRIu64 " minor=%" PRIu64 ") minors=%" PRIu64 " sensitive=%" PRIu64
		" invalid_identifier=%" PRIu64 " geo_withheld=%" PRIu64 "%s%s",
		e->n_wk, st->in, e->produced, e->dead, e->dropped,
		st->dropped[KN_DROP_NO_ANALYTICS], st->dropped[KN_DROP_NO_ADS],
		st->dropped[KN_DROP_ERASED], st->dropped[KN_DROP_MINOR], ps->minors, ps->sensitive,
		invalid, st->geo_withheld, dead, more);
}

/* ---- the loop ---- */

/* Runs batches until a stop, an error, or (--until-eof, --max-messages) the
 * end; *drained: the input was read to its end. */
static int loop(struct kn_engine *e, bool *drained)
{
	const struct kn_run_opts *o = e->o;
	int64_t last_keys = 0, seen = 0;
	int err = 0;

	while (!err && !kn_stop_requested()) {
		if (kn_mono_ms() - last_keys >= KN_KEYS_CHECK_MS) {
			if ((err = kn_run_maintain_keys(e->st.keys, e->cfg, e->err,
							sizeof(e->err))))
				break;
			last_keys = kn_mono_ms();
		}
		int n = kn_consumer_poll(e->in, e->msgs, (int)e->cfg->batch_size, 100), records;
		int64_t t0 = kn_mono_us();
		err = process_batch(e, n, &records);
		if (err == KN_BATCH_STOPPED) {
			/* Left undone: none of it, its ends included, counts as read. */
			kn_consumer_release(e->in, e->msgs, n);
			err = 0;
			break;
		}
		for (int i = 0; i < n; i++)
			if (e->msgs[i].eof)
				e->mode->eof(e, &e->msgs[i]);
		kn_consumer_release(e->in, e->msgs, n);
		if (records)
			kn_hist_add(&e->snap.batch, kn_mono_us() - t0);
		publish(e);
		if (err)
			break;
		seen += records;
		kn_producer_poll(e->out, 0);
		if (e->st.erasure && kn_erasure_poll(e->st.erasure)) {
			snprintf(e->err, sizeof(e->err), "%s", kn_erasure_error(e->st.erasure));
			err = -EIO;
		} else if (!(err = e->mode->tick(e))) {
			if (o->max_messages && seen >= o->max_messages)
				break;
			if (o->until_eof && e->mode->gave_up(e))
				err = -EIO;
			else if (o->until_eof && !records && (*drained = e->mode->drained(e)))
				break;
		}
	}
	return err;
}

/* Fenced: another instance does the work now. Stay up, saying so on
 * /healthz, until asked to stop: exiting would have a supervisor restart
 * this instance, which would fence the other one in turn. */
static void stand_by(struct kn_engine *e)
{
	kn_err("run", "%s; standing by until stopped (exit code %d)", e->err, KN_EXIT_FENCED);
	while (!kn_stop_requested()) {
		publish(e);
		kn_producer_poll(e->out, 200);
	}
}

/* The workers: worker 0 runs the stack's pipeline on the loop's thread,
 * every other one a pipeline of its own (same schemas, keys, erasure). */
static int start_workers(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	int n = c->workers ? (int)c->workers : kn_workers_default();
	size_t cap = (size_t)c->batch_size;

	if (!(e->wk = kn_calloc((size_t)n, sizeof(*e->wk))))
		return -ENOMEM;
	e->n_wk = n;
	for (int w = 0; w < n; w++) {
		struct kn_worker *wk = &e->wk[w];
		/* A share can be the whole batch: one partition, one worker. */
		wk->b = kn_batch_new((int)cap, c->n_aggs > 0); /* the aggregates read b->deid */
		wk->msg_of = kn_calloc(cap, sizeof(*wk->msg_of));
		wk->part_of = kn_calloc(cap, sizeof(*wk->part_of));
		if (!wk->b || !wk->msg_of || !wk->part_of)
			return -ENOMEM;
		wk->pipe = w ? kn_pipeline_new(c, e->st.schemas, e->st.keys, errstr, errsz)
			     : e->st.pipe;
		if (!wk->pipe)
			return -ENOMEM;
		if (w && e->st.erasure)
			kn_pipeline_set_erasure(wk->pipe, e->st.erasure);
	}
	return kn_workers_new(n, &e->pool);
}

static int setup(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	int err = kn_stack_open(c, KN_STACK_MAINTAIN | KN_STACK_ERASURE, &e->st, errstr, errsz);

	if (err || (err = kn_sreg_open(c, &e->reg, errstr, errsz)))
		return err;
	e->msgs = kn_calloc((size_t)c->batch_size, sizeof(*e->msgs));
	e->trace = kn_trace_new();
	if (!e->msgs || !e->trace || (err = start_workers(e, errstr, errsz))) {
		snprintf(errstr, errsz, "out of memory (or no thread) for %d worker(s)", e->n_wk);
		return err ? err : -ENOMEM;
	}
	return e->mode->start(e, errstr, errsz);
}

static void stop_workers(struct kn_engine *e)
{
	/* Joined first: the threads' key caches go with them (keys.c). */
	kn_workers_destroy(e->pool);
	for (int w = 0; w < e->n_wk; w++) {
		if (w)
			kn_pipeline_destroy(e->wk[w].pipe);
		kn_batch_destroy(e->wk[w].b);
		kn_free(e->wk[w].msg_of);
		kn_free(e->wk[w].part_of);
	}
	kn_free(e->wk);
}

/* Every engine whose producer was walked away from mid-transaction: its
 * delivery callback may still run on that call's thread, so the engine and
 * its trace stay alive (and reachable from here) until the process exits. */
static struct kn_engine *orphans[4];

static void teardown(struct kn_engine *e)
{
	/* Leaving the group may call the revoke hook, which needs the producer. */
	kn_consumer_close(e->in, e->leave, kn_mono_ms() + KN_RUN_SHUTDOWN_MS);
	bool orphaned = e->out && kn_producer_orphaned(e->out);
	kn_producer_destroy(e->out, 0);
	if (e->m)
		e->mode->destroy(e);
	stop_workers(e);
	kn_registry_destroy(e->reg);
	kn_stack_close(&e->st);
	kn_free(e->msgs);
	if (orphaned) {
		for (size_t i = 0; i < sizeof(orphans) / sizeof(orphans[0]); i++)
			if (!orphans[i] && (orphans[i] = e))
				return;
		return;
	}
	kn_trace_destroy(e->trace);
	kn_free(e);
}

/* The de-identification stage: the one run loop. */
static int run_deid(const struct kn_config *c, const struct kn_run_opts *o,
		    struct kn_metrics *metrics, char *errstr, size_t errstr_size)
{
	struct kn_engine *e = kn_calloc(1, sizeof(*e));
	bool drained = false;
	int err;

	if (!e) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	e->cfg = c;
	e->o = o;
	e->mode = c->exactly_once ? &kn_mode_eos : &kn_mode_alo;
	e->last_progress = kn_mono_ms();
	e->metrics = metrics;
	err = setup(e, errstr, errstr_size);
	if (err == -ECANCELED) { /* stopped before the first record: nothing to redo */
		kn_info("run", "stopped while starting");
		err = 0;
	} else if (!err) {
		err = loop(e, &drained);
		err = e->mode->finish(e, err, drained);
		kn_stop_settle(kn_run_exit_code(err)); /* whatever the teardown does now */
		log_stats(e);
		if (err == KN_RUN_FENCED && !o->until_eof)
			stand_by(e);
		if (err)
			snprintf(errstr, errstr_size, "%s", e->err[0] ? e->err : "failed");
		if (o->stats) {
			struct kn_policy_stats pol;
			pipeline_stats(e, o->stats, &pol);
		}
	}
	teardown(e); /* frees e */
	return err;
}

/* A stage of the aggregates on a thread of its own (run.role all). */
struct stage_thread {
	pthread_t t;
	const struct kn_config *c;
	const struct kn_run_opts *o;
	struct kn_metrics *metrics;
	enum kn_run_role role;
	int err;
	char errstr[512];
};

static void *stage_main(void *arg)
{
	struct stage_thread *st = arg;

	st->err = kn_stage_run(st->c, st->role, st->o, st->metrics, st->errstr, sizeof(st->errstr));
	/* A stage that failed takes the process down with it, so the
	 * supervisor restarts all of it; one that finished (--until-eof) does
	 * not. */
	if (st->err && st->err != -ECANCELED) {
		kn_stop_settle(kn_run_exit_code(st->err));
		kn_stop_request();
	}
	return NULL;
}

/* run.role all: bound and release on threads of their own, deid here. */
static int run_all(const struct kn_config *c, const struct kn_run_opts *o,
		   struct kn_metrics *metrics, char *errstr, size_t errstr_size)
{
	struct stage_thread st[2] = {{.c = c, .o = o, .metrics = metrics, .role = KN_RUN_BOUND},
				     {.c = c, .o = o, .metrics = metrics, .role = KN_RUN_RELEASE}};
	int started = 0, err = 0;

	for (; started < 2; started++)
		if (pthread_create(&st[started].t, NULL, stage_main, &st[started])) {
			snprintf(errstr, errstr_size, "no thread for the %s stage",
				 started ? "release" : "bound");
			kn_stop_request();
			err = -EAGAIN;
			break;
		}
	if (!err)
		err = run_deid(c, o, metrics, errstr, errstr_size);
	if (err && err != KN_RUN_ABANDONED)
		kn_stop_request(); /* the stages stop too; their work is redone on restart */
	for (int i = 0; i < started; i++) {
		pthread_join(st[i].t, NULL);
		if (!err && st[i].err) {
			err = st[i].err;
			snprintf(errstr, errstr_size, "%s", st[i].errstr);
		}
	}
	return err;
}

/* With a registry, the run uses a copy of c whose output ids are the
 * registry's (sreg.h). */
static int output_ids(const struct kn_config *c, int role, struct kn_config *ids, char *errstr,
		      size_t errstr_size)
{
	struct kn_registry *reg;
	int err = kn_sreg_open(c, &reg, errstr, errstr_size);

	*ids = *c; /* shallow: c owns every string, and outlives the run */
	if (!err && reg)
		err = kn_sreg_outputs(reg, c, role, false, ids, errstr, errstr_size);
	kn_registry_destroy(reg);
	return err;
}

int kn_run(const struct kn_config *conf, const struct kn_run_opts *o, char *errstr,
	   size_t errstr_size)
{
	struct kn_metrics *metrics = NULL;
	int role = conf->n_aggs ? conf->role : KN_RUN_DEID, err;
	struct kn_config ids, *c = &ids;

	/* The endpoint first: /healthz says "starting" while Kafka connects. */
	err = o->metrics_addr ? kn_metrics_start(o->metrics_addr, &metrics, errstr, errstr_size)
			      : 0;
	if (!err && (err = output_ids(conf, role, &ids, errstr, errstr_size)) == -ECANCELED) {
		kn_info("run", "stopped while starting");
		err = 0;
	} else if (!err) {
		if (role == KN_RUN_BOUND || role == KN_RUN_RELEASE)
			err = kn_stage_run(c, (enum kn_run_role)role, o, metrics, errstr,
					   errstr_size);
		else if (role == KN_RUN_ALL)
			err = run_all(c, o, metrics, errstr, errstr_size);
		else
			err = run_deid(c, o, metrics, errstr, errstr_size);
	}
	kn_stop_settle(kn_run_exit_code(err));
	kn_metrics_stop(metrics);
	return err;
}
