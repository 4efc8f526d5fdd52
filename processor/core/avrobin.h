/* avrobin: the Avro binary primitives (zig-zag varints, IEEE floats, little-
 * endian), inline so the decoder and encoder compile them into their loops.
 * Spec: https://avro.apache.org/docs/1.11.1/specification/#binary-encoding */
#ifndef KN_AVROBIN_H
#define KN_AVROBIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Reads a zig-zag varint long. Returns bytes consumed, 0 if the input ends
 * first, -1 if the varint is longer than 10 bytes. */
static inline int kn_avro_read_long(const uint8_t *p, const uint8_t *end, int64_t *out)
{
	uint64_t v = 0;
	int shift = 0;

	/* One byte (union branches, short lengths): the common case. */
	if (p < end && !(*p & 0x80)) {
		*out = (int64_t)((uint64_t)(*p >> 1) ^ -(uint64_t)(*p & 1));
		return 1;
	}
	for (int i = 0; i < 10; i++) {
		if (p + i >= end)
			return 0;
		uint8_t b = p[i];
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = (int64_t)((v >> 1) ^ -(v & 1));
			return i + 1;
		}
		shift += 7;
	}
	return -1;
}

/* Writes a zig-zag varint; buf needs 10 bytes. Returns bytes written. */
static inline int kn_avro_put_long(uint8_t *buf, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	int n = 0;

	while (z > 0x7f) {
		buf[n++] = (uint8_t)((z & 0x7f) | 0x80);
		z >>= 7;
	}
	buf[n++] = (uint8_t)z;
	return n;
}

static inline double kn_avro_get_double(const uint8_t *p)
{
	uint64_t u = 0;
	double d;

	for (int i = 7; i >= 0; i--)
		u = (u << 8) | p[i];
	memcpy(&d, &u, sizeof(d));
	return d;
}

static inline float kn_avro_get_float(const uint8_t *p)
{
	uint32_t u =
		(uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline void kn_avro_put_double(uint8_t *p, double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(u >> (8 * i));
}

/* Confluent wire framing: magic byte 0, then the schema id, 4 bytes big-endian. */
#define KN_FRAME_LEN 5

static inline void kn_frame_put(uint8_t *p, int32_t schema_id)
{
	p[0] = 0;
	p[1] = (uint8_t)((uint32_t)schema_id >> 24);
	p[2] = (uint8_t)((uint32_t)schema_id >> 16);
	p[3] = (uint8_t)((uint32_t)schema_id >> 8);
	p[4] = (uint8_t)schema_id;
}

/* Returns the schema id, or -1 when buf is not Confluent-framed. */
static inline int64_t kn_frame_get(const uint8_t *p, size_t len)
{
	if (len < KN_FRAME_LEN || p[0] != 0)
		return -1;
	return (int64_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 |
			 (uint32_t)p[4]);
}

#endif
