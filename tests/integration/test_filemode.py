"""`kanon process` over Avro container files: the same pipeline without Kafka.
Inputs written by avro-c (kanon gen) and by fastavro; outputs read by fastavro."""
import datetime
import json
import os
import resource
import signal
import subprocess
import time

import avro.datafile
import avro.io
import fastavro

from conftest import DEID, KANON, SRC, Env, kept

DAY1 = 1793613600000  # 2026-11-02T10:00Z


def read(path):
    with open(path, "rb") as f:
        r = fastavro.reader(f)
        return r.writer_schema, list(r)


SCHEMA_OF = {"device": "DeviceLog", "access": "AccessLog", "search": "SearchLog"}


def load_json(name):
    with open(os.path.join(SRC, "schemas", name + ".avsc")) as f:
        return json.load(f)


def header_schema(path):
    """The avro.schema of a container file's header, as JSON."""
    with open(path, "rb") as f:
        return json.loads(fastavro.reader(f).metadata["avro.schema"])


def write_in_blocks(path, schema, recs, codec="null", per=20):
    """recs as a container file of blocks of per records each."""
    with open(path, "wb") as f:
        w = fastavro.write.Writer(f, schema, codec=codec)
        for i, rec in enumerate(recs):
            w.write(rec)
            if i % per == per - 1:
                w.flush()
        w.flush()


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
        # Both headers carry their .avsc whole (avro-c's writer dropped
        # logicalType, default and doc): a reader that trusts the file sees
        # timestamps, and another Avro implementation reads the same records.
        assert header_schema(out_path) == load_json("DeidEvent")
        assert header_schema(os.path.join(d, t + ".avro")) == load_json(SCHEMA_OF[t])
        assert all(isinstance(o["time_bucket"], datetime.datetime) for o in out)
        with open(out_path, "rb") as f:
            assert list(avro.datafile.DataFileReader(f, avro.io.DatumReader())) == out
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
    assert r.returncode == 1 and b"matches no schema" in r.stderr.strip().splitlines()[-1], r.stderr
    # A truncated container file: clear error, non-zero, no crash.
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--count", "3000", "--types", "device", "--out-dir", d)
    data = open(os.path.join(d, "device.avro"), "rb").read()
    cut = os.path.join(d, "cut.avro")
    open(cut, "wb").write(data[: len(data) * 2 // 3])
    r = env.kanon("process", "-c", env.config, "--input", cut, "--output", cut + ".out", check=False)
    assert r.returncode == 1 and r.returncode != -11, r.stderr
    assert b"kanon:" in r.stderr


def raw_container(path, schema_text):
    """A container file with no blocks whose header's avro.schema is
    schema_text as it is (no library would write an invalid one)."""
    def zz(n):
        n, out = (n << 1) ^ (n >> 63), b""
        while n > 0x7F:
            out, n = out + bytes([(n & 0x7F) | 0x80]), n >> 7
        return out + bytes([n])

    def blob(b):
        return zz(len(b)) + b

    meta = blob(b"avro.schema") + blob(schema_text.encode()) + blob(b"avro.codec") + blob(b"null")
    with open(path, "wb") as f:
        f.write(b"Obj\x01" + zz(2) + meta + zz(0) + b"\x5a" * 16)


def test_header_text_is_tamed_in_errors(tmp_path):
    """A file's header is its writer's text: avro-c quotes an invalid schema
    back, and kanon's error must neither forge a line nor carry terminal
    escapes (ESC, BEL, CR, LF) from it."""
    env = Env(tmp_path, "file_tame")
    evil = "\x1b]0;title\x07\x1b[2J\r\nkanon: forged line\x1b[0m\u009b31m"
    p = os.path.join(str(tmp_path), "evil.avro")
    raw_container(p, json.dumps({"type": "record", "name": "DeviceLog",
                                 "fields": [{"name": "a", "type": evil}]}))
    r = env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out", check=False)
    assert r.returncode == 1, r.stderr
    assert b"avro.schema" in r.stderr and b"forged line" in r.stderr, r.stderr
    assert not any(c < 0x20 and c != 0x0A for c in r.stderr), r.stderr
    assert b"\nkanon: forged" not in r.stderr and b"\x7f" not in r.stderr
    assert b"\xc2\x9b" not in r.stderr  # C1's CSI, as UTF-8


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
        assert b"the bytes from offset %d on are not an Avro block" % len(data) in r.stderr
        assert b"read 40," in r.stderr
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


def limited(size):
    """A child's preexec: files cannot grow beyond size bytes (EFBIG, as a
    full disk's ENOSPC), and SIGXFSZ does not kill it."""
    def f():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return f


def test_outputs_replaced_only_whole(tmp_path):
    env = Env(tmp_path, "file-out")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--count", "3000", "--types", "device", "--out-dir", d)
    src = os.path.join(d, "device.avro")
    src_bytes = open(src, "rb").read()
    out, dead = os.path.join(d, "out.avro"), os.path.join(d, "dead.jsonl")
    # Two of the three paths naming one file are refused before anything is
    # written: the input stays as it was.
    os.link(src, os.path.join(d, "hard.avro"))
    os.symlink("device.avro", os.path.join(d, "soft.avro"))
    for args, why in ((("--output", src), b"--output"), (("--output", os.path.join(d, "hard.avro")), b"--output"),
                      (("--output", os.path.join(d, "soft.avro")), b"--output"),
                      (("--output", out, "--dead-letter", src), b"--dead-letter"),
                      (("--output", out, "--dead-letter", out), b"are one file"),
                      (("--output", out, "--dead-letter", os.path.join(d, ".", "out.avro")), b"are one file")):
        r = env.kanon("process", "-c", env.config, "--input", src, *args, check=False)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    assert open(src, "rb").read() == src_bytes and not os.path.exists(out)
    # A run that completes replaces both.
    env.kanon("process", "-c", env.config, "--input", src, "--output", out, "--dead-letter", dead)
    assert len(read(out)[1]) == sum(1 for r in read(src)[1] if kept(r))
    assert open(dead, "rb").read() == b""
    size = os.path.getsize(out)
    # Writes that fail (a file-size limit stands in for a full disk) are an
    # error, and the older files stay whole, with no temporary file left:
    # failing early, and failing only on the last bytes (avro-c's close).
    open(out, "wb").write(b"older output")
    open(dead, "wb").write(b"older dead letters")
    for limit in (4096, size - 1):
        r = subprocess.run([KANON, "process", "-c", env.config, "--input", src, "--output", out, "--dead-letter",
                            dead], env=env.env, capture_output=True, timeout=120, preexec_fn=limited(limit))
        assert r.returncode == 1 and b"writing " in r.stderr and b"File too large" in r.stderr, (limit, r.stderr)
        assert open(out, "rb").read() == b"older output" and open(dead, "rb").read() == b"older dead letters"
        assert not any(".kanon-tmp-" in n for n in os.listdir(d))
    # A dead-letter path that is a symlink: the file it names is replaced,
    # the link stays.
    os.symlink("target.jsonl", os.path.join(d, "link.jsonl"))
    open(os.path.join(d, "target.jsonl"), "wb").write(b"old")
    env.kanon("process", "-c", env.config, "--input", src, "--output", out, "--dead-letter",
              os.path.join(d, "link.jsonl"))
    assert os.readlink(os.path.join(d, "link.jsonl")) == "target.jsonl"
    assert open(os.path.join(d, "target.jsonl"), "rb").read() == b""
    # A signal mid-run: the older files stay, no temporary file is left, and
    # the process dies of the signal (exit 128 + 15).
    big = os.path.join(d, "big.avro")
    env.kanon("gen", "-c", env.config, "--count", "200000", "--types", "device", "--out-dir",
              os.path.join(d, "big"))
    os.rename(os.path.join(d, "big", "device.avro"), big)
    open(out, "wb").write(b"older output")
    p = subprocess.Popen([KANON, "process", "-c", env.config, "--input", big, "--output", out, "--dead-letter", dead],
                         env=env.env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(".kanon-tmp-" in n for n in os.listdir(d)):  # writing has begun
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == -signal.SIGTERM
    assert open(out, "rb").read() == b"older output"
    assert not any(".kanon-tmp-" in n for n in os.listdir(d)), os.listdir(d)
    # gen says which file the disk did not take, and no summary on stdout.
    r = subprocess.run([KANON, "gen", "-c", env.config, "--count", "3000", "--out-dir", os.path.join(d, "g")],
                       env=env.env, capture_output=True, timeout=120, preexec_fn=limited(65536))
    assert r.returncode == 1 and b"File too large" in r.stderr and r.stdout == b"", r


def test_empty_blocks(tmp_path):
    """A block of no records is fine anywhere (avro-c's own reader would
    replay the block before one in the middle: kanon reads blocks itself)."""
    env = Env(tmp_path, "file5")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--count", "40", "--types", "device", "--out-dir", d)
    with open(os.path.join(d, "device.avro"), "rb") as f:
        r = fastavro.reader(f)
        schema, recs = r.writer_schema, list(r)
    two = os.path.join(d, "two.avro")
    write_in_blocks(two, schema, recs, codec="deflate")  # two blocks of 20
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
    env.kanon("process", "-c", env.config, "--input", mid, "--output", mid + ".out")
    assert read(mid + ".out")[1] == read(good)[1]


def blocks_of(data):
    """(header, [(offset, count, payload)], sync) of a container file written
    with the null codec, parsed here independently of kanon."""
    sync = data[-16:]
    first = data.index(sync) + 16

    def varint(pos):
        shift = u = 0
        while True:
            b = data[pos]
            pos += 1
            u |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (u >> 1) ^ -(u & 1), pos

    out, pos = [], first
    while pos < len(data):
        count, p = varint(pos)
        size, p = varint(p)
        out.append((pos, count, data[p:p + size]))
        assert data[p + size:p + size + 16] == sync
        pos = p + size + 16
    return data[:first], out, sync


def recs_of(*blocks):
    """The record indices of blocks of 20."""
    return {i for b in blocks for i in range(20 * b, 20 * b + 20)}


def varint(n):
    u, out = (n << 1) ^ (n >> 63), b""
    while True:
        if u < 0x80:
            return out + bytes([u])
        out += bytes([(u & 0x7F) | 0x80])
        u >>= 7


def block(count, payload, sync):
    return varint(count) + varint(len(payload)) + payload + sync


def test_damaged_blocks_are_skipped(tmp_path):
    """One damaged block costs its own records and no others: kanon resumes
    at the next sync marker, dead-letters what it lost with the offset and
    the reason, processes every other block and exits 1."""
    env = Env(tmp_path, "file6")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--seed", "6", "--count", "100", "--types", "device", "--out-dir", d)
    schema, recs = read(os.path.join(d, "device.avro"))
    src = os.path.join(d, "five.avro")
    write_in_blocks(src, schema, recs)  # five blocks of 20
    header, blocks, sync = blocks_of(open(src, "rb").read())
    assert [c for _, c, _ in blocks] == [20] * 5
    full = os.path.join(d, "full.out")
    env.kanon("process", "-c", env.config, "--input", src, "--output", full)
    by_id = {}
    for o in read(full)[1]:
        by_id[o["event_key"]] = o

    def run(name, body, lost):
        p, out, dead = (os.path.join(d, name + x) for x in (".avro", ".out", ".dead"))
        open(p, "wb").write(header + body)
        r = env.kanon("process", "-c", env.config, "--input", p, "--output", out, "--dead-letter", dead,
                      check=False)
        assert r.returncode == 1 and b"damaged part(s) skipped" in r.stderr, r.stderr
        got = read(out)[1]
        assert len(got) == sum(1 for i, rec in enumerate(recs) if kept(rec) and i not in lost)
        assert all(by_id[g["event_key"]] == g for g in got)  # the same records as from the whole file
        return r.stderr.decode(), [json.loads(l) for l in open(dead)]

    b = [block(c, pl, sync) for _, c, pl in blocks]
    # A byte of block 2's size field: its frame is lost, block 3 on are read.
    bad = bytearray(b[2])
    bad[1] ^= 0x40
    err, dead = run("frame", b[0] + b[1] + bytes(bad) + b[3] + b[4], recs_of(2))
    off = len(header) + len(b[0]) + len(b[1])
    assert dead[0]["offset"] == off and dead[0]["bytes"] == len(b[2]) and dead[0]["reason"] == "damaged_block"
    assert "the %d bytes at offset %d are not an Avro block" % (len(b[2]), off) in err
    # A record that does not decode: the rest of its block is lost, counted.
    payload = blocks[1][2]
    cut = bytearray(payload)
    first_len = len(fastavro_datum(schema, recs[20]))
    cut[first_len] = 0x7F  # record 1's event_id length: -64
    err, dead = run("record", b[0] + block(20, bytes(cut), sync) + b[2] + b[3] + b[4], recs_of(1) - {20})
    assert dead == [{"index": 21, "records": 19, "offset": len(header) + len(b[0]), "reason": "decode_error",
                     "detail": "record 1 of the block: negative length"}]
    assert "read 100," in err and "19 record(s) known lost" in err
    # A count no block of this size can hold, and bytes after the last record.
    err, dead = run("count", b[0] + block(1 << 40, payload, sync) + b[2] + b[3] + b[4], recs_of(1))
    assert "claims 1099511627776 records" in dead[0]["detail"]
    err, dead = run("extra", b[0] + block(19, payload, sync) + b[2] + b[3] + b[4], {39})
    assert dead[0]["reason"] == "damaged_block" and "after its 19 records (read)" in dead[0]["detail"]
    assert dead[0]["records"] is None
    # A missing sync marker: resumes at block 3's.
    err, dead = run("sync", b[0] + b[1][:-16] + b[2] + b[3] + b[4], recs_of(1, 2))
    assert len(dead) == 1 and dead[0]["offset"] == len(header) + len(b[0])


def test_damage_in_compressed_blocks_and_forged_frames(tmp_path):
    """A compressed block whose frame is sound but whose data is not: its
    records are counted as lost. Frames that claim 200 MiB every 22 bytes
    cost one pass over the file, not one per frame."""
    import zlib
    env = Env(tmp_path, "file8")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--seed", "8", "--count", "60", "--types", "device", "--out-dir", d)
    schema, recs = read(os.path.join(d, "device.avro"))
    src = os.path.join(d, "null.avro")
    write_in_blocks(src, schema, recs)  # three blocks of 20
    header, blocks, sync = blocks_of(open(src, "rb").read())
    dh = header.replace(b"\x08null", b"\x0edeflate")
    defl = [zlib.compress(pl, 9)[2:-4] for _, _, pl in blocks]
    bad = defl[1][: len(defl[1]) // 2]  # the frame says so: a sound frame, a cut stream
    p = os.path.join(d, "inflate.avro")
    open(p, "wb").write(dh + block(20, defl[0], sync) + block(20, bytes(bad), sync) + block(20, defl[2], sync))
    r = env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out", "--dead-letter", p + ".dead",
                  check=False)
    err = r.stderr.decode()
    assert r.returncode == 1 and "read 60," in err and "20 record(s) known lost" in err, err
    assert "(20 records) cannot be read (deflate: " in err
    dead = [json.loads(l) for l in open(p + ".dead")]
    assert [(x["index"], x["records"], x["reason"]) for x in dead] == [(20, 20, "damaged_block")]
    assert len(read(p + ".out")[1]) == sum(1 for i, rec in enumerate(recs) if kept(rec) and not 20 <= i < 40)
    # 400,000 forged frames (9 MB): each is damage of its own, skipped in
    # one pass; the real blocks after them are all read. The timeout only
    # catches a hang (one re-read of the file per frame took hours).
    forged = varint(1) + varint(200 << 20) + sync
    assert len(forged) == 22
    p = os.path.join(d, "forged.avro")
    open(p, "wb").write(header + forged * 400000 + b"".join(block(c, pl, sync) for _, c, pl in blocks))
    r = env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out", check=False, timeout=120)
    assert r.returncode == 1 and b"400000 damaged part(s) skipped" in r.stderr, r.stderr
    assert b"read 60," in r.stderr


def fastavro_datum(schema, rec):
    import io
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), rec)
    return buf.getvalue()


def test_codecs_and_decompression_bombs(tmp_path):
    """Every codec of the Avro specification (and avro-c's lzma) reads to the
    same output; a block that inflates beyond 256 MiB is a damaged block, read
    in bounded memory, and the blocks after it still count."""
    env = Env(tmp_path, "file7")
    d = str(tmp_path)
    env.kanon("gen", "-c", env.config, "--seed", "7", "--count", "300", "--types", "device", "--out-dir", d)
    schema, recs = read(os.path.join(d, "device.avro"))
    outs = {}
    for codec in ("null", "deflate", "snappy", "bzip2", "xz", "zstandard"):
        p = os.path.join(d, codec + ".avro")
        with open(p, "wb") as f:
            fastavro.writer(f, schema, recs, codec=codec, sync_interval=4000)
        assert len(blocks_of_any(p)) > 3, codec
        env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out")
        outs[codec] = read(p + ".out")[1]
    assert len(outs["null"]) == sum(1 for r in recs if kept(r))
    assert all(o == outs["null"] for o in outs.values())
    # avro-c's "lzma" (raw LZMA2): kanon's own gen has no such option, so
    # the block is made here the way avro-c makes it.
    import lzma
    header, blocks, sync = blocks_of(open(os.path.join(d, "null.avro"), "rb").read())
    lz_header = header.replace(b"\x08null", b"\x08lzma")
    filt = [{"id": lzma.FILTER_LZMA2, "preset": 6}]
    body = b"".join(block(c, lzma.compress(pl, format=lzma.FORMAT_RAW, filters=filt), sync)
                    for _, c, pl in blocks)
    p = os.path.join(d, "lzma.avro")
    open(p, "wb").write(lz_header + body)
    env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out")
    assert read(p + ".out")[1] == outs["null"]
    # A deflate bomb: 1 GiB of zeros in about 1 MB, between two good blocks.
    import resource
    import zlib
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    bomb = b"".join(z.compress(chunk) for _ in range(1024)) + z.flush()
    dh = header.replace(b"\x08null", b"\x0edeflate")
    defl = lambda pl: zlib.compress(pl, 9)[2:-4]  # raw deflate
    body = (block(blocks[0][1], defl(blocks[0][2]), sync) + block(5, bomb, sync)
            + block(blocks[1][1], defl(blocks[1][2]), sync))
    p = os.path.join(d, "bomb.avro")
    open(p, "wb").write(dh + body)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out", "--dead-letter", p + ".dead",
                  check=False)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert r.returncode == 1 and b"decompresses to more than 256 MiB" in r.stderr, r.stderr
    # 256 MiB of output and kanon itself (twice that under ASan, whose
    # quarantine keeps the buffer's old copy); growing without a bound would
    # take the whole 1 GiB and more.
    assert before < peak_kb < 800 * 1024, "kanon peaked at %d MB" % (peak_kb // 1024)
    n01 = sum(1 for rr in recs[: blocks[0][1] + blocks[1][1]] if kept(rr))
    assert len(read(p + ".out")[1]) == n01
    # bzip2 bombs: 242 bytes grow to 300 MiB, a second of work each, so a
    # file may not decompress to more than 1 GiB + 200 times its size: after
    # four bombs the rest fail at once, and the good blocks after them are
    # still read (their ratio is far inside the budget).
    import bz2
    bz = bz2.compress(bytes(300 << 20), 9)
    assert len(bz) < 300
    bh = header.replace(b"\x08null", b"\x0abzip2")
    body = (b"".join(block(5, bz, sync) for _ in range(40)) +
            b"".join(block(c, bz2.compress(pl), sync) for _, c, pl in blocks))
    p = os.path.join(d, "bzbomb.avro")
    open(p, "wb").write(bh + body)
    r = env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out", "--dead-letter", p + ".dead",
                  check=False, timeout=300)
    assert r.returncode == 1 and b"40 damaged part(s) skipped" in r.stderr, r.stderr
    whys = [json.loads(l)["detail"] for l in open(p + ".dead")]
    assert whys.count("decompresses to more than 256 MiB") == 4, whys
    assert whys[4:] == ["decompresses past the file's budget (1 GiB + 200 times its size)"] * 36
    assert read(p + ".out")[1] == outs["null"]
    # An unknown codec is refused by name.
    p = os.path.join(d, "odd.avro")
    open(p, "wb").write(header.replace(b"\x08null", b"\x08lz4x") + body)
    r = env.kanon("process", "-c", env.config, "--input", p, "--output", p + ".out", check=False)
    assert r.returncode == 1 and b"avro.codec 'lz4x' is not one kanon reads" in r.stderr, r.stderr


def blocks_of_any(path):
    with open(path, "rb") as f:
        return list(fastavro.block_reader(f))
