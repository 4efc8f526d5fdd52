"""kanon when the broker goes away, on a broker of the test's own (frozen with
SIGSTOP, or kill -9'd and restarted on its state):

- SIGTERM is answered within 10 s whatever the broker does, in both modes,
  with exit 0 (everything committed) or 3 (work abandoned), and the next run
  loses nothing;
- `--until-eof` waits out a 60 s outage (longer than the consumer's session
  timeout) and finishes by itself with every input accounted for, while
  /healthz says 503 during the outage;
- a fenced exactly-once instance, idle or busy, says so on /healthz and in
  its exit (code 4), and the instance that fenced it loses nothing;
- a restart right after kill -9 (the dead member still in the group) finishes;
- a broker down at start is waited for like an outage (run.assignment_wait).
"""
import collections
import signal
import time

import pytest

from conftest import (Env, PrivateBroker, kept, consume, decode_deid, decoded_inputs, free_port,
                      metric, scrape)

N = 60000
AGGS = [{"name": "geo", "dimensions": ["geo_cell"], "k": 10, "geo_precision": 4}]
# Small fetches and frequent commits keep a stream in progress for a while.
SLOW = ["--set", "kafka.consumer.max.partition.fetch.bytes=4096", "--set", "run.commit_interval=200ms"]


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory):
    b = PrivateBroker(tmp_path_factory.mktemp("private"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def pb(private_broker):
    """The private broker, up and answering at the start of every test."""
    try:
        private_broker.thaw()
    except (OSError, ValueError):
        pass
    private_broker.start()  # a no-op when it runs
    return private_broker


def env_for(tmp_path, name, mode, broker):
    return Env(tmp_path, name, aggregates=AGGS if mode == "exactly-once" else None, broker=broker)


def wait_for(pred, timeout, what, p=None):
    deadline = time.monotonic() + timeout
    while not pred():
        if p is not None and p.poll() is not None:
            raise AssertionError("kanon exited (%d) while waiting for %s:\n%s"
                                 % (p.returncode, what, p.stderr.read().decode()))
        assert time.monotonic() < deadline, "no %s within %d s" % (what, timeout)
        time.sleep(0.05)


def produced(base):
    return metric(scrape(base + "/metrics")[1], "kanon_records_produced_total") or 0


def start_run(env, *args, progress=1000):
    """A background `kanon run` with its metrics endpoint, once it has
    produced `progress` records. Returns the process and the endpoint."""
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    p = env.popen("run", "-c", env.config, *SLOW, *args, "--metrics-addr", "127.0.0.1:%d" % port)
    if progress:
        wait_for(lambda: produced(base) >= progress, 120, "progress", p)
    return p, base


def check_accounted(env, exactly_once):
    """Every input event the policy keeps is in the output; exactly once in
    exactly-once mode. No dead letters (the corpus has no malformed input)."""
    keys = collections.Counter(decode_deid(m["value"])[1]["event_key"]
                               for m in consume(env.out, broker=env.broker))
    n_kept = sum(1 for r in decoded_inputs([env.topics["device"]], broker=env.broker) if kept(r))
    assert len(consume(env.dlq, broker=env.broker)) == 0
    assert len(keys) == n_kept, "lost %d events" % (n_kept - len(keys))
    if exactly_once:
        dups = sum(c - 1 for c in keys.values())
        assert dups == 0, "%d events written twice" % dups


@pytest.mark.parametrize("fault", ["frozen", "killed"])
@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
def test_sigterm_during_outage(pb, tmp_path, mode, fault):
    env = env_for(tmp_path, "term-%s" % fault, mode, pb.addr)
    env.kanon("gen", "-c", env.config, "--seed", "4", "--count", str(N), "--users", "2000",
              "--types", "device")
    p, base = start_run(env)
    pb.freeze() if fault == "frozen" else pb.kill()
    # Let kanon run into the outage: its next flush, commit or transaction
    # call now waits on a broker that does not answer.
    time.sleep(2)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=60)
    took = time.monotonic() - t0
    err = p.stderr.read().decode()
    print("%s, broker %s: SIGTERM answered in %.1f s, exit %d" % (mode, fault, took, rc))
    assert took < 10, "SIGTERM answered in %.1f s" % took
    assert rc in (0, 3), err
    if rc == 3:
        assert "redone" in err
    pb.thaw() if fault == "frozen" else pb.start()

    env.kanon("run", "-c", env.config, "--until-eof", timeout=600)
    check_accounted(env, mode == "exactly-once")


@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
def test_until_eof_waits_out_an_outage(pb, tmp_path, mode):
    env = env_for(tmp_path, "outage", mode, pb.addr)
    env.kanon("gen", "-c", env.config, "--seed", "5", "--count", str(N), "--users", "2000",
              "--types", "device")
    p, base = start_run(env, "--set", "health.stall_timeout=5s", "--until-eof")
    assert scrape(base + "/healthz")[0] == 200
    pb.kill()
    killed = time.monotonic()
    # Nothing can be delivered now: /healthz says so once stall_timeout passes.
    wait_for(lambda: scrape(base + "/healthz")[0] == 503, 30, "503 during the outage", p)
    status, body = scrape(base + "/healthz")
    assert status == 503 and "no progress" in body, body
    # An outage longer than the session timeout (45 s).
    time.sleep(max(0.0, 60 - (time.monotonic() - killed)))
    assert p.poll() is None, p.stderr.read().decode()
    pb.start()
    rc = p.wait(timeout=600)
    err = p.stderr.read().decode()
    assert rc == 0, err
    check_accounted(env, mode == "exactly-once")


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_fenced_instance_says_so(pb, tmp_path, state):
    env = env_for(tmp_path, "fenced-" + state, "exactly-once", pb.addr)
    count = 2000 if state == "idle" else N
    env.kanon("gen", "-c", env.config, "--seed", "6", "--count", str(count), "--users", "500",
              "--types", "device")
    a, base = start_run(env, progress=0 if state == "idle" else 1000)
    if state == "idle":
        wait_for(lambda: metric(scrape(base + "/metrics")[1], "kanon_consumer_lag") == 0
                 and produced(base) > 0, 120, "a drained, idle instance", a)
    assert scrape(base + "/healthz")[0] == 200
    # A second instance with the same transactional.id fences the first.
    env.kanon("run", "-c", env.config, "--until-eof", timeout=600)
    wait_for(lambda: scrape(base + "/healthz")[0] == 503, 30, "503 once fenced", a)
    status, body = scrape(base + "/healthz")
    assert "fenced" in body, body
    assert a.poll() is None, "a fenced instance stands by until stopped"
    a.send_signal(signal.SIGTERM)
    assert a.wait(timeout=30) == 4
    assert "fenced" in a.stderr.read().decode()
    check_accounted(env, exactly_once=True)


def test_restart_right_after_kill9(pb, tmp_path):
    """The dead member holds its partitions until session.timeout.ms (45 s):
    the restart waits for them (run.assignment_wait) instead of giving up."""
    env = env_for(tmp_path, "kill9", "at-least-once", pb.addr)
    env.kanon("gen", "-c", env.config, "--seed", "7", "--count", str(N), "--users", "2000",
              "--types", "device")
    p, _ = start_run(env)
    p.kill()
    p.wait()
    r = env.kanon("run", "-c", env.config, "--until-eof", timeout=600, check=False)
    assert r.returncode == 0, r.stderr.decode()
    check_accounted(env, exactly_once=False)


def test_until_eof_names_missing_topics(pb, tmp_path):
    """Nothing to assign because the input topics do not exist: said so, and
    after run.assignment_wait, not a generic time-out."""
    env = env_for(tmp_path, "missing", "at-least-once", pb.addr)
    r = env.kanon("run", "-c", env.config, "--until-eof", "--set", "run.assignment_wait=7s",
                  "--set", "kafka.consumer.session.timeout.ms=6000", timeout=120, check=False)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "input topic(s) missing" in err and env.topics["device"] in err, err


@pytest.mark.parametrize("comes_back", [True, False])
def test_broker_down_at_start(pb, tmp_path, comes_back):
    """A broker that is down when kanon starts is waited for, as an outage
    later is: for run.assignment_wait with --until-eof (then said: no broker
    answers), the run going on once it is back."""
    env = env_for(tmp_path, "down-at-start-%s" % comes_back, "at-least-once", pb.addr)
    env.kanon("gen", "-c", env.config, "--seed", "8", "--count", "3000", "--users", "500", "--types", "device")
    pb.kill()
    wait = "40s" if comes_back else "8s"  # longer than the session, as check demands
    p = env.popen("run", "-c", env.config, "--until-eof", "--set", "run.assignment_wait=" + wait,
                  "--set", "kafka.consumer.session.timeout.ms=6000")
    t0 = time.monotonic()
    if comes_back:
        time.sleep(15)  # longer than any one start-up call's own time-out
        assert p.poll() is None, p.stderr.read().decode()
        pb.start()
    rc = p.wait(timeout=300)
    err = p.stderr.read().decode()
    if comes_back:
        assert rc == 0, err
        check_accounted(env, exactly_once=False)
    else:
        assert rc == 1 and "no broker at %s answers" % pb.addr in err, err
        assert 8 <= time.monotonic() - t0 < 30, err
