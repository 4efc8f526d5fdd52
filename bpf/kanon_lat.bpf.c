// SPDX-License-Identifier: GPL-2.0
/* kanon_lat.bpf.c: per-stage latency of a running kanon, from its USDT
 * probes (processor/trace.h), and the run-queue delay of its threads.
 *
 * Every batch probe carries (id, count, earliest Kafka timestamp in ms). The
 * time of the last boundary each batch crossed is kept by id; the next
 * boundary adds the difference to that stage's histogram. Batches already
 * under way when the program attached are skipped until their next
 * batch_consumed. Histograms are cumulative; the loader prints differences
 * between reads, so it never races the program by clearing them. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/usdt.bpf.h>

#include "kanon_lat.h"

#define TASK_RUNNING 0
#define CYCLE_BIT    (1ULL << 63) /* transaction cycle ids share the map */
#define STAGE_BIT    (1ULL << 62) /* and so do the aggregation stages' cycle ids */

const volatile __u32 targ_tgid = 0;
const volatile __s64 mono_to_real_ns = 0; /* CLOCK_REALTIME - CLOCK_MONOTONIC */

__u64 hist[KN_LAT_HISTS][KN_LAT_SLOTS] = {};
__u64 probes[KN_LAT_PROBES] = {};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);   /* batch id, or cycle id | CYCLE_BIT */
	__type(value, __u64); /* ktime of its last boundary */
} spans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);   /* thread id */
	__type(value, __u64); /* ktime it became runnable */
} enqueued SEC(".maps");

static __always_inline __u32 log2_32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	return r | (v >> 1);
}

static __always_inline __u32 log2_64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_32(hi) + 32 : log2_32((__u32)v);
}

static __always_inline void observe(__u32 h, __s64 us)
{
	__u64 v = us < 0 ? 0 : (__u64)us;
	__u32 s;

	if (v < KN_LAT_SUB) {
		s = (__u32)v;
	} else {
		__u32 e = log2_64(v);
		s = (e - KN_LAT_SUB_BITS + 1) * KN_LAT_SUB +
		    ((__u32)(v >> (e - KN_LAT_SUB_BITS)) & (KN_LAT_SUB - 1));
	}
	if (s >= KN_LAT_SLOTS)
		s = KN_LAT_SLOTS - 1;
	if (h < KN_LAT_HISTS)
		__sync_fetch_and_add(&hist[h][s], 1);
}

static __always_inline __s64 since_kafka_ts_us(__u64 now, __s64 ts_ms)
{
	/* BPF has no signed division: divide the (positive) wall clock. */
	return (__s64)((__u64)((__s64)now + mono_to_real_ns) / 1000) - ts_ms * 1000;
}

static __always_inline void count(__u32 p)
{
	if (p < KN_LAT_PROBES)
		__sync_fetch_and_add(&probes[p], 1);
}

/* A span (batch or cycle) crosses a boundary: the interval since its last
 * one goes to histogram h (h < 0: none). last: the span ends here. */
static __always_inline void boundary(__u64 key, __s32 h, bool last)
{
	__u64 now = bpf_ktime_get_ns(), *t = bpf_map_lookup_elem(&spans, &key);

	if (!t)
		return;
	if (h >= 0)
		observe((__u32)h, (__s64)((now - *t) / 1000));
	if (last)
		bpf_map_delete_elem(&spans, &key);
	else
		*t = now;
}

static __always_inline void begin(__u64 key, __s64 ts_ms, __s32 h)
{
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&spans, &key, &now, BPF_ANY);
	if (h >= 0 && ts_ms > 0)
		observe((__u32)h, since_kafka_ts_us(now, ts_ms));
}

SEC("usdt")
int BPF_USDT(batch_consumed, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_BATCH_CONSUMED);
	begin(id, ts, KN_LAT_CONSUME);
	return 0;
}

SEC("usdt")
int BPF_USDT(batch_decoded, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_BATCH_DECODED);
	boundary(id, KN_LAT_DECODE, false);
	return 0;
}

SEC("usdt")
int BPF_USDT(batch_policy, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_BATCH_POLICY);
	boundary(id, KN_LAT_POLICY, false);
	return 0;
}

SEC("usdt")
int BPF_USDT(batch_deid, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_BATCH_DEID);
	boundary(id, KN_LAT_DEID, false);
	return 0;
}

SEC("usdt")
int BPF_USDT(batch_aggregated, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_BATCH_AGGREGATED);
	boundary(id, KN_LAT_AGGREGATE, false);
	return 0;
}

SEC("usdt")
int BPF_USDT(batch_produced, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_BATCH_PRODUCED);
	boundary(id, KN_LAT_PRODUCE, false);
	return 0;
}

SEC("usdt")
int BPF_USDT(batch_acked, __u64 id, __u64 n, __s64 ts)
{
	__u64 key = id;

	count(KN_P_BATCH_ACKED);
	/* End to end only for batches seen whole, like the stages. */
	if (ts > 0 && bpf_map_lookup_elem(&spans, &key))
		observe(KN_LAT_E2E, since_kafka_ts_us(bpf_ktime_get_ns(), ts));
	boundary(id, KN_LAT_ACK, true);
	return 0;
}

SEC("usdt")
int BPF_USDT(txn_begin, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_TXN_BEGIN);
	begin(id | CYCLE_BIT, 0, -1);
	return 0;
}

SEC("usdt")
int BPF_USDT(windows_emitted, __u64 id, __u64 n, __s64 ts)
{
	count(KN_P_WINDOWS_EMITTED);
	boundary(id | CYCLE_BIT, KN_LAT_WINDOW, false);
	return 0;
}

SEC("usdt")
int BPF_USDT(txn_committed, __u64 id, __u64 n, __s64 ts)
{
	__u64 key = id | CYCLE_BIT;

	count(KN_P_TXN_COMMITTED);
	if (ts > 0 && bpf_map_lookup_elem(&spans, &key))
		observe(KN_LAT_E2E_TXN, since_kafka_ts_us(bpf_ktime_get_ns(), ts));
	boundary(key, KN_LAT_COMMIT, true);
	return 0;
}

/* The aggregation stages' commit cycles (bound, release), from their threads. */
SEC("usdt")
int BPF_USDT(stage_begin, __u64 id, __u64 stage, __s64 n)
{
	count(KN_P_STAGE_BEGIN);
	begin(id | STAGE_BIT, 0, -1);
	return 0;
}

SEC("usdt")
int BPF_USDT(stage_committed, __u64 id, __u64 stage, __s64 n)
{
	count(KN_P_STAGE_COMMITTED);
	boundary(id | STAGE_BIT, stage == 1 ? KN_LAT_BOUND : KN_LAT_RELEASE, true);
	return 0;
}

/* ---- run-queue delay (as libbpf-tools' runqlat, for one process) ---- */

struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

static __always_inline void enqueue(struct task_struct *t)
{
	__u32 tid = BPF_CORE_READ(t, pid);
	__u64 now;

	if (BPF_CORE_READ(t, tgid) != targ_tgid || !tid)
		return;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&enqueued, &tid, &now, BPF_ANY);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	enqueue(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	enqueue(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 tid;
	__u64 *t;

	/* Preempted while runnable: it waits in the queue from now. */
	if (task_state(prev) == TASK_RUNNING)
		enqueue(prev);
	if (BPF_CORE_READ(next, tgid) != targ_tgid)
		return 0;
	tid = BPF_CORE_READ(next, pid);
	t = bpf_map_lookup_elem(&enqueued, &tid);
	if (!t)
		return 0;
	__s64 us = (__s64)((bpf_ktime_get_ns() - *t) / 1000);
	observe(KN_LAT_RUNQ, us);
	if (tid == targ_tgid)
		observe(KN_LAT_RUNQ_LOOP, us);
	bpf_map_delete_elem(&enqueued, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
