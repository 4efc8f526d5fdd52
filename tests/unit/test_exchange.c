/* exchange.c's records, and the aggregation topology in miniature: the same
 * events through one KN_AGG_WHOLE aggregator and through deid -> bound ->
 * release (encoded, routed by partition, marks and all) give the same rows,
 * exact and noisy. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "exchange.h"
#include "keys.h"
#include "kt.h"

#define H 3600000LL

static void test_codec_round_trips(void)
{
	uint8_t buf[KN_XCH_MAX_BYTES];
	struct kn_xch x;
	const char *why;
	struct kn_agg_point pt = {
		0x1234567890abcdefULL,
		7 * H,
		{"device", "wx4g0", "1.2.3.0/24", "Mac OS X", "3.1", "jd.com", ""}};
	size_t n = kn_xch_contrib(buf, &pt, 5, (1u << KN_DIM_GEO) | (1u << KN_DIM_OS), 3);

	KT_CHECK(n > 0 && !kn_xch_decode(buf, n, &x, &why));
	KT_CHECK(x.type == KN_XCH_CONTRIB && x.part == 5 && x.point.person == pt.person);
	KT_CHECK(x.n_events == 3);
	KT_CHECK(x.point.window_start == 7 * H);
	KT_STREQ(x.point.dim[KN_DIM_GEO], "wx4g0");
	KT_STREQ(x.point.dim[KN_DIM_OS], "Mac OS X");
	KT_STREQ(x.point.dim[KN_DIM_URL_DOMAIN], ""); /* not a dimension in use: not sent */

	struct kn_agg_def def = {"geo_os", (1u << KN_DIM_GEO) | (1u << KN_DIM_OS), 4, 5};
	struct kn_agg_row row = {&def, -3 * H, -2 * H, 0, {NULL, "wx4g", NULL, NULL}, 9, 4};
	row.early = true;
	n = kn_xch_partial(buf, &row);
	KT_CHECK(n > 0 && !kn_xch_decode(buf, n, &x, &why));
	KT_CHECK(x.type == KN_XCH_PARTIAL && x.window_start == -3 * H && x.events == 9 &&
		 x.users == 4 && x.early);
	KT_STREQ(x.def, "geo_os");
	KT_STREQ(x.dim[KN_DIM_GEO], "wx4g");
	KT_CHECK(x.dim[KN_DIM_OS] == NULL); /* null stays null */

	struct kn_xch_mark m = {3, 9, INT64_MIN, KN_PART_ENDED};
	n = kn_xch_mark(buf, &m);
	KT_CHECK(!kn_xch_decode(buf, n, &x, &why) && x.type == KN_XCH_MARK);
	KT_CHECK(x.mark.from == 3 && x.mark.n_from == 9 && x.mark.value == INT64_MIN &&
		 x.mark.state == KN_PART_ENDED);
}

/* Every truncation, a bad header, trailing bytes and out-of-range values
 * are refused with a reason. */
static void test_codec_refuses(void)
{
	uint8_t buf[KN_XCH_MAX_BYTES], bad[KN_XCH_MAX_BYTES + 1];
	struct kn_xch x;
	const char *why;
	struct kn_agg_point pt = {42, H, {"device", "wx4g0", "", "iOS", "", "", "travel"}};
	size_t n = kn_xch_contrib(buf, &pt, 0, 0x7f, 1);

	for (size_t len = 0; len < n; len++)
		KT_CHECK(kn_xch_decode(buf, len, &x, &why) == -EINVAL && why);
	memcpy(bad, buf, n);
	bad[n] = 0;
	KT_CHECK(kn_xch_decode(bad, n + 1, &x, &why) && !strcmp(why, "trailing bytes"));
	memcpy(bad, buf, n);
	bad[1] = 2;
	KT_CHECK(kn_xch_decode(bad, n, &x, &why) && !strcmp(why, "unknown exchange version"));
	bad[1] = 1;
	bad[2] = 'Z';
	KT_CHECK(kn_xch_decode(bad, n, &x, &why) && strstr(why, "type"));
	memcpy(bad, buf, n);
	bad[n - 6] = '\n'; /* inside "travel" */
	KT_CHECK(kn_xch_decode(bad, n, &x, &why) && strstr(why, "control"));
	pt.person = 0;
	n = kn_xch_contrib(buf, &pt, 0, 0x7f, 1);
	KT_CHECK(kn_xch_decode(buf, n, &x, &why) && strstr(why, "fingerprint"));
	pt.person = 1;
	n = kn_xch_contrib(buf, &pt, 0, 0x7f, 0);
	KT_CHECK(kn_xch_decode(buf, n, &x, &why) && strstr(why, "event count"));

	struct kn_xch_mark m = {9, 9, 0, KN_PART_ACTIVE};
	n = kn_xch_mark(buf, &m);
	KT_CHECK(kn_xch_decode(buf, n, &x, &why) && strstr(why, "range"));

	struct kn_agg_def def = {"d", 1u << KN_DIM_OS, 4, 5};
	struct kn_agg_row row = {&def, 0, H, 0, {NULL}, 3, 4}; /* more people than events */
	n = kn_xch_partial(buf, &row);
	KT_CHECK(kn_xch_decode(buf, n, &x, &why) && strstr(why, "users"));

	char host[300];
	memset(host, 'a', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	pt.dim[KN_DIM_URL_DOMAIN] = host; /* longer than any host name */
	KT_CHECK(kn_xch_contrib(buf, &pt, 0, 0x7f, 1) == 0);
}

static void test_state_round_trip(void)
{
	int64_t mts[4] = {1793491200000LL, INT64_MIN, 1793491100001LL, -5};
	enum kn_part_state st[4] = {KN_PART_ACTIVE, KN_PART_ENDED, KN_PART_IDLE, KN_PART_ACTIVE};
	int64_t got_ts[4], until;
	enum kn_part_state got_st[4];
	char buf[4000];
	int got;
	size_t n = kn_xch_state_fmt(buf, sizeof(buf), 'b', 7 * H, 4, mts, st);

	KT_CHECK(n > 0 && !kn_xch_state_parse(buf, n, 'b', &until, 4, got_ts, got_st, &got));
	KT_CHECK(got == 4 && until == 7 * H);
	KT_CHECK(!memcmp(got_ts, mts, sizeof(mts)) && !memcmp(got_st, st, sizeof(st)));
	/* Another stage's, another partition count, or garbage. */
	KT_CHECK(kn_xch_state_parse(buf, n, 'r', &until, 4, got_ts, got_st, &got) == -EINVAL);
	KT_CHECK(!kn_xch_state_parse(buf, n, 'b', &until, 3, got_ts, got_st, &got) && got == 0);
	KT_CHECK(kn_xch_state_parse("kn1 w=1 m=2 d=3", 15, 'b', &until, 4, got_ts, got_st, &got));
	/* Too many partitions for the metadata: emitted_until alone. */
	n = kn_xch_state_fmt(buf, 40, 'r', 5, 4, mts, st);
	KT_CHECK(n > 0 && !kn_xch_state_parse(buf, n, 'r', &until, 4, got_ts, got_st, &got));
	KT_CHECK(got == 0 && until == 5);
}

/* ---- the topology in miniature ---- */

#define PARTS 3 /* input partitions */
#define Q     3 /* contributions partitions (bound) */
#define R     2 /* partial-tallies partitions (release) */

static const struct kn_agg_def defs[2] = {{"geo", 1u << KN_DIM_GEO, 3, 2},
					  {"geo_os", (1u << KN_DIM_GEO) | (1u << KN_DIM_OS), 4, 2}};

struct row {
	char key[96];
	uint64_t events, users;
};

struct rows {
	int n;
	struct row r[2048];
};

static void keep(void *o, const struct kn_agg_row *row)
{
	struct rows *rs = o;
	struct row *r = &rs->r[rs->n++];

	snprintf(r->key, sizeof(r->key), "%s|%lld|%s|%s", row->def->name,
		 (long long)row->window_start, row->dim[KN_DIM_GEO] ? row->dim[KN_DIM_GEO] : "-",
		 row->dim[KN_DIM_OS] ? row->dim[KN_DIM_OS] : "-");
	r->events = row->events;
	r->users = row->users;
}

static void no_summary(void *o, const struct kn_agg_summary *s)
{
	(void)o, (void)s;
}

static int cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->key, ((const struct row *)b)->key);
}

struct topo {
	struct kn_aggregator *whole, *bound[Q], *release[R];
	struct kn_xch_coalesce *pending; /* deid's contributions, coalesced */
	int64_t max_ts[PARTS];
	struct rows out_whole, out_staged;
	int64_t off; /* a running offset for every consumed record */
};

static void new_topo(struct topo *t, enum kn_agg_mode mode, const struct kn_keys *keys)
{
	struct kn_agg_opts o = {.window_ms = H,
				.lateness_ms = 10 * 60000,
				.max_events_per_person = 3,
				.max_groups_per_person = 2,
				.mode = mode,
				.noise_keys = keys,
				.scope = "test",
				.person = KN_ID_USER,
				.max_state_bytes = 1LL << 40};

	memset(t, 0, sizeof(*t));
	if (mode == KN_AGG_DP)
		kn_dp_params(&(struct kn_dp_budget){1, 1, 1e-6, 2, 3},
			     &o.dp); /* eps 1, L0 2, Linf 3 */
	o.n_partitions = PARTS;
	t->whole = kn_aggregator_new(defs, 2, &o);
	o.stage = KN_AGG_BOUND;
	for (int q = 0; q < Q; q++)
		t->bound[q] = kn_aggregator_new(defs, 2, &o);
	o.stage = KN_AGG_RELEASE;
	o.n_partitions = Q;
	for (int r = 0; r < R; r++)
		t->release[r] = kn_aggregator_new(defs, 2, &o);
	for (int p = 0; p < PARTS; p++)
		t->max_ts[p] = INT64_MIN;
	t->pending = kn_xch_coalesce_new(64); /* small: full often, flushed early */
}

static void free_topo(struct topo *t)
{
	kn_aggregator_destroy(t->whole);
	for (int q = 0; q < Q; q++)
		kn_aggregator_destroy(t->bound[q]);
	for (int r = 0; r < R; r++)
		kn_aggregator_destroy(t->release[r]);
	kn_xch_coalesce_destroy(t->pending);
}

/* A coalesced contribution, through the wire, into its bound partition. */
static int to_bound(void *o, int32_t q, const uint8_t *rec, size_t len)
{
	struct topo *t = o;
	struct kn_xch x;
	const char *why;

	KT_CHECK(!kn_xch_decode(rec, len, &x, &why) && x.n_events >= 1);
	kn_aggregator_add_point(t->bound[q], &x.point, x.n_events, (int)x.part, t->off++);
	return 0;
}

/* A bound partition's partial tally, through the wire, into its release
 * partition (as stage.c routes it). */
static int64_t cur_q;
static struct topo *cur;

static void to_release(void *o, const struct kn_agg_row *row)
{
	uint8_t buf[KN_XCH_MAX_BYTES];
	struct kn_xch x;
	const char *why;
	size_t n = kn_xch_partial(buf, row);
	int d = !strcmp(row->def->name, "geo") ? 0 : 1;
	int r = (int)(((uint64_t)row->window_start / H + (uint64_t)d) % R);

	(void)o;
	KT_CHECK(n && !kn_xch_decode(buf, n, &x, &why));
	kn_aggregator_add_partial(cur->release[r], d, x.window_start, x.dim, x.events, x.users,
				  x.early, (int)cur_q, cur->off++);
}

/* Downstream of deid: marks to every bound partition, each bound partition
 * closes what it can and marks every release partition, which close too. */
static void advance_all(struct topo *t, enum kn_part_state st)
{
	struct kn_agg_sink down = {to_release, no_summary, NULL};
	struct kn_agg_sink keep_staged = {keep, no_summary, &t->out_staged};
	enum kn_part_state bst;

	cur = t;
	kn_xch_coalesce_flush(t->pending, to_bound, t); /* before the marks, as eos.c */
	for (int q = 0; q < Q; q++) {
		for (int p = 0; p < PARTS; p++)
			kn_aggregator_mark(t->bound[q], p, t->max_ts[p], st);
		cur_q = q;
		kn_aggregator_advance(t->bound[q], false, &down);
		int64_t wm = kn_aggregator_watermark(t->bound[q], &bst);
		for (int r = 0; r < R; r++)
			kn_aggregator_mark(t->release[r], q, wm, bst);
	}
	for (int r = 0; r < R; r++)
		kn_aggregator_advance(t->release[r], false, &keep_staged);
}

/* One event from input partition p: the whole aggregator takes it as it
 * is; deid applies the lateness rule and sends a contribution. */
static void offer(struct topo *t, const struct kn_deid *d, int64_t ts, int p)
{
	struct kn_agg_point pt;
	uint8_t buf[KN_XCH_MAX_BYTES];
	struct kn_xch x;
	const char *why;
	int64_t end = kn_agg_window_start(ts, H) + H;

	kn_aggregator_add(t->whole, d, ts, 0, p, t->off++);
	if (ts > t->max_ts[p])
		t->max_ts[p] = ts;
	if (kn_agg_late(end, 10 * 60000, t->max_ts[p]) ||
	    !kn_agg_point_of(d, KN_ID_USER, H, ts, &pt))
		return;
	size_t n = kn_xch_contrib(buf, &pt, (uint32_t)p, 0x7f, 1);
	KT_CHECK(n && !kn_xch_decode(buf, n, &x, &why));
	int q = (int)(x.point.person % Q);
	if (kn_xch_coalesce_add(t->pending, buf, n, q) == 1) {
		kn_xch_coalesce_flush(t->pending, to_bound, t);
		KT_CHECK(kn_xch_coalesce_add(t->pending, buf, n, q) == 0);
	}
}

static void run_topo(enum kn_agg_mode mode, const struct kn_keys *keys, unsigned seed, int min_rows)
{
	static const char *geos[] = {"wx4g0", "wx4g1", "wx4gz", "wtw3s", "wtw3t"};
	static const char *oses[] = {"iOS", "Android", ""};
	struct topo *t = malloc(sizeof(*t));
	struct kn_agg_sink keep_whole = {keep, no_summary, &t->out_whole};
	struct kn_agg_sink keep_staged = {keep, no_summary, &t->out_staged};
	int64_t clock[PARTS] = {0};

	srand(seed);
	new_topo(t, mode, keys);
	for (int i = 0; i < 6000; i++) {
		int p = rand() % PARTS;
		/* Each partition's time moves on, with events up to 40 min out of
		 * order (some of them late). */
		clock[p] += rand() % 8000;
		int64_t ts = 10 * H + clock[p] - rand() % (40 * 60000);
		struct kn_deid d = {.type = KN_EV_DEVICE, .consent_ads = 1, .consent_analytics = 1};
		d.has_pid[KN_ID_USER] = true;
		snprintf(d.pid[KN_ID_USER], sizeof(d.pid[0]), "%032x", rand() % 300);
		snprintf(d.geo_cell, sizeof(d.geo_cell), "%s", geos[rand() % 5]);
		snprintf(d.os_family, sizeof(d.os_family), "%s", oses[rand() % 3]);
		offer(t, &d, ts, p);
		if (i % 97 == 0) {
			kn_aggregator_advance(t->whole, false, &keep_whole);
			advance_all(t, KN_PART_ACTIVE);
		}
	}
	kn_aggregator_advance(t->whole, true, &keep_whole);
	advance_all(t, KN_PART_ENDED); /* every partition ended: everything closes */
	for (int r = 0; r < R; r++)
		kn_aggregator_advance(t->release[r], false, &keep_staged);
	qsort(t->out_whole.r, (size_t)t->out_whole.n, sizeof(struct row), cmp_row);
	qsort(t->out_staged.r, (size_t)t->out_staged.n, sizeof(struct row), cmp_row);
	KT_CHECK(t->out_whole.n >= min_rows);
	if (t->out_whole.n < min_rows)
		fprintf(stderr, "  %d rows\n", t->out_whole.n);
	KT_CHECK(t->out_whole.n == t->out_staged.n);
	for (int i = 0; i < t->out_whole.n && i < t->out_staged.n; i++) {
		const struct row *a = &t->out_whole.r[i], *b = &t->out_staged.r[i];
		if (strcmp(a->key, b->key) || a->events != b->events || a->users != b->users) {
			KT_CHECK(!"rows differ");
			fprintf(stderr, "  whole %s %llu/%llu, staged %s %llu/%llu\n", a->key,
				(unsigned long long)a->events, (unsigned long long)a->users, b->key,
				(unsigned long long)b->events, (unsigned long long)b->users);
			break;
		}
	}
	for (int q = 0; q < Q; q++)
		KT_CHECK(kn_aggregator_idle_now(t->bound[q]));
	free_topo(t);
	free(t);
}

/* Identical contributions become one with the sum, in first-seen order. */
static int collect(void *o, int32_t q, const uint8_t *rec, size_t len)
{
	struct kn_xch *x = o;
	const char *why;

	KT_CHECK(q == 7 && !kn_xch_decode(rec, len, &x[x[0].part++ + 1], &why));
	return 0;
}

static void test_coalesce(void)
{
	struct kn_xch_coalesce *c = kn_xch_coalesce_new(2);
	struct kn_agg_point a = {11, H, {"device", "wx4g0", "", "", "", "", ""}}, b = a;
	uint8_t buf[KN_XCH_MAX_BYTES];
	struct kn_xch *got = calloc(4, sizeof(*got));

	b.person = 12;
	for (int i = 0; i < 5; i++) {
		size_t n = kn_xch_contrib(buf, i == 1 ? &b : &a, 0, 0x3, 1);
		KT_CHECK(kn_xch_coalesce_add(c, buf, n, 7) == 0);
	}
	size_t n = kn_xch_contrib(buf, &a, 1, 0x3, 1);	  /* another input partition */
	KT_CHECK(kn_xch_coalesce_add(c, buf, n, 7) == 1); /* full: two held */
	KT_CHECK(kn_xch_coalesce_count(c) == 2);
	KT_CHECK(kn_xch_coalesce_flush(c, collect, got) == 0 && got[0].part == 2);
	KT_CHECK(got[1].point.person == 11 && got[1].n_events == 4);
	KT_CHECK(got[2].point.person == 12 && got[2].n_events == 1);
	KT_CHECK(kn_xch_coalesce_count(c) == 0 && kn_xch_coalesce_add(c, buf, n, 7) == 0);
	kn_xch_coalesce_clear(c);
	KT_CHECK(kn_xch_coalesce_count(c) == 0);
	kn_xch_coalesce_destroy(c);
	free(got);
}

static void test_topology_exact(void)
{
	for (unsigned seed = 1; seed <= 3; seed++)
		run_topo(KN_AGG_K_ANONYMITY, NULL, seed, 20);
}

static void test_topology_noisy(void)
{
	const uint8_t master[KN_MASTER_KEY_BYTES] = {9};
	struct kn_keys *keys;

	KT_CHECK(!kn_keys_from_master(master, KN_PRF_SIPHASH, &keys));
	run_topo(KN_AGG_DP, keys, 4, 4); /* fewer: private selection drops small groups */
	kn_keys_destroy(keys);
}

/* A window is not released while one input partition has not passed it,
 * however far the others are. */
static void test_topology_waits_for_every_partition(void)
{
	struct topo *t = malloc(sizeof(*t));
	struct kn_deid d = {.type = KN_EV_DEVICE, .consent_ads = 1, .consent_analytics = 1};
	int w[4];

	new_topo(t, KN_AGG_K_ANONYMITY, NULL);
	d.has_pid[KN_ID_USER] = true;
	snprintf(d.geo_cell, sizeof(d.geo_cell), "wx4g0");
	for (int i = 0; i < 50; i++) {
		snprintf(d.pid[KN_ID_USER], sizeof(d.pid[0]), "%032x", i);
		offer(t, &d, 10 * H + i, 0);
		offer(t, &d, 30 * H + i, 1); /* far ahead */
	}
	offer(t, &d, 10 * H + 100, 2);
	advance_all(t, KN_PART_ACTIVE);
	KT_CHECK(t->out_staged.n == 0);
	int64_t start;
	int n = kn_aggregator_waiting(t->bound[0], &start, w, 4);
	KT_CHECK(n == 2 && w[0] == 0 && w[1] == 2); /* partitions 0 and 2 hold it */
	KT_CHECK(start == 10 * H);
	t->max_ts[0] = t->max_ts[2] = 12 * H; /* both pass [10h, 11h) */
	advance_all(t, KN_PART_ACTIVE);
	/* One row per definition; person 49 came twice. */
	KT_CHECK(t->out_staged.n == 2 && t->out_staged.r[0].users == 50 &&
		 t->out_staged.r[0].events == 51);
	free_topo(t);
	free(t);
}

int main(void)
{
	KT_RUN(test_codec_round_trips);
	KT_RUN(test_codec_refuses);
	KT_RUN(test_state_round_trip);
	KT_RUN(test_coalesce);
	KT_RUN(test_topology_exact);
	KT_RUN(test_topology_noisy);
	KT_RUN(test_topology_waits_for_every_partition);
	return kt_done();
}
