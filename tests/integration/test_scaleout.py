"""The aggregation topology scaled out over the real broker (engine/stage.h).

- Many instances of every stage, killed with -9 and restarted, scaled up
  from 2 to 3 mid-run, release exactly the rows and summaries one process
  does, byte for byte (noise included), and write every kept event exactly
  once to the de-identified stream.
- A window waits for every input partition: with one partition held back,
  the bound stage says on /metrics which partition it waits for, nothing is
  released, and the rows come as soon as that partition passes the window.
"""
import collections
import random
import signal
import time

from conftest import (AGG, Env, _partitions, consume, decode_deid, decode_framed, decoded_inputs,
                      free_port, frame, kept, load_schema, produce_files, scrape)

AGGS = [{"name": "geo", "dimensions": ["geo_cell"], "k": 5, "geo_precision": 4},
        {"name": "type_os", "dimensions": ["event_type", "os_family"], "k": 5}]
# Fast failure detection, so a killed member's partitions move on quickly.
GROUP = ["--set", "kafka.consumer.session.timeout.ms=6000", "--set", "run.assignment_wait=30s"]
# Small fetches, batches and transactions, so that kills land everywhere.
SLOW = ["--set", "kafka.consumer.max.partition.fetch.bytes=16384", "--set", "run.commit_interval=150ms",
        "--set", "run.batch_size=500"]


def outputs(env, prefix):
    """(de-identified events by event key, rows, summaries) as multisets."""
    out = collections.Counter(decode_deid(m["value"])[1]["event_key"] for m in consume(prefix + ".deid"))
    rows = collections.Counter((m["key"], m["value"]) for m in consume(prefix + ".agg"))
    stats = collections.Counter((m["key"], m["value"]) for m in consume(prefix + ".aggstats"))
    return out, rows, stats


def own(env, tag):
    """Outputs, internal topics and groups of their own; the same
    transactional id prefix (the noise's scope) and key."""
    p = "%s.%s" % (env.prefix, tag)
    return ["--set", "topics.output=%s.deid" % p, "--set", "topics.dead_letter=%s.dlq" % p,
            "--set", "aggregate.topic=%s.agg" % p, "--set", "aggregate.stats_topic=%s.aggstats" % p,
            "--set", "aggregate.contrib_topic=%s.contrib" % p,
            "--set", "aggregate.partials_topic=%s.partials" % p,
            "--set", "kafka.group_id=%s-group" % p], p


def test_scaled_out_equals_one_process(broker, tmp_path):
    env = Env(tmp_path, "scale", aggregates=AGGS)
    env.kanon("gen", "-c", env.config, "--seed", "5", "--count", "12000", "--users", "1500",
              "--span", "4h", "--types", "device,access,search")
    ref_args, ref = own(env, "one")
    r = env.kanon("run", "-c", env.config, "--until-eof", *ref_args)
    assert b"[release] records=" in r.stderr, r.stderr.decode()[-3000:]

    args, dist = own(env, "many")
    procs = {}

    def start(role, n, *extra):
        name = "%s%d" % (role[0], n)
        procs[name] = env.popen("run", "-c", env.config, "--role", role, "--instance", name, *args,
                                *GROUP, *SLOW, *extra)

    for role in ("deid", "bound", "release"):
        for n in (1, 2):
            start(role, n)
    rng = random.Random(99)
    for kill in range(6):
        time.sleep(rng.uniform(1.0, 3.0))
        name = rng.choice(sorted(procs))
        p = procs[name]
        assert p.poll() is None, "%s exited: %s" % (name, p.stderr.read().decode()[-2000:])
        p.send_signal(signal.SIGKILL)
        p.wait()
        # A supervisor restarts it under its name: it fences what it left open.
        start({"d": "deid", "b": "bound", "r": "release"}[name[0]], int(name[1:]))
        if kill == 1:  # scale up from 2 to 3 instances of every stage
            for role in ("deid", "bound", "release"):
                start(role, 3)
    # Everyone stops; then every instance runs to the end of the input.
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    for name, p in procs.items():
        # 0 or 3 (stopped with uncommitted work); one restarted a moment ago
        # may not have its handler yet: the signal's default, exactly-once all the same.
        assert p.wait(timeout=60) in (0, 3, -signal.SIGTERM), "%s: %s" % (
            name, p.stderr.read().decode()[-2000:])
    procs.clear()
    for role in ("deid", "bound", "release"):
        for n in (1, 2, 3):
            start(role, n, "--until-eof")
    for name, p in procs.items():
        assert p.wait(timeout=400) == 0, "%s: %s" % (name, p.stderr.read().decode()[-3000:])

    out1, rows1, stats1 = outputs(env, ref)
    outn, rowsn, statsn = outputs(env, dist)
    assert len(rows1) > 10 and len(stats1) > 4, (len(rows1), len(stats1))
    assert rowsn == rows1, "rows differ: %d vs %d, %d not shared" % (
        len(rows1), len(rowsn), len(set(rows1) ^ set(rowsn)))
    assert statsn == stats1
    n_kept = sum(1 for rec in decoded_inputs(env.topics.values()) if kept(rec))
    assert len(outn) == n_kept and max(outn.values()) == 1, (len(outn), n_kept)
    assert out1 == outn


H = 3600000
T0 = 1793613600000  # a whole hour
DEV = load_schema("DeviceLog")


def device(i, user, ts):
    return {"event_id": "e%d" % i, "ts": ts, "user_id": user, "phone": None, "email": None,
            "device_id": "d%d" % i, "ip": "203.0.113.9", "user_agent": "x", "os": "Android 14",
            "app_version": "1.0", "lat": 31.2304, "lon": 121.4737, "birth_year": None,
            "consent": {"location": True, "ads_personalization": True, "analytics": True}}


def released(env):
    """The committed rows so far ([] before the topic exists)."""
    if not _partitions(env.agg, env.broker):
        return []
    return [decode_framed(m["value"], AGG)[1] for m in consume(env.agg)]


def waiting(base, stage):
    """Upstream partitions the stage's oldest open window waits for."""
    import re
    _, text = scrape(base + "/metrics")
    return {int(u) for u in re.findall(r'kanon_stage_window_waiting\{stage="%s",upstream="(\d+)"\} 1'
                                       % stage, text)}


def test_window_waits_for_every_input_partition(broker, tmp_path):
    # 64 person partitions for 31 people of the window: most hold only
    # people seen later, whose window waits for every input partition while
    # holding nothing older back (the metric names the oldest window's).
    env = Env(tmp_path, "holdback", aggregates=[{"name": "geo", "dimensions": ["geo_cell"], "k": 5}],
              privacy="k-anonymity", agg_extra="idle_timeout: 1h\ncontrib_partitions: 64")
    topic = env.topics["device"]
    # Partition 0: 30 people in the window [T0, T0+1h), then time moves far on.
    produce_files(topic, [frame(1, DEV, device(i, "u%d" % i, T0 + 60000 * i)) for i in range(30)]
                  + [frame(1, DEV, device(99, "late", T0 + 3 * H))], tmp_path, partition=0)
    # Partitions 2 and 3 pass the window with 10 people each; partition 1 is
    # held back inside it.
    for p in (2, 3):
        produce_files(topic, [frame(1, DEV, device(100 + 10 * p + j, "x%d-%d" % (p, j), T0 + 3 * H))
                              for j in range(10)], tmp_path, partition=p)
    produce_files(topic, [frame(1, DEV, device(200, "u200", T0 + 10 * 60000))], tmp_path, partition=1)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    p = env.popen("run", "-c", env.config, "--metrics-addr", "127.0.0.1:%d" % port)
    try:
        deadline = time.monotonic() + 120
        while waiting(base, "bound") != {1}:
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, (waiting(base, "bound"), scrape(base + "/metrics")[1][-3000:])
            time.sleep(0.2)
        # The bound stage holds the window for partition 1: nothing is out.
        assert released(env) == []
        produce_files(topic, [frame(1, DEV, device(201, "u201", T0 + 3 * H))], tmp_path, partition=1)
        deadline = time.monotonic() + 120
        while not released(env):
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, scrape(base + "/metrics")[1][-3000:]
            time.sleep(0.2)
        rows = released(env)
        assert [(r["window_start"], r["users"], r["events"]) for r in rows] == [(T0, 31, 31)], rows
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)


def create_topic(broker, topic, partitions, *configs):
    """A topic made as an operator would, with Kafka's own tool."""
    import glob
    import os
    import subprocess
    cache = os.environ.get("KANON_CACHE", os.path.expanduser("~/.cache/kanon"))
    libs = glob.glob(os.path.join(cache, "kafka-*", "libs"))[0]
    args = ["java", "-cp", libs + "/*", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
            broker, "--create", "--topic", topic, "--partitions", str(partitions)]
    for c in configs:
        args += ["--config", c]
    r = subprocess.run(args, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]


def test_check_validates_internal_topics(broker, tmp_path):
    env = Env(tmp_path, "check", aggregates=AGGS)
    contrib, partials = env.prefix + "-group.agg-contrib", env.prefix + "-group.agg-partials"
    r = env.kanon("check", "-c", env.config, "--kafka")
    assert b"%s: missing; created at start with 8 partition(s)" % contrib.encode() in r.stderr, r.stderr
    # Another partition count is said, not refused: the topic's is used.
    create_topic(broker, partials, 3)
    r = env.kanon("check", "-c", env.config, "--kafka")
    assert b"%s has 3 partition(s), aggregate.partials_partitions says 4" % partials.encode() in r.stderr
    # Compaction would drop contributions of open windows: refused.
    create_topic(broker, contrib, 8, "cleanup.policy=compact")
    r = env.kanon("check", "-c", env.config, "--kafka", check=False)
    assert r.returncode == 2 and b"cleanup.policy=compact" in r.stderr, r.stderr
    env2 = Env(tmp_path / "short", "check2", aggregates=AGGS) if (tmp_path / "short").mkdir() is None else None
    create_topic(broker, env2.prefix + "-group.agg-contrib", 8, "retention.ms=600000")
    create_topic(broker, env2.prefix + "-group.agg-partials", 4, "cleanup.policy=compact")
    r = env2.kanon("check", "-c", env2.config, "--kafka", check=False)
    # One check names both topics to fix, not only the first.
    assert r.returncode == 2 and b"retention.ms=600000 is shorter" in r.stderr, r.stderr
    assert b"agg-partials: cleanup.policy=compact" in r.stderr, r.stderr
    # Brokers that do not answer are a failure (1), not a configuration error.
    r = env2.kanon("check", "-c", env2.config, "--kafka", "--set", "kafka.brokers=127.0.0.1:%d" % free_port(),
                   check=False)
    assert r.returncode == 1 and b"no broker at 127.0.0.1:" in r.stderr, r.stderr
