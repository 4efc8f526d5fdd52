/* url: where a URL's host is, found the way a browser finds it.
 *
 * The host of a URL decides both what kanon may emit (generalize.h: its
 * registrable domain) and what it must withhold (policy.h: a sensitive
 * site), so both read it through these functions, which follow the WHATWG
 * URL Standard where a lenient parser and a strict one disagree:
 *   - leading and trailing C0 controls and spaces are trimmed, and every
 *     tab, LF and CR is deleted, wherever it is ("http://p\tornhub.com");
 *   - for the special schemes (http, https, ws, wss, ftp) any run of '/'
 *     and '\' after "scheme:" is skipped, so "http:\\host\p", "http:/host",
 *     "http:///host" and "http:host" all name "host"; file: has a host only
 *     after exactly two;
 *   - the authority ends at '/', '?' or '#', and at '\' for the special
 *     schemes only; userinfo ends at its last '@'; a port is a ':' outside
 *     an [IPv6] literal;
 *   - another scheme has an authority only after "//": "mailto:a@b.de",
 *     "tel:..." and "data:..." have no host; "//host", a bare "host/path"
 *     and "host:8080/path" (no scheme, as logs often write them) are read,
 *     but not "a@b.com" (an email, not a URL).
 * Thread-safe; nothing allocated per call. */
#ifndef KN_URL_H
#define KN_URL_H

#include <stdbool.h>
#include <stddef.h>

#define KN_URL_CLEAN_MAX 4096 /* a buffer for kn_url_clean: the longest URL read whole */

/* The URL u[0..n) as a browser reads it, before anything else: trimmed of
 * C0 controls and spaces, tabs, LFs and CRs deleted. Sets *clean to a
 * pointer into u when nothing inside needs deleting, else to buf, which
 * holds the first cap bytes of the result. Returns the clean length. */
size_t kn_url_clean(const char *u, size_t n, char *buf, size_t cap, const char **clean);

/* Flags of kn_url_host_span. KN_URL_ANY_HOST: a URL that has no host to a
 * browser is read as if its scheme were not there ("mailto:a@b.de" names
 * b.de, "file:///b.de/x" b.de), for a check that must err on the side of
 * finding one (a sensitive site), never for what is emitted. */
#define KN_URL_ANY_HOST 1u

/* The host of the clean URL u[0..n): sets *at to its offset and returns its
 * length (0 when there is none), without userinfo or port. *port_valid
 * (may be NULL) is false when a port is not a number up to 65535. The
 * host's bytes are not checked: callers validate it as they need. */
size_t kn_url_host_span(const char *u, size_t n, unsigned flags, size_t *at, bool *port_valid);

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
