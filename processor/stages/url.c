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

/* The offset where the authority of u[0..n) starts. */
static size_t authority_start(const char *u, size_t n)
{
	size_t i = 0;

	if (n >= 2 && u[0] == '/' && u[1] == '/')
		return 2;
	if (!n || !alpha(u[0]))
		return 0;
	while (i < n && (alpha(u[i]) || (u[i] >= '0' && u[i] <= '9') || u[i] == '+' ||
			 u[i] == '-' || u[i] == '.'))
		i++;
	if (i == n || u[i] != ':')
		return 0; /* no scheme: "host/path" */
	if (special(u, i)) {
		size_t a = i + 1;
		while (a < n && (u[a] == '/' || u[a] == '\\'))
			a++;
		return a;
	}
	if (n - i >= 3 && u[i + 1] == '/' && u[i + 2] == '/')
		return i + 3;
	return 0; /* "host:port/path", or a scheme without an authority */
}

size_t kn_url_host_span(const char *u, size_t n, size_t *at)
{
	size_t lead = 0, a, e;

	while (lead < n && (u[lead] == ' ' || u[lead] == '\t')) /* as logs pad them */
		lead++;
	u += lead, n -= lead;
	a = authority_start(u, n);
	for (e = a; e < n && !strchr("/\\?#", u[e]); e++)
		;
	for (size_t i = e; i > a; i--) /* userinfo ends at the last '@' */
		if (u[i - 1] == '@') {
			a = i;
			break;
		}
	for (size_t i = e; i > a; i--) /* a port; not inside an [IPv6] literal */
		if (u[i - 1] == ':' || u[i - 1] == ']') {
			if (u[i - 1] == ':')
				e = i - 1;
			break;
		}
	*at = lead + a;
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
