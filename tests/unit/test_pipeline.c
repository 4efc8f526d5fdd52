/* The whole pipeline in memory: DeviceLog bytes written by avro-c in,
 * DeidEvent bytes out, read back by avro-c against schemas/DeidEvent.avsc. */
#include <avro.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "avrobin.h"
#include "kn_alloc.h"
#include "kt.h"
#include "pipeline.h"
#include "schema.h"

#define DAY 86400000LL
#define T0  1793491373775LL /* 2026-11-01T00:02:53.775Z */

static struct kn_config *cfg;
static struct kn_schemas *schemas;
static struct kn_keys *keys;
static struct kn_pipeline *pipe_;
static avro_schema_t dev_schema, deid_schema;
static avro_value_iface_t *iface;

struct dev {
	const char *event_id, *user_id, *phone, *email, *device_id, *ip, *ua;
	int64_t ts;
	double lat, lon;
	int has_geo, consent_location, birth_year;
};

static const struct dev base = {"e-1",
				"u00000042",
				"+86 138 0013 8000",
				" Zhang.Wei42@QQ.com",
				"341452C5-4D7C-33F2-1A83-D752F35EBA75",
				"115.53.17.47",
				"Mozilla/5.0 (Linux; Android 13) Chrome/120.0 Mobile Safari/537.36",
				T0,
				39.9087,
				116.3975,
				1,
				1,
				1990};

static void set_opt_str(avro_value_t *rec, const char *name, const char *s)
{
	avro_value_t f, b;

	avro_value_get_by_name(rec, name, &f, NULL);
	avro_value_set_branch(&f, s ? 1 : 0, &b);
	s ? avro_value_set_string(&b, s) : avro_value_set_null(&b);
}

/* Framed DeviceLog message with schema id 1. */
static size_t make_msg(const struct dev *d, uint8_t *buf, size_t cap)
{
	avro_value_t v, f, b, c;

	avro_generic_value_new(iface, &v);
	avro_value_get_by_name(&v, "event_id", &f, NULL);
	avro_value_set_string(&f, d->event_id);
	avro_value_get_by_name(&v, "ts", &f, NULL);
	avro_value_set_long(&f, d->ts);
	set_opt_str(&v, "user_id", d->user_id);
	set_opt_str(&v, "phone", d->phone);
	set_opt_str(&v, "email", d->email);
	avro_value_get_by_name(&v, "device_id", &f, NULL);
	avro_value_set_string(&f, d->device_id);
	avro_value_get_by_name(&v, "ip", &f, NULL);
	avro_value_set_string(&f, d->ip);
	avro_value_get_by_name(&v, "user_agent", &f, NULL);
	avro_value_set_string(&f, d->ua);
	avro_value_get_by_name(&v, "os", &f, NULL);
	avro_value_set_string(&f, "Android 13");
	avro_value_get_by_name(&v, "app_version", &f, NULL);
	avro_value_set_string(&f, "5.2.1");
	avro_value_get_by_name(&v, "lat", &f, NULL);
	avro_value_set_branch(&f, d->has_geo, &b);
	d->has_geo ? avro_value_set_double(&b, d->lat) : avro_value_set_null(&b);
	avro_value_get_by_name(&v, "lon", &f, NULL);
	avro_value_set_branch(&f, d->has_geo, &b);
	d->has_geo ? avro_value_set_double(&b, d->lon) : avro_value_set_null(&b);
	avro_value_get_by_name(&v, "consent", &f, NULL);
	avro_value_get_by_name(&f, "location", &c, NULL);
	avro_value_set_boolean(&c, d->consent_location);
	avro_value_get_by_name(&f, "ads_personalization", &c, NULL);
	avro_value_set_boolean(&c, 1);
	avro_value_get_by_name(&f, "analytics", &c, NULL);
	avro_value_set_boolean(&c, 1);
	avro_value_get_by_name(&v, "birth_year", &f, NULL);
	avro_value_set_branch(&f, 1, &b);
	avro_value_set_int(&b, d->birth_year);

	kn_frame_put(buf, 1);
	avro_writer_t w = avro_writer_memory((char *)buf + 5, (int64_t)cap - 5);
	KT_CHECK(avro_value_write(w, &v) == 0);
	size_t n = (size_t)avro_writer_tell(w) + 5;
	avro_writer_free(w);
	avro_value_decref(&v);
	return n;
}

static uint8_t out[KN_FRAME_LEN + KN_DEID_MAX_BYTES];

static size_t run(const struct dev *d, struct kn_verdict *v)
{
	uint8_t msg[16384];
	size_t n = make_msg(d, msg, sizeof(msg));

	return kn_pipeline_process(pipe_, msg, n, KN_EV_DEVICE, T0 + 3600000, out, v);
}

/* Reads field name of the DeidEvent in out[0..n) with avro-c; copies a
 * string (or "" for null) into s, or an int/long/bool into *l. */
static void read_field(size_t n, const char *name, char *s, size_t cap, int64_t *l)
{
	avro_value_iface_t *di = avro_generic_class_from_schema(deid_schema);
	avro_value_t v, f, b;
	avro_reader_t r = avro_reader_memory((const char *)out + 5, (int64_t)n - 5);

	avro_generic_value_new(di, &v);
	KT_CHECK(avro_value_read(r, &v) == 0);
	KT_CHECK(avro_value_get_by_name(&v, name, &f, NULL) == 0);
	if (avro_value_get_type(&f) == AVRO_UNION) {
		int disc;
		avro_value_get_discriminant(&f, &disc);
		avro_value_get_current_branch(&f, &b);
		f = b;
	}
	if (s)
		s[0] = '\0';
	switch (avro_value_get_type(&f)) {
	case AVRO_STRING: {
		const char *p;
		size_t len;
		avro_value_get_string(&f, &p, &len);
		snprintf(s, cap, "%s", p);
		break;
	}
	case AVRO_INT64:
		avro_value_get_long(&f, l);
		break;
	case AVRO_INT32: {
		int32_t i;
		avro_value_get_int(&f, &i);
		*l = i;
		break;
	}
	case AVRO_BOOLEAN: {
		int bo;
		avro_value_get_boolean(&f, &bo);
		*l = bo;
		break;
	}
	default:
		if (l)
			*l = -999; /* null */
	}
	avro_value_decref(&v);
	avro_value_iface_decref(di);
	avro_reader_free(r);
}

static const char *str(size_t n, const char *name)
{
	static char s[300];

	read_field(n, name, s, sizeof(s), NULL);
	return s;
}

static int64_t num(size_t n, const char *name)
{
	int64_t l = -1;

	read_field(n, name, NULL, 0, &l);
	return l;
}

static int contains(const uint8_t *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle)) != NULL;
}

static void test_good_record(void)
{
	struct kn_verdict v;
	size_t n = run(&base, &v);

	KT_CHECK(n > 5);
	KT_CHECK(kn_frame_get(out, n) == 100); /* topics.deid_schema_id */
	KT_STREQ(str(n, "event_type"), "device");
	KT_CHECK(num(n, "time_bucket") == 1793491200000LL);
	KT_CHECK(num(n, "bucket_ms") == 3600000);
	KT_CHECK(num(n, "key_epoch") == T0 / DAY);
	KT_CHECK(strlen(str(n, "user_pid")) == 32);
	KT_CHECK(strlen(str(n, "phone_pid")) == 32);
	KT_CHECK(strlen(str(n, "email_pid")) == 32);
	KT_CHECK(strlen(str(n, "device_pid")) == 32);
	KT_STREQ(str(n, "cookie_pid"), "");
	KT_STREQ(str(n, "geo_cell"), "wx4g0");
	KT_STREQ(str(n, "ip_prefix"), "115.53.17.0/24");
	KT_STREQ(str(n, "ua_browser"), "Chrome");
	KT_CHECK(num(n, "ua_browser_major") == 120);
	KT_STREQ(str(n, "os_family"), "Android");
	KT_CHECK(num(n, "os_major") == 13);
	KT_STREQ(str(n, "app_version"), "5.2");
	KT_CHECK(num(n, "consent_ads") == 1);
	KT_CHECK(num(n, "consent_analytics") == 1);
	KT_CHECK(num(n, "http_status") == -999);
	/* Nothing raw survives. */
	const char *raw[] = {"u00000042",    "138",   "8000",	"Zhang", "qq.com",     "341452",
			     "115.53.17.47", "39.90", "116.39", "e-1",	 "Android 13)"};
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		KT_CHECK(!contains(out, n, raw[i]));
}

static void test_linkage(void)
{
	struct kn_verdict v;
	char p1[40], p2[40], p3[40], e1[40], e2[40], u1[40];
	struct dev d = base;
	size_t n;

	n = run(&d, &v);
	snprintf(p1, sizeof(p1), "%s", str(n, "phone_pid"));
	snprintf(e1, sizeof(e1), "%s", str(n, "email_pid"));
	snprintf(u1, sizeof(u1), "%s", str(n, "user_pid"));
	/* Same person, typed differently, same day: same pseudonyms. */
	d.phone = "13800138000";
	d.email = "zhang.wei42@qq.com";
	d.ts = T0 + 5 * 3600000;
	n = run(&d, &v);
	snprintf(p2, sizeof(p2), "%s", str(n, "phone_pid"));
	snprintf(e2, sizeof(e2), "%s", str(n, "email_pid"));
	KT_STREQ(p1, p2);
	KT_STREQ(e1, e2);
	/* Next day (next key epoch): unlinkable. */
	d.ts = T0 + DAY;
	n = run(&d, &v);
	snprintf(p3, sizeof(p3), "%s", str(n, "phone_pid"));
	KT_CHECK(strcmp(p1, p3) != 0);
	/* The same string as another kind: unlinkable. */
	d = base;
	d.device_id = "u00000042";
	n = run(&d, &v);
	KT_CHECK(strcmp(str(n, "device_pid"), u1) != 0);
	KT_STREQ(str(n, "user_pid"), u1);
}

static void test_location_consent(void)
{
	struct kn_verdict v;
	struct dev d = base;
	uint64_t before = kn_pipeline_stats(pipe_)->geo_withheld;

	d.consent_location = 0;
	size_t n = run(&d, &v);
	KT_CHECK(n > 0);
	KT_STREQ(str(n, "geo_cell"), "");
	KT_STREQ(str(n, "ip_prefix"), ""); /* nothing finer than country without consent */
	KT_CHECK(kn_pipeline_stats(pipe_)->geo_withheld == before + 1);
}

static void expect_dead(const struct dev *d, enum kn_dead_reason r, const char *detail)
{
	struct kn_verdict v;

	KT_CHECK(run(d, &v) == 0);
	KT_CHECK(v.reason == r);
	KT_STREQ(v.detail, detail);
}

static void test_dead_letters(void)
{
	struct kn_verdict v;
	struct dev d;
	uint8_t msg[16384];
	size_t n;
	static char huge[8000];

	d = base, d.lat = 999;
	expect_dead(&d, KN_DEAD_RANGE, "lat");
	d = base, d.lon = -181;
	expect_dead(&d, KN_DEAD_RANGE, "lon");
	d = base, d.ts = 32503680000000LL; /* year 3000 */
	expect_dead(&d, KN_DEAD_RANGE, "timestamp");
	d = base, d.ts = 915148800000LL; /* 1999 */
	expect_dead(&d, KN_DEAD_RANGE, "timestamp");
	d = base, d.birth_year = 2031;
	expect_dead(&d, KN_DEAD_RANGE, "birth_year");
	d = base, d.event_id = "";
	expect_dead(&d, KN_DEAD_MISSING, "event_id");
	d = base, d.ip = "not-an-ip";
	expect_dead(&d, KN_DEAD_BAD_IP, "ip");
	/* malformed whatever the policy would do with the record (a minor's is
	 * withheld) */
	d = base, d.ip = "not-an-ip", d.birth_year = 2015;
	expect_dead(&d, KN_DEAD_BAD_IP, "ip");
	memset(huge, 'A', sizeof(huge) - 1);
	d = base, d.ua = huge;
	expect_dead(&d, KN_DEAD_TOO_LONG, "user_agent");

	n = make_msg(&base, msg, sizeof(msg));
	KT_CHECK(kn_pipeline_process(pipe_, msg, n - 3, KN_EV_DEVICE, T0, out, &v) == 0);
	KT_CHECK(v.reason == KN_DEAD_DECODE);
	KT_CHECK(kn_pipeline_process(pipe_, msg, n, KN_EV_ACCESS, T0, out, &v) == 0);
	KT_CHECK(v.reason == KN_DEAD_WRONG_TOPIC);
	KT_CHECK(kn_pipeline_process(pipe_, NULL, 0, KN_EV_DEVICE, T0, out, &v) == 0);
	KT_CHECK(v.reason == KN_DEAD_EMPTY);
	KT_CHECK(kn_pipeline_process(pipe_, (const uint8_t *)"{}", 2, -1, T0, out, &v) == 0);
	KT_CHECK(v.reason == KN_DEAD_FRAMING);
	msg[0] = 1;
	KT_CHECK(kn_pipeline_process(pipe_, msg, n, -1, T0, out, &v) == 0);
	KT_CHECK(v.reason == KN_DEAD_FRAMING);
	kn_frame_put(msg, 424242);
	KT_CHECK(kn_pipeline_process(pipe_, msg, n, -1, T0, out, &v) == 0);
	KT_CHECK(v.reason == KN_DEAD_UNKNOWN_SCHEMA && v.schema_id == 424242);
}

static void test_no_allocation_on_hot_path(void)
{
	uint8_t msg[4096];
	size_t n = make_msg(&base, msg, sizeof(msg));
	struct kn_verdict v;
	unsigned long before = kn_alloc_count();

	for (int i = 0; i < 10000; i++) {
		kn_frame_put(msg, 1);
		KT_CHECK(kn_pipeline_process(pipe_, msg, n, KN_EV_DEVICE, T0, out, &v) > 0);
	}
	KT_CHECK(kn_alloc_count() == before);
}

/* The batch steps give byte for byte what one message at a time gives:
 * good records, minors, no-consent drops and every kind of dead letter,
 * mixed in one batch. */
static void test_batch_equals_single(void)
{
	enum {
		N = 12
	};
	static uint8_t msgs[N][16384], single[N][KN_FRAME_LEN + KN_DEID_MAX_BYTES];
	size_t len[N], slen[N];
	struct kn_verdict sv[N];
	struct kn_batch *b = kn_batch_new(N, true);
	struct dev d[N];

	KT_CHECK(b != NULL);
	for (int i = 0; i < N; i++)
		d[i] = base;
	d[1].lat = 999;		/* dead: range */
	d[2].birth_year = 2012; /* a minor */
	d[3].ip = "not-an-ip";	/* dead at generalize */
	d[4].consent_location = 0;
	d[5].user_id = "u77";
	d[6].event_id = ""; /* dead: missing */
	for (int i = 0; i < N; i++)
		len[i] = make_msg(&d[i], msgs[i], sizeof(msgs[i]));
	len[7] -= 3;		     /* dead: decode */
	kn_frame_put(msgs[8], 4242); /* dead: unknown schema */
	len[9] = 0;		     /* dead: empty */
	for (int i = 0; i < N; i++) {
		slen[i] = kn_pipeline_process(pipe_, msgs[i], len[i], KN_EV_DEVICE, T0 + 3600000,
					      single[i], &sv[i]);
		b->rec[i] = (struct kn_rec){.msg = msgs[i],
					    .len = len[i],
					    .expected_type = KN_EV_DEVICE,
					    .ref_ms = T0 + 3600000};
	}
	b->n = N;
	int live = kn_pipeline_decode(pipe_, b);
	KT_CHECK(live == N - 5);
	KT_CHECK(kn_pipeline_admit(pipe_, b) == live - 1); /* the minor's event */
	KT_CHECK(kn_pipeline_deidentify(pipe_, b) == live - 2);
	for (int i = 0; i < N; i++) {
		const struct kn_rec *r = &b->rec[i];
		KT_CHECK(r->out_len == slen[i]);
		KT_CHECK((r->state == KN_REC_OUT) == (slen[i] > 0));
		if (slen[i])
			KT_CHECK(!memcmp(b->arena + r->out_off, single[i], slen[i]));
		else
			KT_CHECK(r->v.reason == sv[i].reason && r->v.dropped == sv[i].dropped &&
				 r->v.schema_id == sv[i].schema_id);
	}
	KT_CHECK(b->rec[2].state == KN_REC_DROPPED && b->rec[2].v.drop == KN_DROP_MINOR);
	KT_CHECK(!b->deid[0].minor);
	KT_CHECK(b->rec[0].key_len == KN_PID_HEX_LEN);
	kn_batch_destroy(b);
}

/* The run loop's workers: pipelines of their own over shared schemas and
 * keys, running at once (each worker in the middle of deriving keys for
 * epochs the others use too), give what one pipeline gives. Also the
 * subject of a ThreadSanitizer run (cmake -DCMAKE_C_FLAGS=-fsanitize=thread;
 * kanon itself cannot run under it: librdkafka starts its threads with
 * thrd_create, which the sanitizer does not intercept). */
#define PAR_WORKERS 3
#define PAR_N	    600

struct par {
	struct kn_pipeline *p;
	struct kn_batch *b;
};

static void *par_run(void *arg)
{
	struct par *w = arg;

	kn_pipeline_decode(w->p, w->b);
	kn_pipeline_admit(w->p, w->b);
	kn_pipeline_deidentify(w->p, w->b);
	return NULL;
}

static void test_parallel_pipelines(void)
{
	static uint8_t msgs[PAR_N][2048];
	static char ids[PAR_N][3][32];
	struct kn_batch *ref = kn_batch_new(PAR_N, false);
	struct par w[PAR_WORKERS];
	pthread_t t[PAR_WORKERS];
	char err[512];

	for (int i = 0; i < PAR_N; i++) {
		struct dev d = base;
		snprintf(ids[i][0], 32, "e-%d", i);
		snprintf(ids[i][1], 32, "u%05d", i % 97);
		snprintf(ids[i][2], 32, "+86 138 %04d %04d", i % 13, i);
		d.event_id = ids[i][0];
		d.user_id = ids[i][1];
		d.phone = ids[i][2];
		d.ts = T0 + (int64_t)(i % 40) * DAY; /* forty key epochs, every worker */
		ref->rec[i] = (struct kn_rec){.msg = msgs[i],
					      .len = make_msg(&d, msgs[i], sizeof(msgs[i])),
					      .expected_type = KN_EV_DEVICE,
					      .ref_ms = d.ts + 1000};
	}
	ref->n = PAR_N;
	par_run(&(struct par){pipe_, ref});
	for (int k = 0; k < PAR_WORKERS; k++) {
		w[k].p = kn_pipeline_new(cfg, schemas, keys, err, sizeof(err));
		w[k].b = kn_batch_new(PAR_N, false);
		KT_CHECK(w[k].p && w[k].b);
		for (int i = k; i < PAR_N; i += PAR_WORKERS)
			w[k].b->rec[w[k].b->n++] = (struct kn_rec){.msg = ref->rec[i].msg,
								   .len = ref->rec[i].len,
								   .expected_type = KN_EV_DEVICE,
								   .ref_ms = ref->rec[i].ref_ms};
	}
	for (int k = 0; k < PAR_WORKERS; k++)
		KT_CHECK(pthread_create(&t[k], NULL, par_run, &w[k]) == 0);
	for (int k = 0; k < PAR_WORKERS; k++)
		pthread_join(t[k], NULL);
	int differ = 0;
	for (int i = 0; i < PAR_N; i++) {
		const struct kn_batch *b = w[i % PAR_WORKERS].b;
		const struct kn_rec *a = &ref->rec[i], *r = &b->rec[i / PAR_WORKERS];
		differ += a->state != r->state || a->out_len != r->out_len ||
			  memcmp(ref->arena + a->out_off, b->arena + r->out_off, a->out_len);
	}
	KT_CHECK(differ == 0);
	KT_CHECK(ref->rec[0].state == KN_REC_OUT);
	for (int k = 0; k < PAR_WORKERS; k++) {
		kn_batch_destroy(w[k].b);
		kn_pipeline_destroy(w[k].p);
	}
	kn_batch_destroy(ref);
}

int main(void)
{
	char err[1024];
	const uint8_t master[32] = {42};

	setenv("KANON_KEY_FILE", "/nonexistent", 1);
	if (kn_config_load(KN_SOURCE_DIR "/deploy/kanon.example.yaml", NULL, 0, &cfg, err,
			   sizeof(err)) ||
	    kn_schemas_load(cfg, &schemas, err, sizeof(err)) ||
	    kn_keys_from_master(master, cfg->prf, &keys) ||
	    kn_schema_read_file(KN_SOURCE_DIR "/schemas/DeidEvent.avsc", &deid_schema, NULL, err,
				sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return 1;
	}
	dev_schema = kn_schemas_find(schemas, 1)->schema;
	iface = avro_generic_class_from_schema(dev_schema);
	pipe_ = kn_pipeline_new(cfg, schemas, keys, err, sizeof(err));
	KT_RUN(test_good_record);
	KT_RUN(test_linkage);
	KT_RUN(test_location_consent);
	KT_RUN(test_dead_letters);
	KT_RUN(test_no_allocation_on_hot_path);
	KT_RUN(test_batch_equals_single);
	KT_RUN(test_parallel_pipelines);
	kn_pipeline_destroy(pipe_);
	avro_value_iface_decref(iface);
	avro_schema_decref(deid_schema);
	kn_keys_destroy(keys);
	kn_schemas_destroy(schemas);
	kn_config_destroy(cfg);
	return kt_done();
}
