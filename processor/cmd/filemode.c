#include "filemode.h"

#include <avro.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kn_alloc.h"
#include "run.h"
#include "schema.h"

struct fm {
	struct kn_stack st;	    /* no erasure: file mode has no Kafka */
	struct kn_schemas *schemas; /* = st.schemas */
	struct kn_pipeline *pipe;   /* = st.pipe */
	struct kn_schema_entry own; /* when the file's schema needs its own decoder */
	avro_file_reader_t reader;
	avro_file_writer_t writer;
	avro_schema_t out_schema;
	avro_schema_t in_schema; /* a reference from avro_file_reader_get_writer_schema */
	avro_value_iface_t *iface;
	avro_value_t val;
	bool has_val;
	FILE *dead;
	char *buf;
	size_t cap;
};

/* The config entry for the file's writer schema; may compile a decoder. */
static const struct kn_schema_entry *pick_schema(struct fm *f, const struct kn_config *c,
						 avro_schema_t ws, char *errstr, size_t errsz)
{
	const struct kn_schema_entry *e = kn_schemas_match(f->schemas, ws);
	const char *name = avro_schema_name(ws);

	if (e)
		return e;
	for (int i = 0; i < c->n_schemas; i++) {
		const struct kn_schema_entry *ce = kn_schemas_at(f->schemas, i);
		if (!name || strcmp(avro_schema_name(ce->schema), name))
			continue;
		f->own = *ce;
		if (kn_decoder_new(ws, (const char *const *)c->schemas[i].roles, &f->own.dec,
				   errstr, errsz))
			return NULL;
		return &f->own;
	}
	snprintf(errstr, errsz, "the file's schema (record '%s') matches no schema in %s",
		 name ? name : "?", c->path);
	return NULL;
}

static int fm_open(struct fm *f, const struct kn_config *c, const char *in, const char *out,
		   const char *dead, const struct kn_schema_entry **e, char *errstr, size_t errsz)
{
	int err = kn_stack_open(c, KN_STACK_MAINTAIN, &f->st, errstr, errsz);

	if (err)
		return err;
	f->schemas = f->st.schemas;
	f->pipe = f->st.pipe;
	f->cap = 64 * 1024;
	f->buf = kn_malloc(f->cap);
	if (!f->buf)
		return -ENOMEM;
	if (avro_file_reader(in, &f->reader)) {
		snprintf(errstr, errsz, "%s: %s", in, avro_strerror());
		return -EINVAL;
	}
	avro_schema_t ws = f->in_schema = avro_file_reader_get_writer_schema(f->reader);
	*e = pick_schema(f, c, ws, errstr, errsz);
	if (!*e)
		return -EINVAL;
	f->iface = avro_generic_class_from_schema(ws);
	if (!f->iface || avro_generic_value_new(f->iface, &f->val)) {
		snprintf(errstr, errsz, "avro: %s", avro_strerror());
		return -EINVAL;
	}
	f->has_val = true;
	if (avro_schema_from_json_length(kn_deid_schema_json, strlen(kn_deid_schema_json),
					 &f->out_schema)) {
		snprintf(errstr, errsz, "built-in DeidEvent schema: %s", avro_strerror());
		return -EINVAL;
	}
	remove(out);
	if (avro_file_writer_create_with_codec(out, f->out_schema, &f->writer, "deflate", 0)) {
		snprintf(errstr, errsz, "%s: %s", out, avro_strerror());
		return -EIO;
	}
	if (dead && !(f->dead = fopen(dead, "w"))) {
		snprintf(errstr, errsz, "%s: %s", dead, strerror(errno));
		return -EIO;
	}
	return 0;
}

static void fm_close(struct fm *f)
{
	if (f->writer)
		avro_file_writer_close(f->writer);
	if (f->reader)
		avro_file_reader_close(f->reader);
	if (f->has_val)
		avro_value_decref(&f->val);
	if (f->iface)
		avro_value_iface_decref(f->iface);
	if (f->out_schema)
		avro_schema_decref(f->out_schema);
	if (f->in_schema)
		avro_schema_decref(f->in_schema);
	if (f->own.dec)
		kn_decoder_destroy(f->own.dec);
	if (f->dead)
		fclose(f->dead);
	kn_free(f->buf);
	kn_stack_close(&f->st);
}

/* Re-encodes the current value to binary (the pipeline's input form). */
static int datum_bytes(struct fm *f, size_t *len)
{
	size_t need;

	if (avro_value_sizeof(&f->val, &need))
		return -EINVAL;
	if (need > f->cap) {
		char *nb = kn_realloc(f->buf, need);
		if (!nb)
			return -ENOMEM;
		f->buf = nb;
		f->cap = need;
	}
	avro_writer_t w = avro_writer_memory(f->buf, (int64_t)f->cap);
	int err = avro_value_write(w, &f->val);
	*len = (size_t)avro_writer_tell(w);
	avro_writer_free(w);
	return err ? -EINVAL : 0;
}

int kn_filemode_process(const struct kn_config *c, const char *in_path, const char *out_path,
			const char *dead_path, struct kn_file_result *res, char *errstr,
			size_t errstr_size)
{
	struct fm f = {0};
	const struct kn_schema_entry *e = NULL;
	uint8_t out[KN_DEID_MAX_BYTES];
	int err, rc;

	memset(res, 0, sizeof(*res));
	err = fm_open(&f, c, in_path, out_path, dead_path, &e, errstr, errstr_size);
	int64_t now = (int64_t)time(NULL) * 1000;
	while (!err && (rc = avro_file_reader_read_value(f.reader, &f.val)) == 0) {
		struct kn_verdict v;
		size_t len, n;
		res->read++;
		if ((err = datum_bytes(&f, &len)))
			break;
		n = kn_pipeline_process_datum(f.pipe, e, (const uint8_t *)f.buf, len, now, out, &v);
		if (n) {
			if (avro_file_writer_append_encoded(f.writer, out, (int64_t)n)) {
				snprintf(errstr, errstr_size, "%s: %s", out_path, avro_strerror());
				err = -EIO;
			}
			res->written++;
			continue;
		}
		if (v.dropped) {
			res->dropped++;
			continue;
		}
		res->dead++;
		if (f.dead)
			fprintf(f.dead,
				"{\"index\": %lld, \"reason\": \"%s\", \"detail\": \"%s\"}\n",
				(long long)(res->read - 1), kn_dead_reason_name(v.reason),
				v.detail ? v.detail : "");
	}
	if (!err && rc != EOF) {
		snprintf(errstr, errstr_size, "%s: record %lld: %s (output so far is valid)",
			 in_path, (long long)res->read, avro_strerror());
		err = -EBADMSG;
	}
	fm_close(&f);
	return err;
}
