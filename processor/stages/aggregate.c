#include "aggregate.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "keys.h"
#include "kn_alloc.h"

#define ARENA_CHUNK (64 * 1024)
#define NULL_MARK   '\x1e' /* a null dimension value inside a group key */
#define SEP	    '\x1f'
#define MAX_WINDOWS 4096

static const char *dim_names[KN_DIMS] = {"event_type",	"geo_cell",   "ip_prefix",     "os_family",
					 "app_version", "url_domain", "query_category"};

const char *kn_dim_name(enum kn_dim d)
{
	return (unsigned)d < KN_DIMS ? dim_names[d] : "?";
}

int kn_dim_by_name(const char *name)
{
	for (int i = 0; i < KN_DIMS; i++)
		if (!strcmp(dim_names[i], name))
			return i;
	return -1;
}

/* ---- per-window memory: a bump arena freed when the window closes ---- */

struct chunk {
	struct chunk *next;
	size_t used, size;
	char data[];
};

struct arena {
	struct chunk *head;
	size_t bytes;
};

static void *arena_alloc(struct arena *ar, size_t n)
{
	struct chunk *c = ar->head;

	n = (n + 7) & ~(size_t)7;
	if (!c || c->used + n > c->size) {
		size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = kn_malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->next = ar->head;
		c->used = 0;
		c->size = size;
		ar->head = c;
		ar->bytes += sizeof(*c) + size;
	}
	void *p = c->data + c->used;
	c->used += n;
	return p;
}

static void arena_free(struct arena *ar)
{
	while (ar->head) {
		struct chunk *c = ar->head;
		ar->head = c->next;
		kn_free(c);
	}
	ar->bytes = 0;
}

/* ---- groups and people ---- */

struct group {
	uint64_t hash;
	const char *key; /* def index byte, then values separated by SEP; in the arena */
	uint16_t key_len;
	uint8_t def;
	uint64_t p_events, p_people; /* KN_AGG_RELEASE: the partial tallies added */
};

struct entry {
	uint64_t rank; /* XXH3(person, group): the bottom-k order */
	uint32_t group;
	uint32_t events; /* saturates at max_events_per_person */
};

struct person {
	uint64_t fp;	 /* 0 = empty slot (a zero fingerprint is stored as 1) */
	struct entry *e; /* in the arena; groups of every definition */
	uint16_t n, cap;
};

struct window {
	int64_t start;
	struct arena arena;
	struct group *groups;
	uint32_t n_groups, cap_groups;
	uint32_t *gslots; /* open addressing: group index + 1, 0 = empty */
	uint32_t cap_gslots;
	struct person *people;
	uint32_t n_people, cap_people;
	int64_t *min_off;    /* per partition: first offset that fed this window, -1 */
	int64_t *max_before; /* per partition: max_ts[p] just before that offset */
	bool p_early;	     /* KN_AGG_RELEASE: a partial tally closed early */
};

struct kn_aggregator {
	struct kn_agg_def *defs;
	int n_defs;
	struct kn_agg_opts o;
	int64_t *max_ts;
	uint8_t *state; /* enum kn_part_state */
	int64_t emitted_until;
	struct window *w[MAX_WINDOWS]; /* open windows, ascending start */
	int n_windows;
	struct kn_agg_metrics m;
	uint8_t release_id[32]; /* binds the noise to everything that shapes counts */
};

static size_t window_bytes(const struct window *w, int n_parts)
{
	return sizeof(*w) + w->arena.bytes + (size_t)w->cap_groups * sizeof(struct group) +
	       (size_t)w->cap_gslots * sizeof(uint32_t) +
	       (size_t)w->cap_people * sizeof(struct person) +
	       (size_t)n_parts * 2 * sizeof(int64_t);
}

static void window_free(struct window *w)
{
	if (!w)
		return;
	arena_free(&w->arena);
	kn_free(w->groups);
	kn_free(w->gslots);
	kn_free(w->people);
	kn_free(w->min_off);
	kn_free(w->max_before);
	kn_free(w);
}

static struct window *window_new(struct kn_aggregator *a, int64_t start)
{
	struct window *w = kn_calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->start = start;
	w->min_off = kn_malloc(sizeof(int64_t) * (size_t)a->o.n_partitions);
	w->max_before = kn_malloc(sizeof(int64_t) * (size_t)a->o.n_partitions);
	if (!w->min_off || !w->max_before) {
		window_free(w);
		return NULL;
	}
	for (int p = 0; p < a->o.n_partitions; p++)
		w->min_off[p] = -1;
	return w;
}

/* A hash of everything that shapes the released counts: the scope (the
 * deployment), windows, lateness, bounds, mechanism and every definition.
 * Two releases of the same group that could differ in their true counts
 * (another config, another deployment sharing the key file) draw unrelated
 * noise, so their difference is not exact. */
static void release_id(struct kn_aggregator *a)
{
	const struct kn_agg_opts *o = &a->o;
	crypto_generichash_state st;
	char buf[256];

	crypto_generichash_init(&st, NULL, 0, sizeof(a->release_id));
	snprintf(buf, sizeof(buf), "kn-release-v1|%s|%lld|%lld|%lld|%lld|%d|%d|%lld",
		 o->scope ? o->scope : "", (long long)o->window_ms, (long long)o->lateness_ms,
		 (long long)o->max_groups_per_person, (long long)o->max_events_per_person,
		 (int)o->mode, (int)o->person, (long long)o->epoch_ms);
	crypto_generichash_update(&st, (const uint8_t *)buf, strlen(buf) + 1);
	snprintf(buf, sizeof(buf), "%llu/%llu|%llu/%llu|%lld", (unsigned long long)o->dp.people_t,
		 (unsigned long long)o->dp.people_s, (unsigned long long)o->dp.events_t,
		 (unsigned long long)o->dp.events_s, (long long)o->dp.threshold);
	crypto_generichash_update(&st, (const uint8_t *)buf, strlen(buf) + 1);
	for (int i = 0; i < a->n_defs; i++) {
		const struct kn_agg_def *d = &a->defs[i];
		snprintf(buf, sizeof(buf), "|%u|%d|%lld|", d->dims, d->geo_precision,
			 (long long)d->k);
		crypto_generichash_update(&st, (const uint8_t *)d->name, strlen(d->name) + 1);
		crypto_generichash_update(&st, (const uint8_t *)buf, strlen(buf) + 1);
	}
	crypto_generichash_final(&st, a->release_id, sizeof(a->release_id));
}

struct kn_aggregator *kn_aggregator_new(const struct kn_agg_def *defs, int n_defs,
					const struct kn_agg_opts *o)
{
	struct kn_aggregator *a = kn_calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->o = *o;
	a->n_defs = n_defs;
	a->defs = kn_calloc((size_t)n_defs, sizeof(*a->defs));
	a->max_ts = kn_malloc(sizeof(int64_t) * (size_t)(o->n_partitions ? o->n_partitions : 1));
	a->state = kn_calloc((size_t)(o->n_partitions ? o->n_partitions : 1), sizeof(uint8_t));
	if (!a->defs || !a->max_ts || !a->state) {
		kn_aggregator_destroy(a);
		return NULL;
	}
	memcpy(a->defs, defs, sizeof(*defs) * (size_t)n_defs);
	for (int p = 0; p < o->n_partitions; p++)
		a->max_ts[p] = INT64_MIN;
	a->emitted_until = INT64_MIN;
	release_id(a);
	return a;
}

void kn_aggregator_destroy(struct kn_aggregator *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->n_windows; i++)
		window_free(a->w[i]);
	kn_free(a->defs);
	kn_free(a->max_ts);
	kn_free(a->state);
	kn_free(a);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b < 0) ? q - 1 : q;
}

int64_t kn_agg_window_start(int64_t ts_ms, int64_t window_ms)
{
	return floor_div(ts_ms, window_ms) * window_ms;
}

/* The open window starting at start, created (in order) if needed. */
static struct window *get_window(struct kn_aggregator *a, int64_t start)
{
	int i;

	for (i = a->n_windows - 1; i >= 0 && a->w[i]->start > start; i--)
		;
	if (i >= 0 && a->w[i]->start == start)
		return a->w[i];
	if (a->n_windows == MAX_WINDOWS)
		return NULL;
	struct window *w = window_new(a, start);
	if (!w)
		return NULL;
	memmove(&a->w[i + 2], &a->w[i + 1], sizeof(a->w[0]) * (size_t)(a->n_windows - i - 1));
	a->w[i + 1] = w;
	a->n_windows++;
	return w;
}

/* Appends "value SEP" (or the null mark) to the key being built. */
static size_t put_dim(char *key, size_t n, const char *v, size_t len)
{
	if (!len) {
		key[n++] = NULL_MARK;
	} else {
		memcpy(key + n, v, len);
		n += len;
	}
	key[n++] = SEP;
	return n;
}

/* The group key of definition di: its index byte, then each of its
 * dimensions' values (geo cut to the definition's precision). dim[d] NULL
 * or "" is null. */
static size_t build_key(const struct kn_agg_def *def, int di, const char *const dim[KN_DIMS],
			char *key)
{
	size_t n = 0;

	key[n++] = (char)di;
	for (int d = 0; d < KN_DIMS; d++) {
		if (!(def->dims & (1u << d)))
			continue;
		size_t len = dim[d] ? strlen(dim[d]) : 0;
		if (d == KN_DIM_GEO && len > (size_t)def->geo_precision)
			len = (size_t)def->geo_precision;
		n = put_dim(key, n, dim[d], len);
	}
	return n;
}

static int grow_gslots(struct window *w)
{
	uint32_t ncap = w->cap_gslots ? w->cap_gslots * 2 : 64;
	uint32_t *ns = kn_calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (uint32_t g = 0; g < w->n_groups; g++) {
		uint32_t i = (uint32_t)w->groups[g].hash & (ncap - 1);
		while (ns[i])
			i = (i + 1) & (ncap - 1);
		ns[i] = g + 1;
	}
	kn_free(w->gslots);
	w->gslots = ns;
	w->cap_gslots = ncap;
	return 0;
}

/* Index of the group with this key in w, created if new; -1 on ENOMEM. */
static int64_t intern_group(struct window *w, const char *key, size_t len, int di)
{
	uint64_t h = XXH3_64bits(key, len);
	uint32_t i;

	if ((w->n_groups + 1) * 2 > w->cap_gslots && grow_gslots(w))
		return -1;
	for (i = (uint32_t)h & (w->cap_gslots - 1); w->gslots[i];
	     i = (i + 1) & (w->cap_gslots - 1)) {
		struct group *g = &w->groups[w->gslots[i] - 1];
		if (g->hash == h && g->key_len == len && !memcmp(g->key, key, len))
			return w->gslots[i] - 1;
	}
	if (w->n_groups == w->cap_groups) {
		uint32_t ncap = w->cap_groups ? w->cap_groups * 2 : 32;
		struct group *ng = kn_realloc(w->groups, sizeof(*ng) * ncap);
		if (!ng)
			return -1;
		w->groups = ng;
		w->cap_groups = ncap;
	}
	char *k = arena_alloc(&w->arena, len);
	if (!k)
		return -1;
	memcpy(k, key, len);
	w->groups[w->n_groups] = (struct group){h, k, (uint16_t)len, (uint8_t)di};
	w->gslots[i] = w->n_groups + 1;
	return w->n_groups++;
}

static int grow_people(struct window *w)
{
	uint32_t ncap = w->cap_people ? w->cap_people * 2 : 256;
	struct person *np = kn_calloc(ncap, sizeof(*np));

	if (!np)
		return -ENOMEM;
	for (uint32_t i = 0; i < w->cap_people; i++) {
		struct person *p = &w->people[i];
		if (!p->fp)
			continue;
		uint32_t j = (uint32_t)p->fp & (ncap - 1);
		while (np[j].fp)
			j = (j + 1) & (ncap - 1);
		np[j] = *p;
	}
	kn_free(w->people);
	w->people = np;
	w->cap_people = ncap;
	return 0;
}

static struct person *find_person(struct window *w, uint64_t fp)
{
	uint32_t i;

	if ((w->n_people + 1) * 2 > w->cap_people && grow_people(w))
		return NULL;
	for (i = (uint32_t)fp & (w->cap_people - 1); w->people[i].fp;
	     i = (i + 1) & (w->cap_people - 1))
		if (w->people[i].fp == fp)
			return &w->people[i];
	w->people[i] = (struct person){.fp = fp};
	w->n_people++;
	return &w->people[i];
}

/* Counts n events of person p in group g under both bounds (as n times
 * one: the counter saturates, the kept groups are ranked). Returns the
 * number of events dropped by the bounds. */
static int64_t contribute(struct kn_aggregator *a, struct window *w, struct person *p, uint32_t g,
			  uint32_t n)
{
	uint64_t rank = XXH3_64bits_withSeed(&w->groups[g].hash, 8, p->fp);
	uint16_t max_groups = (uint16_t)a->o.max_groups_per_person;
	uint32_t cap = (uint32_t)a->o.max_events_per_person, take = n < cap ? n : cap;

	for (uint16_t i = 0; i < p->n; i++) {
		if (p->e[i].group != g)
			continue;
		uint32_t room = cap - p->e[i].events;
		take = n < room ? n : room;
		p->e[i].events += take;
		return n - take;
	}
	if (p->n == max_groups) {
		/* Keep the max_groups smallest ranks: the same set in any order. */
		uint16_t worst = 0;
		for (uint16_t i = 1; i < p->n; i++)
			if (p->e[i].rank > p->e[worst].rank)
				worst = i;
		if (rank > p->e[worst].rank)
			return n;
		int64_t evicted = p->e[worst].events;
		p->e[worst] = (struct entry){rank, g, take};
		return evicted + (n - take);
	}
	if (p->n == p->cap) {
		uint16_t ncap = p->cap ? (uint16_t)(p->cap * 2) : 2;
		if (ncap > max_groups)
			ncap = max_groups;
		struct entry *ne = arena_alloc(&w->arena, sizeof(*ne) * ncap);
		if (!ne)
			return -1;
		if (p->n)
			memcpy(ne, p->e, sizeof(*ne) * p->n);
		p->e = ne;
		p->cap = ncap;
	}
	p->e[p->n++] = (struct entry){rank, g, take};
	return n - take;
}

bool kn_agg_eligible(const struct kn_deid *d)
{
	/* Both consents explicitly given, never a minor's, never a sensitive
	 * event: the same rule for every definition, so no two releases differ
	 * by exactly the events some definition skipped. */
	return d->consent_ads == 1 && d->consent_analytics == 1 && !d->minor && !d->sensitive;
}

bool kn_agg_point_of(const struct kn_deid *d, enum kn_id_kind person, int64_t window_ms,
		     int64_t ts_ms, struct kn_agg_point *pt)
{
	if (!d->has_pid[person])
		return false;
	uint64_t fp = XXH3_64bits(d->pid[person], KN_PID_HEX_LEN);
	pt->person = fp ? fp : 1;
	pt->window_start = kn_agg_window_start(ts_ms, window_ms);
	pt->dim[KN_DIM_EVENT_TYPE] = kn_event_type_name(d->type);
	pt->dim[KN_DIM_GEO] = d->geo_cell;
	pt->dim[KN_DIM_IP_PREFIX] = d->ip_prefix;
	pt->dim[KN_DIM_OS] = d->os_family;
	pt->dim[KN_DIM_APP_VERSION] = d->app_version;
	pt->dim[KN_DIM_URL_DOMAIN] = d->url_domain;
	pt->dim[KN_DIM_QUERY_CATEGORY] = d->query_category;
	return true;
}

/* The open window of start for an event from part at offset; NULL with
 * *res set when there is none to be had. */
static struct window *window_for(struct kn_aggregator *a, int64_t start, int part, int64_t offset,
				 int64_t before, enum kn_agg_result *res)
{
	struct window *w;

	if (start + a->o.window_ms <= a->emitted_until) {
		a->m.late++;
		*res = KN_AGG_LATE;
		return NULL;
	}
	if (!(w = get_window(a, start))) {
		*res = KN_AGG_ERROR;
		if (a->n_windows == MAX_WINDOWS) { /* spread over too many windows */
			a->m.late++;
			a->m.windows_full++;
			*res = KN_AGG_LATE;
		}
		return NULL;
	}
	if (w->min_off[part] < 0) {
		w->min_off[part] = offset;
		w->max_before[part] = before; /* max_ts[part] just before offset */
	}
	return w;
}

static enum kn_agg_result add_point(struct kn_aggregator *a, const struct kn_agg_point *pt,
				    uint32_t n, int part, int64_t offset, int64_t before)
{
	enum kn_agg_result res;
	struct window *w = window_for(a, pt->window_start, part, offset, before, &res);
	char key[1024];

	if (!w) {
		a->m.late += res == KN_AGG_LATE ? n - 1 : 0; /* window_for counted one */
		return res;
	}
	struct person *p = find_person(w, pt->person);
	if (!p)
		return KN_AGG_ERROR;
	for (int di = 0; di < a->n_defs; di++) {
		size_t len = build_key(&a->defs[di], di, pt->dim, key);
		int64_t g = intern_group(w, key, len, di);
		int64_t dropped = g < 0 ? -1 : contribute(a, w, p, (uint32_t)g, n);
		if (dropped < 0)
			return KN_AGG_ERROR;
		a->m.bounded += (uint64_t)dropped;
	}
	a->m.added += n;
	return KN_AGG_ADDED;
}

enum kn_agg_result kn_aggregator_add(struct kn_aggregator *a, const struct kn_deid *d,
				     int64_t ts_ms, int64_t record_ms, int part, int64_t offset)
{
	int64_t end = kn_agg_window_start(ts_ms, a->o.window_ms) + a->o.window_ms;
	int64_t before = a->max_ts[part], stream = kn_agg_stream_time(ts_ms, record_ms);
	struct kn_agg_point pt;

	if (!kn_agg_eligible(d)) { /* touches nothing, not even the time */
		a->m.ineligible++;
		return KN_AGG_INELIGIBLE;
	}
	if (stream > before)
		a->max_ts[part] = stream;
	/* Out of order within an open window is not late (kn_agg_late). */
	if (kn_agg_late(end, a->o.lateness_ms, a->max_ts[part])) {
		a->m.late++;
		return KN_AGG_LATE;
	}
	if (!kn_agg_point_of(d, a->o.person, a->o.window_ms, ts_ms, &pt)) {
		a->m.no_person++;
		return KN_AGG_NO_PERSON;
	}
	return add_point(a, &pt, 1, part, offset, before);
}

enum kn_agg_result kn_aggregator_add_point(struct kn_aggregator *a, const struct kn_agg_point *pt,
					   uint32_t n_events, int part, int64_t offset)
{
	return add_point(a, pt, n_events, part, offset, a->max_ts[part]);
}

enum kn_agg_result kn_aggregator_add_partial(struct kn_aggregator *a, int def, int64_t window_start,
					     const char *const dim[KN_DIMS], uint64_t events,
					     uint64_t users, bool early, int part, int64_t offset)
{
	enum kn_agg_result res;
	struct window *w = window_for(a, window_start, part, offset, a->max_ts[part], &res);
	char key[1024];

	if (!w)
		return res;
	size_t len = build_key(&a->defs[def], def, dim, key);
	int64_t g = intern_group(w, key, len, def);
	if (g < 0)
		return KN_AGG_ERROR;
	w->groups[g].p_events += events;
	w->groups[g].p_people += users;
	w->p_early |= early;
	a->m.added++;
	return KN_AGG_ADDED;
}

/* Splits a group key back into dimension values for the row. */
static void key_to_row(const struct kn_agg_def *def, const struct group *g, char *buf,
		       struct kn_agg_row *row)
{
	const char *p = g->key + 1;

	memcpy(buf, g->key, g->key_len);
	for (int dim = 0; dim < KN_DIMS; dim++) {
		row->dim[dim] = NULL;
		if (!(def->dims & (1u << dim)))
			continue;
		const char *sep = memchr(p, SEP, (size_t)(g->key + g->key_len - p));
		char *v = buf + (p - g->key);
		buf[sep - g->key] = '\0';
		row->dim[dim] = v[0] == NULL_MARK ? NULL : v;
		p = sep + 1;
	}
}

struct tally {
	uint64_t events, people;
};

/* The noise stream of one group: seeded from the noise key, the release id
 * and the group's identity (definition, window, dimension values). */
static void group_rng(const struct kn_aggregator *a, const struct window *w, const struct group *g,
		      struct kn_dp_rng *rng)
{
	uint8_t label[1400], seed[KN_NOISE_SEED_BYTES];
	const char *name = a->defs[g->def].name;
	size_t nl = strnlen(name, 255), n = sizeof(a->release_id);

	memcpy(label, a->release_id, n);
	memcpy(label + n, name, nl);
	n += nl;
	label[n++] = 0;
	for (int i = 0; i < 8; i++)
		label[n++] = (uint8_t)((uint64_t)w->start >> (8 * i));
	memcpy(label + n, g->key + 1, (size_t)g->key_len - 1);
	n += (size_t)g->key_len - 1;
	kn_keys_noise_seed(a->o.noise_keys, label, n, seed);
	kn_dp_rng_init(rng, seed);
	sodium_memzero(seed, sizeof(seed));
}

/* Decides one group: fills row->users/events with what is released, or
 * returns false (suppressed). */
static bool release(const struct kn_aggregator *a, const struct window *w, const struct group *g,
		    const struct tally *t, struct kn_agg_row *row)
{
	const struct kn_dp_params *dp = &a->o.dp;
	int64_t k = a->defs[g->def].k;

	if (a->o.mode == KN_AGG_K_ANONYMITY) {
		row->users = t->people;
		row->events = t->events;
		row->users_exact = true;
		return t->people >= (uint64_t)k;
	}
	struct kn_dp_rng rng;
	group_rng(a, w, g, &rng);
	/* The people draw comes first and decides; the events draw is made
	 * either way, so both values depend on the group's identity only. */
	int64_t people =
		(int64_t)t->people + kn_dp_discrete_laplace(&rng, dp->people_t, dp->people_s);
	int64_t events =
		(int64_t)t->events + kn_dp_discrete_laplace(&rng, dp->events_t, dp->events_s);
	kn_dp_rng_wipe(&rng);
	row->users = (uint64_t)(people > 0 ? people : 0);
	row->events = (uint64_t)(events > 0 ? events : 0);
	row->users_exact = false;
	return people >= dp->threshold && people >= k;
}

/* close_def's qsort context; per thread, as the stages close windows at once. */
static __thread const struct window *sort_w;

static int cmp_group_key(const void *x, const void *y)
{
	const struct group *a = &sort_w->groups[*(const uint32_t *)x];
	const struct group *b = &sort_w->groups[*(const uint32_t *)y];
	int c = memcmp(a->key, b->key, a->key_len < b->key_len ? a->key_len : b->key_len);

	return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* Releases one definition's groups of a window, in the order of their
 * dimension values (never in the order they first appeared: that would
 * tell who came first), then its summary. Under dp a summary is written
 * only when a group was released: its existence must not say that the
 * window held anyone. */
static int close_def(struct kn_aggregator *a, struct window *w, int di, bool early,
		     const struct kn_agg_sink *sink)
{
	const struct kn_agg_def *def = &a->defs[di];
	struct tally *t = kn_calloc(w->n_groups ? w->n_groups : 1, sizeof(*t));
	uint32_t *order = kn_malloc(sizeof(*order) * (w->n_groups ? w->n_groups : 1)), n = 0;
	struct kn_agg_summary s = {def, w->start, w->start + a->o.window_ms, 0, 0, early};
	char buf[1024];

	if (!t || !order) {
		kn_free(t);
		kn_free(order);
		return -ENOMEM;
	}
	/* Exact counts first: each person holds a group at most once, so the
	 * entries that name a group are its distinct people. */
	for (uint32_t i = 0; i < w->cap_people; i++) {
		const struct person *p = &w->people[i];
		for (uint16_t j = 0; p->fp && j < p->n; j++) {
			if (w->groups[p->e[j].group].def != di)
				continue;
			t[p->e[j].group].events += p->e[j].events;
			t[p->e[j].group].people++;
		}
	}
	for (uint32_t g = 0; g < w->n_groups; g++) {
		t[g].events += w->groups[g].p_events; /* KN_AGG_RELEASE's tallies */
		t[g].people += w->groups[g].p_people;
		if (w->groups[g].def == di && t[g].people)
			order[n++] = g;
	}
	sort_w = w;
	qsort(order, n, sizeof(*order), cmp_group_key);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t g = order[i];
		struct kn_agg_row row = {def, w->start, w->start + a->o.window_ms, 0};
		row.key_epoch = a->o.epoch_ms ? floor_div(w->start, a->o.epoch_ms) : 0;
		row.early = early;
		if (a->o.stage == KN_AGG_BOUND) { /* exact, for the release stage */
			row.events = t[g].events;
			row.users = t[g].people;
			row.users_exact = true;
			key_to_row(def, &w->groups[g], buf, &row);
			sink->row(sink->opaque, &row);
		} else if (release(a, w, &w->groups[g], &t[g], &row)) {
			key_to_row(def, &w->groups[g], buf, &row);
			sink->row(sink->opaque, &row);
			s.groups_released++;
			s.events_released += row.events;
		} else {
			a->m.groups_suppressed++;
			a->m.events_suppressed += t[g].events;
		}
	}
	kn_free(t);
	kn_free(order);
	/* A release partition holds all of a definition's groups of a window
	 * or none (stage.h): only the one holding them speaks for it. */
	bool mine = a->o.stage != KN_AGG_RELEASE || n > 0;
	if (a->o.stage != KN_AGG_BOUND && mine && (a->o.mode != KN_AGG_DP || s.groups_released))
		sink->summary(sink->opaque, &s);
	return 0;
}

static int close_oldest(struct kn_aggregator *a, bool early, const struct kn_agg_sink *sink)
{
	struct window *w = a->w[0];

	for (int di = 0; di < a->n_defs; di++) {
		int err = close_def(a, w, di, early, sink);
		if (err)
			return err;
	}
	if (w->start + a->o.window_ms > a->emitted_until)
		a->emitted_until = w->start + a->o.window_ms;
	a->n_windows--;
	memmove(&a->w[0], &a->w[1], sizeof(a->w[0]) * (size_t)a->n_windows);
	window_free(w);
	a->m.windows_closed++;
	a->m.early_closed += early;
	a->m.epsilon_spent +=
		a->o.mode == KN_AGG_DP && a->o.stage != KN_AGG_BOUND ? a->o.dp.epsilon : 0;
	return 0;
}

/* The release stage's marks are watermarks already (lateness applied
 * upstream); its configured lateness only binds the noise. */
static int64_t lateness(const struct kn_aggregator *a)
{
	return a->o.stage == KN_AGG_RELEASE ? 0 : a->o.lateness_ms;
}

static int64_t watermark(const struct kn_aggregator *a)
{
	int64_t wm = INT64_MAX;
	bool any = false;

	for (int p = 0; p < a->o.n_partitions; p++) {
		if (a->state[p] != KN_PART_ACTIVE)
			continue;
		any = true;
		int64_t v = a->max_ts[p] == INT64_MIN ? INT64_MIN : a->max_ts[p] - lateness(a);
		if (v < wm)
			wm = v;
	}
	return any ? wm : INT64_MIN;
}

static uint64_t state_bytes(const struct kn_aggregator *a)
{
	uint64_t b = 0;

	for (int i = 0; i < a->n_windows; i++)
		b += window_bytes(a->w[i], a->o.n_partitions);
	return b;
}

/* The watermark the input itself implies: min over partitions that have
 * data of max_ts - lateness, whatever the idle marks say (they depend on
 * timing). A partition goes idle only at its end, so its max_ts is final
 * then, and a window's "early" flag computed against this is the same in
 * every run of the same input. */
static int64_t input_watermark(const struct kn_aggregator *a)
{
	int64_t wm = INT64_MAX;

	for (int p = 0; p < a->o.n_partitions; p++)
		if (a->max_ts[p] != INT64_MIN && a->max_ts[p] - lateness(a) < wm)
			wm = a->max_ts[p] - lateness(a);
	return wm == INT64_MAX ? INT64_MIN : wm;
}

static bool all_ended(const struct kn_aggregator *a)
{
	for (int p = 0; p < a->o.n_partitions; p++)
		if (a->state[p] != KN_PART_ENDED)
			return false;
	return a->o.n_partitions > 0;
}

int kn_aggregator_advance(struct kn_aggregator *a, bool flush, const struct kn_agg_sink *sink)
{
	int64_t wm = watermark(a), input_wm = input_watermark(a);
	int closed = 0, err;

	flush = flush || all_ended(a);
	while (a->n_windows) {
		int64_t end = a->w[0]->start + a->o.window_ms;
		bool due = end <= wm;
		bool over = (int64_t)state_bytes(a) > a->o.max_state_bytes;
		if (!due && !over && !flush)
			break;
		/* Early: closed before every partition's data had passed it (by
		 * the state cap, always; by an idle partition's absence or the
		 * end of the input, when the input's own watermark says so). */
		bool early = due || flush ? end > input_wm : true;
		/* The release stage's windows closed where the tallies were made. */
		if (a->o.stage == KN_AGG_RELEASE)
			early = (!due && !flush) || a->w[0]->p_early;
		if ((err = close_oldest(a, early, sink)))
			return err;
		closed++;
	}
	return closed;
}

void kn_aggregator_set_idle(struct kn_aggregator *a, int part, bool idle)
{
	a->state[part] = idle ? KN_PART_IDLE : KN_PART_ACTIVE;
}

void kn_aggregator_set_state(struct kn_aggregator *a, int part, enum kn_part_state state)
{
	a->state[part] = (uint8_t)state;
}

void kn_aggregator_mark(struct kn_aggregator *a, int part, int64_t max_ts, enum kn_part_state state)
{
	if (max_ts > a->max_ts[part])
		a->max_ts[part] = max_ts;
	a->state[part] = (uint8_t)state;
}

enum kn_part_state kn_aggregator_part(const struct kn_aggregator *a, int part, int64_t *max_ts)
{
	*max_ts = a->max_ts[part];
	return (enum kn_part_state)a->state[part];
}

int64_t kn_aggregator_watermark(const struct kn_aggregator *a, enum kn_part_state *state)
{
	bool active = false;

	for (int p = 0; p < a->o.n_partitions && !active; p++)
		active = a->state[p] == KN_PART_ACTIVE;
	*state = active ? KN_PART_ACTIVE : all_ended(a) ? KN_PART_ENDED : KN_PART_IDLE;
	return *state == KN_PART_ENDED ? INT64_MAX : watermark(a);
}

int64_t kn_aggregator_first_offset(const struct kn_aggregator *a, int64_t position)
{
	int64_t off = position;

	for (int i = 0; i < a->n_windows; i++)
		for (int p = 0; p < a->o.n_partitions; p++)
			if (a->w[i]->min_off[p] >= 0 && a->w[i]->min_off[p] < off)
				off = a->w[i]->min_off[p];
	return off;
}

bool kn_aggregator_idle_now(const struct kn_aggregator *a)
{
	return a->n_windows == 0;
}

int kn_aggregator_waiting(const struct kn_aggregator *a, int64_t *start, int *parts, int max)
{
	int n = 0;

	*start = a->n_windows ? a->w[0]->start : INT64_MAX;
	if (!a->n_windows)
		return 0;
	int64_t end = a->w[0]->start + a->o.window_ms;
	for (int p = 0; p < a->o.n_partitions && n < max; p++)
		if (a->state[p] == KN_PART_ACTIVE &&
		    (a->max_ts[p] == INT64_MIN || a->max_ts[p] - lateness(a) < end))
			parts[n++] = p;
	return n;
}

void kn_aggregator_restore(struct kn_aggregator *a, int part, int64_t max_ts, int64_t emitted_until)
{
	a->max_ts[part] = max_ts;
	if (emitted_until > a->emitted_until)
		a->emitted_until = emitted_until;
}

void kn_aggregator_checkpoint(const struct kn_aggregator *a, int part, int64_t position,
			      int64_t *offset, int64_t *max_ts)
{
	*offset = position;
	*max_ts = a->max_ts[part];
	for (int i = 0; i < a->n_windows; i++) {
		const struct window *w = a->w[i];
		if (w->min_off[part] >= 0 && w->min_off[part] < *offset) {
			*offset = w->min_off[part];
			*max_ts = w->max_before[part];
		}
	}
}

int64_t kn_aggregator_emitted_until(const struct kn_aggregator *a)
{
	return a->emitted_until;
}

void kn_aggregator_metrics(const struct kn_aggregator *a, struct kn_agg_metrics *m)
{
	*m = a->m;
	m->open_windows = (uint64_t)a->n_windows;
	m->open_groups = 0;
	for (int i = 0; i < a->n_windows; i++)
		m->open_groups += a->w[i]->n_groups;
	m->state_bytes = state_bytes(a);
}
