#!/usr/bin/env python3
"""Compares two DeidEvent topics record by record (bench/peers/streams/README.md):
kanon's output and the Kafka Streams peer's, from the same input and key file.

  compare.py BROKER TOPIC_A TOPIC_B [DEID_SCHEMA]

Reads both topics with kcat, checks the Confluent framing (magic 0, schema id
100), decodes every value with fastavro against schemas/DeidEvent.avsc, and
matches records by event_key: the counts, then each record's fields, Kafka key
and timestamp. Exits 1 on any difference."""
import collections
import json
import os
import subprocess
import sys

import fastavro

here = os.path.dirname(os.path.abspath(__file__))
broker, ta, tb = sys.argv[1:4]
schema_path = sys.argv[4] if len(sys.argv) > 4 else os.path.join(here, "../../../schemas/DeidEvent.avsc")
schema = fastavro.parse_schema(json.load(open(schema_path)))


def records(topic):
    raw = subprocess.run(["kcat", "-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q",
                          "-X", "auto.offset.reset=earliest", "-f", "%K %S %T\n%k%s"],
                         check=True, capture_output=True).stdout
    out, i = [], 0
    while i < len(raw):
        nl = raw.index(b"\n", i)
        klen, vlen, ts = (int(x) for x in raw[i:nl].split())
        i = nl + 1
        key = raw[i:i + max(klen, 0)] if klen >= 0 else None
        i += max(klen, 0)
        val = raw[i:i + vlen]
        i += vlen
        if len(val) < 5 or val[0] != 0 or int.from_bytes(val[1:5], "big") != 100:
            sys.exit("compare: %s: a value without the framing of schema id 100" % topic)
        import io
        buf = io.BytesIO(val[5:])
        rec = fastavro.schemaless_reader(buf, schema)
        if buf.read():
            sys.exit("compare: %s: trailing bytes after a DeidEvent" % topic)
        out.append((key, ts, rec))
    return out


a, b = records(ta), records(tb)
print("%s: %d records, %s: %d records" % (ta, len(a), tb, len(b)))
ia = {r["event_key"]: (k, ts, r) for k, ts, r in a}
ib = {r["event_key"]: (k, ts, r) for k, ts, r in b}
diff = collections.Counter()
examples = {}
for ek in ia.keys() | ib.keys():
    if ek not in ia or ek not in ib:
        diff["only in " + (ta if ek in ia else tb)] += 1
        continue
    (ka, tsa, ra), (kb, tsb, rb) = ia[ek], ib[ek]
    if ka != kb:
        diff["kafka key"] += 1
    if tsa != tsb:
        diff["kafka timestamp"] += 1
    for f in ra:
        if ra[f] != rb[f]:
            diff[f] += 1
            examples.setdefault(f, (ek, ra[f], rb[f]))
same = len(ia.keys() & ib.keys())
print("event keys in both: %d; distinct event keys: %d, %d" % (same, len(ia), len(ib)))
for what, n in sorted(diff.items()):
    print("  differ: %-20s %d%s" % (what, n, "  e.g. %s: %r vs %r" % examples[what] if what in examples else ""))
shape = collections.Counter()
for k, ts, r in b:
    shape["geo_cell len %s" % (len(r["geo_cell"]) if r["geo_cell"] else None)] += 1
    shape["ip_prefix /%s" % (r["ip_prefix"].split("/")[1] if r["ip_prefix"] else None)] += 1
    shape["ua_browser %s" % r["ua_browser"]] += 1
print("field shapes in %s: %s" % (tb, dict(sorted(shape.items()))))
sys.exit(1 if diff or len(a) != len(b) else 0)
