"""/metrics and /healthz of a running kanon, against a known input."""
import signal
import time

import pytest

from conftest import Env, free_port, metric, scrape

COUNT, MALFORMED = 2000, 12
AGGS = [{"name": "t", "dimensions": ["event_type"], "k": 5}]


@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
def test_metrics_and_health(broker, tmp_path, mode):
    env = Env(tmp_path, "metrics", aggregates=AGGS if mode == "exactly-once" else None)
    env.kanon("gen", "-c", env.config, "--count", str(COUNT), "--malformed", str(MALFORMED))
    total = 3 * (COUNT + MALFORMED)
    port = free_port()
    p = env.popen("run", "-c", env.config, "--metrics-addr", "127.0.0.1:%d" % port)
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 120
        while True:
            code, text = scrape(base + "/metrics")
            if code == 200 and metric(text, "kanon_records_consumed_total") == total:
                break
            assert p.poll() is None, p.stderr.read().decode()
            assert time.monotonic() < deadline, text
            time.sleep(0.3)
        per = 3 * MALFORMED // 6
        dead = {r: metric(text, "kanon_records_dead_lettered_total", '{reason="%s"}' % r)
                for r in ("bad_framing", "unknown_schema", "decode_error", "out_of_range",
                          "empty_value", "invalid_ip")}
        assert dead == {"bad_framing": per, "unknown_schema": per, "decode_error": per,
                        "out_of_range": 2 * per, "empty_value": per, "invalid_ip": 0}
        dropped = sum(metric(text, "kanon_records_dropped_total", '{reason="%s"}' % r)
                      for r in ("no_analytics_consent", "no_ads_consent", "erased", "key_retired",
                                "minor"))
        produced = metric(text, "kanon_records_produced_total")
        assert produced + sum(dead.values()) + dropped == total and dropped > 0
        assert metric(text, "kanon_assigned_partitions") > 0
        batches = metric(text, "kanon_batch_duration_seconds_count")
        assert metric(text, "kanon_batches_total") == batches
        assert batches > 0 and metric(text, "kanon_batch_duration_seconds_bucket", '{le="+Inf"}') == batches
        assert "# TYPE kanon_batch_duration_seconds histogram" in text
        if mode == "exactly-once":
            wait_until = time.monotonic() + 30
            while not metric(scrape(base + "/metrics")[1], "kanon_transactions_total"):
                assert time.monotonic() < wait_until, "no transaction committed"
                time.sleep(0.3)
            assert metric(text, "kanon_aggregate_state_bytes") is not None
        assert scrape(base + "/healthz") == (200, "ok\n")
        # Consumer lag comes from librdkafka's statistics (every 5 s): all read, none behind.
        while metric(scrape(base + "/metrics")[1], "kanon_consumer_lag") != 0:
            assert time.monotonic() < deadline, "no consumer lag reported"
            time.sleep(0.5)
        assert scrape(base + "/nope")[0] == 404
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    assert p.returncode == 0
    assert scrape(base + "/healthz")[0] is None  # the server stops with the process


def test_bad_metrics_address(broker, tmp_path):
    """A configuration error (exit 2), found before any network I/O: the
    brokers here are unroutable, and kanon must not even try them."""
    env = Env(tmp_path, "metrics2")
    for addr in ("nonsense", "127.0.0.1:12abc", "127.0.0.1:"):
        t0 = time.monotonic()
        r = env.kanon("run", "-c", env.config, "--metrics-addr", addr,
                      "--set", "kafka.brokers=10.255.255.1:9", check=False, timeout=60)
        assert r.returncode == 2, r.stderr.decode()
        assert ("--metrics-addr '%s'" % addr).encode() in r.stderr
        assert time.monotonic() - t0 < 5
