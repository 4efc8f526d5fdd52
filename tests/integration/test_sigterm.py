"""SIGTERM mid-stream loses nothing: kanon stops within 10 s with exit 0,
having committed only what was delivered, and a restart finishes the topic.
After a clean stop nothing is redone either (zero duplicates)."""
import collections
import signal
import time

import pytest

from conftest import (Env, kept, consume, decode_deid, decoded_inputs, end_offsets, free_port,
                      metric, scrape)

N = 150000
AGGS = [{"name": "geo", "dimensions": ["geo_cell"], "k": 10, "geo_precision": 4}]


@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
def test_sigterm_mid_stream(broker, tmp_path, mode):
    env = Env(tmp_path, "sigterm", aggregates=AGGS if mode == "exactly-once" else None)
    env.kanon("gen", "-c", env.config, "--seed", "3", "--count", str(N), "--users", "2000",
              "--types", "device")
    # Small fetches keep the stream flowing long enough to stop it in the middle.
    slow = ["--set", "kafka.consumer.max.partition.fetch.bytes=4096", "--set", "run.commit_interval=200ms"]
    port = free_port()
    p = env.popen("run", "-c", env.config, *slow, "--metrics-addr", "127.0.0.1:%d" % port)
    # Stop it as soon as it is under way: kanon's own counter answers in
    # milliseconds, where reading the topic's end offsets takes a while.
    deadline = time.monotonic() + 120
    while (metric(scrape("http://127.0.0.1:%d/metrics" % port)[1], "kanon_records_produced_total")
           or 0) < 1000:
        assert p.poll() is None, p.stderr.read().decode()
        assert time.monotonic() < deadline, "kanon produced nothing in 120 s"
        time.sleep(0.02)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30)
    stopped_in = time.monotonic() - t0
    err = p.stderr.read().decode()
    assert rc == 0, err
    assert stopped_in < 10, "shutdown took %.1f s" % stopped_in
    first = end_offsets(env.out)
    assert first < N * 0.9, "the stop did not land mid-stream (%d of %d done)" % (first, N)

    env.kanon("run", "-c", env.config, "--until-eof", timeout=600)
    keys = collections.Counter(decode_deid(m["value"])[1]["event_key"] for m in consume(env.out))
    assert len(consume(env.dlq)) == 0
    n_kept = sum(1 for r in decoded_inputs([env.topics["device"]]) if kept(r))
    assert len(keys) == n_kept, "lost %d events" % (n_kept - len(keys))
    dups = sum(c - 1 for c in keys.values())
    assert dups == 0, "%d events redone after a clean stop" % dups
