/* normalize: one canonical byte string per identifier, so one person hashes
 * one way ("Alice@Example.com " and "alice@example.com" are the same email;
 * "138 0013 8000" and "+86 138-0013-8000" the same phone).
 *
 * Rules (documented in README "Pseudonymization"):
 *   email, phone, device: first full-width forms to ASCII, NBSP/U+3000 to
 *            space, zero-width characters dropped
 *   email  : trim ASCII space, unwrap "mailto:" (and its "?..."), "<...>"
 *            (after a display name too) and a trailing ".", lower-case; a
 *            quoted local part that needs no quotes loses them; a domain
 *            with non-ASCII letters becomes IDNA A-labels (UTS #46); must
 *            be local@domain, no inner space
 *   phone  : E.164 "+<code><number>[;ext=N]" by libphonenumber's plans
 *            (phone_plan.h): a label ("tel:", "电话：") dropped; separators
 *            " -.()/", Unicode dashes and "ー" dropped; "00" means "+"; a
 *            "(0)" or a trunk "0" right after a country code dropped (not
 *            where numbers start with 0, as Italy's); without a prefix the
 *            region's trunk prefix is dropped and its code prepended,
 *            unless the digits already start with it and are longer than
 *            the region's usual national numbers; an extension ("ext 12",
 *            "x12", "#12", "转12", ";ext=12") kept as ";ext=12"; the code
 *            must exist and the national number fit its lengths, not all
 *            zeros; 8 to 15 digits in all
 *   device : "{...}" and "urn:uuid:" unwrapped, lower-cased, separators
 *            "-:._ " removed
 *   user, cookie: trimmed only (they are case-sensitive opaque tokens)
 *   device, user, cookie: a placeholder for a missing one ("N/A", "null",
 *            "-", "-1", "unknown", zeros only, ...) is no identifier, nor a
 *            device id of f's only or one many devices share
 *            (02:00:00:00:00:00, ...)
 * Pure functions; no allocation but libidn2's for a non-ASCII email domain. */
#ifndef KN_NORMALIZE_H
#define KN_NORMALIZE_H

#include <stdbool.h>
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

/* Whether cc (digits) is an E.164 country calling code kanon knows. */
bool kn_phone_region_valid(const char *cc);

#endif
