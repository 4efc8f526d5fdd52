/* schema.c's learned entries (the Schema Registry mode): a writer schema is
 * matched to the configured schema of the same record name and decoded with
 * its roles; anything else becomes an entry without a decoder and with a
 * reason; the config needs ids only without a registry. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kt.h"
#include "schema.h"

#ifndef KN_SOURCE_DIR
#error KN_SOURCE_DIR must be defined by the build
#endif

static const char *const with_registry[] = {
	"schema_registry.url=http://127.0.0.1:1/apis/ccompat/v7"};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);
	size_t n = f && buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;

	if (f)
		fclose(f);
	KT_CHECK(n > 0);
	return buf;
}

/* The DeviceLog schema with one more field at the front (a compatible
 * evolution: the decoder must follow the writer's layout). */
static char *evolved_device(void)
{
	char *s = slurp(KN_SOURCE_DIR "/schemas/DeviceLog.avsc"), *out = calloc(1, 1 << 17);
	const char *at = strstr(s, "\"fields\": [");

	KT_CHECK(at != NULL);
	at += strlen("\"fields\": [");
	sprintf(out,
		"%.*s{\"name\": \"sdk\", \"type\": [\"null\", \"string\"], \"default\": null},%s",
		(int)(at - s), s, at);
	free(s);
	return out;
}

static void test_learns_by_record_name(void)
{
	struct kn_config *c;
	struct kn_schemas *s;
	char err[512], warn[600];

	KT_CHECK(kn_config_load(KN_SOURCE_DIR "/deploy/kanon.example.yaml", with_registry, 1, &c,
				err, sizeof(err)) == 0);
	KT_CHECK(kn_schemas_load(c, &s, err, sizeof(err)) == 0);
	int configured = kn_schemas_count(s);

	char *v2 = evolved_device();
	const struct kn_schema_entry *e;
	KT_CHECK(kn_schemas_learn(s, 500, v2, warn, sizeof(warn)) == 0);
	e = kn_schemas_find(s, 500);
	KT_CHECK(e && e->dec && e->type == KN_EV_DEVICE && !warn[0]);
	KT_CHECK(kn_schemas_learn(s, 500, v2, warn, sizeof(warn)) == -EEXIST);
	free(v2);

	/* Another record: no roles for it. */
	KT_CHECK(kn_schemas_learn(s, 501,
				  "{\"type\":\"record\",\"name\":\"Other\",\"fields\":[{\"name\":"
				  "\"a\",\"type\":\"string\"}]}",
				  warn, sizeof(warn)) == 0);
	e = kn_schemas_find(s, 501);
	KT_CHECK(e && !e->dec && e->why && strstr(warn, "Other"));
	KT_STREQ(e->why, "record not configured");

	/* The same record without a field a role needs (event_id). */
	char *v3 = slurp(KN_SOURCE_DIR "/schemas/DeviceLog.avsc");
	char *f = strstr(v3, "{\"name\": \"event_id\", \"type\": \"string\"},");
	KT_CHECK(f != NULL);
	memmove(f, f + strlen("{\"name\": \"event_id\", \"type\": \"string\"},"),
		strlen(f + strlen("{\"name\": \"event_id\", \"type\": \"string\"},")) + 1);
	KT_CHECK(kn_schemas_learn(s, 502, v3, warn, sizeof(warn)) == 0);
	e = kn_schemas_find(s, 502);
	KT_CHECK(e && !e->dec);
	KT_STREQ(e->why, "roles not in writer schema");
	free(v3);

	KT_CHECK(kn_schemas_learn(s, 503, "{not json", warn, sizeof(warn)) == 0);
	KT_STREQ(kn_schemas_find(s, 503)->why, "registry schema invalid");
	KT_CHECK(kn_schemas_refuse(s, 504, "registry schema unusable", 0) == 0);
	KT_STREQ(kn_schemas_find(s, 504)->why, "registry schema unusable");
	KT_CHECK(kn_schemas_refuse(s, 504, "x", 0) == -EEXIST);
	KT_CHECK(kn_schemas_refuse(s, 1, "x", 0) == -EEXIST);	 /* a configured id */
	KT_CHECK(kn_schemas_refuse(s, 500, "x", 99) == -EEXIST); /* a learned one */

	/* Refused for now, then learned after all (a replica caught up). */
	KT_CHECK(kn_schemas_refuse(s, 505, "not in registry", 1000) == 0);
	e = kn_schemas_find(s, 505);
	KT_CHECK(e && !e->dec && e->retry_at_ms == 1000);
	KT_CHECK(kn_schemas_refuse(s, 505, "not in registry", 2000) == 0);
	KT_CHECK(kn_schemas_find(s, 505)->retry_at_ms == 2000);
	v2 = evolved_device();
	KT_CHECK(kn_schemas_learn(s, 505, v2, warn, sizeof(warn)) == 0);
	e = kn_schemas_find(s, 505);
	KT_CHECK(e && e->dec && e->retry_at_ms == 0);
	free(v2);

	/* Learned entries are not "configured" ones. */
	KT_CHECK(kn_schemas_count(s) == configured);
	KT_CHECK(!kn_schemas_find(s, -1) && !kn_schemas_find(s, 506));
	kn_schemas_destroy(s);
	kn_config_destroy(c);
}

static void test_learning_is_bounded(void)
{
	struct kn_config *c;
	struct kn_schemas *s;
	char err[512];
	int i, rc = 0;

	KT_CHECK(kn_config_load(KN_SOURCE_DIR "/deploy/kanon.example.yaml", with_registry, 1, &c,
				err, sizeof(err)) == 0);
	KT_CHECK(kn_schemas_load(c, &s, err, sizeof(err)) == 0);
	/* For good: at most KN_SCHEMAS_LEARN_MAX. */
	for (i = 0; i < KN_SCHEMAS_LEARN_MAX + 5 && !(rc = kn_schemas_refuse(s, 1000 + i, "x", 0));
	     i++)
		;
	KT_CHECK(rc == -ENOSPC && i == KN_SCHEMAS_LEARN_MAX);
	/* For now: a ring of KN_SCHEMAS_REFUSED_MAX, the oldest replaced, never full. */
	for (i = 0; i < KN_SCHEMAS_REFUSED_MAX + 10; i++)
		KT_CHECK(kn_schemas_refuse(s, 100000 + i, "not in registry", 5) == 0);
	KT_CHECK(!kn_schemas_find(s, 100000) && !kn_schemas_find(s, 100009));
	KT_CHECK(kn_schemas_find(s, 100010) && kn_schemas_find(s, 100000 + i - 1));
	kn_schemas_destroy(s);
	kn_config_destroy(c);
}

/* Writes the example config with every schemas[].id removed to path. */
static void without_ids(const char *path)
{
	char *y = slurp(KN_SOURCE_DIR "/deploy/kanon.example.yaml"), *p, *q;
	FILE *f = fopen(path, "w");

	while ((p = strstr(y, "- id: "))) {
		char *eol = strchr(p, '\n');
		/* "- id: 1\n    type:" becomes "- type:" */
		memmove(p + 2, eol + 5, strlen(eol + 5) + 1);
	}
	/* Relative paths resolve against the config's directory: "../" is
	 * the source tree's root. */
	for (q = y; (p = strstr(q, "../")); q = p + 3)
		fprintf(f, "%.*s%s/", (int)(p - q), q, KN_SOURCE_DIR);
	fputs(q, f);
	fclose(f);
	free(y);
}

static void test_ids_needed_only_without_registry(void)
{
	char path[] = "/tmp/kn_schema_test_XXXXXX", file[64], err[512];
	struct kn_config *c = NULL;
	struct kn_schemas *s;

	KT_CHECK(mkdtemp(path) != NULL);
	snprintf(file, sizeof(file), "%s/k.yaml", path);
	without_ids(file);
	KT_CHECK(kn_config_load(file, NULL, 0, &c, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "schemas[].id") && strstr(err, "schema_registry.url"));
	KT_CHECK(kn_config_load(file, with_registry, 1, &c, err, sizeof(err)) == 0);
	KT_CHECK(c && c->schemas[0].id == -1);
	KT_CHECK(kn_schemas_load(c, &s, err, sizeof(err)) == 0);
	/* A framing id never matches an entry without an id. */
	KT_CHECK(!kn_schemas_find(s, -1));
	kn_schemas_destroy(s);
	kn_config_destroy(c);

	static const char *const bad[][2] = {
		{"schema_registry.url=http://u:p@reg:8081", "credentials"},
		{"schema_registry.url=ftp://reg", "http"},
		{"schema_registry.url=http://reg:8081/x?token=1", "query"},
		{"schema_registry.url=http://", "http"},
		{"schema_registry.url=https://reg:99999", "Port"},
		{"schema_registry.url=http://:8081/x", "host"},
		{"schema_registry.password=x", "no username"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *sets[] = {with_registry[0], bad[i][0]};
		KT_CHECK(kn_config_load(file, sets, 2, &c, err, sizeof(err)) == -EINVAL);
		KT_CHECK(strstr(err, bad[i][1]) != NULL);
	}
	remove(file);
	rmdir(path);
}

int main(void)
{
	KT_RUN(test_learns_by_record_name);
	KT_RUN(test_learning_is_bounded);
	KT_RUN(test_ids_needed_only_without_registry);
	return kt_done();
}
