"""Records written by fastavro (not avro-c), framed by hand, produced with kcat:
linkage within an epoch, separation across epochs and kinds, location consent,
IP prefixes, and each kind of bad input dead-lettered with its reason."""
import collections
import datetime

import os
import sys

from conftest import SRC, Env, consume, decode_deid, frame, load_schema, produce_files

sys.path.insert(0, os.path.join(SRC, "tests"))
from ground_truth import geohash  # noqa: E402  (an independent geohash)

DEVICE = load_schema("DeviceLog")
ACCESS = load_schema("AccessLog")
DAY1 = int(datetime.datetime(2026, 11, 2, 10, 0, tzinfo=datetime.timezone.utc).timestamp() * 1000)
DAY2 = DAY1 + 86400000

def device(tag, **kw):
    r = {"event_id": "evt-" + tag, "ts": DAY1, "user_id": "u-alice", "phone": "13800138000",
         "email": "alice@example.com", "device_id": "AB-CD-EF-01", "ip": "203.0.113.77",
         "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Version/17.1 Safari/604.1",
         "os": "iOS 17.1", "app_version": "9.%s" % tag, "lat": 31.2304, "lon": 121.4737,
         "consent": {"location": True, "ads_personalization": True, "analytics": True}, "birth_year": 1990}
    r.update(kw)
    return r


def test_crafted_records(broker, tmp_path):
    env = Env(tmp_path, "crafted")
    good = {
        "1": device("1"),
        "2": device("2", phone="+86 138-0013-8000", email="  Alice@Example.COM ", device_id="abcdef01"),
        "3": device("3", ts=DAY2),  # next day: next key epoch
        "4": device("4", user_id="alice@example.com", email=None, phone=None),  # same string, other kind
        "5": device("5", consent={"location": False, "ads_personalization": True, "analytics": True}),
        "6": device("6", ip="2001:db8:abcd:12:1:2:3:4", lat=None, lon=None),
    }
    huge = device("x", user_agent="A" * 10000)
    dead = [  # (payload, expected reason)
        (b"\x01" + frame(1, DEVICE, device("m"))[1:], "bad_framing"),
        (frame(77, DEVICE, device("u")), "unknown_schema"),
        (frame(1, DEVICE, device("t"))[:40], "decode_error"),
        (frame(1, DEVICE, device("l", lat=999.0)), "out_of_range"),
        (frame(1, DEVICE, device("y", ts=32503680000000)), "out_of_range"),
        (frame(2, ACCESS, {"event_id": "a", "ts": DAY1, "ip": "1.2.3.4", "cookie_id": None, "user_id": None,
                           "url": "https://x.com/", "referrer": None, "user_agent": "x", "status": 200,
                           "bytes": 1, "consent": {"location": True, "ads_personalization": True,
                                                   "analytics": True}}), "wrong_schema_for_topic"),
        (frame(1, DEVICE, huge), "field_too_long"),
        (frame(1, DEVICE, device("e", event_id="")), "missing_field"),
        (frame(1, DEVICE, device("i", ip="300.1.1.1")), "invalid_ip"),
    ]
    payloads = [frame(1, DEVICE, r) for r in good.values()] + [p for p, _ in dead]
    produce_files(env.topics["device"], payloads, tmp_path)
    env.kanon("run", "-c", env.config, "--until-eof", timeout=300)

    out = {}
    for m in consume(env.out):
        _, rec = decode_deid(m["value"])
        out[rec["app_version"].split(".")[1]] = rec
    assert sorted(out) == sorted(good)

    a, b, c, d, e, f = (out[k] for k in "123456")
    # Same person, typed differently, same epoch: same pseudonyms.
    assert a["phone_pid"] == b["phone_pid"] and a["email_pid"] == b["email_pid"]
    assert a["device_pid"] == b["device_pid"] and a["user_pid"] == b["user_pid"]
    # Next day: new epoch, nothing links.
    assert c["key_epoch"] == a["key_epoch"] + 1
    assert c["phone_pid"] != a["phone_pid"] and c["user_pid"] != a["user_pid"]
    # Same string under another identifier kind: unlinkable.
    assert d["user_pid"] not in (a["email_pid"], a["user_pid"])
    assert d["email_pid"] is None and d["phone_pid"] is None
    # Location: a cell with consent, none without.
    assert a["geo_cell"] == geohash(31.2304, 121.4737, 5)
    assert e["geo_cell"] is None and f["geo_cell"] is None
    # IP prefixes.
    assert a["ip_prefix"] == "203.0.113.0/24"
    assert f["ip_prefix"] == "2001:db8:abcd::/48"
    assert a["ua_browser"] == "Safari" and a["os_family"] == "iOS" and a["os_major"] == 17
    assert a["time_bucket"] == DAY1 and a["consent_ads"] is True

    dlq = consume(env.dlq)
    got = {int(m["headers"]["kanon.source.offset"]): m["headers"]["kanon.reason"] for m in dlq}
    want = {len(good) + i: reason for i, (_, reason) in enumerate(dead)}
    assert got == want
    assert collections.Counter(m["headers"]["kanon.source.partition"] for m in dlq) == {"0": len(dead)}
    # An empty value, not a tombstone (null) that compaction would remove.
    assert all(m["value"] == b"" for m in dlq), [m["value"] for m in dlq][:3]
