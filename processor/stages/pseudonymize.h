/* pseudonymize: identifiers -> keyed pseudonyms (see keys.h for the PRF and
 * key derivation, normalize.h for the canonical forms).
 *
 * The key epoch is derived from the event time, not the processing time, so
 * replaying a topic gives the same pseudonyms. An identifier that fails
 * normalization ("N/A", an email without '@') is not pseudonymized: its
 * output field is null and the kind's invalid counter goes up. */
#ifndef KN_PSEUDONYMIZE_H
#define KN_PSEUDONYMIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "event.h"
#include "keys.h"
#include "normalize.h"

struct kn_pseudo_opts {
	int64_t epoch_ms; /* 0: single epoch 0 */
	bool link_kinds;
	struct kn_norm_opts norm;
};

/* Key epoch of an event time. */
int64_t kn_key_epoch(const struct kn_pseudo_opts *o, int64_t ts_ms);

/* Sets d->key_epoch, d->event_key and d->pid[]/has_pid[] from ev (which has
 * passed validation). With identifiers false every pid is absent (a minor's
 * event). invalid[kind] counts identifiers that did not normalize. Returns 0,
 * or -ENOKEY when the event's key epoch is retired. No allocation. */
int kn_pseudonymize(const struct kn_pseudo_opts *o, struct kn_keys *k, const struct kn_event *ev,
		    struct kn_deid *d, bool identifiers, uint64_t invalid[KN_ID_KINDS]);

/* Lower-case hex of a 16-byte PRF output into out (33 bytes, NUL-terminated). */
void kn_pid_hex(const uint8_t in[KN_PRF_BYTES], char out[KN_PID_HEX_LEN + 1]);

#endif
