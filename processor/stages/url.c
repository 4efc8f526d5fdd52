/* url: the host of a URL, as WHATWG's URL Standard finds it (url.h). */
#include "url.h"

#include <libpsl.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static bool alpha(char c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* The schemes whose URLs always have a host and whose parsers treat '\' as
 * '/' (the URL Standard's "special" schemes). */
static bool special(const char *s, size_t n)
{
	static const char *const names[] = {"http", "https", "ws", "wss", "ftp", "file"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t k = strlen(names[i]);
		if (n != k)
			continue;
		size_t j = 0;
		while (j < k && (s[j] | 0x20) == names[i][j])
			j++;
		if (j == k)
			return true;
	}
	return false;
}

/* Whether u[i..n) is ':' and a port: digits up to the path, "host:8080/x"
 * (a scheme-less host, not a scheme). */
static bool port_follows(const char *u, size_t n, size_t i)
{
	size_t j = i + 1;

	while (j < n && u[j] >= '0' && u[j] <= '9')
		j++;
	return j > i + 1 && (j == n || u[j] == '/' || u[j] == '\\' || u[j] == '?' || u[j] == '#');
}

/* Where the authority of u[0..n) starts (*at) and whether '\' ends it as '/'
 * does (*bs). False when the URL has no host: a scheme without "//"
 * ("mailto:a@b.de", "tel:..."), or file: without exactly two slashes. */
static bool authority_start(const char *u, size_t n, unsigned flags, size_t *at, bool *bs)
{
	size_t i = 0;

	*at = 0;
	*bs = true;
	if (n >= 2 && u[0] == '/' && u[1] == '/') {
		*at = 2;
		return true;
	}
	if (!n || !alpha(u[0]))
		return true; /* no scheme: "host/path" */
	while (i < n && (alpha(u[i]) || (u[i] >= '0' && u[i] <= '9') || u[i] == '+' ||
			 u[i] == '-' || u[i] == '.'))
		i++;
	if (i == n || u[i] != ':' || port_follows(u, n, i))
		return true; /* "host/path", "host:8080/path" */
	size_t a = i + 1;
	if (special(u, i)) {
		while (a < n && (u[a] == '/' || u[a] == '\\'))
			a++;
		if (i == 4 && (u[0] | 0x20) == 'f' && (u[1] | 0x20) == 'i' && a != i + 3 &&
		    !(flags & KN_URL_ANY_HOST))
			return false; /* file: has a host only after exactly two */
		*at = a;
		return true;
	}
	if (n - a >= 2 && u[a] == '/' && u[a + 1] == '/') {
		*at = a + 2;
		*bs = false;
		return true;
	}
	return flags & KN_URL_ANY_HOST; /* "mailto:a@b.de" reads as "a@b.de" */
}

size_t kn_url_clean(const char *u, size_t n, char *buf, size_t cap, const char **clean)
{
	size_t a = 0, b = n, k = 0;

	while (a < b && (unsigned char)u[a] <= 0x20)
		a++;
	while (b > a && (unsigned char)u[b - 1] <= 0x20)
		b--;
	if (!memchr(u + a, '\t', b - a) && !memchr(u + a, '\n', b - a) &&
	    !memchr(u + a, '\r', b - a)) {
		*clean = u + a;
		return b - a;
	}
	for (size_t i = a; i < b && k < cap; i++)
		if (u[i] != '\t' && u[i] != '\n' && u[i] != '\r')
			buf[k++] = u[i];
	*clean = buf;
	return k;
}

/* Whether u[i..e) is a port WHATWG takes: empty, or a number up to 65535. */
static bool port_ok(const char *u, size_t i, size_t e)
{
	unsigned long v = 0;

	for (; i < e; i++) {
		if (u[i] < '0' || u[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(u[i] - '0');
		if (v > 65535)
			return false;
	}
	return true;
}

size_t kn_url_host_span(const char *u, size_t n, unsigned flags, size_t *at, bool *port_valid)
{
	size_t a, e;
	bool bs;

	*at = 0;
	if (port_valid)
		*port_valid = true;
	if (!authority_start(u, n, flags, &a, &bs))
		return 0;
	for (e = a; e < n && u[e] != '/' && u[e] != '?' && u[e] != '#' && !(bs && u[e] == '\\');
	     e++)
		;
	bool schemeless = a <= 2;      /* "host/path", "//host": any scheme takes 3+ */
	for (size_t i = e; i > a; i--) /* userinfo ends at the last '@' */
		if (u[i - 1] == '@') {
			if (schemeless && !(flags & KN_URL_ANY_HOST))
				return 0; /* "a@b.com": an email, no URL */
			a = i;
			break;
		}
	for (size_t i = e; i > a; i--) /* a port; not inside an [IPv6] literal */
		if (u[i - 1] == ':' || u[i - 1] == ']') {
			if (u[i - 1] == ':') {
				if (port_valid)
					*port_valid = port_ok(u, i, e);
				e = i - 1;
			}
			break;
		}
	*at = a;
	return e - a;
}

static pthread_once_t psl_once = PTHREAD_ONCE_INIT;
static const psl_ctx_t *psl;

static void psl_load(void)
{
	/* The newest of libpsl's built-in list and Debian's publicsuffix. */
	psl = psl_latest(NULL);
	if (!psl)
		psl = psl_builtin();
}

const char *kn_url_registrable(const char *host)
{
	const char *prev = NULL;

	pthread_once(&psl_once, psl_load);
	for (const char *p = host; p;) {
		if (psl_is_public_suffix2(psl, p, PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE))
			return prev;
		prev = p;
		p = strchr(p, '.');
		if (p)
			p++;
	}
	return NULL;
}
