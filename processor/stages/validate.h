/* validate: the bad-input gate. A record that fails here is dead-lettered
 * with a reason and never reaches the later stages.
 *
 * Checks: required roles present (event_id, timestamp); every mapped string
 * no longer than max_field_bytes; timestamp within [ts_min, ref + max_future]
 * where ref is the Kafka message time (deterministic on replay) or the wall
 * clock in file mode; lat in [-90, 90], lon in [-180, 180], both finite;
 * birth_year in [1900, year of the event]; status in [0, 999]. */
#ifndef KN_VALIDATE_H
#define KN_VALIDATE_H

#include <stdint.h>

#include "event.h"

enum kn_dead_reason {
	KN_DEAD_EMPTY,		/* no value (tombstone) */
	KN_DEAD_FRAMING,	/* not Confluent-framed Avro */
	KN_DEAD_UNKNOWN_SCHEMA, /* schema id not in the config */
	KN_DEAD_WRONG_TOPIC,	/* schema's log type differs from the topic's */
	KN_DEAD_DECODE,		/* malformed Avro binary */
	KN_DEAD_MISSING,	/* a required field is null */
	KN_DEAD_TOO_LONG,	/* a field exceeds max_field_bytes */
	KN_DEAD_RANGE,		/* an absurd value */
	KN_DEAD_BAD_IP,		/* IP field is not an address */
	KN_DEAD_REASONS
};

const char *kn_dead_reason_name(enum kn_dead_reason r);

struct kn_validate_opts {
	int64_t ts_min_ms;
	int64_t ts_max_future_ms;
	int64_t max_field_bytes;
};

/* Returns 0 if ev may proceed; otherwise -EINVAL with *reason and *detail
 * (a static string naming the role) set. */
int kn_validate(const struct kn_validate_opts *o, const struct kn_event *ev, int64_t ref_ms,
		enum kn_dead_reason *reason, const char **detail);

#endif
