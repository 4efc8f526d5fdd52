"""`kanon lat` attached to a running kanon under load on the real broker.

Needs root (BPF). Outside CI a non-root run skips (exit 77); CI runs as root.
The batches `kanon lat` saw through the batch_consumed probe must match
kanon's own counter (kanon_batches_total) for the same period within 5 %, and
every stage that exists in the mode must have a non-empty histogram.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import KANON, Env, free_port, metric, scrape

AGGS = [{"name": "t", "dimensions": ["event_type"], "k": 5}]
PRELOAD, LOAD = 200, 15000  # records per input topic
BASE_STAGES = {"consume", "decode", "policy", "deid", "produce", "ack"}
TXN_STAGES = {"aggregate", "window", "commit"}


@pytest.fixture(scope="module", autouse=True)
def need_root():
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the BPF test needs root; CI runs as root")
        pytest.exit("kanon lat needs root: skipped", returncode=77)


def wait_metric(base, name, pred, p, timeout=120, labels=""):
    deadline = time.monotonic() + timeout
    while True:
        code, text = scrape(base + "/metrics")
        v = metric(text, name, labels) if code == 200 else None
        if v is not None and pred(v):
            return v, text
        assert p.poll() is None, p.stderr.read().decode()
        assert time.monotonic() < deadline, "%s never satisfied: %s" % (name, v)
        time.sleep(0.2)


def start_lat(pid):
    lat = subprocess.Popen([KANON, "lat", "--pid", str(pid), "--interval", "1", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = lat.stderr.readline()  # blocks until attached, or the failure
    assert "attached to pid %d" % pid in line, line + lat.stderr.read()
    return lat


@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
def test_lat_matches_metrics(broker, tmp_path, mode):
    env = Env(tmp_path, "lat", aggregates=AGGS if mode == "exactly-once" else None,
              window="1m")
    env.kanon("gen", "-c", env.config, "--count", str(PRELOAD), "--seed", "1")
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    p = env.popen("run", "-c", env.config, "--metrics-addr", "127.0.0.1:%d" % port,
                  "--set", "run.batch_size=500")
    lat = None
    try:
        # Idle after the preload: no batch is under way while lat attaches.
        wait_metric(base, "kanon_records_consumed_total", lambda v: v == 3 * PRELOAD, p)
        lat = start_lat(p.pid)
        before, _ = wait_metric(base, "kanon_batches_total", lambda v: v > 0, p)
        env.kanon("gen", "-c", env.config, "--count", str(LOAD), "--seed", "2")
        wait_metric(base, "kanon_records_consumed_total",
                    lambda v: v == 3 * (PRELOAD + LOAD), p)
        if mode == "exactly-once":  # a transaction with the load in it
            t0, _ = wait_metric(base, "kanon_transactions_total", lambda v: True, p)
            wait_metric(base, "kanon_transactions_total", lambda v: v > t0, p)
            # And two more commit cycles of each aggregation stage: at least one
            # lat saw whole (its stage_begin after lat attached).
            for st in ("bound", "release"):
                lab = '{stage="%s"}' % st
                c0, _ = wait_metric(base, "kanon_stage_transactions_total", lambda v: True, p, labels=lab)
                wait_metric(base, "kanon_stage_transactions_total", lambda v: v >= c0 + 2, p, labels=lab)
        after, _ = wait_metric(base, "kanon_batches_total", lambda v: True, p)
        # Every batch acknowledged (its ack and end-to-end latencies recorded).
        _, text = wait_metric(base, "kanon_end_to_end_seconds_count", lambda v: v >= after, p,
                              timeout=60)
        lat.send_signal(signal.SIGINT)  # prints the interval under way, exits 0
        out, err = lat.communicate(timeout=30)
        assert lat.returncode == 0, err
    finally:
        if lat and lat.poll() is None:
            lat.kill()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    assert p.returncode == 0

    reports = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert reports, out
    seen = sum(r["batches"] for r in reports)
    counted = after - before
    assert counted > 20, "too little load to compare: %d batches" % counted
    assert abs(seen - counted) <= 0.05 * counted, (seen, counted)

    stages = {}
    for r in reports:
        for name, h in r["stages"].items():
            stages[name] = stages.get(name, 0) + h["count"]
            assert h["p50_us"] <= h["p90_us"] <= h["p99_us"] <= h["max_us"], (name, h)
            assert sum(b["count"] for b in h["log2_us"]) == h["count"]
    print("kanon lat %s: saw %d batches, kanon counted %d; stage samples %s; p99 end to end %s us"
          % (mode, seen, counted, stages, [r["end_to_end"]["p99_us"] for r in reports]))
    expected = BASE_STAGES | (TXN_STAGES if mode == "exactly-once" else set())
    assert {s for s, n in stages.items() if n > 0} == expected, stages
    # Batch stages are once per batch that lat saw whole.
    for s in BASE_STAGES - {"consume", "ack"}:
        assert abs(stages[s] - seen) <= 0.05 * seen, (s, stages[s], seen)
    assert sum(r["end_to_end"]["count"] for r in reports) > 0
    assert sum(r["runq"]["count"] for r in reports) > 0
    assert sum(r["runq_loop_thread"]["count"] for r in reports) > 0
    if mode == "at-least-once":
        assert set(reports[-1]["stages_not_seen"]) >= TXN_STAGES
    # The aggregation stages' commit cycles, from their threads (run.role all).
    cycles = {c: sum(r[c]["count"] for r in reports) for c in ("bound_cycle", "release_cycle")}
    if mode == "exactly-once":
        assert all(n > 0 for n in cycles.values()), cycles
    else:
        assert not any(cycles.values()), cycles
    # The in-process histograms saw the same stages.
    for s in expected:
        assert metric(text, "kanon_stage_duration_seconds_count", '{stage="%s"}' % s) > 0, s


def test_lat_says_what_is_missing(broker, tmp_path):
    env = Env(tmp_path, "lat2")
    env.kanon("gen", "-c", env.config, "--count", "10")
    p = env.popen("run", "-c", env.config)
    try:
        # Not root: says so and how to fix it, exits non-zero.
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "--inh-caps=-all", KANON, "lat", "--pid", str(p.pid)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "needs root" in r.stderr and "sudo" in r.stderr, r.stderr
        # A process that is not kanon: no probes to attach to.
        sleeper = subprocess.Popen(["sleep", "30"])
        try:
            r = subprocess.run([KANON, "lat", "--pid", str(sleeper.pid)],
                               capture_output=True, text=True, timeout=30)
        finally:
            sleeper.kill()
        assert r.returncode == 1 and "no kanon:batch_consumed probe" in r.stderr, r.stderr
        r = subprocess.run([KANON, "lat", "--pid", "999999999"], capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.strip(), r.stderr
        r = subprocess.run([KANON, "lat"], capture_output=True, text=True)
        assert r.returncode == 2 and "--pid PID" in r.stderr and "--pid is required" in r.stderr
        r = subprocess.run([KANON, "lat", "--pid", "abc"], capture_output=True, text=True)
        assert r.returncode == 2 and "not a process id 'abc'" in r.stderr, r.stderr
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
