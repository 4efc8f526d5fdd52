#include "kafka_rd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "kn_alloc.h"
#include "log.h"
#include "stop.h"

#include <librdkafka/rdkafka_mock.h>

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
	enum kn_log_level l = level <= 3   ? KN_LOG_ERROR
			      : level == 4 ? KN_LOG_WARN
			      : level <= 6 ? KN_LOG_INFO
					   : KN_LOG_DEBUG;
	kn_log(l, "rdkafka", "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

int kn_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
		      size_t errstr_size)
{
	char why[256];

	if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
		snprintf(errstr, errstr_size, "kafka property '%s': %s", name, why);
		return -EINVAL;
	}
	return 0;
}

int kn_kafka_conf_set_pairs(rd_kafka_conf_t *conf, const char *const *kv, char *errstr,
			    size_t errstr_size)
{
	for (; kv && kv[0]; kv += 2)
		if (kn_kafka_conf_set(conf, kv[0], kv[1], errstr, errstr_size))
			return -EINVAL;
	return 0;
}

const char *kn_kafka_version(void)
{
	return rd_kafka_version_str();
}

/* How long the broker may hold a fetch that finds nothing new (librdkafka:
 * 500 ms). Every wait for the end of a partition pays it once: start-up
 * reads the erasure state to its end (0.5 s of a run, measured), and each
 * stage of the aggregation topology waits on the one before for records a
 * transaction just made visible. A busy partition never waits; an idle
 * consumer asks ten times a second. */
#define FETCH_WAIT "fetch.wait.max.ms", "100"

/* A keyed record goes where a Java client would put it (murmur2), so one
 * person's events share a partition with what Kafka Streams or a Java
 * producer keys by the same pseudonym elsewhere; librdkafka's own default
 * hashes with CRC32. Unkeyed records are spread at random, as before. */
#define KEYED "partitioner", "murmur2_random"

/* Every client kanon makes: its defaults (the operator may override them)
 * and what its delivery guarantee needs (the operator may not). group.id and
 * transactional.id come from kanon's own options and are always forced. */
static const struct client {
	const char *name;
	bool consumer, tx;
	const char *defaults[12]; /* name, value pairs, NULL-terminated */
	const char *forced[8];
	const char *forced_why; /* what the forced settings keep */
} clients[KN_CLIENTS] = {
	[KN_CLIENT_CONSUMER] = {"consumer",
				true,
				false,
				{"statistics.interval.ms", "5000", "auto.offset.reset", "earliest",
				 "client.id", "kanon-consumer", FETCH_WAIT},
				/* at-least-once: only offsets.c decides what is committed */
				{"enable.auto.commit", "false", "enable.auto.offset.store", "false",
				 "enable.partition.eof", "true"},
				"only offsets of delivered records are committed"},
	[KN_CLIENT_PRODUCER] = {"producer",
				false,
				false,
				{"linger.ms", "20", "batch.size", "1000000", "compression.type",
				 "lz4", "client.id", "kanon-producer", KEYED},
				/* no duplicates from retries */
				{"enable.idempotence", "true"},
				"no duplicates from retries"},
	[KN_CLIENT_TX_CONSUMER] = {"exactly-once consumer",
				   true,
				   false,
				   /* Static members (the instance's name): a session
				    * that outlives a 5-minute outage, as the transactions
				    * do; shorter, a member whose session expired while the
				    * broker was away can be fenced by its own rejoin
				    * (librdkafka#3437). A restart under the same name
				    * takes its partitions back at once whatever this is. */
				   {"auto.offset.reset", "earliest", "client.id",
				    "kanon-tx-consumer", "session.timeout.ms", "300000",
				    FETCH_WAIT},
				   {"enable.auto.commit", "false", "enable.partition.eof", "true",
				    "isolation.level", "read_committed"},
				   "offsets go through the transactions; aborted input "
				   "is never read"},
	[KN_CLIENT_TX_PRODUCER] = {"exactly-once producer",
				   false,
				   true,
				   /* A transaction outlives a 5-minute outage; the broker
				    * allows up to transaction.max.timeout.ms (15 min). */
				   {"linger.ms", "20", "compression.type", "lz4", "client.id",
				    "kanon-tx-producer", "transaction.timeout.ms", "300000", KEYED},
				   {"enable.idempotence", "true"},
				   "transactions need it"},
	[KN_CLIENT_ERASURE_CONSUMER] = {"erasure consumer",
					true,
					false,
					{"client.id", "kanon-erasure", FETCH_WAIT},
					/* every request ever made, committed by kanon only
					 * once its state record is durable */
					{"enable.auto.commit", "false", "auto.offset.reset",
					 "earliest", "enable.auto.offset.store", "true"},
					"every erasure request is read, and committed once its "
					"state is durable"},
	[KN_CLIENT_ERASURE_PRODUCER] = {"erasure producer",
					false,
					false,
					{"client.id", "kanon-erasure"},
					{"enable.idempotence", "true"},
					"no duplicates from retries"},
	[KN_CLIENT_GEN_PRODUCER] = {"generator producer",
				    false,
				    false,
				    {"linger.ms", "20", "client.id", "kanon-gen"},
				    {"enable.idempotence", "true"},
				    "no duplicates from retries"},
	[KN_CLIENT_READER] = {"reader",
			      true,
			      false,
			      {"client.id", "kanon-reader", FETCH_WAIT},
			      /* reads what a downstream consumer would see, commits nothing */
			      {"enable.auto.commit", "false", "enable.partition.eof", "true",
			       "isolation.level", "read_committed"},
			      "it reads what a downstream consumer would see"},
};

/* The input consumers' prefetch, derived from run.prefetch_memory_mb and
 * run.batch_size (librdkafka's defaults starve a pipeline that is faster
 * than one 1 MiB fetch per partition and round trip): the whole budget for
 * the queue, a sixteenth of it (1 to 16 MiB) per partition fetch, and
 * enough queued messages for 500 batches. Defaults: the operator's
 * kafka.consumer.* still wins. */
static int set_prefetch(rd_kafka_conf_t *conf, const struct kn_config *c, char *errstr,
			size_t errsz)
{
	int64_t mb = c->prefetch_mb, fetch = mb * 1024 * 1024 / 16;
	int64_t min_msgs = c->batch_size * 500;
	char kb[24], fb[24], mm[24];

	fetch = fetch < (1 << 20) ? (1 << 20) : fetch > (16 << 20) ? (16 << 20) : fetch;
	min_msgs = min_msgs < 100000 ? 100000 : min_msgs > 10000000 ? 10000000 : min_msgs;
	snprintf(kb, sizeof(kb), "%lld", (long long)(mb * 1024 > 2097151 ? 2097151 : mb * 1024));
	snprintf(fb, sizeof(fb), "%lld", (long long)fetch);
	snprintf(mm, sizeof(mm), "%lld", (long long)min_msgs);
	if (kn_kafka_conf_set(conf, "queued.max.messages.kbytes", kb, errstr, errsz) ||
	    kn_kafka_conf_set(conf, "max.partition.fetch.bytes", fb, errstr, errsz) ||
	    kn_kafka_conf_set(conf, "queued.min.messages", mm, errstr, errsz))
		return -EINVAL;
	return 0;
}

rd_kafka_conf_t *kn_kafka_client_conf(const struct kn_config *c, enum kn_client role,
				      const char *group, char *errstr, size_t errstr_size)
{
	const struct client *cl = &clients[role];
	const struct kn_kv *props = cl->consumer ? c->consumer : c->producer;
	int n = cl->consumer ? c->n_consumer : c->n_producer;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char why[400];

	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (kn_kafka_conf_set(conf, "bootstrap.servers", c->brokers, why, sizeof(why)) ||
	    kn_kafka_conf_set_pairs(conf, cl->defaults, why, sizeof(why)) ||
	    ((role == KN_CLIENT_CONSUMER || role == KN_CLIENT_TX_CONSUMER) &&
	     set_prefetch(conf, c, why, sizeof(why))))
		goto fail_why;
	for (int i = 0; i < n; i++) {
		if (!strcmp(props[i].key, "bootstrap.servers") ||
		    !strcmp(props[i].key, "metadata.broker.list")) {
			snprintf(why, sizeof(why),
				 "%s: set kafka.brokers instead (one list for "
				 "every client)",
				 props[i].key);
			goto fail_why;
		}
		if (kn_kafka_conf_set(conf, props[i].key, props[i].value, why, sizeof(why)))
			goto fail_why;
	}
	if (kn_kafka_conf_set_pairs(conf, cl->forced, why, sizeof(why)) ||
	    (cl->consumer &&
	     kn_kafka_conf_set(conf, "group.id", group ? group : c->group_id, why, sizeof(why))) ||
	    (cl->tx &&
	     kn_kafka_conf_set(conf, "transactional.id", c->transactional_id, why, sizeof(why))))
		goto fail_why;
	return conf;
fail_why:
	snprintf(errstr, errstr_size, "%s (kafka.%s.*): %s", cl->name,
		 cl->consumer ? "consumer" : "producer", why);
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static void quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk, (void)level, (void)fac, (void)buf;
}

/* Creates the client from conf (owned) without a broker to talk to, and
 * destroys it: librdkafka checks property combinations only when a client
 * is made (acks=0 with idempotence, max.in.flight above 5, an unreadable
 * ssl.ca.location). With no bootstrap.servers the client talks to no
 * broker; what else a client may start at once is switched off (Kerberos'
 * kinit) or replaced (OAUTHBEARER's token refresh, which may call an
 * identity provider, by a local unsecured token), so the check makes no
 * network I/O. */
static int try_client(rd_kafka_conf_t *conf, bool consumer, char *why, size_t whysz)
{
	char mech[128];
	size_t n = sizeof(mech);
	rd_kafka_t *rk;

	rd_kafka_conf_set_log_cb(conf, quiet_log_cb);
	/* OAUTHBEARER: a local unsecured token instead of the configured way
	 * of getting one, which may call an identity provider. A build without
	 * OIDC refuses sasl.oauthbearer.method: then nothing calls one. */
	if (rd_kafka_conf_get(conf, "sasl.mechanisms", mech, &n) == RD_KAFKA_CONF_OK &&
	    strcasestr(mech, "OAUTHBEARER")) {
		char ignored[256];
		rd_kafka_conf_set(conf, "sasl.oauthbearer.method", "default", ignored,
				  sizeof(ignored));
		if (rd_kafka_conf_set(conf, "enable.sasl.oauthbearer.unsecure.jwt", "true", why,
				      whysz) ||
		    rd_kafka_conf_set(conf, "sasl.oauthbearer.config", "principal=kanon-check", why,
				      whysz)) {
			rd_kafka_conf_destroy(conf);
			return -EINVAL;
		}
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", "", why, whysz) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "sasl.kerberos.min.time.before.relogin", "0", why, whysz) !=
		    RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, why, whysz);
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	return 0;
}

/* Whether `kanon run` with this config makes a client of this role: only
 * those are made for the check (an at-least-once run never makes the
 * exactly-once producer, whose limits would not apply to it). */
static bool run_makes(const struct kn_config *c, enum kn_client r)
{
	switch (r) {
	case KN_CLIENT_CONSUMER:
	case KN_CLIENT_PRODUCER:
		return !c->exactly_once;
	case KN_CLIENT_TX_CONSUMER:
	case KN_CLIENT_TX_PRODUCER:
		return c->exactly_once;
	case KN_CLIENT_ERASURE_CONSUMER:
	case KN_CLIENT_ERASURE_PRODUCER:
		return c->erasure_enabled;
	default:
		return false;
	}
}

/* An operator's property that the run's consumer or producer (role r)
 * would have overridden: refused, since `check` would otherwise print a
 * setting that is not in effect. The same value is fine. The erasure
 * clients' own settings are not the operator's business: kafka.consumer.*
 * is written for the input consumer (auto.offset.reset latest is its
 * choice, while the erasure consumer always reads every request). */
static int check_forced(const struct kn_config *c, enum kn_client r, char *errstr,
			size_t errstr_size)
{
	const struct client *cl = &clients[r];
	const struct kn_kv *props = cl->consumer ? c->consumer : c->producer;
	int n = cl->consumer ? c->n_consumer : c->n_producer;

	for (int i = 0; i < n; i++)
		for (int f = 0; cl->forced[f]; f += 2)
			if (!strcmp(props[i].key, cl->forced[f]) &&
			    strcasecmp(props[i].value, cl->forced[f + 1])) {
				snprintf(errstr, errstr_size,
					 "kafka.%s.%s: kanon's %s sets it to %s (%s); remove "
					 "it",
					 cl->consumer ? "consumer" : "producer", props[i].key,
					 cl->name, cl->forced[f + 1], cl->forced_why);
				return -EINVAL;
			}
	return 0;
}

int kn_kafka_check_conf(const struct kn_config *c, char *errstr, size_t errstr_size)
{
	char why[512];

	for (int r = 0; r < KN_CLIENTS; r++) {
		rd_kafka_conf_t *conf = kn_kafka_client_conf(c, r, NULL, errstr, errstr_size);
		if (!conf)
			return -EINVAL;
		if (!run_makes(c, r)) {
			rd_kafka_conf_destroy(conf);
			continue;
		}
		if (r <= KN_CLIENT_TX_PRODUCER && check_forced(c, r, errstr, errstr_size)) {
			rd_kafka_conf_destroy(conf);
			return -EINVAL;
		}
		if (try_client(conf, clients[r].consumer, why, sizeof(why))) {
			snprintf(errstr, errstr_size, "%s (kafka.%s.*): %s", clients[r].name,
				 clients[r].consumer ? "consumer" : "producer", why);
			return -EINVAL;
		}
	}
	return 0;
}

int64_t kn_kafka_stats_lag(const char *json, size_t len)
{
	static const char key[] = "\"consumer_lag\":";
	const char *p = json, *end = json + len;
	int64_t sum = -1;

	/* A scan, not a JSON parser: the statistics format puts one
	 * "consumer_lag": <int> in each partition object. */
	while ((p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1))) {
		char *num_end;
		long long v;
		p += sizeof(key) - 1;
		v = strtoll(p, &num_end, 10);
		if (num_end != p && v >= 0)
			sum = (sum < 0 ? 0 : sum) + v;
	}
	return sum;
}

ssize_t kn_kafka_consume_ready(rd_kafka_queue_t *q, int timeout_ms, rd_kafka_message_t **msgs,
			       size_t max)
{
	ssize_t n;

	if (!max || !(msgs[0] = rd_kafka_consume_queue(q, timeout_ms)))
		return 0;
	n = max > 1 ? rd_kafka_consume_batch_queue(q, 0, msgs + 1, max - 1) : 0;
	return n < 0 ? 1 : n + 1;
}

/* ---- bounded waits ---- */

int kn_kafka_flush(rd_kafka_t *rk, int64_t until)
{
	int w;

	while (rd_kafka_outq_len(rk) > 0) {
		if (!(w = kn_stop_drain_wait(until)))
			return kn_mono_ms() >= until ? -ETIMEDOUT : -ECANCELED;
		rd_kafka_flush(rk, w);
	}
	return 0;
}

int kn_kafka_commit(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *offsets, int64_t until,
		    char *why, size_t why_size)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_resp_err_t err;
	int w, res = -ETIMEDOUT;

	/* The result comes as an event on q: waiting for it is ours to bound,
	 * where rd_kafka_commit(sync) would wait as long as the broker takes. */
	err = rd_kafka_commit_queue(rk, offsets, q, NULL, NULL);
	if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
		res = 0; /* nothing to commit */
	} else if (err) {
		snprintf(why, why_size, "%s", rd_kafka_err2str(err));
		res = -EIO;
	}
	while (res == -ETIMEDOUT && (w = kn_stop_drain_wait(until)) > 0) {
		rd_kafka_event_t *ev = rd_kafka_queue_poll(q, w);
		if (!ev)
			continue;
		if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
			err = rd_kafka_event_error(ev);
			res = err && err != RD_KAFKA_RESP_ERR__NO_OFFSET ? -EIO : 0;
			if (res)
				snprintf(why, why_size, "%s", rd_kafka_err2str(err));
		}
		rd_kafka_event_destroy(ev);
	}
	if (res == -ETIMEDOUT && kn_mono_ms() < until) {
		res = -ECANCELED;
		snprintf(why, why_size, "no answer before the stop deadline");
	} else if (res == -ETIMEDOUT) {
		snprintf(why, why_size, "no answer in time");
	}
	rd_kafka_queue_destroy(q);
	return res;
}

struct doomed {
	rd_kafka_t *rk;
	int flags;
};

static void destroy_now(void *arg)
{
	struct doomed *d = arg;

	rd_kafka_destroy_flags(d->rk, d->flags);
}

bool kn_kafka_destroy(rd_kafka_t *rk, int flags, int64_t until)
{
	struct doomed *d;

	if (!rk)
		return true;
	if (until <= 0)
		until = INT64_MAX;
	if (!(d = kn_calloc(1, sizeof(*d)))) {
		rd_kafka_destroy_flags(rk, flags);
		return true;
	}
	d->rk = rk;
	d->flags = flags;
	if (kn_stop_bounded(destroy_now, kn_free, d, until, false)) {
		kn_free(d);
		return true;
	}
	kn_warn("kafka", "%s: still shutting down at the deadline: left to the process's exit",
		rd_kafka_name(rk));
	return false;
}

bool kn_kafka_close(rd_kafka_t *rk, bool leave, int64_t until)
{
	int64_t end, stop = kn_stop_deadline();
	bool left = false;

	if (!rk)
		return false;
	if (until <= 0)
		until = INT64_MAX;
	end = until < stop ? until : stop;
	if (leave && end - kn_mono_ms() >= KN_STOP_LEAVE_MS) {
		rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
		rd_kafka_error_t *e = rd_kafka_consumer_close_queue(rk, q);
		if (e) {
			kn_warn("kafka", "leaving the group: %s", rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		}
		/* Serves the rebalance callback; messages still queued are dropped
		 * (their offsets are not committed, so they are read again). */
		while (!e && !rd_kafka_consumer_closed(rk) && kn_stop_wait(until) > 0) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, kn_stop_wait(until));
			if (m)
				rd_kafka_message_destroy(m);
		}
		left = !e && rd_kafka_consumer_closed(rk);
		rd_kafka_queue_destroy(q);
	}
	/* Even without the close, librdkafka may wait for its group handler
	 * (seen: 45 s after the broker was killed), hence the bound. */
	kn_kafka_destroy(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE, end);
	return left;
}

/* The wait for one request-answer call: until `until` or the stop deadline,
 * in slices of 2 s (each call sends a new request, so a slow broker still
 * gets 2 s to answer one). 0: stop waiting. */
static int request_wait(int64_t until)
{
	int64_t end = until < kn_stop_deadline() ? until : kn_stop_deadline();
	int64_t left = end - kn_mono_ms();

	return left <= 0 ? 0 : left > 2000 ? 2000 : (int)left;
}

/* A broker that is down refuses the connection at once (__TRANSPORT,
 * __ALL_BROKERS_DOWN): asked again after a pause, until the deadline, as
 * a broker that does not answer in time is. */
rd_kafka_resp_err_t kn_kafka_metadata(rd_kafka_t *rk, rd_kafka_topic_t *only,
				      const struct rd_kafka_metadata **md, int64_t until)
{
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
	int w;

	*md = NULL;
	while ((err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
		err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) &&
	       (w = request_wait(until)) > 0) {
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT) {
			if (kn_stop_requested())
				break;
			struct timespec pause = {0, (w < 200 ? w : 200) * 1000000L};
			nanosleep(&pause, NULL);
		}
		err = rd_kafka_metadata(rk, only ? 0 : 1, only, md, w);
	}
	return err;
}

rd_kafka_resp_err_t kn_kafka_committed(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
				       int64_t until)
{
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
	int w;

	while (err == RD_KAFKA_RESP_ERR__TIMED_OUT && (w = request_wait(until)) > 0)
		err = rd_kafka_committed(rk, l, w);
	return err;
}

int kn_kafka_partition_count(rd_kafka_t *rk, const char *topic, int64_t until, char *errstr,
			     size_t errsz)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t err = kn_kafka_metadata(rk, rkt, &md, until);
	int n = 0;

	if (!err && md->topic_cnt == 1 && !md->topics[0].err)
		n = md->topics[0].partition_cnt;
	else if (!err)
		err = md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
	if (md)
		rd_kafka_metadata_destroy(md);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	    err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
		return -ENOENT;
	if (err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
		snprintf(errstr, errsz, "%s: %s", topic,
			 kn_stop_requested() ? "stopped while waiting for metadata"
					     : "no metadata in time");
		return kn_stop_requested() ? -ECANCELED : -ETIMEDOUT;
	}
	if (err) {
		snprintf(errstr, errsz, "%s: %s", topic, rd_kafka_err2str(err));
		return -EIO;
	}
	if (!n) {
		snprintf(errstr, errsz, "%s: no partitions", topic);
		return -EIO;
	}
	return n;
}

/* ---- the mock cluster ---- */

struct kn_mock {
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mc;
};

int kn_mock_new(int brokers, struct kn_mock **out, const char **bootstraps, char *errstr,
		size_t errsz)
{
	struct kn_mock *m = kn_calloc(1, sizeof(*m));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char n[16], why[256];

	*out = NULL;
	snprintf(n, sizeof(n), "%d", brokers);
	if (!m || kn_kafka_conf_set(conf, "test.mock.num.brokers", n, errstr, errsz) ||
	    kn_kafka_conf_set(conf, "log_level", "3", errstr, errsz)) {
		rd_kafka_conf_destroy(conf);
		kn_free(m);
		return -EINVAL;
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (!(m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why)))) {
		snprintf(errstr, errsz, "mock cluster: %s", why);
		rd_kafka_conf_destroy(conf);
		kn_free(m);
		return -EINVAL;
	}
	m->mc = rd_kafka_handle_mock_cluster(m->rk);
	*bootstraps = rd_kafka_mock_cluster_bootstraps(m->mc);
	*out = m;
	return 0;
}

int kn_mock_topic(struct kn_mock *m, const char *topic, int partitions)
{
	return rd_kafka_mock_topic_create(m->mc, topic, partitions, 1) ? -EIO : 0;
}

int64_t kn_mock_count(struct kn_mock *m, const char *topic, int partitions)
{
	int64_t total = 0, lo, hi;

	for (int p = 0; p < partitions; p++) {
		if (rd_kafka_query_watermark_offsets(m->rk, topic, p, &lo, &hi, 5000))
			return -1;
		total += hi - lo;
	}
	return total;
}

void kn_mock_destroy(struct kn_mock *m)
{
	if (!m)
		return;
	rd_kafka_destroy(m->rk);
	kn_free(m);
}
