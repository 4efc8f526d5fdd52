/* alo: the at-least-once commit strategy (run.h). The consumer group
 * assigns partitions; every record is tracked from consumption to its
 * output's delivery report (offsets.c), and only the fully acknowledged
 * prefix of each partition is committed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "engine.h"
#include "kn_alloc.h"
#include "log.h"
#include "offsets.h"
#include "stop.h"

#define MAX_COMMITS 4096

struct alo {
	struct kn_offsets *offs;
	const char **topics; /* the input topics, as the consumer indexes them */
	struct kn_commit commits[MAX_COMMITS];
	struct kn_tp tps[MAX_COMMITS];
	char failed[512];	    /* first delivery failure */
	uint64_t acked, acked_seen; /* records done; the count health() last saw */
	int64_t last_commit;	    /* mono ms of the last commit request */
};

static struct alo *alo(struct kn_engine *e)
{
	return e->m;
}

static void on_delivery(void *opaque, const struct kn_delivery *d)
{
	struct kn_engine *e = opaque;
	struct alo *a = alo(e);
	uint32_t batch;

	if (d->err) {
		/* Leave it unacked: its offset, and every later one of its
		 * partition, stays uncommitted and is redone after restart. */
		if (!a->failed[0])
			snprintf(a->failed, sizeof(a->failed), "delivery failed: %s", d->reason);
		return;
	}
	if (kn_offsets_ack(a->offs, d->token, &batch))
		kn_trace_delivered(e->trace, batch);
	a->acked++; /* health() turns it into a time: no clock read per record */
}

/* Commits what was acknowledged: what moved since the last commit,
 * asynchronously (until 0); or every known position, waiting for the
 * broker until then (an earlier asynchronous commit may have failed
 * unseen). Returns 0 (also when nothing is known) or the consumer's error. */
static int commit(struct kn_engine *e, int64_t until)
{
	struct alo *a = alo(e);
	int n = kn_offsets_collect(a->offs, a->commits, MAX_COMMITS, until != 0);
	int err;

	for (int i = 0; i < n; i++)
		a->tps[i] = (struct kn_tp){a->commits[i].topic, a->commits[i].partition,
					   a->commits[i].offset};
	err = n ? kn_consumer_commit(e->in, a->tps, n, until) : 0;
	if (n && !err && until)
		e->last_progress = kn_mono_ms();
	return err;
}

/* Before partitions go: deliver what is in flight, commit it, forget them.
 * Lost partitions are someone else's already: their commit would fail. */
static void on_revoke(void *opaque, const struct kn_tp *parts, int n, bool lost)
{
	struct kn_engine *e = opaque;
	int64_t until = kn_mono_ms() + KN_RUN_SHUTDOWN_MS;

	if (kn_producer_flush(e->out, until))
		kn_warn("run", "revoke: %d record(s) still unacknowledged",
			kn_producer_queued(e->out));
	if (!lost)
		commit(e, until);
	for (int i = 0; i < n; i++)
		kn_offsets_forget(alo(e)->offs, parts[i].topic, parts[i].partition);
}

static int start(struct kn_engine *e, char *errstr, size_t errsz)
{
	const struct kn_config *c = e->cfg;
	struct alo *a = kn_calloc(1, sizeof(*a));
	int err;

	if (!a) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	e->m = a;
	a->last_commit = kn_mono_ms();
	a->offs = kn_offsets_new((size_t)c->max_in_flight);
	a->topics = kn_calloc((size_t)c->n_inputs, sizeof(*a->topics));
	if (!a->offs || !a->topics) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < c->n_inputs; i++)
		a->topics[i] = c->inputs[i].topic;
	struct kn_producer_opts po = {KN_CLIENT_PRODUCER, on_delivery, e, NULL};
	struct kn_consumer_opts co = {.role = KN_CLIENT_CONSUMER,
				      .topics = a->topics,
				      .n_topics = c->n_inputs,
				      .subscribe = true,
				      .on_revoke = on_revoke,
				      .opaque = e};
	if ((err = kn_producer_new(c, &po, &e->out, errstr, errsz)))
		return err;
	if ((e->t_out = kn_producer_topic(e->out, c->topic_output)) < 0 ||
	    (e->t_dlq = kn_producer_topic(e->out, c->topic_dead_letter)) < 0) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	co.serve = e->out; /* acknowledgements are seen as they come */
	if ((err = kn_consumer_new(c, &co, &e->in, errstr, errsz)))
		return err;
	kn_info("run",
		"at-least-once: consuming %d topic(s) as group '%s', writing '%s' (dead "
		"letters '%s')",
		c->n_inputs, c->group_id, c->topic_output, c->topic_dead_letter);
	return 0;
}

static bool accept(struct kn_engine *e, const struct kn_msg *m, int *part)
{
	(void)e, (void)m, (void)part;
	return true;
}

/* Tracks every record of the batch and writes its result, in order. After a
 * stop request the rest of the batch is left untracked: its offsets are not
 * committed, so the next run reads it again. Returns 0, -ECANCELED (stopped
 * while waiting) or the producer's error. */
static int emit(struct kn_engine *e, uint32_t tag, uint32_t *queued)
{
	struct alo *a = alo(e);
	int err = 0;

	for (int i = 0; i < e->b->n && !err && !kn_stop_requested(); i++) {
		const struct kn_msg *m = kn_engine_msg(e, i);
		uint64_t token;
		while ((err = kn_offsets_track(a->offs, m->topic, m->partition, m->offset, tag,
					       &token)) == -EAGAIN &&
		       !kn_stop_requested())
			kn_producer_poll(e->out, 50);
		if (err == -EAGAIN) /* stopped while in-flight records were at the cap */
			return 0;
		if (err)
			break;
		if (e->b->rec[i].state == KN_REC_DROPPED) {
			/* Withheld by the policy: nothing to write, nothing to wait for. */
			kn_offsets_ack(a->offs, token, &(uint32_t){0});
			e->dropped++;
			a->acked++;
			continue;
		}
		if (!(err = kn_engine_send(e, i, token)))
			(*queued)++;
	}
	if (err && err != -ECANCELED)
		snprintf(e->err, sizeof(e->err), "%s",
			 kn_producer_error(e->out) ? kn_producer_error(e->out) : "produce failed");
	return err;
}

static void eof(struct kn_engine *e, const struct kn_msg *m)
{
	(void)e, (void)m; /* the consumer keeps track */
}

static int failure(struct kn_engine *e)
{
	struct alo *a = alo(e);

	if (!a->failed[0] && !kn_producer_error(e->out))
		return 0;
	snprintf(e->err, sizeof(e->err), "%s",
		 a->failed[0] ? a->failed : kn_producer_error(e->out));
	return -EIO;
}

static int tick(struct kn_engine *e)
{
	struct alo *a = alo(e);

	if (failure(e))
		return -EIO;
	if (kn_mono_ms() - a->last_commit >= e->cfg->commit_interval_ms) {
		commit(e, 0);
		a->last_commit = kn_mono_ms();
	}
	return 0;
}

static bool drained(struct kn_engine *e)
{
	return kn_consumer_at_eof(e->in) &&
	       !kn_producer_flush(e->out, kn_mono_ms() + KN_RUN_SHUTDOWN_MS) &&
	       kn_offsets_in_flight(alo(e)->offs) == 0;
}

/* --until-eof and no partition: wait out a rebalance or an outage for
 * run.assignment_wait (longer than the session timeout, so a crashed
 * predecessor's partitions come back in time), then say what happened. */
bool kn_engine_unassigned_too_long(struct kn_engine *e)
{
	int64_t since = kn_consumer_unassigned_since(e->in);
	char why[400];

	if (!since || kn_mono_ms() - since < e->cfg->assign_wait_ms)
		return false;
	kn_consumer_diagnose(e->in, why, sizeof(why));
	snprintf(e->err, sizeof(e->err),
		 "--until-eof: no input partition %s for %lld s (run.assignment_wait): %s",
		 kn_consumer_ever_assigned(e->in) ? "assigned again" : "assigned",
		 (long long)(e->cfg->assign_wait_ms / 1000), why);
	return true;
}

/* The way out: deliver what is queued and commit what was delivered, within
 * KN_RUN_SHUTDOWN_MS and the stop's drain deadline. Returns err, or a
 * delivery failure, or -ECANCELED when something consumed is not delivered
 * and committed (the next run redoes it), or 0. */
static int finish(struct kn_engine *e, int err, bool done)
{
	int64_t until = kn_mono_ms() + KN_RUN_SHUTDOWN_MS;
	int ferr = kn_producer_flush(e->out, until);
	int cerr = commit(e, until);
	size_t open = kn_offsets_in_flight(alo(e)->offs);

	(void)done;
	/* Only a broker that answered is worth a LeaveGroup: one that does not
	 * would hold the close for 5 s (kn_kafka_close). */
	e->leave = !ferr && !cerr;
	if (err == -ECANCELED) /* a record not queued at a stop: untracked, redone */
		err = 0;
	if (!err)
		err = failure(e);
	if (err)
		return err;
	if (!open && !cerr)
		return 0;
	kn_warn("run",
		"stopping with %zu record(s) not yet delivered%s: the next run redoes them "
		"(nothing is lost)",
		open, cerr ? " and the last offsets not committed" : "");
	snprintf(e->err, sizeof(e->err),
		 "stopped before all consumed records were delivered and committed; they are "
		 "redone on restart");
	return -ECANCELED;
}

static void health(struct kn_engine *e, struct kn_metrics_snapshot *s)
{
	struct alo *a = alo(e);
	int64_t commit_ms = kn_consumer_last_commit(e->in);

	if (a->acked != a->acked_seen) { /* progress since the last batch */
		a->acked_seen = a->acked;
		e->last_progress = kn_mono_ms();
	}
	s->assigned = kn_consumer_assigned(e->in);
	s->consumer_lag = kn_consumer_lag(e->in);
	s->last_progress_ms = e->last_progress > commit_ms ? e->last_progress : commit_ms;
	s->work_pending = kn_offsets_in_flight(a->offs) > 0 || s->consumer_lag > 0;
	s->healthy = false;
	if (a->failed[0] || kn_producer_error(e->out))
		snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "producer: %.140s",
			 a->failed[0] ? a->failed : kn_producer_error(e->out));
	else if (!kn_consumer_healthy(e->in))
		snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason), "consumer: fatal error");
	else if (!s->assigned)
		snprintf(s->unhealthy_reason, sizeof(s->unhealthy_reason),
			 "no input partition assigned");
	else
		s->healthy = true;
}

static void log_stats(struct kn_engine *e, char *buf, size_t size)
{
	(void)e;
	if (size)
		buf[0] = '\0';
}

static void destroy(struct kn_engine *e)
{
	kn_offsets_destroy(alo(e)->offs);
	kn_free(alo(e)->topics);
	kn_free(e->m);
	e->m = NULL;
}

const struct kn_mode kn_mode_alo = {
	.name = "at-least-once",
	.start = start,
	.accept = accept,
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
