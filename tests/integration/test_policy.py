"""The privacy policy end to end through the real broker: what an opted-out
person, a minor, a sensitive query or PII in search text may and may not
reach, in the de-identified stream, the dead letters and the aggregates."""
from conftest import AGG, Env, consume, decode_deid, decode_framed, frame, load_schema, produce_files

SEARCH = load_schema("SearchLog")
DAY = 1793577600000  # 2026-11-02T00:00Z
H = 3600000
AGGS = [{"name": "category", "dimensions": ["query_category"], "k": 2},
        {"name": "everything", "dimensions": ["event_type"], "k": 2}]


def search(i, user, query, analytics=True, ads=True, location=True, birth_year=1990,
           clicked="https://www.ctrip.com/list?uid=1"):
    # One record per hour: its time bucket tells which output is which.
    return {"event_id": "s%d" % i, "ts": DAY + i * H + 1000, "user_id": user, "device_id": "dev-" + user,
            "ip": "198.51.100.%d" % (i + 10), "query": query, "clicked_url": clicked,
            "lat": 39.9087, "lon": 116.3975, "birth_year": birth_year,
            "consent": {"location": location, "ads_personalization": ads, "analytics": analytics}}


CASES = [  # (record, what must happen)
    (search(0, "adult-a", "北京到上海高铁 13800138000"), "kept"),
    (search(1, "adult-b", "北京 机票 便宜"), "kept"),
    (search(2, "adult-c", "iphone 16 价格"), "kept"),
    (search(3, "minor-d", "iphone 手机 价格", birth_year=2010), "dropped"),  # a minor's
    (search(4, "adult-e", "火锅 推荐"), "kept"),
    (search(5, "optout-f", "外卖 火锅", analytics=False), "dropped"),
    (search(6, "adult-g", "天气预报"), "kept"),
    (search(7, "noads-h", "下雨 天气", ads=False), "dropped"),
    (search(8, "adult-i", "感冒 吃什么药"), "sensitive"),
    (search(9, "adult-j", "糖尿病 饮食", clicked="https://www.haodf.com/hospital/1.html"), "sensitive"),
    (search(10, "adult-k", "附近 火锅", location=False), "kept"),
]


def test_policy_end_to_end(broker, tmp_path):
    env = Env(tmp_path, "policy", extra="\npolicy:\n  emit_scrubbed_query: true\n",
              aggregates=AGGS, window="1d", privacy="k-anonymity")
    produce_files(env.topics["search"], [frame(3, SEARCH, r) for r, _ in CASES], tmp_path)
    env.kanon("run", "-c", env.config, "--until-eof", timeout=300)

    out = {}
    for m in consume(env.out):
        _, rec = decode_deid(m["value"])
        out[(rec["time_bucket"] - DAY) // H] = (rec, m)
    assert consume(env.dlq) == []
    want = {i for i, (_, what) in enumerate(CASES) if what != "dropped"}
    assert set(out) == want  # opted-out people and minors: nothing at all

    raw = b"".join(m["value"] + (m["key"] or b"") for _, m in out.values())
    for r, _ in CASES:
        for needle in (r["user_id"], r["device_id"], r["ip"], "13800138000"):
            assert needle.encode() not in raw
    for i, (r, what) in enumerate(CASES):
        if i not in out:
            continue
        rec, m = out[i]
        if what == "sensitive":
            # Nothing that points to a person: "withheld" beside a pseudonym
            # would itself say that this person touched something sensitive.
            assert rec["query_category"] == "withheld" and m["key"] is None
            assert [f for f, v in rec.items() if v is not None] == [
                "event_type", "event_key", "time_bucket", "bucket_ms", "key_epoch",
                "consent_ads", "consent_analytics", "query_category"]
            continue
        assert rec["user_pid"] and rec["device_pid"]
        assert rec["query_category"] != "withheld" and rec["url_domain"] == "ctrip.com"
        if not r["consent"]["location"]:
            assert rec["geo_cell"] is None and rec["ip_prefix"] is None
        else:
            assert rec["geo_cell"] == "wx4g0" and rec["ip_prefix"].endswith(".0/24")
    assert out[0][0]["query"] == "北京到上海高铁 <PHONE>"
    assert out[0][0]["query_category"] == "travel"
    assert out[2][0]["query_category"] == "shopping"

    # Aggregates: a group reaches k=2 only without the people it must not count.
    rows = {(r["aggregate"], r["query_category"] or r["event_type"]): r
            for r in (decode_framed(m["value"], AGG)[1] for m in consume(env.agg))}
    assert ("category", "travel") in rows and rows[("category", "travel")]["users"] == 2
    assert ("category", "food") in rows and rows[("category", "food")]["users"] == 2  # e, k
    assert ("category", "shopping") not in rows  # c + a minor: 1 person
    assert ("category", "weather") not in rows  # g + an ads opt-out: 1 person
    assert ("category", "withheld") not in rows  # never a dimension value
    # One eligibility rule for every definition: totals count neither the
    # sensitive events (else two definitions would differ by exactly them)
    # nor the minor's or the opt-outs'.
    assert rows[("everything", "search")]["users"] == 6


def test_withheld_event_key_links_nothing(tmp_path):
    """An upstream id reused across logs (one request in the access and the
    search log) must not link a withheld event to a kept one: the withheld
    event's key is its own, yet stable across runs (deduplication)."""
    import fastavro
    env = Env(tmp_path, "file")
    kept_rec = search(1, "adult-b", "北京 机票 便宜")
    withheld_rec = dict(search(8, "adult-b", "感冒 吃什么药"), event_id=kept_rec["event_id"])
    path, out = str(tmp_path / "in.avro"), str(tmp_path / "out.avro")
    with open(path, "wb") as f:
        fastavro.writer(f, SEARCH, [kept_rec, withheld_rec])
    keys = []
    for _ in range(2):
        env.kanon("process", "-c", env.config, "--input", path, "--output", out)
        with open(out, "rb") as f:
            recs = list(fastavro.reader(f))
        assert [r["query_category"] == "withheld" for r in recs] == [False, True]
        assert all(r["event_key"] and len(r["event_key"]) == 32 for r in recs)
        keys.append([r["event_key"] for r in recs])
    assert keys[0][0] != keys[0][1]  # the same id, two unlinked keys
    assert keys[0] == keys[1]  # and the same keys on a re-run
