#include "generalize.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- geohash ---- */

int kn_geohash(double lat, double lon, int precision, char *out)
{
	static const char b32[] = "0123456789bcdefghjkmnpqrstuvwxyz";
	double lat_lo = -90, lat_hi = 90, lon_lo = -180, lon_hi = 180;
	int even = 1; /* geohash starts with a longitude bit */

	if (precision < 1 || precision > KN_GEOHASH_MAX || !isfinite(lat) || !isfinite(lon) ||
	    lat < -90 || lat > 90 || lon < -180 || lon > 180)
		return -EINVAL;
	for (int i = 0; i < precision; i++) {
		int ch = 0;
		for (int b = 0; b < 5; b++) {
			double *lo = even ? &lon_lo : &lat_lo, *hi = even ? &lon_hi : &lat_hi;
			double v = even ? lon : lat, mid = (*lo + *hi) / 2;
			ch <<= 1;
			if (v >= mid) {
				ch |= 1;
				*lo = mid;
			} else {
				*hi = mid;
			}
			even = !even;
		}
		out[i] = b32[ch];
	}
	out[precision] = '\0';
	return 0;
}

/* ---- IP prefixes ---- */

static void mask_bits(uint8_t *a, int nbytes, int bits)
{
	for (int i = 0; i < nbytes; i++) {
		int keep = bits - 8 * i;
		if (keep >= 8)
			continue;
		a[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
}

/* out = net "/" bits; the hot path, so no printf. */
static void put_prefix(char *out, const char *net, int bits)
{
	size_t n = strlen(net);

	memcpy(out, net, n);
	out[n++] = '/';
	if (bits >= 100)
		out[n++] = (char)('0' + bits / 100);
	if (bits >= 10)
		out[n++] = (char)('0' + bits / 10 % 10);
	out[n++] = (char)('0' + bits % 10);
	out[n] = '\0';
}

int kn_ip_prefix(const char *ip, size_t len, int v4_bits, int v6_bits, char *out)
{
	char buf[INET6_ADDRSTRLEN + 1], net[INET6_ADDRSTRLEN];
	uint8_t a[16];
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, ip, len);
	buf[len] = '\0';
	if (memchr(buf, ':', len)) {
		if (inet_pton(AF_INET6, buf, a) != 1)
			return -EINVAL;
		if (memcmp(a, v4mapped, sizeof(v4mapped))) {
			mask_bits(a, 16, v6_bits);
			inet_ntop(AF_INET6, a, net, sizeof(net));
			put_prefix(out, net, v6_bits);
			return 0;
		}
		memmove(a, a + 12, 4);
	} else if (inet_pton(AF_INET, buf, a) != 1) {
		return -EINVAL;
	}
	mask_bits(a, 4, v4_bits);
	inet_ntop(AF_INET, a, net, sizeof(net));
	put_prefix(out, net, v4_bits);
	return 0;
}

int64_t kn_time_bucket(int64_t ts_ms, int64_t bucket_ms)
{
	int64_t q = ts_ms / bucket_ms;

	if (ts_ms % bucket_ms < 0)
		q--;
	return q * bucket_ms;
}

/* ---- user agents ---- */

/* Finds needle in hay[0..len); returns a pointer just past it, or NULL. */
static const char *find(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	const char *p = memmem(hay, len, needle, n);

	return p ? p + n : NULL;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Crawlers announce themselves with "bot", "spider" or "crawl" in any case.
 * One pass, comparing only where the first letter matches. */
static bool is_bot(const char *ua, size_t len)
{
	static const char *words[] = {"bot", "spider", "crawl"};

	for (size_t i = 0; i < len; i++) {
		char c = lower(ua[i]);
		if (c != 'b' && c != 's' && c != 'c')
			continue;
		for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
			size_t n = strlen(words[w]), k = 0;
			if (words[w][0] != c || i + n > len)
				continue;
			while (k < n && lower(ua[i + k]) == words[w][k])
				k++;
			if (k == n)
				return true;
		}
	}
	return false;
}

/* Leading decimal number at p (bounded by end), or -1. Capped to stay small. */
static int32_t major_at(const char *p, const char *end)
{
	int32_t v = -1;

	while (p && p < end && *p >= '0' && *p <= '9') {
		v = (v < 0 ? 0 : v) * 10 + (*p++ - '0');
		if (v > 99999)
			return -1;
	}
	return v;
}

static void set_family(char *dst, const char *name)
{
	size_t n = strnlen(name, KN_FAMILY_MAX - 1);

	memcpy(dst, name, n);
	dst[n] = '\0';
}

/* Browser product tokens ("Name/version"), most specific first: many
 * browsers also claim "Chrome/" and "Safari/", so the earliest entry found
 * anywhere in the string wins. */
#define B(tok, fam)                                                                                \
	{                                                                                          \
		tok, sizeof(tok) - 1, fam                                                          \
	}
static const struct {
	const char *token;
	size_t len;
	const char *family;
} browsers[] = {
	B("Edg", "Edge"),
	B("EdgA", "Edge"),
	B("EdgiOS", "Edge"),
	B("OPR", "Opera"),
	B("SamsungBrowser", "Samsung Internet"),
	B("MicroMessenger", "WeChat"),
	B("MQQBrowser", "QQ Browser"),
	B("QQBrowser", "QQ Browser"),
	B("UCBrowser", "UC Browser"),
	B("baiduboxapp", "Baidu"),
	B("HuaweiBrowser", "Huawei Browser"),
	B("MiuiBrowser", "MIUI Browser"),
	B("YaBrowser", "Yandex"),
	B("FxiOS", "Firefox"),
	B("Firefox", "Firefox"),
	B("CriOS", "Chrome"),
	B("Chrome", "Chrome"),
	B("okhttp", "okhttp"),
	B("curl", "curl"),
	B("Dalvik", "Android WebView"),
};

#undef B
#define N_BROWSERS (int)(sizeof(browsers) / sizeof(browsers[0]))

static int is_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* One pass over the '/'s: the product name before each is looked up. */
static int best_browser(const char *ua, size_t len, const char **ver)
{
	int best = N_BROWSERS;
	const char *p = ua, *end = ua + len;

	while ((p = memchr(p, '/', (size_t)(end - p)))) {
		const char *s = p;
		while (s > ua && is_token_char(s[-1]))
			s--;
		size_t n = (size_t)(p - s);
		for (int i = 0; i < best; i++) {
			if (browsers[i].len == n && !memcmp(browsers[i].token, s, n)) {
				best = i;
				*ver = p + 1;
				break;
			}
		}
		p++;
	}
	return best;
}

static void ua_browser(const char *ua, size_t len, struct kn_agent *a)
{
	const char *end = ua + len, *p, *ver = NULL;
	int b;

	if (is_bot(ua, len)) {
		set_family(a->browser, "bot");
		return;
	}
	b = best_browser(ua, len, &ver);
	if (b < N_BROWSERS) {
		set_family(a->browser, browsers[b].family);
		a->browser_major = major_at(ver, end);
		return;
	}
	if ((p = find(ua, len, "MSIE ")) ||
	    (find(ua, len, "Trident/") && (p = find(ua, len, "rv:")))) {
		set_family(a->browser, "IE");
		a->browser_major = major_at(p, end);
		return;
	}
	if (find(ua, len, "Safari/") || find(ua, len, "AppleWebKit/")) {
		set_family(a->browser, "Safari");
		p = find(ua, len, "Version/");
		a->browser_major = p ? major_at(p, end) : -1;
		return;
	}
	set_family(a->browser, "other");
}

static void ua_os(const char *ua, size_t len, struct kn_agent *a)
{
	const char *end = ua + len, *p;

	if ((p = find(ua, len, "HarmonyOS"))) {
		set_family(a->os, "HarmonyOS");
		a->os_major = (p < end && *p == ' ') ? major_at(p + 1, end) : -1;
	} else if ((p = find(ua, len, "Android"))) {
		set_family(a->os, "Android");
		a->os_major = (p < end && *p == ' ') ? major_at(p + 1, end) : -1;
	} else if ((p = find(ua, len, "iPhone OS ")) || (p = find(ua, len, "CPU OS "))) {
		set_family(a->os, "iOS");
		a->os_major = major_at(p, end);
	} else if ((p = find(ua, len, "Windows NT "))) {
		set_family(a->os, "Windows");
		a->os_major = major_at(p, end);
	} else if ((p = find(ua, len, "Mac OS X "))) {
		set_family(a->os, "macOS");
		a->os_major = major_at(p, end);
	} else if (find(ua, len, "CrOS ")) {
		set_family(a->os, "ChromeOS");
	} else if (find(ua, len, "Linux")) {
		set_family(a->os, "Linux");
	} else {
		set_family(a->os, "other");
	}
}

void kn_ua_parse(const char *ua, size_t len, struct kn_agent *out)
{
	/* Real user agents are short; a huge one gains nothing past 1 KiB. */
	if (len > 1024)
		len = 1024;
	out->browser_major = -1;
	out->os_major = -1;
	ua_browser(ua, len, out);
	ua_os(ua, len, out);
}

void kn_os_parse(const char *os, size_t len, char family[KN_FAMILY_MAX], int32_t *major)
{
	static const struct {
		const char *prefix, *family;
	} fam[] = {{"android", "Android"},     {"ios", "iOS"},
		   {"iphone os", "iOS"},       {"ipados", "iOS"},
		   {"harmonyos", "HarmonyOS"}, {"windows", "Windows"},
		   {"macos", "macOS"},	       {"mac os x", "macOS"},
		   {"linux", "Linux"},	       {"chromeos", "ChromeOS"}};
	const char *end = os + len, *p;

	*major = -1;
	for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		size_t n = strlen(fam[i].prefix);
		if (len >= n && !strncasecmp(os, fam[i].prefix, n) &&
		    (len == n || os[n] == ' ' || os[n] == '/' || os[n] == '_')) {
			set_family(family, fam[i].family);
			p = os + n;
			while (p < end && (*p == ' ' || *p == '/' || *p == '_'))
				p++;
			*major = major_at(p, end);
			return;
		}
	}
	set_family(family, "other");
}

void kn_app_version(const char *v, size_t len, char out[KN_VERSION_MAX])
{
	const char *end = v + len, *p = v;
	int dots = 0;
	size_t n = 0;

	if (p < end && (*p == 'v' || *p == 'V'))
		p++;
	while (p < end && n < KN_VERSION_MAX - 1) {
		if (*p >= '0' && *p <= '9') {
			out[n++] = *p++;
		} else if (*p == '.' && n && out[n - 1] != '.' && dots == 0) {
			dots++;
			out[n++] = *p++;
		} else {
			break;
		}
	}
	if (n && out[n - 1] == '.')
		n--;
	/* A version must be short digits; anything else is not a version. */
	if (n > 11)
		n = 0;
	out[n] = '\0';
}

/* ---- URL host ---- */

static int host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c >= 0x80;
}

static size_t skip_scheme(const char *u, size_t len)
{
	size_t i = 0;

	if (len >= 2 && u[0] == '/' && u[1] == '/')
		return 2;
	if (!len || !((u[0] | 0x20) >= 'a' && (u[0] | 0x20) <= 'z'))
		return 0;
	while (i < len &&
	       (((u[i] | 0x20) >= 'a' && (u[i] | 0x20) <= 'z') || (u[i] >= '0' && u[i] <= '9') ||
		u[i] == '+' || u[i] == '-' || u[i] == '.'))
		i++;
	if (i + 3 <= len && u[i] == ':' && u[i + 1] == '/' && u[i + 2] == '/')
		return i + 3;
	return 0;
}

int kn_url_host(const char *url, size_t len, char *out)
{
	size_t a, e, n = 0;

	while (len && (*url == ' ' || *url == '\t')) {
		url++;
		len--;
	}
	a = skip_scheme(url, len);
	e = a;
	while (e < len && !strchr("/?#\\", url[e]))
		e++;
	/* userinfo ends at the last '@' of the authority */
	for (size_t i = e; i > a; i--) {
		if (url[i - 1] == '@') {
			a = i;
			break;
		}
	}
	if (a < e && url[a] == '[') {
		snprintf(out, KN_HOST_MAX + 1, "ip-literal");
		return 0;
	}
	for (size_t i = a; i < e; i++) {
		if (url[i] == ':') { /* port: the rest must be digits */
			for (size_t j = i + 1; j < e; j++)
				if (url[j] < '0' || url[j] > '9')
					return -EINVAL;
			e = i;
			break;
		}
	}
	while (e > a && url[e - 1] == '.')
		e--;
	if (e == a || e - a > KN_HOST_MAX)
		return -EINVAL;
	for (size_t i = a; i < e; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c >= 'A' && c <= 'Z')
			c += 32;
		if (!host_char(c) || (c == '.' && (n == 0 || out[n - 1] == '.')))
			return -EINVAL;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	uint8_t v4[4];
	if (inet_pton(AF_INET, out, v4) == 1)
		snprintf(out, KN_HOST_MAX + 1, "ip-literal");
	return 0;
}

/* ---- whole events ---- */

static void host_of(const struct kn_val *v, char *out)
{
	out[0] = '\0';
	if (v->type == KN_VAL_STR && kn_url_host(v->s.p, v->s.len, out))
		out[0] = '\0';
}

int kn_generalize_event(const struct kn_gen_opts *o, const struct kn_event *ev, struct kn_deid *d,
			bool *geo_withheld)
{
	const struct kn_val *v = ev->role;
	struct kn_agent ua;

	d->type = ev->type;
	d->time_bucket_ms = kn_time_bucket(v[KN_ROLE_TIMESTAMP].l, o->time_bucket_ms);
	d->bucket_size_ms = o->time_bucket_ms;

	d->geo_cell[0] = '\0';
	*geo_withheld = false;
	if (v[KN_ROLE_LAT].type == KN_VAL_DOUBLE && v[KN_ROLE_LON].type == KN_VAL_DOUBLE) {
		const struct kn_val *c = &v[KN_ROLE_CONSENT_LOCATION];
		if (c->type == KN_VAL_BOOL && c->b)
			kn_geohash(v[KN_ROLE_LAT].d, v[KN_ROLE_LON].d, o->geohash_precision,
				   d->geo_cell);
		else
			*geo_withheld = true;
	}

	d->ip_prefix[0] = '\0';
	if (v[KN_ROLE_IP].type == KN_VAL_STR &&
	    kn_ip_prefix(v[KN_ROLE_IP].s.p, v[KN_ROLE_IP].s.len, o->ipv4_prefix, o->ipv6_prefix,
			 d->ip_prefix))
		return -EINVAL;

	d->ua_browser[0] = d->os_family[0] = '\0';
	d->ua_browser_major = d->os_major = -1;
	if (v[KN_ROLE_USER_AGENT].type == KN_VAL_STR) {
		kn_ua_parse(v[KN_ROLE_USER_AGENT].s.p, v[KN_ROLE_USER_AGENT].s.len, &ua);
		memcpy(d->ua_browser, ua.browser, sizeof(d->ua_browser));
		d->ua_browser_major = ua.browser_major;
		memcpy(d->os_family, ua.os, sizeof(d->os_family));
		d->os_major = ua.os_major;
	}
	/* An explicit OS field is better evidence than the user agent's claim. */
	if (v[KN_ROLE_OS].type == KN_VAL_STR)
		kn_os_parse(v[KN_ROLE_OS].s.p, v[KN_ROLE_OS].s.len, d->os_family, &d->os_major);

	d->app_version[0] = '\0';
	if (v[KN_ROLE_APP_VERSION].type == KN_VAL_STR)
		kn_app_version(v[KN_ROLE_APP_VERSION].s.p, v[KN_ROLE_APP_VERSION].s.len,
			       d->app_version);

	host_of(&v[KN_ROLE_URL], d->url_domain);
	if (!d->url_domain[0])
		host_of(&v[KN_ROLE_CLICKED_URL], d->url_domain);
	host_of(&v[KN_ROLE_REFERRER], d->referrer_domain);

	d->http_status = v[KN_ROLE_STATUS].type == KN_VAL_LONG ? (int32_t)v[KN_ROLE_STATUS].l : -1;
	d->consent_ads = v[KN_ROLE_CONSENT_ADS].type == KN_VAL_BOOL ? v[KN_ROLE_CONSENT_ADS].b : -1;
	d->consent_analytics = v[KN_ROLE_CONSENT_ANALYTICS].type == KN_VAL_BOOL
				       ? v[KN_ROLE_CONSENT_ANALYTICS].b
				       : -1;
	return 0;
}
