"""`kanon process` over Avro container files: the same pipeline without Kafka.
Inputs written by avro-c (kanon gen) and by fastavro; outputs read by fastavro."""
import json
import os
import subprocess

import fastavro

from conftest import DEID, KANON, Env, kept

DAY1 = 1793613600000  # 2026-11-02T10:00Z


def read(path):
    with open(path, "rb") as f:
        r = fastavro.reader(f)
        return r.writer_schema, list(r)


def test_generated_files(tmp_path):
    env = Env(tmp_path, "file")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--seed", "11", "--count", "1500", "--out-dir", d)
    for t in ("device", "access", "search"):
        _, inp = read(os.path.join(d, t + ".avro"))
        assert len(inp) == 1500
        n_kept = sum(1 for r in inp if kept(r))
        assert 0 < n_kept < 1500
        out_path = os.path.join(d, t + ".deid.avro")
        r = env.kanon("process", "-c", env.config, "--input", os.path.join(d, t + ".avro"), "--output", out_path)
        assert b"read 1500, wrote %d, dead-lettered 0, withheld by the policy %d" % (n_kept, 1500 - n_kept) in r.stderr
        schema, out = read(out_path)
        assert schema["name"] == "dev.kanon.v1.DeidEvent"
        assert len(out) == n_kept and {o["event_type"] for o in out} == {t}
        # Deterministic: a second run gives the same records.
        env.kanon("process", "-c", env.config, "--input", os.path.join(d, t + ".avro"), "--output", out_path + "2")
        assert read(out_path + "2")[1] == out


def test_foreign_writer_schema_variant_and_dead_letters(tmp_path):
    env = Env(tmp_path, "file2")
    # A producer's own version of DeviceLog: fields reordered, one added, docs
    # changed. Same record name, so kanon compiles its roles against it.
    with open(os.path.join(os.environ.get("KANON_SOURCE_DIR", "."), "schemas", "DeviceLog.avsc")) as f:
        js = json.load(f)
    js["fields"] = list(reversed(js["fields"])) + [{"name": "sdk", "type": "string", "default": "x"}]
    schema = fastavro.parse_schema(js)
    base = {"event_id": "e", "ts": DAY1, "user_id": "u1", "phone": None, "email": None, "device_id": "d1",
            "ip": "198.51.100.7", "user_agent": "curl/8.0", "os": "Android 14", "app_version": "1.2.3",
            "lat": 22.5431, "lon": 114.0579, "birth_year": None, "sdk": "v2",
            "consent": {"location": True, "ads_personalization": True, "analytics": True}}
    recs = [dict(base, event_id="e%d" % i) for i in range(5)]
    recs[3]["lat"] = 999.0
    inp, out, dead = (os.path.join(str(tmp_path), n) for n in ("in.avro", "out.avro", "dead.jsonl"))
    with open(inp, "wb") as f:
        fastavro.writer(f, schema, recs, codec="deflate")
    r = env.kanon("process", "-c", env.config, "--input", inp, "--output", out, "--dead-letter", dead)
    assert b"read 5, wrote 4, dead-lettered 1, withheld by the policy 0" in r.stderr
    _, got = read(out)
    assert [g["ip_prefix"] for g in got] == ["198.51.100.0/24"] * 4
    assert got[0]["os_family"] == "Android" and got[0]["ua_browser"] == "curl"
    assert got[0]["consent_ads"] is True
    with open(dead) as f:
        lines = [json.loads(l) for l in f]
    assert lines == [{"index": 3, "reason": "out_of_range", "detail": "lat"}]
    raw = open(out, "rb").read()
    assert b"198.51.100.7" not in raw and b"22.5431" not in raw


def test_unknown_and_corrupt_files(tmp_path):
    env = Env(tmp_path, "file3")
    other = fastavro.parse_schema({"type": "record", "name": "Other", "fields": [{"name": "a", "type": "int"}]})
    p = os.path.join(str(tmp_path), "other.avro")
    with open(p, "wb") as f:
        fastavro.writer(f, other, [{"a": 1}])
    r = env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out", check=False)
    assert r.returncode == 1 and b"matches no schema" in r.stderr
    # A truncated container file: clear error, non-zero, no crash.
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--count", "3000", "--types", "device", "--out-dir", d)
    data = open(os.path.join(d, "device.avro"), "rb").read()
    cut = os.path.join(d, "cut.avro")
    open(cut, "wb").write(data[: len(data) * 2 // 3])
    r = env.kanon("process", "-c", env.config, "--input", cut, "--output", cut + ".out", check=False)
    assert r.returncode == 1 and r.returncode != -11, r.stderr
    assert b"kanon:" in r.stderr


def test_trailing_bytes_and_odd_paths(tmp_path):
    env = Env(tmp_path, "file4")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--count", "40", "--types", "device", "--out-dir", d)
    src = os.path.join(d, "device.avro")
    good = os.path.join(d, "good.out")
    env.kanon("process", "-c", env.config, "--input", src, "--output", good)
    n_good = len(read(good)[1])
    # Bytes after the last block (here: a block header of 20 records with a
    # size of -1) are reported, and no record is emitted twice: avro-c alone
    # would replay the previous block.
    data = open(src, "rb").read()
    for tail in (b"\x28\x01", b"garbage"):
        bad = os.path.join(d, "tail.avro")
        open(bad, "wb").write(data + tail)
        r = env.kanon("process", "-c", env.config, "--input", bad, "--output", bad + ".out", check=False)
        assert r.returncode == 1, r.stderr
        assert b"from offset %d on are not an Avro block kanon can read (after record 40" % len(data) in r.stderr
        out = read(bad + ".out")[1]
        assert len(out) == n_good and len({o["event_key"] for o in out}) == n_good
    # An output path that is not a regular file is refused and left alone.
    os.mkdir(os.path.join(d, "adir"))
    os.symlink("/dev/null", os.path.join(d, "null"))
    for name in ("adir", "null"):
        p = os.path.join(d, name)
        r = env.kanon("process", "-c", env.config, "--input", src, "--output", p, check=False)
        assert r.returncode == 1 and b"is not a regular file" in r.stderr, r.stderr
    assert os.path.isdir(os.path.join(d, "adir")) and os.readlink(os.path.join(d, "null")) == "/dev/null"
    # A missing input says why.
    r = env.kanon("process", "-c", env.config, "--input", os.path.join(d, "nope.avro"), "--output", good,
                  check=False)
    assert r.returncode == 1 and b"nope.avro: No such file or directory" in r.stderr


def test_empty_blocks(tmp_path):
    """A block of no records: fine at the end of a file; in the middle avro-c
    would replay the block before it, so kanon stops there and says so."""
    env = Env(tmp_path, "file5")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--count", "40", "--types", "device", "--out-dir", d)
    with open(os.path.join(d, "device.avro"), "rb") as f:
        r = fastavro.reader(f)
        schema, recs = r.writer_schema, list(r)
    two = os.path.join(d, "two.avro")
    with open(two, "wb") as f:
        w = fastavro.write.Writer(f, schema, codec="deflate")
        for i, rec in enumerate(recs):
            w.write(rec)
            if i == 19:
                w.flush()  # two blocks of 20
        w.flush()
    data = open(two, "rb").read()
    sync = data[-16:]
    ends = [i + 16 for i in range(len(data)) if data.startswith(sync, i)]
    assert len(ends) == 3  # header, block 1, block 2
    empty = b"\x00\x00" + sync
    good = os.path.join(d, "good.out")
    env.kanon("process", "-c", env.config, "--input", two, "--output", good)
    n_good = len(read(good)[1])
    end = os.path.join(d, "end.avro")
    open(end, "wb").write(data + empty + empty)
    assert len(read(end)[1]) == 40  # another reader agrees it is whole
    env.kanon("process", "-c", env.config, "--input", end, "--output", end + ".out")
    assert len(read(end + ".out")[1]) == n_good
    mid = os.path.join(d, "mid.avro")
    open(mid, "wb").write(data[: ends[1]] + empty + data[ends[1]:])
    assert len(read(mid)[1]) == 40
    r = env.kanon("process", "-c", env.config, "--input", mid, "--output", mid + ".out", check=False)
    assert r.returncode == 1 and b"(after record 20;" in r.stderr, r.stderr
    out = read(mid + ".out")[1]
    assert len(out) == len({o["event_key"] for o in out}) < n_good
