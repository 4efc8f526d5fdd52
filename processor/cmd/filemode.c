#include "filemode.h"

#include <avro.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
	int64_t records; /* in the input's well-formed blocks (scan_container) */
	int64_t bad_at;	 /* offset of the first byte no block holds, or -1 */
};

/* An Avro zig-zag varint from fp; -1 at EOF or when longer than 10 bytes. */
static int read_varint(FILE *fp, int64_t *v)
{
	uint64_t u = 0;

	for (int shift = 0; shift < 70; shift += 7) {
		int c = getc(fp);
		if (c == EOF)
			return -1;
		u |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
			return 0;
		}
	}
	return -1;
}

/* Skips the header's metadata (a map of bytes) and reads the sync marker. */
static int scan_header(FILE *fp, uint8_t sync[16])
{
	char magic[4];
	int64_t n, size;

	if (fread(magic, 1, 4, fp) != 4 || memcmp(magic, "Obj\x01", 4))
		return -1;
	while (!read_varint(fp, &n) && n) {
		if (n < 0 && (n = -n, read_varint(fp, &size)))
			return -1;
		for (int64_t k = 0; k < 2 * n; k++) /* key, value */
			if (read_varint(fp, &size) || size < 0 || fseeko(fp, size, SEEK_CUR))
				return -1;
	}
	return fread(sync, 1, 16, fp) == 16 ? 0 : -1;
}

/* Walks a container file's blocks without decoding them: how many records
 * its well-formed blocks hold, and the offset of the first byte that is not
 * part of one. avro-c reads bytes after the last block (a block of 20
 * records with size -1, say) by replaying the previous block, so the reader
 * is stopped at this count. A header avro-c would refuse, or an input that
 * is not a regular file (a pipe cannot be read twice), is left to avro-c. */
static void scan_container(const char *path, int64_t *records, int64_t *bad_at)
{
	struct stat st;
	uint8_t sync[16], end[16];
	int64_t n, size;
	FILE *fp;

	*records = INT64_MAX;
	*bad_at = -1;
	if (stat(path, &st) || !S_ISREG(st.st_mode) || !(fp = fopen(path, "rb")))
		return;
	if (!scan_header(fp, sync)) {
		int64_t empty_at = -1; /* the first block of no records */
		*records = 0;
		for (int c; (c = getc(fp)) != EOF;) {
			off_t at = ftello(fp) - 1;
			ungetc(c, fp);
			if (read_varint(fp, &n) || n < 0 || n > INT64_MAX - *records ||
			    read_varint(fp, &size) || size < 0 || (n > 0 && size == 0) ||
			    fseeko(fp, size, SEEK_CUR) || fread(end, 1, 16, fp) != 16 ||
			    memcmp(sync, end, 16)) {
				*bad_at = at;
				break;
			}
			/* avro-c replays the block before a block of no records
			 * when records follow it: empty blocks at the end are
			 * fine, one before more records ends what kanon reads. */
			if (!n && empty_at < 0)
				empty_at = at;
			if (n && empty_at >= 0) {
				*bad_at = empty_at;
				break;
			}
			*records += n;
		}
	}
	fclose(fp);
}

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
	/* The reason avro-c does not give; without opening it (a FIFO's writer
	 * would see its reader come and go). */
	if (access(in, R_OK)) {
		snprintf(errstr, errsz, "%s: %s", in, strerror(errno));
		return -EINVAL;
	}
	if (avro_file_reader(in, &f->reader)) {
		snprintf(errstr, errsz, "%s: %s", in, avro_strerror());
		return -EINVAL;
	}
	scan_container(in, &f->records, &f->bad_at);
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
	/* avro-c creates its file exclusively, so an old output goes first;
	 * but only a regular file: never a device, a directory or what a
	 * symlink points at (--output /dev/null must not delete /dev/null). */
	struct stat st;
	if (!lstat(out, &st) && !S_ISREG(st.st_mode)) {
		snprintf(errstr, errsz,
			 "%s: exists and is not a regular file (kanon replaces only regular files)",
			 out);
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
	rc = EOF;
	while (!err && res->read < f.records &&
	       (rc = avro_file_reader_read_value(f.reader, &f.val)) == 0) {
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
	if (res->read == f.records)
		rc = EOF; /* every record the well-formed blocks hold */
	if (!err && rc == EOF && f.bad_at >= 0) {
		snprintf(errstr, errstr_size,
			 "%s: the bytes from offset %lld on are not an Avro block kanon can read "
			 "(after record %lld; output so far is valid)",
			 in_path, (long long)f.bad_at, (long long)res->read);
		err = -EBADMSG;
	} else if (!err && rc == EOF && f.records != INT64_MAX && res->read < f.records) {
		snprintf(errstr, errstr_size,
			 "%s: its blocks hold %lld records, but only %lld could be read (output so "
			 "far is valid)",
			 in_path, (long long)f.records, (long long)res->read);
		err = -EBADMSG;
	} else if (!err && rc != EOF) {
		snprintf(errstr, errstr_size, "%s: record %lld: %s (output so far is valid)",
			 in_path, (long long)res->read, avro_strerror());
		err = -EBADMSG;
	}
	fm_close(&f);
	return err;
}
