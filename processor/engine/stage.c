#include "stage.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "aggregate.h"
#include "avrobin.h"
#include "clock.h"
#include "consumer.h"
#include "encode.h"
#include "eos.h"
#include "exchange.h"
#include "keys.h"
#include "kn_alloc.h"
#include "log.h"
#include "stop.h"
#include "trace.h"

#define START_TIMEOUT_MS  30000
#define MARK_HEARTBEAT_MS 10000 /* an unchanged mark is repeated this often */
#define META_MAX	  4000	/* below the broker's offset.metadata.max.bytes */
#define MAX_PARTS	  10000

/* One partition of the consumed internal topic. */
struct spart {
	bool mine, eof;
	struct kn_aggregator *agg; /* while mine */
	int64_t position;	   /* next offset to read; -1: from the start */
	/* bound: the mark last sent downstream for this partition */
	bool marked;
	int64_t marked_wm, marked_at;
	enum kn_part_state marked_state;
};

struct stage {
	const struct kn_config *c;
	const struct kn_run_opts *o;
	enum kn_run_role role;
	const char *name;     /* "bound" | "release" */
	const char *topic_in; /* what it consumes */
	struct kn_keys *keys; /* the noise key (release) */
	struct kn_agg_def *defs;
	struct kn_consumer *in;
	struct kn_producer *out;
	int n_parts; /* of topic_in */
	int n_up;    /* upstream partitions: input (bound), contributions (release) */
	int n_down;  /* bound: partial-tallies partitions */
	int t_next, t_agg, t_stats, t_dlq;
	struct spart *parts;
	struct kn_tp *tps;
	char (*meta)[META_MAX];
	int64_t *mts; /* scratch: n_up stream times and states */
	enum kn_part_state *mst;
	struct kn_msg *msgs;
	struct kn_metrics *metrics;
	struct kn_stage_snapshot snap;
	uint8_t buf[KN_FRAME_LEN + KN_AGG_MAX_BYTES + KN_XCH_MAX_BYTES];
	int out_err;  /* first failure writing inside the open transaction */
	int hook_err; /* a failure inside a rebalance */
	bool dirty, warned_up;
	int64_t last_cycle, last_progress;
	uint64_t records, dead, written, summaries, transactions, aborted;
	uint64_t records_cycled; /* records at the last cycle's start */
	uint64_t peak_state;	 /* the most open-window state seen at a cycle */
	char err[512];
};

/* ---- the topology's names and partitioning ---- */

static const char *role_name(enum kn_run_role r)
{
	return r == KN_RUN_BOUND ? "bound" : r == KN_RUN_RELEASE ? "release" : "deid";
}

void kn_topology_txn_id(const struct kn_config *c, enum kn_run_role stage, char *buf, size_t n)
{
	if (c->role == KN_RUN_ALL && stage == KN_RUN_DEID)
		snprintf(buf, n, "%s", c->transactional_id);
	else if (c->role == KN_RUN_ALL)
		snprintf(buf, n, "%s-%s", c->transactional_id, role_name(stage));
	else
		snprintf(buf, n, "%s-%s-%s", c->transactional_id, role_name(stage), c->instance);
}

void kn_topology_group(const struct kn_config *c, enum kn_run_role stage, char *buf, size_t n)
{
	if (stage == KN_RUN_DEID)
		snprintf(buf, n, "%s", c->group_id);
	else
		snprintf(buf, n, "%s.%s", c->group_id, role_name(stage));
}

int kn_topology_ensure(struct kn_producer *p, const struct kn_config *c, char *errstr, size_t errsz)
{
	char retention[32];
	const char *conf[] = {"cleanup.policy", "delete", "retention.ms", retention, NULL};

	snprintf(retention, sizeof(retention), "%lld", (long long)c->internal_retention_ms);
	struct kn_new_topic t[] = {{c->contrib_topic, (int)c->contrib_partitions, conf},
				   {c->partials_topic, (int)c->partials_partitions, conf}};
	return kn_producer_ensure_topics(p, t, 2, kn_mono_ms() + START_TIMEOUT_MS, errstr, errsz);
}

int32_t kn_topology_person_partition(uint64_t person, int n)
{
	return (int32_t)(XXH3_64bits(&person, sizeof(person)) % (uint64_t)n);
}

int32_t kn_topology_group_partition(const char *def, int64_t window_start, int n)
{
	uint64_t h = XXH3_64bits_withSeed(def, strlen(def), (uint64_t)window_start);

	return (int32_t)(h % (uint64_t)n);
}

static int check_topic(struct kn_producer *p, const struct kn_config *c, const char *topic,
		       int64_t want_parts, const char *opt, char *errstr, size_t errsz)
{
	struct kn_topic_info ti;
	int64_t min_ms = c->agg_window_ms + c->agg_lateness_ms + 3600 * 1000LL;
	/* check --kafka: a broker that is down is said within 10 s */
	int err = kn_producer_describe_topic(p, topic, &ti, kn_mono_ms() + 10000, errstr, errsz);

	if (err)
		return err;
	if (!ti.exists) {
		kn_info("check", "%s: missing; created at start with %lld partition(s)", topic,
			(long long)want_parts);
		return 0;
	}
	if (strstr(ti.cleanup_policy, "compact")) {
		snprintf(errstr, errsz,
			 "%s: cleanup.policy=%s: compaction would drop contributions of open "
			 "windows (it must be delete)",
			 topic, ti.cleanup_policy);
		return -EINVAL;
	}
	if (ti.retention_ms >= 0 && ti.retention_ms < min_ms) {
		snprintf(errstr, errsz,
			 "%s: retention.ms=%lld is shorter than a window plus its lateness plus an "
			 "hour (%lld): open windows would lose their records",
			 topic, (long long)ti.retention_ms, (long long)min_ms);
		return -EINVAL;
	}
	if (ti.partitions != want_parts)
		kn_warn("check",
			"%s has %d partition(s), %s says %lld: the topic's count is used; to "
			"change "
			"it, drain the topology (--until-eof) and recreate the topic",
			topic, ti.partitions, opt, (long long)want_parts);
	else
		kn_info("check", "%s: %d partition(s), cleanup.policy=%s, retention.ms=%lld: ok",
			topic, ti.partitions, ti.cleanup_policy, (long long)ti.retention_ms);
	return 0;
}

int kn_topology_check(const struct kn_config *c, char *errstr, size_t errsz)
{
	struct kn_producer_opts po = {KN_CLIENT_PRODUCER, NULL, NULL, NULL};
	struct kn_producer *p;
	int err = kn_producer_new(c, &po, &p, errstr, errsz);

	if (err)
		return err;
	err = check_topic(p, c, c->contrib_topic, c->contrib_partitions,
			  "aggregate.contrib_partitions", errstr, errsz);
	/* Both topics are looked at when the first is refused, so that one
	 * check names everything to fix; an unanswered question ends it. */
	if (!err || err == -EINVAL) {
		char second[512];
		size_t used = err ? strlen(errstr) : 0;
		int err2 = check_topic(p, c, c->partials_topic, c->partials_partitions,
				       "aggregate.partials_partitions", second, sizeof(second));

		if (err2 && !err)
			snprintf(errstr, errsz, "%s", second);
		else if (err2 == -EINVAL && used < errsz)
			snprintf(errstr + used, errsz - used, "; %s", second);
		err = err ? err : err2;
	}
	kn_producer_destroy(p, kn_mono_ms() + 2000);
	return err;
}

/* ---- failures ---- */

/* A failure of the transport, as the run's result (e.g. in eos.c): fenced
 * when the producer or the consumer ever was, whichever call failed first
 * (a send_offsets refused for a fenced group member, then an abort that
 * fails as the fenced producer's does). */
static int failed(struct stage *s, int err)
{
	if (err == -ECANCELED)
		return err;
	if (!s->err[0])
		snprintf(s->err, sizeof(s->err), "%s stage: %s", s->name,
			 kn_producer_error(s->out) ? kn_producer_error(s->out) : "producer failed");
	return err == KN_KAFKA_FENCED || kn_producer_fenced(s->out) ||
			       (s->in && kn_consumer_fenced(s->in))
		       ? KN_RUN_FENCED
		       : -EIO;
}

static int consumer_failed(struct stage *s)
{
	bool fenced = kn_consumer_fenced(s->in);

	snprintf(s->err, sizeof(s->err), "%s stage: %s", s->name,
		 fenced ? "fenced: another kanon joined the group under this instance's name "
			  "(give each instance its own --instance)"
			: "consumer: fatal error");
	return fenced ? KN_RUN_FENCED : -EIO;
}

static void dead(struct stage *s, const struct kn_msg *m, const char *why)
{
	struct kn_dead_letter dl = {.reason = "bad_internal_record",
				    .detail = why,
				    .src_topic = m->topic,
				    .src_partition = m->partition,
				    .src_offset = m->offset,
				    .schema_id = -1};

	kn_warn(s->name, "%s [%d] offset %lld: %s (dead-lettered)", m->topic, m->partition,
		(long long)m->offset, why);
	if (!s->out_err)
		s->out_err = kn_producer_send_wait(s->out, s->t_dlq, NULL, 0, "", 0, 0, &dl,
						   0); /* empty, not a tombstone */
	s->dead++;
}

/* ---- what the stages write ---- */

/* A group's Kafka key, "definition|window start|value|...": the same for
 * its partial tallies and its released row. Returns its length. */
static size_t row_key(const struct kn_agg_row *row, char *key, size_t size)
{
	int kl = snprintf(key, size, "%s|%" PRId64, row->def->name, row->window_start);

	for (int d = 0; d < KN_DIMS && kl < (int)size; d++)
		if (row->def->dims & (1u << d))
			kl += snprintf(key + kl, size - (size_t)kl, "|%s",
				       row->dim[d] ? row->dim[d] : "");
	return kl < (int)size ? (size_t)kl : size - 1;
}

/* bound: a group's exact tally, to the partition of its definition's window. */
static void on_partial(void *opaque, const struct kn_agg_row *row)
{
	struct stage *s = opaque;
	size_t n = kn_xch_partial(s->buf, row);
	char key[1100];
	size_t kl = row_key(row, key, sizeof(key));

	if (!n) {
		kn_err(s->name, "%s: a dimension value beyond the exchange format", row->def->name);
		return;
	}
	if (!s->out_err &&
	    !(s->out_err = kn_producer_send_to(
		      s->out, s->t_next,
		      kn_topology_group_partition(row->def->name, row->window_start, s->n_down),
		      key, kl, s->buf, n, 0)))
		s->written++;
}

/* release: a released group as an AdAggregate row. */
static void on_row(void *opaque, const struct kn_agg_row *row)
{
	struct stage *s = opaque;
	const struct kn_config *c = s->c;
	char key[1100];
	size_t n, kl = row_key(row, key, sizeof(key));

	kn_frame_put(s->buf, (int32_t)c->agg_schema_id);
	n = kn_encode_agg_row(row, c->agg_window_ms,
			      kn_id_kind_name((enum kn_id_kind)c->agg_person),
			      s->buf + KN_FRAME_LEN);
	if (!s->out_err &&
	    !(s->out_err = kn_producer_send_wait(s->out, s->t_agg, key, kl, s->buf,
						 n + KN_FRAME_LEN, row->window_end, NULL, 0)))
		s->written++;
}

static void on_summary(void *opaque, const struct kn_agg_summary *sm)
{
	struct stage *s = opaque;
	char key[300];
	size_t n;

	kn_frame_put(s->buf, (int32_t)s->c->agg_stats_schema_id);
	n = kn_encode_agg_summary(sm, s->c->agg_mode, &s->c->agg_dp, s->buf + KN_FRAME_LEN);
	snprintf(key, sizeof(key), "%s|%" PRId64, sm->def->name, sm->window_start);
	if (!s->out_err &&
	    !(s->out_err = kn_producer_send_wait(s->out, s->t_stats, key, strlen(key), s->buf,
						 n + KN_FRAME_LEN, sm->window_end, NULL, 0)))
		s->summaries++;
	kn_info("aggregate", "%s window %" PRId64 ": %" PRIu64 " groups released", sm->def->name,
		sm->window_start, sm->groups_released);
}

static void on_no_summary(void *opaque, const struct kn_agg_summary *sm)
{
	(void)opaque, (void)sm; /* bound: none (aggregate.h) */
}

/* bound: partition q's watermark to every partial-tallies partition, when
 * it moved, its state changed, or it was last said long ago. */
static void mark_down(struct stage *s, int q, int64_t now)
{
	struct spart *sp = &s->parts[q];
	enum kn_part_state st;
	int64_t wm = kn_aggregator_watermark(sp->agg, &st);

	if (sp->marked && wm == sp->marked_wm && st == sp->marked_state &&
	    now - sp->marked_at < MARK_HEARTBEAT_MS)
		return;
	struct kn_xch_mark m = {(uint32_t)q, (uint32_t)s->n_parts, wm, st};
	size_t n = kn_xch_mark(s->buf, &m);
	for (int r = 0; r < s->n_down && !s->out_err; r++)
		s->out_err = kn_producer_send_to(s->out, s->t_next, r, NULL, 0, s->buf, n, 0);
	sp->marked = true;
	sp->marked_wm = wm;
	sp->marked_state = st;
	sp->marked_at = now;
	s->dirty = true;
}

/* ---- restart state ---- */

static struct kn_aggregator *new_agg(struct stage *s)
{
	return kn_aggregator_from_config(s->c, s->defs, s->n_up, s->keys,
					 s->role == KN_RUN_BOUND ? KN_AGG_BOUND : KN_AGG_RELEASE);
}

/* Partition q from what was committed for it (offset, metadata). */
static int restore_part(struct stage *s, struct kn_tp *tp)
{
	struct spart *sp = &s->parts[tp->partition];
	int64_t until = INT64_MIN;
	int got = 0;

	kn_aggregator_destroy(sp->agg);
	*sp = (struct spart){.mine = true, .position = -1};
	if (!(sp->agg = new_agg(s)))
		return -ENOMEM;
	if (tp->offset == KN_OFFSET_NONE) {
		tp->offset = KN_OFFSET_BEGINNING;
		return 0;
	}
	sp->position = tp->offset;
	if (kn_xch_state_parse(tp->meta, tp->meta_len, s->role == KN_RUN_BOUND ? 'b' : 'r', &until,
			       s->n_up, s->mts, s->mst, &got))
		return 0; /* not ours: from the committed offset, afresh */
	kn_aggregator_restore(sp->agg, 0, got ? s->mts[0] : INT64_MIN, until);
	for (int p = 0; p < got; p++) {
		kn_aggregator_restore(sp->agg, p, s->mts[p], until);
		kn_aggregator_set_state(sp->agg, p, s->mst[p]);
	}
	return 0;
}

/* Restores tps[0..n) (assigned to this instance) and sets where each
 * starts: the first offset an open window needed when it was committed. */
static int restore(struct stage *s, struct kn_tp *tps, int n)
{
	char why[256];
	int err = kn_consumer_committed(s->in, tps, n, kn_mono_ms() + START_TIMEOUT_MS, why,
					sizeof(why));

	int restored = 0;
	for (int i = 0; i < n && !err; i++) {
		if (tps[i].partition < 0 || tps[i].partition >= s->n_parts) {
			snprintf(s->err, sizeof(s->err),
				 "%s stage: %s has more partitions than at start-up; restart it",
				 s->name, s->topic_in);
			return -EIO;
		}
		restored += tps[i].offset >= 0;
		err = restore_part(s, &tps[i]);
	}
	if (!err && restored)
		kn_info(s->name,
			"restored from Kafka: %d partition(s) rebuild their open windows from the "
			"first offset those need",
			restored);
	if (err && !s->err[0])
		snprintf(s->err, sizeof(s->err), "%s stage: committed offsets: %s", s->name,
			 err == -ENOMEM ? "out of memory" : why);
	return err;
}

static void on_assign(void *opaque, struct kn_tp *tps, int n)
{
	struct stage *s = opaque;
	int err = restore(s, tps, n);

	if (err && !s->hook_err)
		s->hook_err = err;
	kn_info(s->name, "%d partition(s) of %s assigned", n, s->topic_in);
}

static int cycle(struct stage *s);

static void on_revoke(void *opaque, const struct kn_tp *tps, int n, bool lost)
{
	struct stage *s = opaque;
	int err = 0;

	/* Still ours: commit what is done. Lost: the next owner redoes it. */
	if (!lost && !s->hook_err)
		err = cycle(s);
	else if (!kn_producer_txn(s->out, KN_TXN_ABORT, NULL, 0, NULL))
		err = kn_producer_txn(s->out, KN_TXN_BEGIN, NULL, 0, NULL);
	if (err && err != KN_KAFKA_TXN_ABORTED && !s->hook_err)
		s->hook_err = failed(s, err);
	for (int i = 0; i < n; i++) {
		struct spart *sp = &s->parts[tps[i].partition];
		if (tps[i].partition < 0 || tps[i].partition >= s->n_parts)
			continue;
		kn_aggregator_destroy(sp->agg);
		*sp = (struct spart){.position = -1};
	}
}

/* After an aborted transaction: every partition back to what was committed. */
static int rewind_all(struct stage *s)
{
	int n = 0, err;

	for (int q = 0; q < s->n_parts; q++)
		if (s->parts[q].mine)
			s->tps[n++] = (struct kn_tp){s->topic_in, q, 0};
	kn_warn(s->name, "transaction aborted: %d partition(s) back to their committed offsets", n);
	s->aborted++;
	if ((err = restore(s, s->tps, n)))
		return err;
	return kn_consumer_seek(s->in, s->tps, n) ? -EIO : 0;
}

/* ---- the commit cycle ---- */

static int checkpoint(struct stage *s)
{
	int n = 0;

	for (int q = 0; q < s->n_parts; q++) {
		struct spart *sp = &s->parts[q];
		if (!sp->mine || sp->position < 0)
			continue;
		for (int p = 0; p < s->n_up; p++)
			s->mst[p] = kn_aggregator_part(sp->agg, p, &s->mts[p]);
		size_t len = kn_xch_state_fmt(
			s->meta[n], META_MAX, s->role == KN_RUN_BOUND ? 'b' : 'r',
			kn_aggregator_emitted_until(sp->agg), s->n_up, s->mts, s->mst);
		s->tps[n] = (struct kn_tp){s->topic_in, q,
					   kn_aggregator_first_offset(sp->agg, sp->position),
					   s->meta[n], len};
		n++;
	}
	return n;
}

/* Closes what is due into the open transaction, sends the marks, commits
 * it with the positions and their restart state, begins the next. */
static void state_peak(struct stage *s)
{
	struct kn_agg_metrics m;
	uint64_t bytes = 0;

	for (int q = 0; q < s->n_parts; q++)
		if (s->parts[q].mine) {
			kn_aggregator_metrics(s->parts[q].agg, &m);
			bytes += m.state_bytes;
		}
	if (bytes > s->peak_state)
		s->peak_state = bytes;
}

static int cycle(struct stage *s)
{
	struct kn_agg_sink sink = {s->role == KN_RUN_BOUND ? on_partial : on_row,
				   s->role == KN_RUN_BOUND ? on_no_summary : on_summary, s};
	int64_t now = kn_mono_ms();
	int tstage = s->role == KN_RUN_BOUND ? KN_TRACE_BOUND : KN_TRACE_RELEASE;
	uint64_t written = s->written + s->summaries;
	struct kn_tspan cyc;
	int err;

	kn_trace_stage_begin(&cyc, tstage, (uint32_t)(s->records - s->records_cycled));
	s->records_cycled = s->records;
	state_peak(s); /* before windows close */
	for (int q = 0; q < s->n_parts; q++) {
		if (!s->parts[q].mine)
			continue;
		if (kn_aggregator_advance(s->parts[q].agg, false, &sink) < 0) {
			snprintf(s->err, sizeof(s->err), "%s stage: out of memory", s->name);
			return -ENOMEM;
		}
		if (s->role == KN_RUN_BOUND)
			mark_down(s, q, now);
	}
	if (s->out_err)
		return failed(s, s->out_err);
	int n = checkpoint(s);
	err = n ? kn_producer_txn(s->out, KN_TXN_SEND_OFFSETS, s->tps, n, s->in) : 0;
	if (!err)
		err = kn_producer_txn(s->out, KN_TXN_COMMIT, NULL, 0, NULL);
	if (err == KN_KAFKA_TXN_ABORTED)
		err = rewind_all(s);
	else if (!err)
		s->transactions++;
	if (err)
		return failed(s, err);
	kn_trace_stage_end(&cyc, tstage, (uint32_t)(s->written + s->summaries - written));
	s->dirty = false;
	s->last_cycle = s->last_progress = kn_mono_ms();
	err = kn_producer_txn(s->out, KN_TXN_BEGIN, NULL, 0, NULL);
	return err ? failed(s, err) : 0;
}

/* ---- reading ---- */

static int def_index(const struct stage *s, const char *name)
{
	for (int i = 0; i < s->c->n_aggs; i++)
		if (!strcmp(s->defs[i].name, name))
			return i;
	return -1;
}

static void apply_mark(struct stage *s, struct spart *sp, const struct kn_msg *m,
		       const struct kn_xch_mark *mk)
{
	if ((int)mk->from >= s->n_up) {
		dead(s, m, "a mark from an upstream partition this stage does not know");
		return;
	}
	if ((int)mk->n_from != s->n_up && !s->warned_up) {
		kn_warn(s->name,
			"upstream has %u partitions, this stage counted %d at start-up: restart "
			"it so every upstream partition holds the windows back",
			mk->n_from, s->n_up);
		s->warned_up = true;
	}
	kn_aggregator_mark(sp->agg, (int)mk->from, mk->value, mk->state);
}

static void apply(struct stage *s, const struct kn_msg *m)
{
	struct spart *sp = &s->parts[m->partition];
	enum kn_agg_result r = KN_AGG_ADDED;
	struct kn_xch x;
	const char *why;

	if (kn_xch_decode(m->payload, m->len, &x, &why)) {
		dead(s, m, why);
	} else if (x.type == KN_XCH_MARK) {
		apply_mark(s, sp, m, &x.mark);
	} else if (s->role == KN_RUN_BOUND && x.type == KN_XCH_CONTRIB) {
		if ((int)x.part >= s->n_up)
			dead(s, m, "a contribution from an unknown input partition");
		else
			r = kn_aggregator_add_point(sp->agg, &x.point, x.n_events, (int)x.part,
						    m->offset);
	} else if (s->role == KN_RUN_RELEASE && x.type == KN_XCH_PARTIAL) {
		int d = def_index(s, x.def);
		if (d < 0)
			dead(s, m, "a tally of an aggregate definition this stage does not have");
		else
			r = kn_aggregator_add_partial(sp->agg, d, x.window_start, x.dim, x.events,
						      x.users, x.early, m->partition, m->offset);
	} else {
		dead(s, m, "a record type that does not belong in this topic");
	}
	if (r == KN_AGG_ERROR && !s->out_err)
		s->out_err = -ENOMEM;
	sp->position = m->offset + 1;
	sp->eof = false;
	s->records++;
	s->dirty = true;
}

static bool accept(const struct stage *s, const struct kn_msg *m)
{
	const struct spart *sp;

	if (m->partition < 0 || m->partition >= s->n_parts)
		return false;
	sp = &s->parts[m->partition];
	return sp->mine && (sp->position < 0 || m->offset >= sp->position);
}

/* --until-eof: every partition of this instance read to its end, every
 * upstream partition ended, every window released and (bound) the end
 * passed on. */
static bool finished(struct stage *s)
{
	enum kn_part_state st;
	int mine = 0;

	if (!kn_consumer_at_eof(s->in))
		return false;
	for (int q = 0; q < s->n_parts; q++) {
		struct spart *sp = &s->parts[q];
		if (!sp->mine)
			continue;
		mine++;
		kn_aggregator_watermark(sp->agg, &st);
		if (st != KN_PART_ENDED || !kn_aggregator_idle_now(sp->agg) ||
		    (s->role == KN_RUN_BOUND && sp->marked_state != KN_PART_ENDED))
			return false;
	}
	return mine > 0 && !s->dirty;
}

/* --until-eof and nothing assigned for run.assignment_wait: the other
 * instances hold every partition. */
static bool nothing_to_do(const struct stage *s)
{
	int64_t since = kn_consumer_unassigned_since(s->in);

	return since && kn_mono_ms() - since >= s->c->assign_wait_ms;
}

/* ---- observation ---- */

/* Adds what a partition's oldest window waits for to the snapshot, so that
 * it names what the stage's oldest window of all waits for: each partition
 * keeps its own windows, and one whose only window is far ahead (a person
 * seen only later) waits for every upstream partition without holding
 * anything older back. */
static void waiting_of(const struct kn_aggregator *agg, struct kn_stage_snapshot *sn,
		       int64_t *oldest)
{
	int w[KN_METRICS_WAITING_MAX];
	int64_t start;
	int k = kn_aggregator_waiting(agg, &start, w, KN_METRICS_WAITING_MAX);

	if (start > *oldest)
		return;
	if (start < *oldest)
		sn->n_waiting = 0;
	*oldest = start;
	for (int i = 0; i < k; i++) {
		bool seen = false;
		for (int j = 0; j < sn->n_waiting && !seen; j++)
			seen = sn->waiting[j] == w[i];
		if (!seen && sn->n_waiting < KN_METRICS_WAITING_MAX)
			sn->waiting[sn->n_waiting++] = w[i];
	}
}

static void publish(struct stage *s)
{
	struct kn_stage_snapshot *sn = &s->snap;
	struct kn_agg_metrics m;
	int64_t oldest = INT64_MAX;
	int n = 0;

	if (!s->metrics)
		return;
	*sn = (struct kn_stage_snapshot){.records = s->records,
					 .dead = s->dead,
					 .written = s->written,
					 .summaries = s->summaries,
					 .transactions = s->transactions,
					 .aborted = s->aborted,
					 .last_progress_ms = s->last_progress,
					 .stall_ms = s->c->stall_timeout_ms,
					 .assigned = kn_consumer_assigned(s->in)};
	for (int q = 0; q < s->n_parts; q++) {
		struct spart *sp = &s->parts[q];
		if (!sp->mine)
			continue;
		kn_aggregator_metrics(sp->agg, &m);
		sn->late += m.late;
		sn->bounded += m.bounded;
		sn->suppressed_groups += m.groups_suppressed;
		sn->suppressed_events += m.events_suppressed;
		sn->windows_released += s->role == KN_RUN_RELEASE ? m.windows_closed : 0;
		sn->epsilon_spent += m.epsilon_spent;
		sn->open_windows += m.open_windows;
		sn->state_bytes += m.state_bytes;
		waiting_of(sp->agg, sn, &oldest);
		s->tps[n++] = (struct kn_tp){s->topic_in, q, sp->position};
	}
	sn->lag = kn_consumer_lag_of(s->in, s->tps, n);
	sn->work_pending = s->dirty || sn->lag > 0;
	/* No partition is no fault here: a stage may have more instances than
	 * its topic has partitions. */
	sn->healthy = !s->err[0] && kn_consumer_healthy(s->in);
	snprintf(sn->unhealthy_reason, sizeof(sn->unhealthy_reason), "%.150s",
		 s->err[0] ? s->err : "consumer: fatal error");
	kn_metrics_publish_stage(
		s->metrics, s->role == KN_RUN_BOUND ? KN_METRICS_BOUND : KN_METRICS_RELEASE, sn);
}

/* ---- set-up ---- */

/* Partitions of topic from the cluster's metadata (0 when it is missing). */
static int partitions(struct stage *s, const char *topic, char *errstr, size_t errsz)
{
	int n = kn_consumer_partitions(s->in, topic, kn_mono_ms() + START_TIMEOUT_MS, errstr,
				       errsz);

	return n == -ENOENT ? 0 : n;
}

static int discover(struct stage *s, char *errstr, size_t errsz)
{
	const struct kn_config *c = s->c;
	int n;

	if ((n = partitions(s, s->topic_in, errstr, errsz)) <= 0)
		goto bad;
	s->n_parts = n;
	if (s->role == KN_RUN_BOUND) {
		for (int i = 0; i < c->n_inputs; i++) {
			if ((n = partitions(s, c->inputs[i].topic, errstr, errsz)) < 0)
				goto bad;
			s->n_up += n; /* as eos.c numbers them: missing topics count none */
		}
		if ((n = partitions(s, c->partials_topic, errstr, errsz)) <= 0)
			goto bad;
		s->n_down = n;
	} else if ((n = partitions(s, c->contrib_topic, errstr, errsz)) <= 0) {
		goto bad;
	} else {
		s->n_up = n;
	}
	if (!s->n_up || s->n_parts > MAX_PARTS) {
		snprintf(errstr, errsz, "%s",
			 s->n_up ? "too many partitions" : "no input topic exists");
		return -ENOENT;
	}
	s->parts = kn_calloc((size_t)s->n_parts, sizeof(*s->parts));
	s->tps = kn_calloc((size_t)s->n_parts, sizeof(*s->tps));
	s->meta = kn_calloc((size_t)s->n_parts, sizeof(*s->meta));
	s->mts = kn_calloc((size_t)s->n_up, sizeof(*s->mts));
	s->mst = kn_calloc((size_t)s->n_up, sizeof(*s->mst));
	if (!s->parts || !s->tps || !s->meta || !s->mts || !s->mst)
		return -ENOMEM;
	for (int q = 0; q < s->n_parts; q++)
		s->parts[q].position = -1;
	return 0;
bad:
	if (n == -ECANCELED)
		snprintf(errstr, errsz, "stopped while starting");
	else if (n >= 0)
		snprintf(errstr, errsz, "an internal topic is missing");
	return n < 0 ? n : -ENOENT;
}

static int clients(struct stage *s, char *errstr, size_t errsz)
{
	const struct kn_config *c = s->c;
	char txn[300], group[300];
	const char *extra[] = {"transactional.id", txn, NULL};
	const char *cextra[] = {"group.instance.id", txn, NULL}; /* as eos.c */
	struct kn_producer_opts po = {KN_CLIENT_TX_PRODUCER, NULL, NULL, extra};
	struct kn_consumer_opts co = {.role = KN_CLIENT_TX_CONSUMER,
				      .extra = cextra,
				      .group = group,
				      .topics = &s->topic_in,
				      .n_topics = 1,
				      .subscribe = true,
				      .on_revoke = on_revoke,
				      .on_assign = on_assign,
				      .opaque = s};
	int err;

	kn_topology_txn_id(c, s->role, txn, sizeof(txn));
	kn_topology_group(c, s->role, group, sizeof(group));
	if ((err = kn_producer_new(c, &po, &s->out, errstr, errsz)) ||
	    (err = kn_topology_ensure(s->out, c, errstr, errsz)) ||
	    (err = kn_consumer_new(c, &co, &s->in, errstr, errsz)))
		return err;
	s->t_next = kn_producer_topic(s->out, c->partials_topic);
	s->t_agg = kn_producer_topic(s->out, c->agg_topic);
	s->t_stats = kn_producer_topic(s->out, c->agg_stats_topic);
	s->t_dlq = kn_producer_topic(s->out, c->topic_dead_letter);
	if (s->t_next < 0 || s->t_agg < 0 || s->t_stats < 0 || s->t_dlq < 0) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	if ((err = kn_producer_txn(s->out, KN_TXN_INIT, NULL, 0, NULL)) ||
	    (err = kn_producer_txn(s->out, KN_TXN_BEGIN, NULL, 0, NULL))) {
		err = failed(s, err);
		snprintf(errstr, errsz, "%s",
			 err == -ECANCELED ? "stopped while starting" : s->err);
		return err;
	}
	kn_info(s->name, "consuming %s as group '%s', transactional.id '%s'", s->topic_in, group,
		txn);
	return 0;
}

static int setup(struct stage *s, char *errstr, size_t errsz)
{
	const struct kn_config *c = s->c;
	int err;

	s->topic_in = s->role == KN_RUN_BOUND ? c->contrib_topic : c->partials_topic;
	if ((err = kn_keys_load(c->key_file, c->prf, c->epoch_ms, kn_wall_ms(), &s->keys, errstr,
				errsz)))
		return err;
	if (!(s->defs = kn_agg_defs_from_config(c)) ||
	    !(s->msgs = kn_calloc((size_t)c->batch_size, sizeof(*s->msgs)))) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	if ((err = clients(s, errstr, errsz)) || (err = discover(s, errstr, errsz)))
		return err;
	s->last_cycle = s->last_progress = kn_mono_ms();
	kn_info(s->name, "%d partition(s) of %s; windows wait for %d upstream partition(s)",
		s->n_parts, s->topic_in, s->n_up);
	return 0;
}

static void teardown(struct stage *s)
{
	kn_consumer_close(s->in, true, kn_mono_ms() + KN_RUN_SHUTDOWN_MS);
	bool orphaned = s->out && kn_producer_orphaned(s->out);
	if (!orphaned)
		kn_producer_destroy(s->out, 0);
	for (int q = 0; q < s->n_parts && s->parts; q++)
		kn_aggregator_destroy(s->parts[q].agg);
	kn_free(s->parts);
	kn_free(s->tps);
	kn_free(s->meta);
	kn_free(s->mts);
	kn_free(s->mst);
	kn_free(s->msgs);
	kn_free(s->defs);
	kn_keys_destroy(s->keys);
	if (!orphaned) /* its delivery callbacks may still run: nothing of s is used there */
		kn_free(s);
}

/* ---- the loop ---- */

static int loop(struct stage *s)
{
	int err = 0;

	while (!err && !kn_stop_requested()) {
		int n = kn_consumer_poll(s->in, s->msgs, (int)s->c->batch_size, 100);
		for (int i = 0; i < n; i++) {
			const struct kn_msg *m = &s->msgs[i];
			if (m->eof)
				continue; /* the consumer keeps track (kn_consumer_at_eof) */
			if (accept(s, m))
				apply(s, m);
		}
		kn_consumer_release(s->in, s->msgs, n);
		kn_producer_poll(s->out, 0);
		if (s->hook_err)
			err = s->hook_err;
		else if (!kn_consumer_healthy(s->in))
			err = consumer_failed(s);
		else if (s->out_err)
			err = failed(s, s->out_err);
		publish(s);
		int64_t since = kn_mono_ms() - s->last_cycle;
		/* --until-eof and caught up: no reason to wait for the interval
		 * (each stage would add one to the end of the run). */
		bool now = s->o->until_eof && s->dirty && kn_consumer_at_eof(s->in);
		if (!err &&
		    (now || (since >= s->c->commit_interval_ms &&
			     (s->dirty || since >= KN_TXN_HEARTBEAT_MS || s->o->until_eof))))
			err = cycle(s);
		if (!err && s->o->until_eof && (finished(s) || nothing_to_do(s)))
			break;
	}
	return err;
}

int kn_stage_run(const struct kn_config *c, enum kn_run_role role, const struct kn_run_opts *o,
		 struct kn_metrics *metrics, char *errstr, size_t errsz)
{
	struct stage *s = kn_calloc(1, sizeof(*s));
	int err;

	if (!s) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	*s = (struct stage){
		.c = c, .o = o, .role = role, .name = role_name(role), .metrics = metrics};
	err = setup(s, errstr, errsz);
	if (err == -ECANCELED) {
		err = 0;
	} else if (!err) {
		err = loop(s);
		if (!err || err == -ECANCELED)
			err = s->hook_err ? s->hook_err : cycle(s);
		publish(s);
		if (err == KN_RUN_FENCED && !o->until_eof) {
			kn_err(s->name, "%s; standing by until stopped", s->err);
			while (!kn_stop_requested())
				kn_producer_poll(s->out, 200);
		}
		if (err)
			snprintf(errstr, errsz, "%s", s->err[0] ? s->err : "failed");
		kn_info(s->name,
			"records=%" PRIu64 " dead_letter=%" PRIu64 " written=%" PRIu64
			" summaries=%" PRIu64 " transactions=%" PRIu64 " peak_state_bytes=%" PRIu64,
			s->records, s->dead, s->written, s->summaries, s->transactions,
			s->peak_state);
	}
	teardown(s);
	return err;
}
