"""Debian's real Prometheus scraping a live kanon, with deploy/prometheus's
alert rules loaded.

kanon runs the exactly-once pipeline with aggregates (all three stages in
one process) over a known input; Prometheus scrapes it every second. The
test reads kanon's values back through Prometheus's HTTP API: the counters
equal the input, every rule of kanon-alerts.yml is loaded and healthy, the
recording rules evaluate, and an alert goes through the whole path to
"firing" (epsilon 3 per window is above KanonDPEpsilonPerWindowAboveBound's
bound) while KanonTargetDown stays silent. Every metric the rules and the
dashboard name is checked against what this live kanon exported.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import SRC, Env, free_port, metric, scrape

PROM_DIR = os.path.join(SRC, "deploy", "prometheus")
RULES = os.path.join(PROM_DIR, "kanon-alerts.yml")
DASHBOARD = os.path.join(SRC, "deploy", "grafana", "kanon-dashboard.json")
COUNT, MALFORMED = 1000, 6
AGGS = [{"name": "t", "dimensions": ["event_type"], "k": 5}]
# Rendered only while a window waits for an upstream partition, and only
# with a schema registry configured (this test's kanon uses static ids).
CONDITIONAL = {"kanon_stage_window_waiting", "kanon_schema_registry_waiting_seconds",
               "kanon_schema_ids_learned_total"}


def prometheus_bin():
    path = shutil.which("prometheus")
    if not path:
        msg = "prometheus is not installed (deploy/setup.sh installs Debian's)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def api(base, path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
    except OSError:
        return None
    assert body["status"] == "success", body
    return body["data"]


def poll(what, fn, deadline, proc_list):
    """fn() until it returns something true, or fail at the deadline saying
    what was awaited and what fn last returned."""
    last = None
    while time.monotonic() < deadline:
        for name, p in proc_list:
            assert p.poll() is None, "%s exited (%s): %s" % (name, p.returncode, p.stderr.read().decode()[-3000:])
        last = fn()
        if last and last[0]:
            return last[1]
        time.sleep(0.25)
    raise AssertionError("timed out waiting for %s; last: %r" % (what, last and last[1]))


def instant(base, query):
    data = api(base, "/api/v1/query", query=query)
    return [] if data is None else data["result"]


def referenced_metrics():
    with open(RULES) as f:
        exprs = [r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    with open(DASHBOARD) as f:
        d = json.load(f)
    exprs += [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    return {n for e in exprs for n in re.findall(r"\b(kanon_[a-z0-9_]+)", e)}


def test_prometheus_scrapes_kanon_and_evaluates_the_rules(broker, tmp_path):
    prom = prometheus_bin()
    # epsilon 3: valid (kanon check warns "weakened") and above the alert's
    # bound of 2, so one alert must fire for real.
    env = Env(tmp_path, "prom", aggregates=AGGS, agg_extra="privacy:\n  mode: dp\n  epsilon: 3\n")
    env.kanon("gen", "-c", env.config, "--count", str(COUNT), "--malformed", str(MALFORMED))
    total = 3 * (COUNT + MALFORMED)
    kport, pport = free_port(), free_port()
    target = "127.0.0.1:%d" % kport
    kanon = env.popen("run", "-c", env.config, "--metrics-addr", target)

    pdir = tmp_path / "prometheus"
    pdir.mkdir()
    (pdir / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [RULES],
        "scrape_configs": [{"job_name": "kanon", "static_configs": [{"targets": [target]}]}],
    }))
    with open(str(pdir / "prometheus.log"), "wb") as log:
        p = subprocess.Popen([prom, "--config.file=%s" % (pdir / "prometheus.yml"),
                              "--storage.tsdb.path=%s" % (pdir / "data"),
                              "--web.listen-address=127.0.0.1:%d" % pport,
                              "--log.level=warn"], stdout=log, stderr=log)
    p.stderr = open(str(pdir / "prometheus.log"), "rb")
    procs = [("kanon", kanon), ("prometheus", p)]
    base = "http://127.0.0.1:%d" % pport
    try:
        deadline = time.monotonic() + 45

        # kanon's counters, as Prometheus stored them, equal the input.
        def consumed():
            r = instant(base, 'kanon_records_consumed_total{job="kanon"}')
            v = int(float(r[0]["value"][1])) if r else None
            return v == total, v

        poll("kanon_records_consumed_total == %d in Prometheus" % total, consumed, deadline, procs)
        # A second batch while Prometheus watches: the counters move between
        # scrapes, so rates (and the recording rules built on them) have an
        # increase to see. The first batch may all have been read before the
        # first scrape.
        env.kanon("gen", "-c", env.config, "--count", str(COUNT), "--malformed", str(MALFORMED), "--seed", "7")
        total *= 2
        poll("kanon_records_consumed_total == %d in Prometheus" % total, consumed, deadline, procs)
        r = instant(base, 'up{job="kanon"}')
        assert [x["metric"]["instance"] for x in r] == [target] and r[0]["value"][1] == "1"

        def settled():
            # Every input record accounted for, in one scrape: consumed ==
            # produced + dead-lettered + withheld.
            q = ('sum(kanon_records_produced_total{job="kanon"}) + sum(kanon_records_dead_lettered_total{job="kanon"})'
                 ' + sum(kanon_records_dropped_total{job="kanon"})')
            r = instant(base, q)
            v = int(float(r[0]["value"][1])) if r else None
            return v == total, v

        poll("produced + dead-lettered + withheld == %d" % total, settled, deadline, procs)
        r = instant(base, 'sum(kanon_records_dead_lettered_total{job="kanon"})')
        assert int(float(r[0]["value"][1])) == 2 * 3 * MALFORMED
        # The exactly-once loop and both stages commit (every 5 s at least).
        for q in ('kanon_transactions_total{job="kanon"}',
                  'kanon_stage_transactions_total{job="kanon",stage="bound"}',
                  'kanon_stage_transactions_total{job="kanon",stage="release"}'):
            poll(q + " > 0", lambda q=q: (lambda r: (bool(r) and float(r[0]["value"][1]) > 0, r))(instant(base, q)),
                 deadline, procs)
        r = instant(base, 'kanon_dp_epsilon_per_window{job="kanon"}')
        assert [float(x["value"][1]) for x in r] == [3.0]

        # Every rule of the file loaded, and each evaluated without error.
        with open(RULES) as f:
            groups = yaml.safe_load(f)["groups"]
        want = {(g["name"], r.get("alert") or r.get("record")) for g in groups for r in g["rules"]}

        def rules_healthy():
            data = api(base, "/api/v1/rules")
            if data is None:
                return False, None
            got = {(g["name"], r["name"]): r for g in data["groups"] for r in g["rules"]}
            ok = set(got) == want and all(r["health"] == "ok" and not r.get("lastError") for r in got.values())
            bad = {k: (r["health"], r.get("lastError")) for k, r in got.items() if r["health"] != "ok"}
            return ok, (set(got) ^ want, bad)

        poll("every rule loaded and healthy", rules_healthy, deadline, procs)

        # An alert through the whole path: kanon gauge -> scrape -> rule ->
        # firing, with the target's labels.
        def firing():
            data = api(base, "/api/v1/alerts")
            alerts = [] if data is None else data["alerts"]
            eps = [a for a in alerts if a["labels"]["alertname"] == "KanonDPEpsilonPerWindowAboveBound"]
            return bool(eps) and eps[0]["state"] == "firing", alerts

        alerts = poll("KanonDPEpsilonPerWindowAboveBound firing", firing, deadline, procs)
        eps = [a for a in alerts if a["labels"]["alertname"] == "KanonDPEpsilonPerWindowAboveBound"][0]
        assert eps["labels"]["instance"] == target and eps["labels"]["severity"] == "warning"
        assert eps["annotations"]["summary"] == "kanon releases with epsilon 3 per window (%s)" % target
        # A healthy target: none of the alerts about it is even pending once
        # its scrapes are in (absent(up) is true at an evaluation before the
        # first scrape, so KanonTargetsMissing may be pending at the start).
        quiet = {"KanonTargetDown", "KanonTargetsMissing", "KanonDPDeltaPerWindowAboveBound",
                 "KanonStageDeadLetters", "KanonNoProgress", "KanonTransactionsStalled",
                 "KanonStageTransactionsStalled", "KanonDeadLetterRatioHigh"}

        def healthy_target():
            data = api(base, "/api/v1/alerts")
            active = {a["labels"]["alertname"] for a in (data or {"alerts": []})["alerts"]}
            return data is not None and not active & quiet, active

        poll("no alert about a healthy kanon active", healthy_target, deadline, procs)
        # The recording rules evaluate on real series: this process runs its
        # own run loop (role all), so it is not a stage-only process, and
        # its dead-letter ratio is between 0 and 1.
        assert instant(base, "kanon:stage_only_process") == []

        def ratio():
            r = instant(base, 'kanon:dead_letter_ratio:rate10m{job="kanon"}')
            v = float(r[0]["value"][1]) if r else None
            return v is not None and 0 < v < 1, v

        poll("kanon:dead_letter_ratio:rate10m", ratio, deadline, procs)

        # What the rules and the dashboard name, kanon exported.
        names = set(api(base, "/api/v1/label/__name__/values"))
        missing = referenced_metrics() - names
        assert missing <= CONDITIONAL, "named but never exported by a live kanon: %s" % sorted(missing)
        code, text = scrape("http://%s/metrics" % target)
        assert code == 200 and metric(text, "kanon_records_consumed_total") == total
    finally:
        kanon.send_signal(signal.SIGTERM)
        p.send_signal(signal.SIGTERM)
        kanon.wait(timeout=30)
        p.wait(timeout=30)
    assert kanon.returncode == 0, kanon.stderr.read().decode()[-3000:]
