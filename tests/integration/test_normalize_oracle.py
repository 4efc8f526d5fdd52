"""One person hashes one way: identifiers against an independent oracle.

Phone numbers in many spellings go through `kanon process`, and their
pseudonyms are compared with Google's libphonenumber (PyPI phonenumbers) as
the oracle: spellings of one number (by the oracle's E.164) must share one
pseudonym, two numbers must never share one, and what the oracle calls no
number must get none. Emails and device ids are checked against classes
built by construction (one address in many spellings). The numbering-plan
table compiled into kanon must be the one this phonenumbers would generate.
"""
import os
import random
import sys

import fastavro
import phonenumbers

from conftest import SRC, Env, load_schema

sys.path.insert(0, os.path.join(SRC, "tests", "oracle"))
import gen_phone_plan  # noqa: E402

TS = 1793613600000
CONSENT = {"location": True, "ads_personalization": True, "analytics": True}
REGIONS = ["CN", "CN", "CN", "US", "GB", "JP", "HK", "TW", "DE", "FR", "IT", "KR", "SG", "AU"]
DASHES = ["-", " ", ".", "\u2013", "\u2212", "\u30fc", "\u00a0", "/"]


def test_plan_table_is_current():
    with open(os.path.join(SRC, "processor", "stages", "phone_plan.h")) as f:
        assert f.read() == gen_phone_plan.render(gen_phone_plan.plan()), \
            "regenerate processor/stages/phone_plan.h with tests/oracle/gen_phone_plan.py"


def valid_number(rng, region):
    """A random number the oracle calls valid in region (mobile or fixed line)."""
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    ex = phonenumbers.example_number_for_type(region, kind) or phonenumbers.example_number(region)
    nsn = str(ex.national_number)
    for _ in range(200):
        keep = rng.randint(2, 4)  # keep the example's prefix (area code, mobile block)
        cand = nsn[:keep] + "".join(rng.choice("0123456789") for _ in nsn[keep:])
        num = phonenumbers.parse("+%d%s%s" % (ex.country_code, "0" if ex.italian_leading_zero else "", cand))
        if phonenumbers.is_valid_number(num):
            return num
    return ex


def spellings(rng, num):
    """Ways people write num, each checked with the oracle (parsed as from China)."""
    cc = str(num.country_code)
    nat = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    nsn = phonenumbers.national_significant_number(num)
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    trunk = "0" if phonenumbers.PhoneMetadata.metadata_for_region(
        phonenumbers.region_code_for_number(num)).national_prefix == "0" else ""
    d = rng.choice(DASHES)
    forms = [intl, intl.replace(" ", d), "00" + cc + " " + nsn, "+" + cc + nsn, "tel:+" + cc + "-" + nsn,
             "Tel: " + intl, "\uff0b" + cc + " " + "".join(chr(0xff10 + int(c)) for c in nsn)]
    if trunk:
        forms += ["+%s %s%s" % (cc, trunk, nsn), "+%s (0)%s" % (cc, nsn)]
    if cc == "86":
        forms += [nat, nat.replace(" ", d), trunk + nsn if nsn[0] != "1" else nsn, "电话：" + nsn]
    out = []
    for f in forms:
        try:
            if phonenumbers.format_number(phonenumbers.parse(f.replace("电话：", "").replace("Tel: ", ""), "CN"),
                                          phonenumbers.PhoneNumberFormat.E164) == "+" + cc + nsn:
                out.append(f)
        except phonenumbers.NumberParseException:
            pass
    return out


NOT_NUMBERS = ["+86 00000000000", "0086 00000000", "123456", "+8 (0)6 13800138000", "+999 12345678",
               "010-41571259-890123", "13800138000x", "138 0013 8000 ext", "N/A", "+1 800 FLOWERS"]

EMAILS = [
    ["zhang.san@example.com", " Zhang.San@Example.COM ", "mailto:zhang.san@example.com?subject=hi",
     "Zhang San <zhang.san@example.com>", '"zhang.san"@example.com', "zhang.san@example.com."],
    ["user@b\u00fccher.de", "user@xn--bcher-kva.de", "USER@B\u00dcCHER.DE", "user@bu\u0308cher.de",
     "user@b\u00fccher\u3002de"],
    ["li@qq.com", "LI@QQ.COM", "<li@qq.com>", "li\uff20qq.com"],
    ["li@qq.co"], ["li+x@qq.com"], ["l.i@qq.com"],
]

DEVICES = [
    ["6F9619FF-8B86-D011-B42D-00C04FC964FF", "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
     "urn:uuid:6f9619ff-8b86-d011-b42d-00c04fc964ff", "6f9619ff8b86d011b42d00c04fc964ff",
     "\uff16f9619ff-8b86-d011-b42d-00c04fc964ff"],
    ["00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "001a.2b3c.4d5e", "001A2B3C4D5E"],
    ["1"],
]
NO_DEVICE = ["-1", " -1 ", "{00000000-0000-0000-0000-000000000000}", "{02:00:00:00:00:00}", "{}", "N/A"]


def record(i, phone=None, email=None, device=None):
    """A DeviceLog record; device_id is required by the schema (one of its own when not under test).
    Its app version, which kanon emits as major.minor, names it in the output."""
    return {"event_id": "e%d" % i, "ts": TS + i, "user_id": "u%d" % i, "phone": phone, "email": email,
            "device_id": device or "dev-%d" % i, "ip": "1.2.3.4", "user_agent": "x", "os": "Android 13",
            "app_version": "%d.%d" % (i // 100 + 1, i % 100), "lat": None, "lon": None, "consent": CONSENT, "birth_year": 1980}


def run(tmp_path, recs):
    env = Env(tmp_path, "norm")
    inp, out = str(tmp_path / "in.avro"), str(tmp_path / "out.avro")
    with open(inp, "wb") as f:
        fastavro.writer(f, load_schema("DeviceLog"), recs)
    env.kanon("process", "-c", env.config, "--input", inp, "--output", out)
    with open(out, "rb") as f:
        rows = {"e%d" % ((int(r["app_version"].split(".")[0]) - 1) * 100 + int(r["app_version"].split(".")[1])): r
                for r in fastavro.reader(f)}
    assert len(rows) == len(recs)
    return rows


def test_phones_match_libphonenumber(tmp_path):
    rng = random.Random(7)
    recs, truth = [], {}
    for _ in range(160):
        num = valid_number(rng, rng.choice(REGIONS))
        e164 = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        for s in spellings(rng, num):
            truth["e%d" % len(recs)] = (s, e164)
            recs.append(record(len(recs), phone=s))
    for s in NOT_NUMBERS:
        truth["e%d" % len(recs)] = (s, None)
        recs.append(record(len(recs), phone=s))
    rows = run(tmp_path, recs)
    by_number, by_pid, wrong = {}, {}, []
    for eid, (s, e164) in truth.items():
        pid = rows[eid]["phone_pid"]
        if e164 is None:
            if pid is not None:
                wrong.append("no number, pseudonymized: %r" % s)
            continue
        if pid is None:
            wrong.append("number %s, null: %r" % (e164, s))
            continue
        by_number.setdefault(e164, {}).setdefault(pid, []).append(s)
        by_pid.setdefault(pid, set()).add(e164)
    wrong += ["one number, %d pseudonyms: %r" % (len(p), p) for n, p in by_number.items() if len(p) > 1]
    wrong += ["numbers %s share one pseudonym" % sorted(n) for n in by_pid.values() if len(n) > 1]
    assert len(by_number) >= 120
    assert not wrong, "\n".join(wrong[:30])


def test_emails_and_devices_one_way(tmp_path):
    recs, classes = [], []
    for kind, groups in (("email", EMAILS), ("device", DEVICES)):
        for g in groups:
            ids = []
            for s in g:
                ids.append("e%d" % len(recs))
                recs.append(record(len(recs), **{kind: s}))
            classes.append((kind, g, ids))
    nulls = []
    for s in NO_DEVICE:
        nulls.append(("e%d" % len(recs), s))
        recs.append(record(len(recs), device=s))
    rows = run(tmp_path, recs)
    seen = {}
    for kind, g, ids in classes:
        pids = {rows[i][kind + "_pid"] for i in ids}
        assert len(pids) == 1 and None not in pids, (kind, g, pids)
        pid = pids.pop()
        assert pid not in seen, (g, seen.get(pid))
        seen[pid] = g
    for i, s in nulls:
        assert rows[i]["device_pid"] is None, s
