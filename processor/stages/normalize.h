/* normalize: one canonical byte string per identifier, so one person hashes
 * one way ("Alice@Example.com " and "alice@example.com" are the same email;
 * "138 0013 8000" and "+86 138-0013-8000" the same phone).
 *
 * Rules (documented in README "Pseudonymization"):
 *   email, phone: first full-width forms to ASCII, NBSP/U+3000 to space,
 *            zero-width characters dropped
 *   email  : trim ASCII space, unwrap "mailto:" (and its "?..."), "<...>"
 *            and a trailing ".", lower-case; must be local@domain, no
 *            inner space
 *   phone  : E.164 "+<digits>"; separators " -.()/" dropped; "00" means "+";
 *            "(0)" right after "+<code>" or "00<code>" dropped;
 *            without a prefix a leading trunk "0" is dropped and the default
 *            country calling code is prepended, unless the digits already
 *            start with it and are longer than that region's national
 *            numbers; the result has 8..15 digits
 *   device : lower-cased, separators "-:._ " removed
 *   user, cookie: trimmed only (they are case-sensitive opaque tokens)
 *   device, user, cookie: a placeholder for a missing one ("N/A", "null",
 *            "-", "unknown", zeros only, ...) is no identifier, nor a
 *            device id of f's only or one many devices share
 *            (02:00:00:00:00:00, ...)
 * Pure functions, no allocation. */
#ifndef KN_NORMALIZE_H
#define KN_NORMALIZE_H

#include <stddef.h>

#include "event.h"

#define KN_ID_MAX 256 /* longest canonical identifier kanon pseudonymizes */

struct kn_norm_opts {
	char phone_cc[4]; /* default country calling code, digits only ("86") */
};

/* Writes the canonical form of in[0..len) to out (KN_ID_MAX bytes, not
 * NUL-terminated). Returns its length (> 0), or -EINVAL when the value is not
 * a valid identifier of that kind (empty, malformed, too long). */
int kn_normalize(enum kn_id_kind kind, const char *in, size_t len, char *out,
		 const struct kn_norm_opts *opts);

#endif
