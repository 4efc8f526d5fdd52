#include "gen.h"

#include <avro.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "avrobin.h"
#include "clock.h"
#include "cwriter.h"
#include "kn_alloc.h"
#include "log.h"
#include "producer.h"
#include "schema.h"
#include "sreg.h"

/* ---- deterministic randomness (splitmix64) ---- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(struct rng *r, uint64_t n)
{
	return rnd(r) % n;
}

static double unit(struct rng *r)
{
	return (double)(rnd(r) >> 11) / 9007199254740992.0;
}

static int chance(struct rng *r, double p)
{
	return unit(r) < p;
}

#define PICK(r, arr) (arr[below(r, sizeof(arr) / sizeof(arr[0]))])

/* ---- the population ---- */

static const struct city {
	const char *name;
	double lat, lon;
} cities[] = {
	{"Beijing", 39.9042, 116.4074},	  {"Shanghai", 31.2304, 121.4737},
	{"Guangzhou", 23.1291, 113.2644}, {"Shenzhen", 22.5431, 114.0579},
	{"Chengdu", 30.5728, 104.0668},	  {"Hangzhou", 30.2741, 120.1551},
	{"Wuhan", 30.5928, 114.3055},	  {"Xi'an", 34.3416, 108.9398},
	{"Nanjing", 32.0603, 118.7969},	  {"Chongqing", 29.5630, 106.5516},
	{"Tianjin", 39.3434, 117.3616},	  {"Harbin", 45.8038, 126.5350},
	{"Kunming", 25.0389, 102.7183},	  {"Xiamen", 24.4798, 118.0894},
};

static const char *mail_domains[] = {"qq.com",	    "163.com",	"126.com",     "gmail.com",
				     "outlook.com", "sina.com", "foxmail.com", "yahoo.com"};
static const char *android_uas[] = {
	"Mozilla/5.0 (Linux; Android %d; SM-G9910) AppleWebKit/537.36 (KHTML, like Gecko) "
	"Chrome/%d.0.6099.144 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; U; Android %d; zh-CN; V2055A) AppleWebKit/537.36 (KHTML, like "
	"Gecko) Version/4.0 Chrome/%d.0.4472.114 UCBrowser/15.5.6.1230 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android %d; PGT-AN10 Build/HUAWEIPGT-AN10; wv) AppleWebKit/537.36 "
	"(KHTML, like Gecko) Version/4.0 Chrome/%d.0.5735.196 Mobile Safari/537.36 "
	"MicroMessenger/8.0.42.2460(0x28002A3B) WeChat/arm64",
	"Mozilla/5.0 (Linux; Android %d; M2012K11AC) AppleWebKit/537.36 (KHTML, like Gecko) "
	"Chrome/%d.0.0.0 Mobile Safari/537.36 EdgA/120.0.2210.115",
};
static const char *ios_uas[] = {
	"Mozilla/5.0 (iPhone; CPU iPhone OS %d_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
	"like Gecko) Version/%d.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (iPhone; CPU iPhone OS %d_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
	"like Gecko) Mobile/15E148 MicroMessenger/8.0.%d(0x18002c2f) NetType/WIFI Language/zh_CN",
};
static const char *desktop_uas[] = {
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
	"Chrome/%d.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:%d.0) Gecko/20100101 Firefox/%d.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
	"Chrome/%d.0.0.0 Safari/537.36 Edg/%d.0.2210.91",
};
static const char *sites[] = {"www.taobao.com",	     "m.jd.com",	 "www.baidu.com",
			      "news.sina.com.cn",    "www.bilibili.com", "weibo.com",
			      "www.zhihu.com",	     "www.douyin.com",	 "m.ctrip.com",
			      "www.xiaohongshu.com", "www.163.com",	 "music.qq.com"};
static const char *paths[] = {
	"/",  "/item/12345.html", "/search", "/video/BV1xx411c7mD", "/news/2026/11/29/a.html",
	"/s", "/login",		  "/cart"};
static const char *queries[] = {"天气预报",	 "iphone 16 价格",  "北京到上海高铁",
				"火锅 推荐",	 "python tutorial", "新能源汽车",
				"cheap flights", "感冒 吃什么药",   "考研 时间",
				"租房 朝阳区",	 "running shoes",   "红烧肉 做法"};

struct device {
	char id[48];
	char os[24];
	int android; /* 1 Android, 0 iOS */
	int os_major;
	int ua;
	char ip[48];
};

struct user {
	char user_id[24];
	char phone[32];
	char email[64];
	char cookie[40];
	int city;
	int birth_year;
	int n_dev;
	struct device dev[3];
	int no_analytics, no_ads, no_location;
};

static void gen_ip(struct rng *r, char *out, size_t n)
{
	static const int first[] = {36,	 58,  59,  60,	101, 106, 111, 112, 113, 114, 115,
				    116, 117, 119, 120, 121, 122, 123, 124, 125, 175, 180,
				    182, 183, 202, 210, 211, 218, 219, 220, 221, 222, 223};
	if (chance(r, 0.2)) /* China Telecom-like IPv6 */
		snprintf(out, n, "240e:%x:%x:%x:%x:%x:%x:%x", (unsigned)below(r, 0xfff) + 1,
			 (unsigned)below(r, 0xffff), (unsigned)below(r, 0xffff),
			 (unsigned)below(r, 0xffff), (unsigned)below(r, 0xffff),
			 (unsigned)below(r, 0xffff), (unsigned)below(r, 0xffff) + 1);
	else
		snprintf(out, n, "%d.%d.%d.%d", PICK(r, first), (int)below(r, 256),
			 (int)below(r, 256), (int)below(r, 254) + 1);
}

static void gen_user(struct rng *r, int64_t idx, struct user *u)
{
	static const char *prefixes[] = {"130", "133", "135", "136", "138", "139",
					 "150", "151", "152", "158", "159", "176",
					 "177", "180", "186", "188", "189", "199"};
	const char *pre = PICK(r, prefixes);
	unsigned a = (unsigned)below(r, 10000), b = (unsigned)below(r, 10000);

	memset(u, 0, sizeof(*u));
	snprintf(u->user_id, sizeof(u->user_id), "u%08lld", (long long)idx);
	switch (below(r, 4)) { /* how people type their number */
	case 0:
		snprintf(u->phone, sizeof(u->phone), "%s%04u%04u", pre, a, b);
		break;
	case 1:
		snprintf(u->phone, sizeof(u->phone), "+86 %s %04u %04u", pre, a, b);
		break;
	case 2:
		snprintf(u->phone, sizeof(u->phone), "%s-%04u-%04u", pre, a, b);
		break;
	default:
		snprintf(u->phone, sizeof(u->phone), "0086%s%04u%04u", pre, a, b);
	}
	snprintf(u->email, sizeof(u->email), "%s%s%lld@%s", chance(r, 0.3) ? " " : "",
		 chance(r, 0.5) ? "Zhang.Wei" : "li_na", (long long)idx, PICK(r, mail_domains));
	snprintf(u->cookie, sizeof(u->cookie), "ck_%016llx", (unsigned long long)rnd(r));
	u->city = (int)below(r, sizeof(cities) / sizeof(cities[0]));
	u->birth_year = chance(r, 0.06) ? 2009 + (int)below(r, 4) : 1950 + (int)below(r, 56);
	u->no_analytics = chance(r, 0.03);
	u->no_ads = chance(r, 0.05);
	u->no_location = chance(r, 0.08);
	u->n_dev = 1 + (int)below(r, 3);
	for (int d = 0; d < u->n_dev; d++) {
		struct device *dv = &u->dev[d];
		uint64_t x = rnd(r), y = rnd(r);
		dv->android = chance(r, 0.7);
		if (dv->android) {
			int harmony = chance(r, 0.15);
			dv->os_major = harmony ? 2 + (int)below(r, 3) : 10 + (int)below(r, 5);
			snprintf(dv->os, sizeof(dv->os), "%s %d", harmony ? "HarmonyOS" : "Android",
				 dv->os_major);
		} else {
			dv->os_major = 15 + (int)below(r, 3);
			snprintf(dv->os, sizeof(dv->os), "iOS %d.%d", dv->os_major,
				 (int)below(r, 6));
		}
		/* Same device id, written differently by different SDKs. */
		snprintf(dv->id, sizeof(dv->id),
			 chance(r, 0.5) ? "%08llX-%04llX-%04llX-%04llX-%012llX"
					: "%08llx%04llx%04llx%04llx%012llx",
			 (unsigned long long)(x >> 32), (unsigned long long)(x >> 16 & 0xffff),
			 (unsigned long long)(x & 0xffff), (unsigned long long)(y >> 48),
			 (unsigned long long)(y & 0xffffffffffffULL));
		dv->ua = (int)below(r, 4);
		gen_ip(r, dv->ip, sizeof(dv->ip));
	}
}

/* Zipf(s) over [0, n): inverse-CDF over a precomputed table. */
struct zipf {
	double *cdf;
	int64_t n;
};

static int zipf_init(struct zipf *z, int64_t n, double s)
{
	double sum = 0;

	z->n = n;
	z->cdf = kn_malloc(sizeof(double) * (size_t)n);
	if (!z->cdf)
		return -ENOMEM;
	for (int64_t i = 0; i < n; i++)
		z->cdf[i] = (sum += 1.0 / pow((double)(i + 1), s));
	for (int64_t i = 0; i < n; i++)
		z->cdf[i] /= sum;
	return 0;
}

static int64_t zipf_draw(struct zipf *z, struct rng *r)
{
	double u = unit(r);
	int64_t lo = 0, hi = z->n - 1;

	while (lo < hi) {
		int64_t mid = (lo + hi) / 2;
		if (z->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- writing records through avro-c ---- */

/* Every union starts at branch 0 (null in the reference schemas), so that
 * fields the generator has no role for still serialize. */
static void init_defaults(avro_value_t *v)
{
	avro_value_t child;
	size_t n;

	switch (avro_value_get_type(v)) {
	case AVRO_RECORD:
		avro_value_get_size(v, &n);
		for (size_t i = 0; i < n; i++) {
			avro_value_get_by_index(v, i, &child, NULL);
			init_defaults(&child);
		}
		break;
	case AVRO_UNION:
		avro_value_set_branch(v, 0, &child);
		init_defaults(&child);
		break;
	default:
		break;
	}
}

/* Resolves a dotted role path to the scalar (or union) value to set. */
static int find_path(avro_value_t *rec, const char *path, avro_value_t *out)
{
	char seg[128];
	avro_value_t cur = *rec, next;

	while (*path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		snprintf(seg, sizeof(seg), "%.*s", (int)n, path);
		if (avro_value_get_type(&cur) == AVRO_UNION) {
			avro_value_set_branch(&cur, 1, &next); /* the record branch */
			cur = next;
		}
		if (avro_value_get_by_name(&cur, seg, &next, NULL))
			return -ENOENT;
		cur = next;
		path += n + (dot ? 1 : 0);
	}
	*out = cur;
	return 0;
}

/* Selects the union branch of type t (or null when is_null). */
static int pick_branch(avro_value_t *v, avro_type_t t, int is_null, avro_value_t *out)
{
	avro_schema_t s = avro_value_get_schema(v);

	if (avro_value_get_type(v) != AVRO_UNION) {
		*out = *v;
		return !is_null && avro_value_get_type(v) == t ? 0 : -EINVAL;
	}
	for (size_t i = 0; i < avro_schema_union_size(s); i++) {
		avro_type_t bt = avro_typeof(avro_schema_union_branch(s, (int)i));
		if ((is_null && bt == AVRO_NULL) || (!is_null && bt == t))
			return avro_value_set_branch(v, (int)i, out);
	}
	return -EINVAL;
}

struct rec {
	avro_value_t *v;
	const struct kn_schema_cfg *sc;
};

static void set_str(struct rec *r, int role, const char *s)
{
	avro_value_t f, b;

	if (!r->sc->roles[role] || find_path(r->v, r->sc->roles[role], &f))
		return;
	if (!s) {
		pick_branch(&f, AVRO_NULL, 1, &b);
		avro_value_set_null(&b);
	} else if (!pick_branch(&f, AVRO_STRING, 0, &b)) {
		avro_value_set_string(&b, s);
	}
}

static void set_long(struct rec *r, int role, int64_t v, int is_null)
{
	avro_value_t f, b;

	if (!r->sc->roles[role] || find_path(r->v, r->sc->roles[role], &f))
		return;
	if (is_null) {
		pick_branch(&f, AVRO_NULL, 1, &b);
		avro_value_set_null(&b);
	} else if (!pick_branch(&f, AVRO_INT64, 0, &b)) {
		avro_value_set_long(&b, v);
	} else if (!pick_branch(&f, AVRO_INT32, 0, &b)) {
		avro_value_set_int(&b, (int32_t)v);
	}
}

static void set_double(struct rec *r, int role, double v, int is_null)
{
	avro_value_t f, b;

	if (!r->sc->roles[role] || find_path(r->v, r->sc->roles[role], &f))
		return;
	if (is_null) {
		pick_branch(&f, AVRO_NULL, 1, &b);
		avro_value_set_null(&b);
	} else if (!pick_branch(&f, AVRO_DOUBLE, 0, &b)) {
		avro_value_set_double(&b, v);
	}
}

static void set_bool(struct rec *r, int role, int v)
{
	avro_value_t f, b;

	if (r->sc->roles[role] && !find_path(r->v, r->sc->roles[role], &f) &&
	    !pick_branch(&f, AVRO_BOOLEAN, 0, &b))
		avro_value_set_boolean(&b, v);
}

static void fill_ua(struct rng *rg, const struct device *d, char *ua, size_t n)
{
	int chrome = 110 + (int)below(rg, 11);

	if (!d->android && d->ua < 2)
		snprintf(ua, n, ios_uas[d->ua], d->os_major,
			 d->ua ? 40 + d->os_major : d->os_major);
	else if (d->ua == 3 && chance(rg, 0.5))
		snprintf(ua, n, PICK(rg, desktop_uas), chrome, chrome);
	else
		snprintf(ua, n, android_uas[d->ua], d->os_major, chrome);
}

/* Fills one record of type t for user u. */
static void fill(struct rng *rg, struct rec *r, enum kn_event_type t, const struct user *u,
		 int64_t ts, int64_t seq)
{
	const struct device *d = &u->dev[below(rg, (uint64_t)u->n_dev)];
	const struct city *c = &cities[u->city];
	char eid[40], ua[400], url[200], ref[200];

	init_defaults(r->v);
	snprintf(eid, sizeof(eid), "%s-%016llx-%lld", kn_event_type_name(t),
		 (unsigned long long)rnd(rg), (long long)seq);
	set_str(r, KN_ROLE_EVENT_ID, eid);
	set_long(r, KN_ROLE_TIMESTAMP, ts, 0);
	set_str(r, KN_ROLE_ID_USER, chance(rg, 0.85) ? u->user_id : NULL);
	set_str(r, KN_ROLE_ID_PHONE, chance(rg, 0.6) ? u->phone : NULL);
	set_str(r, KN_ROLE_ID_EMAIL, chance(rg, 0.5) ? u->email : NULL);
	set_str(r, KN_ROLE_ID_DEVICE, t == KN_EV_SEARCH && chance(rg, 0.2) ? NULL : d->id);
	set_str(r, KN_ROLE_ID_COOKIE, chance(rg, 0.9) ? u->cookie : NULL);
	set_str(r, KN_ROLE_IP, chance(rg, 0.9) ? d->ip : u->dev[0].ip);
	fill_ua(rg, d, ua, sizeof(ua));
	set_str(r, KN_ROLE_USER_AGENT, ua);
	set_str(r, KN_ROLE_OS, d->os);
	snprintf(url, sizeof(url), "%d.%d.%d", 5 + (int)below(rg, 3), (int)below(rg, 10),
		 (int)below(rg, 30));
	set_str(r, KN_ROLE_APP_VERSION, url);
	int has_geo = chance(rg, 0.9);
	set_double(r, KN_ROLE_LAT, c->lat + (unit(rg) - 0.5) * 0.2, !has_geo);
	set_double(r, KN_ROLE_LON, c->lon + (unit(rg) - 0.5) * 0.2, !has_geo);
	snprintf(url, sizeof(url), "https://%s%s%s", PICK(rg, sites), PICK(rg, paths),
		 chance(rg, 0.4) ? "?uid=12345&utm_source=wx" : "");
	set_str(r, KN_ROLE_URL, url);
	snprintf(ref, sizeof(ref), "https://%s/", PICK(rg, sites));
	set_str(r, KN_ROLE_REFERRER, chance(rg, 0.6) ? ref : NULL);
	set_str(r, KN_ROLE_CLICKED_URL, chance(rg, 0.7) ? url : NULL);
	set_str(r, KN_ROLE_QUERY, PICK(rg, queries));
	set_long(r, KN_ROLE_STATUS, chance(rg, 0.95) ? 200 : 404, 0);
	set_long(r, KN_ROLE_BYTES, 200 + (int64_t)below(rg, 200000), 0);
	set_long(r, KN_ROLE_BIRTH_YEAR, u->birth_year, chance(rg, 0.2));
	set_bool(r, KN_ROLE_CONSENT_LOCATION, !u->no_location);
	set_bool(r, KN_ROLE_CONSENT_ADS, !u->no_ads);
	set_bool(r, KN_ROLE_CONSENT_ANALYTICS, !u->no_analytics);
}

/* ---- the run ---- */

struct out {
	const struct kn_schema_cfg *sc;
	int32_t id; /* the framing id: sc's, or the registry's for the topic's subject */
	avro_schema_t schema;
	avro_value_iface_t *iface;
	avro_value_t val;
	char *schema_text;	 /* the .avsc as written, for the file's header */
	struct kn_cwriter *file; /* --out-dir */
	FILE *fp;		 /* file's stream: ours to close, so that a failed write is seen */
	int topic;		 /* the producer's handle */
};

struct gen {
	const struct kn_gen_opts *o;
	int64_t undelivered; /* delivery reports with an error */
	struct rng rng;
	struct user *users;
	struct zipf z;
	struct kn_producer *prod;
	struct kn_registry *reg; /* schema_registry.url, Kafka only: while setting up */
	struct out out[KN_EV_TYPES];
	avro_writer_t w;
	int64_t sent;	    /* for --rate */
	struct timespec t0; /* for --rate */
	uint8_t buf[64 * 1024];
};

/* --rate: the n-th record goes out at t0 + n / rate, not before. It sleeps
 * for the rest of the gap and never spins: at 100 k records/s the gaps are
 * shorter than a nanosleep, and spinning through them took a whole core
 * from the machine the load is measuring. Oversleeping costs nothing but
 * a burst: the schedule is kept from t0, so what fell due goes out at once. */
static void pace(struct gen *g)
{
	struct timespec now;
	int64_t due_ns, now_ns;

	if (!g->o->rate || g->o->out_dir)
		return;
	if (!g->sent++) {
		clock_gettime(CLOCK_MONOTONIC, &g->t0);
		return;
	}
	due_ns = (int64_t)g->t0.tv_sec * 1000000000 + g->t0.tv_nsec +
		 g->sent * 1000000000 / g->o->rate;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
		if (now_ns >= due_ns)
			return;
		kn_producer_poll(g->prod, 0);
		nanosleep(&(struct timespec){(due_ns - now_ns) / 1000000000,
					     (due_ns - now_ns) % 1000000000},
			  NULL);
	}
}

static const char *input_topic(const struct kn_config *c, enum kn_event_type t)
{
	for (int i = 0; i < c->n_inputs; i++)
		if (c->inputs[i].type == t)
			return c->inputs[i].topic;
	return NULL;
}

/* With a registry, o's schema (the .avsc as written) is registered under
 * <topic>-value, as a registry-aware producer would, and its records carry
 * the id the registry gives: any registry-aware reader of the input topics
 * can then read them, and no id pinned in the config can name another
 * record there. schema_registry.register_outputs: false (only a pipeline
 * registers) is obeyed here too: the schema is only looked up. Whatever
 * the registry says is a failure of the run (-EIO, exit 1), not of the
 * config. */
static int register_input(struct gen *g, const struct kn_config *c, struct out *o,
			  const char *topic, char *errstr, size_t errsz)
{
	char subject[300];
	int err;

	kn_registry_subject(topic, subject, sizeof(subject));
	err = kn_registry_id(g->reg, subject, o->schema_text, c->registry_register, &o->id, errstr,
			     errsz);
	if (err == -ENOENT)
		snprintf(errstr, errsz,
			 "schema registry: '%s' has no such schema and "
			 "schema_registry.register_outputs is false: register %s there first",
			 subject, o->sc->file);
	return err ? -EIO : 0;
}

static int open_out(struct gen *g, const struct kn_config *c, enum kn_event_type t, char *errstr,
		    size_t errsz)
{
	struct out *o = &g->out[t];
	char path[4096];

	/* Files need no id; Kafka records are framed with one: the registry's
	 * when there is one, else the config's. */
	for (int i = 0; i < c->n_schemas && !o->sc; i++)
		if (c->schemas[i].type == t && (c->schemas[i].id >= 0 || g->o->out_dir || g->reg))
			o->sc = &c->schemas[i];
	if (!o->sc) {
		snprintf(errstr, errsz,
			 g->reg ? "no schema of type %s in the config"
				: "no schema of type %s with an id in the config (without "
				  "schema_registry.url, gen frames its records with schemas[].id)",
			 kn_event_type_name(t));
		return -EINVAL;
	}
	o->id = o->sc->id;
	if (kn_schema_read_file(o->sc->file, &o->schema, &o->schema_text, errstr, errsz))
		return -EINVAL;
	o->iface = avro_generic_class_from_schema(o->schema);
	if (!o->iface || avro_generic_value_new(o->iface, &o->val)) {
		snprintf(errstr, errsz, "avro: %s", avro_strerror());
		return -EINVAL;
	}
	if (g->o->out_dir) {
		snprintf(path, sizeof(path), "%s/%s.avro", g->o->out_dir, kn_event_type_name(t));
		if (mkdir(g->o->out_dir, 0777) && errno != EEXIST) {
			snprintf(errstr, errsz, "%s: %s", g->o->out_dir, strerror(errno));
			return -EIO;
		}
		if (!(o->fp = fopen(path, "we"))) {
			snprintf(errstr, errsz, "%s: %s", path, strerror(errno));
			return -EIO;
		}
		int err = kn_cwriter_open(o->fp, o->schema_text, "null", &o->file);
		if (err)
			snprintf(errstr, errsz, "%s: %s", path, strerror(-err));
		return err;
	}
	const char *topic = input_topic(c, t);
	if (!topic) {
		snprintf(errstr, errsz, "no input topic of type %s", kn_event_type_name(t));
		return -EINVAL;
	}
	if ((o->topic = kn_producer_topic(g->prod, topic)) < 0) {
		snprintf(errstr, errsz, "out of memory");
		return -ENOMEM;
	}
	return g->reg ? register_input(g, c, o, topic, errstr, errsz) : 0;
}

static int send_msg(struct gen *g, struct out *o, const void *p, size_t n)
{
	return kn_producer_send_wait(g->prod, o->topic, NULL, 0, p, n, 0, NULL, 0);
}

/* Serializes o->val framed with its schema id into g->buf; returns length. */
static size_t serialize(struct gen *g, struct out *o)
{
	int64_t len;

	kn_frame_put(g->buf, o->id);
	avro_writer_memory_set_dest(g->w, (char *)g->buf + KN_FRAME_LEN,
				    sizeof(g->buf) - KN_FRAME_LEN);
	if (avro_value_write(g->w, &o->val))
		return 0;
	len = avro_writer_tell(g->w);
	return (size_t)len + KN_FRAME_LEN;
}

/* One malformed record of the given kind (see gen.h) for type t. */
static int send_malformed(struct gen *g, struct out *o, int kind, enum kn_event_type t,
			  const struct user *u, int64_t ts, int64_t seq)
{
	struct rec r = {&o->val, o->sc};
	size_t n;

	fill(&g->rng, &r, t, u, ts, seq);
	if (kind == 3) {
		if (o->sc->roles[KN_ROLE_LAT])
			set_double(&r, KN_ROLE_LAT, 999.0, 0);
		else
			set_long(&r, KN_ROLE_STATUS, 5000, 0);
	} else if (kind == 4) {
		set_long(&r, KN_ROLE_TIMESTAMP, 32503680000000LL, 0); /* 3000-01-01 */
	}
	n = serialize(g, o);
	switch (kind) {
	case 0:
		return send_msg(g, o, "{\"not\": \"avro\"}", 15);
	case 1:
		kn_frame_put(g->buf, 999999);
		return send_msg(g, o, g->buf, n);
	case 2:
		return send_msg(g, o, g->buf, KN_FRAME_LEN + (n - KN_FRAME_LEN) / 2);
	case 5:
		return send_msg(g, o, NULL, 0);
	default:
		return send_msg(g, o, g->buf, n);
	}
}

/* --pool: the first good records of a type, framed as they were sent, to
 * be sent again in turn once there are pool of them. */
struct pool {
	uint8_t *bytes;
	size_t len, cap;
	size_t *end; /* end[k]: where record k ends in bytes */
	int64_t n;
};

static int pool_add(struct pool *pl, int64_t size, const uint8_t *p, size_t n)
{
	if (!pl->end && !(pl->end = kn_calloc((size_t)size, sizeof(*pl->end))))
		return -ENOMEM;
	if (pl->len + n > pl->cap) {
		size_t cap = pl->cap ? pl->cap : 1 << 20;
		while (cap < pl->len + n)
			cap *= 2;
		uint8_t *b = kn_realloc(pl->bytes, cap);
		if (!b)
			return -ENOMEM;
		pl->bytes = b;
		pl->cap = cap;
	}
	memcpy(pl->bytes + pl->len, p, n);
	pl->len += n;
	pl->end[pl->n++] = pl->len;
	return 0;
}

/* One good record: made (and kept, with --pool) or, once the pool is full,
 * the next of the pool again. */
static int emit_good(struct gen *g, struct out *o, struct pool *pl, struct rec *r,
		     enum kn_event_type t, const struct user *u, int64_t ts, int64_t i)
{
	int64_t pool = g->o->pool;

	if (pool && pl->n == pool) {
		int64_t k = i % pool;
		size_t from = k ? pl->end[k - 1] : 0;
		pace(g);
		return send_msg(g, o, pl->bytes + from, pl->end[k] - from);
	}
	fill(&g->rng, r, t, u, ts, i);
	pace(g);
	errno = 0;
	size_t n = serialize(g, o);
	if (!n)
		return -EIO;
	if (o->file) /* unframed */
		return kn_cwriter_append(o->file, g->buf + KN_FRAME_LEN, n - KN_FRAME_LEN);
	if (send_msg(g, o, g->buf, n))
		return -EIO;
	return pool ? pool_add(pl, pool, g->buf, n) : 0;
}

/* Writes count good records of type t and, in Kafka mode, malformed extra
 * ones spread evenly among them (Bresenham: position i is malformed when
 * floor((i + 1) * m / total) steps up). */
static int emit_type(struct gen *g, enum kn_event_type t, struct kn_gen_result *res)
{
	struct out *o = &g->out[t];
	const struct kn_gen_opts *op = g->o;
	int64_t m = op->out_dir ? 0 : op->malformed, total = op->count + m, bad = 0;
	struct rec r = {&o->val, o->sc};
	struct pool pl = {0};
	int err = 0;

	for (int64_t i = 0; i < total && !err; i++) {
		const struct user *u = &g->users[zipf_draw(&g->z, &g->rng)];
		int64_t ts = op->start_ms + op->span_ms * i / total + (int64_t)below(&g->rng, 1000);
		if (m && (i + 1) * m / total > i * m / total) {
			err = send_malformed(g, o, (int)(bad % 6), t, u, ts, i) ? -EIO : 0;
			bad++;
			continue;
		}
		if (!(err = emit_good(g, o, &pl, &r, t, u, ts, i)))
			res->written[t]++;
		if ((i & 1023) == 0 && g->prod)
			kn_producer_poll(g->prod, 0);
	}
	kn_free(pl.bytes);
	kn_free(pl.end);
	res->malformed[t] = bad;
	return err;
}

static void gen_dr(void *opaque, const struct kn_delivery *d)
{
	if (d->err)
		((struct gen *)opaque)->undelivered++;
}

static int gen_setup(struct gen *g, const struct kn_config *c, char *errstr, size_t errsz)
{
	g->users = kn_calloc((size_t)g->o->users, sizeof(*g->users));
	if (!g->users || zipf_init(&g->z, g->o->users, 1.1)) {
		snprintf(errstr, errsz, "out of memory for %lld users", (long long)g->o->users);
		return -ENOMEM;
	}
	for (int64_t i = 0; i < g->o->users; i++)
		gen_user(&g->rng, i, &g->users[i]);
	g->w = avro_writer_memory((const char *)g->buf, sizeof(g->buf));
	if (!g->o->out_dir) {
		/* Paced: each record should leave at once (latency tests). */
		static const char *const paced[] = {"linger.ms", "1", NULL};
		struct kn_producer_opts po = {KN_CLIENT_GEN_PRODUCER, gen_dr, g,
					      g->o->rate ? paced : NULL};
		int err = kn_producer_new(c, &po, &g->prod, errstr, errsz);
		if (err || (err = kn_sreg_open(c, &g->reg, errstr, errsz)))
			return err;
	}
	for (int t = 0; t < KN_EV_TYPES; t++) {
		int err = (g->o->types & (1u << t))
				  ? open_out(g, c, (enum kn_event_type)t, errstr, errsz)
				  : 0;
		if (err)
			return err;
	}
	kn_registry_destroy(g->reg); /* the ids are known: no more questions */
	g->reg = NULL;
	return 0;
}

static void gen_teardown(struct gen *g)
{
	for (int t = 0; t < KN_EV_TYPES; t++) {
		struct out *o = &g->out[t];
		kn_cwriter_close(o->file);
		if (o->fp)
			fclose(o->fp);
		if (o->iface) {
			avro_value_decref(&o->val);
			avro_value_iface_decref(o->iface);
		}
		if (o->schema)
			avro_schema_decref(o->schema);
		kn_free(o->schema_text);
	}
	kn_producer_destroy(g->prod, 0);
	kn_registry_destroy(g->reg);
	if (g->w)
		avro_writer_free(g->w);
	kn_free(g->z.cdf);
	kn_free(g->users);
}

/* Closes the --out-dir files, saying which one the disk did not take. */
static int close_files(struct gen *g, char *errstr, size_t errsz)
{
	int err = 0;

	for (int t = 0; t < KN_EV_TYPES; t++) {
		struct out *o = &g->out[t];
		if (!o->fp)
			continue;
		int e = kn_cwriter_close(o->file);
		o->file = NULL;
		errno = 0;
		if (!e && (fflush(o->fp) || ferror(o->fp)))
			e = errno ? -errno : -EIO;
		if (fclose(o->fp) && !e)
			e = errno ? -errno : -EIO;
		o->fp = NULL;
		if (e && !err) {
			snprintf(errstr, errsz, "writing %s/%s.avro: %s", g->o->out_dir,
				 kn_event_type_name((enum kn_event_type)t), strerror(-e));
			err = -EIO;
		}
	}
	return err;
}

int kn_gen_run(const struct kn_config *c, const struct kn_gen_opts *o, struct kn_gen_result *res,
	       char *errstr, size_t errstr_size)
{
	struct gen *g = kn_calloc(1, sizeof(*g));
	int err;

	memset(res, 0, sizeof(*res));
	if (!g) {
		snprintf(errstr, errstr_size, "out of memory");
		return -ENOMEM;
	}
	g->o = o;
	g->rng.s = o->seed;
	err = gen_setup(g, c, errstr, errstr_size);
	for (int t = 0; !err && t < KN_EV_TYPES; t++) {
		if (!(o->types & (1u << t)))
			continue;
		err = emit_type(g, (enum kn_event_type)t, res);
		if (err)
			snprintf(errstr, errstr_size, "writing %s records: %s",
				 kn_event_type_name(t),
				 err == -ENOMEM		      ? "out of memory for --pool"
				 : !g->prod && errno	      ? strerror(errno)
				 : !g->prod		      ? avro_strerror()
				 : kn_producer_error(g->prod) ? kn_producer_error(g->prod)
							      : "stopped");
	}
	if (!err && g->prod && kn_producer_flush(g->prod, kn_mono_ms() + 60000)) {
		snprintf(errstr, errstr_size, "%d record(s) not delivered within 60 s",
			 kn_producer_queued(g->prod));
		err = -ETIMEDOUT;
	}
	if (!err)
		err = close_files(g, errstr, errstr_size);
	if (!err && g->undelivered) {
		snprintf(errstr, errstr_size, "%lld record(s) could not be delivered",
			 (long long)g->undelivered);
		err = -EIO;
	}
	gen_teardown(g);
	kn_free(g);
	return err;
}
