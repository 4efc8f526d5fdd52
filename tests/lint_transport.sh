#!/usr/bin/env bash
# The Kafka transport is processor/io/: no other file of kanon includes
# librdkafka (or io/'s librdkafka-typed header). Prints the offenders.
set -euo pipefail
cd "$(dirname "$0")/../processor"
offenders=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"](librdkafka/|kafka_rd\.h)' \
	--include='*.c' --include='*.h' . | grep -v '^\./io/' || true)
if [ -n "$offenders" ]; then
	echo "librdkafka included outside processor/io/:" >&2
	echo "$offenders" >&2
	exit 1
fi
# And the transport really is there (the check above cannot pass vacuously).
grep -qE '#include <librdkafka/rdkafka.h>' io/kafka_rd.h
