#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fold.h"
#include "generalize.h"
#include "kt.h"

static void test_geohash(void)
{
	char g[KN_GEOHASH_MAX + 1];

	/* Published vectors (geohash.org / Wikipedia). */
	KT_CHECK(kn_geohash(57.64911, 10.40744, 11, g) == 0);
	KT_STREQ(g, "u4pruydqqvj");
	KT_CHECK(kn_geohash(42.605, -5.603, 5, g) == 0);
	KT_STREQ(g, "ezs42");
	KT_CHECK(kn_geohash(39.9087, 116.3975, 5, g) == 0); /* Tiananmen */
	KT_STREQ(g, "wx4g0");
	KT_CHECK(kn_geohash(-33.8688, 151.2093, 6, g) == 0); /* Sydney */
	KT_STREQ(g, "r3gx2f");
	KT_CHECK(kn_geohash(90, 180, 3, g) == 0);
	KT_STREQ(g, "zzz");
	KT_CHECK(kn_geohash(-90, -180, 3, g) == 0);
	KT_STREQ(g, "000");
	KT_CHECK(kn_geohash(999, 10, 5, g) == -EINVAL);
	KT_CHECK(kn_geohash(10, -180.5, 5, g) == -EINVAL);
	KT_CHECK(kn_geohash(NAN, 10, 5, g) == -EINVAL);
	KT_CHECK(kn_geohash(10, 10, 0, g) == -EINVAL);
	KT_CHECK(kn_geohash(10, 10, 13, g) == -EINVAL);
}

/* The textbook bisection (each step halves [lo, hi) with (lo + hi) / 2),
 * as the oracle for kn_geohash's branch-free one. */
static void geohash_ref(double lat, double lon, int precision, char *out)
{
	static const char b32[] = "0123456789bcdefghjkmnpqrstuvwxyz";
	double lo[2] = {-180, -90}, hi[2] = {180, 90}, v[2] = {lon, lat};
	int axis = 0;

	for (int i = 0; i < precision; i++) {
		int ch = 0;
		for (int b = 0; b < 5; b++, axis ^= 1) {
			double mid = (lo[axis] + hi[axis]) / 2;
			ch = ch << 1 | (v[axis] >= mid);
			*(v[axis] >= mid ? &lo[axis] : &hi[axis]) = mid;
		}
		out[i] = b32[ch];
	}
	out[precision] = '\0';
}

static void test_geohash_matches_bisection(void)
{
	char g[KN_GEOHASH_MAX + 1], r[KN_GEOHASH_MAX + 1];

	srand(7);
	for (int i = 0; i < 200000; i++) {
		int prec = 1 + i % KN_GEOHASH_MAX;
		double lat = -90 + 180.0 * rand() / RAND_MAX,
		       lon = -180 + 360.0 * rand() / RAND_MAX;
		if (i % 4 == 1 || i % 4 == 2) /* on cell edges, where rounding would show */
			lat = -90 + 180.0 * (rand() % 4096) / 4096,
			lon = -180 + 360.0 * (rand() % 8192) / 8192;
		if (i % 4 == 2 && lat > -90 && lon > -180) /* a hair below an edge */
			lat = nextafter(lat, -91), lon = nextafter(lon, -181);
		KT_CHECK(kn_geohash(lat, lon, prec, g) == 0);
		geohash_ref(lat, lon, prec, r);
		if (strcmp(g, r)) {
			KT_STREQ(g, r);
			break;
		}
	}
}

static const char *pfx(const char *ip, int v4, int v6)
{
	static char out[KN_PREFIX_MAX];

	return kn_ip_prefix(ip, strlen(ip), v4, v6, out) ? "<invalid>" : out;
}

static void test_ip(void)
{
	KT_STREQ(pfx("203.0.113.77", 24, 48), "203.0.113.0/24");
	KT_STREQ(pfx("203.0.113.77", 16, 48), "203.0.0.0/16");
	KT_STREQ(pfx("203.0.113.77", 20, 48), "203.0.112.0/20");
	KT_STREQ(pfx("203.0.113.77", 0, 48), "0.0.0.0/0");
	KT_STREQ(pfx("2001:db8:abcd:12:1:2:3:4", 24, 48), "2001:db8:abcd::/48");
	KT_STREQ(pfx("2001:db8:abcd:12ff::1", 24, 56), "2001:db8:abcd:1200::/56");
	KT_STREQ(pfx("240e:49f:cc80:c7e3:fb9a:617e:61bb:f31c", 24, 48), "240e:49f:cc80::/48");
	KT_STREQ(pfx("::ffff:10.1.2.3", 24, 48), "10.1.2.0/24"); /* v4-mapped is IPv4 */
	KT_STREQ(pfx("::1", 24, 48), "::/3");
	/* Outside global unicast only the block's kind: a unique-local /48
	 * is one site's random id, link-local bits come from a MAC. */
	KT_STREQ(pfx("fc00:1234:5678::1", 24, 48), "fc00::/7");
	KT_STREQ(pfx("fd12:3456:789a:1::1", 24, 48), "fc00::/7");
	KT_STREQ(pfx("fe80::21a:2bff:fe3c:4d5e", 24, 48), "fe80::/10");
	KT_STREQ(pfx("ff02::1:ff3c:4d5e", 24, 48), "ff00::/8");
	KT_STREQ(pfx("3fff:ffff:1::1", 24, 48), "3fff:ffff:1::/48");
	KT_STREQ(pfx("999.1.1.1", 24, 48), "<invalid>");
	KT_STREQ(pfx("1.2.3", 24, 48), "<invalid>");
	KT_STREQ(pfx("abc", 24, 48), "<invalid>");
	KT_STREQ(pfx("", 24, 48), "<invalid>");
	/* what access logs write around an address */
	KT_STREQ(pfx("1.2.3.4:80", 24, 48), "1.2.3.0/24");
	KT_STREQ(pfx(" 1.2.3.4 ", 24, 48), "1.2.3.0/24");
	KT_STREQ(pfx("[2001:db8:abcd:12::1]:443", 24, 48), "2001:db8:abcd::/48");
	KT_STREQ(pfx("[2001:db8:abcd:12::1]", 24, 48), "2001:db8:abcd::/48");
	KT_STREQ(pfx("fe80::1%eth0", 24, 48), "fe80::/10");
	KT_STREQ(pfx("1.2.3.4:", 24, 48), "<invalid>");
	KT_STREQ(pfx("1.2.3.4:1234567", 24, 48), "<invalid>");
	KT_STREQ(pfx("[2001:db8::1]x", 24, 48), "<invalid>");
	KT_STREQ(pfx("1.2.3.4%eth0", 24, 48), "<invalid>");
	KT_STREQ(pfx("2001:db8::1::2", 24, 48), "<invalid>");
	/* An IPv6 address that carries an IPv4 one is that IPv4's prefix. */
	KT_STREQ(pfx("2002:c0a8:0a1e::1", 24, 48), "192.168.10.0/24");		       /* 6to4 */
	KT_STREQ(pfx("2002:cb00:7101:5::9", 24, 48), "203.0.113.0/24");		       /* 6to4 */
	KT_STREQ(pfx("2001:0:4136:e378:8000:63bf:3ffd:fdd2", 24, 48), "192.2.2.0/24"); /* Teredo */
	KT_STREQ(pfx("64:ff9b::203.0.113.77", 24, 48), "203.0.113.0/24");	       /* NAT64 */
	KT_STREQ(pfx("64:ff9b::cb00:714d", 24, 48), "203.0.113.0/24");
	KT_STREQ(pfx("64:ff9b:1:cb00:71:4d00::", 24, 48), "203.0.113.0/24"); /* RFC 6052 /48 */
	KT_STREQ(pfx("64:ff9b:1::203.0.113.77", 24, 48), "203.0.113.0/24");  /* ...and /96 */
	KT_STREQ(pfx("64:ff9b:1:abcd:ef00:102:300::", 24, 48), "::/3");	     /* u-octet not 0 */
	KT_STREQ(pfx("::203.0.113.77", 24, 48), "203.0.113.0/24");	     /* compatible */
	KT_STREQ(pfx("::ffff:0:203.0.113.77", 24, 48), "203.0.113.0/24");    /* translated */
	KT_STREQ(pfx("::", 24, 48), "::/3");
}

/* The IPv4 path parses and prints without libc: it must agree with glibc's
 * inet_pton/inet_ntop on what is an address and on the prefix, for strings
 * near the edges (leading zeros, 255/256, missing or extra parts, stray
 * bytes) as much as for plain ones. */
static void ip_oracle(const char *ip, int bits)
{
	uint8_t a[4];
	char want[INET_ADDRSTRLEN + 4] = "<invalid>", got[KN_PREFIX_MAX], trimmed[64];
	size_t b = strspn(ip, " \t"), e = strlen(ip);

	/* kanon trims blanks around an address, as logs pad them */
	while (e > b && (ip[e - 1] == ' ' || ip[e - 1] == '\t'))
		e--;
	snprintf(trimmed, sizeof(trimmed), "%.*s", (int)(e - b), ip + b);
	if (inet_pton(AF_INET, trimmed, a) == 1) {
		for (int i = 0; i < 4; i++) {
			int keep = bits - 8 * i;
			a[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
		}
		inet_ntop(AF_INET, a, want, INET_ADDRSTRLEN);
		snprintf(want + strlen(want), 5, "/%d", bits);
	}
	if (kn_ip_prefix(ip, strlen(ip), bits, 48, got))
		snprintf(got, sizeof(got), "<invalid>");
	if (strcmp(got, want))
		fprintf(stderr, "ip %s /%d: got %s, inet_pton says %s\n", ip, bits, got, want);
	KT_STREQ(got, want);
}

/* The IPv6 prefix is printed without libc too: it must read as inet_ntop
 * writes it (RFC 5952: the first longest zero run as "::", no leading
 * zeros), for global unicast addresses with zero groups anywhere and every
 * prefix length. */
static void test_ipv6_against_libc(void)
{
	uint64_t x = 0x9e3779b97f4a7c15u;
	uint8_t a[16];
	char text[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN + 4], got[KN_PREFIX_MAX];

	for (int t = 0; t < 20000; t++) {
		for (int i = 0; i < 16; i += 2) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			unsigned v = x % 3 == 0	  ? 0
				     : x % 3 == 1 ? (unsigned)(x >> 8 & 0xf) << (x >> 20 & 12)
						  : (unsigned)(x >> 24);
			a[i] = (uint8_t)(v >> 8), a[i + 1] = (uint8_t)v;
		}
		a[0] = (uint8_t)(0x20 | (a[0] & 0x1f)); /* 2000::/3 */
		if ((a[0] == 0x20 && a[1] == 0x02) || (a[0] == 0x20 && a[1] == 0x01))
			a[1] = 0x03; /* not 6to4 nor Teredo: those carry IPv4 */
		/* the config's range, 0 to 64, and the formatter's whole one */
		int bits = (int)((x >> 40) % (t % 2 ? 65 : 129));
		inet_ntop(AF_INET6, a, text, sizeof(text));
		KT_CHECK(kn_ip_prefix(text, strlen(text), 24, bits, got) == 0);
		for (int i = 0; i < 16; i++) {
			int keep = bits - 8 * i;
			a[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
		}
		inet_ntop(AF_INET6, a, want, INET6_ADDRSTRLEN);
		snprintf(want + strlen(want), 5, "/%d", bits);
		if (strcmp(got, want))
			fprintf(stderr, "ipv6 %s /%d: got %s, inet_ntop says %s\n", text, bits, got,
				want);
		KT_STREQ(got, want);
	}
	KT_STREQ(pfx("2001:db8:0:1::1", 24, 64), "2001:db8:0:1::/64");
	KT_STREQ(pfx("2400:0:0:1:2::", 24, 64), "2400:0:0:1::/64");
	KT_STREQ(pfx("2400:0:1:0:1::", 24, 64), "2400:0:1::/64");
	KT_STREQ(pfx("2a00:1:0:0::", 24, 0), "::/0");
}

static void test_ip_against_libc(void)
{
	static const char *parts[] = {"0",   "00",  "1",   "01",  "9",	 "10",	"99",
				      "100", "199", "255", "256", "300", "999", "1000",
				      "",    "a",   "0x1", " 1",  "1 ",	 "+1",	"-1"};
	const size_t np = sizeof(parts) / sizeof(parts[0]);
	static const char *whole[] = {"1.2.3.4.", ".1.2.3.4",	"1..2.3",	  "1.2.3.4.5",
				      "1.2.3",	  "4294967295", "1.2.3.4\n",	  "1.2.3.4/24",
				      "１.2.3.4", "0.0.0.0",	"255.255.255.255"};
	char ip[64];

	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		ip_oracle(whole[i], 24);
	for (size_t i = 0; i < np; i++)
		for (size_t j = 0; j < np; j++) {
			snprintf(ip, sizeof(ip), "%s.%s.7.%s", parts[i], parts[j],
				 parts[(i + j) % np]);
			ip_oracle(ip, 24);
			snprintf(ip, sizeof(ip), "10.%s.%s.1", parts[i], parts[j]);
			ip_oracle(ip, 13);
		}
	srand(7);
	for (int n = 0; n < 20000; n++) {
		snprintf(ip, sizeof(ip), "%d.%d.%d.%d", rand() % 256, rand() % 256, rand() % 256,
			 rand() % 256);
		ip_oracle(ip, rand() % 33);
	}
}

static const char *host(const char *url)
{
	static char out[KN_HOST_MAX + 1];

	return kn_url_host(url, strlen(url), out) ? "<invalid>" : out;
}

static void test_url_host(void)
{
	KT_STREQ(host("https://User:Pw@WWW.Example.COM:8080/p/a?q=1#f"), "www.example.com");
	KT_STREQ(host("http://example.com"), "example.com");
	KT_STREQ(host("https://example.com?x=1"), "example.com");
	KT_STREQ(host("https://example.com#top"), "example.com");
	KT_STREQ(host("//cdn.example.net/lib.js"), "cdn.example.net");
	KT_STREQ(host("example.org/path/x"), "example.org");
	KT_STREQ(host("HTTPS://news.sina.com.cn./a"), "news.sina.com.cn");
	KT_STREQ(host("android-app://com.tencent.mm/x"), "com.tencent.mm");
	KT_STREQ(host("http://[2001:db8::1]:8080/"), "ip-literal");
	KT_STREQ(host("http://10.0.0.1/admin"), "ip-literal");
	KT_STREQ(host("http://a@b@evil.com/"), "evil.com");
	KT_STREQ(host("http://exa mple.com/"), "<invalid>");
	KT_STREQ(host("http://a..b/"), "<invalid>");
	KT_STREQ(host("https://host:abc/"), "<invalid>");
	/* hosts as a browser finds them (the WHATWG URL Standard) */
	KT_STREQ(host("https:///Example.com/path"), "example.com");
	KT_STREQ(host("http:\\\\example.com\\p"), "example.com");
	KT_STREQ(host("http:/\\example.com?x"), "example.com");
	KT_STREQ(host("HTTP:example.com"), "example.com");
	KT_STREQ(host("  http://example.com:443\\x"), "example.com");
	KT_STREQ(host("http://example.com:44x/"), "<invalid>");
	KT_STREQ(host("example.com:8080/x"), "example.com");
	KT_STREQ(host("https://"), "<invalid>");
	KT_STREQ(host("mailto:someone"), "<invalid>");
	/* tabs and newlines deleted, controls and spaces trimmed */
	KT_STREQ(host("\x01 http://exa\tmple.com\r\n"), "example.com");
	KT_STREQ(host("ht\ntp:/\t/example.com "), "example.com");
	/* '\\' ends the authority of the special schemes only */
	KT_STREQ(host("foo://evil.com\\@good.com/"), "good.com");
	KT_STREQ(host("android-app://a.com\\@b.com:1/x"), "b.com");
	/* no authority without "//" for the others; file: after exactly two */
	KT_STREQ(host("mailto:zhangsan1990@qq.com"), "<invalid>");
	KT_STREQ(host("tel:1@evil.com"), "<invalid>");
	KT_STREQ(host("data:,x@evil.com"), "<invalid>");
	KT_STREQ(host("file://host/x"), "host");
	KT_STREQ(host("file:///evil.com/x"), "<invalid>");
	KT_STREQ(host("file:/evil.com"), "<invalid>");
	KT_STREQ(host("localhost:3000/u"), "localhost");
	KT_STREQ(host("zhangsan@example.com"), "<invalid>"); /* an email */
	KT_STREQ(host("//a@example.com/"), "<invalid>");
	/* ports a browser takes; escapes in the host decoded */
	KT_STREQ(host("http://example.com:65535/"), "example.com");
	KT_STREQ(host("http://example.com:/"), "example.com");
	KT_STREQ(host("http://example.com:65536/"), "<invalid>");
	KT_STREQ(host("http://%65xample%2Ecom/"), "example.com");
	KT_STREQ(host("http://%31%32%37.0.0.1/"), "ip-literal");
	KT_STREQ(host("http://ex%2Fample.com/"), "<invalid>");
	KT_STREQ(host("http://ex%zzample.com/"), "<invalid>");
	KT_STREQ(host("http://example.com%/"), "<invalid>");
	KT_STREQ(host(""), "<invalid>");
	KT_STREQ(host("/relative/path"), "<invalid>");
	char longhost[400] = "http://";
	memset(longhost + 7, 'a', 300);
	KT_STREQ(host(longhost), "<invalid>");
}

static const char *domain(const char *url)
{
	static char out[KN_HOST_MAX + 1];

	return kn_url_domain(url, strlen(url), out) ? "<none>" : out;
}

static void test_url_domain(void)
{
	/* The registrable domain, by the ICANN section of the PSL. */
	KT_STREQ(domain("https://news.sina.com.cn/a"), "sina.com.cn");
	KT_STREQ(domain("https://WWW.Example.COM/"), "example.com");
	KT_STREQ(domain("https://13812345678.example.cn/"), "example.cn");
	KT_STREQ(domain("https://zhangsan-hn0031k.github.io/"), "github.io");
	KT_STREQ(domain("https://a.b.c.bbc.co.uk/"), "bbc.co.uk");
	/* An Android app's referrer names its package: a domain backwards
	 * (not "android.gm", Gambia's). */
	KT_STREQ(domain("android-app://com.google.android.gm/"), "google.com");
	KT_STREQ(domain(" Android-App://com.tencent.mm"), "tencent.com");
	KT_STREQ(domain("android-app://com.example.app/https/www.example.com/x"), "example.com");
	KT_STREQ(domain("android-app://cn.zhangsan13812345678.app/"), "other");
	KT_STREQ(domain("android-app://mm/"), "other");
	KT_STREQ(domain("android-app://192.168.0.1/"), "ip-literal");
	KT_STREQ(domain("android-app://com。google。android．gm/"), "google.com"); /* IDNA's dots */
	KT_STREQ(domain("andr\toid-app://com.google.android.gm/"), "google.com");
	KT_STREQ(domain("android-ap://com.google.android.gm/"), "android.gm"); /* no app */
	/* '_' in a host's own label, not in a registered domain (no registry
	 * issues one: found by fuzz_text). */
	KT_STREQ(domain("http://my_host.example.com/x"), "example.com");
	KT_STREQ(domain("http://zhang_san.example/"), "other");
	KT_STREQ(domain("http://138.1256z_angxample.com/"), "other");
	/* A name under no public suffix is a private host's ("nas.local"),
	 * also when it ends in the root's dot written 。 or ． (IDNA maps both
	 * to '.': found by fuzz_text). */
	KT_STREQ(domain("http://zhangsans-macbook.local/"), "other");
	KT_STREQ(domain("http://zhangsans-macbook.local。/"), "other");
	KT_STREQ(domain("http://li-wei-laptop.corp．/"), "other");
	KT_STREQ(domain("http://www.example.com。/"), "example.com");
	KT_STREQ(domain("http://例子.中国。/"), "xn--fsqu00a.xn--fiqs8s");
	/* What IDNA lets through that no registry issues: NBSP becomes a space. */
	KT_STREQ(domain("\xc2\xa0zhangsan.com/"), "other");
	KT_STREQ(domain("http://-zhangsan.com/"), "other");
	/* IDN: one canonical form, A-labels; punycode and Unicode agree. */
	KT_STREQ(domain("https://例子.中国/"), "xn--fsqu00a.xn--fiqs8s");
	KT_STREQ(domain("https://xn--fsqu00a.xn--fiqs8s/"), "xn--fsqu00a.xn--fiqs8s");
	KT_STREQ(domain("https://ＷＷＷ.ＥＸＡＭＰＬＥ.ＣＯＭ/"), "example.com");
	/* A label that carries an identifier. */
	KT_STREQ(domain("https://11010519870703030x.cn/"), "other");
	KT_STREQ(domain("https://13812345678.cn/"), "other");
	KT_STREQ(domain("https://１３８１２３４５６７８.cn/"), "other");
	KT_STREQ(domain("https://u-5f2a9c81d07be.com/"), "other");
	KT_STREQ(domain("https://shop2024.com/"), "shop2024.com");
	KT_STREQ(domain("http://138-1234-5678.com/"), "other");
	KT_STREQ(domain("http://138_1234_5678.com/"), "other");
	KT_STREQ(domain("http://１３８－１２３４－５６７８.cn/"), "other");
	KT_STREQ(domain("http://ip-192-168-10-36.com/"), "other");
	/* IDN labels: the emitted punycode moves a label's ASCII to the front
	 * (138张1234三5678 is xn--13812345678-up8qg19o), and Chinese numerals
	 * spell digits: both forms are checked. */
	KT_STREQ(domain("http://138张1234三5678.cn/"), "other");
	KT_STREQ(domain("http://xn--13812345678-up8qg19o.cn/"), "other");
	KT_STREQ(domain("http://138é1234é5678.com/"), "other");
	KT_STREQ(domain("http://deadbeef张cafe1234.cn/"), "other");
	KT_STREQ(domain("http://一三八一二三四五六七八.cn/"), "other");
	KT_STREQ(domain("http://幺三八拐二三四五六七勾.com/"), "other");
	KT_STREQ(domain("http://一三八・一二三四・五六七八.jp/"), "other");
	KT_STREQ(domain("http://138一二三四5678.com/"), "other");
	KT_STREQ(domain("http://三一重工.com/"),
		 "xn--4gqra592jvs4c.com"); /* a name, not a number */
	/* An A-label's encoded part is base-36 noise: never read as hex or
	 * digits (it would make ordinary names, and a whole TLD, "other"). */
	KT_CHECK(strcmp(domain("http://郝莱航.com/"), "other"));
	KT_CHECK(strcmp(domain("http://涵炬一颗.com/"), "other"));
	KT_CHECK(strcmp(domain("http://姆淋杉防.cn/"), "other"));
	KT_CHECK(strcmp(domain("http://example.संगठन/"), "other"));
	KT_STREQ(domain("http://0xc0a80a1e.com/"), "other");
	KT_STREQ(domain("https://7-eleven.com/"), "7-eleven.com");
	/* A MAC written in groups is one hex run (the separators do not break
	 * it); words and a year between dashes are not. */
	KT_STREQ(domain("http://00-1a-2b-3c-4d-5e.cn/"), "other");
	KT_STREQ(domain("http://001a-2b3c-4d5e.com/"), "other");
	KT_STREQ(domain("http://mac-00-1a-2b-3c-4d-5e.com/"), "other");
	KT_STREQ(domain("http://00_1a_2b_3c_4d_5e.com/"), "other");
	KT_STREQ(domain("https://cafe-2024-deals.com/"), "cafe-2024-deals.com");
	KT_STREQ(domain("https://add-a-bed-2024.com/"), "add-a-bed-2024.com");
	/* Letters that pass for digits, digits cut apart by letters. */
	KT_STREQ(domain("http://l38OO138OOO.com/"), "other");
	KT_STREQ(domain("http://I38OOI38OOO.cn/"), "other");
	KT_STREQ(domain("http://138x1234x5678.cn/"), "other");
	KT_STREQ(domain("https://www.4399.com/"), "4399.com");
	KT_STREQ(domain("https://www.12306.cn/"), "12306.cn");
	KT_STREQ(domain("https://i18n.lollipop.com/"), "lollipop.com");
	KT_STREQ(domain("https://hello2024.com/"), "hello2024.com");
	KT_STREQ(domain("https://www.portfolio2024.com/"), "portfolio2024.com");
	KT_STREQ(domain("https://bilibili2022.com/"), "bilibili2022.com");
	/* An A-label IDNA would not have written: its bytes are the writer's
	 * choice (11 digits of a phone in xn--138123-45678a). */
	KT_STREQ(domain("http://xn--138123-45678a.cn/"), "other");
	KT_STREQ(domain("http://www.XN--BCHER-KVA.de/"), "xn--bcher-kva.de");
	KT_STREQ(domain("http://www.中国.cn/"), "xn--fiqs8s.cn");
	KT_STREQ(domain("http://ab--cd.xn--fiqs8s/"), "ab--cd.xn--fiqs8s"); /* only A-labels */
	/* Namespaces for people's names. */
	KT_STREQ(domain("http://www.joao.silva.nom.br/"), "other");
	KT_STREQ(domain("http://jean.dupont.nom.fr/"), "other");
	KT_STREQ(domain("http://zhang.san.name/"), "other");
	KT_STREQ(domain("http://www.name.com/"), "name.com");
	/* Wildcard suffixes (*.ck, *.bd, *.kawasaki.jp): three labels, each
	 * one checked. */
	KT_STREQ(domain("http://foo.13812345678.ck/"), "other");
	KT_STREQ(domain("http://a.110105198707030312.kawasaki.jp/"), "other");
	KT_STREQ(domain("http://x.13812345678.bd/"), "other");
	/* No implicit '*' rule: an unlisted TLD is not a suffix, so LAN and
	 * device names are not domains. */
	KT_STREQ(domain("http://zhangsan.13812345678/"), "other");
	KT_STREQ(domain("http://zhangsans-macbook.local:8080/"), "other");
	KT_STREQ(domain("http://desktop-7h3k2j1.lan/"), "other");
	KT_STREQ(domain("http://zhang-sans-iphone.home/"), "other");
	/* IPs in every notation, and names that spell one out. */
	KT_STREQ(domain("http://3232238108/"), "ip-literal");
	KT_STREQ(domain("http://0xC0A80A1E/"), "ip-literal");
	KT_STREQ(domain("http://192.168.010.029/"), "ip-literal");
	KT_STREQ(domain("http://10.1/"), "ip-literal");
	KT_STREQ(domain("http://192.168.10.36.nip.io/"), "ip-literal");
	KT_STREQ(domain("http://app.192-168-10-36.sslip.io/"), "ip-literal");
	KT_STREQ(domain("http://[2001:db8::1]/"), "ip-literal");
	/* Spelled with full-width digits and ideographic dots: IDNA maps them,
	 * and the mapped host is looked at again. */
	KT_STREQ(domain("http://１９２．１６８．１０．３６/"), "ip-literal");
	KT_CHECK(strcmp(domain("http://１９２-１６８-１０-３６.com/"), "192-168-10-36.com"));
	/* Not UTF-8, not a name, not registrable. */
	KT_STREQ(domain("https://ex\xff"
			"ample.com/"),
		 "other");
	KT_STREQ(domain("http://localhost:8080/"), "other");
	KT_STREQ(domain("http://com/"), "other");
	KT_STREQ(domain("/relative"), "<none>");
	KT_STREQ(domain(""), "<none>");
}

static void test_time_bucket(void)
{
	KT_CHECK(kn_time_bucket(0, 3600000) == 0);
	KT_CHECK(kn_time_bucket(3599999, 3600000) == 0);
	KT_CHECK(kn_time_bucket(3600000, 3600000) == 3600000);
	KT_CHECK(kn_time_bucket(1793491373775, 3600000) == 1793491200000);
	KT_CHECK(kn_time_bucket(-1, 3600000) == -3600000);
}

static void test_user_agent(void)
{
	struct kn_agent a;
#define UA(s) kn_ua_parse(s, strlen(s), &a)
	UA("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
	   "Chrome/120.0.0.0 Safari/537.36");
	KT_STREQ(a.browser, "Chrome");
	KT_CHECK(a.browser_major == 120);
	KT_STREQ(a.os, "Windows");
	KT_CHECK(a.os_major == 10);
	UA("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/120.0 Safari/537.36 "
	   "Edg/120.0.2210.91");
	KT_STREQ(a.browser, "Edge"); /* not Chrome, though it says so */
	/* Apps' own HTTP clients on Apple's systems: the Darwin release says
	 * which iOS (as uap-core reads them; ua_parser 1.0.2 with its 202610
	 * rules agrees on all of these) */
	{
		static const struct {
			const char *ua, *os;
			int major;
		} apple[] = {
			{"com.tencent.xin/8.0.40 CFNetwork/1410.0.3 Darwin/22.6.0", "iOS", 16},
			{"MyApp/1 CFNetwork/1494.0.7 Darwin/23.4.0", "iOS", 17},
			{"App/1 CFNetwork/3826.500.111.2.2 Darwin/24.4.0", "iOS", 18},
			{"Spotify/8 CFNetwork/978.0.7 Darwin/18.7.0", "iOS", 12},
			{"App/1 CFNetwork/672.0.8 Darwin/14.0.0", "iOS", 7},
			{"App/1 CFNetwork/711.1.16 Darwin/14.0.0", "iOS", 8},
			{"App/1 CFNetwork/811.5.4 Darwin/16.5.0 (x86_64)", "macOS", 10},
			{"App/1 CFNetwork/673.2.1 Darwin/13.1.0 (x86_64) (MacBookPro11,1)", "macOS",
			 10},
			{"App/1 CFNetwork/720.5.7 Darwin/14.5.0 (x86_64)", "macOS", 10},
			{"App/1 CFNetwork/808.3 Darwin/16.3.0 (x86_64)", "iOS", 10},
			{"App/1 CFNetwork/1474 Darwin/14.0.0", "iOS", -1}, /* no such pair */
			{"App/1 CFNetwork/1 Darwin/999.0", "iOS", -1},
			{"App/1 CFNetwork/1 Darwin/12.0.0", "iOS", -1},
			{"WeChat/8.0 (iPhone; build 1)", "iOS", -1},
			{"App/2.1 (iPad; Scale/2.00)", "iOS", -1},
		};
		for (size_t i = 0; i < sizeof(apple) / sizeof(apple[0]); i++) {
			UA(apple[i].ua);
			KT_STREQ(a.os, apple[i].os);
			KT_CHECK(a.os_major == apple[i].major);
		}
	}
	UA("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
	   "like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
	KT_STREQ(a.browser, "Safari");
	KT_CHECK(a.browser_major == 17);
	KT_STREQ(a.os, "iOS");
	KT_CHECK(a.os_major == 17);
	UA("Mozilla/5.0 (Linux; Android 13; V2055A) AppleWebKit/537.36 Chrome/110.0 Mobile "
	   "Safari/537.36 MicroMessenger/8.0.42.2460");
	KT_STREQ(a.browser, "WeChat");
	KT_CHECK(a.browser_major == 8);
	KT_STREQ(a.os, "Android");
	KT_CHECK(a.os_major == 13);
	UA("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0");
	KT_STREQ(a.browser, "Firefox");
	KT_STREQ(a.os, "Linux");
	UA("Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)");
	KT_STREQ(a.browser, "bot");
	UA("Mozilla/5.0 (Linux; Android 10; K; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
	   "Version/4.0 Chrome/120.0.6099.193 Mobile Safari/537.36");
	KT_STREQ(a.browser, "Android WebView"); /* an app's view, not the Chrome app */
	KT_CHECK(a.browser_major == 120);
	UA("Dalvik/2.1.0 (Linux; U; Android 11; M2012K11AC Build/RKQ1.200826.002)");
	KT_STREQ(a.browser, "Dalvik"); /* Android's HTTP client, no web view */
	KT_STREQ(a.os, "Android");
	KT_CHECK(a.os_major == 11);
	/* what a differential review against uap-core found */
	UA("Mozilla/5.0 (Linux; U; Android 13; zh-CN; V2219A) AppleWebKit/537.36 (KHTML, like "
	   "Gecko) Version/4.0 Chrome/76.0.3809.89 Mobile Safari/537.36 Quark/6.4.5");
	KT_STREQ(a.browser, "Android WebView"); /* Version/4.0: no Chrome app says it */
	UA("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/70.0 "
	   "Safari/537.36 Edge/18.19582");
	KT_STREQ(a.browser, "Edge");
	KT_CHECK(a.browser_major == 18);
	UA("Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
	   "OPiOS/16.0.14 Mobile/15E148 Safari/9537.53");
	KT_STREQ(a.browser, "Opera");
	UA("Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18");
	KT_STREQ(a.browser, "Opera");
	KT_CHECK(a.browser_major == 12); /* Presto's version is after Version/ */
	UA("Mozilla/5.0 (Linux; Android 9) AppleWebKit/537.36 Chrome/66.0 Mobile Safari/537.36 "
	   "T7/11.20 baidubrowser/7.19.13.0");
	KT_STREQ(a.browser, "Baidu");
	UA("NOKIA5700/ UCWEB7.0.2.37/28/999");
	KT_STREQ(a.browser, "UC Browser");
	UA("Mozilla/5.0 (Linux; Android 13; CUBOT P60 Build/TP1A) AppleWebKit/537.36 Chrome/120.0 "
	   "Mobile Safari/537.36");
	KT_STREQ(a.browser, "Chrome"); /* a phone brand, not a bot */
	const char *bots[] = {
		"facebookexternalhit/1.1", "WhatsApp/2.19.308 A",
		"Mozilla/5.0 (compatible; Yahoo! Slurp)",
		"Mozilla/5.0 (compatible; YandexMetrika/3.0; +http://yandex.com/bots)",
		"Mozilla/5.0 (Windows NT 6.1; Trident/6.0; BingPreview/1.0b)"};
	for (size_t i = 0; i < sizeof(bots) / sizeof(bots[0]); i++) {
		UA(bots[i]);
		KT_STREQ(a.browser, "bot");
	}
	UA("Mozilla/5.0 (Linux; Android 10; K) Chrome/120.0 Mobile Safari/537.36 (bottle)");
	KT_STREQ(a.browser, "Chrome"); /* "bot" only at a word's end */
	UA("MyApp/1.2.3 (iPhone; iOS 16.6; Scale/3.00)");
	KT_STREQ(a.os, "iOS");
	KT_CHECK(a.os_major == 16);
	UA("Mozilla/5.0 (Phone; OpenHarmony 4.1) AppleWebKit/537.36 Chrome/114.0 Mobile "
	   "Safari/537.36 ArkWeb/4.1.6.1");
	KT_STREQ(a.os, "HarmonyOS");
	UA("Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) "
	   "AppleWebKit/537.36 Chrome/52.0 Mobile Safari/537.36 Edge/15.15063");
	KT_STREQ(a.os, "Windows");
	UA("Mozilla/5.0 (compatible; PRTG Network Monitor (www.paessler.com); Windows)");
	KT_STREQ(a.os, "Windows");
	UA("Mozilla/5.0 (linux amd64; rv:1.0) Gecko/20100101 Firefox/1.0");
	KT_STREQ(a.os, "Linux");
	UA("");
	KT_STREQ(a.browser, "other");
	KT_STREQ(a.os, "other");
	KT_CHECK(a.browser_major == -1);
	UA("Chrome/99999999999999999999");
	KT_CHECK(a.browser_major == -1); /* absurd version: unknown, not overflow */
#undef UA
}

static void test_os_and_version(void)
{
	char fam[KN_FAMILY_MAX], ver[KN_VERSION_MAX];
	int32_t major;

	kn_os_parse("Android 13", 10, fam, &major);
	KT_STREQ(fam, "Android");
	KT_CHECK(major == 13);
	kn_os_parse("iOS 17.1", 8, fam, &major);
	KT_STREQ(fam, "iOS");
	KT_CHECK(major == 17);
	kn_os_parse("HarmonyOS 4.0", 13, fam, &major);
	KT_STREQ(fam, "HarmonyOS");
	KT_CHECK(major == 4);
	kn_os_parse("TempleOS", 8, fam, &major);
	KT_STREQ(fam, "other");
	KT_CHECK(major == -1);
	static const char *const versions[][2] = {
		{"5.2.13-beta", "5.2"},
		{"v6", "6"},
		{"8.0.42.2460", "8.0"},
		{"10.1 (123)", "10.1"},
		{"", ""},
		{"build-abc", "other"},
		{"13812345678", "other"},
		{"v13812345678", "other"},
		{"138.1234567", "other"},
		{"1234.5", "other"},
		{"5.2x", "other"},
		{"123456789012.1", "other"},
	};
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		kn_app_version(versions[i][0], strlen(versions[i][0]), ver);
		KT_STREQ(ver, versions[i][1]);
	}
	kn_os_parse("Android 13812345678", 19, fam, &major);
	KT_CHECK(major == -1); /* not a version */
}

/* The cache answers what the parser answers, for more distinct agents than
 * it has slots (so slots are taken over), asked in any order, repeatedly. */
static void test_user_agent_cache(void)
{
	static const char *const base[] = {
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/%d.0 "
		"Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS %d_1 like Mac OS X) Version/17.1 Mobile "
		"Safari/604.1",
		"Mozilla/5.0 (Linux; Android %d; V2055A) Chrome/110.0 Mobile MicroMessenger/8.0.42",
		"Mozilla/5.0 (X11; Linux x86_64; rv:%d.0) Gecko/20100101 Firefox/121.0",
	};
	struct kn_ua_cache *c = kn_ua_cache_new();
	char ua[256];
	int bad = 0;

	KT_CHECK(c != NULL);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 3 * KN_UA_CACHE_SLOTS; i++) {
			int k = (i * 7919 + round * 13) % (3 * KN_UA_CACHE_SLOTS);
			snprintf(ua, sizeof(ua), base[k % 4], k / 4);
			struct kn_agent want, got;
			kn_ua_parse(ua, strlen(ua), &want);
			kn_ua_parse_cached(c, ua, strlen(ua), &got);
			bad += strcmp(want.browser, got.browser) || strcmp(want.os, got.os) ||
			       want.browser_major != got.browser_major ||
			       want.os_major != got.os_major;
		}
	KT_CHECK(bad == 0);
	kn_ua_cache_destroy(c);
}

int main(void)
{
	char err[256];

	if (kn_fold_init(err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	KT_RUN(test_geohash);
	KT_RUN(test_geohash_matches_bisection);
	KT_RUN(test_ip);
	KT_RUN(test_ip_against_libc);
	KT_RUN(test_ipv6_against_libc);
	KT_RUN(test_url_host);
	KT_RUN(test_url_domain);
	KT_RUN(test_time_bucket);
	KT_RUN(test_user_agent);
	KT_RUN(test_os_and_version);
	KT_RUN(test_user_agent_cache);
	return kt_done();
}
