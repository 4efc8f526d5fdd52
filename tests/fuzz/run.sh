#!/usr/bin/env bash
# Builds a fuzz target with clang (libFuzzer, ASan, UBSan) and runs it for
# SECONDS (default 30) from a seed corpus.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [decode|container|text]
# decode: kanon's decoder against avro-c on random schemas; seeds are random
# conforming datums from test_decode_diff. container: the Avro container
# reader of `kanon process` and the decoder splitting its blocks; seeds are
# small files in every codec (container_seeds.py, with KANON_PYTHON). text:
# the folder, scrubber, normalizer, lexicons and generalizers on arbitrary bytes,
# checking the shapes their headers promise; seeds are the lines of
# text_seeds.txt.
# BUILD_DIR is a configured kanon build. Findings are left in
# BUILD_DIR/fuzz-TARGET/ as crash-* files.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
secs=${2:-30}
target=${3:-decode}
out=$build/fuzz-$target
mkdir -p "$out/corpus"
CLANG=${CLANG:-clang}
flags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=undefined -I"$root/processor/core" -I"$root/processor/stages"
	-I"$root/processor/io")
common=("$root/processor/stages/decode.c" "$root/processor/core/event.c"
	"$root/processor/core/kn_alloc.c")
# avro-c allocates a string's declared length before reading it: let a forged
# 2^60 fail as an allocation (as it does outside ASan), not abort the run.
# avro-c also leaks on some malformed inputs (the reference, not the
# subject); kanon's decoder never allocates (test_pipeline counts), so leak
# checks are off for decode and container (-detect_leaks=0), whatever the
# caller set. The text functions allocate (IDNA, the lexicons): checked.
leaks=0
[ "$target" = text ] && leaks=1
export ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=$leaks
case $target in
decode)
	$CLANG "${flags[@]}" "$root/tests/fuzz/fuzz_decode.c" "${common[@]}" \
		$(pkg-config --cflags --libs avro-c) -lm -o "$out/fuzz"
	KN_FUZZ_CORPUS=$out/corpus "$build/tests/test_decode_diff" >/dev/null
	;;
container)
	$CLANG "${flags[@]}" "$root/tests/fuzz/fuzz_container.c" "$root/processor/io/container.c" \
		"$root/processor/core/log.c" \
		"${common[@]}" $(pkg-config --cflags --libs avro-c zlib snappy liblzma libzstd) \
		-lbz2 -lm -o "$out/fuzz"
	"${KANON_PYTHON:-python3}" "$root/tests/fuzz/container_seeds.py" "$out/corpus"
	;;
text)
	$CLANG "${flags[@]}" "$root/tests/fuzz/fuzz_text.c" "$root/processor/stages/fold.c" \
		"$root/processor/stages/url.c" \
		"$root/processor/stages/scrub.c" "$root/processor/stages/normalize.c" \
		"$root/processor/stages/generalize.c" "$root/processor/stages/policy.c" \
		"$root/processor/core/kn_alloc.c" -I"$build/generated" \
		$(pkg-config --cflags --libs icu-uc icu-i18n libidn2 libpsl libxxhash) -lm -o "$out/fuzz"
	i=0
	while IFS= read -r line; do
		i=$((i + 1))
		printf '%s' "$line" >"$out/corpus/seed$i"
	done <"$root/tests/fuzz/text_seeds.txt"
	;;
*)
	echo "run.sh: unknown target '$target' (decode, container, text)" >&2
	exit 2
	;;
esac
cd "$out"
exec ./fuzz -detect_leaks=$leaks -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 corpus
