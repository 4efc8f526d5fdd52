/* lat: `kanon lat`, the user-space side of bpf/kanon_lat.bpf.c. Attaches to
 * a running kanon's USDT probes (processor/trace.h) and to the scheduler's
 * tracepoints, and prints per-stage latency histograms with percentiles, the
 * end-to-end latency and the run-queue delay of the process's threads.
 *
 * Follows libbpf-tools (funclatency, runqlat): the BPF program, a header
 * they share (bpf/kanon_lat.h), and this loader with a generated skeleton. */
#ifndef KN_LAT_H
#define KN_LAT_H

/* argv[0] is "lat". Returns the process exit status: 0, 1 (could not
 * attach: what is missing and how to fix it is printed), 2 (usage). */
int kn_lat_main(int argc, char **argv);

#endif
