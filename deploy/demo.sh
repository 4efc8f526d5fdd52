#!/usr/bin/env bash
# The README's demo command: set up what building needs, build, and run
# `kanon demo` (an in-process mock Kafka cluster: no broker, no config).
# Extra arguments go to `kanon demo` (e.g. --count 10000 --seed 7).
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/setup.sh --build-only
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target kanon
exec ./build/kanon demo "$@"
