#!/usr/bin/env bash
# kanon's benchmarks, side by side with their baselines in the same run.
#
#   bench/run.sh                 the full run (10 M records end to end; ~30-60 min)
#   bench/run.sh --quick         a small corpus, every benchmark once (ctest: bench.quick)
#   options: --build-dir DIR     use this (Release) build instead of build-bench/
#            --out DIR           results here instead of bench/results/
#            --only LIST         only these benchmarks (e.g. b6 or b1,b5); the
#                                others' raw results in OUT are kept and reported
#            --baseline REV      B1 and B6 also for git revision REV (e.g. the
#                                commit before a change), built in a scratch copy
#            --b2-records N      B2 (and B3's capacity) with N records instead
#
# B1 in-process records/s per core: avro-c's generic decoder, kanon's decoder,
#    the pipeline, the pipeline with aggregates (same records in memory).
# B2 end to end on the real broker: kcat and Kafka's ConsumerPerformance
#    (consume only), and kn_copy (consume + produce the same bytes with kanon's
#    client settings: the physical limit) against `kanon run` (at-least-once with
#    its default workers and with one on every core, and exactly-once with the
#    example's aggregates), `kanon run` with librdkafka's own
#    consumer prefetch settings (the before of run.prefetch_memory_mb), and
#    `kanon run` with `kanon lat` attached, and a Kafka Streams application
#    doing the same de-identification (bench/peers/streams: Kafka Streams
#    3.9.1, Avro GenericRecord, at-least-once; --quick runs it too).
# B3 latency at 25/50/75 % of B2's kanon rate, from `kanon lat --json`, against
#    kn_copy --latency (the floor), in rounds taking turns at going first.
# B4 peak RSS against open groups, and against events at fixed groups.
# B5 ns per keyed hash: siphash, hmac-sha256, xxh3 on 8-64-byte inputs.
# B8 the aggregation topology one stage at a time (deid, bound, release, one
#    instance each over the whole backlog): records/s per instance and per
#    stage, and the capacity model built from them.
# B6 ns per search record for the text folder, the scrubber, the categorizer
#    and the whole pipeline (scrubbed query on); with --baseline REV the same
#    bench source is also built against REV, so before/after share one run.
# B7 the differentially private release under the example's budget: median
#    relative error of released users and events at group sizes 50 to 10 000,
#    and the cost of closing a window, dp against exact counts (same run).
#
# Writes OUT/REPORT.md, OUT/*.png (gnuplot) and OUT/raw/*.jsonl. Every
# figure is a median over repetitions, with min and max.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
build=""
out="$root/bench/results"
only=b1,b2,b3,b4,b5,b6,b7,b8
baseline=""
b2_records=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--build-dir) build=$2; shift ;;
	--out) out=$2; shift ;;
	--only) only=$2; shift ;;
	--baseline) baseline=$2; shift ;;
	--b2-records) b2_records=$2; shift ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
for b in ${only//,/ }; do
	case "$b" in
	b[1-8]) ;;
	*) echo "bench/run.sh: --only: unknown benchmark '$b' (b1 to b8)" >&2; exit 2 ;;
	esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
if [ -n "$baseline" ] && ! git -C "$root" rev-parse -q --verify "$baseline^{commit}" >/dev/null; then
	echo "bench/run.sh: --baseline: '$baseline' is not a commit of this repository" >&2
	exit 2
fi

if [ $quick -eq 1 ]; then
	N_B6=20000 N_B1=50000 REPS=3 N_B2=30000 REPS_E2E=1 B4_GROUPS="1000 10000" B4_FIXED=2000 LAT_SECS=3
else
	N_B6=200000 N_B1=1000000 REPS=5 N_B2=10000000 REPS_E2E=3 B4_GROUPS="10000 100000 1000000"
	B4_FIXED=100000 LAT_SECS=20
fi
[ -z "$b2_records" ] || N_B2=$b2_records

export KANON_KAFKA_PORT=${KANON_KAFKA_PORT:-39092}
BROKER=127.0.0.1:$KANON_KAFKA_PORT
export KANON_BROKERS=$BROKER
CACHE=${KANON_CACHE:-$HOME/.cache/kanon}
KAFKA_LIBS=$CACHE/kafka-3.9.1/libs

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- set-up and build ----
"$root/deploy/setup.sh" >&2
if [ -z "$build" ]; then
	build=$root/build-bench
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" -j"$(nproc)" --target kanon kn_bench kn_copy >&2
fi
KANON=$build/kanon
BENCH=$build/kn_bench
COPY=$build/kn_copy
# B2's Kafka Streams peer (bench/peers/streams/README.md), built once.
PEER=$root/bench/peers/streams/target/kanon-streams-peer.jar
if want b2; then
	log "B2: building the Kafka Streams peer (mvn)"
	mvn -q -B -f "$root/bench/peers/streams/pom.xml" package dependency:copy-dependencies >&2
fi
work=$(mktemp -d /tmp/kanon-bench.XXXXXX)
started_broker=0
cleanup() {
	[ $started_broker -eq 1 ] && "$root/deploy/kafka-local.sh" stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$out/raw"
# Each benchmark's results say where they were measured: a report may
# combine this run's with older ones (--only).
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
for b in ${only//,/ }; do
	rm -f "$out/raw/$b.jsonl" "$out/raw/$b-baseline.jsonl"
	echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, ${cpu:-unknown CPU}, kernel $(uname -r)" \
		>"$out/raw/$b.machine"
done
export KANON_KEY_FILE=$work/master.key
"$KANON" keygen "$KANON_KEY_FILE" >/dev/null

# A private config: own topics and group, schemas by absolute path; the
# aggregates section only when asked for.
make_config() { # prefix with_aggregates linger_ms
	local cfg=$work/$1.yaml
	sed -e "s#\.\./schemas/#$root/schemas/#" -e "s/kanon\.\(logs\|deid\|deadletter\|adagg\|erasure\)/$1.\1/g" \
		-e "s/group_id: kanon-deid/group_id: $1/" -e "s/linger.ms: \"20\"/linger.ms: \"$3\"/" \
		"$root/deploy/kanon.example.yaml" >"$cfg"
	# Device logs only: the corpus and the paced load are DeviceLog.
	sed -i -e '/logs[.]access[.]v1, type/d' -e '/logs[.]search[.]v1, type/d' "$cfg"
	if [ "$2" = no ]; then
		sed -i '/^# --- advertiser aggregates/,$d' "$cfg"
	fi
	echo "$cfg"
}

# ---- B1, B4, B5, B6: in process ----
# kn_bench built from this tree's bench source against revision $1, in a
# scratch copy (git archive: the working tree and its worktrees untouched).
build_baseline() {
	local src=$work/baseline
	mkdir -p "$src"
	git -C "$root" archive "$1" | tar -x -C "$src"
	cp "$root/bench/kn_bench.c" "$src/bench/kn_bench.c"
	cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$src/build" -j"$(nproc)" --target kn_bench >&2
	echo "$src/build/kn_bench"
}
if want b1 || want b4; then
	cfg=$(make_config b1 yes 20)
fi
if want b1; then
	log "B1: corpus of $N_B1 DeviceLog records (kanon gen --seed 42)"
	mkdir -p "$work/corpus"
	"$KANON" gen -c "$cfg" --seed 42 --count "$N_B1" --types device --out-dir "$work/corpus" >/dev/null
	"$BENCH" b1 "$cfg" "$work/corpus/device.avro" "$REPS" >>"$out/raw/b1.jsonl"
	if [ -n "$baseline" ]; then
		log "B1: the same against $baseline"
		old=$(build_baseline "$baseline")
		"$old" b1 "$cfg" "$work/corpus/device.avro" "$REPS" |
			sed "s/\"bench\":\"b1\"/\"bench\":\"b1\",\"rev\":\"$(git -C "$root" rev-parse --short "$baseline")\"/" \
				>>"$out/raw/b1-baseline.jsonl"
	fi
fi
if want b5; then
	log "B5: keyed hash cost"
	"$BENCH" b5 "$REPS" >>"$out/raw/b5.jsonl"
fi
if want b4; then
	log "B4: memory against open groups"
	for g in $B4_GROUPS; do "$BENCH" b4 "$cfg" "$g" 1 >>"$out/raw/b4.jsonl"; done
	for e in 5 20 80; do "$BENCH" b4 "$cfg" "$B4_FIXED" "$e" >>"$out/raw/b4.jsonl"; done
fi

if want b6; then
	log "B6: corpus of $N_B6 SearchLog records (kanon gen --seed 11)"
	cfg=$(make_config b6 no 20)
	sed -i -e '/^inputs:/a\  - {topic: b6.logs.search.v1, type: search}' "$cfg"
	printf 'policy:\n  emit_scrubbed_query: true\n' >>"$cfg"
	mkdir -p "$work/corpus6"
	"$KANON" gen -c "$cfg" --seed 11 --count "$N_B6" --types search --out-dir "$work/corpus6" >/dev/null
	"$BENCH" b6 "$cfg" "$work/corpus6/search.avro" "$REPS" >>"$out/raw/b6.jsonl"
	if [ -n "$baseline" ]; then
		log "B6: the same against $baseline"
		old=$work/baseline/build/kn_bench
		[ -x "$old" ] || old=$(build_baseline "$baseline")
		"$old" b6 "$cfg" "$work/corpus6/search.avro" "$REPS" |
			sed "s/\"bench\":\"b6\"/\"bench\":\"b6\",\"rev\":\"$(git -C "$root" rev-parse --short "$baseline")\"/" \
				>>"$out/raw/b6-baseline.jsonl"
	fi
fi
if want b7; then
	log "B7: the differentially private release (example budget)"
	cfg=$(make_config b7 yes 20)
	"$BENCH" b7 "$cfg" 20000 >>"$out/raw/b7.jsonl"
fi

# ---- the broker ----
if (want b2 || want b3) && ! kcat -b "$BROKER" -L -m 5 >/dev/null 2>&1; then
	"$root/deploy/kafka-local.sh" start >&2
	started_broker=1
fi

now_s() { date +%s.%N; }
# Runs a command; prints the CPU seconds (user + system) it used.
cpu_run() {
	python3 -c 'import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:]).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f" % (r.ru_utime + r.ru_stime))
sys.exit(rc)' "$@"
}
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }'; }

# ---- B2: end to end ----
if want b2; then
	p=b2-$$-$RANDOM
	# The same topics, with the example's aggregates: the exactly-once rounds.
	cfg_eos=$(make_config "$p" yes 20)
	mv "$cfg_eos" "$work/$p.eos.yaml"
	cfg_eos=$work/$p.eos.yaml
	cfg=$(make_config "$p" no 20)
	topic=$p.logs.device.v1
	log "B2: pre-loading $N_B2 records into $topic"
	"$KANON" gen -c "$cfg" --seed 7 --count "$N_B2" --types device >/dev/null
	for i in $(seq 1 "$REPS_E2E"); do
		log "B2 round $i: kcat"
		t=$(now_s)
		n=$(kcat -C -b "$BROKER" -t "$topic" -o beginning -e -q -f '\n' | wc -l)
		echo "{\"bench\":\"b2\",\"rep\":$i,\"client\":\"kcat\",\"records\":$n,\"seconds\":$(elapsed "$t")}" >>"$out/raw/b2.jsonl"

		log "B2 round $i: ConsumerPerformance"
		t=$(now_s)
		cp=$(java -Xmx512m -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.ConsumerPerformance \
			--bootstrap-server "$BROKER" --topic "$topic" --messages "$N_B2" \
			--group "$p-cp-$i" --timeout 60000 2>/dev/null | tail -1)
		s=$(elapsed "$t")
		# start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.ms, fetch.ms, fetch.MB.sec, fetch.nMsg.sec
		n=$(echo "$cp" | awk -F', *' '{print $5}')
		fetch=$(echo "$cp" | awk -F', *' '{print $10}')
		echo "{\"bench\":\"b2\",\"rep\":$i,\"client\":\"ConsumerPerformance\",\"records\":${n:-0},\"seconds\":$s,\"reported_fetch_rate\":${fetch:-0}}" >>"$out/raw/b2.jsonl"

		log "B2 round $i: kn_copy (consume + produce, kanon's client settings)"
		"$COPY" "$cfg" "$topic" "$p.copy$i" "$p-c-$i" |
			sed "s/\"bench\":\"copy\"/\"bench\":\"b2\",\"rep\":$i,\"client\":\"copy\"/" >>"$out/raw/b2.jsonl"

		# The default and the every-core run, in alternating order: the
		# first kanon run of a round is slower (position bias: alternating cancels it).
		run_default() {
			log "B2 round $i: kanon run"
			t=$(now_s)
			c=$(cpu_run "$KANON" run -c "$cfg" --until-eof --set "kafka.group_id=$p-k-$i" -l warn)
			echo "{\"bench\":\"b2\",\"rep\":$i,\"client\":\"kanon\",\"records\":$N_B2,\"seconds\":$(elapsed "$t"),\"cpu_seconds\":$c}" >>"$out/raw/b2.jsonl"
		}
		run_every_core() {
			log "B2 round $i: kanon run with a worker on every core (run.workers=$(nproc))"
			t=$(now_s)
			c=$(cpu_run "$KANON" run -c "$cfg" --until-eof --set "kafka.group_id=$p-w-$i" \
				--set "run.workers=$(nproc)" -l warn)
			echo "{\"bench\":\"b2\",\"rep\":$i,\"client\":\"kanon-every-core\",\"records\":$N_B2,\"seconds\":$(elapsed "$t"),\"cpu_seconds\":$c}" >>"$out/raw/b2.jsonl"
		}
		if [ $((i % 2)) -eq 1 ]; then run_default; run_every_core; else run_every_core; run_default; fi

		log "B2 round $i: kanon run, exactly-once with the example aggregates"
		t=$(now_s)
		c=$(cpu_run "$KANON" run -c "$cfg_eos" --until-eof --set "kafka.group_id=$p-e-$i" \
			--set "aggregate.transactional_id=$p-tx-$i" -l warn)
		echo "{\"bench\":\"b2\",\"rep\":$i,\"client\":\"kanon-eos\",\"records\":$N_B2,\"seconds\":$(elapsed "$t"),\"cpu_seconds\":$c}" >>"$out/raw/b2.jsonl"

		log "B2 round $i: kanon run with librdkafka's consumer prefetch defaults"
		t=$(now_s)
		"$KANON" run -c "$cfg" --until-eof --set "kafka.group_id=$p-d-$i" -l warn \
			--set kafka.consumer.queued.max.messages.kbytes=65536 \
			--set kafka.consumer.max.partition.fetch.bytes=1048576 \
			--set kafka.consumer.queued.min.messages=100000
		echo "{\"bench\":\"b2\",\"rep\":$i,\"client\":\"kanon-rdkafka-prefetch\",\"records\":$N_B2,\"seconds\":$(elapsed "$t")}" >>"$out/raw/b2.jsonl"

		log "B2 round $i: kanon run with kanon lat attached"
		t=$(now_s)
		"$KANON" run -c "$cfg" --until-eof --set "kafka.group_id=$p-l-$i" -l warn &
		kp=$!
		"$KANON" lat --pid $kp --json >"$work/lat.json" 2>"$work/lat.err" &
		lp=$!
		wait $kp
		s=$(elapsed "$t")
		kill -INT $lp 2>/dev/null || true
		wait $lp || true
		seen=$(python3 -c 'import json,sys; print(sum(json.loads(l)["batches"] for l in open(sys.argv[1]) if l.strip()))' "$work/lat.json" 2>/dev/null || echo 0)
		echo "{\"bench\":\"b2\",\"rep\":$i,\"client\":\"kanon+lat\",\"records\":$N_B2,\"seconds\":$s,\"lat_batches\":$seen}" >>"$out/raw/b2.jsonl"

		# Its seconds: KafkaStreams.start() to close() returning (it stops
		# itself after N_B2 records, and close() commits); wall_seconds
		# adds the JVM's start-up and the output topics' creation.
		log "B2 round $i: Kafka Streams peer (the same de-identification)"
		t=$(now_s)
		java -Xms256m -Xmx1g -jar "$PEER" --bootstrap-servers "$BROKER" --input "$topic" \
			--output "$p.streams$i.deid.v1" --dead-letter "$p.streams$i.deadletter.v1" \
			--application-id "$p-s-$i" --count "$N_B2" --key-file "$KANON_KEY_FILE" >"$work/streams.json"
		s=$(elapsed "$t")
		sed -e "s/\"bench\":\"b2\",/\"bench\":\"b2\",\"rep\":$i,/" -e "s/}\$/,\"wall_seconds\":$s}/" \
			"$work/streams.json" >>"$out/raw/b2.jsonl"
	done
fi

# ---- B3: latency under a paced load ----
if want b3 && [ ! -s "$out/raw/b2.jsonl" ]; then
	echo "bench/run.sh: B3 paces its load at shares of B2's kanon rate: run b2 too" >&2
	exit 2
fi
# One paced run through `kanon run` with `kanon lat` attached: appends its
# latencies to raw/b3.jsonl.
b3_kanon() { # pct rate rep
	local p=b3-$1-$3-$$-$RANDOM cfg port kp lp
	# The latency profile: the producer lingers 2 ms instead of 20.
	cfg=$(make_config "$p" no 2)
	"$KANON" gen -c "$cfg" --count 10 --types device >/dev/null # creates the topic
	port=$((20000 + RANDOM % 20000))
	"$KANON" run -c "$cfg" --metrics-addr 127.0.0.1:$port -l warn &
	kp=$!
	# Ready when the warm-up records are delivered: the output topic then
	# exists, so topic creation does not land in the measured latencies.
	python3 - "http://127.0.0.1:$port/metrics" <<'PY'
import re, sys, time, urllib.request
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        text = urllib.request.urlopen(sys.argv[1], timeout=1).read().decode()
        m = re.search(r"^kanon_end_to_end_seconds_count (\d+)$", text, re.M)
        if m and int(m.group(1)) > 0:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("bench: kanon did not deliver its warm-up records")
PY
	"$KANON" lat --pid $kp --json --interval "$LAT_SECS" --count 1 >"$work/lat3.json" 2>"$work/lat3.err" &
	lp=$!
	until grep -q attached "$work/lat3.err" 2>/dev/null || ! kill -0 $lp 2>/dev/null; do sleep 0.05; done
	log "B3: $1 % load = $2 records/s for $LAT_SECS s through kanon (round $3)"
	# --pool: making a synthetic record costs the generator about 4 us,
	# a core at 50 % load on a machine of two; replaying the first
	# 100 000 leaves the cores to the broker and the processor.
	"$KANON" gen -c "$cfg" --seed 3 --types device --rate "$2" --pool 100000 --count $(($2 * LAT_SECS)) >/dev/null
	wait $lp || true
	kill -TERM $kp
	wait $kp || true
	python3 -c '
import json, sys
for l in open(sys.argv[1]):
    if l.strip():
        r = json.loads(l)
        r.update(bench="b3", load_pct=int(sys.argv[2]), rate=int(sys.argv[3]), round=int(sys.argv[4]))
        print(json.dumps(r))' "$work/lat3.json" "$1" "$2" "$3" >>"$out/raw/b3.jsonl"
}

# The floor at the same rate on the same machine: kn_copy moving the same
# paced stream (kanon's client settings, the same linger), measured per
# batch as kanon's probes measure. Topics of its own: an input with only
# its warm-up records. Appends to FILE (raw/b3.jsonl; /dev/null to warm up).
b3_copy() { # pct rate rep file
	local p=b3-$1-$3-$$-$RANDOM-copy ccfg cp3
	ccfg=$(make_config "$p" no 2)
	"$KANON" gen -c "$ccfg" --count 10 --types device >/dev/null
	"$COPY" "$ccfg" "$p.logs.device.v1" "$p.out" "$p" --latency >"$work/copy3.json" 2>"$work/copy3.err" &
	cp3=$!
	until grep -q ready "$work/copy3.err" 2>/dev/null || ! kill -0 $cp3 2>/dev/null; do sleep 0.05; done
	log "B3: $1 % load = $2 records/s for $LAT_SECS s through kn_copy (round $3)"
	"$KANON" gen -c "$ccfg" --seed 3 --types device --rate "$2" --pool 100000 --count $(($2 * LAT_SECS)) >/dev/null
	wait $cp3 || true
	sed "s/\"bench\":\"copy-latency\"/\"bench\":\"b3-copy\",\"load_pct\":$1,\"rate\":$2,\"round\":$3/" \
		"$work/copy3.json" >>"$4"
}

if want b3; then
	rmax=$(python3 -c '
import json, statistics, sys
r = [json.loads(l) for l in open(sys.argv[1])]
print(int(statistics.median(x["records"] / x["seconds"] for x in r if x["client"] == "kanon")))' "$out/raw/b2.jsonl")
	# A broker that has just started answers its first minute slowly (the
	# JVM compiles its hot paths): whoever ran first paid for it. One paced
	# run at 50 % that nobody is measured on, then each load REPS_E2E
	# rounds, kanon and kn_copy taking turns at going first.
	b3_copy 50 $((rmax / 2)) 0 /dev/null
	for pct in 25 50 75; do
		rate=$((rmax * pct / 100))
		for i in $(seq 1 "$REPS_E2E"); do
			if [ $((i % 2)) -eq 1 ]; then
				b3_kanon $pct $rate $i
				b3_copy $pct $rate $i "$out/raw/b3.jsonl"
			else
				b3_copy $pct $rate $i "$out/raw/b3.jsonl"
				b3_kanon $pct $rate $i
			fi
		done
	done
fi

# ---- B8: the aggregation topology, one stage at a time ----
# Each stage alone over the whole backlog its upstream left (deid, then
# bound, then release, as one instance each): its records/s per instance.
if want b8; then
	p=b8-$$-$RANDOM
	cfg=$(make_config "$p" yes 20)
	log "B8: pre-loading $N_B2 records"
	"$KANON" gen -c "$cfg" --seed 7 --count "$N_B2" --types device >/dev/null
	for i in $(seq 1 "$REPS_E2E"); do
		for role in deid bound release; do
			log "B8 round $i: --role $role alone"
			t=$(now_s)
			c=$(cpu_run "$KANON" run -c "$cfg" --role $role --instance b8 --until-eof \
				--set "kafka.group_id=$p-$i" --set "aggregate.transactional_id=$p-tx-$i" \
				-l info 2>"$work/b8.log")
			s=$(elapsed "$t")
			if [ $role = deid ]; then
				n=$N_B2
				x=$(grep -o 'contributions=[0-9]*' "$work/b8.log" | tail -1 | cut -d= -f2)
			else
				n=$(grep -o "\[$role\] records=[0-9]*" "$work/b8.log" | tail -1 | cut -d= -f2)
				x=$(grep -o 'peak_state_bytes=[0-9]*' "$work/b8.log" | tail -1 | cut -d= -f2)
			fi
			echo "{\"bench\":\"b8\",\"rep\":$i,\"stage\":\"$role\",\"records\":${n:-0},\"seconds\":$s,\"cpu_seconds\":$c,\"extra\":${x:-0}}" >>"$out/raw/b8.jsonl"
		done
	done
	# Record sizes for the broker's bandwidth: input, de-identified, contribution.
	avg() { kcat -C -b "$BROKER" -t "$1" -o beginning -c 20000 -e -q -f '%S\n' 2>/dev/null |
		awk '{ s += $1 } END { printf "%.0f", NR ? s / NR : 0 }'; }
	echo "{\"bench\":\"b8\",\"stage\":\"sizes\",\"input\":$(avg "$p.logs.device.v1"),\"deid\":$(avg "$p.deid.v1"),\"contribution\":$(avg "$p-1.agg-contrib")}" >>"$out/raw/b8.jsonl"
fi

# ---- the report ----
python3 "$root/bench/report.py" "$out" "$quick" "$only"
log "wrote $out/REPORT.md"
