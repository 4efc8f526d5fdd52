#!/usr/bin/env python3
"""Turns bench/run.sh's raw results (OUT/raw/*.jsonl) into OUT/REPORT.md and
PNG plots (gnuplot). Standard library only. Usage: report.py OUT QUICK [ONLY]
(ONLY: the benchmarks this run measured, e.g. b6; the others are reported from
the raw results already in OUT, each section saying when it was measured)."""
import json
import os
import platform
import math
import statistics
import subprocess
import sys
import time

out, quick = sys.argv[1], sys.argv[2] == "1"
only = (sys.argv[3] if len(sys.argv) > 3 else "b1,b2,b3,b4,b5,b6,b7,b8").split(",")


def load(name):
    path = os.path.join(out, "raw", name + ".jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip()]


def measured(name):
    """When and where NAME's raw results were measured, for a section's
    heading (run.sh writes raw/NAME.machine beside them)."""
    try:
        return open(os.path.join(out, "raw", name + ".machine")).read().strip()
    except OSError:
        return "(when and where not recorded)"


def spread(xs):
    """median (min-max) of xs"""
    return statistics.median(xs), min(xs), max(xs)


def fmt(v, unit=""):
    if v >= 1e6:
        return "%.2f M%s" % (v / 1e6, unit)
    if v >= 1e4:
        return "%.0f k%s" % (v / 1e3, unit)
    return "%.1f%s" % (v, unit)


def cell(xs, unit=""):
    m, lo, hi = spread(xs)
    return "%s (%s-%s)" % (fmt(m, unit), fmt(lo), fmt(hi))


def cpu_model():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine():
    return "%d cores, %s, kernel %s" % (os.cpu_count(), cpu_model(), platform.release())


def gnuplot(script):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, cwd=out,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("report: gnuplot failed: %s" % e, file=sys.stderr)


def write_dat(name, rows):
    with open(os.path.join(out, name), "w") as f:
        for r in rows:
            f.write(" ".join(str(x) for x in r) + "\n")


md = []
goals = []
md.append("# kanon benchmark report\n")
md.append("- generated: %s by `bench/run.sh%s`" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                   (" --quick" if quick else "") + (
    " --only " + ",".join(only) if len(only) < 6 else "")))
md.append("- this run's machine: %s; each section says when and where it was measured"
          % machine())
md.append("- every figure: median of the repetitions, (min-max) after it; ratios are of "
          "figures measured in the same run\n")

# ---- B1 ----
b1 = load("b1")
if b1:
    cols = [("avro_generic", "avro-c generic decoder (`avro_value_read`)"),
            ("kanon_decoder", "kanon decoder"),
            ("pipeline", "full de-identification pipeline"),
            ("pipeline_aggregates", "pipeline + aggregation")]
    md.append("## B1 in-process throughput (one core, %d DeviceLog records in memory)\n" % b1[0]["records"])
    md.append("_measured %s_\n" % measured("b1"))
    b1old = load("b1-baseline")
    if b1old:
        md.append("| case | records/s per core | before (%s) | after / before |\n|---|---|---|---|"
                  % b1old[0]["rev"])
    else:
        md.append("| case | records/s per core |\n|---|---|")
    for k, label in cols:
        row = "| %s | %s |" % (label, cell([r[k] for r in b1]))
        if b1old:
            old = [r[k] for r in b1old]
            row += " %s | %.2fx |" % (cell(old), statistics.median(r[k] for r in b1) / statistics.median(old))
        md.append(row)
    ratio = [r["kanon_decoder"] / r["avro_generic"] for r in b1]
    md.append("\nkanon decoder / avro-c generic, same run: **%.2fx** (%.2f-%.2f); goal 5x.\n"
              % spread(ratio))
    pipe = statistics.median(r["pipeline"] for r in b1)
    goals.append(("B1 pipeline >= 1.5 M DeviceLog records/s per core", fmt(pipe, " rec/s"),
                  pipe >= 1.5e6))
    goals.append(("B1 pipeline >= 3 M DeviceLog records/s per core (the long-term mark)",
                  fmt(pipe, " rec/s"), pipe >= 3e6))
    goals.append(("B1 kanon decoder >= 5x avro-c generic", "%.2fx" % statistics.median(ratio),
                  statistics.median(ratio) >= 5))
    write_dat("b1.dat", [(i, '"%s"' % label.split(" (")[0].replace("`", ""),
                          statistics.median(r[k] for r in b1) / 1e6) for i, (k, label) in enumerate(cols)])
    gnuplot("""set terminal png size 800,420; set output 'b1.png'
set title 'B1: records/s per core (millions)'; set style fill solid; set boxwidth 0.6
set yrange [0:*]; set xtics rotate by -15
plot 'b1.dat' using 1:3:xtic(2) with boxes notitle lc rgb '#3060a0'\n""")
    md.append("![B1](b1.png)\n")

# ---- B2 ----
b2 = load("b2")
if b2:
    md.append("## B2 end to end on the real broker (loopback, %d records pre-loaded)\n" % b2[0]["records"])
    md.append("_measured %s_\n" % measured("b2"))
    md.append("| client | records/s (wall, start-up included) |\n|---|---|")
    rates = {}
    for c in ("kcat", "ConsumerPerformance", "copy", "kanon", "kanon-every-core", "kanon-eos",
              "kanon-rdkafka-prefetch", "kanon+lat", "kafka-streams"):
        xs = [r["records"] / r["seconds"] for r in b2 if r["client"] == c and r["seconds"] > 0]
        if xs:
            rates[c] = xs
            md.append("| %s | %s |" % (c, cell(xs)))
    cp = [r["reported_fetch_rate"] for r in b2 if r["client"] == "ConsumerPerformance"]
    if cp:
        md.append("\nConsumerPerformance's own fetch rate (group join excluded): %s records/s."
                  % cell(cp))
    if "kcat" in rates and "kanon" in rates:
        ratios = [k / c for k, c in zip(rates["kanon"], rates["kcat"])]
        md.append("\nkanon / kcat (consume only, librdkafka), round by round: **%.2f** (%.2f-%.2f); "
                  "goal 0.9.\n" % spread(ratios))
        goals.append(("B2 kanon >= 0.9 of librdkafka consume-only (kcat)",
                      "%.2f" % statistics.median(ratios), statistics.median(ratios) >= 0.9))
    if "copy" in rates and "kanon" in rates:
        ratios = [k / c for k, c in zip(rates["kanon"], rates["copy"])]
        md.append("kanon / kn_copy (consume + produce the same bytes, kanon's client settings), round "
                  "by round: **%.2f** (%.2f-%.2f); goal 0.9.\n" % spread(ratios))
        goals.append(("B2 kanon run >= 0.9 of kn_copy", "%.2f" % statistics.median(ratios),
                      statistics.median(ratios) >= 0.9))
        def cpu_us(client):
            return [r["cpu_seconds"] / r["records"] * 1e6 for r in b2
                    if r["client"] == client and r["records"] and "cpu_seconds" in r]
        cpu = cpu_us("copy")
        if cpu:
            md.append("CPU per record (user + system): kn_copy %s us, kanon %s us, kanon "
                      "exactly-once %s us.\n" % tuple(cell(x) if x else "n/a" for x in
                                                     (cpu, cpu_us("kanon"), cpu_us("kanon-eos"))))
        if cpu and cpu_us("kanon"):
            ratio = statistics.median(cpu_us("kanon")) / statistics.median(cpu)
            goals.append(("B2 kanon CPU per record <= 1.5x kn_copy's", "%.2fx" % ratio,
                          ratio <= 1.5))
    if "copy" in rates and "kanon-eos" in rates:
        ratios = [k / c for k, c in zip(rates["kanon-eos"], rates["copy"])]
        md.append("kanon exactly-once (the example's aggregates, transactions) / kn_copy, round by "
                  "round: **%.2f** (%.2f-%.2f); goal 0.8.\n" % spread(ratios))
        goals.append(("B2 kanon exactly-once >= 0.8 of kn_copy", "%.2f" % statistics.median(ratios),
                      statistics.median(ratios) >= 0.8))
    if "kanon" in rates and "kanon-every-core" in rates:
        ratios = [a / b for a, b in zip(rates["kanon-every-core"], rates["kanon"])]
        md.append("kanon with a worker on every core / with the default workers (one per core "
                  "less one), round by round: **%.2f** (%.2f-%.2f).\n" % spread(ratios))
    if "kanon" in rates and "kanon-rdkafka-prefetch" in rates:
        ratios = [a / b for a, b in zip(rates["kanon"], rates["kanon-rdkafka-prefetch"])]
        md.append("kanon with its prefetch defaults (`run.prefetch_memory_mb`) / with librdkafka's "
                  "(queued.min.messages 100 000, 1 MiB per partition fetch, 64 MiB queue), round by "
                  "round: **%.2f** (%.2f-%.2f).\n" % spread(ratios))
    if "kanon" in rates and "kanon+lat" in rates:
        ratios = [a / b for a, b in zip(rates["kanon+lat"], rates["kanon"])]
        seen = [r.get("lat_batches", 0) for r in b2 if r["client"] == "kanon+lat"]
        md.append("kanon with `kanon lat` attached / without: **%.3f** (%.3f-%.3f); goal 0.97. "
                  "Batches `kanon lat` saw: %s.\n" % (spread(ratios) + (seen,)))
        goals.append(("B3 throughput with kanon lat attached >= 0.97 of without",
                      "%.3f" % statistics.median(ratios), statistics.median(ratios) >= 0.97))

    if "kanon" in rates and "kafka-streams" in rates:
        ratios = [k / c for k, c in zip(rates["kanon"], rates["kafka-streams"])]
        ks = [r for r in b2 if r["client"] == "kafka-streams"]
        wall = [r["records"] / r["wall_seconds"] for r in ks if r.get("wall_seconds")]
        md.append("kanon / Kafka Streams doing the same de-identification (`bench/peers/streams`: "
                  "Kafka Streams 3.9.1, Avro GenericRecord, %s stream threads, at-least-once, "
                  "kanon's producer settings), round by round: **%.2f** (%.2f-%.2f); goal 3. The "
                  "Streams figure runs from `KafkaStreams.start()` to `close()` returning (group "
                  "join, processing, final commit)%s.\n"
                  % ((ks[0].get("threads", "?"),) + spread(ratios) +
                     ("; with the JVM's start-up: %s records/s" % cell(wall) if wall else "",)))
        goals.append(("B2 kanon >= 3x a Kafka Streams app doing the same de-identification",
                      "%.2fx" % statistics.median(ratios), statistics.median(ratios) >= 3))

# ---- B3 ----
# Each load runs in rounds (kanon and kn_copy taking turns at going first);
# a figure is the median over the rounds, (min-max) after p99's.
b3_all = load("b3")
b3 = [r for r in b3_all if r.get("bench") == "b3"]
b3_floor = [r for r in b3_all if r.get("bench") == "b3-copy"]


def by_load(rows):
    loads = {}
    for r in rows:
        loads.setdefault(r["load_pct"], []).append(r)
    return loads


def med(xs):
    return statistics.median(xs) if xs else float("nan")


if b3:
    md.append("## B3 latency under a paced load (de-identified-stream mode)\n")
    md.append("_measured %s_\n" % measured("b3"))
    kl, fl = by_load(b3), by_load(b3_floor)
    rounds = max(len(v) for v in kl.values())
    md.append("Load: `kanon gen --rate --pool 100000` (its first 100 000 records, then those "
              "again: making each record would cost the generator a core at 50 %%) at a share "
              "of B2's kanon rate; latencies from `kanon lat "
              "--json` over the whole paced run. End to end is a batch's earliest Kafka "
              "timestamp to its last delivery acknowledgement (the batch's worst record). "
              "Latency profile: producer `linger.ms` 2 (the example config has 20). "
              "The floor: `kn_copy --latency` moving the same paced stream with kanon's "
              "client settings, measured per batch the same way (generator, broker and "
              "copier on the same 2 cores, as for kanon). Each load runs %d round(s), kanon "
              "and kn_copy taking turns at going first, after one unmeasured paced run that "
              "warms the broker; each figure is the median over the rounds, p99 with "
              "(min-max), and p99 / floor is the median of each round's ratio.\n" % rounds)
    md.append("| load | records/s | batches | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | "
              "run-queue p99 ms | floor p50 ms | floor p99 ms | p99 / floor |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for pct in sorted(kl):
        ks, fs = kl[pct], fl.get(pct, [])
        e = lambda k: [r["end_to_end"][k] / 1e3 for r in ks]
        p99, fp99 = e("p99_us"), [f["e2e_p99_us"] / 1e3 for f in fs if f["e2e_p99_us"]]
        pair = {f.get("round"): f["e2e_p99_us"] for f in fs if f["e2e_p99_us"]}
        ratios = [r["end_to_end"]["p99_us"] / pair[r.get("round")] for r in ks
                  if r.get("round") in pair]
        floor_cells = ("%.2f | %.2f (%.2f-%.2f) | %.2fx" % (
            med([f["e2e_p50_us"] / 1e3 for f in fs]), med(fp99), min(fp99), max(fp99),
            med(ratios)) if fp99 and ratios else "- | - | -")
        md.append("| %d %% | %d | %d | %.2f | %.2f (%.2f-%.2f) | %.2f | %.2f | %s |" % (
            pct, ks[0]["rate"], med([r["batches"] for r in ks]), med(e("p50_us")), med(p99),
            min(p99), max(p99), med(e("p999_us")), med([r["runq"]["p99_us"] / 1e3 for r in ks]),
            floor_cells))
        rows.append((pct, med(e("p50_us")), med(p99), med(e("p999_us")), med(fp99)))
        if pct == 50:
            goals.append(("B3 end-to-end p99 < 20 ms at 50 % load",
                          "%.2f ms%s" % (med(p99), " (kn_copy, the floor: %.2f ms)" % med(fp99)
                                         if fp99 else ""),
                          med(p99) < 20))
    md.append("\nStage p99 (ms) at each load (median over the rounds):\n")
    stages = ["consume", "decode", "policy", "deid", "produce", "ack"]
    md.append("| load | " + " | ".join(stages) + " |\n|---|" + "---|" * len(stages))
    for pct in sorted(kl):
        md.append("| %d %% | " % pct + " | ".join(
            "%.2f" % med([r["stages"][s]["p99_us"] / 1e3 for r in kl[pct] if s in r["stages"]])
            if any(s in r["stages"] for r in kl[pct]) else "-" for s in stages) + " |")
    for pct in sorted(fl):
        fs = [f for f in fl[pct] if "consume_p99_us" in f and "ack_p99_us" in f]
        if fs:
            md.append("| %d %%, kn_copy | %.2f | - | - | - | - | %.2f |" % (
                pct, med([f["consume_p99_us"] / 1e3 for f in fs]),
                med([f["ack_p99_us"] / 1e3 for f in fs])))
    write_dat("b3.dat", rows)
    gnuplot("""set terminal png size 800,420 noenhanced; set output 'b3.png'
set title 'B3: end-to-end latency against load'; set xlabel 'load (% of max)'; set ylabel 'ms'
set logscale y; set key left top
plot 'b3.dat' using 1:2 with linespoints title 'p50', '' using 1:3 with linespoints title 'p99', \\
     '' using 1:4 with linespoints title 'p99.9', '' using 1:5 with linespoints title 'kn_copy p99 (floor)', \\
     20 with lines dashtype 2 title 'goal p99 @ 50 %'\n""")
    md.append("\n![B3](b3.png)\n")

# ---- B4 ----
b4 = load("b4")
if b4:
    md.append("## B4 memory\n")
    md.append("_measured %s_\n" % measured("b4"))
    md.append("| open groups | events per group | state bytes | bytes/group (state) | peak RSS MB | "
              "RSS bytes/group |\n|---|---|---|---|---|---|")
    rows = []
    for r in b4:
        grow = (r["rss_kb_peak"] - r["rss_kb_before"]) * 1024
        md.append("| %d | %d | %d | %.0f | %.1f | %.0f |" % (
            r["open_groups"], r["events_per_group"], r["state_bytes"],
            r["state_bytes"] / max(r["open_groups"], 1), r["rss_kb_peak"] / 1024,
            grow / max(r["open_groups"], 1)))
        if r["events_per_group"] == 1:
            rows.append((r["open_groups"], r["rss_kb_peak"] / 1024))
    fixed = sorted((r for r in b4 if r["events_per_group"] >= 5), key=lambda r: r["events_per_group"])
    if len(fixed) >= 2:
        a, b = fixed[0], fixed[-1]
        growth = 100.0 * (b["rss_kb_peak"] - a["rss_kb_peak"]) / a["rss_kb_peak"]
        md.append("\nAt %d groups with the same 5 people each, %d to %d events per group: peak RSS "
                  "%.1f to %.1f MB (%+.1f %%), state %d to %d bytes: %s.\n" % (
                      a["groups"], a["events_per_group"], b["events_per_group"],
                      a["rss_kb_peak"] / 1024, b["rss_kb_peak"] / 1024, growth, a["state_bytes"],
                      b["state_bytes"], "flat" if abs(growth) < 10 else "**not flat**"))
    write_dat("b4.dat", rows)
    gnuplot("""set terminal png size 800,420; set output 'b4.png'
set title 'B4: peak RSS against open groups'; set xlabel 'open groups'; set ylabel 'MB'
set logscale xy
plot 'b4.dat' using 1:2 with linespoints notitle\n""")
    md.append("![B4](b4.png)\n")

# ---- B5 ----
b5 = load("b5")
if b5:
    md.append("## B5 keyed hash cost (ns per identifier, one core)\n")
    md.append("_measured %s_\n" % measured("b5"))
    sizes = sorted({r["bytes"] for r in b5})
    prfs = sorted({r["prf"] for r in b5})
    md.append("| PRF | " + " | ".join("%d B" % s for s in sizes) + " |\n|---|" + "---|" * len(sizes))
    rows = []
    for p in prfs:
        md.append("| %s | " % p + " | ".join(
            cell([r["ns"] for r in b5 if r["prf"] == p and r["bytes"] == s]) for s in sizes) + " |")
    for s in sizes:
        rows.append([s] + [statistics.median(r["ns"] for r in b5 if r["prf"] == p and r["bytes"] == s)
                           for p in prfs])
    md.append("\nxxh3 is not a PRF (its key only seeds it); it is listed as the floor, not as an "
              "option for pseudonyms.\n")
    write_dat("b5.dat", rows)
    gnuplot("""set terminal png size 800,420; set output 'b5.png'
set title 'B5: ns per keyed hash'; set xlabel 'input bytes'; set ylabel 'ns'; set logscale y
plot """ + ", ".join("'b5.dat' using 1:%d with linespoints title '%s'" % (i + 2, p)
                     for i, p in enumerate(prfs)) + "\n")
    md.append("![B5](b5.png)\n")

# ---- B6 ----
b6, b6old = load("b6"), load("b6-baseline")
if b6:
    md.append("## B6 text cost per search record (ns, one core)\n")
    md.append("_measured %s_\n" % measured("b6"))
    md.append("%d search queries from `kanon gen --seed 11` (%d %% plain ASCII), each folded "
              "(NFKC + case fold + traditional->simplified + separators squeezed), scrubbed, "
              "categorized (sensitive lexicon and taxonomy), and the whole pipeline per record "
              "with `policy.emit_scrubbed_query: true`.\n"
              % (b6[0]["queries"], round(100.0 * b6[0]["ascii"] / max(b6[0]["queries"], 1))))
    cols = [("fold_ns", "folder (`kn_fold`)"), ("scrub_ns", "scrubber (`kn_scrub_query`)"),
            ("categorize_ns", "categorizer (`kn_policy_categorize`)"),
            ("pipeline_ns", "whole pipeline per search record")]
    rev = b6old[0]["rev"] if b6old else None
    md.append("| stage | this tree | %s |\n|---|---|---|" % (
        "before (%s) | after / before" % rev if rev else "before"))
    if rev:
        md[-1] = md[-1].replace("|---|---|---|", "|---|---|---|---|")
    for k, label in cols:
        now = [r[k] for r in b6]
        row = "| %s | %s |" % (label, cell(now) if min(now) >= 0 else "-")
        if rev:
            old = [r[k] for r in b6old]
            if min(old) < 0:
                row += " (none) | - |"
            else:
                row += " %s | %.2fx |" % (cell(old), statistics.median(now) / statistics.median(old))
        else:
            row += " (run with `--baseline REV`) |"
        md.append(row)
    md.append("")

# ---- B7 ----
b7 = load("b7")
if b7:
    util = [r for r in b7 if r["kind"] == "utility"]
    close = [r for r in b7 if r["kind"] == "close"]
    u = util[0]
    md.append("## B7 the differentially private release\n")
    md.append("_measured %s_\n" % measured("b7"))
    md.append("The example configuration's budget: epsilon %g and delta %.3g per person per window, "
              "L0 = %d groups per person over all definitions, Linf = %d events per group; a group is "
              "released iff its noisy people count reaches max(T = %d, k = %d). %d draws per group size "
              "(exact discrete Laplace, `processor/dp.c`), each person with 2 events. Median relative "
              "error over the released draws (those not released have no error to show: the release "
              "rate says how often a group of that size is published at all).\n"
              % (u["epsilon"], u["delta"], u["l0"], u["linf"], u["threshold"], u["k"], u["draws"]))
    md.append("| people in the group | released | median rel. error, users | median rel. error, events |")
    md.append("|---|---|---|---|")
    for r in util:
        err = (lambda v: "-" if v < 0 else "%.2f %%" % (100 * v))
        md.append("| %d | %.2f %% | %s | %s |" % (r["size"], 100 * r["released"], err(r["users_mre"]),
                                               err(r["events_mre"])))
    if close:
        ex = [r["exact_ns_per_group"] for r in close]
        dpn = [r["dp_ns_per_group"] for r in close]
        md.append("\nRelease cost: closing one window of %d groups (5 people each), ns per group: "
                  "exact k-anonymity %s, dp %s (%.1fx: one keyed BLAKE2b seed and ChaCha20 draws per "
                  "group), i.e. %.1f ms per window of %d groups.\n"
                  % (close[0]["groups"], cell(ex), cell(dpn), statistics.median(dpn) / statistics.median(ex),
                     statistics.median(dpn) * close[0]["groups"] / 1e6, close[0]["groups"]))

# ---- B8 ----
b8 = load("b8")
if b8:
    md.append("## B8 the aggregation topology, one stage at a time\n")
    md.append("_measured %s_\n" % measured("b8"))
    md.append("Each stage alone (`kanon run --role STAGE --until-eof`, one instance, default workers) "
              "over the whole backlog its upstream left: %d DeviceLog records in, the example's two "
              "aggregate definitions. Records are what the stage reads: input records (deid), "
              "contributions and marks (bound), partial tallies and marks (release).\n"
              % next(r["records"] for r in b8 if r["stage"] == "deid"))
    md.append("| stage | records | records/s per instance | CPU us per record |\n|---|---|---|---|")
    rate = {}
    for st in ("deid", "bound", "release"):
        rs = [r for r in b8 if r["stage"] == st and r["seconds"] > 0]
        if not rs:
            continue
        rate[st] = statistics.median(r["records"] / r["seconds"] for r in rs)
        md.append("| %s | %d | %s | %s |" % (st, rs[0]["records"], cell([r["records"] / r["seconds"] for r in rs]),
                                           cell([r["cpu_seconds"] / max(r["records"], 1) * 1e6 for r in rs])))
    deid = [r for r in b8 if r["stage"] == "deid"]
    bound = [r for r in b8 if r["stage"] == "bound"]
    sizes = next((r for r in b8 if r["stage"] == "sizes"), None)
    if len(rate) == 3 and deid and bound:
        n_in = deid[0]["records"]
        contrib_per_rec = statistics.median(r["extra"] for r in deid) / n_in
        bound_per_rec = bound[0]["records"] / n_in  # contributions + marks per input record
        peak = statistics.median(r["extra"] for r in bound)
        eos = [r["records"] / r["seconds"] for r in (b2 or []) if r["client"] == "kanon-eos"]
        today = statistics.median(eos) if eos else rate["deid"]
        md.append("\nPer input record: %.2f contributions (eligible, on time, with a person); the bound "
                  "stage reads %.2f records per input record (contributions and marks). Peak open-window "
                  "state of the one bound instance: %.1f MiB.\n"
                  % (contrib_per_rec, bound_per_rec, peak / 2 ** 20))
        md.append("### Capacity model\n")
        md.append("Today's load L = %s records/s: one process running all three stages "
                  "(B2 `kanon-eos`%s). Instances per stage = load / its rate above, rounded up, "
                  "each instance a 2-core machine like this one; partitions at least twice the "
                  "instances, so a stage can grow without repartitioning (the contributions topic's "
                  "count is fixed once windows are open: size it for the largest plan)."
                  % (fmt(today), "" if eos else "; no B2 in this run, so deid's rate"))
        rows = []
        for mult in (10, 100):
            x = today * mult
            d = math.ceil(x / rate["deid"])
            b = math.ceil(x * bound_per_rec / rate["bound"])
            r = 2  # one, and a spare: its load follows groups, not events (below)
            bw = ""
            if sizes:
                w = x * (sizes["input"] + sizes["deid"] + contrib_per_rec * sizes["contribution"])
                bw = "%.0f MB/s in, x3 replication %.0f MB/s, reads %.0f MB/s" % (
                    w / 1e6, 3 * w / 1e6,
                    x * (sizes["input"] + contrib_per_rec * sizes["contribution"]) / 1e6)
            rows.append("| %dx (%s rec/s) | %d deid, %d bound, %d release | input >= %d, contributions "
                        ">= %d, partials >= %d | %s | %.0f MiB per bound instance |"
                        % (mult, fmt(x), d, b, r, 2 * d, 2 * b, 2 * r, bw or "-",
                           peak / 2 ** 20 * mult / b))
        md.append("\n| load | instances | partitions | broker bandwidth | open-window state |\n"
                  "|---|---|---|---|---|")
        md.extend(rows)
        md.append("\nRelease work grows with groups, not with events: per window it reads one partial "
                  "tally per group and bound partition, so one or two release instances carry any of "
                  "these loads (its rate above is per tally; start-up dominates it here). Open-window "
                  "state grows with the people per window and divides across bound instances (one "
                  "person, one partition): the model assumes people grow with the load (the same "
                  "behaviour per person), so it is the peak the one instance held here (the corpus' "
                  "5 000 people) times the load factor over the bound instances. The broker writes "
                  "each input, de-identified and contribution byte once per replica; partial tallies "
                  "and marks are negligible.\n")

if goals:
    md.insert(4, "## Goals\n\n| goal | measured | met |\n|---|---|---|\n" + "\n".join(
        "| %s | %s | %s |" % (g, v, "yes" if ok else "**no**") for g, v, ok in goals) + "\n")

with open(os.path.join(out, "REPORT.md"), "w") as f:
    f.write("\n".join(md) + "\n")

# A benchmark that produced nothing is a failure, not a shorter report.
missing = [b for b, rows in (("B1", b1), ("B2", b2), ("B3", b3), ("B4", b4), ("B5", b5), ("B6", b6),
                                        ("B7", b7), ("B8", b8))
           if not rows and b.lower() in only]
if missing or ("b3" in only and b3 and not all(r["end_to_end"]["count"] for r in b3)):
    sys.exit("report: no results from %s" % (", ".join(missing) or "B3 (no end-to-end samples)"))
