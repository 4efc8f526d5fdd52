/* The decoder against avro-c: records written by avro-c's own writer must
 * decode to the same values, every malformed prefix must be rejected cleanly,
 * and config mistakes must be caught when the decoder is compiled. */
#include <avro.h>
#include <errno.h>
#include <stdlib.h>

#include "decode.h"
#include "kt.h"

static const char schema_json[] =
	"{\"type\":\"record\",\"name\":\"T\",\"fields\":["
	"{\"name\":\"id\",\"type\":\"string\"},"
	"{\"name\":\"ts\",\"type\":\"long\"},"
	"{\"name\":\"skip_arr\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
	"{\"name\":\"skip_map\",\"type\":{\"type\":\"map\",\"values\":\"double\"}},"
	"{\"name\":\"skip_fixed\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}},"
	"{\"name\":\"skip_enum\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\","
	"\"B\"]}},"
	"{\"name\":\"skip_float\",\"type\":\"float\"},"
	"{\"name\":\"skip_bytes\",\"type\":\"bytes\"},"
	"{\"name\":\"user\",\"type\":[\"null\",\"string\"]},"
	"{\"name\":\"lat\",\"type\":[\"null\",\"double\"]},"
	"{\"name\":\"lon\",\"type\":\"int\"},"
	"{\"name\":\"consent\",\"type\":{\"type\":\"record\",\"name\":\"C\",\"fields\":["
	"  {\"name\":\"location\",\"type\":\"boolean\"}]}},"
	"{\"name\":\"tail\",\"type\":\"string\"}]}";

static const char *paths[KN_ROLE_COUNT] = {
	[KN_ROLE_EVENT_ID] = "id",     [KN_ROLE_TIMESTAMP] = "ts",
	[KN_ROLE_ID_USER] = "user",    [KN_ROLE_LAT] = "lat",
	[KN_ROLE_LON] = "lon",	       [KN_ROLE_CONSENT_LOCATION] = "consent.location",
	[KN_ROLE_APP_VERSION] = "tail"};

static size_t write_sample(avro_schema_t s, char *buf, size_t cap, int user_null)
{
	avro_value_iface_t *iface = avro_generic_class_from_schema(s);
	avro_value_t v, f, b, item;
	size_t idx;

	avro_generic_value_new(iface, &v);
	avro_value_get_by_name(&v, "id", &f, NULL);
	avro_value_set_string(&f, "evt-1");
	avro_value_get_by_name(&v, "ts", &f, NULL);
	avro_value_set_long(&f, -1234567890123LL);
	avro_value_get_by_name(&v, "skip_arr", &f, NULL);
	for (int i = 0; i < 3; i++) {
		avro_value_append(&f, &item, &idx);
		avro_value_set_string(&item, "zz");
	}
	avro_value_get_by_name(&v, "skip_map", &f, NULL);
	avro_value_add(&f, "k1", &item, &idx, NULL);
	avro_value_set_double(&item, 1.5);
	avro_value_get_by_name(&v, "skip_fixed", &f, NULL);
	avro_value_set_fixed(&f, (void *)"abc", 3);
	avro_value_get_by_name(&v, "skip_enum", &f, NULL);
	avro_value_set_enum(&f, 1);
	avro_value_get_by_name(&v, "skip_float", &f, NULL);
	avro_value_set_float(&f, 2.5f);
	avro_value_get_by_name(&v, "skip_bytes", &f, NULL);
	avro_value_set_bytes(&f, (void *)"\x00\x01", 2);
	avro_value_get_by_name(&v, "user", &f, NULL);
	if (user_null) {
		avro_value_set_branch(&f, 0, &b);
		avro_value_set_null(&b);
	} else {
		avro_value_set_branch(&f, 1, &b);
		avro_value_set_string(&b, "u\xe5\x90\x8d"); /* UTF-8 */
	}
	avro_value_get_by_name(&v, "lat", &f, NULL);
	avro_value_set_branch(&f, 1, &b);
	avro_value_set_double(&b, 39.9087);
	avro_value_get_by_name(&v, "lon", &f, NULL);
	avro_value_set_int(&f, 116);
	avro_value_get_by_name(&v, "consent", &f, NULL);
	avro_value_get_by_name(&f, "location", &b, NULL);
	avro_value_set_boolean(&b, 1);
	avro_value_get_by_name(&v, "tail", &f, NULL);
	avro_value_set_string(&f, "5.2.1");

	avro_writer_t w = avro_writer_memory(buf, (int64_t)cap);
	KT_CHECK(avro_value_write(w, &v) == 0);
	size_t n = (size_t)avro_writer_tell(w);
	avro_writer_free(w);
	avro_value_decref(&v);
	avro_value_iface_decref(iface);
	return n;
}

static int streq(const struct kn_val *v, const char *s)
{
	return v->type == KN_VAL_STR && v->s.len == strlen(s) && !memcmp(v->s.p, s, v->s.len);
}

static void test_roundtrip(void)
{
	avro_schema_t s;
	struct kn_decoder *d;
	struct kn_event ev;
	char buf[1024], err[256];
	const char *why = NULL;

	KT_CHECK(avro_schema_from_json_length(schema_json, sizeof(schema_json) - 1, &s) == 0);
	KT_CHECK(kn_decoder_new(s, paths, &d, err, sizeof(err)) == 0);
	size_t n = write_sample(s, buf, sizeof(buf), 0);
	KT_CHECK(kn_decoder_decode(d, (uint8_t *)buf, n, &ev, &why) == 0);
	KT_CHECK(streq(&ev.role[KN_ROLE_EVENT_ID], "evt-1"));
	KT_CHECK(ev.role[KN_ROLE_TIMESTAMP].type == KN_VAL_LONG &&
		 ev.role[KN_ROLE_TIMESTAMP].l == -1234567890123LL);
	KT_CHECK(streq(&ev.role[KN_ROLE_ID_USER], "u\xe5\x90\x8d"));
	KT_CHECK(ev.role[KN_ROLE_LAT].type == KN_VAL_DOUBLE && ev.role[KN_ROLE_LAT].d == 39.9087);
	/* An int field playing a double role is widened. */
	KT_CHECK(ev.role[KN_ROLE_LON].type == KN_VAL_DOUBLE && ev.role[KN_ROLE_LON].d == 116.0);
	KT_CHECK(ev.role[KN_ROLE_CONSENT_LOCATION].type == KN_VAL_BOOL &&
		 ev.role[KN_ROLE_CONSENT_LOCATION].b);
	KT_CHECK(streq(&ev.role[KN_ROLE_APP_VERSION], "5.2.1")); /* after every skipped field */
	KT_CHECK(ev.role[KN_ROLE_URL].type == KN_VAL_ABSENT);

	n = write_sample(s, buf, sizeof(buf), 1);
	KT_CHECK(kn_decoder_decode(d, (uint8_t *)buf, n, &ev, &why) == 0);
	KT_CHECK(ev.role[KN_ROLE_ID_USER].type == KN_VAL_NULL);

	/* Every strict prefix is malformed: rejected, never read past. */
	int rejected = 0;
	for (size_t cut = 0; cut < n; cut++) {
		char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
		memcpy(copy, buf, cut);
		rejected += kn_decoder_decode(d, (uint8_t *)copy, cut, &ev, &why) == -EBADMSG;
		free(copy);
	}
	KT_CHECK(rejected == (int)n);
	/* Trailing bytes are not silently ignored. */
	buf[n] = 0;
	KT_CHECK(kn_decoder_decode(d, (uint8_t *)buf, n + 1, &ev, &why) == -EBADMSG);
	KT_STREQ(why, "trailing bytes");
	kn_decoder_destroy(d);
	avro_schema_decref(s);
}

static void test_malformed(void)
{
	const char *js =
		"{\"type\":\"record\",\"name\":\"M\",\"fields\":["
		"{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":\"long\"},"
		"{\"name\":\"u\",\"type\":[\"null\",\"string\"]},"
		"{\"name\":\"b\",\"type\":\"boolean\"}]}";
	const char *p[KN_ROLE_COUNT] = {[KN_ROLE_EVENT_ID] = "id", [KN_ROLE_TIMESTAMP] = "ts"};
	avro_schema_t s;
	struct kn_decoder *d;
	struct kn_event ev;
	char err[256];
	const char *why;

	avro_schema_from_json_length(js, strlen(js), &s);
	KT_CHECK(kn_decoder_new(s, p, &d, err, sizeof(err)) == 0);
	/* id "a", ts 1, union branch 7 (no such branch), bool */
	const uint8_t bad_union[] = {2, 'a', 2, 14, 1};
	KT_CHECK(kn_decoder_decode(d, bad_union, sizeof(bad_union), &ev, &why) == -EBADMSG);
	KT_STREQ(why, "bad union branch");
	const uint8_t neg_len[] = {1, 'a'}; /* length -1 */
	KT_CHECK(kn_decoder_decode(d, neg_len, sizeof(neg_len), &ev, &why) == -EBADMSG);
	KT_STREQ(why, "negative length");
	const uint8_t huge_len[] = {0xfe, 0xff, 0xff, 0xff, 0x0f, 'a'};
	KT_CHECK(kn_decoder_decode(d, huge_len, sizeof(huge_len), &ev, &why) == -EBADMSG);
	KT_STREQ(why, "truncated");
	const uint8_t long_varint[] = {2,    'a',  0xff, 0xff, 0xff, 0xff, 0xff,
				       0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	KT_CHECK(kn_decoder_decode(d, long_varint, sizeof(long_varint), &ev, &why) == -EBADMSG);
	KT_STREQ(why, "bad varint");
	const uint8_t bad_bool[] = {2, 'a', 2, 0, 7};
	KT_CHECK(kn_decoder_decode(d, bad_bool, sizeof(bad_bool), &ev, &why) == -EBADMSG);
	KT_STREQ(why, "bad boolean");
	const uint8_t good[] = {2, 'a', 2, 0, 1};
	KT_CHECK(kn_decoder_decode(d, good, sizeof(good), &ev, &why) == 0);
	kn_decoder_destroy(d);
	avro_schema_decref(s);
}

static void test_hostile_arrays_and_recursion(void)
{
	const char *js =
		"{\"type\":\"record\",\"name\":\"N\",\"fields\":["
		"{\"name\":\"id\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":\"long\"},"
		"{\"name\":\"nulls\",\"type\":{\"type\":\"array\",\"items\":\"null\"}},"
		"{\"name\":\"next\",\"type\":[\"null\",\"N\"]}]}";
	const char *p[KN_ROLE_COUNT] = {[KN_ROLE_EVENT_ID] = "id", [KN_ROLE_TIMESTAMP] = "ts"};
	avro_schema_t s;
	struct kn_decoder *d;
	struct kn_event ev;
	char err[256];
	const char *why;
	uint8_t buf[4096];
	size_t n = 0;

	KT_CHECK(avro_schema_from_json_length(js, strlen(js), &s) == 0);
	KT_CHECK(kn_decoder_new(s, p, &d, err, sizeof(err)) == 0);
	/* An array of 2^40 nulls costs 6 bytes of input: must be refused fast. */
	const uint8_t bomb[] = {2, 'a', 2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0, 0};
	KT_CHECK(kn_decoder_decode(d, bomb, sizeof(bomb), &ev, &why) == -EBADMSG);
	KT_STREQ(why, "too many items");
	/* A linked list three deep decodes; one 200 deep is refused, not a stack overflow. */
	for (int depth = 0; depth < 3; depth++) {
		buf[n++] = 2, buf[n++] = 'a', buf[n++] = 2, buf[n++] = 0, buf[n++] = 2;
	}
	buf[n - 1] = 0;
	KT_CHECK(kn_decoder_decode(d, buf, n, &ev, &why) == 0);
	n = 0;
	for (int depth = 0; depth < 200; depth++) {
		buf[n++] = 2, buf[n++] = 'a', buf[n++] = 2, buf[n++] = 0, buf[n++] = 2;
	}
	buf[n - 1] = 0;
	KT_CHECK(kn_decoder_decode(d, buf, n, &ev, &why) == -EBADMSG);
	KT_STREQ(why, "nesting too deep");
	kn_decoder_destroy(d);
	avro_schema_decref(s);
}

static void test_compile_errors(void)
{
	avro_schema_t s;
	struct kn_decoder *d;
	char err[256];
	const char *p[KN_ROLE_COUNT] = {[KN_ROLE_EVENT_ID] = "id", [KN_ROLE_TIMESTAMP] = "ts"};

	avro_schema_from_json_length(schema_json, sizeof(schema_json) - 1, &s);
	p[KN_ROLE_IP] = "no_such_field";
	KT_CHECK(kn_decoder_new(s, p, &d, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "no_such_field") && strstr(err, "ip"));
	p[KN_ROLE_IP] = "lon"; /* an int cannot be an IP string */
	KT_CHECK(kn_decoder_new(s, p, &d, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "wrong Avro type") != NULL);
	p[KN_ROLE_IP] = "ts"; /* one field, two roles */
	KT_CHECK(kn_decoder_new(s, p, &d, err, sizeof(err)) == -EINVAL);
	KT_CHECK(strstr(err, "two roles") != NULL);
	p[KN_ROLE_IP] = "consent"; /* a record is not a scalar */
	KT_CHECK(kn_decoder_new(s, p, &d, err, sizeof(err)) == -EINVAL);
	p[KN_ROLE_IP] = "skip_arr";
	KT_CHECK(kn_decoder_new(s, p, &d, err, sizeof(err)) == -EINVAL);
	avro_schema_decref(s);
}

int main(void)
{
	KT_RUN(test_roundtrip);
	KT_RUN(test_malformed);
	KT_RUN(test_hostile_arrays_and_recursion);
	KT_RUN(test_compile_errors);
	return kt_done();
}
