#!/usr/bin/env python3
"""Independent ground truth for kanon's advertiser aggregates.

Shares no code with kanon: it reads the generated input (Avro container files,
with fastavro), applies the documented semantics from scratch, and prints the
expected released rows as JSON lines (or returns them to a test).

Semantics (README "Aggregates" and "Privacy policy"):
  - an event counts only with consent.ads_personalization and
    consent.analytics both true, with a person identifier (user_id), and
    never a minor's (event year - birth year <= 18);
  - a sensitive event (its query, or a URL's host or path, contains a term of
    deploy/policy/sensitive_terms.txt, both folded: NFKC, case folding,
    percent-decoding, separators squeezed; CJK terms anywhere, English ones
    at a word start, whole words up to 4 letters) is left out of every
    definition with a url_domain or query_category dimension;
  - url_domain is the host's registrable domain by the ICANN section of the
    Public Suffix List (Debian's public_suffix_list.dat, parsed here);
  - tumbling windows of W ms on the event time;
  - a person adds at most MAX_EVENTS events to one group per window;
  - users = distinct people in the group; released iff users >= k.
The helper refuses corpora where a person reaches the per-window group cap
(which group kanon keeps then depends on its keyed pseudonyms, unknown here).
"""
import argparse
import collections
import functools
import json
import os
import sys
import unicodedata
import urllib.parse

import fastavro

B32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def geohash(lat, lon, precision):
    la, lo, out, ch, bits, even = [-90.0, 90.0], [-180.0, 180.0], "", 0, 0, True
    while len(out) < precision:
        rng, v = (lo, lon) if even else (la, lat)
        mid = (rng[0] + rng[1]) / 2
        ch <<= 1
        if v >= mid:
            ch |= 1
            rng[0] = mid
        else:
            rng[1] = mid
        even, bits = not even, bits + 1
        if bits == 5:
            out, ch, bits = out + B32[ch], 0, 0
    return out


def dimension(rec, etype, dim, geo_precision):
    if dim == "event_type":
        return etype
    if dim == "geo_cell":
        c = rec.get("consent") or {}
        if rec.get("lat") is None or rec.get("lon") is None or not c.get("location"):
            return None
        return geohash(rec["lat"], rec["lon"], geo_precision)
    if dim == "url_domain":
        url = rec.get("url") or rec.get("clicked_url")
        return registrable(urllib.parse.urlsplit(url).hostname) if url else None
    raise ValueError("ground truth does not model dimension %s" % dim)


PSL = "/usr/share/publicsuffix/public_suffix_list.dat"


@functools.lru_cache(maxsize=1)
def icann_rules():
    rules, icann = set(), False
    with open(PSL, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if "===BEGIN ICANN DOMAINS===" in line:
                icann = True
            elif "===END ICANN DOMAINS===" in line:
                icann = False
            elif icann and line and not line.startswith("//"):
                rules.add(line.split()[0])
    return rules


def registrable(host):
    """eTLD+1 by the PSL algorithm (rules, wildcards, exceptions), ICANN
    section only; None when the host is itself a public suffix."""
    if not host:
        return None
    labels = host.lower().rstrip(".").split(".")
    rules = icann_rules()
    suffix = 1  # the implicit "*" rule
    for i in range(len(labels)):
        cand = ".".join(labels[i:])
        wild = ".".join(["*"] + labels[i + 1:])
        if "!" + cand in rules:
            suffix = max(suffix, len(labels) - i - 1)
        elif cand in rules or wild in rules:
            suffix = max(suffix, len(labels) - i)
    return ".".join(labels[-suffix - 1:]) if len(labels) > suffix else None


def load_lexicon(path):
    terms = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            _, _, rest = line.partition(":")
            terms += [fold(t.strip()) for t in rest.split(",") if t.strip()]
    return terms


def cjk(c):
    return "CJK" in unicodedata.name(c, "") or "HIRAGANA" in unicodedata.name(c, "") or \
        "KATAKANA" in unicodedata.name(c, "") or "HANGUL" in unicodedata.name(c, "")


def fold(text):
    """NFKC, case folding, then the separators squeezed: gone between two CJK
    characters and between single-character tokens, one space elsewhere."""
    text = unicodedata.normalize("NFKC", text).casefold()
    tokens, cur = [], ""
    for c in text:
        if c.isalnum() or unicodedata.category(c).startswith("M"):
            cur += c
        elif cur:
            tokens.append(cur)
            cur = ""
    if cur:
        tokens.append(cur)
    out = ""
    for i, t in enumerate(tokens):
        if i:
            a = tokens[i - 1]
            joined = (cjk(a[-1]) and cjk(t[0])) or (len(a) == 1 and len(t) == 1 and
                                                    not cjk(a) and not cjk(t))
            out += "" if joined else " "
        out += t
    return out


def term_in(term, text):
    if not term.isascii():
        return term in text
    start = 0
    while True:
        i = text.find(term, start)
        if i < 0:
            return False
        begins = i == 0 or not (text[i - 1].isascii() and text[i - 1].isalnum())
        j = i + len(term)
        ends = any(text.startswith(sfx, j) and (j + len(sfx) == len(text) or not (
            text[j + len(sfx)].isascii() and text[j + len(sfx)].isalnum()))
            for sfx in ("", "s", "es", "ed", "ing", "er", "ers", "q", "qia"))
        if begins and (len(term) > 4 or ends):
            return True
        start = i + 1


def is_sensitive(rec, terms):
    texts = [urllib.parse.unquote(rec.get("query") or "")]
    for k in ("url", "clicked_url", "referrer"):
        u = rec.get(k)
        if u:
            texts.append(urllib.parse.unquote(u.split("?")[0].split("#")[0]))
    return any(term_in(t, fold(x)) for x in texts for t in terms)


def is_minor(rec, ts_ms):
    import datetime
    by = rec.get("birth_year")
    if by is None:
        return False
    year = datetime.datetime.fromtimestamp(ts_ms / 1000, datetime.timezone.utc).year
    return year - by <= 18


LEXICON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "policy", "sensitive_terms.txt")


def expected(corpus_dir, defs, window_ms, max_events=10, max_groups=20):
    """Exact (k-anonymity mode) rows keyed by (aggregate, window_start, dims
    tuple) -> (events, users). Eligibility is one rule for every definition;
    max_groups bounds a person's groups over all definitions of a window, and
    the corpus must not need that bound (the keyed choice is kanon's)."""
    # per (def, window, group) -> person -> events
    contrib = collections.defaultdict(lambda: collections.defaultdict(int))
    groups_of = collections.defaultdict(set)  # (window, person) -> (def, group)
    terms = load_lexicon(LEXICON)
    for etype in ("device", "access", "search"):
        path = os.path.join(corpus_dir, etype + ".avro")
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            for rec in fastavro.reader(f):
                c = rec["consent"]
                person = (rec.get("user_id") or "").strip()
                if not (c["ads_personalization"] and c["analytics"]) or not person:
                    continue
                ts = rec["ts"]
                ts = round(ts.timestamp() * 1000) if hasattr(ts, "timestamp") else ts
                if is_minor(rec, ts):
                    continue
                if is_sensitive(rec, terms):
                    continue
                window = ts // window_ms * window_ms
                for d in defs:
                    dims = tuple(dimension(rec, etype, x, d.get("geo_precision", 4)) for x in d["dimensions"])
                    contrib[(d["name"], window, dims)][person] += 1
                    groups_of[(window, person)].add((d["name"], dims))
    worst = max((len(g) for g in groups_of.values()), default=0)
    if worst > max_groups:
        raise ValueError("a person reaches %d groups in a window: corpus too wide for ground truth" % worst)
    k_of = {d["name"]: d["k"] for d in defs}
    rows, suppressed = {}, collections.Counter()
    for (name, window, dims), people in contrib.items():
        users = len(people)
        events = sum(min(n, max_events) for n in people.values())
        if users >= k_of[name]:
            rows[(name, window, dims)] = (events, users)
        else:
            suppressed[(name, window)] += 1
    return rows, suppressed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("corpus_dir")
    ap.add_argument("--defs", required=True, help="JSON list of {name, dimensions, k, geo_precision}")
    ap.add_argument("--window-ms", type=int, default=3600000)
    a = ap.parse_args()
    rows, _ = expected(a.corpus_dir, json.loads(a.defs), a.window_ms)
    for (name, window, dims), (events, users) in sorted(rows.items(), key=str):
        print(json.dumps({"aggregate": name, "window_start": window, "dims": dims, "events": events, "users": users}))


if __name__ == "__main__":
    sys.exit(main())
