/* demo: `kanon demo`, the zero-setup tour. Starts librdkafka's in-process
 * mock cluster, writes the embedded example config and schemas and a fresh
 * key to a temporary directory, generates logs of each kind (plus a few
 * malformed ones), runs the real pipeline over Kafka until drained, and
 * prints input beside output and the counts. Needs no broker. */
#ifndef KN_DEMO_H
#define KN_DEMO_H

#include <stddef.h>
#include <stdint.h>

int kn_demo(int64_t per_type, uint64_t seed, char *errstr, size_t errstr_size);

#endif
