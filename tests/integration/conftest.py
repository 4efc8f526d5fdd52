"""Shared fixtures for kanon's integration tests.

They drive the real `build/kanon` binary against the real Apache Kafka broker
that tests/run.sh starts (deploy/kafka-local.sh), and read every output with
fastavro, an Avro implementation that shares no code with avro-c. Outside CI a
missing broker skips the broker tests with a reason (exit code 77, which ctest
reports as skipped); in CI (CI=true) it is a failure.
"""
import io
import json
import os
import re
import signal
import socket
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import fastavro
import pytest

SRC = os.environ.get("KANON_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
KANON = os.environ.get("KANON_BIN", os.path.join(SRC, "build", "kanon"))
BROKER = os.environ.get("KANON_BROKERS", "127.0.0.1:%s" % os.environ.get("KANON_KAFKA_PORT", "39092"))


def broker_up(broker=None):
    try:
        out = subprocess.run(["kcat", "-b", broker or BROKER, "-L", "-m", "5"], capture_output=True,
                             timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and b"broker" in out.stdout


@pytest.fixture(scope="session")
def broker():
    if not broker_up():
        msg = "no Kafka broker answers at %s (start one: deploy/kafka-local.sh start)" % BROKER
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.exit(msg, returncode=77)
    return BROKER


def load_schema(name):
    with open(os.path.join(SRC, "schemas", name + ".avsc")) as f:
        return fastavro.parse_schema(json.load(f))


class Env:
    """A private config (own topics, own group, own key) in a temp dir."""

    def __init__(self, tmp, name, extra="", aggregates=None, window="1h", agg_extra="", broker=None,
                 privacy="dp"):
        self.broker = broker or BROKER
        self.tmp = str(tmp)
        self.prefix = "it-%s-%s" % (name, uuid.uuid4().hex[:8])
        # Each test its own erasure topics: erasures must not leak between tests.
        self.erasure_requests = self.prefix + ".erasure.requests"
        self.erasure_state = self.prefix + ".erasure.state"
        extra += "\nerasure:\n  requests_topic: %s\n  state_topic: %s\n" % (
            self.erasure_requests, self.erasure_state)
        if aggregates:
            extra += aggregates_yaml(self.prefix, aggregates, window, agg_extra, privacy)
        self.agg = self.prefix + ".agg"
        self.aggstats = self.prefix + ".aggstats"
        self.key = os.path.join(self.tmp, "master.key")
        subprocess.run([KANON, "keygen", self.key], check=True, capture_output=True)
        with open(os.path.join(SRC, "deploy", "kanon.example.yaml")) as f:
            text = f.read()
        # The example's own aggregates are replaced by the test's (none: the
        # at-least-once mode; some: the exactly-once mode).
        text = text[: text.index("# --- advertiser aggregates")]
        self.topics = {t: "%s.logs.%s" % (self.prefix, t) for t in ("device", "access", "search")}
        for t, topic in self.topics.items():
            text = text.replace("kanon.logs.%s.v1" % t, topic)
        self.out = self.prefix + ".deid"
        self.dlq = self.prefix + ".dlq"
        text = text.replace("kanon.deid.v1", self.out).replace("kanon.deadletter.v1", self.dlq)
        text = text.replace("group_id: kanon-deid", "group_id: %s-group" % self.prefix)
        text = text.replace("../schemas/", os.path.join(SRC, "schemas") + "/")
        self.config = os.path.join(self.tmp, "kanon.yaml")
        with open(self.config, "w") as f:
            f.write(text + extra)
        self.env = dict(os.environ, KANON_KEY_FILE=self.key, KANON_BROKERS=self.broker)

    def kanon(self, *args, timeout=600, check=True):
        r = subprocess.run([KANON, *args], env=self.env, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("kanon %s failed (%d):\n%s" % (" ".join(args), r.returncode, r.stderr.decode()))
        return r

    def popen(self, *args):
        """A background kanon. Its output goes to files, not pipes: a pipe
        nobody reads fills up and blocks the process on its next log line.
        p.stdout and p.stderr read those files."""
        self.n_popen = getattr(self, "n_popen", 0) + 1
        base = os.path.join(self.tmp, "kanon-%d" % self.n_popen)
        with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
            p = subprocess.Popen([KANON, *args], env=self.env, stdout=out, stderr=err)
        p.stdout, p.stderr = open(base + ".out", "rb"), open(base + ".err", "rb")
        return p


def _read(topic, committed, broker):
    """One pass of kcat to the end of every partition: (records, {partition: end offset})."""
    fmt = "%p\t%o\t%T\t%K\t%S\t%h\n%k%s"
    iso = ["-X", "isolation.level=read_committed"] if committed else []
    # auto.offset.reset: should "beginning" not be where the log starts any
    # more (retention or deletion moved it), librdkafka falls back to the
    # reset policy, and kcat's default, the end, would read nothing.
    r = subprocess.run(["kcat", "-b", broker or BROKER, "-C", *iso, "-X", "auto.offset.reset=earliest",
                        "-t", topic, "-o", "beginning", "-e", "-f", fmt],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    ends = {int(m.group(1)): int(m.group(2))
            for m in re.finditer(rb"Reached end of topic \S+ \[(\d+)\] at offset (\d+)", r.stderr)}
    data, pos, out = r.stdout, 0, []
    while pos < len(data):
        nl = data.index(b"\n", pos)
        p, o, ts, klen, vlen, hdrs = data[pos:nl].decode().split("\t", 5)
        pos = nl + 1
        klen, vlen = int(klen), int(vlen)
        key = data[pos:pos + klen] if klen >= 0 else None
        pos += max(klen, 0)
        value = data[pos:pos + vlen] if vlen >= 0 else None
        pos += max(vlen, 0)
        headers = {}
        if hdrs:
            for kv in hdrs.split(","):
                k, _, v = kv.partition("=")
                headers[k] = v
        out.append({"partition": int(p), "offset": int(o), "timestamp": int(ts), "key": key, "value": value,
                    "headers": headers})
    return out, ends


def _partitions(topic, broker):
    r = subprocess.run(["kcat", "-b", broker or BROKER, "-L", "-t", topic], capture_output=True, timeout=60)
    return sorted(int(p) for p in re.findall(rb"partition (\d+),", r.stdout))


def _high_watermarks(topic, broker):
    """Each partition's high watermark: where a read_uncommitted reader ends
    (kcat -Q's timestamp query answered 0 for partitions holding records)."""
    _, ends = _read(topic, False, broker)
    return ends


def consume(topic, committed=True, broker=None):
    """All records of topic as dicts: partition, offset, timestamp, key, value, headers.
    Reads with isolation.level=read_committed unless committed=False. A
    committed transaction's markers reach the partitions after the producer
    has returned (the coordinator writes them), so a read_committed reader
    can stop short at the last stable offset: read again until every
    partition of the topic was read to its high watermark (nothing pending)."""
    deadline = time.monotonic() + 60
    while True:
        out, ends = _read(topic, committed, broker)
        if not committed:
            return out
        parts = _partitions(topic, broker)
        hwm = _high_watermarks(topic, broker)
        if all(p in hwm and ends.get(p, -1) >= hwm[p] for p in parts):
            return out
        assert time.monotonic() < deadline, (
            "%s: read_committed ends %s never reached the high watermarks %s" % (topic, ends, hwm))
        time.sleep(0.2)


def end_offsets(topic, partitions=4, broker=None):
    args = ["kcat", "-b", broker or BROKER, "-Q"]
    for p in range(partitions):
        args += ["-t", "%s:%d:-1" % (topic, p)]
    r = subprocess.run(args, capture_output=True, timeout=60)
    total = 0
    for line in r.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "offset" and parts[3].lstrip("-").isdigit():
            total += max(int(parts[3]), 0)
    return total


def decode_deid(value):
    assert value[0] == 0, "magic byte"
    schema_id = int.from_bytes(value[1:5], "big")
    rec = fastavro.schemaless_reader(io.BytesIO(value[5:]), DEID)
    # fastavro turns timestamp-millis into datetime; tests compare milliseconds.
    rec["time_bucket"] = round(rec["time_bucket"].timestamp() * 1000)
    return schema_id, rec


def frame(schema_id, schema, record):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()


def produce_files(topic, payloads, tmp, partition=0):
    """Produces each payload as one message, in order, with kcat (one file = one message)."""
    d = os.path.join(str(tmp), "msgs-" + uuid.uuid4().hex[:6])
    os.makedirs(d)
    paths = []
    for i, p in enumerate(payloads):
        path = os.path.join(d, "%06d" % i)
        with open(path, "wb") as f:
            f.write(p)
        paths.append(path)
    for i in range(0, len(paths), 2000):  # in order, within the argument-list limit
        subprocess.run(["kcat", "-b", BROKER, "-P", "-t", topic, "-p", str(partition), *paths[i:i + 2000]],
                       check=True, capture_output=True, timeout=120)
    shutil.rmtree(d)


def decode_framed(value, schema):
    assert value[0] == 0, "magic byte"
    rec = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
    for k, v in rec.items():
        if hasattr(v, "timestamp"):  # timestamp-millis -> milliseconds
            rec[k] = round(v.timestamp() * 1000)
    return int.from_bytes(value[1:5], "big"), rec


DEID = load_schema("DeidEvent")
AGG = load_schema("AdAggregate")
AGG_STATS = load_schema("AggWindowStats")


def aggregates_yaml(prefix, defs, window="1h", extra="", privacy="dp"):
    """privacy "k-anonymity" gives exact counts, for tests that check the
    aggregation's mechanics against a ground truth; "dp" is the product's
    default."""
    lines = ["aggregate:", "  topic: %s.agg" % prefix, "  stats_topic: %s.aggstats" % prefix,
             "  transactional_id: %s-tx" % prefix, "  window: %s" % window]
    if "privacy:" not in extra:
        lines += ["  privacy:", "    mode: %s" % privacy]
    lines += ["  " + l for l in extra.splitlines() if l]
    lines.append("aggregates:")
    for d in defs:
        lines.append("  - {name: %s, dimensions: [%s], k: %d, geo_precision: %d}"
                     % (d["name"], ", ".join(d["dimensions"]), d["k"], d.get("geo_precision", 4)))
    return "\n" + "\n".join(lines) + "\n"


SCHEMAS_BY_ID = {1: load_schema("DeviceLog"), 2: load_schema("AccessLog"), 3: load_schema("SearchLog")}


def decoded_inputs(topics, broker=None):
    """Input records as fastavro reads them from Kafka; undecodable ones are skipped."""
    out = []
    for t in topics:
        for m in consume(t, committed=False, broker=broker):
            v = m["value"]
            if not v or len(v) < 5 or v[0] != 0:
                continue
            schema = SCHEMAS_BY_ID.get(int.from_bytes(v[1:5], "big"))
            if schema is None:
                continue
            try:
                out.append(fastavro.schemaless_reader(io.BytesIO(v[5:]), schema))
            except Exception:  # truncated: a dead letter, not an input record
                continue
    return out


def consents(rec):
    c = rec["consent"]
    return bool(c["analytics"] and c["ads_personalization"])


def is_minor(rec, minor_age=18):
    """The policy's rule: event year - birth year <= minor_age (by year)."""
    import datetime
    by = rec.get("birth_year")
    if by is None:
        return False
    ts = rec["ts"]
    year = ts.year if hasattr(ts, "year") else datetime.datetime.fromtimestamp(
        ts / 1000, datetime.timezone.utc).year
    return year - by <= minor_age


def kept(rec):
    """Does the default policy let rec into the de-identified stream? Both
    consents, and not a minor's."""
    return consents(rec) and not is_minor(rec)


# ---- the metrics endpoint ----

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\d+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return int(m.group(1)) if m else None


# ---- a broker of the test's own, to freeze, kill and restart ----

class PrivateBroker:
    """A single-node KRaft broker started by deploy/kafka-local.sh on ports of
    its own, with its state in a directory of its own, so a test can freeze
    (SIGSTOP), kill -9 and restart it without touching the shared broker."""

    def __init__(self, tmp):
        self.dir = os.path.join(str(tmp), "broker")
        self.port = free_port_pair()
        self.addr = "127.0.0.1:%d" % self.port
        self.env = dict(os.environ, KANON_KAFKA_PORT=str(self.port),
                        KANON_KAFKA_DIR=os.path.join(self.dir, "state"),
                        KANON_KAFKA_RUN=os.path.join(self.dir, "run"))
        self.script = os.path.join(SRC, "deploy", "kafka-local.sh")

    def start(self):
        r = subprocess.run([self.script, "start"], env=self.env, capture_output=True, timeout=180)
        assert r.returncode == 0, r.stderr.decode()

    def pid(self):
        with open(os.path.join(self.dir, "run", "kafka.pid")) as f:
            return int(f.read())

    def freeze(self):
        os.kill(self.pid(), signal.SIGSTOP)

    def thaw(self):
        os.kill(self.pid(), signal.SIGCONT)

    def kill(self):
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError("broker %d did not die" % pid)

    def stop(self):
        try:
            self.thaw()
        except (OSError, ValueError):
            pass
        subprocess.run([self.script, "stop"], env=self.env, capture_output=True, timeout=120)


def free_port_pair():
    """A port p with p+1 also free (kafka-local.sh puts the controller there)."""
    for _ in range(100):
        p = free_port()
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port pair")
