#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "kn_alloc.h"
#include "kt.h"

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
	snprintf(buf, sizeof(buf), "%sgeneralize:\n  ipv4_prefix: 32\n", minimal);
	expect_error(buf, "bad.yaml:9:", "ipv4_prefix"); /* a full address is not a prefix */
	expect_error("inputs: [\n", "bad.yaml:", "YAML syntax error");
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
	KT_RUN(test_alloc_failures);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	KT_CHECK(system(cmd) == 0);
	return kt_done();
}
