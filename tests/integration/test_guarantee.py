"""The one run loop, against the real broker: its two commit strategies
(run.guarantee) and its workers (run.workers).

- exactly-once without aggregates: the de-identified stream alone, written in
  transactions, holds every kept event exactly once through repeated kill -9
  (read_committed), while the aborted attempts stay in the log;
- `kanon check` refuses aggregates with at-least-once, and unknown values;
- one worker and several give the same records, de-identified events and
  aggregate rows byte for byte (several workers change the order in which
  partitions interleave, which the aggregates must not depend on).
"""
import collections
import random
import signal
import time

from conftest import Env, consume, decode_deid, decoded_inputs, end_offsets, kept

N = 20000


def test_exactly_once_without_aggregates_under_kill9(broker, tmp_path):
    env = Env(tmp_path, "eos-deid")
    # Its own transactional id: the default is shared by every deployment.
    mode = ["--set", "run.guarantee=exactly-once",
            "--set", "aggregate.transactional_id=%s-tx" % env.prefix]
    env.kanon("gen", "-c", env.config, "--seed", "8", "--count", str(N), "--users", "3000",
              "--types", "device")
    # Small fetches, batches and transactions, so that kills land everywhere.
    slow = ["--set", "kafka.consumer.max.partition.fetch.bytes=8192",
            "--set", "run.commit_interval=150ms", "--set", "run.batch_size=300"]
    rng = random.Random(77)
    for _ in range(4):
        p = env.popen("run", "-c", env.config, *mode, *slow)
        time.sleep(rng.uniform(0.5, 2.5))
        assert p.poll() is None, p.stderr.read().decode()[-2000:]
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert end_offsets(env.out) > 0, "the kills landed before any progress"
    r = env.kanon("run", "-c", env.config, *mode, "--until-eof")
    assert b"exactly-once: 4 partition(s)" in r.stderr, r.stderr.decode()[-2000:]

    out = consume(env.out)
    keys = collections.Counter(decode_deid(m["value"])[1]["event_key"] for m in out)
    n_kept = sum(1 for rec in decoded_inputs([env.topics["device"]]) if kept(rec))
    assert len(keys) == n_kept, "lost %d events" % (n_kept - len(keys))
    assert max(keys.values()) == 1, "%d events written twice" % sum(c - 1 for c in keys.values())
    # The killed runs' open transactions were aborted: in the log, unseen.
    assert end_offsets(env.out) > len(out)


def test_check_refuses_aggregates_without_exactly_once(tmp_path):
    aggs = [{"name": "geo", "dimensions": ["geo_cell"], "k": 10, "geo_precision": 4}]
    env = Env(tmp_path, "guarantee", aggregates=aggs)
    r = env.kanon("check", "-c", env.config, "--set", "run.guarantee=at-least-once", check=False)
    assert r.returncode == 2 and b"aggregates need exactly-once" in r.stderr, r.stderr
    r = env.kanon("check", "-c", env.config, "--set", "run.guarantee=twice", check=False)
    assert r.returncode == 2 and b"run.guarantee" in r.stderr, r.stderr
    for ok in ("auto", "exactly-once"):
        r = env.kanon("check", "-c", env.config, "--set", "run.guarantee=" + ok, check=False)
        assert r.returncode == 0, r.stderr


def outputs(env, out, agg=None):
    """The committed records of out (and agg) as a multiset of bytes."""
    got = collections.Counter((m["key"], m["value"]) for m in consume(out))
    rows = collections.Counter((m["key"], m["value"]) for m in consume(agg)) if agg else None
    return got, rows


def test_workers_same_output(broker, tmp_path):
    aggs = [{"name": "geo", "dimensions": ["geo_cell"], "k": 5, "geo_precision": 4},
            {"name": "os", "dimensions": ["os_family"], "k": 5}]
    # Exact counts (k-anonymity): any event that moved between groups shows.
    env = Env(tmp_path, "workers", aggregates=aggs, privacy="k-anonymity")
    env.kanon("gen", "-c", env.config, "--seed", "21", "--count", "10000", "--users", "400",
              "--span", "6h", "--types", "device,access,search")
    results = []
    for workers in (1, 3):
        # Same key file and transactional id (the noise's scope), one run
        # after the other; each its own outputs and group.
        tag = "w%d" % workers
        over = ["--set", "run.workers=%d" % workers, "--set", "kafka.group_id=%s-%s" % (env.prefix, tag),
                "--set", "topics.output=%s.%s.deid" % (env.prefix, tag),
                "--set", "topics.dead_letter=%s.%s.dlq" % (env.prefix, tag),
                "--set", "aggregate.topic=%s.%s.agg" % (env.prefix, tag),
                "--set", "aggregate.stats_topic=%s.%s.aggstats" % (env.prefix, tag)]
        r = env.kanon("run", "-c", env.config, "--until-eof", *over)
        assert b"workers=%d " % workers in r.stderr, r.stderr.decode()[-2000:]
        results.append(outputs(env, "%s.%s.deid" % (env.prefix, tag), "%s.%s.agg" % (env.prefix, tag)))
    (out1, rows1), (out3, rows3) = results
    assert sum(out1.values()) > 20000 and out1 == out3
    assert len(rows1) > 10 and rows1 == rows3
