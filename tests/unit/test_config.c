#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "aggregate.h"
#include "config.h"
#include "kafka_rd.h"
#include "kn_alloc.h"
#include "kt.h"
#include "metrics.h"

#ifndef KN_SOURCE_DIR
#error KN_SOURCE_DIR must be defined by the build
#endif

static char dir[] = "/tmp/kt-config.XXXXXX";

static const char *write_cfg(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static const char minimal[] = "inputs:\n"
			      "  - {topic: in.device, type: device}\n"
			      "schemas:\n"
			      "  - id: 7\n"
			      "    type: device\n"
			      "    file: x.avsc\n"
			      "    roles: {event_id: eid, timestamp: t}\n";

static void test_example_loads(void)
{
	struct kn_config *c;
	char err[1024];

	setenv("KANON_KEY_FILE", "/tmp/some.key", 1);
	KT_CHECK(kn_config_load(KN_SOURCE_DIR "/deploy/kanon.example.yaml", NULL, 0, &c, err,
				sizeof(err)) == 0);
	if (!c)
		return;
	KT_STREQ(c->key_file, "/tmp/some.key");
	KT_CHECK(c->n_inputs == 3 && c->n_schemas == 3);
	KT_CHECK(c->geohash_precision == 5 && c->ipv4_prefix == 24 && c->ipv6_prefix == 48);
	KT_CHECK(c->time_bucket_ms == 3600000 && c->epoch_ms == 86400000);
	KT_STREQ(c->schemas[0].roles[KN_ROLE_CONSENT_LOCATION], "consent.location");
	/* Schema files resolve against the config's directory. */
	KT_STREQ(c->schemas[0].file, KN_SOURCE_DIR "/deploy/../schemas/DeviceLog.avsc");
	kn_config_destroy(c);
}

static void test_defaults_and_overrides(void)
{
	struct kn_config *c;
	char err[1024];
	const char *path = write_cfg("min.yaml", minimal);
	const char *sets[] = {"generalize.geohash_precision=6", "keys.epoch=never",
			      "kafka.producer.sasl.password=hunter2", "keys.prf=hmac-sha256"};

	KT_CHECK(kn_config_load(path, sets, 4, &c, err, sizeof(err)) == 0);
	if (!c)
		return;
	KT_CHECK(c->geohash_precision == 6);
	KT_CHECK(c->epoch_ms == 0);
	KT_CHECK(c->prf == KN_PRF_HMAC_SHA256);
	KT_STREQ(c->topic_output, "kanon.deid.v1");
	KT_CHECK(c->ts_min_ms == 946684800000LL); /* 2000-01-01 */
	/* Printed config masks the secret. */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	kn_config_print(c, f);
	fclose(f);
	KT_CHECK(strstr(text, "sasl.password: \"********\"") != NULL);
	KT_CHECK(strstr(text, "hunter2") == NULL);
	KT_CHECK(strstr(text, "geohash_precision: 6") != NULL);
	free(text);
	kn_config_destroy(c);
}

/* Each bad config must fail with file:line and the key in the message. */
static void expect_error(const char *text, const char *want1, const char *want2)
{
	struct kn_config *c = NULL;
	char err[1024] = "";
	const char *path = write_cfg("bad.yaml", text);

	KT_CHECK(kn_config_load(path, NULL, 0, &c, err, sizeof(err)) < 0);
	KT_CHECK(c == NULL);
	KT_CHECK(strstr(err, want1) != NULL);
	KT_CHECK(strstr(err, want2) != NULL);
	if (!strstr(err, want1) || !strstr(err, want2))
		fprintf(stderr, "  got: %s\n", err);
}

static void test_errors_name_key_and_line(void)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), "generalize:\n  geohash_precision: 40\n%s", minimal);
	expect_error(buf, "bad.yaml:2:", "generalize.geohash_precision");
	snprintf(buf, sizeof(buf), "generalize:\n  geohash_precison: 4\n%s", minimal);
	expect_error(buf, "bad.yaml:2:", "unknown option");
	snprintf(buf, sizeof(buf), "%skeys:\n  prf: md5\n", minimal);
	expect_error(buf, "bad.yaml:9:", "keys.prf");
	snprintf(buf, sizeof(buf), "%sgeneralize:\n  time_bucket: 5 minutes\n", minimal);
	expect_error(buf, "bad.yaml:9:", "generalize.time_bucket");
	snprintf(buf, sizeof(buf), "%svalidate:\n  ts_min: 2001-02-30\n", minimal);
	expect_error(buf, "bad.yaml:9:", "validate.ts_min"); /* not March 2 */
	snprintf(buf, sizeof(buf), "%sgeneralize:\n  ipv4_prefix: 32\n", minimal);
	expect_error(buf, "bad.yaml:9:", "ipv4_prefix"); /* a full address is not a prefix */
	snprintf(buf, sizeof(buf), "%spseudonymize:\n  phone_region: 999\n", minimal);
	expect_error(buf, "pseudonymize.phone_region", "no E.164 country calling code");
	expect_error("inputs: [\n", "bad.yaml:", "YAML syntax error");
	/* a control character: libyaml gives a byte offset, the error its line */
	expect_error("log:\n  level: info\n\n\nkafka:\n  brokers: a\x01b\n",
		     "bad.yaml:6:", "control characters");
	expect_error("schemas:\n  - id: 1\n    type: device\n    file: a.avsc\n    roles: "
		     "{event_id: e}\ninputs:\n  - {topic: t, type: device}\n",
		     "bad.yaml:2:", "timestamp");
	expect_error("schemas:\n  - id: 1\n    type: device\n    file: a\n    roles: {bogus: x}\n",
		     "bad.yaml:5:", "unknown role 'bogus'");
	expect_error("inputs:\n  - {topic: t, type: video}\n", "bad.yaml:2:", "inputs[].type");
	expect_error("kafka:\n  brokers: ${KT_SURELY_UNSET_VAR}\n",
		     "bad.yaml:2:", "KT_SURELY_UNSET_VAR is not set");
	snprintf(buf, sizeof(buf), "%stopics:\n  output: in.device\n", minimal);
	expect_error(buf, "inputs[].topic", "loop");
	/* Every topic one role, every name one Kafka accepts, every framing
	 * id one schema. */
	const char *bad[][3] = {
		{"topics:\n  dead_letter: kanon.deid.v1\n", "topics.dead_letter", "topics.output"},
		{"erasure:\n  state_topic: in.device\n", "erasure.state_topic", "inputs[].topic"},
		{"erasure:\n  requests_topic: kanon.deid.v1\n", "erasure.requests_topic",
		 "topics.output"},
		{"topics:\n  output: a/b\n", "topics.output", "not a Kafka topic name"},
		{"topics:\n  output: ..\n", "topics.output", "not a Kafka topic name"},
		{"topics:\n  deid_schema_id: 7\n", "topics.deid_schema_id", "input schema"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", minimal, bad[i][0]);
		expect_error(buf, bad[i][1], bad[i][2]);
	}
	/* An aggregate needs a name; a dimension once; a file one document. */
	snprintf(buf, sizeof(buf), "%saggregates:\n  - {name: \"\", dimensions: [geo_cell]}\n",
		 minimal);
	expect_error(buf, "aggregates[].name", "1 to 64");
	snprintf(buf, sizeof(buf),
		 "%saggregates:\n  - {name: g, dimensions: [geo_cell, geo_cell]}\n", minimal);
	expect_error(buf, "aggregates[].dimensions", "twice");
	snprintf(buf, sizeof(buf), "%s---\nlog: {level: debug}\n", minimal);
	expect_error(buf, "(document)", "more than one YAML document");
	struct kn_config *c2 = NULL;
	char err2[512];
	snprintf(buf, sizeof(buf), "---\n%s...\n# end\n---\n", minimal); /* a bare --- is none */
	KT_CHECK(kn_config_load(write_cfg("bare.yaml", buf), NULL, 0, &c2, err2, sizeof(err2)) ==
		 0);
	kn_config_destroy(c2);
	/* One input topic listed twice would be read twice. */
	expect_error("inputs:\n  - {topic: in.device, type: device}\n"
		     "  - {topic: in.device, type: access}\n"
		     "schemas:\n  - id: 7\n    type: device\n    file: a.avsc\n"
		     "    roles: {event_id: eid, timestamp: t}\n",
		     "inputs[].topic", "is also inputs[].topic");
}

static void conf_value(rd_kafka_conf_t *conf, const char *name, char *out, size_t n)
{
	if (rd_kafka_conf_get(conf, name, out, &n) != RD_KAFKA_CONF_OK)
		snprintf(out, 4, "?");
}

/* The input consumers' prefetch follows run.prefetch_memory_mb and
 * run.batch_size; the operator's kafka.consumer.* wins; the producer and
 * the erasure consumer keep librdkafka's. */
static void test_prefetch_defaults(void)
{
	struct kn_config *c = NULL;
	char err[512], v[64], buf[2048];
	rd_kafka_conf_t *conf;

	snprintf(buf, sizeof(buf), "%srun:\n  prefetch_memory_mb: 256\n  batch_size: 1000\n",
		 minimal);
	KT_CHECK(!kn_config_load(write_cfg("pf.yaml", buf), NULL, 0, &c, err, sizeof(err)));
	for (int role = 0; c && role < 2; role++) {
		conf = kn_kafka_client_conf(c, role ? KN_CLIENT_TX_CONSUMER : KN_CLIENT_CONSUMER,
					    NULL, err, sizeof(err));
		KT_CHECK(conf != NULL);
		if (!conf)
			continue;
		conf_value(conf, "queued.max.messages.kbytes", v, sizeof(v));
		KT_STREQ(v, "262144");
		conf_value(conf, "max.partition.fetch.bytes", v, sizeof(v));
		KT_STREQ(v, "16777216");
		conf_value(conf, "queued.min.messages", v, sizeof(v));
		KT_STREQ(v, "500000");
		rd_kafka_conf_destroy(conf);
	}
	conf = c ? kn_kafka_client_conf(c, KN_CLIENT_ERASURE_CONSUMER, NULL, err, sizeof(err))
		 : NULL;
	if (conf) { /* a trickle of requests: librdkafka's own */
		conf_value(conf, "max.partition.fetch.bytes", v, sizeof(v));
		KT_STREQ(v, "1048576");
		rd_kafka_conf_destroy(conf);
	}
	kn_config_destroy(c);
	const char *sets[] = {"kafka.consumer.max.partition.fetch.bytes=2097152"};
	KT_CHECK(!kn_config_load(write_cfg("pf.yaml", buf), sets, 1, &c, err, sizeof(err)));
	conf = c ? kn_kafka_client_conf(c, KN_CLIENT_CONSUMER, NULL, err, sizeof(err)) : NULL;
	if (conf) {
		conf_value(conf, "max.partition.fetch.bytes", v, sizeof(v));
		KT_STREQ(v, "2097152");
		rd_kafka_conf_destroy(conf);
	}
	kn_config_destroy(c);
}

/* An invalid privacy budget is refused, by name; a valid one yields the
 * mechanism's parameters. */
static void test_privacy_budget(void)
{
	static const char *const bad[][2] = {
		{"  privacy:\n    epsilon: 0\n", "aggregate.privacy.epsilon"},
		{"  privacy:\n    epsilon: -1\n", "aggregate.privacy.epsilon"},
		{"  privacy:\n    epsilon: 21\n", "aggregate.privacy.epsilon"},
		{"  privacy:\n    epsilon: 1e-3\n", "aggregate.privacy.epsilon"},
		{"  privacy:\n    epsilon: 0.0000001\n", "aggregate.privacy.epsilon"},
		{"  privacy:\n    delta: 0\n", "aggregate.privacy.delta"},
		{"  privacy:\n    delta: 1\n", "aggregate.privacy.delta"},
		{"  privacy:\n    delta: nan\n", "aggregate.privacy.delta"},
		{"  privacy:\n    delta: 1e-6x\n", "aggregate.privacy.delta"},
		{"  privacy:\n    mode: laplace\n", "aggregate.privacy.mode"},
	};
	char buf[2048];
	struct kn_config *c = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "%saggregate:\n%s", minimal, bad[i][0]);
		expect_error(buf, bad[i][1], bad[i][1]);
	}
	char err[512];
	snprintf(buf, sizeof(buf),
		 "%saggregate:\n  max_groups_per_person: 2\n  privacy:\n"
		 "    epsilon: 0.5\n    delta: 1e-9\n",
		 minimal);
	KT_CHECK(!kn_config_load(write_cfg("ok.yaml", buf), NULL, 0, &c, err, sizeof(err)));
	KT_CHECK(c && c->agg_mode == KN_AGG_DP && c->agg_dp.epsilon == 0.5);
	KT_CHECK(c && c->agg_dp.people_scale == 8 && c->agg_dp.delta <= 1e-9);
	kn_config_destroy(c);
}

/* The release scope binds the noise (aggregate.c): the same for settings
 * that do not shape the counts (a role, an instance, the brokers), another
 * for one that does (the policy, its lexicon, the inputs, the keys). */
static void test_release_scope(void)
{
	static const char *const same[] = {"run.role=bound", "run.instance=b",
					   "kafka.brokers=10.0.0.1:9092", "log.level=debug"};
	static const char *const other[] = {"policy.minor_age=21",
					    "policy.unknown_age_is_minor=true",
					    "policy.sensitive_terms=" KN_SOURCE_DIR
					    "/deploy/policy/query_taxonomy.txt",
					    "validate.ts_min=2010-01-01",
					    "keys.prf=hmac-sha256",
					    "generalize.ipv4_prefix=16",
					    "aggregate.transactional_id=another"};
	const char *path = KN_SOURCE_DIR "/deploy/kanon.example.yaml";
	struct kn_config *base = NULL, *c = NULL;
	char err[512];

	KT_CHECK(!kn_config_load(path, NULL, 0, &base, err, sizeof(err)));
	if (!base)
		return;
	KT_CHECK(base->release_scope && !strncmp(base->release_scope, "kanon-aggregator|", 17));
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		KT_CHECK(!kn_config_load(path, &same[i], 1, &c, err, sizeof(err)));
		KT_CHECK(c && !strcmp(c->release_scope, base->release_scope));
		kn_config_destroy(c);
	}
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		KT_CHECK(!kn_config_load(path, &other[i], 1, &c, err, sizeof(err)));
		KT_CHECK(c && strcmp(c->release_scope, base->release_scope));
		if (c && !strcmp(c->release_scope, base->release_scope))
			fprintf(stderr, "  same scope with %s\n", other[i]);
		kn_config_destroy(c);
	}
	kn_config_destroy(base);
}

/* YAML lets a mapping repeat a key and libyaml keeps both: kanon refuses,
 * wherever the key is, and however the dotted path is spelled. */
static void test_duplicates_refused(void)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), "%skeys:\n  epoch: 1d\n  epoch: 7d\n", minimal);
	expect_error(buf, "bad.yaml:10:", "given twice in one mapping (first at line 9)");
	snprintf(buf, sizeof(buf), "%skeys:\n  epoch: 1d\nkeys:\n  prf: siphash\n", minimal);
	expect_error(buf, "bad.yaml:10:", "given twice");
	snprintf(buf, sizeof(buf), "%skeys:\n  epoch: 1d\nkeys.epoch: 7d\n", minimal);
	expect_error(buf, "bad.yaml:10:", "keys.epoch: given twice in the file (first at line 9)");
	snprintf(buf, sizeof(buf),
		 "%skafka:\n  producer:\n    linger.ms: 5\nkafka.producer.linger.ms: 6\n", minimal);
	expect_error(buf, "kafka.producer.linger.ms", "given twice");
	expect_error("inputs:\n  - {topic: a, type: device, topic: b}\n",
		     "bad.yaml:2:", "given twice");
	expect_error("schemas:\n  - id: 1\n    type: device\n    file: a\n"
		     "    roles: {event_id: e, timestamp: t, event_id: f}\n",
		     "bad.yaml:5:", "given twice");
	/* Properties kanon owns cannot be smuggled in. */
	snprintf(buf, sizeof(buf), "%skafka:\n  consumer:\n    group.id: other\n", minimal);
	expect_error(buf, "kafka.consumer.group.id", "kafka.group_id");
	/* --set still overrides what the file says. */
	struct kn_config *c;
	char err[1024];
	snprintf(buf, sizeof(buf), "%skeys:\n  epoch: 1d\nkafka:\n  producer:\n    linger.ms: 5\n",
		 minimal);
	const char *path = write_cfg("dup.yaml", buf);
	const char *sets[] = {"keys.epoch=7d", "kafka.producer.linger.ms=9"};
	KT_CHECK(kn_config_load(path, sets, 2, &c, err, sizeof(err)) == 0);
	if (c) {
		KT_CHECK(c->epoch_ms == 7 * 86400000LL);
		KT_CHECK(c->n_producer == 1 && !strcmp(c->producer[0].value, "9"));
		kn_config_destroy(c);
	}
	/* registry TLS files are read now, not at the first request */
	snprintf(buf, sizeof(buf),
		 "%sschema_registry:\n  url: https://127.0.0.1:1\n  ca_file: /nonexistent.pem\n",
		 minimal);
	expect_error(buf, "schema_registry.ca_file", "No such file");
	/* run.assignment_wait must outlast the consumer's session. */
	snprintf(buf, sizeof(buf),
		 "%srun:\n  assignment_wait: 30s\nkafka:\n  consumer:\n    session.timeout.ms: "
		 "45000\n",
		 minimal);
	expect_error(buf, "run.assignment_wait", "session.timeout.ms");
	/* ...librdkafka's 45 s when none is set (at least once: a crashed
	 * member's partitions wait it out) */
	snprintf(buf, sizeof(buf), "%srun:\n  assignment_wait: 40s\n", minimal);
	expect_error(buf, "run.assignment_wait", "librdkafka's default");
	snprintf(buf, sizeof(buf), "%srun:\n  assignment_wait: 46s\n", minimal);
	KT_CHECK(kn_config_load(write_cfg("wait46.yaml", buf), NULL, 0, &c, err, sizeof(err)) == 0);
	kn_config_destroy(c);
	/* ...and none for an exactly-once instance, a static member whose
	 * restart takes its partitions back at once */
	const char *eos[] = {"run.guarantee=exactly-once"};
	snprintf(buf, sizeof(buf), "%srun:\n  assignment_wait: 5s\n", minimal);
	KT_CHECK(kn_config_load(write_cfg("wait5.yaml", buf), eos, 1, &c, err, sizeof(err)) == 0);
	kn_config_destroy(c);
}

/* librdkafka checks every client's properties before anything connects. */
static void test_kafka_properties_checked(void)
{
	struct kn_config *c;
	char err[1024];
	const char *path = write_cfg("min.yaml", minimal);
	const char *good[] = {"kafka.producer.linger.ms=5", "kafka.consumer.fetch.wait.max.ms=10"};
	const char *bad[][2] = {{"kafka.consumer.not.a.prop=1", "not.a.prop"},
				{"kafka.producer.linger.ms=notanumber", "linger.ms"},
				{"kafka.producer.compression.type=zip", "compression.type"},
				{"kafka.consumer.session.timeout.ms=-5", "session.timeout.ms"},
				/* combinations librdkafka checks only when a client is made */
				{"kafka.producer.acks=0", "acks"},
				{"kafka.producer.max.in.flight=6", "max.in.flight"},
				/* one broker list for every client */
				{"kafka.consumer.bootstrap.servers=h:9092", "kafka.brokers"}};

	KT_CHECK(kn_config_load(path, good, 2, &c, err, sizeof(err)) == 0);
	KT_CHECK(c && kn_kafka_check_conf(c, err, sizeof(err)) == 0);
	kn_config_destroy(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = NULL;
		err[0] = '\0';
		KT_CHECK(kn_config_load(path, &bad[i][0], 1, &c, err, sizeof(err)) == 0);
		KT_CHECK(c && kn_kafka_check_conf(c, err, sizeof(err)) == -EINVAL);
		KT_CHECK(strstr(err, bad[i][1]) != NULL);
		kn_config_destroy(c);
	}
	/* The exactly-once producer's limits bind only where it is made. */
	const char *eos[] = {"kafka.producer.message.timeout.ms=600000",
			     "run.guarantee=exactly-once"};
	KT_CHECK(kn_config_load(path, eos, 1, &c, err, sizeof(err)) == 0);
	KT_CHECK(c && !c->exactly_once && kn_kafka_check_conf(c, err, sizeof(err)) == 0);
	kn_config_destroy(c);
	KT_CHECK(kn_config_load(path, eos, 2, &c, err, sizeof(err)) == 0);
	KT_CHECK(c && c->exactly_once && kn_kafka_check_conf(c, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "transaction.timeout.ms") != NULL);
	kn_config_destroy(c);
	/* Kerberos' kinit is never run by the check (it would reach a KDC). */
	const char *krb[] = {"kafka.producer.security.protocol=SASL_PLAINTEXT",
			     "kafka.producer.sasl.mechanisms=GSSAPI",
			     "kafka.producer.sasl.kerberos.kinit.cmd=touch /tmp/kt_kinit_ran"};
	unlink("/tmp/kt_kinit_ran");
	KT_CHECK(kn_config_load(path, krb, 3, &c, err, sizeof(err)) == 0);
	KT_CHECK(c && kn_kafka_check_conf(c, err, sizeof(err)) == 0);
	KT_CHECK(access("/tmp/kt_kinit_ran", F_OK) != 0);
	kn_config_destroy(c);
	/* OAUTHBEARER is checked too, with a local token (no identity provider). */
	const char *oauth[] = {"kafka.producer.security.protocol=SASL_PLAINTEXT",
			       "kafka.producer.sasl.mechanisms=OAUTHBEARER",
			       "kafka.producer.acks=0"};
	KT_CHECK(kn_config_load(path, oauth, 2, &c, err, sizeof(err)) == 0);
	KT_CHECK(c && kn_kafka_check_conf(c, err, sizeof(err)) == 0);
	kn_config_destroy(c);
	KT_CHECK(kn_config_load(path, oauth, 3, &c, err, sizeof(err)) == 0);
	KT_CHECK(c && kn_kafka_check_conf(c, err, sizeof(err)) == -EINVAL);
	kn_config_destroy(c);
	/* The metrics address is checked by form, before binding anything. */
	KT_CHECK(kn_metrics_check_addr("127.0.0.1:9464", err, sizeof(err)) == 0);
	KT_CHECK(kn_metrics_check_addr("[::1]:9464", err, sizeof(err)) == 0);
	KT_CHECK(kn_metrics_check_addr("localhost:9464", err, sizeof(err)) == 0);
	const char *addrs[] = {"notaport",	  "127.0.0.1:",	   "127.0.0.1:12abc",
			       "127.0.0.1:70000", ":9464",	   "host.example:9464",
			       "127.0.0.1:0",	  "127.0.0.1: 80", "127.0.0.1:+80"};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++)
		KT_CHECK(kn_metrics_check_addr(addrs[i], err, sizeof(err)) == -EINVAL);
}

static void test_alloc_failures(void)
{
	/* Fail the Nth allocation for every N the load makes: each must fail
	 * cleanly (ASan/valgrind builds check nothing leaks). */
	const char *path = write_cfg("min.yaml", minimal);
	struct kn_config *c;
	char err[1024];
	int failures = 0, n;

	for (n = 1; n < 500; n++) {
		kn_alloc_fail_after((unsigned long)n);
		int rc = kn_config_load(path, NULL, 0, &c, err, sizeof(err));
		kn_alloc_fail_after(0);
		if (rc == 0) {
			kn_config_destroy(c);
			break;
		}
		failures++;
	}
	KT_CHECK(failures > 5); /* the load does allocate; every failure was survived */
	KT_CHECK(n < 500);
}

int main(void)
{
	KT_CHECK(mkdtemp(dir) != NULL);
	KT_RUN(test_example_loads);
	KT_RUN(test_defaults_and_overrides);
	KT_RUN(test_errors_name_key_and_line);
	KT_RUN(test_prefetch_defaults);
	KT_RUN(test_privacy_budget);
	KT_RUN(test_release_scope);
	KT_RUN(test_duplicates_refused);
	KT_RUN(test_kafka_properties_checked);
	KT_RUN(test_alloc_failures);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	KT_CHECK(system(cmd) == 0);
	return kt_done();
}
