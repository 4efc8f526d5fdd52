/* url: where a URL's host is, found the way a browser finds it.
 *
 * The host of a URL decides both what kanon may emit (generalize.h: its
 * registrable domain) and what it must withhold (policy.h: a sensitive
 * site), so both read it through this one function, which follows the
 * WHATWG URL Standard where a lenient parser and a strict one disagree:
 *   - for the special schemes (http, https, ws, wss, ftp, file) any run of
 *     '/' and '\' after "scheme:" is skipped, so "http:\\host\p",
 *     "http:/host", "http:///host" and "http:host" all name "host";
 *   - the authority ends at '/', '\', '?' or '#'; userinfo ends at its last
 *     '@'; a port is a ':' outside an [IPv6] literal;
 *   - other schemes have an authority only after "://"; "//host" and a
 *     bare "host/path" (no scheme, as logs often write them) are read too.
 * Thread-safe; nothing allocated per call. */
#ifndef KN_URL_H
#define KN_URL_H

#include <stddef.h>

/* The host of u[0..n): sets *at to its offset and returns its length (0 when
 * there is none), without userinfo or port. The bytes are not checked:
 * callers validate the host as they need. */
size_t kn_url_host_span(const char *u, size_t n, size_t *at);

/* The registrable domain of host (lower-case ASCII, A-labels, no trailing
 * dot), by the ICANN section of the Public Suffix List only: a private
 * suffix (github.io, blogspot.com) counts as its owner's domain, so
 * name.github.io is github.io. Returns a pointer into host, or NULL when
 * the host is itself a public suffix, a single label, or ends in no listed
 * suffix (no implicit "*" rule: zhangsans-macbook.local is no domain). The
 * list is loaded on first use: the newest of libpsl's built-in one and
 * Debian's publicsuffix package. */
const char *kn_url_registrable(const char *host);

#endif
