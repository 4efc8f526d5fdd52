#include "sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kafka_conf.h"
#include "kn_alloc.h"
#include "log.h"

struct kn_sink {
	rd_kafka_t *rk;
	rd_kafka_topic_t *out, *dlq;
	kn_sink_dr_cb *cb;
	void *opaque;
	char fatal[512];
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kn_sink *s = opaque;
	(void)rk;

	if (m->err && !s->fatal[0] && m->err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[400];
		rd_kafka_fatal_error(s->rk, why, sizeof(why));
		snprintf(s->fatal, sizeof(s->fatal), "producer fatal error: %s", why);
	}
	s->cb(s->opaque, (uint64_t)(uintptr_t)m->_private, m->err ? -EIO : 0,
	      m->err ? rd_kafka_err2str(m->err) : NULL);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kn_sink *s = opaque;

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[400];
		rd_kafka_fatal_error(rk, why, sizeof(why));
		snprintf(s->fatal, sizeof(s->fatal), "producer fatal error: %s", why);
		kn_err("sink", "%s", s->fatal);
	} else {
		kn_warn("sink", "%s", reason);
	}
}

int kn_sink_new(const struct kn_config *c, kn_sink_dr_cb *cb, void *opaque, struct kn_sink **out,
		char *errstr, size_t errstr_size)
{
	struct kn_sink *s = kn_calloc(1, sizeof(*s));
	rd_kafka_conf_t *conf = NULL;
	char why[512];

	*out = NULL;
	if (!s) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	s->cb = cb;
	s->opaque = opaque;
	if (!(conf = kn_kafka_client_conf(c, KN_CLIENT_PRODUCER, NULL, errstr, errstr_size)))
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_opaque(conf, s);
	s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!s->rk) {
		snprintf(errstr, errstr_size, "kafka producer: %s", why);
		goto fail;
	}
	conf = NULL;
	s->out = rd_kafka_topic_new(s->rk, c->topic_output, NULL);
	s->dlq = rd_kafka_topic_new(s->rk, c->topic_dead_letter, NULL);
	if (!s->out || !s->dlq) {
		snprintf(errstr, errstr_size, "topic handles: %s",
			 rd_kafka_err2str(rd_kafka_last_error()));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	kn_sink_destroy(s);
	return -EINVAL;
}

void kn_sink_destroy(struct kn_sink *s)
{
	if (!s)
		return;
	if (s->out)
		rd_kafka_topic_destroy(s->out);
	if (s->dlq)
		rd_kafka_topic_destroy(s->dlq);
	if (s->rk)
		kn_kafka_destroy(s->rk, 0, 0);
	kn_free(s);
}

static int produce_err(struct kn_sink *s, rd_kafka_resp_err_t err)
{
	if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return -EAGAIN;
	if (!s->fatal[0])
		snprintf(s->fatal, sizeof(s->fatal), "produce: %s", rd_kafka_err2str(err));
	return -EIO;
}

int kn_sink_produce(struct kn_sink *s, const void *key, size_t key_len, const void *val,
		    size_t val_len, int64_t ts_ms, uint64_t token)
{
	rd_kafka_resp_err_t err = rd_kafka_producev(
		s->rk, RD_KAFKA_V_RKT(s->out), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)val, val_len),
		RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token),
		RD_KAFKA_V_END);

	return err ? produce_err(s, err) : 0;
}

rd_kafka_headers_t *kn_dead_letter_headers(const struct kn_dead_letter *dl)
{
	char part[16], off[24], sid[16];
	rd_kafka_headers_t *h = rd_kafka_headers_new(6);

	snprintf(part, sizeof(part), "%" PRId32, dl->src_partition);
	snprintf(off, sizeof(off), "%" PRId64, dl->src_offset);
	snprintf(sid, sizeof(sid), "%" PRId32, dl->schema_id);
	rd_kafka_header_add(h, "kanon.reason", -1, dl->reason, -1);
	rd_kafka_header_add(h, "kanon.detail", -1, dl->detail ? dl->detail : "", -1);
	rd_kafka_header_add(h, "kanon.source.topic", -1, dl->src_topic, -1);
	rd_kafka_header_add(h, "kanon.source.partition", -1, part, -1);
	rd_kafka_header_add(h, "kanon.source.offset", -1, off, -1);
	if (dl->schema_id >= 0)
		rd_kafka_header_add(h, "kanon.schema_id", -1, sid, -1);
	return h;
}

int kn_sink_dead_letter(struct kn_sink *s, const struct kn_dead_letter *dl, uint64_t token)
{
	rd_kafka_headers_t *h = kn_dead_letter_headers(dl);
	rd_kafka_resp_err_t err;

	err = rd_kafka_producev(
		s->rk, RD_KAFKA_V_RKT(s->dlq), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_VALUE((void *)dl->payload, dl->payload_len), RD_KAFKA_V_HEADERS(h),
		RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token), RD_KAFKA_V_END);
	if (err) {
		rd_kafka_headers_destroy(h); /* ownership passes only on success */
		return produce_err(s, err);
	}
	return 0;
}

void kn_sink_poll(struct kn_sink *s, int timeout_ms)
{
	rd_kafka_poll(s->rk, timeout_ms);
}

int kn_sink_flush(struct kn_sink *s, int64_t until)
{
	return kn_kafka_flush(s->rk, until);
}

const char *kn_sink_error(const struct kn_sink *s)
{
	return s->fatal[0] ? s->fatal : NULL;
}

int kn_sink_queued(const struct kn_sink *s)
{
	return rd_kafka_outq_len(s->rk);
}
