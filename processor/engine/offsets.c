#include "offsets.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "kn_alloc.h"

#define SEQ_BITS  40
#define PART_BITS 16
#define SEQ_MASK  ((1ULL << SEQ_BITS) - 1)
#define MAX_PARTS (1 << PART_BITS)

struct entry {
	int64_t offset;
	uint32_t tag;
	bool acked;
};

struct part {
	char *topic; /* NULL: free slot */
	int32_t partition;
	uint8_t gen;
	uint64_t head, tail; /* sequence numbers */
	struct entry *ring;
	size_t cap;	    /* power of two */
	int64_t commit_pos; /* -1: nothing acked yet */
	int64_t collected;  /* commit_pos at the last collect */
};

struct kn_offsets {
	struct part *p;
	int n_parts;
	size_t in_flight, max_in_flight;
	int last; /* index of the last partition looked up */
};

struct kn_offsets *kn_offsets_new(size_t max_in_flight)
{
	struct kn_offsets *o = kn_calloc(1, sizeof(*o));

	if (o)
		o->max_in_flight = max_in_flight;
	return o;
}

void kn_offsets_destroy(struct kn_offsets *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->n_parts; i++) {
		kn_free(o->p[i].topic);
		kn_free(o->p[i].ring);
	}
	kn_free(o->p);
	kn_free(o);
}

static int find_part(struct kn_offsets *o, const char *topic, int32_t partition)
{
	if (o->last < o->n_parts && o->p[o->last].topic && o->p[o->last].partition == partition &&
	    !strcmp(o->p[o->last].topic, topic))
		return o->last;
	for (int i = 0; i < o->n_parts; i++)
		if (o->p[i].topic && o->p[i].partition == partition &&
		    !strcmp(o->p[i].topic, topic))
			return o->last = i;
	return -1;
}

static int add_part(struct kn_offsets *o, const char *topic, int32_t partition)
{
	int i;

	for (i = 0; i < o->n_parts; i++)
		if (!o->p[i].topic)
			break;
	if (i == o->n_parts) {
		if (o->n_parts == MAX_PARTS)
			return -ENOSPC;
		struct part *np = kn_realloc(o->p, sizeof(*np) * (size_t)(o->n_parts + 1));
		if (!np)
			return -ENOMEM;
		o->p = np;
		memset(&o->p[o->n_parts++], 0, sizeof(*np));
	}
	struct part *p = &o->p[i];
	uint8_t gen = (uint8_t)(p->gen + 1);
	kn_free(p->ring);
	memset(p, 0, sizeof(*p));
	p->gen = gen;
	p->topic = kn_strdup(topic);
	if (!p->topic)
		return -ENOMEM;
	p->partition = partition;
	p->commit_pos = p->collected = -1;
	return o->last = i;
}

static int grow(struct part *p)
{
	size_t ncap = p->cap ? p->cap * 2 : 1024;
	struct entry *nr = kn_malloc(ncap * sizeof(*nr));

	if (!nr)
		return -ENOMEM;
	for (uint64_t s = p->head; s < p->tail; s++)
		nr[s & (ncap - 1)] = p->ring[s & (p->cap - 1)];
	kn_free(p->ring);
	p->ring = nr;
	p->cap = ncap;
	return 0;
}

int kn_offsets_track(struct kn_offsets *o, const char *topic, int32_t partition, int64_t offset,
		     uint32_t tag, uint64_t *token)
{
	int i;
	struct part *p;

	if (o->in_flight >= o->max_in_flight)
		return -EAGAIN;
	i = find_part(o, topic, partition);
	if (i < 0 && (i = add_part(o, topic, partition)) < 0)
		return i;
	p = &o->p[i];
	if (p->tail - p->head == p->cap && grow(p))
		return -ENOMEM;
	p->ring[p->tail & (p->cap - 1)] = (struct entry){offset, tag, false};
	*token = (uint64_t)p->gen << 56 | (uint64_t)i << SEQ_BITS | (p->tail & SEQ_MASK);
	p->tail++;
	o->in_flight++;
	return 0;
}

int kn_offsets_ack(struct kn_offsets *o, uint64_t token, uint32_t *tag)
{
	int i = (int)((token >> SEQ_BITS) & (MAX_PARTS - 1));
	uint64_t seq_lo = token & SEQ_MASK, seq;
	struct part *p;

	if (i >= o->n_parts || !o->p[i].topic || o->p[i].gen != (uint8_t)(token >> 56))
		return 0;
	p = &o->p[i];
	/* Rebuild the full sequence number from its low 40 bits. */
	seq = (p->head & ~SEQ_MASK) | seq_lo;
	if (seq < p->head)
		seq += 1ULL << SEQ_BITS;
	if (seq >= p->tail || p->ring[seq & (p->cap - 1)].acked)
		return 0;
	p->ring[seq & (p->cap - 1)].acked = true;
	*tag = p->ring[seq & (p->cap - 1)].tag;
	o->in_flight--;
	while (p->head < p->tail && p->ring[p->head & (p->cap - 1)].acked) {
		p->commit_pos = p->ring[p->head & (p->cap - 1)].offset + 1;
		p->head++;
	}
	return 1;
}

size_t kn_offsets_in_flight(const struct kn_offsets *o)
{
	return o->in_flight;
}

int kn_offsets_collect(struct kn_offsets *o, struct kn_commit *out, int max, int all)
{
	int n = 0;

	for (int i = 0; i < o->n_parts && n < max; i++) {
		struct part *p = &o->p[i];
		if (!p->topic || p->commit_pos < 0 || (!all && p->commit_pos == p->collected))
			continue;
		out[n++] = (struct kn_commit){p->topic, p->partition, p->commit_pos};
		p->collected = p->commit_pos;
	}
	return n;
}

void kn_offsets_forget(struct kn_offsets *o, const char *topic, int32_t partition)
{
	int i = find_part(o, topic, partition);

	if (i < 0)
		return;
	struct part *p = &o->p[i];
	o->in_flight -= (size_t)(p->tail - p->head);
	/* Unacked entries between head and tail may include acked ones. */
	for (uint64_t s = p->head; s < p->tail; s++)
		if (p->ring[s & (p->cap - 1)].acked)
			o->in_flight++;
	kn_free(p->topic);
	kn_free(p->ring);
	p->topic = NULL;
	p->ring = NULL;
	p->cap = 0;
	p->head = p->tail = 0;
}
