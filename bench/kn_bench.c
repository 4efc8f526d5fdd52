/* kn_bench: kanon's in-process benchmarks (B1, B4, B5 of bench/run.sh).
 *
 *   kn_bench b1 CONFIG DEVICE.avro REPS   records/s on one core: avro-c's
 *        generic decoder, kanon's decoder, the pipeline, pipeline+aggregates
 *   kn_bench b4 CONFIG GROUPS EVENTS_PER_GROUP   peak RSS for that many open
 *        groups (run once per process: ru_maxrss is a high-water mark)
 *   kn_bench b5 REPS                      ns per keyed hash, per PRF and size
 *   kn_bench b6 CONFIG SEARCH.avro REPS   ns per search record: the text
 *        folder (fold.h), the scrubber, the categorizer (sensitive lexicon and
 *        taxonomy), and the whole pipeline. Built against an older tree (no
 *        fold.h) it measures the rest, which is how bench/run.sh --baseline
 *        gets the "before" of the same run.
 *   kn_bench b7 CONFIG DRAWS              the differentially private release
 *        under CONFIG's budget: utility (median relative error of released
 *        users and events, release rate) at group sizes 50 to 10 000, and
 *        the cost of closing a window of 10 000 groups, dp against exact
 *        k-anonymity in the same run.
 *
 * Every figure is printed as one JSON object per line; bench/run.sh takes
 * medians over the repetitions. The same records go through every B1 case. */
#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "aggregate.h"
#include "avrobin.h"
#include "config.h"
#include "dp.h"
#include "decode.h"
#include "keys.h"
#include "kn_alloc.h"
#include "pipeline.h"
#include "policy.h"
#include "schema.h"
#include "scrub.h"
#include "run.h"
#if __has_include("fold.h")
#include "fold.h"
#endif

#define BATCH 2000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "kn_bench: %s: %s\n", what, why);
	exit(1);
}

/* ---- the corpus: every record of a container file, framed ---- */

struct corpus {
	uint8_t **msg;
	size_t *len;
	size_t n;
	int32_t schema_id;
};

static void load_corpus(const struct kn_config *c, const struct kn_schemas *s, const char *path,
			enum kn_event_type type, struct corpus *k)
{
	const struct kn_schema_entry *e = NULL;
	avro_file_reader_t r;
	avro_schema_t ws;
	avro_value_iface_t *iface;
	avro_value_t v;
	size_t cap = 1 << 16;
	char buf[65536];

	if (avro_file_reader(path, &r))
		die(path, avro_strerror());
	ws = avro_file_reader_get_writer_schema(r);
	/* The first configured schema of the type is the one gen writes. */
	for (int i = 0; i < c->n_schemas && !e; i++)
		if ((e = kn_schemas_find(s, (int32_t)c->schemas[i].id)) && e->type != type)
			e = NULL;
	if (!e)
		die(path, "no schema of that event type in the config");
	k->schema_id = e->id;
	iface = avro_generic_class_from_schema(ws);
	avro_generic_value_new(iface, &v);
	k->msg = malloc(cap * sizeof(*k->msg));
	k->len = malloc(cap * sizeof(*k->len));
	while (avro_file_reader_read_value(r, &v) == 0) {
		avro_writer_t w =
			avro_writer_memory(buf + KN_FRAME_LEN, sizeof(buf) - KN_FRAME_LEN);
		if (avro_value_write(w, &v))
			die("re-encoding", avro_strerror());
		size_t n = (size_t)avro_writer_tell(w) + KN_FRAME_LEN;
		avro_writer_free(w);
		kn_frame_put((uint8_t *)buf, e->id);
		if (k->n == cap) {
			cap *= 2;
			k->msg = realloc(k->msg, cap * sizeof(*k->msg));
			k->len = realloc(k->len, cap * sizeof(*k->len));
		}
		k->msg[k->n] = malloc(n);
		memcpy(k->msg[k->n], buf, n);
		k->len[k->n++] = n;
		avro_value_reset(&v);
	}
	avro_value_decref(&v);
	avro_value_iface_decref(iface);
	avro_file_reader_close(r);
	avro_schema_decref(ws); /* the reader handed over its reference */
}

/* ---- B1 ---- */

static double run_avro_generic(const struct kn_schema_entry *e, const struct corpus *k)
{
	avro_value_iface_t *iface = avro_generic_class_from_schema(e->schema);
	avro_reader_t rd = avro_reader_memory(NULL, 0);
	avro_value_t v;
	size_t ok = 0;
	double t0;

	avro_generic_value_new(iface, &v);
	t0 = now_s();
	for (size_t i = 0; i < k->n; i++) {
		avro_reader_memory_set_source(rd, (const char *)k->msg[i] + KN_FRAME_LEN,
					      (int64_t)(k->len[i] - KN_FRAME_LEN));
		ok += avro_value_read(rd, &v) == 0;
	}
	t0 = now_s() - t0;
	if (ok != k->n)
		die("avro-c", "rejected records of the corpus");
	avro_value_decref(&v);
	avro_reader_free(rd);
	avro_value_iface_decref(iface);
	return (double)k->n / t0;
}

static double run_kanon_decoder(const struct kn_schema_entry *e, const struct corpus *k)
{
	struct kn_event ev;
	const char *why;
	size_t ok = 0;
	double t0 = now_s();

	for (size_t i = 0; i < k->n; i++) {
		ev.type = e->type;
		ok += kn_decoder_decode(e->dec, k->msg[i] + KN_FRAME_LEN, k->len[i] - KN_FRAME_LEN,
					&ev, &why) == 0;
	}
	t0 = now_s() - t0;
	if (ok != k->n)
		die("kanon decoder", "rejected records of the corpus");
	return (double)k->n / t0;
}

/* The run loops' path: batch steps over framed messages; with agg, every
 * consenting adult's event into the windows as txrun does. */
static double run_pipeline(struct kn_pipeline *p, const struct corpus *k, struct kn_aggregator *agg,
			   uint64_t *out, int type)
{
	struct kn_batch *b = kn_batch_new(BATCH, agg != NULL);
	double t0 = now_s();

	*out = 0;
	for (size_t i = 0; i < k->n; i += BATCH) {
		b->n = (int)(k->n - i < BATCH ? k->n - i : BATCH);
		for (int j = 0; j < b->n; j++)
			b->rec[j] = (struct kn_rec){.msg = k->msg[i + j],
						    .len = k->len[i + j],
						    .expected_type = type,
						    .ref_ms = INT64_MAX / 2};
		kn_pipeline_decode(p, b);
		kn_pipeline_admit(p, b);
		*out += (uint64_t)kn_pipeline_deidentify(p, b);
		for (int j = 0; agg && j < b->n; j++) {
			const struct kn_deid *d = &b->deid[j];
			if (b->rec[j].state == KN_REC_OUT) /* eligibility: the aggregator's */
				kn_aggregator_add(agg, d, b->rec[j].ev.role[KN_ROLE_TIMESTAMP].l, 0,
						  0, (int64_t)(i + j));
		}
	}
	t0 = now_s() - t0;
	kn_batch_destroy(b);
	return (double)k->n / t0;
}

static int b1(const char *config, const char *file, int reps)
{
	struct kn_config *c;
	struct kn_schemas *s;
	struct kn_keys *keys;
	struct kn_pipeline *p;
	struct corpus k = {0};
	const uint8_t master[KN_MASTER_KEY_BYTES] = {7};
	char err[512];
	uint64_t out;

	if (kn_config_load(config, NULL, 0, &c, err, sizeof(err)) ||
	    kn_schemas_load(c, &s, err, sizeof(err)) || kn_keys_from_master(master, c->prf, &keys))
		die(config, err);
	if (!(p = kn_pipeline_new(c, s, keys, err, sizeof(err))))
		die("pipeline", err);
	load_corpus(c, s, file, KN_EV_DEVICE, &k);
	const struct kn_schema_entry *e = kn_schemas_find(s, k.schema_id);
	for (int r = 0; r < reps; r++) {
		struct kn_agg_def *defs = kn_agg_defs_from_config(c);
		struct kn_aggregator *agg =
			kn_aggregator_from_config(c, defs, 1, keys, KN_AGG_WHOLE);
		double a = run_avro_generic(e, &k), d = run_kanon_decoder(e, &k);
		double pl = run_pipeline(p, &k, NULL, &out, KN_EV_DEVICE);
		double pa = run_pipeline(p, &k, agg, &out, KN_EV_DEVICE);
		printf("{\"bench\":\"b1\",\"rep\":%d,\"records\":%zu,\"deid\":%" PRIu64
		       ",\"avro_generic\":%.0f,\"kanon_decoder\":%.0f,\"pipeline\":%.0f,"
		       "\"pipeline_aggregates\":%.0f}\n",
		       r, k.n, out, a, d, pl, pa);
		fflush(stdout);
		kn_aggregator_destroy(agg);
		kn_free(defs);
	}
	for (size_t i = 0; i < k.n; i++)
		free(k.msg[i]);
	free(k.msg);
	free(k.len);
	kn_pipeline_destroy(p);
	kn_keys_destroy(keys);
	kn_schemas_destroy(s);
	kn_config_destroy(c);
	return 0;
}

/* ---- B4: open groups against peak RSS ---- */

static long rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static int b4(const char *config, long groups, long per_group)
{
	struct kn_config *c;
	struct kn_agg_def def = {"b4", 1u << KN_DIM_URL_DOMAIN, 0, 5};
	struct kn_agg_metrics m;
	struct kn_deid d;
	char err[512];
	long before;

	if (kn_config_load(config, NULL, 0, &c, err, sizeof(err)))
		die(config, err);
	struct kn_agg_opts ao = {.window_ms = 3600000,
				 .lateness_ms = 3600000,
				 .max_events_per_person = 1000000,
				 .max_groups_per_person = 1000,
				 .mode = KN_AGG_K_ANONYMITY,
				 .person = KN_ID_USER,
				 .max_state_bytes = INT64_MAX / 2,
				 .n_partitions = 1};
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, &ao);
	memset(&d, 0, sizeof(d));
	d.consent_ads = d.consent_analytics = 1;
	d.has_pid[KN_ID_USER] = true;
	before = rss_kb();
	/* Each group sees the same 5 people again and again: more events at
	 * fixed groups must not grow the state. */
	for (long e = 0; e < per_group; e++) {
		for (long g = 0; g < groups; g++) {
			snprintf(d.url_domain, sizeof(d.url_domain), "g%ld.example", g);
			snprintf(d.pid[KN_ID_USER], sizeof(d.pid[0]), "%032lx", g * 5 + e % 5);
			if (kn_aggregator_add(a, &d, 1000, 0, 0, e * groups + g) == KN_AGG_ERROR)
				die("b4", "out of memory");
		}
	}
	kn_aggregator_metrics(a, &m);
	printf("{\"bench\":\"b4\",\"groups\":%ld,\"events_per_group\":%ld,\"open_groups\":%" PRIu64
	       ",\"state_bytes\":%" PRIu64 ",\"rss_kb_before\":%ld,\"rss_kb_peak\":%ld}\n",
	       groups, per_group, m.open_groups, m.state_bytes, before, rss_kb());
	kn_aggregator_destroy(a);
	kn_config_destroy(c);
	return 0;
}

/* ---- B5: keyed hash cost ---- */

static int b5(int reps)
{
	static const enum kn_prf prfs[] = {KN_PRF_SIPHASH, KN_PRF_HMAC_SHA256, KN_PRF_XXH3};
	const uint8_t master[KN_MASTER_KEY_BYTES] = {9};
	enum {
		CALLS = 2000000
	};
	uint8_t in[64], out[KN_PRF_BYTES];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)('0' + i % 10);
	for (int r = 0; r < reps; r++) {
		for (size_t p = 0; p < sizeof(prfs) / sizeof(prfs[0]); p++) {
			struct kn_keys *k;
			if (kn_keys_from_master(master, prfs[p], &k))
				die("b5", "keys");
			for (size_t len = 8; len <= 64; len *= 2) {
				double t0 = now_s();
				for (int i = 0; i < CALLS; i++) {
					in[0] = (uint8_t)i; /* no caching across calls */
					kn_keys_prf(k, 0, 0, in, len, out);
				}
				t0 = now_s() - t0;
				printf("{\"bench\":\"b5\",\"rep\":%d,\"prf\":\"%s\",\"bytes\":%zu,"
				       "\"ns\":%.1f}\n",
				       r, kn_prf_name(prfs[p]), len, t0 * 1e9 / CALLS);
			}
			kn_keys_destroy(k);
		}
		fflush(stdout);
	}
	return 0;
}

/* ---- B6: text cost per search record ---- */

struct texts {
	char **q;
	size_t *len, n, ascii;
};

/* The query of every record that decodes (copied: events borrow). */
static void load_queries(struct kn_pipeline *p, const struct corpus *k, struct texts *t)
{
	uint8_t out[KN_FRAME_LEN + KN_DEID_MAX_BYTES];
	struct kn_verdict v;

	t->q = calloc(k->n, sizeof(*t->q));
	t->len = calloc(k->n, sizeof(*t->len));
	for (size_t i = 0; i < k->n; i++) {
		kn_pipeline_process(p, k->msg[i], k->len[i], -1, INT64_MAX / 2, out, &v);
		const struct kn_val *q = &kn_pipeline_last_event(p)->role[KN_ROLE_QUERY];
		if (q->type != KN_VAL_STR)
			continue;
		t->q[t->n] = strndup(q->s.p, q->s.len);
		t->len[t->n] = q->s.len;
		bool ascii = true;
		for (size_t j = 0; j < q->s.len; j++)
			ascii &= !((unsigned char)q->s.p[j] & 0x80);
		t->ascii += ascii;
		t->n++;
	}
}

static int b6(const char *config, const char *file, int reps)
{
	struct kn_config *c;
	struct kn_schemas *s;
	struct kn_keys *keys;
	struct kn_pipeline *p;
	struct kn_policy *pol;
	struct corpus k = {0};
	struct texts t = {0};
	const uint8_t master[KN_MASTER_KEY_BYTES] = {7};
	char err[512], buf[KN_SCRUB_MAX];
	uint64_t out;
	volatile size_t sink = 0;

	if (kn_config_load(config, NULL, 0, &c, err, sizeof(err)) ||
	    kn_schemas_load(c, &s, err, sizeof(err)) || kn_keys_from_master(master, c->prf, &keys))
		die(config, err);
	if (!(p = kn_pipeline_new(c, s, keys, err, sizeof(err))) ||
	    kn_policy_new(c, &pol, err, sizeof(err)))
		die("pipeline", err);
	load_corpus(c, s, file, KN_EV_SEARCH, &k);
	load_queries(p, &k, &t);
	if (!t.n)
		die(file, "no search queries");
	for (int r = 0; r < reps; r++) {
		double t0 = now_s(), fold_ns = -1;
#ifdef KN_FOLD_H
		char f[KN_FOLD_IN_MAX];
		for (size_t i = 0; i < t.n; i++)
			sink += kn_fold(t.q[i], t.len[i], f, sizeof(f), KN_FOLD_SQUEEZE);
		fold_ns = (now_s() - t0) * 1e9 / (double)t.n;
#endif
		t0 = now_s();
		for (size_t i = 0; i < t.n; i++)
			sink += kn_scrub_query(t.q[i], t.len[i], buf, NULL);
		double scrub_ns = (now_s() - t0) * 1e9 / (double)t.n;
		t0 = now_s();
		for (size_t i = 0; i < t.n; i++)
			sink += (size_t)kn_policy_categorize(pol, t.q[i], t.len[i])[0];
		double cat_ns = (now_s() - t0) * 1e9 / (double)t.n;
		double rate = run_pipeline(p, &k, NULL, &out, KN_EV_SEARCH);
		printf("{\"bench\":\"b6\",\"rep\":%d,\"queries\":%zu,\"ascii\":%zu,"
		       "\"fold_ns\":%.0f,\"scrub_ns\":%.0f,\"categorize_ns\":%.0f,"
		       "\"pipeline_ns\":%.0f}\n",
		       r, t.n, t.ascii, fold_ns, scrub_ns, cat_ns, 1e9 / rate);
		fflush(stdout);
	}
	for (size_t i = 0; i < t.n; i++)
		free(t.q[i]);
	free(t.q);
	free(t.len);
	for (size_t i = 0; i < k.n; i++)
		free(k.msg[i]);
	free(k.msg);
	free(k.len);
	kn_policy_destroy(pol);
	kn_pipeline_destroy(p);
	kn_keys_destroy(keys);
	kn_schemas_destroy(s);
	kn_config_destroy(c);
	return sink == (size_t)-1;
}

/* ---- B7: the differentially private release ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One group of size people (2 events each) released draws times under the
 * config's budget: median relative errors over the released draws. */
static void b7_utility(const struct kn_config *c, int64_t k, int64_t size, int draws)
{
	const struct kn_dp_params *dp = &c->agg_dp;
	double *ue = malloc(sizeof(double) * (size_t)draws),
	       *ee = malloc(sizeof(double) * (size_t)draws);
	int n = 0;

	for (int i = 0; i < draws; i++) {
		uint8_t seed[32] = {0};
		struct kn_dp_rng r;
		memcpy(seed, &i, sizeof(i));
		memcpy(seed + 8, &size, sizeof(size));
		kn_dp_rng_init(&r, seed);
		int64_t u = size + kn_dp_discrete_laplace(&r, dp->people_t, dp->people_s);
		int64_t e = 2 * size + kn_dp_discrete_laplace(&r, dp->events_t, dp->events_s);
		if (u < dp->threshold || u < k)
			continue;
		ue[n] = fabs((double)(u - size)) / (double)size;
		ee[n++] = fabs((double)((e > 0 ? e : 0) - 2 * size)) / (double)(2 * size);
	}
	qsort(ue, (size_t)n, sizeof(double), cmp_double);
	qsort(ee, (size_t)n, sizeof(double), cmp_double);
	printf("{\"bench\":\"b7\",\"kind\":\"utility\",\"size\":%" PRId64
	       ",\"draws\":%d,\"released\":%.6f,\"users_mre\":%.6f,\"events_mre\":%.6f,"
	       "\"epsilon\":%g,\"delta\":%g,\"l0\":%" PRId64 ",\"linf\":%" PRId64
	       ",\"threshold\":%" PRId64 ",\"k\":%" PRId64 "}\n",
	       size, draws, (double)n / draws, n ? ue[n / 2] : -1.0, n ? ee[n / 2] : -1.0,
	       dp->epsilon, dp->delta, c->agg_max_groups, c->agg_max_events, dp->threshold, k);
	free(ue);
	free(ee);
}

static void b7_sink_row(void *o, const struct kn_agg_row *r)
{
	(void)r;
	++*(uint64_t *)o;
}

static void b7_sink_summary(void *o, const struct kn_agg_summary *s)
{
	(void)o;
	(void)s;
}

/* Seconds to close one window of groups x 5 people under mode. */
static double b7_close(const struct kn_config *c, const struct kn_keys *keys, enum kn_agg_mode mode,
		       long groups)
{
	struct kn_agg_def def = {"b7", 1u << KN_DIM_URL_DOMAIN, 0, 2};
	struct kn_agg_opts ao = {.window_ms = 3600000,
				 .lateness_ms = 0,
				 .max_events_per_person = c->agg_max_events,
				 .max_groups_per_person = c->agg_max_groups,
				 .mode = mode,
				 .dp = c->agg_dp,
				 .noise_keys = keys,
				 .person = KN_ID_USER,
				 .max_state_bytes = INT64_MAX / 2,
				 .n_partitions = 1};
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, &ao);
	uint64_t rows = 0;
	struct kn_agg_sink sink = {b7_sink_row, b7_sink_summary, &rows};
	struct kn_deid d;

	memset(&d, 0, sizeof(d));
	d.consent_ads = d.consent_analytics = 1;
	d.has_pid[KN_ID_USER] = true;
	for (long g = 0; g < groups; g++)
		for (int p = 0; p < 5; p++) {
			snprintf(d.url_domain, sizeof(d.url_domain), "g%ld.example", g);
			snprintf(d.pid[KN_ID_USER], sizeof(d.pid[0]), "%032lx", g * 5 + p);
			kn_aggregator_add(a, &d, 1000, 0, 0, g * 5 + p);
		}
	double t0 = now_s();
	kn_aggregator_advance(a, true, &sink);
	t0 = now_s() - t0;
	kn_aggregator_destroy(a);
	return t0;
}

static int b7(const char *config, int draws)
{
	static const int64_t sizes[] = {50, 100, 1000, 10000};
	const uint8_t master[KN_MASTER_KEY_BYTES] = {7};
	struct kn_config *c;
	struct kn_keys *keys;
	char err[512];
	const long groups = 10000;

	if (kn_config_load(config, NULL, 0, &c, err, sizeof(err)) ||
	    kn_keys_from_master(master, c->prf, &keys))
		die(config, err);
	int64_t k = c->n_aggs ? c->aggs[0].k : 2;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		b7_utility(c, k, sizes[i], draws);
	for (int rep = 0; rep < 3; rep++) {
		double exact = b7_close(c, keys, KN_AGG_K_ANONYMITY, groups);
		double noisy = b7_close(c, keys, KN_AGG_DP, groups);
		printf("{\"bench\":\"b7\",\"kind\":\"close\",\"rep\":%d,\"groups\":%ld,"
		       "\"exact_ns_per_group\":%.1f,\"dp_ns_per_group\":%.1f}\n",
		       rep, groups, exact * 1e9 / groups, noisy * 1e9 / groups);
		fflush(stdout);
	}
	kn_keys_destroy(keys);
	kn_config_destroy(c);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setenv("KANON_KEY_FILE", "/nonexistent", 0);
	if (!strcmp(cmd, "b1") && argc == 5)
		return b1(argv[2], argv[3], atoi(argv[4]));
	if (!strcmp(cmd, "b4") && argc == 5)
		return b4(argv[2], atol(argv[3]), atol(argv[4]));
	if (!strcmp(cmd, "b5") && argc == 3)
		return b5(atoi(argv[2]));
	if (!strcmp(cmd, "b6") && argc == 5)
		return b6(argv[2], argv[3], atoi(argv[4]));
	if (!strcmp(cmd, "b7") && argc == 4)
		return b7(argv[2], atoi(argv[3]));
	fprintf(stderr,
		"usage: kn_bench b1 CONFIG DEVICE.avro REPS | b4 CONFIG GROUPS "
		"EVENTS_PER_GROUP | b5 REPS | b6 CONFIG SEARCH.avro REPS | b7 CONFIG DRAWS\n");
	return 2;
}
