#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "kn_alloc.h"
#include "validate.h"

struct kn_metrics {
	struct MHD_Daemon *d;
	pthread_mutex_t lock;
	struct kn_metrics_snapshot snap;
	bool have_main;
	bool have_stage[KN_METRICS_STAGES];
	struct kn_stage_snapshot stage[KN_METRICS_STAGES];
};

/* What the HTTP thread renders: copies taken under the lock. */
struct view {
	struct kn_metrics_snapshot s;
	bool have_main;
	bool have_stage[KN_METRICS_STAGES];
	struct kn_stage_snapshot st[KN_METRICS_STAGES];
};

static const char *stage_names[KN_METRICS_STAGES] = {"bound", "release"};

struct buf {
	char *p;
	size_t n, cap;
};

static void out(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->n)
			break;
		char *np = realloc(b->p, b->cap * 2);
		if (!np)
			return;
		b->p = np;
		b->cap *= 2;
	}
	b->n += (size_t)n;
}

static void counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
	out(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", name, help, name, name, v);
}

static void gauge(struct buf *b, const char *name, const char *help, uint64_t v)
{
	out(b, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help, name, name, v);
}

static void gauge_f(struct buf *b, const char *name, const char *help, double v)
{
	out(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

/* A log2-microsecond histogram in seconds; stage labels one series of a
 * family (the family's HELP and TYPE only before the first). */
static void histogram(struct buf *b, const char *name, const char *help, const char *stage,
		      const struct kn_hist *h, bool first)
{
	char lab[64] = "";
	uint64_t cum = 0;

	if (first)
		out(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	if (stage)
		snprintf(lab, sizeof(lab), "stage=\"%s\",", stage);
	for (int i = 0; i < KN_LAT_BUCKETS; i++) {
		cum += h->bucket[i];
		if (i == KN_LAT_BUCKETS - 1)
			out(b, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, lab, cum);
		else
			out(b, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, lab,
			    (double)(1ULL << i) / 1e6, cum);
	}
	if (stage)
		snprintf(lab, sizeof(lab), "{stage=\"%s\"}", stage);
	out(b, "%s_sum%s %g\n%s_count%s %" PRIu64 "\n", name, lab, (double)h->sum_us / 1e6, name,
	    lab, h->count);
}

static void render_stages(const struct view *v, struct buf *b);

/* The kanon_aggregate_* totals over the stages this process runs. */
static void aggregate_totals(const struct view *v, struct kn_metrics_snapshot *t)
{
	for (int i = 0; i < KN_METRICS_STAGES; i++) {
		const struct kn_stage_snapshot *st = &v->st[i];
		if (!v->have_stage[i])
			continue;
		t->aggregating = true;
		t->agg_late += st->late;
		t->agg_bounded += st->bounded;
		t->agg_suppressed_groups += st->suppressed_groups;
		t->agg_suppressed_events += st->suppressed_events;
		t->agg_windows_released += st->windows_released;
		t->agg_epsilon_spent += st->epsilon_spent;
		t->open_windows += st->open_windows;
		t->state_bytes += st->state_bytes;
		t->transactions += st->transactions;
		t->transactions_aborted += st->aborted;
		if (i == KN_METRICS_RELEASE)
			t->agg_rows += st->written;
	}
}

static void render(const struct view *v, struct buf *b)
{
	struct kn_metrics_snapshot tot = v->s, *s = &tot;

	aggregate_totals(v, s);
	counter(b, "kanon_records_consumed_total", "Input records read.", s->pipe.in);
	counter(b, "kanon_records_produced_total", "De-identified events written.", s->produced);
	out(b, "# HELP kanon_records_dead_lettered_total Input records dead-lettered, by reason.\n"
	       "# TYPE kanon_records_dead_lettered_total counter\n");
	for (int r = 0; r < KN_DEAD_REASONS; r++)
		out(b, "kanon_records_dead_lettered_total{reason=\"%s\"} %" PRIu64 "\n",
		    kn_dead_reason_name(r), s->pipe.dead[r]);
	out(b, "# HELP kanon_records_dropped_total Input records withheld from every output by "
	       "the privacy policy, by reason.\n# TYPE kanon_records_dropped_total counter\n");
	for (int r = 0; r < KN_DROP_REASONS; r++)
		out(b, "kanon_records_dropped_total{reason=\"%s\"} %" PRIu64 "\n",
		    kn_drop_reason_name(r), s->pipe.dropped[r]);
	counter(b, "kanon_minors_total", "Events of minors (identifiers removed).",
		s->policy.minors);
	counter(b, "kanon_sensitive_total", "Events withheld as sensitive.", s->policy.sensitive);
	counter(b, "kanon_geo_withheld_total", "Coordinates dropped for lack of location consent.",
		s->pipe.geo_withheld);
	gauge(b, "kanon_assigned_partitions", "Input partitions assigned.", (uint64_t)s->assigned);
	if (s->consumer_lag >= 0)
		gauge(b, "kanon_consumer_lag", "Messages behind the input partitions' ends.",
		      (uint64_t)s->consumer_lag);
	if (s->registry) {
		gauge(b, "kanon_schema_registry_waiting_seconds",
		      "How long records have waited for the schema registry to answer (0: not "
		      "waiting).",
		      (uint64_t)(s->registry_waiting_ms / 1000));
		counter(b, "kanon_schema_ids_learned_total",
			"Input schema ids learned from the registry (usable or dead-lettered).",
			s->schema_ids_learned);
	}
	if (s->last_progress_ms)
		gauge(b, "kanon_seconds_since_progress",
		      "Seconds since a record was last delivered or offsets committed.",
		      (uint64_t)((kn_mono_ms() - s->last_progress_ms) / 1000));
	if (s->aggregating) {
		counter(b, "kanon_aggregate_late_events_total", "Events dropped as late.",
			s->agg_late);
		counter(b, "kanon_aggregate_bounded_events_total",
			"Events dropped by the contribution bounds.", s->agg_bounded);
		counter(b, "kanon_aggregate_rows_total", "Aggregate rows released.", s->agg_rows);
		counter(b, "kanon_aggregate_suppressed_groups_total",
			"Groups not released (exact: for operators, never published).",
			s->agg_suppressed_groups);
		counter(b, "kanon_aggregate_suppressed_events_total",
			"Events in groups not released (exact: for operators, never published).",
			s->agg_suppressed_events);
		counter(b, "kanon_aggregate_windows_released_total",
			"Windows closed by the release (once per release partition that held "
			"groups of the window).",
			s->agg_windows_released);
		if (s->agg_dp) {
			gauge_f(b, "kanon_dp_epsilon_per_window",
				"Epsilon one person spends per released window.", s->agg_epsilon);
			gauge_f(b, "kanon_dp_delta_per_window",
				"Delta one person spends per released window.", s->agg_delta);
			gauge_f(b, "kanon_dp_epsilon_spent",
				"Windows released x epsilon: an upper bound of the budget spent "
				"per person (a window counts once per release partition that "
				"held groups of it; the spend is once per window).",
				s->agg_epsilon_spent);
		}
		gauge(b, "kanon_aggregate_open_windows", "Open windows.", s->open_windows);
		gauge(b, "kanon_aggregate_state_bytes", "Open-window state.", s->state_bytes);
		counter(b, "kanon_transactions_total", "Committed transactions.", s->transactions);
		counter(b, "kanon_transactions_aborted_total",
			"Transactions the broker aborted (a rebalance, a timeout, a fenced "
			"epoch): their input is read again.",
			s->transactions_aborted);
	}
	histogram(b, "kanon_batch_duration_seconds", "Time to process one consumed batch.", NULL,
		  &s->batch, true);
	counter(b, "kanon_batches_total",
		"Non-empty batches consumed (one batch_consumed probe each).", s->trace.batches);
	for (int st = 0; st < KN_STAGES; st++)
		histogram(b, "kanon_stage_duration_seconds",
			  "Time a batch spends in each stage (consume: from its earliest Kafka "
			  "timestamp; window and commit: per transaction).",
			  kn_stage_name(st), &s->trace.stage[st], st == 0);
	histogram(b, "kanon_end_to_end_seconds",
		  "Earliest Kafka timestamp of a batch to its last delivery acknowledgement.", NULL,
		  &s->trace.end_to_end, true);
	render_stages(v, b);
}

/* A family with one series per stage this process runs. */
static void stage_family(const struct view *v, struct buf *b, const char *name, const char *type,
			 const char *help, size_t field)
{
	bool first = true;

	for (int i = 0; i < KN_METRICS_STAGES; i++) {
		if (!v->have_stage[i])
			continue;
		if (first)
			out(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
		first = false;
		uint64_t val = *(const uint64_t *)((const char *)&v->st[i] + field);
		out(b, "%s{stage=\"%s\"} %" PRIu64 "\n", name, stage_names[i], val);
	}
}

#define SF(f) offsetof(struct kn_stage_snapshot, f)

static void render_stages(const struct view *v, struct buf *b)
{
	bool any = false;

	stage_family(v, b, "kanon_stage_records_total", "counter",
		     "Internal records read by an aggregation stage.", SF(records));
	stage_family(v, b, "kanon_stage_dead_lettered_total", "counter",
		     "Internal records refused (written to the dead-letter topic).", SF(dead));
	stage_family(v, b, "kanon_stage_written_total", "counter",
		     "Records written downstream: partial tallies (bound), rows (release).",
		     SF(written));
	stage_family(v, b, "kanon_stage_transactions_total", "counter",
		     "Transactions committed by a stage.", SF(transactions));
	stage_family(v, b, "kanon_stage_transactions_aborted_total", "counter",
		     "Transactions of a stage the broker aborted (their input is read again).",
		     SF(aborted));
	stage_family(v, b, "kanon_stage_open_windows", "gauge", "Windows open in a stage.",
		     SF(open_windows));
	for (int i = 0; i < KN_METRICS_STAGES; i++) {
		const struct kn_stage_snapshot *st = &v->st[i];
		if (!v->have_stage[i])
			continue;
		if (!any)
			out(b,
			    "# HELP kanon_stage_assigned_partitions Internal partitions assigned "
			    "to a stage.\n# TYPE kanon_stage_assigned_partitions gauge\n");
		any = true;
		out(b, "kanon_stage_assigned_partitions{stage=\"%s\"} %d\n", stage_names[i],
		    st->assigned);
	}
	any = false;
	for (int i = 0; i < KN_METRICS_STAGES; i++) {
		const struct kn_stage_snapshot *st = &v->st[i];
		if (!v->have_stage[i] || st->lag < 0)
			continue;
		if (!any)
			out(b,
			    "# HELP kanon_stage_consumer_lag Messages behind the ends of a stage's "
			    "internal partitions.\n# TYPE kanon_stage_consumer_lag gauge\n");
		any = true;
		out(b, "kanon_stage_consumer_lag{stage=\"%s\"} %" PRId64 "\n", stage_names[i],
		    st->lag);
	}
	any = false;
	for (int i = 0; i < KN_METRICS_STAGES; i++) {
		const struct kn_stage_snapshot *st = &v->st[i];
		for (int w = 0; v->have_stage[i] && w < st->n_waiting; w++) {
			if (!any)
				out(b, "# HELP kanon_stage_window_waiting 1 for each upstream "
				       "partition "
				       "the oldest open window of a stage waits for (bound: input "
				       "partitions, release: bound partitions).\n"
				       "# TYPE kanon_stage_window_waiting gauge\n");
			any = true;
			out(b, "kanon_stage_window_waiting{stage=\"%s\",upstream=\"%d\"} 1\n",
			    stage_names[i], st->waiting[w]);
		}
	}
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
			     size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* One loop's verdict, now: its own view, then progress (which the loop
 * cannot report while it is blocked). */
static bool judge(bool healthy, const char *reason, bool pending, int64_t stall_ms,
		  int64_t last_progress_ms, const char *who, struct buf *b)
{
	int64_t idle = kn_mono_ms() - last_progress_ms;

	if (!healthy) {
		out(b, "%s%s\n", who, reason);
		return false;
	}
	if (pending && stall_ms && last_progress_ms && idle > stall_ms) {
		out(b,
		    "%sno progress: nothing delivered or committed for %" PRId64
		    " s while input waits (broker unreachable?)\n",
		    who, idle / 1000);
		return false;
	}
	return true;
}

/* /healthz: every loop of the process must be well. */
static bool health(const struct view *v, struct buf *b)
{
	const struct kn_metrics_snapshot *s = &v->s;
	bool ok = true, any = v->have_main;

	if (v->have_main)
		ok = judge(s->healthy, s->unhealthy_reason, s->work_pending, s->stall_ms,
			   s->last_progress_ms, "", b);
	for (int i = 0; i < KN_METRICS_STAGES; i++) {
		const struct kn_stage_snapshot *st = &v->st[i];
		char who[32];
		if (!v->have_stage[i])
			continue;
		any = true;
		snprintf(who, sizeof(who), "%s stage: ", stage_names[i]);
		ok = judge(st->healthy, st->unhealthy_reason, st->work_pending, st->stall_ms,
			   st->last_progress_ms, who, b) &&
		     ok;
	}
	if (!any) {
		out(b, "%s\n", s->unhealthy_reason); /* "starting" */
		return false;
	}
	if (ok)
		out(b, "ok\n");
	return ok;
}

static enum MHD_Result answer(struct MHD_Connection *c, const char *method, const char *url,
			      const struct view *v, struct buf *bp);

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct kn_metrics *m = cls;
	struct view *v = malloc(sizeof(*v));
	struct buf b = {malloc(16384), 0, 16384};
	(void)version, (void)upload, (void)upload_size, (void)con_cls;

	if (!b.p || !v) {
		free(b.p);
		free(v);
		return MHD_NO;
	}
	b.p[0] = '\0';
	pthread_mutex_lock(&m->lock);
	v->s = m->snap;
	v->have_main = m->have_main;
	memcpy(v->have_stage, m->have_stage, sizeof(v->have_stage));
	memcpy(v->st, m->stage, sizeof(v->st));
	pthread_mutex_unlock(&m->lock);
	enum MHD_Result res = answer(c, method, url, v, &b);
	free(v);
	return res;
}

static enum MHD_Result answer(struct MHD_Connection *c, const char *method, const char *url,
			      const struct view *v, struct buf *bp)
{
	struct buf b = *bp;

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		out(&b, "method not allowed\n");
		return reply(c, 405, "text/plain", b.p, b.n);
	}
	if (!strcmp(url, "/metrics")) {
		render(v, &b);
		return reply(c, 200, "text/plain; version=0.0.4", b.p, b.n);
	}
	if (!strcmp(url, "/healthz")) {
		bool ok = health(v, &b);
		return reply(c, ok ? 200 : 503, "text/plain", b.p, b.n);
	}
	out(&b, "not found: try /metrics or /healthz\n");
	return reply(c, 404, "text/plain", b.p, b.n);
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss, char *errstr, size_t errsz)
{
	char host[256], *end = NULL;
	const char *colon = strrchr(addr, ':');
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	size_t hl = colon ? (size_t)(colon - addr) : 0;

	memset(ss, 0, sizeof(*ss));
	if (!colon || !(colon[1] >= '0' && colon[1] <= '9') || *end || port <= 0 || port > 65535 ||
	    hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	if (host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1)
			return 0;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (!strcmp(host, "localhost"))
			snprintf(host, sizeof(host), "127.0.0.1");
		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1)
			return 0;
	}
bad:
	snprintf(errstr, errsz,
		 "--metrics-addr '%s': expected IPv4:PORT, localhost:PORT or [IPv6]:PORT", addr);
	return -EINVAL;
}

int kn_metrics_check_addr(const char *addr, char *errstr, size_t errstr_size)
{
	struct sockaddr_storage ss;

	return parse_addr(addr, &ss, errstr, errstr_size);
}

int kn_metrics_probe_addr(const char *addr, char *errstr, size_t errstr_size)
{
	struct sockaddr_storage ss;
	int err = parse_addr(addr, &ss, errstr, errstr_size), fd;

	if (err)
		return err;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0; /* nothing learnt: run will say */
	if (bind(fd, (struct sockaddr *)&ss,
		 ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					  : sizeof(struct sockaddr_in))) {
		err = -errno;
		snprintf(errstr, errstr_size, "metrics: cannot listen on %s now: %s", addr,
			 strerror(errno));
	}
	close(fd);
	return err;
}

int kn_metrics_start(const char *addr, struct kn_metrics **out_m, char *errstr, size_t errstr_size)
{
	struct sockaddr_storage ss;
	struct kn_metrics *m;
	int err = parse_addr(addr, &ss, errstr, errstr_size);

	*out_m = NULL;
	if (err)
		return err;
	m = kn_calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	snprintf(m->snap.unhealthy_reason, sizeof(m->snap.unhealthy_reason), "starting");
	m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
					(ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				0, NULL, NULL, handle, m, MHD_OPTION_SOCK_ADDR, &ss,
				MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!m->d) {
		snprintf(errstr, errstr_size, "metrics: cannot listen on %s (in use?)", addr);
		pthread_mutex_destroy(&m->lock);
		kn_free(m);
		return -EADDRINUSE;
	}
	*out_m = m;
	return 0;
}

void kn_metrics_publish(struct kn_metrics *m, const struct kn_metrics_snapshot *s)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->snap = *s;
	m->have_main = true;
	pthread_mutex_unlock(&m->lock);
}

void kn_metrics_publish_stage(struct kn_metrics *m, enum kn_metrics_stage st,
			      const struct kn_stage_snapshot *s)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stage[st] = *s;
	m->have_stage[st] = true;
	pthread_mutex_unlock(&m->lock);
}

void kn_metrics_stop(struct kn_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->d);
	pthread_mutex_destroy(&m->lock);
	kn_free(m);
}
