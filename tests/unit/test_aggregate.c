#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "keys.h"
#include "kt.h"

#define H 3600000LL

static const struct kn_agg_def def_geo = {"by_geo_os", (1u << KN_DIM_GEO) | (1u << KN_DIM_OS), 4,
					  5};

static struct kn_agg_opts opts(int parts)
{
	return (struct kn_agg_opts){.window_ms = H,
				    .lateness_ms = 5 * 60000,
				    .max_events_per_person = 100,
				    .max_groups_per_person = 20,
				    .mode = KN_AGG_K_ANONYMITY, /* exact: the mechanics */
				    .person = KN_ID_USER,
				    .epoch_ms = 24 * H,
				    .max_state_bytes = 1LL << 40,
				    .n_partitions = parts};
}

static struct kn_deid ev(int person, const char *geo, const char *os)
{
	struct kn_deid d = {0};

	d.type = KN_EV_DEVICE;
	d.consent_ads = d.consent_analytics = 1;
	d.has_pid[KN_ID_USER] = person >= 0;
	snprintf(d.pid[KN_ID_USER], sizeof(d.pid[0]), "%032x", person);
	snprintf(d.geo_cell, sizeof(d.geo_cell), "%s", geo);
	snprintf(d.os_family, sizeof(d.os_family), "%s", os);
	return d;
}

/* Collected output. */
#define MAX_ROWS 4096
struct out {
	int n;
	struct {
		int64_t start;
		char geo[16], os[24];
		uint64_t events, users;
		bool exact;
	} r[MAX_ROWS];
	int n_summaries;
	uint64_t suppressed_groups, bounded;
	struct {
		int64_t start;
		bool early;
	} sum[64];
};

static void on_row(void *o, const struct kn_agg_row *row)
{
	struct out *out = o;

	if (out->n == MAX_ROWS)
		return;
	out->r[out->n].start = row->window_start;
	snprintf(out->r[out->n].geo, 16, "%s", row->dim[KN_DIM_GEO] ? row->dim[KN_DIM_GEO] : "-");
	snprintf(out->r[out->n].os, 24, "%s", row->dim[KN_DIM_OS] ? row->dim[KN_DIM_OS] : "-");
	out->r[out->n].events = row->events;
	out->r[out->n].users = row->users;
	out->r[out->n].exact = row->users_exact;
	out->n++;
}

static void on_summary(void *o, const struct kn_agg_summary *s)
{
	struct out *out = o;

	if (out->n_summaries < 64) {
		out->sum[out->n_summaries].start = s->window_start;
		out->sum[out->n_summaries].early = s->early;
	}
	out->n_summaries++;
}

/* Closes every window; the exact suppressed and bounded counts come from
 * the operators' metrics (summaries never carry them). */
static struct out *flush(struct kn_aggregator *a)
{
	struct out *o = calloc(1, sizeof(*o));
	struct kn_agg_sink sink = {on_row, on_summary, o};
	struct kn_agg_metrics m;

	kn_aggregator_advance(a, true, &sink);
	kn_aggregator_metrics(a, &m);
	o->suppressed_groups = m.groups_suppressed;
	o->bounded = m.bounded;
	return o;
}

static void test_window_boundaries(void)
{
	struct kn_agg_opts o = opts(1);
	o.lateness_ms = 10 * H; /* nothing late here */
	struct kn_aggregator *a = kn_aggregator_new(&def_geo, 1, &o);
	struct kn_deid d = ev(1, "wx4g0", "iOS");

	for (int p = 0; p < 5; p++) { /* 5 people so the group is released */
		d = ev(p, "wx4g0", "iOS");
		kn_aggregator_add(a, &d, 10 * H - 1, 0, 0, p);
		kn_aggregator_add(a, &d, 10 * H, 0, 0, 10 + p);
	}
	struct out *out = flush(a);
	KT_CHECK(out->n == 2);
	KT_CHECK(out->r[0].start == 9 * H && out->r[1].start == 10 * H);
	KT_STREQ(out->r[0].geo, "wx4g"); /* the aggregation's own, coarser precision */
	free(out);
	kn_aggregator_destroy(a);
}

static void test_watermark_and_lateness(void)
{
	struct kn_agg_opts o = opts(2);
	struct kn_aggregator *a = kn_aggregator_new(&def_geo, 1, &o);
	struct out *out = calloc(1, sizeof(*out));
	struct kn_agg_sink sink = {on_row, on_summary, out};
	struct kn_deid d;
	struct kn_agg_metrics m;

	for (int p = 0; p < 5; p++) {
		d = ev(p, "wx4g0", "iOS");
		KT_CHECK(kn_aggregator_add(a, &d, H + 60000, 0, 0, p) == KN_AGG_ADDED);
	}
	/* Partition 0 runs far ahead; partition 1 has not spoken: nothing closes. */
	d = ev(9, "aaaaa", "iOS");
	kn_aggregator_add(a, &d, 3 * H, 0, 0, 100);
	KT_CHECK(kn_aggregator_advance(a, false, &sink) == 0);
	/* Partition 1 reaches 2h + 5 min: the watermark passes the end of [1h, 2h). */
	kn_aggregator_add(a, &d, 2 * H + 5 * 60000, 0, 1, 0);
	KT_CHECK(kn_aggregator_advance(a, false, &sink) == 1);
	KT_CHECK(out->n == 1 && out->r[0].start == H && out->r[0].users == 5);
	/* Within partition 1's bound but its window is released: late. */
	d = ev(3, "wx4g0", "iOS");
	KT_CHECK(kn_aggregator_add(a, &d, 2 * H - 1, 0, 1, 1) == KN_AGG_LATE);
	/* Far behind partition 0's largest time (3h), but its window [2h, 3h)
	 * is open for partition 0 until 3h + 5 min: on time. */
	KT_CHECK(kn_aggregator_add(a, &d, 2 * H + 1, 0, 0, 101) == KN_AGG_ADDED);
	kn_aggregator_add(a, &d, 3 * H + 5 * 60000, 0, 0, 102);
	/* Now its window's end + lateness <= partition 0's time: late. */
	KT_CHECK(kn_aggregator_add(a, &d, 3 * H - 1, 0, 0, 103) == KN_AGG_LATE);
	KT_CHECK(kn_aggregator_add(a, &d, 3 * H, 0, 0, 104) == KN_AGG_ADDED);
	kn_aggregator_metrics(a, &m);
	KT_CHECK(m.late == 2);
	/* An idle partition leaves the minimum. */
	KT_CHECK(kn_aggregator_advance(a, false, &sink) == 0); /* partition 1 holds it back */
	kn_aggregator_set_idle(a, 1, true);
	KT_CHECK(kn_aggregator_advance(a, false, &sink) == 1); /* [2h, 3h) closes */
	free(out);
	kn_aggregator_destroy(a);
}

static void test_threshold_exact_around_k(void)
{
	struct kn_agg_def def = def_geo;
	def.k = 50;
	struct kn_agg_opts o = opts(1);
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, &o);
	const char *cells[3] = {"aaaa0", "bbbb0", "cccc0"};
	const int people[3] = {49, 50, 51};
	int pid = 0;

	for (int c = 0; c < 3; c++)
		for (int p = 0; p < people[c]; p++, pid++)
			for (int e = 0; e < 30;
			     e++) { /* many events each: people, not events, count */
				struct kn_deid d = ev(pid, cells[c], "Android");
				kn_aggregator_add(a, &d, 5 * H + e, 0, 0, pid * 100 + e);
			}
	struct out *out = flush(a);
	KT_CHECK(out->n == 2);
	KT_CHECK(out->suppressed_groups == 1);
	for (int i = 0; i < out->n; i++) {
		KT_CHECK(out->r[i].exact);
		KT_CHECK(strcmp(out->r[i].geo, "aaaa") != 0); /* 49 people: never released */
		KT_CHECK(out->r[i].users == (strcmp(out->r[i].geo, "bbbb") ? 51u : 50u));
		KT_CHECK(out->r[i].events == 30 * out->r[i].users);
	}
	free(out);
	kn_aggregator_destroy(a);
}

/* Distinct people are counted exactly however many there are (each
 * person's table entry names a group once). */
static void test_large_group_exact(void)
{
	struct kn_agg_opts o = opts(1);
	struct kn_aggregator *a = kn_aggregator_new(&def_geo, 1, &o);

	for (int p = 0; p < 30000; p++)
		for (int e = 0; e < 1 + p % 3; e++) {
			struct kn_deid d = ev(p, "wx4g0", "iOS");
			kn_aggregator_add(a, &d, H, 0, 0, p);
		}
	struct out *out = flush(a);
	KT_CHECK(out->n == 1 && out->r[0].exact);
	KT_CHECK(out->r[0].users == 30000 && out->r[0].events == 60000);
	free(out);
	kn_aggregator_destroy(a);
}

static void test_contribution_bounds(void)
{
	struct kn_agg_def def = def_geo;
	def.k = 1;
	struct kn_agg_opts o = opts(1);
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, &o);
	char cell[8];

	/* One chatty person: 1000 events in one group count as 100. */
	for (int e = 0; e < 1000; e++) {
		struct kn_deid d = ev(7, "zzzz0", "iOS");
		kn_aggregator_add(a, &d, H + e, 0, 0, e);
	}
	/* One person in 30 groups counts in 20. */
	for (int g = 0; g < 30; g++) {
		snprintf(cell, sizeof(cell), "g%03d", g);
		struct kn_deid d = ev(8, cell, "iOS");
		kn_aggregator_add(a, &d, H + g, 0, 0, 2000 + g);
	}
	struct out *out = flush(a);
	KT_CHECK(out->n == 21);
	uint64_t total = 0;
	for (int i = 0; i < out->n; i++)
		total += out->r[i].events;
	KT_CHECK(total == 100 + 20);
	KT_CHECK(out->bounded == 900 + 10);
	free(out);
	kn_aggregator_destroy(a);
}

/* The released rows must not depend on arrival order (exactly-once replays
 * interleave partitions differently). */
static void test_order_independence(void)
{
	struct kn_agg_def def = def_geo;
	def.k = 2;
	struct kn_agg_opts o = opts(1);
	o.max_groups_per_person = 3;
	o.max_events_per_person = 4;
	enum {
		N = 2000
	};
	static struct {
		int person, cell;
	} evs[N];
	srand(1);
	for (int i = 0; i < N; i++) {
		evs[i].person = rand() % 40;
		evs[i].cell = rand() % 15;
	}
	struct out *outs[2];
	for (int run = 0; run < 2; run++) {
		struct kn_aggregator *a = kn_aggregator_new(&def, 1, &o);
		for (int j = 0; j < N; j++) {
			int i = run ? N - 1 - j : j;
			char cell[8];
			snprintf(cell, sizeof(cell), "c%02d", evs[i].cell);
			struct kn_deid d = ev(evs[i].person, cell, "iOS");
			kn_aggregator_add(a, &d, H + 10, 0, 0, j);
		}
		outs[run] = flush(a);
		kn_aggregator_destroy(a);
	}
	KT_CHECK(outs[0]->n == outs[1]->n && outs[0]->n > 5);
	int same = 0;
	for (int i = 0; i < outs[0]->n; i++)
		for (int j = 0; j < outs[1]->n; j++)
			same += !strcmp(outs[0]->r[i].geo, outs[1]->r[j].geo) &&
				outs[0]->r[i].events == outs[1]->r[j].events &&
				outs[0]->r[i].users == outs[1]->r[j].users;
	KT_CHECK(same == outs[0]->n);
	KT_CHECK(outs[0]->bounded == outs[1]->bounded && outs[0]->bounded > 0);
	free(outs[0]);
	free(outs[1]);
}

/* Restart from a checkpoint: replaying from the checkpoint offset with the
 * restored state gives exactly the rows of an uninterrupted run. */
static void test_checkpoint_replay(void)
{
	struct kn_agg_opts o = opts(1);
	enum {
		N = 3000
	};
	struct kn_agg_def def = def_geo;
	def.k = 3;
	struct out *full, *part = calloc(1, sizeof(*part));
	struct kn_agg_sink psink = {on_row, on_summary, part};

	/* Uninterrupted. */
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, &o);
	for (int i = 0; i < N; i++) {
		struct kn_deid d = ev(i % 37, i % 2 ? "aaaa0" : "bbbb0", "iOS");
		kn_aggregator_add(a, &d, i * 20000LL, 0, 0, i);
		kn_aggregator_advance(a, false, &psink); /* rows land in part, ignored */
	}
	free(part);
	a = (kn_aggregator_destroy(a), kn_aggregator_new(&def, 1, &o));
	full = calloc(1, sizeof(*full));
	struct kn_agg_sink fsink = {on_row, on_summary, full};
	for (int i = 0; i < N; i++) {
		struct kn_deid d = ev(i % 37, i % 2 ? "aaaa0" : "bbbb0", "iOS");
		kn_aggregator_add(a, &d, i * 20000LL, 0, 0, i);
		kn_aggregator_advance(a, false, &fsink);
	}
	kn_aggregator_advance(a, true, &fsink);
	kn_aggregator_destroy(a);

	/* Crash at 1700: output so far kept, restart from the checkpoint. */
	struct out *two = calloc(1, sizeof(*two));
	struct kn_agg_sink tsink = {on_row, on_summary, two};
	a = kn_aggregator_new(&def, 1, &o);
	for (int i = 0; i < 1700; i++) {
		struct kn_deid d = ev(i % 37, i % 2 ? "aaaa0" : "bbbb0", "iOS");
		kn_aggregator_add(a, &d, i * 20000LL, 0, 0, i);
		kn_aggregator_advance(a, false, &tsink);
	}
	int64_t off, max_ts, until = kn_aggregator_emitted_until(a);
	kn_aggregator_checkpoint(a, 0, 1700, &off, &max_ts);
	KT_CHECK(off < 1700); /* an open window still needs earlier events */
	kn_aggregator_destroy(a);
	a = kn_aggregator_new(&def, 1, &o);
	kn_aggregator_restore(a, 0, max_ts, until);
	for (int i = (int)off; i < N; i++) {
		struct kn_deid d = ev(i % 37, i % 2 ? "aaaa0" : "bbbb0", "iOS");
		kn_aggregator_add(a, &d, i * 20000LL, 0, 0, i);
		kn_aggregator_advance(a, false, &tsink);
	}
	kn_aggregator_advance(a, true, &tsink);
	kn_aggregator_destroy(a);
	KT_CHECK(two->n == full->n && full->n > 10);
	KT_CHECK(!memcmp(two->r, full->r, sizeof(full->r[0]) * (size_t)full->n));
	free(full);
	free(two);
}

static void test_state_cap(void)
{
	struct kn_agg_opts o = opts(1);
	o.max_state_bytes = 150 * 1024;
	struct kn_aggregator *a = kn_aggregator_new(&def_geo, 1, &o);
	struct out *out = calloc(1, sizeof(*out));
	struct kn_agg_sink sink = {on_row, on_summary, out};
	struct kn_agg_metrics m;

	o.lateness_ms = 100 * H;
	for (int w = 0; w < 20; w++)
		for (int p = 0; p < 500; p++) {
			struct kn_deid d = ev(p, "wx4g0", "iOS");
			kn_aggregator_add(a, &d, w * H, 0, 0, w * 1000 + p);
			kn_aggregator_advance(a, false, &sink);
		}
	kn_aggregator_metrics(a, &m);
	KT_CHECK(m.early_closed > 0);
	KT_CHECK(m.state_bytes <= (uint64_t)o.max_state_bytes);
	printf("  %llu windows closed early; %llu bytes for %llu open groups\n",
	       (unsigned long long)m.early_closed, (unsigned long long)m.state_bytes,
	       (unsigned long long)m.open_groups);
	free(out);
	kn_aggregator_destroy(a);
}

/* closed_early is a property of the input, not of the run: how partitions
 * interleave, when windows are advanced and which partitions went idle
 * (timing) must not change it. p0 spans five hours, p1 ends after 2.5 h,
 * p2 never has data. */
static void test_closed_early_deterministic(void)
{
	struct kn_agg_def def = def_geo;
	def.k = 1;
	struct kn_agg_opts o = opts(3);
	struct out *outs[3];

	for (int run = 0; run < 3; run++) {
		struct kn_aggregator *a = kn_aggregator_new(&def, 1, &o);
		struct out *o2 = calloc(1, sizeof(*o2));
		struct kn_agg_sink sink = {on_row, on_summary, o2};
		if (run == 1)
			kn_aggregator_set_idle(a, 2, true);
		for (int i = 0; i < 300; i++) {
			struct kn_deid d = ev(i % 7, "wx4g0", "iOS");
			kn_aggregator_add(a, &d, i * (5 * H / 300), 0, 0, i);
			if (run == 0) /* p0 first, then p1, advanced only at the end */
				continue;
			if (i < 150)
				kn_aggregator_add(a, &d, i * (5 * H / 300), 0, 1, i);
			kn_aggregator_advance(a, false, &sink);
			if (run == 1 && i == 149) /* p1 at its end, and idle from here */
				kn_aggregator_set_idle(a, 1, true);
		}
		for (int i = 0; run == 0 && i < 150; i++) {
			struct kn_deid d = ev(i % 7, "wx4g0", "iOS");
			kn_aggregator_add(a, &d, i * (5 * H / 300), 0, 1, i);
		}
		if (run == 2)
			kn_aggregator_set_idle(a, 2, true);
		kn_aggregator_advance(a, true, &sink);
		outs[run] = o2;
		kn_aggregator_destroy(a);
	}
	KT_CHECK(outs[0]->n_summaries == 5);
	for (int run = 1; run < 3; run++) {
		KT_CHECK(outs[run]->n_summaries == outs[0]->n_summaries);
		for (int i = 0; i < outs[0]->n_summaries && i < 64; i++)
			KT_CHECK(outs[run]->sum[i].start == outs[0]->sum[i].start &&
				 outs[run]->sum[i].early == outs[0]->sum[i].early);
	}
	/* p1's data passed the first two windows only (2.5 h - 5 min). */
	for (int i = 0; i < 5; i++)
		KT_CHECK(outs[0]->sum[i].early == (i >= 2));
	for (int run = 0; run < 3; run++)
		free(outs[run]);
}

/* Mobile uploads arrive shuffled: every event of an open window counts,
 * whatever its order (lateness 0). */
static void test_shuffled_window_loses_nothing(void)
{
	struct kn_agg_def def = def_geo;
	def.k = 1;
	struct kn_agg_opts o = opts(1);
	o.lateness_ms = 0;
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, &o);
	struct kn_agg_metrics m;
	enum {
		N = 824
	};
	static int64_t ts[N];

	srand(7);
	for (int i = 0; i < N; i++)
		ts[i] = 4 * H + (int64_t)i * (H / N);
	for (int i = N - 1; i > 0; i--) { /* Fisher-Yates */
		int j = rand() % (i + 1);
		int64_t t = ts[i];
		ts[i] = ts[j], ts[j] = t;
	}
	for (int i = 0; i < N; i++) {
		struct kn_deid d = ev(i, "wx4g0", "iOS");
		KT_CHECK(kn_aggregator_add(a, &d, ts[i], 0, 0, i) == KN_AGG_ADDED);
	}
	kn_aggregator_metrics(a, &m);
	KT_CHECK(m.late == 0 && m.added == N);
	struct out *out = flush(a);
	KT_CHECK(out->n == 1 && out->r[0].users == N);
	free(out);
	kn_aggregator_destroy(a);
}

static const struct kn_agg_def two_defs[2] = {
	{"geo", 1u << KN_DIM_GEO, 4, 1},
	{"geo_os", (1u << KN_DIM_GEO) | (1u << KN_DIM_OS), 4, 1},
};

/* L0 bounds a person's groups over all definitions together. */
static void test_l0_across_definitions(void)
{
	struct kn_agg_opts o = opts(1);
	o.max_groups_per_person = 3;
	struct kn_aggregator *a = kn_aggregator_new(two_defs, 2, &o);
	char cell[8];

	for (int g = 0; g < 5; g++) { /* 5 cells: 10 groups over both definitions */
		snprintf(cell, sizeof(cell), "c%03d", g);
		struct kn_deid d = ev(1, cell, "iOS");
		kn_aggregator_add(a, &d, H, 0, 0, g);
	}
	struct out *out = flush(a);
	KT_CHECK(out->n == 3);
	KT_CHECK(out->bounded == 7);
	free(out);
	kn_aggregator_destroy(a);
}

/* One eligibility rule: a sensitive event, a minor's, or one without both
 * consents counts in no definition at all, so totals agree. */
static void test_one_eligibility_rule(void)
{
	struct kn_agg_opts o = opts(1);
	struct kn_aggregator *a = kn_aggregator_new(two_defs, 2, &o);
	struct kn_agg_metrics m;
	struct kn_deid d;

	for (int p = 0; p < 10; p++) {
		d = ev(p, "wx4g0", "iOS");
		d.sensitive = p < 3;
		d.minor = p == 3;
		d.consent_ads = p == 4 ? 0 : 1;
		d.consent_analytics = p == 5 ? -1 : 1;
		kn_aggregator_add(a, &d, H, 0, 0, p);
	}
	kn_aggregator_metrics(a, &m);
	KT_CHECK(m.ineligible == 6 && m.added == 4);
	struct out *out = flush(a);
	KT_CHECK(out->n == 2 && out->r[0].users == 4 && out->r[1].users == 4);
	free(out);
	kn_aggregator_destroy(a);
}

/* What one person cannot do: push stream time past their record's write
 * time, move it at all while ineligible, or open windows without end. */
static void test_one_person_cannot_move_time(void)
{
	struct kn_agg_def def = def_geo;
	def.k = 1;
	struct kn_agg_opts o = opts(1);
	o.lateness_ms = 0;
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, &o);
	struct kn_agg_metrics m;
	struct kn_deid d = ev(1, "wx4g0", "iOS");

	/* Opted out, an hour ahead: nothing moves. */
	d.consent_ads = 0;
	KT_CHECK(kn_aggregator_add(a, &d, 11 * H + 300000, 0, 0, 0) == KN_AGG_INELIGIBLE);
	d = ev(2, "wx4g0", "iOS");
	KT_CHECK(kn_aggregator_add(a, &d, 10 * H + 100, 0, 0, 1) == KN_AGG_ADDED);
	/* A clock set ahead: its record was written at 10:30, so stream time
	 * stops there and 10:40 is still on time. */
	d = ev(3, "wx4g0", "iOS");
	KT_CHECK(kn_aggregator_add(a, &d, 11 * H + 300000, 10 * H + H / 2, 0, 2) == KN_AGG_ADDED);
	d = ev(4, "wx4g0", "iOS");
	KT_CHECK(kn_aggregator_add(a, &d, 10 * H + 2 * H / 3, 10 * H + H / 2, 0, 3) ==
		 KN_AGG_ADDED);
	kn_aggregator_metrics(a, &m);
	KT_CHECK(m.late == 0 && m.ineligible == 1);
	kn_aggregator_destroy(a);

	/* 5000 windows at once: the ones past the limit are late, no error. */
	o.lateness_ms = 100000 * H;
	a = kn_aggregator_new(&def, 1, &o);
	int errors = 0;
	for (int w = 0; w < 5000; w++) {
		d = ev(w, "wx4g0", "iOS");
		errors += kn_aggregator_add(a, &d, (int64_t)w * H, 0, 0, w) == KN_AGG_ERROR;
	}
	kn_aggregator_metrics(a, &m);
	KT_CHECK(errors == 0 && m.windows_full == 5000 - 4096 && m.late == m.windows_full);
	kn_aggregator_destroy(a);
}

static struct kn_keys *noise_keys(uint8_t tag)
{
	uint8_t master[KN_MASTER_KEY_BYTES] = {tag, 42};
	struct kn_keys *k = NULL;

	kn_keys_from_master(master, KN_PRF_SIPHASH, &k);
	return k;
}

static struct kn_agg_opts dp_opts(const struct kn_keys *k, int64_t l0, const char *eps,
				  double delta)
{
	struct kn_agg_opts o = opts(1);
	struct kn_dp_budget b = {.delta = delta, .l0 = l0, .linf = 5};

	o.mode = KN_AGG_DP;
	o.noise_keys = k;
	o.max_groups_per_person = l0;
	o.max_events_per_person = 5;
	kn_dp_parse_epsilon(eps, &b.eps_num, &b.eps_den);
	kn_dp_params(&b, &o.dp);
	return o;
}

/* cells x people per cell, one event each, in window w; order reversed if
 * asked. */
static struct out *dp_run(const struct kn_agg_opts *o, int cells, int people, bool reverse)
{
	struct kn_agg_def def = def_geo;
	def.k = 1;
	struct kn_aggregator *a = kn_aggregator_new(&def, 1, o);
	char cell[16];
	int n = cells * people;

	for (int j = 0; j < n; j++) {
		int i = reverse ? n - 1 - j : j;
		snprintf(cell, sizeof(cell), "%04x", i / people);
		struct kn_deid d = ev(i, cell, "iOS");
		kn_aggregator_add(a, &d, H, 0, 0, j);
	}
	struct out *out = flush(a);
	kn_aggregator_destroy(a);
	return out;
}

/* Released counts are noisy, unbiased, and the same in every run of the
 * same input (the noise depends on the noise key and the group only). */
static void test_dp_noise_keyed_and_unbiased(void)
{
	struct kn_keys *k1 = noise_keys(1), *k2 = noise_keys(2);
	struct kn_agg_opts o = dp_opts(k1, 1, "1", 1e-6);
	struct out *a = dp_run(&o, 1000, 60, false), *b = dp_run(&o, 1000, 60, true);

	KT_CHECK(o.dp.threshold > 10 && o.dp.threshold < 60 - 20);
	KT_CHECK(a->n == 1000 && b->n == 1000);
	/* Same rows in the same order (sorted by cell, not by arrival). */
	KT_CHECK(!memcmp(a->r, b->r, sizeof(a->r[0]) * (size_t)a->n));
	for (int i = 1; i < a->n; i++)
		KT_CHECK(strcmp(a->r[i - 1].geo, a->r[i].geo) < 0);
	double err = 0, sq = 0;
	int exact = 0;
	for (int i = 0; i < a->n; i++) {
		double e = (double)a->r[i].users - 60;
		err += e, sq += e * e;
		exact += a->r[i].users == 60 && a->r[i].events == 60;
		KT_CHECK(!a->r[i].exact);
	}
	double var = 2 * exp(-0.5) / pow(1 - exp(-0.5), 2); /* DLap(2) */
	KT_CHECK(fabs(err / a->n) < 5 * sqrt(var / a->n));
	KT_CHECK(fabs(sq / a->n / var - 1) < 0.2);
	KT_CHECK(exact < 50); /* P(both exact) ~ 0.24 x 0.05 */
	/* Another key, or another configuration (lateness, scope): other
	 * noise, so two releases never differ by exactly the true difference. */
	for (int v = 0; v < 3; v++) {
		struct kn_agg_opts o2 = o;
		if (v == 0)
			o2.noise_keys = k2;
		else if (v == 1)
			o2.lateness_ms += 1;
		else
			o2.scope = "another-deployment|topic";
		struct out *c = dp_run(&o2, 1000, 60, false);
		int same = 0;
		for (int i = 0; i < c->n && c->n == a->n; i++)
			same += c->r[i].users == a->r[i].users && c->r[i].events == a->r[i].events;
		KT_CHECK(c->n == a->n && same < 100);
		free(c);
	}
	/* Under dp a window that released nothing writes no summary: its
	 * existence would say someone was there. */
	struct out *lone = dp_run(&o, 1, 1, false);
	KT_CHECK(lone->n == 0 && lone->n_summaries == 0);
	free(lone);
	free(a), free(b);
	kn_keys_destroy(k1), kn_keys_destroy(k2);
}

/* A group of one person is released with probability delta_group <= delta. */
static void test_dp_singletons_rarely_released(void)
{
	struct kn_keys *k = noise_keys(3);
	struct kn_agg_opts o = dp_opts(k, 1, "1", 0.05);
	struct out *a = dp_run(&o, 4000, 1, false);
	double p = o.dp.delta_group, n = 4000;

	KT_CHECK(p <= 0.05 && o.dp.threshold >= 2);
	KT_CHECK(a->n <= n * p + 4 * sqrt(n * p) && a->n >= n * p - 4 * sqrt(n * p));
	KT_CHECK(a->suppressed_groups == 4000 - (uint64_t)a->n);
	for (int i = 0; i < a->n; i++)
		KT_CHECK(a->r[i].users >= (uint64_t)o.dp.threshold);
	free(a);
	kn_keys_destroy(k);
}

int main(void)
{
	KT_RUN(test_window_boundaries);
	KT_RUN(test_watermark_and_lateness);
	KT_RUN(test_threshold_exact_around_k);
	KT_RUN(test_large_group_exact);
	KT_RUN(test_contribution_bounds);
	KT_RUN(test_order_independence);
	KT_RUN(test_checkpoint_replay);
	KT_RUN(test_state_cap);
	KT_RUN(test_closed_early_deterministic);
	KT_RUN(test_shuffled_window_loses_nothing);
	KT_RUN(test_l0_across_definitions);
	KT_RUN(test_one_eligibility_rule);
	KT_RUN(test_one_person_cannot_move_time);
	KT_RUN(test_dp_noise_keyed_and_unbiased);
	KT_RUN(test_dp_singletons_rarely_released);
	return kt_done();
}
