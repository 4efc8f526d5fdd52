/* encode: struct kn_deid -> Avro binary of schemas/DeidEvent.avsc.
 *
 * The field order below is the schema's; the schema text itself is compiled
 * into the binary from that file (kn_deid_schema_json), and a unit test
 * decodes this encoder's output with avro-c against it, so the two cannot
 * drift apart silently. */
#ifndef KN_ENCODE_H
#define KN_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

/* Upper bound of one encoded DeidEvent (all strings at their maximum). */
#define KN_DEID_MAX_BYTES 4096

extern const char kn_deid_schema_json[];

/* Writes the Avro binary encoding of d to buf (at least KN_DEID_MAX_BYTES).
 * Returns the number of bytes written; cannot fail. */
size_t kn_encode_deid(const struct kn_deid *d, uint8_t *buf);

/* AdAggregate and AggWindowStats (schemas/AdAggregate.avsc,
 * schemas/AggWindowStats.avsc). buf needs KN_AGG_MAX_BYTES. */
#define KN_AGG_MAX_BYTES 4096

struct kn_agg_row;
struct kn_agg_summary;
struct kn_dp_params;

extern const char kn_agg_schema_json[];
extern const char kn_agg_stats_schema_json[];

size_t kn_encode_agg_row(const struct kn_agg_row *r, int64_t window_ms, const char *person_kind,
			 uint8_t *buf);
/* mode is enum kn_agg_mode; dp is read under KN_AGG_DP. */
size_t kn_encode_agg_summary(const struct kn_agg_summary *s, int mode,
			     const struct kn_dp_params *dp, uint8_t *buf);

#endif
