#include "eos.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "engine.h"
#include "exchange.h"
#include "kn_alloc.h"
#include "log.h"
#include "stage.h"
#include "stop.h"

#define START_TIMEOUT_MS  30000 /* metadata and committed offsets */
#define MARK_HEARTBEAT_MS 10000 /* an unchanged mark is repeated this often */
#define META_MAX	  160
#define COALESCE_MAX	  65536 /* distinct contributions held per transaction */

struct tpart {
	const char *topic; /* the config's string */
	int32_t partition;
	bool mine; /* assigned to this instance */
	bool eof;
	int64_t eof_since;
	int64_t position;  /* next offset to read; -1: from the start */
	int64_t deid_done; /* an earlier format's: outputs below exist already */
	int64_t released;  /* an earlier format's: windows ending at or before are released */
	int64_t max_ts;	   /* stream time (aggregates.h's lateness rule) */
	/* the mark last sent for this partition */
	bool marked;
	int64_t marked_ts, marked_at;
	enum kn_part_state marked_state;
};

struct eos {
	struct tpart *parts;
	int n_parts;
	int *first_part;     /* per input topic: index of its partition 0 in parts; -1: none */
	const char **topics; /* the input topics, as the consumer indexes them */
	struct kn_tp *tps;   /* n_parts: checkpoints, lag, restores */
	char (*meta)[META_MAX];
	int t_contrib, n_contrib; /* the contributions topic (aggregates) */
	uint32_t dims;		  /* the dimensions some definition uses */
	/* The open transaction's contributions, identical ones coalesced:
	 * written before the marks that cover them (commit_cycle). */
	struct kn_xch_coalesce *pending;
	uint8_t xbuf[KN_XCH_MAX_BYTES];
	int64_t txn_min_ts; /* earliest Kafka timestamp in the open transaction */
	uint32_t txn_records;
	int64_t last_cycle; /* mono ms of the last commit cycle */
	bool dirty;	    /* the open transaction holds work */
	bool ending;	    /* the last cycle of --until-eof: every partition ended */
	int hook_err;	    /* a failure inside a rebalance */
	uint64_t skipped, contributions, late, no_person, transactions, rewinds;
	uint64_t written; /* contribution records, after coalescing */
};

static struct eos *eos(struct kn_engine *e)
{
	return e->m;
}

/* Delivery reports: the batch tag comes back as the token. */
static void on_delivery(void *opaque, const struct kn_delivery *d)
{
	struct kn_engine *e = opaque;

	if (!d->err && d->token)
		kn_trace_delivered(e->trace, (uint32_t)d->token);
}

/* A failure of the transport, as the run's result: fenced stays fenced
 * (the producer's or the consumer's, whichever call met it first),
 * everything else but a stop is -EIO; e->err says why. */
static int failed(struct kn_engine *e, int err)
{
	if (err == -ECANCELED)
		return err;
	if (!e->err[0])
		snprintf(e->err, sizeof(e->err), "%s",
			 kn_producer_error(e->out) ? kn_producer_error(e->out) : "producer failed");
	return err == KN_KAFKA_FENCED || kn_producer_fenced(e->out) ||
			       (e->in && kn_consumer_fenced(e->in))
		       ? KN_RUN_FENCED
		       : -EIO;
}

/* ---- restart state in offset-commit metadata ---- */

static void fmt_meta(char *buf, size_t n, const struct tpart *tp)
{
	snprintf(buf, n, "kd1 m=%" PRId64 " d=%" PRId64 " u=%" PRId64, tp->max_ts, tp->deid_done,
		 tp->released);
}

/* Ours ("kd1") or the single-process format before the topology ("kn1
 * w=<released> m=<max_ts> d=<deid_done>": its committed offset could lie
 * before outputs already written). */
static void parse_meta(const char *m, size_t len, struct tpart *tp)
{
	char buf[256];
	int64_t a, b, c;

	if (!m || !len || len >= sizeof(buf))
		return;
	memcpy(buf, m, len);
	buf[len] = '\0';
	if (sscanf(buf, "kd1 m=%" SCNd64 " d=%" SCNd64 " u=%" SCNd64, &a, &b, &c) == 3) {
		tp->max_ts = a;
		tp->deid_done = b;
		tp->released = c;
	} else if (sscanf(buf, "kn1 w=%" SCNd64 " m=%" SCNd64 " d=%" SCNd64, &a, &b, &c) == 3) {
		tp->released = a;
		tp->max_ts = b;
		tp->deid_done = c;
	}
}

static int index_of(const struct kn_engine *e, const char *topic, int32_t partition)
{
	const struct eos *x = e->m;

	for (int i = 0; i < e->cfg->n_inputs; i++) {
		if (strcmp(x->topics[i], topic))
			continue;
		int p = x->first_part[i] < 0 ? -1 : x->first_part[i] + partition;
		return p >= 0 && p < x->n_parts && partition >= 0 &&
				       x->parts[p].topic == x->topics[i]
			       ? p
			       : -1;
	}
	return -1;
}

/* Restores tps[0..n) (assigned to this instance) from what was committed
 * and sets where each starts. Returns 0 or -EIO with e->err set. */
static int restore(struct kn_engine *e, struct kn_tp *tps, int n)
{
	struct eos *x = eos(e);
	char why[256];

	if (kn_consumer_committed(e->in, tps, n, kn_mono_ms() + START_TIMEOUT_MS, why,
				  sizeof(why))) {
		snprintf(e->err, sizeof(e->err), "committed offsets: %s", why);
		return -EIO;
	}
	int restored = 0;
	for (int i = 0; i < n; i++) {
		int p = index_of(e, tps[i].topic, tps[i].partition);
		if (p < 0) /* a partition added after start-up: picked up on restart */
			continue;
		struct tpart *tp = &x->parts[p];
		*tp = (struct tpart){tp->topic,	     tp->partition,	    .mine = true,
				     .position = -1, .released = INT64_MIN, .max_ts = INT64_MIN};
		if (tps[i].offset == KN_OFFSET_NONE) {
			tps[i].offset = KN_OFFSET_BEGINNING;
			continue;
		}
		tp->position = tp->deid_done = tps[i].offset;
		parse_meta(tps[i].meta, tps[i].meta_len, tp);
		restored++;
	}
	if (restored)
		kn_info("run",
			"restored from Kafka: %d partition(s) resume at their committed offsets",
			restored);
	return 0;
}

/* ---- rebalances ---- */

static void on_assign(void *opaque, struct kn_tp *tps, int n)
{
	struct kn_engine *e = opaque;
	struct eos *x = eos(e);

	if (restore(e, tps, n) && !x->hook_err)
		x->hook_err = -EIO;
	kn_info("run", "exactly-once: %d partition(s) of %d topic(s) assigned", n,
		e->cfg->n_inputs);
}

static int commit_cycle(struct kn_engine *e, bool flush);

/* Before partitions go: commit what is done for them (they are still ours
 * until this returns). Lost: they are someone else's; the abort leaves
 * their work to the new owner. */
static void on_revoke(void *opaque, const struct kn_tp *tps, int n, bool lost)
{
	struct kn_engine *e = opaque;
	struct eos *x = eos(e);
	int err = 0;

	if (!lost && !x->hook_err) {
		err = commit_cycle(e, false);
	} else {
		if (x->pending)
			kn_xch_coalesce_clear(x->pending);
		if (!kn_producer_txn(e->out, KN_TXN_ABORT, NULL, 0, NULL))
			err = kn_producer_txn(e->out, KN_TXN_BEGIN, NULL, 0, NULL);
	}
	if (err && !x->hook_err)
		x->hook_err = err;
	for (int i = 0; i < n; i++) {
		int p = index_of(e, tps[i].topic, tps[i].partition);
		if (p >= 0)
			x->parts[p].mine = false;
	}
}

/* After an aborted transaction: every partition back to what was committed. */
static int rewind_all(struct kn_engine *e)
{
	struct eos *x = eos(e);
	int n = 0;

	for (int p = 0; p < x->n_parts; p++)
		if (x->parts[p].mine)
			x->tps[n++] = (struct kn_tp){x->parts[p].topic, x->parts[p].partition, 0};
	kn_warn("run", "transaction aborted: %d partition(s) back to their committed offsets", n);
	x->rewinds++;
	if (x->pending)
		kn_xch_coalesce_clear(x->pending); /* they were the aborted transaction's */
	if (restore(e, x->tps, n))
		return -EIO;
	return kn_consumer_seek(e->in, x->tps, n) ? -EIO : 0;
}

/* ---- set-up ---- */

static int clients(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	struct eos *x = eos(e);
	char txn[300];
	const char *extra[] = {"transactional.id", txn, NULL};
	/* Static membership under the same name: a restarted instance takes
	 * its partitions back at once, where a new member would wait for the
	 * dead one's session to time out. */
	const char *cextra[] = {"group.instance.id", txn, NULL};
	struct kn_producer_opts po = {KN_CLIENT_TX_PRODUCER, on_delivery, e, extra};
	struct kn_consumer_opts co = {.role = KN_CLIENT_TX_CONSUMER,
				      .extra = cextra,
				      .topics = x->topics,
				      .n_topics = c->n_inputs,
				      .subscribe = true,
				      .on_revoke = on_revoke,
				      .on_assign = on_assign,
				      .opaque = e};
	int err;

	kn_topology_txn_id(c, KN_RUN_DEID, txn, sizeof(txn));
	if ((err = kn_producer_new(c, &po, &e->out, errstr, errsz)))
		return err;
	if ((e->t_out = kn_producer_topic(e->out, c->topic_output)) < 0 ||
	    (e->t_dlq = kn_producer_topic(e->out, c->topic_dead_letter)) < 0 ||
	    (x->t_contrib = kn_producer_topic(e->out, c->contrib_topic)) < 0) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	if (c->n_aggs && (err = kn_topology_ensure(e->out, c, errstr, errsz)))
		return err;
	/* Fences any older instance with this transactional.id and aborts what
	 * it left open. */
	if ((err = kn_producer_txn(e->out, KN_TXN_INIT, NULL, 0, NULL))) {
		err = failed(e, err);
		snprintf(errstr, errsz, "%s",
			 err == -ECANCELED ? "stopped while starting" : e->err);
		return err;
	}
	kn_info("run", "exactly-once: group '%s', transactional.id '%s'", c->group_id, txn);
	co.serve = e->out; /* acknowledgements are seen as they come */
	return kn_consumer_new(c, &co, &e->in, errstr, errsz);
}

/* Every partition of every input topic, from the cluster's metadata: the
 * numbering of input partitions that every stage shares. */
static int discover(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	struct eos *x = eos(e);

	for (int i = 0; i < c->n_inputs; i++) {
		int n = kn_consumer_partitions(e->in, c->inputs[i].topic,
					       kn_mono_ms() + START_TIMEOUT_MS, errstr, errsz);
		x->first_part[i] = -1;
		if (n == -ENOENT) {
			/* Its records wait in Kafka; a restart after it exists reads them. */
			kn_warn("run", "input topic %s does not exist: not consumed until restart",
				c->inputs[i].topic);
			continue;
		}
		if (n == -ECANCELED) {
			snprintf(errstr, errsz, "stopped while starting");
			return n;
		}
		if (n < 0)
			return -ENOENT;
		struct tpart *np = kn_realloc(x->parts, sizeof(*np) * (size_t)(x->n_parts + n));
		if (!np)
			return -ENOMEM;
		x->parts = np;
		x->first_part[i] = x->n_parts;
		for (int p = 0; p < n; p++)
			x->parts[x->n_parts++] =
				(struct tpart){c->inputs[i].topic, p, .position = -1};
	}
	if (!x->n_parts) {
		snprintf(errstr, errsz, "none of the input topics exists");
		return -ENOENT;
	}
	x->tps = kn_calloc((size_t)x->n_parts, sizeof(*x->tps));
	x->meta = kn_calloc((size_t)x->n_parts, sizeof(*x->meta));
	return x->tps && x->meta ? 0 : -ENOMEM;
}

static int start(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	struct eos *x = kn_calloc(1, sizeof(*x));
	int err;

	if (!x) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	e->m = x;
	x->topics = kn_calloc((size_t)c->n_inputs, sizeof(*x->topics));
	x->first_part = kn_calloc((size_t)c->n_inputs, sizeof(*x->first_part));
	if (!x->topics || !x->first_part) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < c->n_inputs; i++)
		x->topics[i] = c->inputs[i].topic;
	for (int i = 0; i < c->n_aggs; i++)
		x->dims |= c->aggs[i].dims;
	if ((err = clients(e, errstr, errsz)) || (err = discover(e, errstr, errsz)))
		return err;
	if (c->n_aggs && !(x->pending = kn_xch_coalesce_new(COALESCE_MAX))) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	if (c->n_aggs) {
		x->n_contrib = kn_consumer_partitions(
			e->in, c->contrib_topic, kn_mono_ms() + START_TIMEOUT_MS, errstr, errsz);
		if (x->n_contrib <= 0) {
			if (x->n_contrib == -ENOENT)
				snprintf(errstr, errsz, "%s does not exist", c->contrib_topic);
			return x->n_contrib ? x->n_contrib : -ENOENT;
		}
	}
	if ((err = kn_producer_txn(e->out, KN_TXN_BEGIN, NULL, 0, NULL))) {
		err = failed(e, err);
		snprintf(errstr, errsz, "%s",
			 err == -ECANCELED ? "stopped while starting" : e->err);
		return err;
	}
	x->last_cycle = e->last_progress = kn_mono_ms();
	kn_info("run", "exactly-once: %d input partition(s) of %d topic(s), %d aggregate(s)%s%s",
		x->n_parts, c->n_inputs, c->n_aggs, c->n_aggs ? ", contributions to " : "",
		c->n_aggs ? c->contrib_topic : "");
	return 0;
}

/* ---- the batch ---- */

static int part_of(const struct kn_engine *e, const struct kn_msg *m)
{
	const struct eos *x = e->m;
	int first = m->topic_idx >= 0 ? x->first_part[m->topic_idx] : -1;
	int p = first + m->partition;

	if (first < 0 || m->partition < 0 || p >= x->n_parts ||
	    x->parts[p].topic != x->topics[m->topic_idx])
		return -1; /* a partition added after start-up: picked up on restart */
	return p;
}

/* Records of partitions this instance holds, each once. */
static bool accept(struct kn_engine *e, const struct kn_msg *m, int *part)
{
	const struct tpart *tp;

	if ((*part = part_of(e, m)) < 0)
		return false;
	tp = &eos(e)->parts[*part];
	return tp->mine && (tp->position < 0 || m->offset >= tp->position);
}

/* Partition p's mark to every contributions partition. */
static int mark(struct kn_engine *e, int p, enum kn_part_state st, int64_t now)
{
	struct eos *x = eos(e);
	struct tpart *tp = &x->parts[p];
	struct kn_xch_mark m = {(uint32_t)p, (uint32_t)x->n_parts, tp->max_ts, st};
	size_t n = kn_xch_mark(x->xbuf, &m);
	int err = 0;

	for (int q = 0; q < x->n_contrib && !err; q++)
		err = kn_producer_send_to(e->out, x->t_contrib, q, NULL, 0, x->xbuf, n, 0);
	tp->marked = true;
	tp->marked_ts = tp->max_ts;
	tp->marked_state = st;
	tp->marked_at = now;
	return err;
}

static int send_contribution(void *opaque, int32_t q, const uint8_t *rec, size_t len)
{
	struct kn_engine *e = opaque;
	uint8_t key[8]; /* the person's fingerprint, as in the record */

	memcpy(key, rec + 3 + 8 + 4, sizeof(key));
	eos(e)->written++;
	return kn_producer_send_to(e->out, eos(e)->t_contrib, q, key, sizeof(key), rec, len, 0);
}

/* The transaction's coalesced contributions, into it. */
static int flush_contributions(struct kn_engine *e)
{
	return kn_xch_coalesce_flush(eos(e)->pending, send_contribution, e);
}

/* One de-identified event into the aggregates: the lateness rule of its
 * input partition, then a contribution to its person's partition. */
static int contribute(struct kn_engine *e, int i)
{
	struct eos *x = eos(e);
	const struct kn_msg *m = kn_engine_msg(e, i);
	const struct kn_deid *d = &e->b->deid[i];
	struct tpart *tp = &x->parts[e->part_of[i]];
	int64_t ts = e->b->rec[i].ev.role[KN_ROLE_TIMESTAMP].l;
	int64_t end = kn_agg_window_start(ts, e->cfg->agg_window_ms) + e->cfg->agg_window_ms;
	int64_t stream = kn_agg_stream_time(ts, m->ts_ms);
	struct kn_agg_point pt;
	int err;

	if (!kn_agg_eligible(d)) {
		e->not_aggregated++;
		return 0;
	}
	if (stream > tp->max_ts)
		tp->max_ts = stream;
	if (kn_agg_late(end, e->cfg->agg_lateness_ms, tp->max_ts) || end <= tp->released) {
		x->late++;
		return 0;
	}
	if (!kn_agg_point_of(d, (enum kn_id_kind)e->cfg->agg_person, e->cfg->agg_window_ms, ts,
			     &pt)) {
		x->no_person++;
		return 0;
	}
	/* Active again after idle or ended: said before the event, so no
	 * downstream window closes without it. */
	if (tp->marked && tp->marked_state != KN_PART_ACTIVE &&
	    (err = mark(e, e->part_of[i], KN_PART_ACTIVE, kn_mono_ms())))
		return err;
	size_t n = kn_xch_contrib(x->xbuf, &pt, (uint32_t)e->part_of[i], x->dims, 1);
	if (!n)
		return 0; /* a value beyond the exchange format: cannot happen (event.h) */
	int32_t q = kn_topology_person_partition(pt.person, x->n_contrib);
	if ((err = kn_xch_coalesce_add(x->pending, x->xbuf, n, q)) == 1 &&
	    !(err = flush_contributions(e)))
		err = kn_xch_coalesce_add(x->pending, x->xbuf, n, q);
	x->contributions += !err;
	return err == -ENOMEM ? -EIO : err;
}

/* The aggregation step: the share's contributions into the transaction. */
static int aggregate(struct kn_engine *e, uint32_t *added)
{
	struct eos *x = eos(e);
	int err = 0;

	for (int i = 0; i < e->b->n && !err; i++) {
		const struct kn_msg *m = kn_engine_msg(e, i);
		if (e->b->rec[i].state != KN_REC_OUT ||
		    m->offset < x->parts[e->part_of[i]].deid_done)
			continue; /* replayed records of the earlier format were counted then */
		uint64_t before = x->contributions;
		err = contribute(e, i);
		*added += (uint32_t)(x->contributions - before);
	}
	return err ? failed(e, err) : 0;
}

/* Writes each record's de-identified event or dead letter into the open
 * transaction (unless an earlier run already did: a replay) and moves the
 * positions on. */
static int emit(struct kn_engine *e, uint32_t tag, uint32_t *queued)
{
	struct eos *x = eos(e);
	int err = 0;

	for (int i = 0; i < e->b->n && !err; i++) {
		const struct kn_msg *m = kn_engine_msg(e, i);
		struct tpart *tp = &x->parts[e->part_of[i]];
		if (e->b->rec[i].state == KN_REC_DROPPED)
			e->dropped++; /* withheld by the policy: no output anywhere */
		else if (m->offset < tp->deid_done)
			x->skipped++; /* replay: its de-identified output is already committed */
		else if (!(err = kn_engine_send(e, i, tag)))
			(*queued)++;
		tp->position = m->offset + 1;
		tp->eof = false;
		if (m->ts_ms && (!x->txn_min_ts || m->ts_ms < x->txn_min_ts))
			x->txn_min_ts = m->ts_ms;
		x->txn_records++;
		x->dirty = true;
	}
	return err ? failed(e, err) : 0;
}

static void eof(struct kn_engine *e, const struct kn_msg *m)
{
	int p = part_of(e, m);
	struct eos *x = eos(e);

	if (p >= 0 && x->parts[p].mine && !x->parts[p].eof) {
		x->parts[p].eof = true;
		x->parts[p].eof_since = kn_mono_ms();
	}
}

/* ---- transactions ---- */

/* Every partition's mark, when its stream time moved, its state changed
 * (idle after aggregate.idle_timeout at its end; ended at the end of
 * --until-eof), or it was last said long ago. */
static int marks(struct kn_engine *e, int64_t now, uint32_t *marked)
{
	struct eos *x = eos(e);
	int err = 0;

	for (int p = 0; p < x->n_parts && !err; p++) {
		struct tpart *tp = &x->parts[p];
		if (!tp->mine)
			continue;
		enum kn_part_state st = x->ending ? KN_PART_ENDED
					: tp->eof && now - tp->eof_since >= e->cfg->agg_idle_ms
						? KN_PART_IDLE
						: KN_PART_ACTIVE;
		if (tp->marked && st == tp->marked_state && tp->max_ts == tp->marked_ts &&
		    now - tp->marked_at < MARK_HEARTBEAT_MS)
			continue;
		err = mark(e, p, st, now);
		x->dirty = true;
		(*marked)++;
	}
	return err;
}

/* The positions to commit, with their restart metadata. Returns the count
 * written to x->tps. */
static int checkpoint(struct kn_engine *e)
{
	struct eos *x = eos(e);
	int n = 0;

	for (int p = 0; p < x->n_parts; p++) {
		struct tpart *tp = &x->parts[p];
		if (!tp->mine || tp->position < 0)
			continue; /* never read, nothing committed before: nothing to say */
		fmt_meta(x->meta[n], META_MAX, tp);
		x->tps[n] = (struct kn_tp){tp->topic, tp->partition, tp->position, x->meta[n],
					   strlen(x->meta[n])};
		n++;
	}
	return n;
}

/* Sends the marks, commits the open transaction with the positions, and
 * begins the next one. An abortable error rewinds to what was committed.
 * Returns 0, -EIO or KN_RUN_FENCED (e->err says why), or -ECANCELED. */
static int commit_cycle(struct kn_engine *e, bool flush)
{
	struct eos *x = eos(e);
	int64_t now = kn_mono_ms();
	uint32_t marked = 0;
	struct kn_tspan cyc;
	int err = 0;

	x->ending = x->ending ||
		    (flush && e->cfg->n_aggs); /* for good: a revoke at the close commits again */
	kn_trace_txn_begin(e->trace, &cyc, x->txn_records, x->txn_min_ts);
	if (e->cfg->n_aggs && x->n_contrib && !(err = flush_contributions(e)))
		err = marks(e, now, &marked);
	if (err)
		return failed(e, err);
	kn_trace_txn_mark(e->trace, &cyc, KN_STAGE_WINDOW, marked);
	int n = checkpoint(e);
	err = n ? kn_producer_txn(e->out, KN_TXN_SEND_OFFSETS, x->tps, n, e->in) : 0;
	if (!err)
		err = kn_producer_txn(e->out, KN_TXN_COMMIT, NULL, 0, NULL);
	if (err == KN_KAFKA_TXN_ABORTED && !(err = rewind_all(e)))
		x->dirty = false;
	if (err)
		return failed(e, err);
	kn_trace_txn_mark(e->trace, &cyc, KN_STAGE_COMMIT, x->txn_records);
	x->transactions++;
	e->last_progress = kn_mono_ms();
	x->txn_records = 0;
	x->txn_min_ts = 0;
	x->dirty = false;
	err = kn_producer_txn(e->out, KN_TXN_BEGIN, NULL, 0, NULL);
	return err ? failed(e, err) : 0;
}

/* Idle, a transaction still goes out now and then: it is how a fenced
 * instance finds out (the broker tells only who asks). */
static int tick(struct kn_engine *e)
{
	struct eos *x = eos(e);
	int64_t since = kn_mono_ms() - x->last_cycle;
	int err = 0;

	if (x->hook_err) /* already the run's result, e->err set */
		return x->hook_err;
	if (!kn_consumer_healthy(e->in)) {
		if (!kn_consumer_fenced(e->in)) {
			snprintf(e->err, sizeof(e->err), "consumer: fatal error");
			return -EIO;
		}
		snprintf(e->err, sizeof(e->err),
			 "fenced: another kanon joined group '%s' under this instance's name "
			 "(two instances with one name? give each its own --instance); this one "
			 "has stopped processing",
			 e->cfg->group_id);
		return KN_RUN_FENCED;
	}
	if (since >= e->cfg->commit_interval_ms && (x->dirty || since >= KN_TXN_HEARTBEAT_MS)) {
		err = commit_cycle(e, false);
		x->last_cycle = kn_mono_ms();
	}
	return err;
}

static bool drained(struct kn_engine *e)
{
	return kn_consumer_at_eof(e->in);
}

/* A stop or the end of input: commit what is done (done: the input is
 * complete, every partition is marked ended). */
static int finish(struct kn_engine *e, int err, bool done)
{
	struct eos *x = eos(e);

	if (!err && x->hook_err)
		err = x->hook_err;
	if (!err)
		err = commit_cycle(e, done);
	e->leave = !err;
	if (err == -ECANCELED)
		snprintf(e->err, sizeof(e->err),
			 "stopped before the open transaction could be committed: its input is "
			 "redone on restart");
	return err;
}

static void health(struct kn_engine *e, struct kn_metrics_snapshot *s)
{
	struct eos *x = eos(e);
	int n = 0;

	s->agg_late = x->late;
	s->transactions = x->transactions;
	s->transactions_aborted = x->rewinds;
	s->assigned = kn_consumer_assigned(e->in);
	/* Offsets go through the transaction, so librdkafka's own lag (based on
	 * its committed offsets) is unknown here: the cached high watermarks
	 * against the positions instead. */
	for (int p = 0; p < x->n_parts; p++)
		if (x->parts[p].mine)
			x->tps[n++] = (struct kn_tp){x->parts[p].topic, x->parts[p].partition,
						     x->parts[p].position};
	s->consumer_lag = kn_consumer_lag_of(e->in, x->tps, n);
	s->last_progress_ms = e->last_progress;
	s->work_pending = x->dirty || s->consumer_lag > 0;
	s->healthy = !e->err[0] && s->assigned > 0 && kn_consumer_healthy(e->in);
	snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "%.150s",
		 e->err[0]		       ? e->err
		 : !kn_consumer_healthy(e->in) ? "consumer: fatal error"
					       : "no input partition assigned");
}

static void log_stats(struct kn_engine *e, char *buf, size_t size)
{
	struct eos *x = eos(e);

	snprintf(buf, size,
		 " replayed=%" PRIu64 " not_aggregated=%" PRIu64 " contributions=%" PRIu64
		 " contribution_records=%" PRIu64 " late=%" PRIu64 " no_person=%" PRIu64
		 " transactions=%" PRIu64 " rewinds=%" PRIu64,
		 x->skipped, e->not_aggregated, x->contributions, x->written, x->late, x->no_person,
		 x->transactions, x->rewinds);
}

static void destroy(struct kn_engine *e)
{
	struct eos *x = eos(e);

	kn_free(x->parts);
	kn_free(x->first_part);
	kn_free(x->topics);
	kn_free(x->tps);
	kn_free(x->meta);
	kn_xch_coalesce_destroy(x->pending);
	kn_free(x);
	e->m = NULL;
}

const struct kn_mode kn_mode_eos = {
	.name = "exactly-once",
	.start = start,
	.accept = accept,
	.aggregate = aggregate,
	.emit = emit,
	.eof = eof,
	.tick = tick,
	.drained = drained,
	.gave_up = kn_engine_unassigned_too_long,
	.finish = finish,
	.health = health,
	.log_stats = log_stats,
	.destroy = destroy,
};
