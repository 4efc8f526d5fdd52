/* kn_run under broker faults a real broker cannot easily produce, on
 * librdkafka's in-process mock cluster:
 *   1. retriable produce errors: every record delivered exactly once (the
 *      idempotent producer retries without duplicating), nothing lost;
 *   2. non-retriable produce errors: kanon stops with an error and commits
 *      nothing past the first undelivered record; a restart completes the
 *      topic with every event present;
 *   3. a stop while the broker sits on produce requests: kn_run returns
 *      within the stop budget, says it abandoned work, commits none of it,
 *      and a restart delivers every event;
 *   4. the transport under the run loop: a consumer waiting for input serves
 *      the delivery reports of the loop's producer meanwhile;
 *   5. exactly-once, the broker refusing the offsets of a transaction because
 *      another member took this instance's group.instance.id: the run says
 *      it was fenced (KN_RUN_FENCED), whatever its abort then does, and
 *      commits nothing more. */
#include <avro.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "../unit/kt.h"
#include "encode.h"
#include "gen.h"
#include "keys.h"
#include "clock.h"
#include "consumer.h"
#include "log.h"
#include "producer.h"
#include "run.h"
#include "stop.h"

#define N		  4000
#define PARTS		  2
#define PRODUCE		  0  /* Kafka ApiKey of Produce */
#define TXN_OFFSET_COMMIT 28 /* ...and of TxnOffsetCommit */

static rd_kafka_t *mock;
static rd_kafka_mock_cluster_t *mc;
static char brokers[256], keyfile[256];

/* The test's config; extra (may be NULL) overrides one more option. */
/* Events the policy lets through over the whole input topic, as counted by
 * the first test's single complete run. A restarted run's own statistics
 * cannot tell it: records the first run withheld, dead-lettered or delivered
 * before it stopped may be committed already, and the restart never sees them. */
static int64_t kept_all;

/* The example config without its aggregates (which would make the run
 * exactly-once): at-least-once is what this file tests. */
static char config_path[300];

static void write_config(const char *dir)
{
	FILE *in = fopen(KN_SOURCE_DIR "/deploy/kanon.example.yaml", "r"), *out;
	char line[1024];

	snprintf(config_path, sizeof(config_path), "%s/kanon.yaml", dir);
	out = fopen(config_path, "w");
	if (!in || !out) {
		fprintf(stderr, "config: cannot copy the example config to %s\n", config_path);
		exit(1);
	}
	while (fgets(line, sizeof(line), in) && !strstr(line, "# --- advertiser aggregates")) {
		char *rel = strstr(line, "../schemas/");
		if (rel)
			fprintf(out, "%.*s%s/%s", (int)(rel - line), line, KN_SOURCE_DIR, rel + 3);
		else
			fputs(line, out);
	}
	fclose(in);
	fclose(out);
}

static struct kn_config *load(const char *tag, const char *extra)
{
	char b[300], k[300], g[100], o[100], d[100];
	struct kn_config *c;
	char err[1024];

	snprintf(b, sizeof(b), "kafka.brokers=%s", brokers);
	snprintf(k, sizeof(k), "keys.file=%s", keyfile);
	snprintf(g, sizeof(g), "kafka.group_id=g-%s", tag);
	snprintf(o, sizeof(o), "topics.output=out-%s", tag);
	snprintf(d, sizeof(d), "topics.dead_letter=dlq-%s", tag);
	/* A short session: the mock cluster waits it out before a restarted
	 * member of the same group gets its partitions back. */
	const char *sets[] = {b,
			      k,
			      g,
			      o,
			      d,
			      "kafka.producer.message.timeout.ms=5000",
			      "run.commit_interval=100ms",
			      "kafka.consumer.session.timeout.ms=6000",
			      "kafka.consumer.heartbeat.interval.ms=1000",
			      extra};
	if (kn_config_load(config_path, sets, extra ? 10 : 9, &c, err, sizeof(err))) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	rd_kafka_mock_topic_create(mc, c->topic_output, PARTS, 1);
	rd_kafka_mock_topic_create(mc, c->topic_dead_letter, 1, 1);
	/* The mock cluster has no CreateTopics: the erasure topics exist up front. */
	rd_kafka_mock_topic_create(mc, c->erasure_requests_topic, 1, 1);
	rd_kafka_mock_topic_create(mc, c->erasure_state_topic, 1, 1);
	return c;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Distinct event_keys in topic (read back with avro-c) and total records. */
static int64_t distinct_events(const char *topic, int64_t *total)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
	rd_kafka_conf_set(conf, "group.id", "reader", err, sizeof(err));
	rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
	for (int p = 0; p < PARTS; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);

	avro_schema_t s;
	avro_schema_from_json_length(kn_deid_schema_json, strlen(kn_deid_schema_json), &s);
	avro_value_iface_t *iface = avro_generic_class_from_schema(s);
	avro_value_t v, f, b;
	avro_generic_value_new(iface, &v);
	char **keys = calloc(4 * N, sizeof(*keys));
	int64_t n = 0, eofs = 0;
	while (eofs < PARTS) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5000);
		if (!m)
			break;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			eofs++;
		else if (!m->err && n < 4 * N) {
			avro_reader_t r =
				avro_reader_memory((char *)m->payload + 5, (int64_t)m->len - 5);
			const char *key;
			size_t len;
			avro_value_read(r, &v);
			avro_value_get_by_name(&v, "event_key", &f, NULL);
			avro_value_get_current_branch(&f, &b);
			avro_value_get_string(&b, &key, &len);
			keys[n++] = strdup(key);
			avro_reader_free(r);
		}
		rd_kafka_message_destroy(m);
	}
	*total = n;
	qsort(keys, (size_t)n, sizeof(*keys), cmp_str);
	int64_t distinct = 0;
	for (int64_t i = 0; i < n; i++)
		distinct += i == 0 || strcmp(keys[i], keys[i - 1]);
	for (int64_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	avro_value_decref(&v);
	avro_value_iface_decref(iface);
	avro_schema_decref(s);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return distinct;
}

/* Sum over partitions of the group's committed offsets on the input topic. */
static int64_t committed(const struct kn_config *c)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err));
	rd_kafka_conf_set(conf, "group.id", c->group_id, err, sizeof(err));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
	for (int p = 0; p < PARTS; p++)
		rd_kafka_topic_partition_list_add(l, c->inputs[0].topic, p);
	rd_kafka_committed(rk, l, 10000);
	int64_t sum = 0;
	for (int i = 0; i < l->cnt; i++)
		sum += l->elems[i].offset > 0 ? l->elems[i].offset : 0;
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return sum;
}

/* Records the policy kept from every output, whatever the reason. */
static int64_t withheld(const struct kn_pipeline_stats *st)
{
	int64_t n = 0;

	for (int i = 0; i < KN_DROP_REASONS; i++)
		n += (int64_t)st->dropped[i];
	return n;
}

static void test_retriable_errors_exactly_once_delivery(void)
{
	struct kn_config *c = load("retry", NULL);
	struct kn_pipeline_stats st;
	struct kn_run_opts o = {.until_eof = true, .stats = &st};
	char err[512];
	int64_t total;

	rd_kafka_mock_push_request_errors(
		mc, PRODUCE, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
		RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
		RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR__TRANSPORT,
		RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND);
	KT_CHECK(kn_run(c, &o, err, sizeof(err)) == 0);
	int64_t kept = (int64_t)st.out; /* the rest: withheld by the policy, or dead letters */
	KT_CHECK(kept > N / 2 && kept + withheld(&st) == N);
	KT_CHECK(distinct_events(c->topic_output, &total) == kept);
	KT_CHECK(total == kept); /* retried, never duplicated */
	KT_CHECK(committed(c) == N + 6);
	kept_all = kept;
	kn_config_destroy(c);
}

static void test_permanent_error_commits_nothing_past_it(void)
{
	struct kn_config *c = load("perm", NULL);
	struct kn_pipeline_stats st;
	struct kn_run_opts o = {.until_eof = true, .stats = &st};
	char err[512] = "";
	int64_t total;

	/* Every produce attempt fails for a while: the first deliveries time
	 * out or are refused, and kanon must stop without committing them. */
	rd_kafka_mock_topic_set_error(mc, c->topic_output,
				      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	KT_CHECK(kn_run(c, &o, err, sizeof(err)) == -EIO);
	KT_CHECK(strstr(err, "delivery failed") != NULL);
	int64_t done = committed(c);
	KT_CHECK(done < N); /* not the whole topic: the failed records are not committed */
	rd_kafka_mock_topic_set_error(mc, c->topic_output, RD_KAFKA_RESP_ERR_NO_ERROR);

	/* Restart: everything is there, some perhaps twice (at-least-once). */
	KT_CHECK(kn_run(c, &o, err, sizeof(err)) == 0);
	KT_CHECK(kept_all > 0);
	KT_CHECK(distinct_events(c->topic_output, &total) == kept_all);
	KT_CHECK(total >= kept_all);
	KT_CHECK(committed(c) == N + 6);
	kn_config_destroy(c);
}

struct bg_run {
	struct kn_config *c;
	int err;
	char errstr[512];
};

static void *run_in_background(void *arg)
{
	struct bg_run *b = arg;
	struct kn_run_opts o = {0};

	b->err = kn_run(b->c, &o, b->errstr, sizeof(b->errstr));
	return NULL;
}

static void test_stop_while_broker_sits_on_produce(void)
{
	/* Messages must not time out before the stop's drain deadline: this
	 * is about walking away from a broker, not about failed deliveries. */
	struct kn_config *c = load("silent", "kafka.producer.message.timeout.ms=30000");
	struct bg_run b = {.c = c};
	struct kn_pipeline_stats st;
	struct kn_run_opts o = {.until_eof = true, .stats = &st};
	pthread_t t;
	char err[512];
	int64_t total;

	/* The first produce request to each partition gets its answer after
	 * a minute: records stay in flight whatever kanon waits for. */
	rd_kafka_mock_broker_push_request_error_rtts(mc, 1, PRODUCE, PARTS,
						     RD_KAFKA_RESP_ERR_NO_ERROR, 60000,
						     RD_KAFKA_RESP_ERR_NO_ERROR, 60000);
	KT_CHECK(pthread_create(&t, NULL, run_in_background, &b) == 0);
	/* Stop once both delayed requests are out (their stack entries used). */
	size_t left = PARTS;
	for (int64_t until = kn_mono_ms() + 60000; left && kn_mono_ms() < until;) {
		rd_kafka_mock_broker_error_stack_cnt(mc, 1, PRODUCE, &left);
		usleep(20000);
	}
	KT_CHECK(left == 0);
	int64_t t0 = kn_mono_ms();
	kn_stop_request();
	pthread_join(t, NULL);
	int64_t took = kn_mono_ms() - t0;
	printf("stopped in %lld ms: %s\n", (long long)took, b.errstr);
	KT_CHECK(took <= KN_STOP_BUDGET_MS + 500);
	KT_CHECK(b.err == KN_RUN_ABANDONED);
	KT_CHECK(committed(c) < N + 6); /* what was not delivered is not committed */
	kn_stop_reset();

	/* The next run delivers everything. */
	KT_CHECK(kn_run(c, &o, err, sizeof(err)) == 0);
	KT_CHECK(kept_all > 0);
	KT_CHECK(distinct_events(c->topic_output, &total) == kept_all);
	KT_CHECK(total >= kept_all);
	KT_CHECK(committed(c) == N + 6);
	kn_config_destroy(c);
}

static void on_delivered(void *opaque, const struct kn_delivery *d)
{
	if (!d->err)
		++*(int *)opaque;
}

/* Nothing but kn_consumer_poll serves the producer here: without the
 * serving, the acknowledgement would wait for the next record of input
 * (the run loop polls the producer between batches only). */
static void test_poll_serves_deliveries_while_waiting(void)
{
	struct kn_config *c = load("serve", NULL);
	struct kn_producer *p = NULL;
	struct kn_consumer *k = NULL;
	struct kn_msg msgs[8];
	char err[512];
	int delivered = 0, t;

	rd_kafka_mock_topic_create(mc, "serve-out", 1, 1);
	struct kn_producer_opts po = {KN_CLIENT_PRODUCER, on_delivered, &delivered, NULL};
	KT_CHECK(kn_producer_new(c, &po, &p, err, sizeof(err)) == 0);
	struct kn_consumer_opts co = {.role = KN_CLIENT_CONSUMER, .serve = p};
	KT_CHECK(kn_consumer_new(c, &co, &k, err, sizeof(err)) == 0);
	KT_CHECK((t = kn_producer_topic(p, "serve-out")) >= 0);
	KT_CHECK(kn_producer_send(p, t, "k", 1, "v", 1, 0, NULL, 1) == 0);
	/* No input at all: every poll ends by its timeout. */
	for (int64_t until = kn_mono_ms() + 20000; !delivered && kn_mono_ms() < until;)
		KT_CHECK(kn_consumer_poll(k, msgs, 8, 200) == 0);
	KT_CHECK(delivered == 1);
	kn_consumer_close(k, false, kn_mono_ms() + 5000);
	kn_producer_destroy(p, kn_mono_ms() + 5000);
	kn_config_destroy(c);
}

static void test_member_fenced_in_send_offsets(void)
{
	struct kn_config *c = load("member", "run.guarantee=exactly-once");
	struct kn_pipeline_stats st;
	struct kn_run_opts o = {.until_eof = true, .stats = &st};
	char err[512] = "";

	/* librdkafka reports this refusal as abortable, not fatal, and the
	 * mock's abort goes through: only the code says "fenced". */
	rd_kafka_mock_push_request_errors(mc, TXN_OFFSET_COMMIT, 1,
					  RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
	int rc = kn_run(c, &o, err, sizeof(err));
	printf("member fenced: %d: %s\n", rc, err);
	KT_CHECK(rc == KN_RUN_FENCED);
	KT_CHECK(strstr(err, "fenced") != NULL);
	KT_CHECK(strstr(err, "group.instance.id") != NULL);
	KT_CHECK(committed(c) == 0); /* its first transaction was aborted */
	kn_config_destroy(c);
}

int main(void)
{
	char err[512], dir[] = "/tmp/kt-faults.XXXXXX";
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	struct kn_gen_result gr;

	kn_log_set_level(getenv("KT_VERBOSE") ? KN_LOG_INFO : KN_LOG_ERROR);
	rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err, sizeof(err));
	rd_kafka_conf_set(conf, "log_level", "2", err, sizeof(err));
	mock = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	mc = rd_kafka_handle_mock_cluster(mock);
	snprintf(brokers, sizeof(brokers), "%s", rd_kafka_mock_cluster_bootstraps(mc));
	snprintf(keyfile, sizeof(keyfile), "%s/master.key", mkdtemp(dir));
	write_config(dir);
	KT_CHECK(kn_keys_generate(keyfile, err, sizeof(err)) == 0);

	struct kn_config *c = load("gen", NULL);
	rd_kafka_mock_topic_create(mc, c->inputs[0].topic, PARTS, 1);
	struct kn_gen_opts go = {.seed = 5,
				 .count = N,
				 .users = 300,
				 .malformed = 6,
				 .start_ms = 1793491200000LL,
				 .span_ms = 3600000,
				 .types = 1};
	KT_CHECK(kn_gen_run(c, &go, &gr, err, sizeof(err)) == 0);
	kn_config_destroy(c);

	KT_RUN(test_retriable_errors_exactly_once_delivery);
	KT_RUN(test_permanent_error_commits_nothing_past_it);
	KT_RUN(test_stop_while_broker_sits_on_produce);
	KT_RUN(test_poll_serves_deliveries_while_waiting);
	KT_RUN(test_member_fenced_in_send_offsets);
	unlink(keyfile);
	unlink(config_path);
	rmdir(dir);
	rd_kafka_destroy(mock);
	return kt_done();
}
