#include "demo.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "avrobin.h"
#include "embedded.h"
#include "gen.h"
#include "kafka_conf.h"
#include "keys.h"
#include "log.h"
#include "pipeline.h"
#include "aggregate.h"
#include "encode.h"
#include "run.h"
#include "txrun.h"

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

/* Prints "field: input -> output" for the first message of each input topic. */
static void show_side_by_side(const struct kn_config *c)
{
	char errstr[512];
	rd_kafka_conf_t *conf = kn_kafka_conf_new(c, NULL, 0, errstr, sizeof(errstr));
	rd_kafka_t *rk =
		conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)) : NULL;
	struct kn_stack st;
	uint8_t out[KN_FRAME_LEN + KN_DEID_MAX_BYTES];

	if (!rk) {
		if (conf)
			rd_kafka_conf_destroy(conf);
		return;
	}
	if (kn_stack_open(c, KN_STACK_MAINTAIN, &st, errstr, sizeof(errstr))) {
		rd_kafka_destroy(rk);
		return;
	}
	struct kn_pipeline *p = st.pipe;
	for (int i = 0; i < c->n_inputs; i++) {
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, c->inputs[i].topic, NULL);
		int32_t part = 0;
		int64_t lo, hi;
		/* The generator's sticky partitioner may leave a partition empty. */
		while (part < 2 &&
		       !rd_kafka_query_watermark_offsets(rk, c->inputs[i].topic, part, &lo, &hi,
							 2000) &&
		       hi == lo)
			part++;
		rd_kafka_consume_start(rkt, part, RD_KAFKA_OFFSET_BEGINNING);
		rd_kafka_message_t *m = rd_kafka_consume(rkt, part, 5000);
		if (m && !m->err) {
			struct kn_verdict v;
			size_t n =
				kn_pipeline_process(p, m->payload, m->len, c->inputs[i].type,
						    rd_kafka_message_timestamp(m, NULL), out, &v);
			const struct kn_event *ev = kn_pipeline_last_event(p);
			const struct kn_deid *d = kn_pipeline_last(p);
			printf("\n== %s log: %s -> %s ==\n", kn_event_type_name(c->inputs[i].type),
			       c->inputs[i].topic, c->topic_output);
			if (n) {
				for (int r = 0; r < KN_ROLE_COUNT; r++) {
					const struct kn_val *x = &ev->role[r];
					if (x->type == KN_VAL_STR)
						printf("  in  %-18s %.*s\n", kn_roles[r].name,
						       (int)(x->s.len > 70 ? 70 : x->s.len),
						       x->s.p);
					else if (x->type == KN_VAL_DOUBLE)
						printf("  in  %-18s %.6f\n", kn_roles[r].name,
						       x->d);
					else if (x->type == KN_VAL_LONG)
						printf("  in  %-18s %" PRId64 "\n",
						       kn_roles[r].name, x->l);
					else if (x->type == KN_VAL_BOOL)
						printf("  in  %-18s %s\n", kn_roles[r].name,
						       x->b ? "true" : "false");
				}
				printf("  out time_bucket=%" PRId64 " key_epoch=%" PRId64 "\n",
				       d->time_bucket_ms, d->key_epoch);
				for (int k = 0; k < KN_ID_KINDS; k++)
					if (d->has_pid[k])
						printf("  out %s_pid=%s\n", kn_id_kind_name(k),
						       d->pid[k]);
				printf("  out geo_cell=%s ip_prefix=%s\n",
				       d->geo_cell[0] ? d->geo_cell : "null", d->ip_prefix);
				if (d->ua_browser[0])
					printf("  out ua_browser=%s %d\n", d->ua_browser,
					       d->ua_browser_major);
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
			}
		}
		if (m)
			rd_kafka_message_destroy(m);
		rd_kafka_consume_stop(rkt, part);
		rd_kafka_topic_destroy(rkt);
	}
	kn_stack_close(&st);
	rd_kafka_destroy(rk);
}

/* Prints the first released aggregate rows, read back as a consumer would. */
static void show_aggregates(const struct kn_config *c, int max)
{
	char err[512];
	rd_kafka_conf_t *conf = kn_kafka_conf_new(c, NULL, 0, err, sizeof(err));
	rd_kafka_t *rk;
	avro_schema_t s;
	int shown = 0;

	if (!conf ||
	    kn_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err)) ||
	    !(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err))))
		return;
	avro_schema_from_json_length(kn_agg_schema_json, strlen(kn_agg_schema_json), &s);
	avro_value_iface_t *iface = avro_generic_class_from_schema(s);
	avro_value_t v, f, b;
	avro_generic_value_new(iface, &v);
	printf("\n== advertiser aggregates (topic %s, first %d rows) ==\n", c->agg_topic, max);
	for (int32_t part = 0; part < 3 && shown < max; part++) {
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, c->agg_topic, NULL);
		rd_kafka_consume_start(rkt, part, RD_KAFKA_OFFSET_BEGINNING);
		rd_kafka_message_t *m;
		while (shown < max && (m = rd_kafka_consume(rkt, part, 1000)) && !m->err) {
			avro_reader_t r =
				avro_reader_memory((char *)m->payload + 5, (int64_t)m->len - 5);
			if (!avro_value_read(r, &v)) {
				const char *name, *str;
				size_t len;
				int64_t ws, users, events;
				int exact;
				avro_value_get_by_name(&v, "aggregate", &f, NULL);
				avro_value_get_string(&f, &name, &len);
				avro_value_get_by_name(&v, "window_start", &f, NULL);
				avro_value_get_long(&f, &ws);
				printf("  %-14s window %" PRId64, name, ws);
				for (int d = 0; d < KN_DIMS; d++) {
					avro_value_get_by_name(&v, kn_dim_name(d), &f, NULL);
					avro_value_get_current_branch(&f, &b);
					if (avro_value_get_type(&b) == AVRO_STRING) {
						avro_value_get_string(&b, &str, &len);
						printf(" %s=%s", kn_dim_name(d), str);
					}
				}
				avro_value_get_by_name(&v, "users", &f, NULL);
				avro_value_get_long(&f, &users);
				avro_value_get_by_name(&v, "events", &f, NULL);
				avro_value_get_long(&f, &events);
				avro_value_get_by_name(&v, "users_exact", &f, NULL);
				avro_value_get_boolean(&f, &exact);
				printf(" -> users=%" PRId64 " events=%" PRId64 "%s\n", users,
				       events, exact ? " (exact: k-anonymity)" : " (noisy: dp)");
				shown++;
			}
			avro_reader_free(r);
			rd_kafka_message_destroy(m);
		}
		rd_kafka_consume_stop(rkt, part);
		rd_kafka_topic_destroy(rkt);
	}
	avro_value_decref(&v);
	avro_value_iface_decref(iface);
	avro_schema_decref(s);
	rd_kafka_destroy(rk);
}

static int64_t topic_count(rd_kafka_t *rk, const char *topic, int parts)
{
	int64_t total = 0, lo, hi;

	for (int p = 0; p < parts; p++)
		if (!rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000))
			total += hi - lo;
	return total;
}

static int start_mock(rd_kafka_t **rk, char *bootstraps, size_t n, char *errstr, size_t errsz)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char why[256];

	if (kn_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, errsz) ||
	    kn_kafka_conf_set(conf, "log_level", "3", errstr, errsz)) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	*rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!*rk) {
		snprintf(errstr, errsz, "mock cluster: %s", why);
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	snprintf(bootstraps, n, "%s",
		 rd_kafka_mock_cluster_bootstraps(rd_kafka_handle_mock_cluster(*rk)));
	return 0;
}

int kn_demo(int64_t per_type, uint64_t seed, char *errstr, size_t errstr_size)
{
	char dir[] = "/tmp/kanon-demo.XXXXXX", cfg_path[4200], brokers[512], ov_b[600], ov_k[4300];
	rd_kafka_t *mock = NULL;
	struct kn_config *c = NULL;
	struct kn_pipeline_stats st;
	struct kn_gen_result gr;
	int err;

	err = materialize(dir, errstr, errstr_size);
	if (!err)
		err = start_mock(&mock, brokers, sizeof(brokers), errstr, errstr_size);
	if (err)
		goto out;
	snprintf(cfg_path, sizeof(cfg_path), "%s/deploy/kanon.example.yaml", dir);
	snprintf(ov_b, sizeof(ov_b), "kafka.brokers=%s", brokers);
	snprintf(ov_k, sizeof(ov_k), "keys.file=%s/master.key", dir);
	const char *ov[] = {ov_b, ov_k, "kafka.group_id=kanon-demo"};
	err = kn_config_load(cfg_path, ov, 3, &c, errstr, errstr_size);
	if (err)
		goto out;
	rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(mock);
	for (int i = 0; i < c->n_inputs; i++)
		rd_kafka_mock_topic_create(mc, c->inputs[i].topic, 3, 1);
	rd_kafka_mock_topic_create(mc, c->topic_output, 3, 1);
	rd_kafka_mock_topic_create(mc, c->topic_dead_letter, 1, 1);
	rd_kafka_mock_topic_create(mc, c->agg_topic, 3, 1);
	rd_kafka_mock_topic_create(mc, c->erasure_requests_topic, 1, 1);
	rd_kafka_mock_topic_create(mc, c->erasure_state_topic, 1, 1);
	rd_kafka_mock_topic_create(mc, c->agg_stats_topic, 1, 1);

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
	err = (c->n_aggs ? kn_txrun : kn_run)(c, &ro, errstr, errstr_size);
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
	       in, st.out, c->topic_output, topic_count(mock, c->topic_output, 3), dead,
	       c->topic_dead_letter, topic_count(mock, c->topic_dead_letter, 1));
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
		       topic_count(mock, c->agg_topic, 3), c->agg_topic,
		       topic_count(mock, c->agg_stats_topic, 1), c->agg_stats_topic);
		show_aggregates(c, 8);
	}
	if (in != (int64_t)st.out + dead + dropped)
		err = -EIO;
out:
	kn_config_destroy(c);
	if (mock)
		rd_kafka_destroy(mock);
	clean_dir(dir);
	return err;
}
