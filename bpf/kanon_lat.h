/* kanon_lat.h: what the BPF program (kanon_lat.bpf.c) and its loader
 * (processor/lat.c) share: the histogram layout and the indices into it.
 * Plain C types only: this header is compiled for both sides. */
#ifndef KANON_LAT_H
#define KANON_LAT_H

/* Log-linear histograms of microseconds: values below KN_LAT_SUB get a slot
 * each; above, every power of two is split into KN_LAT_SUB equal slots, so a
 * percentile read from it is within 1/KN_LAT_SUB (12.5 %) of the truth.
 * Folding the slots of one power of two gives the log2 histogram. */
#define KN_LAT_SUB_BITS 3
#define KN_LAT_SUB	(1 << KN_LAT_SUB_BITS)
#define KN_LAT_SLOTS	(48 * KN_LAT_SUB) /* up to 2^49 us: years */

/* Histograms. The first nine are kanon's stages, in enum kn_stage order
 * (processor/trace.h), each the interval that ends at its probe. */
enum kn_lat_hist {
	KN_LAT_CONSUME,	  /* earliest Kafka timestamp -> batch_consumed */
	KN_LAT_DECODE,	  /* batch_consumed -> batch_decoded */
	KN_LAT_POLICY,	  /* -> batch_policy */
	KN_LAT_DEID,	  /* -> batch_deid */
	KN_LAT_AGGREGATE, /* -> batch_aggregated */
	KN_LAT_PRODUCE,	  /* -> batch_produced */
	KN_LAT_ACK,	  /* batch_produced -> batch_acked */
	KN_LAT_WINDOW,	  /* txn_begin -> windows_emitted */
	KN_LAT_COMMIT,	  /* windows_emitted -> txn_committed */
	KN_LAT_E2E,	  /* earliest Kafka timestamp -> batch_acked */
	KN_LAT_E2E_TXN,	  /* earliest Kafka timestamp of a transaction -> committed */
	KN_LAT_RUNQ,	  /* run-queue delay, every thread of the process */
	KN_LAT_RUNQ_LOOP, /* run-queue delay, the main (pipeline loop) thread */
	KN_LAT_BOUND,	  /* bound stage: stage_begin -> stage_committed */
	KN_LAT_RELEASE,	  /* release stage: stage_begin -> stage_committed */
	KN_LAT_HISTS
};

/* Probe firing counts, in the order the program attaches them. */
enum kn_lat_probe {
	KN_P_BATCH_CONSUMED,
	KN_P_BATCH_DECODED,
	KN_P_BATCH_POLICY,
	KN_P_BATCH_DEID,
	KN_P_BATCH_AGGREGATED,
	KN_P_BATCH_PRODUCED,
	KN_P_BATCH_ACKED,
	KN_P_TXN_BEGIN,
	KN_P_WINDOWS_EMITTED,
	KN_P_TXN_COMMITTED,
	KN_P_STAGE_BEGIN,
	KN_P_STAGE_COMMITTED,
	KN_LAT_PROBES
};

#endif
