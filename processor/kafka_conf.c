#include "kafka_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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

rd_kafka_conf_t *kn_kafka_conf_new(const struct kn_config *c, const struct kn_kv *props, int n,
				   char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (kn_kafka_conf_set(conf, "bootstrap.servers", c->brokers, errstr, errstr_size))
		goto fail;
	for (int i = 0; i < n; i++)
		if (kn_kafka_conf_set(conf, props[i].key, props[i].value, errstr, errstr_size))
			goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
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
