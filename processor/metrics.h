/* metrics: a running kanon seen from outside. `--metrics-addr HOST:PORT`
 * serves, with libmicrohttpd on its own thread:
 *   /metrics  Prometheus text exposition (version 0.0.4)
 *   /healthz  200 "ok", or 503 with the reason (no partition assigned,
 *             assignment lost, producer fatally errored, transaction failed)
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
	uint64_t agg_late, agg_bounded, agg_rows, agg_suppressed_groups, open_windows, state_bytes;
	uint64_t transactions;
	int assigned;
	int64_t consumer_lag; /* -1: unknown */
	bool healthy;
	char unhealthy_reason[160];
};

struct kn_metrics;

/* Starts serving on addr ("127.0.0.1:9464", "[::1]:9464"). Returns 0 or a
 * negative errno with errstr set. */
int kn_metrics_start(const char *addr, struct kn_metrics **out, char *errstr, size_t errstr_size);
void kn_metrics_publish(struct kn_metrics *m, const struct kn_metrics_snapshot *s);
/* Stops the server and frees; accepts NULL. */
void kn_metrics_stop(struct kn_metrics *m);

#endif
