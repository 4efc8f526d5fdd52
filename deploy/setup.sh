#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root or with sudo available):
#   - build tools and C libraries from Debian's packages,
#   - a real Apache Kafka 3.9 broker from Maven Central jars (cached in $KANON_CACHE),
#   - Apicurio Registry 2.4.2 (a Confluent-compatible Schema Registry) from Maven Central,
#   - a Python venv with fastavro/confluent-kafka/pytest for the interoperability tests,
#   - a JDK and Maven for the benchmark's Kafka Streams peer (bench/peers/streams).
# Re-running it does nothing that is already done.
#
#   deploy/setup.sh              everything (build, broker, test tools)
#   deploy/setup.sh --build-only only what building and `kanon demo` need
set -euo pipefail

build_only=0
[ "${1:-}" = "--build-only" ] && build_only=1

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${KANON_CACHE:-$HOME/.cache/kanon}
KAFKA_VERSION=3.9.1
mkdir -p "$CACHE"

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

PKGS=(build-essential cmake pkg-config git ca-certificates curl openssl
	librdkafka-dev libavro-dev libxxhash-dev libsodium-dev libyaml-dev libmicrohttpd-dev
	libicu-dev libpsl-dev libidn2-dev publicsuffix libcurl4-openssl-dev libjson-c-dev
	zlib1g-dev libsnappy-dev liblzma-dev libzstd-dev libbz2-dev
	systemtap-sdt-dev libbpf-dev bpftool clang llvm libclang-rt-14-dev)
# default-jdk-headless: javac for bench/peers/streams (B2's Kafka Streams peer);
# prometheus: the real scraper and promtool for deploy/prometheus/; systemd:
# systemd-analyze for deploy/systemd/.
[ $build_only -eq 1 ] || PKGS+=(kcat clang-format python3 python3-venv default-jre-headless
	default-jdk-headless maven gnuplot-nox avro-bin prometheus systemd)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ $build_only -eq 1 ]; then
	echo "setup: ok (build dependencies)"
	exit 0
fi

# Kafka broker jars. The marker file is written last, so an interrupted download is redone.
libs=$CACHE/kafka-$KAFKA_VERSION/libs
if [ ! -f "$libs/.complete" ]; then
	echo "setup: fetching Apache Kafka $KAFKA_VERSION jars into $libs"
	rm -rf "$libs"
	mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
		-Dkafka.version="$KAFKA_VERSION" -DoutputDirectory="$libs" -DincludeScope=runtime
	ls "$libs"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null
	touch "$libs/.complete"
fi

# A Schema Registry for the registry tests: Apicurio Registry 2.4.2 from Maven
# Central, packaged once into the cache (deploy/registry-local.sh).
"$here/registry-local.sh" fetch

# Python tools used only by tests: an Avro reader that is not avro-c, OpenDP
# as the independent oracle of the aggregates' noise and thresholds,
# confluent-kafka's registry-aware AvroDeserializer as a Schema Registry peer,
# PyYAML to cross-check the deployment manifests, phonenumbers (libphonenumber's
# metadata) as the oracle of phone normalization, and cramjam/backports.zstd so
# that fastavro writes snappy and zstandard container files for `kanon process`.
# The marker names the package set, so a new set reinstalls.
venv=$CACHE/venv
pydeps=(fastavro pytest opendp==0.16.0 "confluent-kafka[avro]==2.6.1" pyyaml cramjam==2.14.0
	backports.zstd==1.8.0 phonenumbers==9.0.43)
if [ ! -f "$venv/.complete-5" ]; then
	echo "setup: creating $venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check "${pydeps[@]}"
	touch "$venv/.complete-5"
fi
echo "setup: ok (cache $CACHE)"
