#include "filemode.h"

#include <avro.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "container.h"
#include "decode.h"
#include "run.h"
#include "schema.h"

struct fm {
	struct kn_stack st;	    /* no erasure: file mode has no Kafka */
	struct kn_schemas *schemas; /* = st.schemas */
	struct kn_pipeline *pipe;   /* = st.pipe */
	struct kn_schema_entry own; /* when the file's schema needs its own decoder */
	const struct kn_schema_entry *e;
	struct kn_container *in;
	avro_file_writer_t writer;
	avro_schema_t out_schema;
	FILE *dead;
	const char *in_path, *out_path;
	struct kn_file_result *res;
	struct kn_event scratch; /* where a record is decoded to find its end */
	int64_t now;
	char *errstr;
	size_t errsz;
	int64_t lost;	      /* records known lost: in blocks that do not decompress or decode */
	int64_t losses;	      /* damaged parts: byte ranges and blocks */
	char first_loss[320]; /* what the first one was */
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

static int fm_open(struct fm *f, const struct kn_config *c, const char *dead, char *errstr,
		   size_t errsz)
{
	int err = kn_stack_open(c, KN_STACK_MAINTAIN, &f->st, errstr, errsz);

	if (err)
		return err;
	f->schemas = f->st.schemas;
	f->pipe = f->st.pipe;
	if ((err = kn_container_open(f->in_path, &f->in, errstr, errsz)))
		return err;
	if (!(f->e = pick_schema(f, c, kn_container_schema(f->in), errstr, errsz)))
		return -EINVAL;
	if (avro_schema_from_json_length(kn_deid_schema_json, strlen(kn_deid_schema_json),
					 &f->out_schema)) {
		snprintf(errstr, errsz, "built-in DeidEvent schema: %s", avro_strerror());
		return -EINVAL;
	}
	/* avro-c creates its file exclusively, so an old output goes first;
	 * but only a regular file: never a device, a directory or what a
	 * symlink points at (--output /dev/null must not delete /dev/null). */
	struct stat st;
	if (!lstat(f->out_path, &st) && !S_ISREG(st.st_mode)) {
		snprintf(errstr, errsz,
			 "%s: exists and is not a regular file (kanon replaces only regular files)",
			 f->out_path);
		return -EINVAL;
	}
	remove(f->out_path);
	if (avro_file_writer_create_with_codec(f->out_path, f->out_schema, &f->writer, "deflate",
					       0)) {
		snprintf(errstr, errsz, "%s: %s", f->out_path, avro_strerror());
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
	kn_container_close(f->in);
	if (f->out_schema)
		avro_schema_decref(f->out_schema);
	if (f->own.dec)
		kn_decoder_destroy(f->own.dec);
	if (f->dead)
		fclose(f->dead);
	kn_stack_close(&f->st);
}

/* Counts a loss; the first one's description goes into the closing error. */
static void note_loss(struct fm *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_loss(struct fm *f, const char *fmt, ...)
{
	va_list ap;

	if (f->losses++)
		return;
	va_start(ap, fmt);
	vsnprintf(f->first_loss, sizeof(f->first_loss), fmt, ap);
	va_end(ap);
}

/* Bytes that are no block, or a block that does not decompress (then its
 * record count is known, and they count as read and dead). */
static void lose_bytes(struct fm *f, const struct kn_damage *d)
{
	if (d->records >= 0) {
		f->lost += d->records;
		f->res->read += d->records;
		f->res->dead += d->records;
		note_loss(f, "the block at offset %lld (%lld records) cannot be read (%s)",
			  (long long)d->offset, (long long)d->records, d->why);
	} else if (d->length < 0) {
		note_loss(f, "the bytes from offset %lld on are not an Avro block (%s)",
			  (long long)d->offset, d->why);
	} else {
		note_loss(f, "the %lld bytes at offset %lld are not an Avro block (%s)",
			  (long long)d->length, (long long)d->offset, d->why);
	}
	if (!f->dead)
		return;
	if (d->records >= 0)
		fprintf(f->dead, "{\"index\": %lld, \"records\": %lld, ",
			(long long)(f->res->read - d->records), (long long)d->records);
	else
		fprintf(f->dead, "{\"records\": null, ");
	fprintf(f->dead,
		"\"offset\": %lld, \"bytes\": %lld, \"reason\": \"damaged_block\", \"detail\": "
		"\"%s\"}\n",
		(long long)d->offset, (long long)d->length, d->why);
}

/* A block whose records and bytes do not add up: how many records it held
 * is not known (those read from it were processed). */
static void lose_block(struct fm *f, const struct kn_block *b, const char *why)
{
	note_loss(f, "the block at offset %lld %s", (long long)b->offset, why);
	if (f->dead)
		fprintf(f->dead,
			"{\"records\": null, \"offset\": %lld, \"bytes\": %lld, \"reason\": "
			"\"damaged_block\", \"detail\": \"%s\"}\n",
			(long long)b->offset, (long long)b->size, why);
}

/* The records of a block from index i on cannot be told apart. */
static void lose_records(struct fm *f, const struct kn_block *b, int64_t i, const char *why)
{
	int64_t n = b->count - i;

	f->lost += n;
	f->res->read += n;
	f->res->dead += n;
	note_loss(f, "record %lld of the block at offset %lld does not decode (%s)", (long long)i,
		  (long long)b->offset, why);
	if (f->dead)
		fprintf(f->dead,
			"{\"index\": %lld, \"records\": %lld, \"offset\": %lld, \"reason\": "
			"\"decode_error\", \"detail\": \"record %lld of the block: %s\"}\n",
			(long long)(f->res->read - n), (long long)n, (long long)b->offset,
			(long long)i, why);
}

static int process_record(struct fm *f, const uint8_t *datum, size_t len)
{
	uint8_t out[KN_DEID_MAX_BYTES];
	struct kn_verdict v;
	size_t n;

	f->res->read++;
	n = kn_pipeline_process_datum(f->pipe, f->e, datum, len, f->now, out, &v);
	if (n) {
		f->res->written++;
		if (!avro_file_writer_append_encoded(f->writer, out, (int64_t)n))
			return 0;
		snprintf(f->errstr, f->errsz, "%s: %s", f->out_path, avro_strerror());
		return -EIO;
	}
	if (v.dropped) {
		f->res->dropped++;
		return 0;
	}
	f->res->dead++;
	if (f->dead)
		fprintf(f->dead, "{\"index\": %lld, \"reason\": \"%s\", \"detail\": \"%s\"}\n",
			(long long)(f->res->read - 1), kn_dead_reason_name(v.reason),
			v.detail ? v.detail : "");
	return 0;
}

/* Splits a block into records with the writer schema's decoder. One that
 * does not decode hides where the next begins: the rest of the block is
 * lost, and said so. */
static int process_block(struct fm *f, const struct kn_block *b)
{
	size_t off = 0, used;
	char why_buf[96];
	const char *why;
	int err;

	/* Every schema kanon accepts takes a byte or more per record (the
	 * event_id and timestamp roles), so a larger count is not believed. */
	if ((uint64_t)b->count > b->len) {
		snprintf(why_buf, sizeof(why_buf), "claims %lld records in %zu bytes",
			 (long long)b->count, b->len);
		lose_block(f, b, why_buf);
		return 0;
	}
	for (int64_t i = 0; i < b->count; i++) {
		if (kn_decoder_decode_prefix(f->e->dec, b->data + off, b->len - off, &f->scratch,
					     &used, &why)) {
			lose_records(f, b, i, why);
			return 0;
		}
		if ((err = process_record(f, b->data + off, used)))
			return err;
		off += used;
	}
	if (off != b->len) {
		snprintf(why_buf, sizeof(why_buf), "has %zu bytes after its %lld records (read)",
			 b->len - off, (long long)b->count);
		lose_block(f, b, why_buf);
	}
	return 0;
}

int kn_filemode_process(const struct kn_config *c, const char *in_path, const char *out_path,
			const char *dead_path, struct kn_file_result *res, char *errstr,
			size_t errstr_size)
{
	struct fm f = {.in_path = in_path,
		       .out_path = out_path,
		       .res = res,
		       .errstr = errstr,
		       .errsz = errstr_size};
	struct kn_block b;
	struct kn_damage d;
	int err, rc = 0;

	memset(res, 0, sizeof(*res));
	f.now = (int64_t)time(NULL) * 1000;
	err = fm_open(&f, c, dead_path, errstr, errstr_size);
	while (!err && (rc = kn_container_next(f.in, &b, &d, errstr, errstr_size)) > 0) {
		if (rc == 2)
			lose_bytes(&f, &d);
		else
			err = process_block(&f, &b);
	}
	if (!err && rc < 0)
		err = rc;
	if (!err && f.losses) {
		snprintf(errstr, errstr_size,
			 "%s: %lld damaged part(s) skipped, the first: %s; %lld record(s) known "
			 "lost, counted as dead letters (every other block was processed; the "
			 "output is valid)",
			 in_path, (long long)f.losses, f.first_loss, (long long)f.lost);
		err = -EBADMSG;
	}
	fm_close(&f);
	return err;
}
