#!/usr/bin/env bash
# A real Apicurio Registry on 127.0.0.1 with in-memory (H2) storage, for the tests
# that need a Confluent-compatible Schema Registry (its ccompat API, /apis/ccompat/v7).
# Built from Maven Central alone: deploy/registry/pom.xml re-runs the Quarkus build on
# the published io.apicurio:apicurio-registry-app jar (see that file for why).
#
#   deploy/registry-local.sh fetch|start|stop|status|pid
#
#   fetch   build the runnable app into $KANON_CACHE/apicurio-VERSION/ (once; a
#           .complete marker is written last, so an interrupted build is redone)
#   start   fetch if needed, start in the background, wait until the ccompat API answers
#   stop    stop it (TERM, then KILL after 30 s) and remove its pid file and temp files
#   status  exit 0 iff it is running and answering
#   pid     print the server's pid (to signal or inspect it)
#
# Environment:
#   KANON_REGISTRY_PORT        HTTP port on 127.0.0.1 (default 38081)
#   KANON_CACHE                cache dir (default ~/.cache/kanon)
#   KANON_REGISTRY_RUN         run dir: pid file, log, JVM temp dir (default /tmp/kanon-registry-PORT)
#   KANON_REGISTRY_START_SECS  how long start waits for the API (default 120)
#   KANON_REGISTRY_HEAP        JVM -Xmx (default 512m)
#   KANON_REGISTRY_JAVA_HOME   JDK for the build and the server (default: a JDK 17 in
#                              /usr/lib/jvm if there is one, else the java on PATH)
#   APICURIO_VERSION, QUARKUS_VERSION
#                              what to build (default 2.4.2.Final on Quarkus 2.16.4.Final,
#                              the quarkus.version its parent POM names). Other versions
#                              are not expected to build: see deploy/registry/pom.xml.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/service-lib.sh"
APICURIO_VERSION=${APICURIO_VERSION:-2.4.2.Final}
QUARKUS_VERSION=${QUARKUS_VERSION:-2.16.4.Final}
CACHE=${KANON_CACHE:-$HOME/.cache/kanon}
APP=$CACHE/apicurio-$APICURIO_VERSION
PORT=${KANON_REGISTRY_PORT:-38081}
RUN=${KANON_REGISTRY_RUN:-/tmp/kanon-registry-$PORT}
PIDFILE=$RUN/registry.pid
LOG=$RUN/registry.log
WAIT=${KANON_REGISTRY_START_SECS:-120}
HEAP=${KANON_REGISTRY_HEAP:-512m}
URL=http://127.0.0.1:$PORT/apis/ccompat/v7

die() { echo "registry-local: $*" >&2; exit 1; }

log_tail() {
	echo "---- last 40 lines of $1 ----" >&2
	tail -n 40 "$1" >&2 || true
}

# The app is Java 11 bytecode on Quarkus 2.16, which supports JDK 11 and 17 (not
# JDK 25): prefer Debian's JDK 17 over whatever java or JAVA_HOME comes first.
pick_java() {
	local jh=${KANON_REGISTRY_JAVA_HOME:-}
	if [ -z "$jh" ]; then
		for d in /usr/lib/jvm/java-17-openjdk-*; do
			[ -x "$d/bin/java" ] && { jh=$d; break; }
		done
	fi
	if [ -n "$jh" ]; then
		[ -x "$jh/bin/java" ] || die "no $jh/bin/java"
		export JAVA_HOME=$jh
		JAVA=$jh/bin/java
	else
		command -v java >/dev/null || die "java not found: run deploy/setup.sh first"
		JAVA=java
	fi
}

is_running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# HTTP status of GET $URL/subjects, or 000 when nothing answers.
api_code() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$URL/subjects" 2>/dev/null || true
}

answers() { [ "$(api_code)" = 200 ]; }

fetch() {
	[ -f "$APP/.complete" ] && return 0
	command -v mvn >/dev/null || die "mvn not found: run deploy/setup.sh first"
	pick_java
	mkdir -p "$CACHE"
	# One build at a time per version; a second caller waits, then finds it done.
	exec 9>"$CACHE/apicurio-$APICURIO_VERSION.lock"
	flock 9
	if [ -f "$APP/.complete" ]; then
		exec 9>&-
		return 0
	fi
	echo "registry-local: building Apicurio Registry $APICURIO_VERSION (Quarkus $QUARKUS_VERSION) into $APP"
	rm -rf "$APP"
	mkdir -p "$APP/build"
	cp "$here/registry/pom.xml" "$here/registry/settings.xml" "$APP/build/"
	# -gs: Apicurio's POMs name repositories besides Central; settings.xml sends them
	# to Central (a user's ~/.m2/settings.xml still applies). The %prod property
	# beats the app's own "%prod.quarkus.package.type=legacy-jar" (an XML element in
	# the POM cannot start with %), so the result is target/quarkus-app.
	if ! (cd "$APP/build" && mvn -q -B -gs settings.xml package \
		-Dapicurio.version="$APICURIO_VERSION" -Dquarkus.version="$QUARKUS_VERSION" \
		-D%prod.quarkus.package.type=fast-jar) >"$APP/build.log" 2>&1; then
		log_tail "$APP/build.log"
		exec 9>&-
		die "build failed (full log: $APP/build.log)"
	fi
	[ -f "$APP/build/target/quarkus-app/quarkus-run.jar" ] ||
		{ exec 9>&-; die "build made no quarkus-app/quarkus-run.jar (log: $APP/build.log)"; }
	mv "$APP/build/target/quarkus-app" "$APP/quarkus-app"
	rm -rf "$APP/build"
	echo "apicurio $APICURIO_VERSION quarkus $QUARKUS_VERSION" >"$APP/.complete"
	exec 9>&-
	echo "registry-local: built $APP/quarkus-app ($(du -sh "$APP" | cut -f1))"
}

start() {
	command -v curl >/dev/null || die "curl not found: install it (apt-get install curl)"
	if is_running; then
		echo "registry-local: already running (pid $(cat "$PIDFILE")) at $URL"
		return 0
	fi
	[ "$(api_code)" = 000 ] || die "something else already answers on 127.0.0.1:$PORT"
	fetch
	pick_java
	rm -rf "$RUN"
	mkdir -p "$RUN/tmp"
	# Profile "prod" is active in a packaged app and the app's own properties set
	# %prod.quarkus.http.port, so the port is given under both names. Storage is the
	# default for this app: H2 in memory (nothing survives a stop). Auth is off by
	# default. Serial GC and C1 only: a small heap and a fast start on 2 cores.
	local jopts=(-Xms64m "-Xmx$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1
		-Djava.awt.headless=true "-Djava.io.tmpdir=$RUN/tmp"
		"-Dquarkus.http.host=127.0.0.1" "-D%prod.quarkus.http.host=127.0.0.1"
		"-Dquarkus.http.port=$PORT" "-D%prod.quarkus.http.port=$PORT"
		"-D%prod.quarkus.datasource.jdbc.min-size=2" "-D%prod.quarkus.datasource.jdbc.initial-size=2"
		"-D%prod.quarkus.datasource.jdbc.max-size=20")
	(cd "$RUN" && exec nohup "$JAVA" "${jopts[@]}" -jar "$APP/quarkus-app/quarkus-run.jar" \
		>"$LOG" 2>&1 </dev/null) &
	echo $! >"$PIDFILE"
	local i
	for ((i = 0; i < WAIT * 4; i++)); do
		if ! is_running; then
			log_tail "$LOG"
			rm -f "$PIDFILE"
			die "registry exited during start-up (log: $LOG)"
		fi
		if answers; then
			echo "registry-local: up at $URL (pid $(cat "$PIDFILE"))"
			return 0
		fi
		sleep 0.25
	done
	log_tail "$LOG"
	stop >/dev/null || true
	die "registry did not answer GET $URL/subjects within ${WAIT}s (log: $LOG)"
}

stop() {
	kn_stop_pidfile registry-local "$PIDFILE" || return 0
	# The log stays (it is replaced at the next start) for a look after a failed test.
	rm -rf "$RUN/tmp"
	echo "registry-local: stopped"
}

status() {
	if is_running && answers; then
		echo "registry-local: running at $URL (pid $(cat "$PIDFILE"))"
	elif is_running; then
		echo "registry-local: process $(cat "$PIDFILE") alive but $URL/subjects does not answer 200"
		return 1
	else
		echo "registry-local: not running"
		return 3
	fi
}

case "${1:-}" in
fetch) fetch ;;
start) start ;;
stop) stop ;;
status) status ;;
pid)
	is_running || { echo "registry-local: not running" >&2; exit 3; }
	cat "$PIDFILE"
	;;
*)
	echo "usage: $0 fetch|start|stop|status|pid   (port: KANON_REGISTRY_PORT, default 38081)" >&2
	exit 2
	;;
esac
