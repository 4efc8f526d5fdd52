"""Deletion requests: once a person asks to be forgotten, none of their later
events reaches any output, in this instance or after a restart; the erasure
state holds fingerprints only."""
import re
import signal
import subprocess
import time

from conftest import BROKER, Env, consume, decode_deid, end_offsets, frame, load_schema, produce_files

DEVICE = load_schema("DeviceLog")
DAY = 1793577600000
H = 3600000


def dev(i, user, phone=None, email=None):
    return {"event_id": "e%d" % i, "ts": DAY + i * H + 5, "user_id": user, "phone": phone, "email": email,
            "device_id": "dev-%d" % i, "ip": "192.0.2.%d" % (i + 1), "user_agent": "curl/8", "os": "Linux",
            "app_version": "1.0", "lat": None, "lon": None, "birth_year": 1980,
            "consent": {"location": True, "ads_personalization": True, "analytics": True}}


def request(env, kind, value):
    """One deletion request, as an operator would send it with kcat."""
    args = ["kcat", "-b", BROKER, "-P", "-t", env.erasure_requests]
    if kind:
        args += ["-K", "\t"]
        value = "%s\t%s" % (kind, value)
    subprocess.run(args, input=value.encode(), check=True, timeout=30)


def buckets(env):
    return {(decode_deid(m["value"])[1]["time_bucket"] - DAY) // H for m in consume(env.out)}


def wait_for(cond, what, timeout=60):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out waiting for " + what
        time.sleep(0.2)


def test_erasure(broker, tmp_path):
    env = Env(tmp_path, "erasure")
    produce_files(env.topics["device"], [frame(1, DEVICE, dev(0, "dave"))], tmp_path)
    p = env.popen("run", "-c", env.config)
    try:
        wait_for(lambda: end_offsets(env.out) >= 1, "the first event")
        # Three people ask to be forgotten, each in another spelling than
        # their events use: normalization must still match them.
        request(env, "phone", "+86 138-0013-8000")
        request(env, "email", " Bob@Example.COM")
        request(env, None, "user:carol")
        request(env, "fax", "123")  # not a kind: ignored, never logged
        wait_for(lambda: end_offsets(env.erasure_state, 1) >= 3, "the erasure state")
        events = [dev(1, "alice", phone="13800138000"), dev(2, "bob", email="bob@example.com"),
                  dev(3, "carol"), dev(4, "dave"), dev(5, "erin", phone="13900139000")]
        produce_files(env.topics["device"], [frame(1, DEVICE, e) for e in events], tmp_path)
        wait_for(lambda: end_offsets(env.out) >= 3, "the kept events")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        err = p.stderr.read()
    assert p.returncode == 0, err.decode()
    assert buckets(env) == {0, 4, 5}
    assert re.search(rb"erased=3\b", err), err
    # No identifier, in any spelling, in the logs (topic names carry random
    # hex, so look for the identifiers' own digits and words).
    for ident in (b"138-0013", b"13800138000", b"Bob@", b"bob@", b"Example", b"alice"):
        assert ident not in err, ident

    # The state: fingerprints and kinds, nothing raw.
    state = consume(env.erasure_state, committed=False)
    assert len(state) == 3
    assert all(re.fullmatch(rb"[0-9a-f]{32}", m["key"]) for m in state)
    assert sorted(m["value"] for m in state) == [b"email", b"phone", b"user"]

    # A restart (another group, from the beginning) knows them from Kafka alone.
    produce_files(env.topics["device"], [frame(1, DEVICE, dev(6, "carol")), frame(1, DEVICE, dev(7, "frank"))],
                  tmp_path)
    r = env.kanon("run", "-c", env.config, "--until-eof", "--set", "kafka.group_id=%s-2" % env.prefix)
    assert b"3 erased people known" in r.stderr
    assert re.search(rb"erased=4\b", r.stderr), r.stderr  # alice, bob, carol twice
    assert buckets(env) == {0, 4, 5, 7}


def test_requests_waiting_at_start(broker, tmp_path):
    """Requests sent while no kanon runs are honoured from the first record
    of the next run, not once its request consumer has joined its group and
    served them (the backlog was processed meanwhile)."""
    env = Env(tmp_path, "erasure-start")
    events = [dict(dev(i, "gina" if i % 2 else "hank", phone="1390013900%d" % (i % 10)), ip="192.0.2.7")
              for i in range(400)]
    produce_files(env.topics["device"], [frame(1, DEVICE, e) for e in events], tmp_path)
    env.kanon("gen", "-c", env.config, "--count", "1", "--types", "access,search")  # the other topics
    request(env, "user", "gina")  # the broker creates the requests topic
    r = env.kanon("run", "-c", env.config, "--until-eof")
    assert b"1 erased people known" in r.stderr and b"1 not served yet" in r.stderr, r.stderr
    assert re.search(rb"erased=200\b", r.stderr), r.stderr
    devices = [decode_deid(m["value"])[1] for m in consume(env.out)]
    assert {(d["time_bucket"] - DAY) // H for d in devices if d["event_type"] == "device"} == set(range(0, 400, 2))
    # Served by the group member that owns it (a running instance: an
    # --until-eof run may end before its request consumer joins), the state
    # holds its fingerprint, and the request is committed: the next start
    # reads it from the state, not again from the requests topic (a flood
    # of old requests costs no start-up).
    p = env.popen("run", "-c", env.config)
    try:
        # started (its signal handlers too), then the state record is there
        wait_for(lambda: b"consuming" in open(p.stderr.name, "rb").read(), "the start")
        wait_for(lambda: end_offsets(env.erasure_state, 1) >= 1, "the erasure state")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0, p.stderr.read().decode()
    assert [m["value"] for m in consume(env.erasure_state, committed=False)] == [b"user"]
    r = env.kanon("run", "-c", env.config, "--until-eof")
    assert b"1 erased people known" in r.stderr and b"0 not served yet" in r.stderr, r.stderr
