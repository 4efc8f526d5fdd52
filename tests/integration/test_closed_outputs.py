"""No personal data escapes through any output field, in any spelling.

The adversarial corpus (pii_corpus.py: PII in every string field of every
schema, in every spelling; sensitive terms in every script and encoding;
invalid UTF-8 in some strings) goes through `kanon process` and through the
real broker, with the default config and with the scrubbed query emitted
(and, on the broker, with aggregates over the closed dimensions). Every
output byte is then searched: raw, after NFKC and case folding, digits only
(field by field), and every IP in it parsed (an IPv4 inside an IPv6 too).
Zero findings. fastavro and avro-c's avrocat read every output.
"""
import ipaddress
import os
import re
import subprocess
import unicodedata

import fastavro
import pytest

from conftest import (AGG, AGG_STATS, SCHEMAS_BY_ID, Env, consume, decode_deid, decode_framed, frame,
                      produce_files)
import pii_corpus

N = 900
SENSITIVE_HOUR = 7  # sensitive records get their own hour: their outputs are found by bucket
SCHEMA_ID = {"DeviceLog": 1, "AccessLog": 2, "SearchLog": 3}
TOPIC = {"DeviceLog": "device", "AccessLog": "access", "SearchLog": "search"}
BAD_UTF8 = ("\u00ff\u00ff", b"\xc3\xbf\xc3\xbf", b"\xff\xfe\xff\xfe")  # marker, its UTF-8, what replaces it


def corpus():
    """[(schema, record, sensitive)], needles, and the input IPv4s."""
    recs, needles, ips = [], set(), set()
    for i, (schema, rec, nd, sensitive) in enumerate(pii_corpus.records(N)):
        if sensitive:
            rec["ts"] = rec["ts"] - rec["ts"] % 3600000 + SENSITIVE_HOUR * 3600000
        if i % 10 == 5:  # bytes that are not UTF-8 in a string field
            field = "user_agent" if "user_agent" in rec else "query"
            rec[field] = BAD_UTF8[0] + rec[field]
            if schema == "AccessLog":
                rec["url"] = "https://ex" + BAD_UTF8[0] + "ample.com/x"
        recs.append((schema, rec, sensitive))
        needles |= nd
        ips |= {x for x in nd if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", x)}
    return recs, needles, ips


def encode(schema, rec):
    """The record framed for Kafka, with the invalid-UTF-8 marker patched in."""
    return frame(SCHEMA_ID[schema], SCHEMAS_BY_ID[SCHEMA_ID[schema]], rec).replace(BAD_UTF8[1], BAD_UTF8[2])


def fold(s):
    return unicodedata.normalize("NFKC", s).casefold()


def is_net(v):
    try:
        ipaddress.ip_network(v, strict=False)
        return True
    except ValueError:
        return False


LOOKALIKE = str.maketrans({"o": "0", "l": "1", "i": "1", "|": "1"})


def strings(rec):
    return {k: v for k, v in rec.items() if isinstance(v, str)}


def check(records, raw, needles, ips, where):
    """Every finding, as (where, what, field, value) tuples."""
    found = []
    digit_needles = {re.sub(r"\D", "", n) for n in needles if len(re.sub(r"\D", "", n)) >= 7}
    blob = b"\x00".join(raw)
    for n in needles:
        if n.encode() in blob:
            found.append((where, "raw", "-", n))
    texts, digits = [], []
    for rec in records:
        for k, v in strings(rec).items():
            texts.append(fold(v))
            # An IP prefix that parses as one is checked as an address below;
            # its digits run together would match any needle by chance.
            if not k.endswith("_pid") and k != "event_key" and not (k == "ip_prefix" and is_net(v)):
                digits.append(re.sub(r"\D", "", fold(v)))
                # and with letters read as the digits they stand for
                digits.append(re.sub(r"\D", "", fold(v).translate(LOOKALIKE)))
            for m in re.finditer(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])", v):
                if m.group(1) in ips:
                    found.append((where, "ipv4", k, v))
            if k == "ip_prefix" and ":" in v:
                net = ipaddress.ip_network(v, strict=False).network_address
                for emb in (net.sixtofour, net.teredo and net.teredo[1], net.ipv4_mapped):
                    if emb and str(emb) in ips:
                        found.append((where, "ipv4 in ipv6", k, v))
            if k not in ("event_key",) and not k.endswith("_pid") and re.search(r"\d{7}", fold(v)):
                found.append((where, "7+ digits", k, v))
    text = "\x00".join(texts)
    for n in needles:
        if fold(n) in text:
            found.append((where, "nfkc", "-", n))
    dtext = "|".join(digits)
    for n in digit_needles:
        if n in dtext:
            found.append((where, "digits", "-", n))
    return found


LINKING = ("user_pid", "device_pid", "phone_pid", "email_pid", "cookie_pid", "geo_cell", "ip_prefix",
           "ua_browser", "ua_browser_major", "os_family", "os_major", "app_version")


def check_sensitive(deids, where):
    bad = []
    for rec in deids:
        if (rec["time_bucket"] // 3600000) % 24 == SENSITIVE_HOUR and rec["event_type"] == "search":
            if rec["query_category"] != "withheld" or rec["url_domain"] or rec["query"]:
                bad.append((where, "sensitive not withheld", rec["query_category"], rec["query"]))
            linked = [k for k in LINKING if rec[k] is not None]
            if linked:  # "withheld" beside a pseudonym is the sensitive fact
                bad.append((where, "sensitive event linkable", linked, rec["query_category"]))
    return bad


SCRUBBED = ["--set", "policy.emit_scrubbed_query=true"]


@pytest.mark.parametrize("variant", ["default", "scrubbed-query"])
def test_file_mode(tmp_path, variant):
    recs, needles, ips = corpus()
    env = Env(tmp_path, "closed-file")
    extra = SCRUBBED if variant == "scrubbed-query" else []
    findings, deids = [], []
    for schema in SCHEMA_ID:
        path = os.path.join(str(tmp_path), schema + ".avro")
        with open(path, "wb") as f:
            fastavro.writer(f, SCHEMAS_BY_ID[SCHEMA_ID[schema]], [r for s, r, _ in recs if s == schema])
        with open(path, "rb") as f:
            data = f.read().replace(BAD_UTF8[1], BAD_UTF8[2])
        with open(path, "wb") as f:
            f.write(data)
        out = path + ".deid.avro"
        r = env.kanon("process", "-c", env.config, *extra, "--input", path, "--output", out)
        n_in = sum(1 for s, _, _ in recs if s == schema)
        assert b"read %d, wrote %d, dead-lettered 0" % (n_in, n_in) in r.stderr, r.stderr
        with open(out, "rb") as f:
            got = list(fastavro.reader(f))
        assert len(got) == n_in
        for g in got:  # the file's schema says timestamp-millis; compare milliseconds
            g["time_bucket"] = round(g["time_bucket"].timestamp() * 1000)
        # avro-c's own reader reads every record too.
        cat = subprocess.run(["avrocat", out], capture_output=True, timeout=120)
        assert cat.returncode == 0, cat.stderr
        assert len(cat.stdout.splitlines()) == n_in
        with open(out, "rb") as f:
            raw = f.read()
        deids += got
        findings += check(got, [raw], needles, ips, "process " + schema)
    findings += check_sensitive(deids, "process")
    if variant == "scrubbed-query":
        assert any(d["query"] for d in deids), "the scrubbed query is emitted"
    assert not findings, findings[:20]


@pytest.mark.parametrize("variant", ["default", "scrubbed-query"])
def test_broker(broker, tmp_path, variant):
    recs, needles, ips = corpus()
    aggs = None
    if variant == "scrubbed-query":
        aggs = [{"name": "dom", "dimensions": ["url_domain"], "k": 2},
                {"name": "ver", "dimensions": ["app_version"], "k": 2},
                {"name": "net", "dimensions": ["ip_prefix"], "k": 2},
                {"name": "cat", "dimensions": ["query_category"], "k": 2}]
    env = Env(tmp_path, "closed-kafka", aggregates=aggs, window="1d", privacy="k-anonymity")
    extra = SCRUBBED if variant == "scrubbed-query" else []
    for schema in SCHEMA_ID:
        produce_files(env.topics[TOPIC[schema]], [encode(s, r) for s, r, _ in recs if s == schema], tmp_path)
    env.kanon("run", "-c", env.config, *extra, "--until-eof", timeout=600)

    out, dlq = consume(env.out), consume(env.dlq)
    assert dlq == [] and len(out) == N
    deids = [decode_deid(m["value"])[1] for m in out]
    raw = [m["value"] + (m["key"] or b"") for m in out]
    findings = check(deids, raw, needles, ips, "broker deid") + check_sensitive(deids, "broker")
    if aggs:
        rows = consume(env.agg)
        assert rows, "some groups reach k"
        decoded = [decode_framed(m["value"], AGG)[1] for m in rows]
        findings += check(decoded, [m["value"] + (m["key"] or b"") for m in rows], needles, ips, "aggregates")
    assert not findings, findings[:20]


def test_record_timestamps(broker, tmp_path):
    """Output records carry the event's time bucket (aggregate rows and
    summaries the window's end) as their Kafka timestamp, never the
    processing time."""
    recs, _, _ = corpus()
    env = Env(tmp_path, "closed-ts", aggregates=[{"name": "t", "dimensions": ["event_type"], "k": 2}],
              window="1h", privacy="k-anonymity")
    produce_files(env.topics["device"], [encode(s, r) for s, r, _ in recs if s == "DeviceLog"][:50], tmp_path)
    env.kanon("run", "-c", env.config, "--until-eof", timeout=300)
    out, rows, stats = consume(env.out), consume(env.agg), consume(env.aggstats)
    assert out and rows and stats
    for m in out:
        assert m["timestamp"] == decode_deid(m["value"])[1]["time_bucket"]
    for m in rows:
        assert m["timestamp"] == decode_framed(m["value"], AGG)[1]["window_end"]
    for m in stats:
        assert m["timestamp"] == decode_framed(m["value"], AGG_STATS)[1]["window_end"]
