"""Seeds for fuzz_container: small Avro container files of a schema with
every kind of field, one per codec (and avro-c's raw-LZMA2 "lzma"), a few
records per block so that the fuzzer meets block boundaries early.
    container_seeds.py OUT_DIR"""
import io
import lzma
import os
import sys

import fastavro

SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "Seed", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "ts", "type": "long"},
        {"name": "user", "type": ["null", "string"]},
        {"name": "lat", "type": ["null", "double"]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "int"}},
        {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}},
        {"name": "raw", "type": {"type": "fixed", "name": "F", "size": 4}},
        {"name": "ok", "type": "boolean"},
        {"name": "f", "type": "float"},
    ]})


def records(n):
    for i in range(n):
        yield {"event_id": "e%d" % i, "ts": 1793613600000 + i, "user": None if i % 3 else "u%d" % i,
               "lat": 22.5 + i if i % 2 else None, "tags": ["t"] * (i % 3), "attrs": {"k": i},
               "kind": "AB"[i % 2], "raw": b"\x00\x01\x02\x03", "ok": bool(i % 2), "f": 1.5}


def main(out):
    os.makedirs(out, exist_ok=True)
    codecs = ["null", "deflate", "bzip2", "xz"]
    for optional in ("snappy", "zstandard"):
        try:
            fastavro.writer(io.BytesIO(), SCHEMA, [], codec=optional)
            codecs.append(optional)
        except (ValueError, ImportError):
            pass
    for codec in codecs:
        with open(os.path.join(out, "seed-" + codec), "wb") as f:
            fastavro.writer(f, SCHEMA, records(12), codec=codec, sync_interval=200)
    # avro-c's "lzma": the null file's blocks, each compressed as raw LZMA2.
    data = open(os.path.join(out, "seed-null"), "rb").read()
    sync = data[-16:]
    head_end = data.index(sync) + 16
    parts, pos = [data[:head_end].replace(b"\x08null", b"\x08lzma")], head_end
    while pos < len(data):
        count, p = varint(data, pos)
        size, p = varint(data, p)
        comp = lzma.compress(data[p:p + size], format=lzma.FORMAT_RAW,
                             filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}])
        parts.append(zigzag(count) + zigzag(len(comp)) + comp + sync)
        pos = p + size + 16
    with open(os.path.join(out, "seed-lzma"), "wb") as f:
        f.write(b"".join(parts))


def varint(data, pos):
    shift = u = 0
    while True:
        b = data[pos]
        pos += 1
        u |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (u >> 1) ^ -(u & 1), pos


def zigzag(n):
    u, out = (n << 1) ^ (n >> 63), b""
    while u >= 0x80:
        out += bytes([(u & 0x7F) | 0x80])
        u >>= 7
    return out + bytes([u])


if __name__ == "__main__":
    main(sys.argv[1])
