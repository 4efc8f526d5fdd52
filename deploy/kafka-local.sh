#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, broker+controller) on 127.0.0.1 for tests and the README.
#
#   deploy/kafka-local.sh start|stop|status
#
# Environment:
#   KANON_KAFKA_PORT        broker port (default 39092); the controller uses PORT+1
#   KANON_KAFKA_DIR         state dir (default: a fresh mktemp dir, removed on stop); a
#                           given dir is kept on stop and restarted with its data
#   KANON_CACHE             where deploy/setup.sh cached the jars (default ~/.cache/kanon)
#   KANON_KAFKA_START_SECS  how long to wait for the broker to answer metadata (default 90)
set -euo pipefail
. "$(dirname "$0")/service-lib.sh"

KAFKA_VERSION=3.9.1
CACHE=${KANON_CACHE:-$HOME/.cache/kanon}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
PORT=${KANON_KAFKA_PORT:-39092}
CPORT=$((PORT + 1))
RUN=${KANON_KAFKA_RUN:-/tmp/kanon-kafka-$PORT}
PIDFILE=$RUN/kafka.pid
WAIT=${KANON_KAFKA_START_SECS:-90}

die() { echo "kafka-local: $*" >&2; exit 1; }

is_running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# The broker answers metadata once kcat can list it; that is the readiness test
# (a bound port alone is not: KRaft binds before the controller quorum is up).
answers_metadata() {
	kcat -b "127.0.0.1:$PORT" -L -m 3 2>/dev/null | grep -q "broker 1 at"
}

log_tail() {
	echo "---- last 40 lines of $1 ----" >&2
	tail -n 40 "$1" >&2 || true
}

start() {
	[ -d "$LIBS" ] || die "no Kafka jars in $LIBS: run deploy/setup.sh first"
	command -v java >/dev/null || die "java not found: run deploy/setup.sh first"
	command -v kcat >/dev/null || die "kcat not found: run deploy/setup.sh first"
	if is_running; then
		echo "kafka-local: already running (pid $(cat "$PIDFILE"), 127.0.0.1:$PORT)"
		return 0
	fi
	mkdir -p "$RUN"
	local data=${KANON_KAFKA_DIR:-$(mktemp -d /tmp/kanon-kafka-data.XXXXXX)}
	mkdir -p "$data/logs"
	echo "$data" >"$RUN/datadir"
	# No time-based retention: kanon stamps its output records with the
	# event's time bucket, and the test and bench corpora use fixed dates, so
	# a 7-day retention would delete them at the broker's next check
	# (every 5 minutes), in the middle of a test.
	cat >"$RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/logs
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.segment.bytes=268435456
message.max.bytes=10485760
log.retention.ms=-1
PROPS
	cat >"$RUN/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=WARN
PROPS
	local cp="$LIBS/*"
	local jopts=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
		"-Dlog4j.configuration=file:$RUN/log4j.properties")
	# Format once: a state dir that holds meta.properties is restarted as it
	# is. The cluster id is the last line of random-uuid's output (log4j may
	# print before it) and must look like one.
	if [ ! -f "$data/logs/meta.properties" ]; then
		local cid
		cid=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
		[[ $cid =~ ^[A-Za-z0-9_-]{22}$ ]] || die "random-uuid gave no cluster id: '$cid'"
		java "${jopts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cid" \
			-c "$RUN/server.properties" >"$RUN/format.log" 2>&1 ||
			{ log_tail "$RUN/format.log"; die "storage format failed"; }
	fi
	nohup java "${jopts[@]}" -cp "$cp" kafka.Kafka "$RUN/server.properties" \
		>"$RUN/kafka.log" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	local i
	for ((i = 0; i < WAIT * 2; i++)); do
		if ! is_running; then
			log_tail "$RUN/kafka.log"
			die "broker exited during start-up"
		fi
		if answers_metadata; then
			echo "kafka-local: broker up at 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data $data)"
			return 0
		fi
		sleep 0.5
	done
	log_tail "$RUN/kafka.log"
	stop || true
	die "broker did not answer metadata within ${WAIT}s"
}

stop() {
	kn_stop_pidfile kafka-local "$PIDFILE" || return 0
	if [ -f "$RUN/datadir" ] && [ -z "${KANON_KAFKA_DIR:-}" ]; then
		rm -rf "$(cat "$RUN/datadir")"
		rm -f "$RUN/datadir"
	fi
	echo "kafka-local: stopped"
}

status() {
	if is_running && answers_metadata; then
		echo "kafka-local: running at 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
	elif is_running; then
		echo "kafka-local: process $(cat "$PIDFILE") alive but not answering metadata"
		return 1
	else
		echo "kafka-local: not running"
		return 3
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status   (port: KANON_KAFKA_PORT, default 39092)" >&2
	exit 2
	;;
esac
