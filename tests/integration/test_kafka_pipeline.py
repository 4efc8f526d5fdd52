"""The generated corpus through the real broker: every input accounted for,
dead letters with the right reasons and headers, output that is real Avro,
and not one raw identifier, IP or coordinate anywhere in the output bytes."""
import collections
import os
import re

import fastavro

from conftest import Env, kept, consume, decode_deid, decoded_inputs, SRC  # noqa: F401

COUNT, MALFORMED, USERS, SEED = 4000, 12, 800, 7


def raw_needles(tmp, env):
    """Every raw identifier of the corpus, in the forms that could leak."""
    d = os.path.join(str(tmp), "corpus")
    os.makedirs(d)
    env.kanon("gen", "-c", env.config, "--seed", str(SEED), "--count", str(COUNT), "--users", str(USERS),
              "--out-dir", d)
    needles = set()
    for t in ("device", "access", "search"):
        with open(os.path.join(d, t + ".avro"), "rb") as f:
            for r in fastavro.reader(f):
                for k in ("user_id", "device_id", "cookie_id", "email", "phone", "ip", "event_id"):
                    v = r.get(k)
                    if v:
                        needles.add(v)
                        needles.add(v.strip().lower())
                if r.get("phone"):
                    digits = re.sub(r"\D", "", r["phone"])
                    needles.add(digits[-11:])  # the national number
                if r.get("device_id"):
                    needles.add(r["device_id"].lower().replace("-", ""))
                for k in ("lat", "lon"):
                    if r.get(k) is not None:
                        needles.add("%.4f" % r[k])
    return {n for n in needles if len(n) >= 6}


def test_corpus_through_real_broker(broker, tmp_path):
    env = Env(tmp_path, "corpus")
    env.kanon("gen", "-c", env.config, "--seed", str(SEED), "--count", str(COUNT), "--users", str(USERS),
              "--malformed", str(MALFORMED))
    r = env.kanon("run", "-c", env.config, "--until-eof", timeout=600)
    assert b"consumed=%d" % (3 * (COUNT + MALFORMED)) in r.stderr, r.stderr.decode()

    out = consume(env.out)
    dlq = consume(env.dlq)
    # Every input record is accounted for, exactly once (clean run, no restarts):
    # de-identified, dead-lettered, or withheld because its person did not
    # consent to analytics or ads personalization.
    valid = [r for r in decoded_inputs(env.topics.values())
             if -90 <= (r.get("lat") or 0) <= 90 and r.get("status", 200) <= 999
             and (r["ts"].year if hasattr(r["ts"], "year") else 2026) < 3000]
    withheld = sum(1 for r in valid if not kept(r))
    assert len(valid) == 3 * COUNT and withheld > 0
    assert re.search(rb"dropped=%d\b" % withheld, r.stderr), r.stderr
    assert len(out) + len(dlq) + withheld == 3 * (COUNT + MALFORMED)
    assert len(dlq) == 3 * MALFORMED and len(out) == 3 * COUNT - withheld

    # Dead letters: reason and provenance headers, no payload by default.
    reasons = collections.Counter(m["headers"]["kanon.reason"] for m in dlq)
    per = 3 * MALFORMED // 6
    assert reasons == {"bad_framing": per, "unknown_schema": per, "decode_error": per,
                       "out_of_range": 2 * per, "empty_value": per}, reasons
    seen_src = set()
    for m in dlq:
        h = m["headers"]
        assert h["kanon.source.topic"] in env.topics.values()
        assert int(h["kanon.source.partition"]) >= 0 and int(h["kanon.source.offset"]) >= 0
        seen_src.add((h["kanon.source.topic"], h["kanon.source.partition"], h["kanon.source.offset"]))
        assert not m["value"], "raw payload must not be copied by default"
    assert len(seen_src) == len(dlq)
    details = collections.Counter(m["headers"]["kanon.detail"] for m in dlq if m["headers"]["kanon.reason"] == "out_of_range")
    assert details["timestamp"] == per and details["lat"] + details["status"] == per

    # Output is Confluent-framed Avro that fastavro reads against DeidEvent.avsc.
    types = collections.Counter()
    prefixes = 0
    for m in out:
        sid, rec = decode_deid(m["value"])
        assert sid == 100
        types[rec["event_type"]] += 1
        assert rec["time_bucket"] % 3600000 == 0 and rec["bucket_ms"] == 3600000
        assert rec["key_epoch"] == rec["time_bucket"] // 86400000
        # No prefix without location consent (nothing finer than country).
        assert rec["ip_prefix"] is None or rec["ip_prefix"].endswith(("/24", "/48"))
        prefixes += rec["ip_prefix"] is not None
        assert rec["geo_cell"] is None or len(rec["geo_cell"]) == 5
        for k in ("user_pid", "device_pid", "phone_pid", "email_pid", "cookie_pid"):
            assert rec[k] is None or re.fullmatch(r"[0-9a-f]{32}", rec[k])
        if m["key"]:
            assert re.fullmatch(rb"[0-9a-f]{32}", m["key"])
    assert set(types) == {"device", "access", "search"}
    assert 0.8 * len(out) < prefixes < len(out)

    # No raw identifier, IP or coordinate anywhere in the output bytes.
    blob = b"\n".join((m["value"] or b"") + b"\x00" + (m["key"] or b"") for m in out + dlq)
    needles = raw_needles(tmp_path, env)
    assert len(needles) > 1000
    leaked = [n for n in needles if n.encode() in blob]
    assert not leaked, leaked[:10]


def test_gen_pool_sends_its_first_records_again(broker, tmp_path):
    """gen --rate --pool N makes the first N records of a type and then sends
    those again in turn (B3's load: making records took a core); without it
    every record is new. --pool without --rate is a usage error."""
    env = Env(tmp_path, "pool")
    env.kanon("gen", "-c", env.config, "--seed", "5", "--count", "25", "--types", "device",
              "--rate", "5000", "--pool", "10")
    sent = collections.Counter(r["value"] for r in consume(env.topics["device"], committed=False))
    # Records 0-4 went out three times (i, i + 10, i + 20), 5-9 twice.
    assert sorted(sent.values()) == [2] * 5 + [3] * 5
    (tmp_path / "fresh").mkdir()
    fresh = Env(tmp_path / "fresh", "pool")
    fresh.kanon("gen", "-c", fresh.config, "--seed", "5", "--count", "25", "--types", "device",
                "--rate", "5000")
    values = [r["value"] for r in consume(fresh.topics["device"], committed=False)]
    assert len(values) == 25 and len(set(values)) == 25
    assert set(sent) <= set(values)  # the pool is the stream's own first records
    r = env.kanon("gen", "-c", env.config, "--pool", "10", check=False)
    assert r.returncode == 2 and b"--pool goes with --rate" in r.stderr
