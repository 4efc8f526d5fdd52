#include "exchange.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kn_alloc.h"

#define MAGIC	 'K'
#define VERSION	 1
#define NULL_LEN 255

/* ---- writing ---- */

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

/* A string with its length byte; NULL when too long. */
static uint8_t *putstr(uint8_t *p, const char *s)
{
	size_t n;

	if (!s) {
		*p++ = NULL_LEN;
		return p;
	}
	if ((n = strlen(s)) > KN_XCH_DIM_MAX)
		return NULL;
	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

static uint8_t *header(uint8_t *p, enum kn_xch_type t)
{
	p[0] = MAGIC;
	p[1] = VERSION;
	p[2] = (uint8_t)t;
	return p + 3;
}

size_t kn_xch_contrib(uint8_t *out, const struct kn_agg_point *pt, uint32_t part, uint32_t dims,
		      uint32_t n_events)
{
	uint8_t *p = header(out, KN_XCH_CONTRIB);

	p = put64(p, (uint64_t)pt->window_start);
	p = put32(p, part);
	p = put64(p, pt->person);
	for (int d = 0; d < KN_DIMS && p; d++)
		p = putstr(p, (dims & (1u << d)) ? pt->dim[d] : NULL);
	if (p)
		p = put32(p, n_events); /* last: kn_xch_coalesce rewrites it */
	return p ? (size_t)(p - out) : 0;
}

size_t kn_xch_partial(uint8_t *out, const struct kn_agg_row *row)
{
	uint8_t *p = header(out, KN_XCH_PARTIAL);

	p = put64(p, (uint64_t)row->window_start);
	p = put64(p, row->events);
	p = put64(p, row->users);
	*p++ = row->early;
	p = putstr(p, row->def->name);
	for (int d = 0; d < KN_DIMS && p; d++)
		p = putstr(p, row->dim[d]);
	return p ? (size_t)(p - out) : 0;
}

size_t kn_xch_mark(uint8_t *out, const struct kn_xch_mark *m)
{
	uint8_t *p = header(out, KN_XCH_MARK);

	p = put32(p, m->from);
	p = put32(p, m->n_from);
	p = put64(p, (uint64_t)m->value);
	*p++ = (uint8_t)m->state;
	return (size_t)(p - out);
}

/* ---- reading ---- */

struct rd {
	const uint8_t *p, *end;
	char *buf, *buf_end;
	const char *why;
};

static uint64_t get64(struct rd *r)
{
	uint64_t v = 0;

	if (r->end - r->p < 8) {
		r->why = "truncated";
		r->p = r->end;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		v = v << 8 | *r->p++;
	return v;
}

static uint32_t get32(struct rd *r)
{
	uint32_t v = 0;

	if (r->end - r->p < 4) {
		r->why = "truncated";
		r->p = r->end;
		return 0;
	}
	for (int i = 0; i < 4; i++)
		v = v << 8 | *r->p++;
	return v;
}

static uint8_t get8(struct rd *r)
{
	if (r->p >= r->end) {
		r->why = "truncated";
		return 0;
	}
	return *r->p++;
}

/* A string without control characters (no emitted dimension value has
 * any), copied NUL-terminated into the record's buffer; NULL for null. */
static const char *getstr(struct rd *r, bool *null)
{
	uint8_t n = get8(r);

	*null = n == NULL_LEN;
	if (r->why || *null)
		return NULL;
	if (n > KN_XCH_DIM_MAX || r->end - r->p < n || r->buf_end - r->buf < n + 1) {
		r->why = "truncated string";
		return NULL;
	}
	for (int i = 0; i < n; i++)
		if (r->p[i] < 0x20 || r->p[i] == 0x7f) {
			r->why = "a control character in a value";
			return NULL;
		}
	char *s = r->buf;
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	r->buf += n + 1;
	return s;
}

/* The longest value kanon emits for each dimension (event.h's buffers). */
static const size_t dim_max[KN_DIMS] = {
	[KN_DIM_EVENT_TYPE] = KN_FAMILY_MAX - 1,    [KN_DIM_GEO] = KN_GEOHASH_MAX,
	[KN_DIM_IP_PREFIX] = KN_PREFIX_MAX - 1,	    [KN_DIM_OS] = KN_FAMILY_MAX - 1,
	[KN_DIM_APP_VERSION] = KN_VERSION_MAX - 1,  [KN_DIM_URL_DOMAIN] = KN_HOST_MAX,
	[KN_DIM_QUERY_CATEGORY] = KN_FAMILY_MAX - 1};

static void get_dims(struct rd *r, const char *dim[KN_DIMS])
{
	bool null;

	for (int d = 0; d < KN_DIMS && !r->why; d++) {
		dim[d] = getstr(r, &null);
		if (dim[d] && strlen(dim[d]) > dim_max[d])
			r->why = "a dimension value longer than kanon emits";
	}
}

static void decode_contrib(struct rd *r, struct kn_xch *x)
{
	const char *dim[KN_DIMS];

	x->point.window_start = (int64_t)get64(r);
	x->part = get32(r);
	x->point.person = get64(r);
	get_dims(r, dim);
	for (int d = 0; d < KN_DIMS; d++)
		x->point.dim[d] = dim[d] ? dim[d] : "";
	x->n_events = get32(r);
	if (!r->why && !x->point.person)
		r->why = "person fingerprint 0";
	else if (!r->why && (!x->n_events || x->n_events > KN_XCH_MAX_EVENTS))
		r->why = "event count out of range";
}

static void decode_partial(struct rd *r, struct kn_xch *x)
{
	bool null;
	uint8_t early;

	x->window_start = (int64_t)get64(r);
	x->events = get64(r);
	x->users = get64(r);
	early = get8(r);
	x->def = getstr(r, &null);
	get_dims(r, x->dim);
	if (r->why)
		return;
	if (!x->def)
		r->why = "no definition name";
	else if (early > 1)
		r->why = "bad early flag";
	else if (!x->users || x->users > x->events)
		r->why = "users out of range";
	x->early = early;
}

static void decode_mark(struct rd *r, struct kn_xch *x)
{
	uint8_t st;

	x->mark.from = get32(r);
	x->mark.n_from = get32(r);
	x->mark.value = (int64_t)get64(r);
	st = get8(r);
	if (r->why)
		return;
	if (st > KN_PART_ENDED)
		r->why = "bad partition state";
	else if (!x->mark.n_from || x->mark.from >= x->mark.n_from)
		r->why = "partition out of range";
	x->mark.state = (enum kn_part_state)st;
}

int kn_xch_decode(const uint8_t *in, size_t len, struct kn_xch *x, const char **why)
{
	struct rd r = {in + 3, in + len, x->buf, x->buf + sizeof(x->buf), NULL};

	if (!in || len < 3 || in[0] != MAGIC) {
		*why = "not a kanon exchange record";
		return -EINVAL;
	}
	if (in[1] != VERSION) {
		*why = "unknown exchange version";
		return -EINVAL;
	}
	x->type = (enum kn_xch_type)in[2];
	switch (x->type) {
	case KN_XCH_CONTRIB:
		decode_contrib(&r, x);
		break;
	case KN_XCH_PARTIAL:
		decode_partial(&r, x);
		break;
	case KN_XCH_MARK:
		decode_mark(&r, x);
		break;
	default:
		r.why = "unknown exchange record type";
	}
	if (!r.why && r.p != r.end)
		r.why = "trailing bytes";
	*why = r.why;
	return r.why ? -EINVAL : 0;
}

/* ---- restart state ---- */

static const char state_ch[] = {'a', 'i', 'x'};

size_t kn_xch_state_fmt(char *out, size_t size, char tag, int64_t emitted_until, int n,
			const int64_t *max_ts, const enum kn_part_state *state)
{
	int64_t ref = INT64_MIN;
	size_t off;
	int w;

	for (int p = 0; p < n; p++)
		if (max_ts[p] > ref)
			ref = max_ts[p];
	off = (size_t)snprintf(out, size, "k%c1 e=%" PRId64 " r=%" PRId64 " n=%d w=", tag,
			       emitted_until, ref, n);
	/* Each partition as its distance below ref ("-": no stream time yet)
	 * and its state: a few bytes each where times are close. */
	for (int p = 0; p < n && off < size; p++) {
		if (max_ts[p] == INT64_MIN)
			w = snprintf(out + off, size - off, "%s-%c", p ? "," : "",
				     state_ch[state[p]]);
		else
			w = snprintf(out + off, size - off, "%s%" PRIu64 "%c", p ? "," : "",
				     (uint64_t)ref - (uint64_t)max_ts[p], state_ch[state[p]]);
		off += (size_t)w;
	}
	if (off < size)
		return off;
	off = (size_t)snprintf(out, size, "k%c1 e=%" PRId64, tag, emitted_until);
	return off < size ? off : 0;
}

static int parse_parts(const char *s, int64_t ref, int n, int64_t *max_ts,
		       enum kn_part_state *state)
{
	for (int p = 0; p < n; p++) {
		char *end;
		if (p && *s++ != ',')
			return -EINVAL;
		if (*s == '-') {
			max_ts[p] = INT64_MIN;
			end = (char *)s + 1;
		} else {
			uint64_t d = strtoull(s, &end, 10);
			if (end == s)
				return -EINVAL;
			max_ts[p] = (int64_t)((uint64_t)ref - d);
		}
		const char *c = memchr(state_ch, *end, sizeof(state_ch));
		if (!c || !*end)
			return -EINVAL;
		state[p] = (enum kn_part_state)(c - state_ch);
		s = end + 1;
	}
	return *s ? -EINVAL : 0;
}

int kn_xch_state_parse(const char *in, size_t len, char tag, int64_t *emitted_until, int n,
		       int64_t *max_ts, enum kn_part_state *state, int *n_got)
{
	char buf[8192], t;
	int64_t ref;
	int got = 0, used = 0, cnt;

	*n_got = 0;
	if (!in || !len || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, in, len);
	buf[len] = '\0';
	cnt = sscanf(buf, "k%c1 e=%" SCNd64 " r=%" SCNd64 " n=%d w=%n", &t, emitted_until, &ref,
		     &got, &used);
	if (cnt < 2 || t != tag)
		return -EINVAL;
	if (cnt < 4 || !used)
		return 0; /* only emitted_until was kept */
	if (got != n || parse_parts(buf + used, ref, n, max_ts, state))
		return 0; /* another partition count: the marks in the log restore it */
	*n_got = n;
	return 0;
}

/* ---- coalescing ---- */

struct centry {
	uint64_t hash;
	size_t off; /* into bytes */
	uint32_t len, n_events;
	int32_t partition;
};

/* An open-addressing slot: the entry's index + 1 (0: empty) and the top
 * half of its hash, so a probe that meets another record is told apart
 * here, without a second cache miss on its entry (the table outgrows the
 * caches: it was half of the aggregation step's time). */
struct cslot {
	uint32_t idx, tag;
};

struct kn_xch_coalesce {
	struct centry *e;
	size_t n, max;
	struct cslot *slots;
	size_t cap; /* power of two, >= 2 max */
	uint8_t *bytes;
	size_t used, size;
};

struct kn_xch_coalesce *kn_xch_coalesce_new(size_t max_records)
{
	struct kn_xch_coalesce *c = kn_calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->max = max_records;
	for (c->cap = 16; c->cap < 2 * max_records; c->cap *= 2)
		;
	c->size = max_records * 64;
	c->e = kn_calloc(max_records, sizeof(*c->e));
	c->slots = kn_calloc(c->cap, sizeof(*c->slots));
	c->bytes = kn_malloc(c->size);
	if (!c->e || !c->slots || !c->bytes) {
		kn_xch_coalesce_destroy(c);
		return NULL;
	}
	return c;
}

void kn_xch_coalesce_destroy(struct kn_xch_coalesce *c)
{
	if (!c)
		return;
	kn_free(c->e);
	kn_free(c->slots);
	kn_free(c->bytes);
	kn_free(c);
}

int kn_xch_coalesce_add(struct kn_xch_coalesce *c, const uint8_t *rec, size_t len,
			int32_t partition)
{
	size_t klen = len - 4; /* all but the event count */
	uint64_t h = XXH3_64bits(rec, klen);
	size_t i;

	uint32_t tag = (uint32_t)(h >> 32);

	for (i = h & (c->cap - 1); c->slots[i].idx; i = (i + 1) & (c->cap - 1)) {
		if (c->slots[i].tag != tag)
			continue;
		struct centry *e = &c->e[c->slots[i].idx - 1];
		if (e->hash == h && e->len == len && !memcmp(c->bytes + e->off, rec, klen)) {
			if (e->n_events <
			    KN_XCH_MAX_EVENTS) /* beyond, the bounds drop them anyway */
				e->n_events++;
			return 0;
		}
	}
	if (c->n == c->max)
		return 1;
	if (c->used + len > c->size) {
		uint8_t *nb = kn_realloc(c->bytes, c->size * 2);
		if (!nb)
			return -ENOMEM;
		c->bytes = nb;
		c->size *= 2;
	}
	memcpy(c->bytes + c->used, rec, len);
	c->e[c->n] = (struct centry){h, c->used, (uint32_t)len, 1, partition};
	c->used += len;
	c->slots[i] = (struct cslot){(uint32_t)++c->n, tag};
	return 0;
}

int kn_xch_coalesce_flush(struct kn_xch_coalesce *c, kn_xch_send_fn *send, void *opaque)
{
	int err = 0;

	for (size_t i = 0; i < c->n && !err; i++) {
		struct centry *e = &c->e[i];
		uint8_t *rec = c->bytes + e->off;
		put32(rec + e->len - 4, e->n_events);
		err = send(opaque, e->partition, rec, e->len);
	}
	kn_xch_coalesce_clear(c);
	return err;
}

void kn_xch_coalesce_clear(struct kn_xch_coalesce *c)
{
	if (c->n)
		memset(c->slots, 0, c->cap * sizeof(*c->slots));
	c->n = c->used = 0;
}

size_t kn_xch_coalesce_count(const struct kn_xch_coalesce *c)
{
	return c->n;
}
