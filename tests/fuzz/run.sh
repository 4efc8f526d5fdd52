#!/usr/bin/env bash
# Builds the decoder fuzz target with clang (libFuzzer, ASan, UBSan) and runs
# it for SECONDS (default 30) from a seed corpus of random conforming datums.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
# BUILD_DIR is a configured kanon build (for test_decode_diff, which writes
# the seeds). Findings are left in BUILD_DIR/fuzz/ as crash-* files.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
secs=${2:-30}
out=$build/fuzz
mkdir -p "$out/corpus"
CLANG=${CLANG:-clang}
# The decoder and what it needs, instrumented; avro-c as installed.
$CLANG -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -I"$root/processor/core" -I"$root/processor/stages" \
	"$root/tests/fuzz/fuzz_decode.c" "$root/processor/stages/decode.c" \
	"$root/processor/core/event.c" "$root/processor/core/kn_alloc.c" \
	$(pkg-config --cflags --libs avro-c) -lm \
	-o "$out/fuzz_decode"
# avro-c allocates a string's declared length before reading it: let a forged
# 2^60 fail as an allocation (as it does outside ASan), not abort the run.
# avro-c also leaks on some malformed inputs (the reference, not the
# subject); kanon's decoder never allocates (test_pipeline counts), so leak
# checks are off here and below (-detect_leaks=0), whatever the caller set.
export ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0
KN_FUZZ_CORPUS=$out/corpus "$build/tests/test_decode_diff" >/dev/null
cd "$out"
exec ./fuzz_decode -detect_leaks=0 -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 corpus
