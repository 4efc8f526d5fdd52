/* kanon: command-line front end. Parses arguments and wires modules together;
 * everything else lives in the stage modules. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "demo.h"
#include "explain.h"
#include "filemode.h"
#include "gen.h"
#include "kafka.h"
#include "keys.h"
#include "lat.h"
#include "log.h"
#include "run.h"
#include "schema.h"
#include "sreg.h"
#include "stage.h"
#include "stop.h"

#define MAX_SETS 64

static void on_signal(int sig)
{
	(void)sig;
	kn_stop_request();
}

static void install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static const char usage[] =
	"kanon - privacy stream processor: pseudonymize, generalize and dead-letter logs\n"
	"\n"
	"usage: kanon COMMAND [options]\n"
	"       kanon --version   (kanon's version and librdkafka's)\n"
	"\n"
	"commands:\n"
	"  run      -c FILE [--role ROLE] [--instance NAME] [--until-eof]\n"
	"           [--max-messages N] [--metrics-addr HOST:PORT]\n"
	"           consume the input topics, write de-identified events and dead letters\n"
	"           (run.guarantee: at-least-once, or exactly-once, the default with\n"
	"           aggregates). SIGINT/SIGTERM stop it within 10 s whatever the broker\n"
	"           does. --until-eof ends once the input is drained, waiting out outages\n"
	"           for run.assignment_wait. --max-messages ends after the batch that\n"
	"           reaches N input records (a batch is up to run.batch_size).\n"
	"           --metrics-addr serves /metrics (Prometheus) and /healthz (503 when\n"
	"           stuck, fenced or failed). With aggregates, --role deid|bound|release\n"
	"           runs one stage of the aggregation topology (run.role; default all:\n"
	"           the three stages in one process, through the same internal topics);\n"
	"           run as many instances of a stage as its topic has partitions, each\n"
	"           with its own --instance (run.instance, default the host name)\n"
	"  process  -c FILE --input IN.avro --output OUT.avro [--dead-letter FILE.jsonl]\n"
	"           the same pipeline over Avro container files, no Kafka\n"
	"  gen      -c FILE [--seed N] [--count N] [--users N]\n"
	"           [--types device,access,search] [--malformed N] [--start YYYY-MM-DD]\n"
	"           [--span DURATION] [--out-dir DIR] [--rate N [--pool N]]\n"
	"           deterministic synthetic logs to the input topics (or\n"
	"           DIR/<type>.avro); --rate paces them at N records/s (producer linger\n"
	"           1 ms, for latency tests); --pool makes only the first N records of\n"
	"           each type and sends them over and over, so that making records does\n"
	"           not take the cores a latency test measures\n"
	"  demo     [--count N] [--seed N]\n"
	"           everything end to end on an in-process mock Kafka cluster; no broker\n"
	"           needed\n"
	"  check    -c FILE [--describe] [--metrics-addr HOST:PORT] [--role ROLE]\n"
	"           [--instance NAME] [--kafka]\n"
	"           validate the config, every Kafka client's properties, the schemas,\n"
	"           the policy files and the key file, as 'run' with the same options\n"
	"           does before connecting; print the effective config, when valid, with\n"
	"           secrets masked; --describe then lists every option with its range\n"
	"           and default (without -c, only that); --kafka also asks the\n"
	"           brokers about the aggregation's internal topics (partitions,\n"
	"           cleanup.policy, retention.ms) and, with schema_registry.url, the\n"
	"           registry whether kanon's output schemas fit their <topic>-value\n"
	"           subjects (registering nothing)\n"
	"  policy explain -c FILE\n"
	"           for every input field of every schema, what reaches each output\n"
	"  keys retire EPOCH -c FILE\n"
	"           destroy the keys of EPOCH and every earlier epoch (crypto-shredding)\n"
	"  keys status -c FILE\n"
	"           the first key epoch that still exists\n"
	"  keygen   PATH\n"
	"           write a new random master key (mode 0600); never overwrites\n"
	"  lat      --pid PID [--interval S] [--count N] [--json] [--verbose]\n"
	"           attach to a running kanon (eBPF, as root): per-stage latency\n"
	"           histograms, end-to-end latency, run-queue delay ('kanon lat --help')\n"
	"\n"
	"common options:\n"
	"  -c, --config FILE     YAML config (see deploy/kanon.example.yaml)\n"
	"  -s, --set KEY=VALUE   override a config option, e.g.\n"
	"                        --set kafka.brokers=host:9092\n"
	"  -l, --log-level LVL   error | warn | info | debug (default: log.level)\n"
	"  -h, --help            this text\n"
	"\n"
	"exit status: 0 success (or stopped with everything committed), 1 runtime\n"
	"  failure, 2 usage or configuration error (before any network I/O), 3 stopped\n"
	"  with uncommitted work (the next run redoes it: nothing is lost), 4\n"
	"  exactly-once instance fenced by another with the same transactional.id or\n"
	"  group.instance.id (the same role and --instance)\n";

static const char *cmd_reads(const char *cmd);

/* The text after the command list, without the common options that cmd does
 * not read (keygen reads none of them; --help is everyone's). */
static void print_common(const char *cmd, const char *common)
{
	const char *reads = cmd_reads(cmd), *block = strstr(common, "common options:\n");
	const char *end = strstr(block, "\n\n");
	bool keep = true;

	printf("%.*s", (int)(strchr(block, '\n') + 1 - common), common);
	for (const char *l = strchr(block, '\n') + 1; l < end;) {
		const char *nl = strchr(l, '\n') + 1;
		if (l[2] == '-') /* "  -c, --config FILE ...": its own line, and what follows */
			keep = l[3] == 'h' || strchr(reads, l[3]);
		if (keep)
			printf("%.*s", (int)(nl - l), l);
		l = nl;
	}
	fputs(end + 1, stdout);
}

/* COMMAND --help: that command's entry of the usage text, then what every
 * command shares (the text after the command list), less the options it
 * does not read. One text, so the two never disagree. */
static int command_help(const char *cmd)
{
	const char *common = strstr(usage, "\ncommon options:");
	size_t n = strlen(cmd);

	for (const char *l = strstr(usage, "commands:\n"); l && l < common;) {
		l = strchr(l, '\n') + 1;
		if (strncmp(l, "  ", 2) || strncmp(l + 2, cmd, n) || l[2 + n] != ' ')
			continue;
		/* Its lines: those indented past the names, and its other
		 * forms (keys retire, keys status). */
		const char *end = strchr(l, '\n') + 1;
		while (end < common && (!strncmp(end, "     ", 5) ||
					(!strncmp(end + 2, cmd, n) && end[2 + n] == ' ')))
			end = strchr(end, '\n') + 1;
		printf("usage:\n%.*s", (int)(end - l), l);
		print_common(cmd, common);
		return 0;
	}
	fputs(usage, stdout);
	return 0;
}

struct args {
	const char *config, *input, *output, *dead, *out_dir, *types, *start, *span;
	const char *sets[MAX_SETS];
	int n_sets;
	bool until_eof, describe, kafka;
	int64_t max_messages, count, users, malformed, rate, pool;
	uint64_t seed;
	const char *log_level;
	const char *metrics_addr;
	char role_set[64], instance_set[300]; /* --role, --instance as --set */
	bool seed_set;
	char bad[200]; /* what parse_args refused, for the usage error */
	char seen[32]; /* the short names (getopt vals) of the options given */
};

/* The options each command reads (getopt vals of parse_args' table): any
 * other is refused, not ignored. */
static const struct {
	const char *cmd, *opts;
} cmd_opts[] = {{"run", "cslEMArI"}, {"process", "cslioD"}, {"gen", "cslSnutmBPRQO"},
		{"demo", "lnS"},     {"check", "csldAKrI"}, {"policy", "csl"},
		{"keys", "csl"}};

/* The getopt vals of the options cmd reads ("" for none: keygen). */
static const char *cmd_reads(const char *cmd)
{
	for (size_t i = 0; i < sizeof(cmd_opts) / sizeof(cmd_opts[0]); i++)
		if (!strcmp(cmd_opts[i].cmd, cmd))
			return cmd_opts[i].opts;
	return "";
}

/* 0, or -1 with a->bad naming the first option cmd does not read. */
static int check_opts(const char *cmd, struct args *a, const struct option *opts)
{
	for (size_t i = 0; i < sizeof(cmd_opts) / sizeof(cmd_opts[0]); i++) {
		if (strcmp(cmd_opts[i].cmd, cmd))
			continue;
		for (const char *c = a->seen; *c; c++) {
			if (strchr(cmd_opts[i].opts, *c))
				continue;
			for (const struct option *o = opts; o->name; o++)
				if (o->val == *c)
					snprintf(a->bad, sizeof(a->bad),
						 "--%s does not apply to %s", o->name, cmd);
			return -1;
		}
	}
	return 0;
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < 0)
		return -1;
	*out = v;
	return 0;
}

static int parse_args(const char *cmd, int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {{"config", required_argument, 0, 'c'},
					     {"set", required_argument, 0, 's'},
					     {"log-level", required_argument, 0, 'l'},
					     {"help", no_argument, 0, 'h'},
					     {"until-eof", no_argument, 0, 'E'},
					     {"max-messages", required_argument, 0, 'M'},
					     {"input", required_argument, 0, 'i'},
					     {"output", required_argument, 0, 'o'},
					     {"dead-letter", required_argument, 0, 'D'},
					     {"seed", required_argument, 0, 'S'},
					     {"count", required_argument, 0, 'n'},
					     {"users", required_argument, 0, 'u'},
					     {"types", required_argument, 0, 't'},
					     {"malformed", required_argument, 0, 'm'},
					     {"start", required_argument, 0, 'B'},
					     {"span", required_argument, 0, 'P'},
					     {"rate", required_argument, 0, 'R'},
					     {"pool", required_argument, 0, 'Q'},
					     {"out-dir", required_argument, 0, 'O'},
					     {"describe", no_argument, 0, 'd'},
					     {"metrics-addr", required_argument, 0, 'A'},
					     {"role", required_argument, 0, 'r'},
					     {"kafka", no_argument, 0, 'K'},
					     {"instance", required_argument, 0, 'I'},
					     {0, 0, 0, 0}};
	int ch;
	int64_t v;
	enum kn_log_level lvl;

	optind = 1;
	opterr = 0; /* one line says what is wrong, ours (a->bad) */
	while ((ch = getopt_long(argc, argv, ":c:s:l:h", opts, NULL)) != -1) {
		size_t n = strlen(a->seen);
		if (ch > 0 && ch != '?' && !strchr(a->seen, ch) && n + 1 < sizeof(a->seen))
			a->seen[n] = (char)ch;
		switch (ch) {
		case 'c':
			a->config = optarg;
			break;
		case 's':
			if (a->n_sets == MAX_SETS) {
				snprintf(a->bad, sizeof(a->bad),
					 "too many --set, --role and --instance options (at most "
					 "%d)",
					 MAX_SETS);
				return -1;
			}
			a->sets[a->n_sets++] = optarg;
			break;
		case 'l':
			if (kn_log_parse_level(optarg, &lvl))
				goto bad;
			a->log_level = optarg;
			break;
		case 'K':
			a->kafka = true;
			break;
		case 'r':
		case 'I': {
			char *buf = ch == 'r' ? a->role_set : a->instance_set;
			size_t size = ch == 'r' ? sizeof(a->role_set) : sizeof(a->instance_set);
			if (a->n_sets == MAX_SETS ||
			    snprintf(buf, size, "%s=%s", ch == 'r' ? "run.role" : "run.instance",
				     optarg) >= (int)size)
				goto bad;
			a->sets[a->n_sets++] = buf;
			break;
		}
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case 'E':
			a->until_eof = true;
			break;
		case 'M':
			if (parse_int(optarg, &a->max_messages) || !a->max_messages)
				goto bad;
			break;
		case 'i':
			a->input = optarg;
			break;
		case 'o':
			a->output = optarg;
			break;
		case 'D':
			a->dead = optarg;
			break;
		case 'S':
			if (parse_int(optarg, &v))
				goto bad;
			a->seed = (uint64_t)v;
			a->seed_set = true;
			break;
		case 'n':
			if (parse_int(optarg, &a->count) || !a->count)
				goto bad;
			break;
		case 'u':
			if (parse_int(optarg, &a->users) || a->users < 1)
				goto bad;
			break;
		case 't':
			a->types = optarg;
			break;
		case 'm':
			if (parse_int(optarg, &a->malformed))
				goto bad;
			break;
		case 'B':
			a->start = optarg;
			break;
		case 'P':
			a->span = optarg;
			break;
		case 'R':
			if (parse_int(optarg, &a->rate) || !a->rate)
				goto bad;
			break;
		case 'Q':
			if (parse_int(optarg, &a->pool) || !a->pool)
				goto bad;
			break;
		case 'O':
			a->out_dir = optarg;
			break;
		case 'd':
			a->describe = true;
			break;
		case 'A':
			a->metrics_addr = optarg;
			break;
		case ':': /* argv[optind - 1] is the option that wants a value */
			snprintf(a->bad, sizeof(a->bad), "%.100s needs a value", argv[optind - 1]);
			return -1;
		default:
			snprintf(a->bad, sizeof(a->bad), "unknown option '%.100s'",
				 argv[optind - 1]);
			return -1;
		}
	}
	return check_opts(cmd, a, opts);
bad:
	for (const struct option *o = opts; o->name; o++)
		if (o->val == ch)
			snprintf(a->bad, sizeof(a->bad), "--%s: invalid value '%.100s'", o->name,
				 optarg);
	return -1;
}

/* Core dumps would hold the raw records being processed (keys are safe in
 * sodium memory, records are not): off from the first instruction, back
 * only when security.allow_core_dumps says so. Non-dumpable also keeps
 * /proc/PID/mem and ptrace from other users of the same uid. */
static struct rlimit core_limit;

static void harden(void)
{
	struct rlimit none;

	getrlimit(RLIMIT_CORE, &core_limit);
	none = (struct rlimit){0, core_limit.rlim_max};
	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void allow_dumps(void)
{
	setrlimit(RLIMIT_CORE, &core_limit);
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

/* An error from below, said once here: its text may quote what came from
 * outside (a config value, a broker's or registry's words), so it is tamed
 * like every log line (log.h). */
static void say(const char *what, char *errstr)
{
	fprintf(stderr, "kanon: %s%s\n", what, kn_log_tame(errstr));
}

static int fail_usage(const char *msg)
{
	fprintf(stderr, "kanon: %s\n(see 'kanon --help')\n", msg);
	return 2;
}

static int unexpected(const char *arg)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "unexpected argument '%.100s'", arg);
	return fail_usage(msg);
}

static int load_config(const struct args *a, struct kn_config **c)
{
	char errstr[1024];
	enum kn_log_level lvl;

	if (!a->config)
		return fail_usage("-c/--config FILE is required");
	if (kn_config_load(a->config, a->sets, a->n_sets, c, errstr, sizeof(errstr))) {
		/* --role and --instance reach the config as --set run.role=...:
		 * the error names the option the operator typed. */
		const char *opt =
			!strncmp(errstr, "--set: run.role:", 16) && a->role_set[0] ? "--role"
			: !strncmp(errstr, "--set: run.instance:", 20) && a->instance_set[0]
				? "--instance"
				: NULL;
		char named[sizeof(errstr) + 16];
		if (opt)
			snprintf(named, sizeof(named), "%s:%s", opt,
				 strchr(strchr(errstr, ':') + 1, ':') + 1);
		say("config error: ", opt ? named : errstr);
		return 2;
	}
	if (!kn_log_parse_level(a->log_level ? a->log_level : (*c)->log_level, &lvl))
		kn_log_set_level(lvl);
	if ((*c)->allow_core_dumps)
		allow_dumps();
	return 0;
}

/* One line at start (and from check) for each option in force that weakens
 * the promise. */
static void warn_weaknesses(const struct kn_config *c, bool file_mode)
{
	const char *w[16];
	int n = kn_config_weaknesses(c, w, 16);

	for (int i = 0; i < n; i++)
		if (!file_mode || strncmp(w[i], "dead_letter.", 12)) /* Kafka's dead letters */
			kn_warn("config", "weakened: %s", w[i]);
	/* Settings that do what they say, but rarely what was meant. */
	for (int i = 0; !file_mode && c->registry_url[0] && i < c->n_schemas; i++)
		if (c->schemas[i].id >= 0)
			kn_warn("config",
				"%s:%d: schemas[] id %d is pinned to %s: records framed with id %d "
				"are read with that file, never the registry's schema %d (leave "
				"id out to let the registry resolve it)",
				c->path, c->schemas[i].line, (int)c->schemas[i].id,
				c->schemas[i].file, (int)c->schemas[i].id, (int)c->schemas[i].id);
	if (file_mode && c->n_aggs)
		kn_warn("config", "aggregates are not computed by `kanon process`: their windows "
				  "and releases live on Kafka (`kanon run`)");
}

/* check --kafka: brokers that do not answer are a runtime failure (1); an
 * answer that shows an internal topic wrong is a configuration error (2),
 * as those found before any network I/O. */
static int asked_exit(int err)
{
	return err == -ETIMEDOUT || err == -EIO || err == -ECANCELED ? KN_EXIT_FAILURE
								     : KN_EXIT_CONFIG;
}

static int cmd_check(const struct args *a)
{
	struct kn_config *c;
	char errstr[1024];
	int rc, err = 0;

	/* Without a config, --describe is the reference alone; with one, the
	 * config is checked as ever and the reference follows. */
	if (a->describe && !a->config) {
		kn_config_describe(stdout);
		return 0;
	}
	if ((rc = load_config(a, &c))) {
		if (a->describe)
			kn_config_describe(stdout);
		return rc;
	}
	if (kn_run_preflight(c, a->metrics_addr, errstr, sizeof(errstr))) {
		say("config error: ", errstr);
		rc = KN_EXIT_CONFIG;
	}
	/* A port another process holds: run would fail now, a runtime
	 * condition (1) like brokers that do not answer. */
	if (!rc && a->metrics_addr &&
	    kn_metrics_probe_addr(a->metrics_addr, errstr, sizeof(errstr))) {
		say("", errstr);
		rc = KN_EXIT_FAILURE;
	}
	if (!rc && a->kafka && c->n_aggs && (err = kn_topology_check(c, errstr, sizeof(errstr)))) {
		say("internal topics: ", errstr);
		rc = asked_exit(err);
	}
	/* A refused topic does not hide a registry problem: one check says both. */
	if ((!rc || err == -EINVAL) && a->kafka && kn_sreg_check(c, errstr, sizeof(errstr))) {
		say("", errstr);
		rc = KN_EXIT_CONFIG; /* its TLS and credential errors look like outages */
	}
	if (!rc) { /* the effective config, only once it is valid */
		kn_config_print(c, stdout);
		warn_weaknesses(c, false);
		fprintf(stderr, "kanon: %s is valid\n", a->config);
	}
	if (a->describe)
		kn_config_describe(stdout);
	kn_config_destroy(c);
	return rc;
}

static int cmd_run(const struct args *a)
{
	struct kn_config *c;
	char errstr[1024];
	int rc = load_config(a, &c), err;

	if (rc)
		return rc;
	struct kn_run_opts o = {.metrics_addr = a->metrics_addr,
				.until_eof = a->until_eof,
				.max_messages = a->max_messages};
	if (kn_run_preflight(c, a->metrics_addr, errstr, sizeof(errstr))) {
		say("config error: ", errstr);
		kn_config_destroy(c);
		return KN_EXIT_CONFIG;
	}
	warn_weaknesses(c, false);
	install_signals();
	kn_stop_arm_watchdog();
	/* One loop; run.guarantee picks its commit strategy (run.h). */
	if ((err = kn_run(c, &o, errstr, sizeof(errstr))))
		kn_err("main", "%s", errstr);
	rc = kn_run_exit_code(err);
	if (kn_stop_walked_away()) {
		/* librdkafka threads still wait on a dead broker: end without
		 * atexit handlers (OpenSSL's among them) racing them. */
		fflush(NULL);
		_exit(rc);
	}
	kn_config_destroy(c);
	return rc;
}

static int cmd_process(const struct args *a)
{
	struct kn_config *c;
	struct kn_file_result r = {0};
	char errstr[1024];
	int rc;

	if (!a->input || !a->output)
		return fail_usage("process needs --input IN.avro and --output OUT.avro");
	if (kn_filemode_check_paths(a->input, a->output, a->dead, errstr, sizeof(errstr)))
		return fail_usage(errstr);
	if ((rc = load_config(a, &c)))
		return rc;
	if (kn_run_preflight(c, NULL, errstr, sizeof(errstr))) {
		say("config error: ", errstr);
		kn_config_destroy(c);
		return KN_EXIT_CONFIG;
	}
	warn_weaknesses(c, true);
	rc = kn_filemode_process(c, a->input, a->output, a->dead, &r, errstr, sizeof(errstr)) ? 1
											      : 0;
	/* The counts, then the reason of a failure: the last line says why. */
	fprintf(stderr,
		"kanon: read %" PRId64 ", wrote %" PRId64 ", dead-lettered %" PRId64
		", withheld by the policy %" PRId64 "\n",
		r.read, r.written, r.dead, r.dropped);
	if (rc)
		say("", errstr);
	kn_config_destroy(c);
	return rc;
}

static int parse_types(const char *s, unsigned *out)
{
	char buf[128], *save = NULL;

	*out = 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int ty = kn_event_type_by_name(t);
		if (ty < 0)
			return -1;
		*out |= 1u << ty;
	}
	return *out ? 0 : -1;
}

static int cmd_gen(const struct args *a)
{
	struct kn_config *c;
	struct kn_gen_result r;
	char errstr[1024];
	struct tm tm = {0};
	int rc;
	struct kn_gen_opts o = {.seed = a->seed,
				.count = a->count ? a->count : 1000,
				.users = a->users ? a->users : 5000,
				.malformed = a->malformed,
				.start_ms = 1793491200000LL,
				.span_ms = 24 * 3600 * 1000LL,
				.types = 7,
				.out_dir = a->out_dir,
				.rate = a->rate,
				.pool = a->pool};

	if (a->types && parse_types(a->types, &o.types))
		return fail_usage("--types takes a comma list of device, access, search");
	if (a->start) {
		const char *end = strptime(a->start, "%Y-%m-%d", &tm);
		if (!end || *end)
			return fail_usage("--start takes a date YYYY-MM-DD");
		struct tm back;
		int y = tm.tm_year, mon = tm.tm_mon, d = tm.tm_mday;
		time_t t = timegm(&tm); /* normalizes: February 30 is March 2 */
		if (!gmtime_r(&t, &back) || back.tm_year != y || back.tm_mon != mon ||
		    back.tm_mday != d)
			return fail_usage("--start: no such date");
		o.start_ms = (int64_t)t * 1000;
	}
	if (a->span && (kn_parse_duration(a->span, &o.span_ms) || o.span_ms <= 0))
		return fail_usage("--span takes a duration such as 6h or 2d");
	if (a->pool && (!a->rate || a->out_dir))
		return fail_usage("--pool goes with --rate, to Kafka (not with --out-dir)");
	if (a->rate && a->out_dir)
		return fail_usage("--rate paces records to Kafka: a file (--out-dir) is written "
				  "at once");
	if (a->malformed && a->out_dir)
		return fail_usage("--malformed goes to Kafka only: a container file (--out-dir) "
				  "holds only records of its schema");
	if ((rc = load_config(a, &c)))
		return rc;
	if ((rc = kn_gen_run(c, &o, &r, errstr, sizeof(errstr)))) {
		say("gen: ", errstr);
		rc = rc == -EINVAL ? 2 : 1; /* what the config cannot do: a usage error */
	}
	for (int t = 0; !rc && t < KN_EV_TYPES; t++) /* what was written, once it was */
		if (o.types & (1u << t))
			printf("%s: %" PRId64 " records, %" PRId64 " malformed\n",
			       kn_event_type_name(t), r.written[t], r.malformed[t]);
	kn_config_destroy(c);
	return rc;
}

static int cmd_policy(const struct args *a)
{
	struct kn_config *c;
	struct kn_schemas *s;
	char errstr[1024];
	int rc = load_config(a, &c);

	if (rc)
		return rc;
	if (kn_schemas_load(c, &s, errstr, sizeof(errstr))) {
		say("config error: ", errstr);
		kn_config_destroy(c);
		return 2;
	}
	kn_policy_explain(c, s, stdout);
	kn_schemas_destroy(s);
	kn_config_destroy(c);
	return 0;
}

static void print_key_status(const struct kn_config *c, const struct kn_keys *k, int64_t now)
{
	/* The load bounds the first epoch by now: the product cannot overflow. */
	int64_t first = kn_keys_first_epoch(k);

	printf("key file %s: epochs before %lld are retired; first usable epoch %lld", c->key_file,
	       (long long)first, (long long)first);
	if (c->epoch_ms) {
		time_t t = (time_t)(first * c->epoch_ms / 1000);
		char day[32];
		strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		printf(" (starts %s); current epoch %lld", day,
		       (long long)kn_keys_epoch_of(c->epoch_ms, now));
	}
	printf("\n");
}

static int cmd_keys(const struct args *a, const char *verb, const char *epoch_arg)
{
	struct kn_config *c;
	struct kn_keys *k;
	char errstr[1024];
	int64_t epoch, now = kn_wall_ms();
	int rc = load_config(a, &c), err;

	if (rc)
		return rc;
	if (!strcmp(verb, "retire") &&
	    (!epoch_arg || parse_int(epoch_arg, &epoch) || epoch == INT64_MAX)) {
		kn_config_destroy(c);
		return fail_usage("usage: kanon keys retire EPOCH -c FILE (EPOCH as in key_epoch)");
	}
	/* A key file refused is a config error (2) for both verbs; a retire
	 * that cannot write is a runtime failure (1). */
	k = NULL;
	if (kn_keys_load(c->key_file, c->prf, c->epoch_ms, now, &k, errstr, sizeof(errstr))) {
		say("", errstr);
		rc = 2;
	} else if (!strcmp(verb, "retire")) {
		if (epoch < kn_keys_first_epoch(k)) /* nothing left to destroy: said so */
			fprintf(stderr,
				"kanon: keys retire: epoch %lld was already retired; the key "
				"file is unchanged\n",
				(long long)epoch);
		kn_keys_destroy(k);
		k = NULL;
		if ((err = kn_keys_retire(c->key_file, epoch + 1, c->epoch_ms, now, NULL, errstr,
					  sizeof(errstr)))) {
			say("keys retire: ", errstr);
			rc = err == -ERANGE ? 2 : 1;
		} else if (kn_keys_load(c->key_file, c->prf, c->epoch_ms, now, &k, errstr,
					sizeof(errstr))) {
			say("", errstr);
			rc = 1;
		}
	}
	if (k) {
		print_key_status(c, k, now);
		kn_keys_destroy(k);
	}
	kn_config_destroy(c);
	return rc;
}

static int cmd_keygen(int argc, char **argv)
{
	char errstr[512];

	if (argc != 3 || argv[2][0] == '-')
		return fail_usage("usage: kanon keygen PATH");
	if (kn_keys_generate(argv[2], errstr, sizeof(errstr))) {
		say("keygen: ", errstr);
		return 1;
	}
	fprintf(stderr, "kanon: wrote a new key chain to %s (mode 0600)\n", argv[2]);
	return 0;
}

static int cmd_demo(const struct args *a)
{
	char errstr[1024];

	if (a->log_level) {
		enum kn_log_level l;
		if (!kn_log_parse_level(a->log_level, &l))
			kn_log_set_level(l);
	} else {
		kn_log_set_level(KN_LOG_WARN);
	}
	install_signals();
	if (kn_demo(a->count ? a->count : 3000, a->seed_set ? a->seed : 42, errstr,
		    sizeof(errstr))) {
		say("demo: ", errstr);
		return 1;
	}
	return 0;
}

static int cmd_lat(int argc, char **argv)
{
#ifdef KANON_HAVE_BPF
	return kn_lat_main(argc, argv);
#else
	(void)argc, (void)argv;
	fprintf(stderr, "kanon: this kanon was built without eBPF support (-DKANON_BPF=OFF); "
			"rebuild with clang, bpftool and libbpf-dev installed\n");
	return 1;
#endif
}

static bool known_command(const char *cmd)
{
	if (!strcmp(cmd, "keygen"))
		return true;
	for (size_t i = 0; i < sizeof(cmd_opts) / sizeof(cmd_opts[0]); i++)
		if (!strcmp(cmd_opts[i].cmd, cmd))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	const char *cmd = argc > 1 ? argv[1] : "";

	harden();
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("kanon 0.1.0 (librdkafka %s)\n", kn_kafka_version());
		return 0;
	}
	if (!strcmp(cmd, "lat"))
		return cmd_lat(argc - 1, argv + 1);
	if (!*cmd)
		return fail_usage("missing COMMAND");
	if (!known_command(cmd)) {
		fprintf(stderr, "kanon: unknown command '%s'\n", cmd);
		return fail_usage(
			"commands: run, process, gen, demo, check, policy, keys, keygen, lat");
	}
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return command_help(cmd);
	if (!strcmp(cmd, "keygen"))
		return cmd_keygen(argc, argv);
	if (!strcmp(cmd, "keys")) {
		if (argc < 3 || (strcmp(argv[2], "retire") && strcmp(argv[2], "status")))
			return fail_usage(
				"usage: kanon keys retire EPOCH -c FILE | keys status -c FILE");
		const char *verb = argv[2], *epoch_arg = NULL;
		if (!strcmp(verb, "retire") && argc > 3 && argv[3][0] != '-') {
			epoch_arg = argv[3];
			argv++, argc--;
		}
		if (parse_args(cmd, argc - 2, argv + 2, &a))
			return fail_usage(a.bad[0] ? a.bad : "bad option");
		if (optind < argc - 2)
			return unexpected(argv[optind + 2]);
		return cmd_keys(&a, verb, epoch_arg);
	}
	if (!strcmp(cmd, "policy")) {
		if (argc < 3 || strcmp(argv[2], "explain"))
			return fail_usage("usage: kanon policy explain -c FILE");
		argv++, argc--; /* "policy explain" is one command */
	}
	if (parse_args(cmd, argc - 1, argv + 1, &a))
		return fail_usage(a.bad[0] ? a.bad : "bad option");
	if (optind < argc - 1)
		return unexpected(argv[optind + 1]);
	if (!strcmp(cmd, "run"))
		return cmd_run(&a);
	if (!strcmp(cmd, "process"))
		return cmd_process(&a);
	if (!strcmp(cmd, "gen"))
		return cmd_gen(&a);
	if (!strcmp(cmd, "demo"))
		return cmd_demo(&a);
	if (!strcmp(cmd, "check"))
		return cmd_check(&a);
	return cmd_policy(&a);
}
