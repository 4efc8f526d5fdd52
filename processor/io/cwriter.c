/* cwriter: Avro object container files; see cwriter.h.
 * Spec: https://avro.apache.org/docs/1.11.1/specification/#object-container-files */
#include "cwriter.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <zlib.h>

#include "avrobin.h"
#include "kn_alloc.h"

/* A block goes out once it holds this much: the size avro-c and Java flush
 * at is 16-64 KiB; larger blocks deflate a little better. */
#define BLOCK_BYTES (64u << 10)

struct kn_cwriter {
	FILE *fp;
	bool deflate;
	uint8_t sync[16];
	uint8_t *buf; /* the block being filled */
	size_t len, cap;
	int64_t count; /* records in buf */
	uint8_t *z;    /* the block deflated */
	size_t z_cap;
	z_stream zs;
	bool zs_ready;
	int err; /* the first failure; sticky */
};

static int put(struct kn_cwriter *w, const void *p, size_t n)
{
	if (w->err)
		return w->err;
	errno = 0;
	if (n && fwrite(p, 1, n, w->fp) != n)
		w->err = errno ? -errno : -EIO;
	return w->err;
}

static int put_long(struct kn_cwriter *w, int64_t v)
{
	uint8_t b[10];

	return put(w, b, (size_t)kn_avro_put_long(b, v));
}

static int put_bytes(struct kn_cwriter *w, const void *p, size_t n)
{
	put_long(w, (int64_t)n);
	return put(w, p, n);
}

/* The block in buf, as the codec wants it: Avro's "deflate" is raw
 * (RFC 1951, no zlib header). */
static int flush_block(struct kn_cwriter *w)
{
	const uint8_t *data = w->buf;
	size_t n = w->len;

	if (!w->count || w->err)
		return w->err;
	if (w->deflate) {
		size_t bound = deflateBound(&w->zs, (uLong)w->len);
		if (bound > w->z_cap) {
			uint8_t *z = kn_realloc(w->z, bound);
			if (!z)
				return w->err = -ENOMEM;
			w->z = z, w->z_cap = bound;
		}
		deflateReset(&w->zs);
		w->zs.next_in = w->buf, w->zs.avail_in = (uInt)w->len;
		w->zs.next_out = w->z, w->zs.avail_out = (uInt)w->z_cap;
		if (deflate(&w->zs, Z_FINISH) != Z_STREAM_END)
			return w->err = -EIO;
		data = w->z, n = w->z_cap - w->zs.avail_out;
	}
	put_long(w, w->count);
	put_bytes(w, data, n);
	put(w, w->sync, sizeof(w->sync));
	w->len = 0, w->count = 0;
	return w->err;
}

int kn_cwriter_open(FILE *fp, const char *schema_json, const char *codec, struct kn_cwriter **out)
{
	struct kn_cwriter *w;

	*out = NULL;
	if (strcmp(codec, "null") && strcmp(codec, "deflate"))
		return -EINVAL;
	if (!(w = kn_calloc(1, sizeof(*w))) || !(w->buf = kn_malloc(BLOCK_BYTES))) {
		kn_free(w);
		return -ENOMEM;
	}
	w->fp = fp, w->cap = BLOCK_BYTES;
	w->deflate = !strcmp(codec, "deflate");
	if (w->deflate) {
		if (deflateInit2(&w->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8,
				 Z_DEFAULT_STRATEGY) != Z_OK) {
			kn_cwriter_close(w);
			return -ENOMEM;
		}
		w->zs_ready = true;
	}
	/* The marker only has to be unlikely inside the data; a short read
	 * of getrandom cannot happen for 16 bytes once the pool is ready. */
	errno = 0;
	if (getrandom(w->sync, sizeof(w->sync), 0) != (ssize_t)sizeof(w->sync))
		w->err = errno ? -errno : -EIO;
	put(w, "Obj\x01", 4);
	put_long(w, 2); /* the metadata map: one block of two entries */
	put_bytes(w, "avro.schema", 11);
	put_bytes(w, schema_json, strlen(schema_json));
	put_bytes(w, "avro.codec", 10);
	put_bytes(w, codec, strlen(codec));
	put_long(w, 0);
	int err = put(w, w->sync, sizeof(w->sync));
	if (err) {
		kn_cwriter_close(w);
		return err;
	}
	*out = w;
	return 0;
}

int kn_cwriter_append(struct kn_cwriter *w, const void *datum, size_t len)
{
	if (w->err)
		return w->err;
	if (w->count && w->len + len > BLOCK_BYTES && flush_block(w))
		return w->err;
	if (w->len + len > w->cap) { /* one record larger than a block */
		uint8_t *b = kn_realloc(w->buf, w->len + len);
		if (!b)
			return w->err = -ENOMEM;
		w->buf = b, w->cap = w->len + len;
	}
	memcpy(w->buf + w->len, datum, len);
	w->len += len;
	w->count++;
	return 0;
}

int kn_cwriter_close(struct kn_cwriter *w)
{
	int err;

	if (!w)
		return 0;
	err = flush_block(w);
	if (w->zs_ready)
		deflateEnd(&w->zs);
	kn_free(w->z);
	kn_free(w->buf);
	kn_free(w);
	return err;
}
