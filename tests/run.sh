#!/usr/bin/env bash
# The README's test command: set up, build (warnings are errors), start a real
# Kafka broker and a Schema Registry, run every ctest (unit, sanitizer-built unit, integration), stop
# the broker, exit with the tests' status. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

./deploy/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKANON_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
# Everything again under AddressSanitizer + UBSan (leaks included): every
# malformed-input, failed-allocation and crash/restart path the tests drive
# must be clean.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKANON_SANITIZE=ON -DKANON_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"

export KANON_KAFKA_PORT=${KANON_KAFKA_PORT:-39092}
export KANON_BROKERS=127.0.0.1:$KANON_KAFKA_PORT
started=0
if ! ./deploy/kafka-local.sh status >/dev/null 2>&1; then
	./deploy/kafka-local.sh start
	started=1
fi
# The Schema Registry the registry tests talk to (Apicurio Registry 2.4.2,
# in memory, its Confluent-compatible API).
export KANON_REGISTRY_PORT=${KANON_REGISTRY_PORT:-38081}
export KANON_REGISTRY_URL=http://127.0.0.1:$KANON_REGISTRY_PORT/apis/ccompat/v7
reg_started=0
if ! ./deploy/registry-local.sh status >/dev/null 2>&1; then
	./deploy/registry-local.sh start
	reg_started=1
fi
stop_services() {
	[ $reg_started -eq 0 ] || ./deploy/registry-local.sh stop
	[ $started -eq 0 ] || ./deploy/kafka-local.sh stop
}
trap stop_services EXIT

status=0
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	ctest --output-on-failure --timeout 900) || status=1
(cd build && ctest --output-on-failure --timeout 900) || status=1
exit $status
