"""kanon with a real Schema Registry (Apicurio Registry 2.4.2, its Confluent-
compatible API, started by tests/run.sh through deploy/registry-local.sh),
checked with clients nobody here wrote: confluent-kafka's registry-aware
AvroSerializer writes the input, its AvroDeserializer reads kanon's output.

- writer schemas are fetched by framing id, including an evolved version;
- kanon registers its output schema under <topic>-value, idempotently;
- ids the registry lacks, and records no schemas[] entry names, are dead
  letters with a reason;
- an incompatible subject, or a lookup-only run with nothing registered,
  stops kanon at start-up with a message that says so;
- a registry that does not answer holds the records (none is dead-lettered),
  a stop while it is away exits promptly, and the next run delivers them.
"""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import Env, _partitions, consume, free_port, frame, load_schema, metric, produce_files, scrape

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REGISTRY = os.environ.get("KANON_REGISTRY_URL", "http://127.0.0.1:%s/apis/ccompat/v7"
                          % os.environ.get("KANON_REGISTRY_PORT", "38081"))
T0 = 1793613600000


def registry_up():
    try:
        with urllib.request.urlopen(REGISTRY + "/subjects", timeout=5) as r:
            return r.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


@pytest.fixture(scope="module")
def registry(broker):
    if not registry_up():
        msg = "no schema registry answers at %s (start one: deploy/registry-local.sh start)" % REGISTRY
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.exit(msg, returncode=77)
    return SchemaRegistryClient({"url": REGISTRY})


def avsc(name):
    with open(os.path.join(SRC, "schemas", name + ".avsc")) as f:
        return f.read()


def evolved(text):
    """DeviceLog with one more optional field in front: the writer's layout
    changes, so decoding it with the v1 layout would fail."""
    s = json.loads(text)
    s["fields"].insert(0, {"name": "sdk", "type": ["null", "string"], "default": None})
    return json.dumps(s)


def device(i, user="u", sdk=False):
    r = {"event_id": "e%d" % i, "ts": T0 + i * 1000, "user_id": "%s%d" % (user, i), "phone": None,
         "email": None, "device_id": "d%d" % i, "ip": "203.0.113.9", "user_agent": "x",
         "os": "Android 14", "app_version": "1.0", "lat": 31.2, "lon": 121.4, "birth_year": None,
         "consent": {"location": True, "ads_personalization": True, "analytics": True}}
    if sdk:
        r["sdk"] = "sdk-%d" % i
    return r


def registry_env(tmp_path, name, extra="", timeout="1s", **kw):
    """An Env whose schemas[] have no ids: every framing id is the registry's."""
    if timeout:
        extra = "  timeout: %s\n%s" % (timeout, extra)
    env = Env(tmp_path, name, extra="schema_registry:\n  url: %s\n%s" % (REGISTRY, extra), **kw)
    with open(env.config) as f:
        text = f.read()
    text, n = re.subn(r"- id: \d+\n\s+type:", "- type:", text)
    assert n == 3
    with open(env.config, "w") as f:
        f.write(text)
    return env


def produce_avro(registry, topic, schema_text, records):
    """With confluent-kafka's own serializer: it registers schema_text under
    <topic>-value and frames each record with the id the registry gave."""
    ser = AvroSerializer(registry, schema_text, conf={"auto.register.schemas": True})
    p = Producer({"bootstrap.servers": os.environ.get("KANON_BROKERS", "127.0.0.1:39092")})
    ctx = SerializationContext(topic, MessageField.VALUE)
    for r in records:
        p.produce(topic, value=ser(r, ctx), partition=0)
    assert p.flush(60) == 0
    return registry.get_latest_version(topic + "-value").schema_id


def read_output(env, registry):
    """kanon's output through the registry: the id in each record's framing
    must lead the deserializer to a schema that reads it."""
    de = AvroDeserializer(registry)
    ctx = SerializationContext(env.out, MessageField.VALUE)
    msgs = consume(env.out, committed=False)
    return msgs, [de(m["value"], ctx) for m in msgs]


def outputs(env):
    """How many de-identified events there are so far (0 before kanon made the topic)."""
    return len(consume(env.out, committed=False)) if _partitions(env.out, None) else 0


def dead_letters(env):
    return [(m["headers"].get("kanon.reason"), m["headers"].get("kanon.detail"))
            for m in consume(env.dlq, committed=False)]


def test_registry_ids_in_and_out(registry, tmp_path):
    env = registry_env(tmp_path, "sr-io")
    topic = env.topics["device"]
    v1 = produce_avro(registry, topic, avsc("DeviceLog"), [device(i) for i in range(20)])
    v2 = produce_avro(registry, topic, evolved(avsc("DeviceLog")), [device(100 + i, sdk=True) for i in range(15)])
    assert v1 != v2
    # An id the registry never gave, and a record no schemas[] entry names.
    other = registry.register_schema("%s-other" % env.prefix, Schema(json.dumps(
        {"type": "record", "name": "Other", "fields": [{"name": "a", "type": "string"}]}), "AVRO"))
    import fastavro
    produce_files(topic, [frame(987654321, load_schema("DeviceLog"), device(900)),
                          frame(other, fastavro.parse_schema({"type": "record", "name": "Other", "fields": [
                              {"name": "a", "type": "string"}]}), {"a": "x"})], tmp_path)

    r = env.kanon("run", "-c", env.config, "--until-eof")
    err = r.stderr.decode()
    msgs, recs = read_output(env, registry)
    assert len(recs) == 35, err[-2000:]
    assert sorted(x["event_type"] for x in recs) == ["device"] * 35
    # kanon's output id is the registry's DeidEvent under <out>-value.
    ids = {int.from_bytes(m["value"][1:5], "big") for m in msgs}
    latest = registry.get_latest_version(env.out + "-value")
    assert ids == {latest.schema_id}
    assert json.loads(latest.schema.schema_str)["name"] == "DeidEvent"
    assert sorted(dead_letters(env)) == sorted([("unknown_schema", "not in registry"),
                                               ("unknown_schema", "record not configured")]), err[-2000:]
    assert "schema id %d learned" % v2 in err

    # A second run registers nothing new: the same id.
    produce_avro(registry, topic, avsc("DeviceLog"), [device(200 + i) for i in range(5)])
    env.kanon("run", "-c", env.config, "--until-eof")
    msgs, recs = read_output(env, registry)
    assert len(recs) == 40
    assert {int.from_bytes(m["value"][1:5], "big") for m in msgs} == {latest.schema_id}
    assert len(registry.get_versions(env.out + "-value")) == 1


def test_gen_registers_its_input_schemas(registry, tmp_path):
    """With a registry, `kanon gen` frames its records as a registry-aware
    producer would: each input schema registered under <topic>-value, each
    record carrying that id. A registry-aware reader of the input topic
    then reads every record (with pinned ids it read the ids kanon's own
    outputs had taken on a fresh registry), and kanon learns the id."""
    env = registry_env(tmp_path, "sr-gen")
    topic = env.topics["device"]
    r = env.kanon("gen", "-c", env.config, "--count", "40", "--types", "device", "--seed", "5")
    assert r.returncode == 0, r.stderr
    sid = registry.get_latest_version(topic + "-value").schema_id
    assert json.loads(registry.get_schema(sid).schema_str)["name"] == "DeviceLog"
    msgs = consume(topic, committed=False)
    assert len(msgs) == 40
    de = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for m in msgs:
        assert m["value"][0] == 0 and int.from_bytes(m["value"][1:5], "big") == sid
        rec = de(m["value"], ctx)
        assert rec["event_id"] and rec["ts"].year >= 2000  # timestamp-millis: a datetime
    r = env.kanon("run", "-c", env.config, "--until-eof")
    assert r.returncode == 0, r.stderr
    assert dead_letters(env) == []
    assert 0 < outputs(env) <= 40
    # Where only a pipeline registers, gen only looks its schema up: a
    # subject without it is a failed run (exit 1) that says what to do.
    (tmp_path / "ro").mkdir()
    ro = registry_env(tmp_path / "ro", "sr-gen-ro", "  register_outputs: false\n")
    r = ro.kanon("gen", "-c", ro.config, "--count", "5", "--types", "device", check=False)
    assert r.returncode == 1 and b"register_outputs is false" in r.stderr, r.stderr
    assert ro.topics["device"] + "-value" not in registry.get_subjects()


def test_exactly_once_aggregates_through_the_registry(registry, tmp_path):
    """With aggregates (exactly-once, the three stages in one process): the
    released rows and window summaries carry the ids registered under their
    topics' subjects, and a registry-aware reader reads them."""
    env = registry_env(tmp_path, "sr-eos", aggregates=[
        {"name": "geo", "dimensions": ["geo_cell"], "k": 2, "geo_precision": 4}],
        agg_extra="lateness: 0s", privacy="k-anonymity")
    produce_avro(registry, env.topics["device"], avsc("DeviceLog"), [device(i) for i in range(30)])
    env.kanon("run", "-c", env.config, "--until-eof")
    for topic, name in ((env.agg, "AdAggregate"), (env.aggstats, "AggWindowStats")):
        latest = registry.get_latest_version(topic + "-value")
        assert json.loads(latest.schema.schema_str)["name"] == name
        de = AvroDeserializer(registry)
        msgs = consume(topic)
        assert msgs and {int.from_bytes(m["value"][1:5], "big") for m in msgs} == {latest.schema_id}
        recs = [de(m["value"], SerializationContext(topic, MessageField.VALUE)) for m in msgs]
        if name == "AdAggregate":
            assert [(r["users"], r["events"]) for r in recs] == [(30, 30)]
    assert len(read_output(env, registry)[1]) == 30


def test_incompatible_output_subject_refused(registry, tmp_path):
    env = registry_env(tmp_path, "sr-incompat")
    subject = env.out + "-value"
    # Someone else's schema under kanon's subject, and a rule that binds.
    registry.register_schema(subject, Schema(json.dumps(
        {"type": "record", "name": "DeidEvent", "namespace": "dev.kanon",
         "fields": [{"name": "legacy", "type": "string"}]}), "AVRO"))
    registry.set_compatibility(subject, "BACKWARD")
    produce_avro(registry, env.topics["device"], avsc("DeviceLog"), [device(i) for i in range(3)])
    r = env.kanon("run", "-c", env.config, "--until-eof", check=False)
    assert r.returncode != 0
    assert b"not compatible" in r.stderr and subject.encode() in r.stderr, r.stderr.decode()[-1500:]
    # With the registry's own reasons (Confluent's "messages", Apicurio's
    # "reason"): which of kanon's fields the old data lacks.
    assert re.search(rb"not compatible: [^\n]*event_type", r.stderr), r.stderr.decode()[-1500:]
    # Refused before anything was written (the output topic not even made).
    assert _partitions(env.out, None) == [] or consume(env.out, committed=False) == []


def test_lookup_only_needs_registered_outputs(registry, tmp_path):
    env = registry_env(tmp_path, "sr-lookup", "  register_outputs: false\n")
    produce_avro(registry, env.topics["device"], avsc("DeviceLog"), [device(i) for i in range(3)])
    r = env.kanon("run", "-c", env.config, "--until-eof", check=False)
    assert r.returncode != 0
    assert b"register_outputs is false" in r.stderr, r.stderr.decode()[-1500:]
    # Registered beforehand (as a deployment pipeline would): found, used.
    sid = registry.register_schema(env.out + "-value", Schema(avsc("DeidEvent"), "AVRO"))
    env.kanon("run", "-c", env.config, "--until-eof")
    msgs, recs = read_output(env, registry)
    assert len(recs) == 3 and {int.from_bytes(m["value"][1:5], "big") for m in msgs} == {sid}


class FaultyProxy:
    """A registry proxy whose answers a test chooses: "pass" forwards to the
    real registry; "hang" holds every request unanswered; "html404" answers
    404 with an HTML page (a proxy's, not the registry's); "nulls" forwards,
    but gives schema answers null schemaType and references. Playing the
    faults here leaves the shared registry alone."""

    def __init__(self, tls=None, auth=None):
        import base64
        import http.server
        import ssl
        import threading
        proxy = self
        self.mode = "pass"
        self.requests = 0
        want = "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode() if auth else None

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _forward(self, body=None):
                proxy.requests += 1
                if want and self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    msg = b'{"error_code": 401, "message": "Unauthorized"}'
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                while proxy.mode == "hang":
                    time.sleep(0.05)
                if proxy.mode == "html404":
                    page = b"<html><body>404 Not Found</body></html>"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                req = urllib.request.Request(REGISTRY + self.path[len("/r"):], data=body,
                                             method=self.command,
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        code, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    code, data = e.code, e.read()
                if proxy.mode == "nulls" and code == 200 and "/schemas/ids/" in self.path:
                    j = json.loads(data)
                    j["schemaType"], j["references"] = None, None
                    data = json.dumps(j).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._forward()

            def do_POST(self):
                self._forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = "%s://127.0.0.1:%d/r" % ("https" if tls else "http", self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.mode = "pass"
        self.server.shutdown()


@pytest.fixture
def proxy():
    p = FaultyProxy()
    yield p
    p.close()


def proxied_env(tmp_path, name, proxy, timeout="1s"):
    env = registry_env(tmp_path, name, timeout=timeout)
    with open(env.config) as f:
        text = f.read()
    with open(env.config, "w") as f:
        f.write(text.replace(REGISTRY, proxy.url))
    return env


def wait_for(what, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def test_registry_outage_holds_records(registry, proxy, tmp_path):
    """The registry hangs (longer than schema_registry.timeout, the default
    10 s) while a new id arrives: the records wait, /healthz says why, and a
    SIGTERM is answered at once, with the held batch left for the next run."""
    env = proxied_env(tmp_path, "sr-outage", proxy, timeout=None)
    topic = env.topics["device"]
    produce_avro(registry, topic, avsc("DeviceLog"), [device(i) for i in range(10)])
    # A second version, registered now, but first seen by kanon in the outage.
    v2 = registry.register_schema(topic + "-value", Schema(evolved(avsc("DeviceLog")), "AVRO"))
    port = free_port()
    p = env.popen("run", "-c", env.config, "--metrics-addr", "127.0.0.1:%d" % port,
                  "--set", "health.stall_timeout=2s")
    try:
        wait_for("the first 10 events", lambda: outputs(env) == 10)
        proxy.mode = "hang"
        import fastavro
        schema = fastavro.parse_schema(json.loads(evolved(avsc("DeviceLog"))))
        produce_files(topic, [frame(v2, schema, device(50 + i, sdk=True)) for i in range(8)], tmp_path)
        wait_for("/healthz to say the registry is away", lambda: (
            lambda s: s[0] == 503 and "schema registry" in s[1])(scrape("http://127.0.0.1:%d/healthz" % port)))
        _, text = scrape("http://127.0.0.1:%d/metrics" % port)
        assert metric(text, "kanon_schema_registry_waiting_seconds") >= 1, text
        assert metric(text, "kanon_schema_ids_learned_total") == 1  # v1 only, so far
        # Held, not dead-lettered, not skipped.
        assert outputs(env) == 10
        assert not _partitions(env.dlq, None) or dead_letters(env) == []
        # A stop while a request hangs: answered at once.
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0, p.stderr.read().decode()[-2000:]
        assert time.monotonic() - t < 5
        assert b"records of schema id %d wait" % v2 in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
    # The registry is back: the next run delivers the held records, once.
    proxy.mode = "pass"
    r = env.kanon("run", "-c", env.config, "--until-eof")
    msgs, recs = read_output(env, registry)
    assert len(recs) == 18, r.stderr.decode()[-2000:]
    assert len(set(x["event_key"] for x in recs)) == 18
    assert not _partitions(env.dlq, None) or dead_letters(env) == []


def test_answers_that_are_not_the_registrys_hold_records(registry, proxy, tmp_path):
    """A 404 page from something in front of the registry says nothing about
    the id: the records wait (none dead-lettered). Odd but valid answers
    (null schemaType and references) are read as Avro without references."""
    env = proxied_env(tmp_path, "sr-faults", proxy)
    topic = env.topics["device"]
    sid = registry.register_schema(topic + "-value", Schema(avsc("DeviceLog"), "AVRO"))
    registry.register_schema(env.out + "-value", Schema(avsc("DeidEvent"), "AVRO"))
    p = env.popen("run", "-c", env.config, "--set", "schema_registry.register_outputs=false")
    try:
        wait_for("kanon to consume", lambda: b"consuming" in open(p.stderr.name, "rb").read())
        proxy.mode = "html404"
        asked = proxy.requests
        produce_files(topic, [frame(sid, load_schema("DeviceLog"), device(i)) for i in range(6)], tmp_path)
        wait_for("kanon to ask through the proxy", lambda: proxy.requests >= asked + 3)
        assert outputs(env) == 0
        assert not _partitions(env.dlq, None) or dead_letters(env) == []
        proxy.mode = "nulls"
        wait_for("the 6 events", lambda: outputs(env) == 6)
        assert not _partitions(env.dlq, None) or dead_letters(env) == []
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        err = p.stderr.read()
        assert b"HTTP 404" in err and b"schema id %d learned" % sid in err, err.decode()[-2000:]
    finally:
        if p.poll() is None:
            p.kill()


def test_tls_and_basic_auth(registry, tmp_path):
    """The registry behind TLS (a certificate of the test's own CA) and basic
    auth: kanon verifies the certificate with schema_registry.ca_file, sends
    the credentials, and never shows the password."""
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    secret = "s3cr3t-%d" % os.getpid()
    proxy = FaultyProxy(tls=(cert, key), auth=("kanon", secret))
    try:
        env = proxied_env(tmp_path, "sr-tls", proxy)
        good = ["--set", "schema_registry.ca_file=" + cert, "--set", "schema_registry.username=kanon",
                "--set", "schema_registry.password=" + secret]

        def check(*sets):
            return env.kanon("check", "-c", env.config, "--kafka", *sets, check=False)

        r = check(*good)
        assert r.returncode == 0, r.stderr.decode()[-1500:]
        assert secret.encode() not in r.stdout + r.stderr
        r = check(*good[2:])  # no CA: the certificate is not trusted
        assert r.returncode == 2 and b"certificate" in r.stderr.lower(), r.stderr.decode()[-800:]
        r = check(*good[:4], "--set", "schema_registry.password=wrong-" + secret)
        assert r.returncode == 2 and b"HTTP 401" in r.stderr, r.stderr.decode()[-800:]
        assert secret.encode() not in r.stdout + r.stderr

        produce_avro(registry, env.topics["device"], avsc("DeviceLog"), [device(i) for i in range(7)])
        r = env.kanon("run", "-c", env.config, "--until-eof", *good)
        assert len(read_output(env, registry)[1]) == 7
        assert secret.encode() not in r.stdout + r.stderr
    finally:
        proxy.close()
