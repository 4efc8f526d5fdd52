#include "source.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "kafka_conf.h"
#include "kn_alloc.h"
#include "log.h"

#define MAX_ASSIGNED 4096

struct assigned {
	char topic[256];
	int32_t partition;
	bool eof;
};

struct kn_source {
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	const struct kn_config *cfg;
	kn_source_revoke_cb *on_revoke;
	void *opaque;
	struct assigned *a;
	int n_assigned;
	bool lost; /* a fatal consumer error: nothing more comes */
	bool ever_assigned;
	int64_t unassigned_since;   /* mono ms the last partition went; 0 while holding some */
	int64_t last_commit;	    /* mono ms of the last commit the broker accepted */
	rd_kafka_topic_t *last_rkt; /* cache for kn_source_topic_type */
	int64_t lag;		    /* from the last statistics, -1 unknown */
	enum kn_event_type last_type;
};

static void track_assign(struct kn_source *s, const rd_kafka_topic_partition_list_t *parts,
			 bool add)
{
	for (int i = 0; i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *p = &parts->elems[i];
		int j;
		for (j = 0; j < s->n_assigned; j++)
			if (s->a[j].partition == p->partition && !strcmp(s->a[j].topic, p->topic))
				break;
		if (add && j == s->n_assigned && s->n_assigned < MAX_ASSIGNED) {
			snprintf(s->a[j].topic, sizeof(s->a[j].topic), "%s", p->topic);
			s->a[j].partition = p->partition;
			s->a[j].eof = false;
			s->n_assigned++;
		} else if (!add && j < s->n_assigned) {
			s->a[j] = s->a[--s->n_assigned];
		}
	}
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	((struct kn_source *)opaque)->lag = kn_kafka_stats_lag(json, len);
	return 0; /* librdkafka frees json */
}

/* Asynchronous commits answer here (served by the consumer's poll). */
static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	struct kn_source *s = opaque;

	(void)rk, (void)offsets;
	if (!err)
		s->last_commit = kn_mono_ms();
	else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		kn_warn("source", "commit: %s", rd_kafka_err2str(err));
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kn_source *s = opaque;
	bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
	rd_kafka_error_t *e = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		kn_info("source", "assigned %d partition(s)", parts->cnt);
		track_assign(s, parts, true);
		if (s->n_assigned) {
			s->ever_assigned = true;
			s->unassigned_since = 0;
		}
		if (coop)
			e = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
	} else {
		bool lost = rd_kafka_assignment_lost(rk);
		kn_info("source", "%s %d partition(s)", lost ? "lost" : "revoking", parts->cnt);
		/* Lost partitions belong to someone else already: committing for
		 * them would fail; the hook still drains what is in flight. */
		if (s->on_revoke)
			s->on_revoke(s->opaque, parts, lost);
		track_assign(s, parts, false);
		if (!s->n_assigned)
			s->unassigned_since = kn_mono_ms();
		if (coop)
			e = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
	}
	if (e) {
		kn_err("source", "rebalance: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

int kn_source_new(const struct kn_config *c, kn_source_revoke_cb *on_revoke, void *opaque,
		  struct kn_source **out, char *errstr, size_t errstr_size)
{
	struct kn_source *s = kn_calloc(1, sizeof(*s));
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *topics = NULL;
	char why[512];

	*out = NULL;
	if (!s || !(s->a = kn_calloc(MAX_ASSIGNED, sizeof(*s->a)))) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	s->cfg = c;
	s->on_revoke = on_revoke;
	s->opaque = opaque;
	s->unassigned_since = kn_mono_ms();
	if (!(conf = kn_kafka_client_conf(c, KN_CLIENT_CONSUMER, NULL, errstr, errstr_size)))
		goto fail;
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_stats_cb(conf, stats_cb);
	rd_kafka_conf_set_offset_commit_cb(conf, commit_cb);
	s->lag = -1;
	rd_kafka_conf_set_opaque(conf, s);
	s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
	if (!s->rk) {
		snprintf(errstr, errstr_size, "kafka consumer: %s", why);
		goto fail;
	}
	conf = NULL; /* owned by s->rk now */
	rd_kafka_poll_set_consumer(s->rk);
	s->q = rd_kafka_queue_get_consumer(s->rk);
	topics = rd_kafka_topic_partition_list_new(c->n_inputs);
	for (int i = 0; i < c->n_inputs; i++)
		rd_kafka_topic_partition_list_add(topics, c->inputs[i].topic,
						  RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(s->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		snprintf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(err));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	kn_source_destroy(s, false, 0);
	return -EINVAL;
}

void kn_source_destroy(struct kn_source *s, bool leave, int64_t until)
{
	if (!s)
		return;
	if (s->q)
		rd_kafka_queue_destroy(s->q);
	if (s->rk && leave && !kn_kafka_close(s->rk, true, until))
		kn_warn("source",
			"closed without leaving group '%s': its partitions return to the "
			"group after session.timeout.ms",
			s->cfg->group_id);
	else if (s->rk && !leave)
		kn_kafka_close(s->rk, false, until);
	kn_free(s->a);
	kn_free(s);
}

static void mark_eof(struct kn_source *s, const rd_kafka_message_t *m, bool eof)
{
	const char *t = rd_kafka_topic_name(m->rkt);

	for (int j = 0; j < s->n_assigned; j++) {
		if (s->a[j].partition == m->partition && !strcmp(s->a[j].topic, t)) {
			s->a[j].eof = eof;
			return;
		}
	}
}

int kn_source_poll_batch(struct kn_source *s, rd_kafka_message_t **msgs, int max, int timeout_ms)
{
	ssize_t n = kn_kafka_consume_ready(s->q, timeout_ms, msgs, (size_t)max);
	int kept = 0;

	if (n < 0) {
		kn_err("source", "consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
		return 0;
	}
	for (ssize_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		if (!m->err) {
			if (s->n_assigned && m->rkt)
				mark_eof(s, m, false);
			msgs[kept++] = m;
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			mark_eof(s, m, true);
		} else {
			kn_warn("source", "%s [%d]: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
				m->partition, rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR__FATAL)
				s->lost = true;
		}
		rd_kafka_message_destroy(m);
	}
	return kept;
}

enum kn_event_type kn_source_topic_type(struct kn_source *s, rd_kafka_topic_t *rkt)
{
	if (rkt == s->last_rkt)
		return s->last_type;
	const char *name = rd_kafka_topic_name(rkt);
	for (int i = 0; i < s->cfg->n_inputs; i++) {
		if (!strcmp(s->cfg->inputs[i].topic, name)) {
			s->last_rkt = rkt;
			return s->last_type = s->cfg->inputs[i].type;
		}
	}
	return (enum kn_event_type) - 1;
}

int kn_source_commit(struct kn_source *s, const struct kn_commit *c, int n, int64_t until)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t err;
	char why[256];
	int res = 0;

	if (!n)
		return 0;
	l = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, c[i].topic, c[i].partition)->offset =
			c[i].offset;
	if (!until) {
		err = rd_kafka_commit(s->rk, l, 1);
		if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
			kn_warn("source", "commit: %s", rd_kafka_err2str(err));
			res = -EIO;
		}
	} else if ((res = kn_kafka_commit(s->rk, l, until, why, sizeof(why)))) {
		kn_warn("source", "commit: %s", why);
	} else {
		s->last_commit = kn_mono_ms();
	}
	rd_kafka_topic_partition_list_destroy(l);
	return res;
}

bool kn_source_at_eof(const struct kn_source *s)
{
	if (!s->n_assigned)
		return false;
	for (int j = 0; j < s->n_assigned; j++)
		if (!s->a[j].eof)
			return false;
	return true;
}

bool kn_source_healthy(const struct kn_source *s)
{
	return !s->lost;
}

int64_t kn_source_lag(const struct kn_source *s)
{
	return s->lag;
}

int kn_source_assigned(const struct kn_source *s)
{
	return s->n_assigned;
}

bool kn_source_ever_assigned(const struct kn_source *s)
{
	return s->ever_assigned;
}

int64_t kn_source_unassigned_since(const struct kn_source *s)
{
	return s->n_assigned ? 0 : s->unassigned_since;
}

void kn_source_diagnose(struct kn_source *s, char *buf, size_t size)
{
	const struct rd_kafka_metadata *md = NULL;
	size_t off = 0;

	if (s->ever_assigned) {
		snprintf(buf, size,
			 "the group took this instance's partitions away (the broker was "
			 "unreachable for longer than session.timeout.ms, or the group rebalanced) "
			 "and gave none back");
		return;
	}
	if (kn_kafka_metadata(s->rk, NULL, &md, kn_mono_ms() + 5000)) {
		snprintf(buf, size, "no broker at %s answers", s->cfg->brokers);
		return;
	}
	for (int i = 0; i < s->cfg->n_inputs; i++) {
		bool found = false;
		for (int t = 0; t < md->topic_cnt && !found; t++)
			found = !strcmp(md->topics[t].topic, s->cfg->inputs[i].topic) &&
				!md->topics[t].err && md->topics[t].partition_cnt > 0;
		if (!found && off < size)
			off += (size_t)snprintf(
				buf + off, size - off, "%s%s",
				off ? ", " : "input topic(s) missing: ", s->cfg->inputs[i].topic);
	}
	rd_kafka_metadata_destroy(md);
	if (!off)
		snprintf(buf, size,
			 "the input topics exist, but group '%s' gave this instance no partition: "
			 "a crashed member still holds them until session.timeout.ms passes, or "
			 "other members hold them all",
			 s->cfg->group_id);
}

int64_t kn_source_last_commit(const struct kn_source *s)
{
	return s->last_commit;
}
