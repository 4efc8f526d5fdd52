#include "lat.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "kanon_lat.h"
#include "kanon_lat.skel.h"
#include "trace.h"

_Static_assert(KN_LAT_CONSUME == (int)KN_STAGE_CONSUME && KN_LAT_COMMIT == (int)KN_STAGE_COMMIT &&
		       KN_LAT_E2E == (int)KN_STAGES,
	       "bpf/kanon_lat.h stages must follow enum kn_stage");

static const char lat_usage[] =
	"usage: kanon lat --pid PID [--interval SECONDS] [--count N] [--json] [--verbose]\n"
	"\n"
	"Attaches to a running kanon (eBPF: its USDT probes and the scheduler's\n"
	"tracepoints) and prints, per interval:\n"
	"  - the latency of every pipeline stage of a batch (log2 histograms of\n"
	"    microseconds, with p50/p90/p99/p99.9): consume (earliest Kafka timestamp\n"
	"    to batch in hand), decode, policy, deid, aggregate, produce, ack (to the\n"
	"    last delivery report) and, per transaction, window and commit;\n"
	"  - end to end: a batch's earliest Kafka timestamp to its last delivery\n"
	"    acknowledgement (and, exactly-once, to the transaction's commit);\n"
	"  - the run-queue delay of the process's threads and of its pipeline thread;\n"
	"  - with aggregates, each aggregation stage's commit cycle (bound, release:\n"
	"    closing due windows, writing, committing), from whichever process runs\n"
	"    that stage (run.role).\n"
	"Stages that fired no probe are listed as not seen (aggregate, window and\n"
	"commit exist only with aggregates configured).\n"
	"\n"
	"  -p, --pid PID          the kanon process (required)\n"
	"  -i, --interval SECONDS print every SECONDS (default: once, at SIGINT/SIGTERM)\n"
	"  -n, --count N          stop after N intervals\n"
	"  -j, --json             one JSON object per interval, one per line\n"
	"  -v, --verbose          libbpf's own messages\n"
	"\n"
	"Needs root: CAP_SYS_ADMIN (the probes have semaphores; CAP_BPF with\n"
	"CAP_PERFMON may do on kernels that allow those uprobes to them) and\n"
	"CAP_SYS_PTRACE (kanon makes itself non-dumpable); kernel BTF\n"
	"(/sys/kernel/btf/vmlinux) and uprobes: the kernel's uprobe PMU, or else\n"
	"tracefs mounted at /sys/kernel/tracing. Exit status: 0, 1 (could not attach:\n"
	"the reason is printed), 2 (usage).\n";

struct lat_opts {
	pid_t pid;
	double interval; /* 0: until a signal */
	long count;	 /* 0: unlimited */
	bool json, verbose;
};

struct snap {
	uint64_t hist[KN_LAT_HISTS][KN_LAT_SLOTS];
	uint64_t probes[KN_LAT_PROBES];
};

static volatile sig_atomic_t lat_stop;

static void on_sig(int sig)
{
	(void)sig;
	lat_stop = 1;
}

static bool lat_verbose;

/* libbpf's messages only with --verbose: without, its warnings would
 * repeat, less plainly, what the errors below explain. */
static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return lat_verbose ? vfprintf(stderr, fmt, ap) : 0;
}

/* ---- what the kernel and this process must offer ---- */

static bool has_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return eff >> cap & 1;
}

/* access(2) judges by the real uid and ignores the capabilities of a
 * non-root caller; AT_EACCESS judges as open() will, by the effective
 * credentials, so a capability-only `kanon lat` is not refused here. */
static int readable(const char *path, int mode)
{
	return faccessat(AT_FDCWD, path, mode, AT_EACCESS);
}

static int preflight(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (kill(pid, 0) && errno == ESRCH) {
		fprintf(stderr, "kanon lat: no process %d\n", (int)pid);
		return -1;
	}
	/* CAP_SYS_ADMIN = 21, CAP_PERFMON = 38, CAP_BPF = 39 */
	if (!has_cap(21) && !(has_cap(38) && has_cap(39))) {
		fprintf(stderr,
			"kanon lat: needs root, or the capabilities CAP_BPF and "
			"CAP_PERFMON (some kernels also want CAP_SYS_ADMIN for probes with "
			"semaphores, and CAP_SYS_PTRACE to read a non-dumpable kanon), to load "
			"BPF programs: run it with sudo\n");
		return -1;
	}
	if (readable("/sys/kernel/btf/vmlinux", R_OK)) {
		fprintf(stderr,
			"kanon lat: kernel BTF is missing (/sys/kernel/btf/vmlinux): it needs a "
			"kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian 12's kernels are); "
			"install one and reboot\n");
		return -1;
	}
	if (readable("/sys/bus/event_source/devices/uprobe/type", R_OK) &&
	    readable("/sys/kernel/tracing/uprobe_events", W_OK) &&
	    readable("/sys/kernel/debug/tracing/uprobe_events", W_OK)) {
		fprintf(stderr, "kanon lat: this kernel has no uprobe PMU, so uprobes go through "
				"tracefs, and tracefs is not mounted: mount it with\n"
				"  mount -t tracefs nodev /sys/kernel/tracing\n");
		return -1;
	}
	if (readable(path, R_OK)) {
		int e = errno;
		fprintf(stderr, "kanon lat: cannot read %s: %s%s\n", path, strerror(e),
			e == EACCES || e == EPERM
				? " (kanon makes itself non-dumpable: reading it takes "
				  "CAP_SYS_PTRACE; run kanon lat as root, with sudo)"
				: "");
		return -1;
	}
	return 0;
}

/* ---- attaching ---- */

static const char *const probe_names[KN_LAT_PROBES] = {
	"batch_consumed",   "batch_decoded",  "batch_policy", "batch_deid",
	"batch_aggregated", "batch_produced", "batch_acked",  "txn_begin",
	"windows_emitted",  "txn_committed",  "stage_begin",  "stage_committed",
};

#define PROBE_PROGS(s)                                                                             \
	{                                                                                          \
		X(s, batch_consumed), X(s, batch_decoded), X(s, batch_policy), X(s, batch_deid),   \
			X(s, batch_aggregated), X(s, batch_produced), X(s, batch_acked),           \
			X(s, txn_begin), X(s, windows_emitted), X(s, txn_committed),               \
			X(s, stage_begin), X(s, stage_committed),                                  \
	}

static struct bpf_program *probe_prog(struct kanon_lat_bpf *s, int i)
{
#define X(s, name) s->progs.name
	struct bpf_program *const p[KN_LAT_PROBES] = PROBE_PROGS(s);
#undef X
	return p[i];
}

/* Where the skeleton keeps a program's link (it destroys them). */
static struct bpf_link **probe_link(struct kanon_lat_bpf *s, int i)
{
#define X(s, name) &s->links.name
	struct bpf_link **const l[KN_LAT_PROBES] = PROBE_PROGS(s);
#undef X
	return l[i];
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int attach(struct kanon_lat_bpf *s, pid_t pid)
{
	char exe[64];
	int err;

	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
	for (int i = 0; i < KN_LAT_PROBES; i++) {
		struct bpf_link *l = bpf_program__attach_usdt(probe_prog(s, i), pid, exe, "kanon",
							      probe_names[i], NULL);
		*probe_link(s, i) = l;
		if (!l) {
			err = -errno;
			if (err == -ENOENT)
				fprintf(stderr,
					"kanon lat: process %d has no kanon:%s probe: is it kanon "
					"(0.1 or later)?\n",
					(int)pid, probe_names[i]);
			else
				fprintf(stderr, "kanon lat: attaching to kanon:%s in %d: %s%s\n",
					probe_names[i], (int)pid, strerror(-err),
					err == -EPERM || err == -EACCES
						? " (uprobes with semaphores take CAP_SYS_ADMIN "
						  "here; run kanon lat as root, with sudo)"
						: "");
			return err;
		}
	}
	if ((err = kanon_lat_bpf__attach(s))) {
		fprintf(stderr, "kanon lat: attaching the scheduler tracepoints: %s\n",
			strerror(-err));
		return err;
	}
	return 0;
}

static struct kanon_lat_bpf *open_and_load(pid_t pid)
{
	struct kanon_lat_bpf *s = kanon_lat_bpf__open();
	int err;

	if (!s) {
		fprintf(stderr, "kanon lat: opening the BPF object: %s\n", strerror(errno));
		return NULL;
	}
	s->rodata->targ_tgid = (uint32_t)pid;
	s->rodata->mono_to_real_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
	/* USDT programs attach by hand below, not from their section name. */
	for (int i = 0; i < KN_LAT_PROBES; i++)
		bpf_program__set_autoattach(probe_prog(s, i), false);
	if ((err = kanon_lat_bpf__load(s))) {
		fprintf(stderr, "kanon lat: the kernel refused the BPF programs: %s%s\n",
			strerror(-err),
			err == -EPERM ? " (locked down kernel, or missing CAP_BPF/CAP_PERFMON?)"
				      : " (run with --verbose for the verifier's log)");
		kanon_lat_bpf__destroy(s);
		return NULL;
	}
	return s;
}

/* ---- reading and printing ---- */

static void slot_range(int s, uint64_t *lo, uint64_t *width)
{
	if (s < KN_LAT_SUB) {
		*lo = (uint64_t)s;
		*width = 1;
		return;
	}
	int e = s / KN_LAT_SUB + KN_LAT_SUB_BITS - 1;
	*lo = (uint64_t)(KN_LAT_SUB + s % KN_LAT_SUB) << (e - KN_LAT_SUB_BITS);
	*width = 1ULL << (e - KN_LAT_SUB_BITS);
}

struct summary {
	uint64_t count;
	double p50, p90, p99, p999, max;
	uint64_t log2[64]; /* row 0: 0..1 us, row k: 2^k .. 2^(k+1)-1 us */
	int rows;
};

/* The value below which a fraction q of the samples lie, interpolated
 * within its slot. */
static double quantile(const uint64_t *h, uint64_t count, double q)
{
	double target = q * (double)count, cum = 0;
	uint64_t lo, w;

	for (int s = 0; s < KN_LAT_SLOTS; s++) {
		if (!h[s])
			continue;
		if (cum + (double)h[s] >= target) {
			slot_range(s, &lo, &w);
			return (double)lo + (double)w * (target - cum) / (double)h[s];
		}
		cum += (double)h[s];
	}
	return 0;
}

static void summarize(const uint64_t *h, struct summary *m)
{
	uint64_t lo, w;

	memset(m, 0, sizeof(*m));
	for (int s = 0; s < KN_LAT_SLOTS; s++) {
		if (!h[s])
			continue;
		slot_range(s, &lo, &w);
		int row = lo < 2 ? 0 : 63 - __builtin_clzll(lo);
		m->log2[row] += h[s];
		m->rows = row + 1 > m->rows ? row + 1 : m->rows;
		m->count += h[s];
		m->max = (double)(lo + w);
	}
	if (!m->count)
		return;
	m->p50 = quantile(h, m->count, 0.50);
	m->p90 = quantile(h, m->count, 0.90);
	m->p99 = quantile(h, m->count, 0.99);
	m->p999 = quantile(h, m->count, 0.999);
}

static const char *hist_name(int h)
{
	static const char *const extra[] = {"end_to_end",  "end_to_end_committed",
					    "runq",	   "runq_loop_thread",
					    "bound_cycle", "release_cycle"};
	return h < KN_STAGES ? kn_stage_name(h) : extra[h - KN_STAGES];
}

static void row_bounds(int row, uint64_t *lo, uint64_t *hi)
{
	*lo = row ? 1ULL << row : 0;
	*hi = row ? (1ULL << (row + 1)) - 1 : 1;
}

static void print_json_hist(const struct summary *m)
{
	uint64_t lo, hi;
	bool first = true;

	printf("{\"count\":%" PRIu64 ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
	       "\"p999_us\":%.1f,\"max_us\":%.0f,\"log2_us\":[",
	       m->count, m->p50, m->p90, m->p99, m->p999, m->max);
	for (int r = 0; r < m->rows; r++) {
		if (!m->log2[r])
			continue;
		row_bounds(r, &lo, &hi);
		printf("%s{\"lo\":%" PRIu64 ",\"hi\":%" PRIu64 ",\"count\":%" PRIu64 "}",
		       first ? "" : ",", lo, hi, m->log2[r]);
		first = false;
	}
	printf("]}");
}

static void print_json(const struct lat_opts *o, const struct snap *d, double secs)
{
	struct summary m[KN_LAT_HISTS];
	bool first = true;

	for (int h = 0; h < KN_LAT_HISTS; h++)
		summarize(d->hist[h], &m[h]);
	printf("{\"pid\":%d,\"interval_s\":%.3f,\"batches\":%" PRIu64 ",\"probes\":{", (int)o->pid,
	       secs, d->probes[KN_P_BATCH_CONSUMED]);
	for (int i = 0; i < KN_LAT_PROBES; i++)
		printf("%s\"%s\":%" PRIu64, i ? "," : "", probe_names[i], d->probes[i]);
	printf("},\"stages\":{");
	for (int h = 0; h < KN_STAGES; h++) {
		if (!m[h].count)
			continue;
		printf("%s\"%s\":", first ? "" : ",", hist_name(h));
		print_json_hist(&m[h]);
		first = false;
	}
	printf("},\"stages_not_seen\":[");
	first = true;
	for (int h = 0; h < KN_STAGES; h++) {
		if (!m[h].count) {
			printf("%s\"%s\"", first ? "" : ",", hist_name(h));
			first = false;
		}
	}
	printf("]");
	for (int h = KN_STAGES; h < KN_LAT_HISTS; h++) {
		printf(",\"%s\":", hist_name(h));
		print_json_hist(&m[h]);
	}
	printf("}\n");
}

static void print_text_hist(const char *title, const struct summary *m)
{
	uint64_t lo, hi, top = 0;

	printf("\n%s: %" PRIu64 " samples, p50 %.0f us, p90 %.0f us, p99 %.0f us, p99.9 %.0f us\n",
	       title, m->count, m->p50, m->p90, m->p99, m->p999);
	if (!m->count)
		return;
	for (int r = 0; r < m->rows; r++)
		top = m->log2[r] > top ? m->log2[r] : top;
	printf("%24s : %-10s distribution\n", "usecs", "count");
	for (int r = 0; r < m->rows; r++) {
		char bar[41];
		int w = (int)(40 * m->log2[r] / top);
		row_bounds(r, &lo, &hi);
		memset(bar, '*', (size_t)w);
		memset(bar + w, ' ', (size_t)(40 - w));
		bar[40] = '\0';
		printf("%10" PRIu64 " -> %-10" PRIu64 " : %-10" PRIu64 " |%s|\n", lo, hi,
		       m->log2[r], bar);
	}
}

static const char *text_title(int h)
{
	static const char *const extra[] = {
		"end to end (Kafka timestamp -> delivery ack)",
		"end to end (Kafka timestamp -> transaction committed)",
		"run-queue delay, all threads",
		"run-queue delay, pipeline thread",
		"bound stage: commit cycle (close windows, commit)",
		"release stage: commit cycle (release windows, commit)"};
	static char buf[48];

	_Static_assert(sizeof(extra) / sizeof(extra[0]) == KN_LAT_HISTS - KN_STAGES,
		       "a title for every histogram after the stages");
	if (h >= KN_STAGES)
		return extra[h - KN_STAGES];
	snprintf(buf, sizeof(buf), "stage %s", hist_name(h));
	return buf;
}

static void print_text(const struct lat_opts *o, const struct snap *d, double secs)
{
	struct summary m;
	time_t now = time(NULL);
	char when[32], unseen[128] = "";
	size_t off = 0;

	strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
	printf("\n%s  kanon pid %d: %" PRIu64 " batches in %.1f s\n", when, (int)o->pid,
	       d->probes[KN_P_BATCH_CONSUMED], secs);
	for (int h = 0; h < KN_LAT_HISTS; h++) {
		summarize(d->hist[h], &m);
		if (m.count || h >= KN_STAGES)
			print_text_hist(text_title(h), &m);
		else if (off < sizeof(unseen))
			off += (size_t)snprintf(unseen + off, sizeof(unseen) - off, " %s",
						hist_name(h));
	}
	if (unseen[0])
		printf("\nstages not seen:%s\n", unseen);
	fflush(stdout);
}

static void read_snap(const struct kanon_lat_bpf *s, struct snap *out)
{
	memcpy(out->hist, s->bss->hist, sizeof(out->hist));
	memcpy(out->probes, s->bss->probes, sizeof(out->probes));
}

static void diff(const struct snap *now, const struct snap *prev, struct snap *d)
{
	for (int h = 0; h < KN_LAT_HISTS; h++)
		for (int i = 0; i < KN_LAT_SLOTS; i++)
			d->hist[h][i] = now->hist[h][i] - prev->hist[h][i];
	for (int i = 0; i < KN_LAT_PROBES; i++)
		d->probes[i] = now->probes[i] - prev->probes[i];
}

/* ---- the command ---- */

static int parse(int argc, char **argv, struct lat_opts *o)
{
	static const struct option lo[] = {{"pid", required_argument, 0, 'p'},
					   {"interval", required_argument, 0, 'i'},
					   {"count", required_argument, 0, 'n'},
					   {"json", no_argument, 0, 'j'},
					   {"verbose", no_argument, 0, 'v'},
					   {"help", no_argument, 0, 'h'},
					   {0, 0, 0, 0}};
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "p:i:n:jvh", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->pid = (pid_t)strtol(optarg, &end, 10);
			if (*end || end == optarg || o->pid <= 0)
				return fprintf(stderr, "kanon lat: --pid: not a process id '%s'\n",
					       optarg),
				       -1;
			break;
		case 'i':
			o->interval = strtod(optarg, &end);
			if (*end || end == optarg || !(o->interval > 0 && o->interval <= 86400))
				return fprintf(stderr,
					       "kanon lat: --interval: seconds, more than 0 and at "
					       "most 86400 (got '%s')\n",
					       optarg),
				       -1;
			break;
		case 'n':
			o->count = strtol(optarg, &end, 10);
			if (*end || end == optarg || o->count <= 0)
				return fprintf(stderr,
					       "kanon lat: --count: a positive number (got '%s')\n",
					       optarg),
				       -1;
			break;
		case 'j':
			o->json = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			fputs(lat_usage, stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind < argc)
		return fprintf(stderr, "kanon lat: unexpected argument '%s'\n", argv[optind]), -1;
	if (!o->pid)
		return fprintf(stderr, "kanon lat: --pid is required\n"), -1;
	if (o->count && !o->interval)
		o->interval = 1;
	return 0;
}

static void wait_interval(const struct lat_opts *o)
{
	int64_t until = clock_ns(CLOCK_MONOTONIC) + (int64_t)(o->interval * 1e9);

	while (!lat_stop) {
		int64_t left = o->interval ? until - clock_ns(CLOCK_MONOTONIC) : 200000000;
		if (left <= 0)
			return;
		if (left > 200000000)
			left = 200000000; /* notice the target exiting */
		nanosleep(&(struct timespec){left / 1000000000, left % 1000000000}, NULL);
		if (kill(o->pid, 0) && errno == ESRCH)
			lat_stop = 1;
	}
}

static void report(const struct lat_opts *o, const struct snap *d, double secs)
{
	if (o->json) {
		print_json(o, d, secs);
		fflush(stdout);
	} else {
		print_text(o, d, secs);
	}
}

int kn_lat_main(int argc, char **argv)
{
	struct lat_opts o = {0};
	struct snap *prev = calloc(3, sizeof(*prev)), *cur = prev + 1, *d = prev + 2;
	struct sigaction sa = {.sa_handler = on_sig};
	struct kanon_lat_bpf *s = NULL;
	int rc = 1;

	if (!prev)
		return 1;
	if (parse(argc, argv, &o)) {
		fputs(lat_usage, stderr);
		free(prev);
		return 2;
	}
	lat_verbose = o.verbose;
	libbpf_set_print(print_libbpf);
	if (preflight(o.pid) || !(s = open_and_load(o.pid)) || attach(s, o.pid))
		goto out;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "kanon lat: attached to pid %d%s\n", (int)o.pid,
		o.interval ? "" : "; Ctrl-C prints and stops");
	read_snap(s, prev);
	for (long n = 0; !o.count || n < o.count; n++) {
		int64_t t0 = clock_ns(CLOCK_MONOTONIC);
		wait_interval(&o);
		read_snap(s, cur);
		diff(cur, prev, d);
		report(&o, d, (double)(clock_ns(CLOCK_MONOTONIC) - t0) / 1e9);
		memcpy(prev, cur, sizeof(*cur));
		if (lat_stop || !o.interval)
			break;
	}
	rc = 0;
out:
	kanon_lat_bpf__destroy(s);
	free(prev);
	return rc;
}
