/* metrics: a running kanon seen from outside. `--metrics-addr HOST:PORT`
 * serves, with libmicrohttpd on its own thread:
 *   /metrics  Prometheus text exposition (version 0.0.4)
 *   /healthz  200 "ok", or 503 with the reason: no partition assigned, a
 *             fatal producer or consumer error, a failed transaction, fenced
 *             by another instance, or no progress: input is waiting (records
 *             in flight or consumer lag) and nothing was delivered or
 *             committed for health.stall_timeout. The last is judged when
 *             asked, so it turns 503 even while the run loop is blocked.
 * The run loop publishes a snapshot after every batch (one memcpy under a
 * mutex); the HTTP thread renders only snapshots, so it never touches the
 * pipeline's state. */
#ifndef KN_METRICS_H
#define KN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "pipeline.h"
#include "policy.h"
#include "trace.h"

struct kn_metrics_snapshot {
	struct kn_pipeline_stats pipe;
	struct kn_policy_stats policy;
	uint64_t produced, dead_lettered;
	struct kn_hist batch; /* consumed -> produced, per batch */
	struct kn_trace_stats trace;
	/* aggregation (exactly-once mode) */
	bool aggregating;
	uint64_t agg_late, agg_bounded, agg_rows, agg_suppressed_groups, agg_suppressed_events;
	uint64_t open_windows, state_bytes;
	bool agg_dp;		       /* the release is differentially private */
	double agg_epsilon, agg_delta; /* per person per window */
	double agg_epsilon_spent;      /* summed over the windows released */
	uint64_t agg_windows_released;
	uint64_t transactions;
	uint64_t transactions_aborted; /* aborted by the broker, their work redone */
	int assigned;
	int64_t consumer_lag;	  /* -1: unknown */
	int64_t last_progress_ms; /* mono ms of the last delivery or commit */
	bool work_pending;	  /* records in flight or consumer lag */
	int64_t stall_ms;	  /* health.stall_timeout */
	bool healthy;		  /* as far as the run loop knows */
	char unhealthy_reason[160];
	/* schema registry mode (engine/sreg.h) */
	bool registry;
	int64_t registry_waiting_ms; /* records have waited on it this long; 0: none */
	uint64_t schema_ids_learned; /* framing ids learned from it, usable or not */
};

/* One aggregation stage of the topology (engine/stage.h) run by this
 * process: its own series, labelled stage="bound" or stage="release", and
 * its share of the kanon_aggregate_* totals. */
enum kn_metrics_stage {
	KN_METRICS_BOUND,
	KN_METRICS_RELEASE,
	KN_METRICS_STAGES
};

#define KN_METRICS_WAITING_MAX 32

struct kn_stage_snapshot {
	int assigned;	  /* internal partitions */
	int64_t lag;	  /* -1: unknown */
	uint64_t records; /* internal records read */
	uint64_t dead;	  /* internal records refused (dead letters) */
	uint64_t late, bounded, written, summaries, transactions, aborted;
	uint64_t suppressed_groups, suppressed_events, windows_released;
	double epsilon_spent;
	uint64_t open_windows, state_bytes;
	/* The upstream partitions the oldest open window waits for. */
	int n_waiting;
	int waiting[KN_METRICS_WAITING_MAX];
	int64_t last_progress_ms;
	bool work_pending;
	int64_t stall_ms;
	bool healthy;
	char unhealthy_reason[160];
};

struct kn_metrics;

/* Checks addr's form (IPv4:PORT, [IPv6]:PORT, localhost:PORT) without
 * binding. Returns 0 or -EINVAL with errstr set. */
int kn_metrics_check_addr(const char *addr, char *errstr, size_t errstr_size);
/* Whether addr can be listened on now (a bind, then closed): 0, or a
 * negative errno (-EADDRINUSE: another process holds it) with errstr set. */
int kn_metrics_probe_addr(const char *addr, char *errstr, size_t errstr_size);
/* Starts serving on addr ("127.0.0.1:9464", "[::1]:9464"). Returns 0 or a
 * negative errno with errstr set. */
int kn_metrics_start(const char *addr, struct kn_metrics **out, char *errstr, size_t errstr_size);
/* The run loop's snapshot (the de-identification stage); a process that
 * never publishes one (--role bound|release) is judged by its stages. */
void kn_metrics_publish(struct kn_metrics *m, const struct kn_metrics_snapshot *s);
void kn_metrics_publish_stage(struct kn_metrics *m, enum kn_metrics_stage st,
			      const struct kn_stage_snapshot *s);
/* Stops the server and frees; accepts NULL. */
void kn_metrics_stop(struct kn_metrics *m);

#endif
