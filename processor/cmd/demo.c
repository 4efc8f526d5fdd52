#include "demo.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aggregate.h"
#include "avrobin.h"
#include "clock.h"
#include "consumer.h"
#include "embedded.h"
#include "encode.h"
#include "gen.h"
#include "kafka.h"
#include "keys.h"
#include "log.h"
#include "pipeline.h"
#include "run.h"

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

static int materialize(char *dir, char *errstr, size_t errsz)
{
	char sub[4200];

	if (!mkdtemp(dir)) {
		snprintf(errstr, errsz, "mkdtemp: %s", strerror(errno));
		return -errno;
	}
	snprintf(sub, sizeof(sub), "%s/deploy", dir);
	mkdir(sub, 0700);
	snprintf(sub, sizeof(sub), "%s/schemas", dir);
	mkdir(sub, 0700);
	if (write_file(dir, "deploy/kanon.example.yaml", KN_EMBED_CONFIG) ||
	    write_file(dir, "schemas/DeviceLog.avsc", KN_EMBED_DEVICE_AVSC) ||
	    write_file(dir, "schemas/AccessLog.avsc", KN_EMBED_ACCESS_AVSC) ||
	    write_file(dir, "schemas/SearchLog.avsc", KN_EMBED_SEARCH_AVSC)) {
		snprintf(errstr, errsz, "writing demo files to %s failed", dir);
		return -EIO;
	}
	snprintf(sub, sizeof(sub), "%s/master.key", dir);
	return kn_keys_generate(sub, errstr, errsz);
}

static void clean_dir(const char *dir)
{
	static const char *files[] = {"deploy/kanon.example.yaml",
				      "schemas/DeviceLog.avsc",
				      "schemas/AccessLog.avsc",
				      "schemas/SearchLog.avsc",
				      "master.key",
				      "deploy",
				      "schemas",
				      ""};
	char p[4200];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		remove(p);
	}
}

/* A reader of kanon's topics: read_committed, assigned, commits nothing. */
static struct kn_consumer *reader(const struct kn_config *c)
{
	struct kn_consumer_opts o = {.role = KN_CLIENT_READER, .group = "kanon-demo-reader"};
	struct kn_consumer *k;
	char err[512];

	return kn_consumer_new(c, &o, &k, err, sizeof(err)) ? NULL : k;
}

/* Reads from the start of partition part of topic until the end of the
 * partition, at most 5 s and 500 records, and processes each with pipe
 * until one is de-identified (out, *v). Returns 1 then, else 0. */
static int first_kept(struct kn_consumer *k, const char *topic, int32_t part, int type,
		      struct kn_pipeline *pipe, uint8_t *out, struct kn_verdict *v)
{
	struct kn_tp tp = {topic, part, KN_OFFSET_BEGINNING};
	struct kn_msg m;
	char err[256];
	int seen = 0;

	if (kn_consumer_assign(k, &tp, 1, err, sizeof(err)))
		return 0;
	for (int64_t until = kn_mono_ms() + 5000; kn_mono_ms() < until && seen < 500;) {
		if (kn_consumer_poll(k, &m, 1, 200) != 1)
			continue;
		bool eof = m.eof;
		bool kept =
			!eof && kn_pipeline_process(pipe, m.payload, m.len, type, m.ts_ms, out, v);
		kn_consumer_release(k, &m, 1);
		if (kept || eof)
			return kept;
		seen++;
	}
	return 0;
}

/* One record's mapped input fields, then what kanon made of them. */
static void print_record(const struct kn_event *ev, const struct kn_deid *d)
{
	for (int r = 0; r < KN_ROLE_COUNT; r++) {
		const struct kn_val *x = &ev->role[r];
		if (x->type == KN_VAL_STR)
			printf("  in  %-18s %.*s\n", kn_roles[r].name,
			       (int)(x->s.len > 70 ? 70 : x->s.len), x->s.p);
		else if (x->type == KN_VAL_DOUBLE)
			printf("  in  %-18s %.6f\n", kn_roles[r].name, x->d);
		else if (x->type == KN_VAL_LONG)
			printf("  in  %-18s %" PRId64 "\n", kn_roles[r].name, x->l);
		else if (x->type == KN_VAL_BOOL)
			printf("  in  %-18s %s\n", kn_roles[r].name, x->b ? "true" : "false");
	}
	printf("  out time_bucket=%" PRId64 " key_epoch=%" PRId64 "\n", d->time_bucket_ms,
	       d->key_epoch);
	for (int k = 0; k < KN_ID_KINDS; k++)
		if (d->has_pid[k])
			printf("  out %s_pid=%s\n", kn_id_kind_name(k), d->pid[k]);
	printf("  out geo_cell=%s ip_prefix=%s\n", d->geo_cell[0] ? d->geo_cell : "null",
	       d->ip_prefix);
	if (d->ua_browser[0])
		printf("  out ua_browser=%s %d\n", d->ua_browser, d->ua_browser_major);
	if (d->os_family[0])
		printf("  out os=%s %d\n", d->os_family, d->os_major);
	if (d->app_version[0])
		printf("  out app_version=%s\n", d->app_version);
	if (d->url_domain[0])
		printf("  out url_domain=%s\n", d->url_domain);
	if (d->referrer_domain[0])
		printf("  out referrer_domain=%s\n", d->referrer_domain);
	if (d->http_status >= 0)
		printf("  out http_status=%d\n", d->http_status);
	if (d->query_category[0])
		printf("  out query_category=%s\n", d->query_category);
}

/* Prints "field: input -> output" for the first record of each input topic
 * that the policy lets through. */
static void show_side_by_side(const struct kn_config *c)
{
	uint8_t out[KN_FRAME_LEN + KN_DEID_MAX_BYTES];
	struct kn_consumer *rd = reader(c);
	struct kn_verdict v;
	struct kn_stack st;
	char errstr[512];

	if (!rd)
		return;
	if (kn_stack_open(c, KN_STACK_MAINTAIN, &st, errstr, sizeof(errstr))) {
		kn_consumer_close(rd, false, 0);
		return;
	}
	for (int i = 0; i < c->n_inputs; i++) {
		int32_t part = 0;
		int64_t lo, hi;
		/* The generator's sticky partitioner may leave a partition empty. */
		while (part < 2 &&
		       !kn_consumer_watermarks(rd, c->inputs[i].topic, part, &lo, &hi,
					       kn_mono_ms() + 2000) &&
		       hi == lo)
			part++;
		printf("\n== %s log: %s -> %s ==\n", kn_event_type_name(c->inputs[i].type),
		       c->inputs[i].topic, c->topic_output);
		if (first_kept(rd, c->inputs[i].topic, part, c->inputs[i].type, st.pipe, out, &v))
			print_record(kn_pipeline_last_event(st.pipe), kn_pipeline_last(st.pipe));
		else
			printf("  (no record of the first 500 reaches the output: the policy "
			       "withheld them)\n");
	}
	kn_stack_close(&st);
	kn_consumer_close(rd, false, 0);
}

/* One AdAggregate record, decoded into v (of its schema) and printed.
 * Returns 1 when it was one, 0 when it did not decode. */
static int print_row(const struct kn_msg *m, avro_value_t *v)
{
	avro_reader_t r = avro_reader_memory((const char *)m->payload + KN_FRAME_LEN,
					     (int64_t)(m->len - KN_FRAME_LEN));
	const char *name, *str;
	int64_t ws, users, events;
	avro_value_t f, b;
	size_t len;
	int exact, ok = !avro_value_read(r, v);

	avro_reader_free(r);
	if (!ok)
		return 0;
	avro_value_get_by_name(v, "aggregate", &f, NULL);
	avro_value_get_string(&f, &name, &len);
	avro_value_get_by_name(v, "window_start", &f, NULL);
	avro_value_get_long(&f, &ws);
	printf("  %-14s window %" PRId64, name, ws);
	for (int d = 0; d < KN_DIMS; d++) {
		avro_value_get_by_name(v, kn_dim_name(d), &f, NULL);
		avro_value_get_current_branch(&f, &b);
		if (avro_value_get_type(&b) == AVRO_STRING) {
			avro_value_get_string(&b, &str, &len);
			printf(" %s=%s", kn_dim_name(d), str);
		}
	}
	avro_value_get_by_name(v, "users", &f, NULL);
	avro_value_get_long(&f, &users);
	avro_value_get_by_name(v, "events", &f, NULL);
	avro_value_get_long(&f, &events);
	avro_value_get_by_name(v, "users_exact", &f, NULL);
	avro_value_get_boolean(&f, &exact);
	printf(" -> users=%" PRId64 " events=%" PRId64 "%s\n", users, events,
	       exact ? " (exact: k-anonymity)" : " (noisy: dp)");
	return 1;
}

/* Prints the first released aggregate rows, read back as a consumer would. */
static void show_aggregates(const struct kn_config *c, int max)
{
	struct kn_consumer *rd = reader(c);
	struct kn_tp tps[3];
	struct kn_msg msgs[64];
	avro_schema_t s;
	avro_value_t v;
	int shown = 0, eofs = 0;
	char err[256];

	if (!rd)
		return;
	for (int32_t part = 0; part < 3; part++)
		tps[part] = (struct kn_tp){c->agg_topic, part, KN_OFFSET_BEGINNING};
	if (kn_consumer_assign(rd, tps, 3, err, sizeof(err))) {
		kn_consumer_close(rd, false, 0);
		return;
	}
	avro_schema_from_json_length(kn_agg_schema_json, strlen(kn_agg_schema_json), &s);
	avro_value_iface_t *iface = avro_generic_class_from_schema(s);
	avro_generic_value_new(iface, &v);
	printf("\n== advertiser aggregates (topic %s, first %d rows) ==\n", c->agg_topic, max);
	for (int64_t until = kn_mono_ms() + 5000;
	     shown < max && eofs < 3 && kn_mono_ms() < until;) {
		int n = kn_consumer_poll(rd, msgs, 64, 200);
		for (int i = 0; i < n; i++) {
			if (msgs[i].eof)
				eofs++;
			else if (shown < max && msgs[i].len > KN_FRAME_LEN)
				shown += print_row(&msgs[i], &v);
		}
		kn_consumer_release(rd, msgs, n);
	}
	avro_value_decref(&v);
	avro_value_iface_decref(iface);
	avro_schema_decref(s);
	kn_consumer_close(rd, false, 0);
}

int kn_demo(int64_t per_type, uint64_t seed, char *errstr, size_t errstr_size)
{
	char dir[] = "/tmp/kanon-demo.XXXXXX", cfg_path[4200], ov_b[600], ov_k[4300];
	const char *brokers = NULL;
	struct kn_mock *mock = NULL;
	struct kn_config *c = NULL;
	struct kn_pipeline_stats st;
	struct kn_gen_result gr;
	int err;

	err = materialize(dir, errstr, errstr_size);
	if (!err)
		err = kn_mock_new(1, &mock, &brokers, errstr, errstr_size);
	if (err)
		goto out;
	snprintf(cfg_path, sizeof(cfg_path), "%s/deploy/kanon.example.yaml", dir);
	snprintf(ov_b, sizeof(ov_b), "kafka.brokers=%s", brokers);
	snprintf(ov_k, sizeof(ov_k), "keys.file=%s/master.key", dir);
	const char *ov[] = {ov_b, ov_k, "kafka.group_id=kanon-demo"};
	err = kn_config_load(cfg_path, ov, 3, &c, errstr, errstr_size);
	if (err)
		goto out;
	for (int i = 0; i < c->n_inputs; i++)
		kn_mock_topic(mock, c->inputs[i].topic, 3);
	kn_mock_topic(mock, c->topic_output, 3);
	kn_mock_topic(mock, c->topic_dead_letter, 1);
	kn_mock_topic(mock, c->agg_topic, 3);
	kn_mock_topic(mock, c->erasure_requests_topic, 1);
	kn_mock_topic(mock, c->erasure_state_topic, 1);
	kn_mock_topic(mock, c->agg_stats_topic, 1);
	kn_mock_topic(mock, c->contrib_topic, (int)c->contrib_partitions);
	kn_mock_topic(mock, c->partials_topic, (int)c->partials_partitions);

	printf("kanon demo: mock Kafka cluster at %s, config and key in %s\n", brokers, dir);
	struct kn_gen_opts go = {.seed = seed,
				 .count = per_type,
				 .users = 2000,
				 .malformed = 6,
				 .start_ms = 1793491200000LL /* 2026-11-01 */,
				 .span_ms = 3 * 3600 * 1000LL,
				 .types = 7};
	err = kn_gen_run(c, &go, &gr, errstr, errstr_size);
	if (err)
		goto out;
	printf("generated %" PRId64 " device, %" PRId64 " access, %" PRId64
	       " search logs (+%" PRId64 " malformed each)\n",
	       gr.written[0], gr.written[1], gr.written[2], gr.malformed[0]);
	show_side_by_side(c);

	struct kn_run_opts ro = {.until_eof = true, .stats = &st};
	err = kn_run(c, &ro, errstr, errstr_size);
	if (err)
		goto out;
	int64_t in = 0, dead = 0;
	for (int t = 0; t < KN_EV_TYPES; t++)
		in += gr.written[t] + gr.malformed[t];
	for (int r = 0; r < KN_DEAD_REASONS; r++)
		dead += (int64_t)st.dead[r];
	printf("\n== counts ==\n  input records      %" PRId64 "\n  de-identified      %" PRIu64
	       " (topic %s holds %" PRId64 ")\n  dead-lettered      %" PRId64
	       " (topic %s holds %" PRId64 ")\n",
	       in, st.out, c->topic_output, kn_mock_count(mock, c->topic_output, 3), dead,
	       c->topic_dead_letter, kn_mock_count(mock, c->topic_dead_letter, 1));
	for (int r = 0; r < KN_DEAD_REASONS; r++)
		if (st.dead[r])
			printf("    %-24s %" PRIu64 "\n", kn_dead_reason_name(r), st.dead[r]);
	printf("  geo withheld (no location consent) %" PRIu64 "\n", st.geo_withheld);
	int64_t dropped = 0;
	for (int r = 0; r < KN_DROP_REASONS; r++)
		dropped += (int64_t)st.dropped[r];
	printf("  withheld by the policy (no analytics / ads consent / minors) %" PRId64
	       " / %" PRId64 " / %" PRId64 "\n",
	       (int64_t)st.dropped[KN_DROP_NO_ANALYTICS], (int64_t)st.dropped[KN_DROP_NO_ADS],
	       (int64_t)st.dropped[KN_DROP_MINOR]);
	printf("  every input accounted for: %s\n",
	       in == (int64_t)st.out + dead + dropped ? "yes" : "NO");
	if (c->n_aggs) {
		printf("  aggregate rows released: %" PRId64
		       " (topic %s), window summaries: %" PRId64 " (topic %s)\n",
		       kn_mock_count(mock, c->agg_topic, 3), c->agg_topic,
		       kn_mock_count(mock, c->agg_stats_topic, 1), c->agg_stats_topic);
		show_aggregates(c, 8);
	}
	if (in != (int64_t)st.out + dead + dropped)
		err = -EIO;
out:
	kn_config_destroy(c);
	kn_mock_destroy(mock);
	clean_dir(dir);
	return err;
}
