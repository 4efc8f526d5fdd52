"""Advertiser aggregates against the real broker: the mechanics (windows,
bounds, eligibility) compared row by row with an independent ground truth
(tests/ground_truth.py) in the exact k-anonymity mode, and the default
differentially private release byte-identical under repeated kill -9."""
import collections
import os
import random
import re
import shutil
import signal
import sys
import time

from conftest import (AGG, AGG_STATS, DEID, SCHEMAS_BY_ID, SRC, Env, consume, decode_framed,
                      end_offsets, kept)

sys.path.insert(0, os.path.join(SRC, "tests"))
import ground_truth  # noqa: E402

DEFS = [
    {"name": "type_geo", "dimensions": ["event_type", "geo_cell"], "k": 20, "geo_precision": 3},
    {"name": "type", "dimensions": ["event_type"], "k": 50},
    {"name": "domain", "dimensions": ["url_domain"], "k": 30},
]
DIMS = {"event_type": "event_type", "geo_cell": "geo_cell", "url_domain": "url_domain"}
SEED, COUNT, USERS, SPAN, WINDOW = 21, 15000, 30000, "3h", "1h"
# L0 wide enough that this corpus never needs it (the ground truth cannot
# mirror kanon's keyed choice of which groups a person keeps).
MAX_GROUPS, MAX_EVENTS = 64, 10
AGG_EXTRA = "max_groups_per_person: %d\nmax_events_per_person: %d" % (MAX_GROUPS, MAX_EVENTS)


def corpus(env, tmp):
    d = os.path.join(str(tmp), "corpus")
    os.makedirs(d, exist_ok=True)
    args = ["gen", "-c", env.config, "--seed", str(SEED), "--count", str(COUNT), "--users", str(USERS),
            "--span", SPAN]
    env.kanon(*args)
    env.kanon(*args, "--out-dir", d)
    return d


def kept_events(corpus_dir):
    """Input events the policy lets through (both consents, not a minor's),
    from the files."""
    import fastavro
    n = 0
    for t in ("device", "access", "search"):
        with open(os.path.join(corpus_dir, t + ".avro"), "rb") as f:
            n += sum(1 for r in fastavro.reader(f) if kept(r))
    return n


def committed_rows(env):
    rows = {}
    for m in consume(env.agg):
        sid, r = decode_framed(m["value"], AGG)
        assert sid == 101
        d = next(x for x in DEFS if x["name"] == r["aggregate"])
        key = (r["aggregate"], r["window_start"], tuple(r[DIMS[x]] for x in d["dimensions"]))
        assert key not in rows, "row released twice: %s" % (key,)
        rows[key] = r
    return rows


def check_against_truth(rows, truth):
    assert set(rows) == set(truth), (sorted(set(rows) ^ set(truth), key=str)[:10])
    for key, r in rows.items():
        events, users = truth[key]
        assert r["events"] == events, (key, r["events"], events)
        assert r["window_end"] - r["window_start"] == 3600000 and r["window_ms"] == 3600000
        assert r["users"] >= r["k"] and r["users_exact"]
        assert r["users"] == users, (key, r["users"], users)


def test_aggregates_match_ground_truth(broker, tmp_path):
    env = Env(tmp_path, "agg", aggregates=DEFS, window=WINDOW, agg_extra=AGG_EXTRA,
              privacy="k-anonymity")
    d = corpus(env, tmp_path)
    r = env.kanon("run", "-c", env.config, "--until-eof", timeout=600)
    assert b"late=0" in r.stderr, r.stderr.decode()[-2000:]
    assert not re.search(rb" rows=0 ", r.stderr), r.stderr.decode()[-2000:]
    truth, suppressed = ground_truth.expected(d, DEFS, 3600000, MAX_EVENTS, MAX_GROUPS)
    rows = committed_rows(env)
    check_against_truth(rows, truth)
    assert len(rows) > 20 and sum(suppressed.values()) > 0, (len(rows), suppressed)

    # Summaries: one per definition and window, agreeing with the rows.
    stats = [decode_framed(m["value"], AGG_STATS)[1] for m in consume(env.aggstats)]
    per = collections.Counter((s["aggregate"], s["window_start"]) for s in stats)
    windows = {k[1] for k in truth} | {k[1] for k in suppressed}
    assert all(v == 1 for v in per.values()) and len(per) == len(DEFS) * len(windows)
    for s in stats:
        released = [k for k in rows if k[0] == s["aggregate"] and k[1] == s["window_start"]]
        assert s["groups_released"] == len(released)
        assert s["events_released"] == sum(rows[k]["events"] for k in released)
        assert s["mechanism"] == "k-anonymity" and s["epsilon"] is None and s["delta"] is None
        assert s["threshold"] == s["k"]
        # Nothing exact about what was withheld reaches an advertiser's topic.
        assert not {"groups_suppressed", "events_suppressed", "events_bounded"} & set(s)

    check_closed_early(env)

    # The de-identified stream kept working beside the aggregates, exactly once.
    deid = consume(env.out)
    kept = kept_events(d)
    assert 0.8 * 3 * COUNT < kept < 3 * COUNT
    assert len(deid) == kept
    keys = {decode_framed(m["value"], DEID)[1]["event_key"] for m in deid}
    assert len(keys) == kept


def input_watermark(env, lateness_ms=5 * 60000):
    """The input's own watermark at its end: min over input partitions with
    data of (largest event time - lateness). Malformed records are skipped."""
    import io
    import fastavro
    top = {}
    for t in env.topics.values():
        for m in consume(t, committed=False):
            v = m["value"]
            if not v or len(v) < 5 or v[0] != 0 or int.from_bytes(v[1:5], "big") not in SCHEMAS_BY_ID:
                continue
            try:
                rec = fastavro.schemaless_reader(io.BytesIO(v[5:]), SCHEMAS_BY_ID[int.from_bytes(v[1:5], "big")])
            except Exception:
                continue
            ts = rec["ts"]
            ts = round(ts.timestamp() * 1000) if hasattr(ts, "timestamp") else ts
            key = (t, m["partition"])
            top[key] = max(top.get(key, ts), ts)
    return min(top.values()) - lateness_ms


def check_closed_early(env):
    """closed_early is the input's, not the run's: a window is closed early
    iff the input's own watermark had not passed its end (whatever kills,
    restarts and timing did)."""
    wm = input_watermark(env)
    stats = [decode_framed(m["value"], AGG_STATS)[1] for m in consume(env.aggstats)]
    assert stats
    for s in stats:
        assert s["closed_early"] == (s["window_end"] > wm), (s, wm)


def test_opted_out_people_never_contribute(broker, tmp_path):
    """A k=2 aggregate over a person who opted out of analytics (or ads):
    with them the group would reach k; without them it must not exist."""
    from conftest import frame, load_schema, produce_files
    dev = load_schema("DeviceLog")
    env = Env(tmp_path, "optout", aggregates=[{"name": "geo", "dimensions": ["geo_cell"], "k": 2,
                                                "geo_precision": 5}], privacy="k-anonymity")
    t = 1793613600000

    def rec(i, user, analytics=True, ads=True, lat=31.2304):
        return {"event_id": "e%d" % i, "ts": t + i, "user_id": user, "phone": None, "email": None,
                "device_id": "d%d" % i, "ip": "203.0.113.9", "user_agent": "x", "os": "iOS 17",
                "app_version": "1.0", "lat": lat, "lon": 121.4737, "birth_year": None,
                "consent": {"location": True, "ads_personalization": ads, "analytics": analytics}}
    msgs = [rec(0, "alice"), rec(1, "bob", analytics=False), rec(2, "carol", ads=False),
            rec(3, "dave", lat=40.0), rec(4, "erin", lat=40.0)]
    produce_files(env.topics["device"], [frame(1, dev, m) for m in msgs], tmp_path)
    env.kanon("run", "-c", env.config, "--until-eof", timeout=300)
    rows = [decode_framed(m["value"], AGG)[1] for m in consume(env.agg)]
    # Only dave+erin's cell reaches k=2; alice's cell had two opted-out neighbours.
    assert [(r["users"], r["events"]) for r in rows] == [(2, 2)], rows


def raw_rows(env):
    """The released rows as bytes (value and key), one set per topic."""
    rows = [(m["key"], m["value"]) for m in consume(env.agg)]
    assert len(rows) == len(set(rows)), "a row released twice"
    return set(rows)


def test_exactly_once_under_kill9(broker, tmp_path):
    """The differentially private release, through six kill -9s, is byte for
    byte the release of an uninterrupted run with the same key file: the
    noise depends on the noise key and the group, never on the run."""
    # L0 = 3 (one group per definition): the default budget then releases
    # groups of about 90 people and more.
    extra = "max_groups_per_person: 3\nmax_events_per_person: %d" % MAX_EVENTS
    (tmp_path / "ref").mkdir()
    ref = Env(tmp_path / "ref", "crash-ref", aggregates=DEFS, window=WINDOW, agg_extra=extra)
    env = Env(tmp_path, "crash", aggregates=DEFS, window=WINDOW, agg_extra=extra)
    # The same deployment, as far as the noise is concerned: the key file
    # and the transactional id (ref runs to its end before env starts).
    shutil.copyfile(ref.key, env.key)
    with open(ref.config) as f:
        text = f.read().replace("%s-tx" % ref.prefix, "%s-tx" % env.prefix)
    with open(ref.config, "w") as f:
        f.write(text)
    corpus(ref, tmp_path / "ref")
    d = corpus(env, tmp_path)
    ref.kanon("run", "-c", ref.config, "--until-eof", timeout=600)
    # Slow, small transactions so that kills land everywhere: mid-batch,
    # mid-transaction, between commit and the next begin.
    slow = ["--set", "kafka.consumer.max.partition.fetch.bytes=16384", "--set", "run.commit_interval=150ms",
            "--set", "run.batch_size=500"]
    rng = random.Random(1234)
    kills = 0
    while kills < 6:
        p = env.popen("run", "-c", env.config, *slow)
        time.sleep(rng.uniform(0.3, 3.0))
        if p.poll() is not None:
            raise AssertionError("kanon exited early: %s" % p.stderr.read().decode()[-2000:])
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
    assert end_offsets(env.out) > 0, "kills landed before any progress"
    r = env.kanon("run", "-c", env.config, "--until-eof", timeout=600)
    assert b"restored from Kafka" in r.stderr

    want, got = raw_rows(ref), raw_rows(env)
    assert len(want) > 10 and got == want, (len(want), len(got), len(want ^ got))
    # Noisy: rows are not the exact counts.
    truth, _ = ground_truth.expected(d, DEFS, 3600000, MAX_EVENTS, MAX_GROUPS)
    rows = committed_rows(env)
    assert all(not r["users_exact"] for r in rows.values())
    exact = sum(1 for k, r in rows.items() if k in truth and (r["events"], r["users"]) == truth[k])
    assert exact < len(rows) / 4, (exact, len(rows))
    # De-identified events: every one exactly once in the committed output.
    deid = consume(env.out)
    keys = collections.Counter(decode_framed(m["value"], DEID)[1]["event_key"] for m in deid)
    assert len(keys) == kept_events(d) and max(keys.values()) == 1
    # Aborted transactions exist in the log but not in what readers see.
    assert end_offsets(env.out) > len(deid)
    check_closed_early(env)
