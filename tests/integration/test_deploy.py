"""The deployment artefacts in deploy/ checked against kanon itself.

- deploy/prometheus: `promtool check rules/config`, `promtool test rules`
  (every alert with a firing and a silent case, and each alert's firing case
  shown to bite by breaking the alert), and every metric named in the rules
  and the Grafana dashboard is one kanon renders (processor/io/metrics.c;
  test_prometheus.py checks the same against a live scrape).
- deploy/systemd: `systemd-analyze verify`, the `systemd-analyze security`
  exposure score, and kanon@.service's ExecStart run as the unit would run
  it: an unprivileged uid, the key as a credential file, and the unit's own
  seccomp rules (SystemCallFilter=, MemoryDenyWriteExecute=,
  RestrictAddressFamilies=, expanded by systemd-analyze) loaded through
  libseccomp, against the broker; kanon-lat@.service's capability set is
  enough for `kanon lat` and each of its capabilities is needed.
- deploy/k8s: the manifests parse and agree with each other and with kanon:
  the ConfigMap's config passes `kanon check` with each StatefulSet's
  arguments, probes and scrape annotations name the --metrics-addr port, the
  key reaches kanon at keys.file through the init container (replayed here
  on a Secret laid out as the kubelet lays it out), every role has a
  StatefulSet, a PDB and a Service selecting its pods.
- deploy/container/Dockerfile: its runtime stage is non-root, has no shell
  step, and runs the binary the build stage builds; the library-staging
  step, replayed on this build, yields a root file system in which kanon
  runs with nothing but glibc added.
"""
import ctypes
import errno
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import yaml

from conftest import KANON, SRC, Env, free_port, metric, scrape

DEPLOY = os.path.join(SRC, "deploy")
PROM = os.path.join(DEPLOY, "prometheus")
RULES = os.path.join(PROM, "kanon-alerts.yml")
RULE_TESTS = os.path.join(PROM, "kanon-alerts.test.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "kanon-dashboard.json")
UNIT = os.path.join(DEPLOY, "systemd", "kanon@.service")
LAT_UNIT = os.path.join(DEPLOY, "systemd", "kanon-lat@.service")
K8S = os.path.join(DEPLOY, "k8s")
DOCKERFILE = os.path.join(DEPLOY, "container", "Dockerfile")
ROLES = ("deid", "bound", "release")

# The most exposure `systemd-analyze security` may find (0 = locked down,
# 10 = unprotected); measured 1.1 for kanon@ and 2.2 for kanon-lat@.
MAX_EXPOSURE = {"kanon@x.service": 1.5, "kanon-lat@x.service": 2.5}


def need(tool):
    path = shutil.which(tool)
    if not path:
        msg = "%s is not installed (deploy/setup.sh installs it)" % tool
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run(*args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(list(args), **kw)


# ---------------------------------------------------------------- metrics

def exported_metric_names():
    """Every metric family processor/io/metrics.c can render: the names in
    its string literals, histograms with their series suffixes."""
    with open(os.path.join(SRC, "processor", "io", "metrics.c")) as f:
        src = f.read()
    names = set(re.findall(r'"(kanon_[a-z0-9_]+)', src))
    hists = set(re.findall(r'histogram\(\s*b,\s*"(kanon_[a-z0-9_]+)"', src))
    assert hists, "no histogram found in metrics.c: the parser is out of date"
    for h in hists:
        names |= {h + "_bucket", h + "_sum", h + "_count"}
    return names


def rule_groups():
    with open(RULES) as f:
        return yaml.safe_load(f)["groups"]


def rule_exprs():
    return [r["expr"] for g in rule_groups() for r in g["rules"]]


def dashboard_exprs():
    with open(DASHBOARD) as f:
        d = json.load(f)
    out = []
    for p in d["panels"]:
        out += [t["expr"] for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            out.append(q["query"])
    return out


def referenced_metrics(exprs):
    names = set()
    for e in exprs:
        names |= set(re.findall(r"\b(kanon_[a-z0-9_]+)", e))
    return names


def test_rules_and_config_pass_promtool():
    promtool = need("promtool")
    r = run(promtool, "check", "rules", RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    n = sum(len(g["rules"]) for g in rule_groups())
    assert "SUCCESS: %d rules found" % n in r.stdout
    r = run(promtool, "check", "config", os.path.join(PROM, "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_fires_and_stays_silent_in_the_unit_tests():
    promtool = need("promtool")
    r = run(promtool, "test", "rules", RULE_TESTS, cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(RULE_TESTS) as f:
        tests = yaml.safe_load(f)["tests"]
    fired, silent = set(), set()
    for t in tests:
        for a in t.get("alert_rule_test", []):
            (fired if a.get("exp_alerts") else silent).add(a["alertname"])
    alerts = {r["alert"] for g in rule_groups() for r in g["rules"] if "alert" in r}
    assert len(alerts) >= 15
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown silent"


def test_each_alerts_firing_case_bites(tmp_path):
    """An alert whose expression can never be true must fail its unit test:
    otherwise the test would pass whatever the rule says."""
    promtool = need("promtool")
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    with open(RULE_TESTS) as f:
        tests = yaml.safe_load(f)
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    procs = []
    for name in alerts:
        broken = json.loads(json.dumps(rules))
        for g in broken["groups"]:
            for r in g["rules"]:
                if r.get("alert") == name:
                    r["expr"] = "vector(1) > 2"
        d = tmp_path / name
        d.mkdir()
        (d / "rules.yml").write_text(yaml.safe_dump(broken))
        # Only the test groups that speak of this alert (the whole file takes
        # seconds per run).
        mine = [t for t in tests["tests"]
                if any(a["alertname"] == name for a in t.get("alert_rule_test", []))]
        (d / "test.yml").write_text(yaml.safe_dump(dict(tests, rule_files=["rules.yml"], tests=mine)))
        procs.append((name, subprocess.Popen([promtool, "test", "rules", "test.yml"], cwd=str(d),
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        if len(procs) % 4 == 0:
            procs[-4][1].wait(timeout=120)
    for name, p in procs:
        out = p.communicate(timeout=120)[0].decode()
        assert p.returncode != 0 and "FAILED" in out, "%s: a rule that never fires passed its tests" % name


def test_rules_and_dashboard_name_only_exported_metrics():
    exported = exported_metric_names()
    assert {"kanon_records_consumed_total", "kanon_stage_window_waiting",
            "kanon_batch_duration_seconds_bucket"} <= exported
    for what, exprs in (("rules", rule_exprs()), ("dashboard", dashboard_exprs())):
        names = referenced_metrics(exprs)
        assert len(names) >= 10, what
        assert names - exported == set(), "%s name metrics kanon does not export" % what
    # The dashboard covers what the rules watch, and more.
    assert referenced_metrics(rule_exprs()) - referenced_metrics(dashboard_exprs()) == set()


def test_dashboard_is_a_valid_grafana_dashboard(tmp_path):
    with open(DASHBOARD) as f:
        d = json.load(f)
    assert d["schemaVersion"] >= 36 and d["uid"] and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids, cells = set(), {}
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for word in ("records", "lag", "dead letters", "transactions", "stage", "windows waiting",
                 "epsilon", "batch duration", "end to end"):
        assert word in titles, word
    for p in d["panels"]:
        assert p["id"] not in ids
        ids.add(p["id"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, "%s overlaps %s" % (p["title"], cells[(x, y)])
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
    # Every query is valid PromQL: promtool parses them as recording rules,
    # with Grafana's variables replaced by what they stand for.
    promtool = need("promtool")
    rules = []
    for i, e in enumerate(dashboard_exprs()):
        e = e.replace("$__rate_interval", "1m").replace("$job", "kanon.*").replace("$instance", ".*")
        if e.startswith("label_values("):
            e = e[len("label_values("):e.rindex(",")]
        rules.append({"record": "dashboard:q%d" % i, "expr": e})
    (tmp_path / "q.yml").write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))
    r = run(promtool, "check", "rules", str(tmp_path / "q.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- systemd

def unit_directives(path):
    """{key: [values]} of a unit file, continuation lines joined."""
    out = {}
    with open(path) as f:
        text = re.sub(r"\\\n\s*", " ", f.read())
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def units_in(tmp_path):
    """Both units with ExecStart pointing at the binary under test (verify
    insists that it exists)."""
    d = tmp_path / "units"
    d.mkdir()
    for src in (UNIT, LAT_UNIT):
        with open(src) as f:
            text = f.read()
        (d / os.path.basename(src)).write_text(text.replace("/usr/local/bin/kanon", KANON))
    return d


def test_units_pass_systemd_analyze_verify(tmp_path):
    need("systemd-analyze")
    d = units_in(tmp_path)
    for unit in ("kanon@x.service", "kanon-lat@x.service"):
        r = run("systemd-analyze", "verify", "--man=no", str(d / unit))
        assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), (unit, r.stderr)
    # And it does look: a unit naming a binary that is not there fails.
    (d / "kanon@.service").write_text((d / "kanon@.service").read_text().replace(KANON, "/nonexistent/kanon"))
    r = run("systemd-analyze", "verify", "--man=no", str(d / "kanon@x.service"))
    assert r.returncode != 0 and "/nonexistent/kanon" in r.stderr


def test_units_exposure_score(tmp_path):
    need("systemd-analyze")
    d = units_in(tmp_path)
    scores = {}
    for unit, bound in MAX_EXPOSURE.items():
        r = run("systemd-analyze", "security", "--offline=yes", "--no-pager", str(d / unit))
        assert r.returncode == 0, r.stderr
        m = re.search(r"Overall exposure level for %s: (\d+\.\d+)" % re.escape(unit), r.stdout)
        assert m, r.stdout[-500:]
        scores[unit] = float(m.group(1))
        assert scores[unit] <= bound, "%s exposure %s > %s" % (unit, scores[unit], bound)
    print("systemd-analyze security exposure:", scores)


def test_unit_matches_kanons_contract():
    u = unit_directives(UNIT)
    cred = dict(v.split(":", 1) for v in u["LoadCredential"])
    argv = shlex.split(u["ExecStart"][0])
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    key = [s.split("=", 1)[1] for s in sets if s.startswith("keys.file=")]
    assert len(key) == 1 and key[0].startswith("%d/") and key[0][3:] in cred, key
    assert "--metrics-addr" in argv and "--instance" in argv and argv[1] == "run"
    # kanon answers SIGTERM within 10 s (processor/core/stop.h: the budget
    # and the watchdog); systemd must not SIGKILL it before.
    with open(os.path.join(SRC, "processor", "core", "stop.h")) as f:
        budget_ms = int(re.search(r"#define KN_STOP_BUDGET_MS (\d+)", f.read()).group(1))
    stop = u["TimeoutStopSec"][-1]
    assert stop.endswith("s") and int(stop[:-1]) >= max(10, budget_ms / 1000) + 2
    assert "3" in u["SuccessExitStatus"][-1].split()
    assert {"2", "4"} <= set(u["RestartPreventExitStatus"][-1].split())
    assert u["CapabilityBoundingSet"] == [""] and u["DynamicUser"] == ["yes"]
    assert u["LimitCORE"] == ["0"] and u["MemoryDenyWriteExecute"] == ["yes"]


# What systemd does with the unit's seccomp settings, done with libseccomp so
# that kanon can be run under them without a running systemd. Three stacked
# filters, as systemd 252 installs them.

class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64),
                ("b", ctypes.c_uint64)]


_ALLOW, _KILL_PROCESS = 0x7FFF0000, 0x80000000
_CMP_EQ, _CMP_GT, _CMP_MASKED_EQ = 4, 6, 7
_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10}


def _errno_action(e):
    return 0x00050000 | (e & 0xFFFF)


def syscall_group(group, seen=None):
    out = run("systemd-analyze", "syscall-filter", group, check=True).stdout
    names = set()
    for line in out.splitlines():
        t = line.strip()
        if not t or t.startswith("#") or t == group:
            continue
        names |= syscall_group(t) if t.startswith("@") else {t}
    return names


def unit_seccomp(u):
    """The allow list, address families and MDWE flag the unit asks for."""
    allowed = set()
    for v in u["SystemCallFilter"]:
        deny = v.startswith("~")
        items = set()
        for item in v.lstrip("~").split():
            items |= syscall_group(item) if item.startswith("@") else {item}
        allowed = allowed - items if deny else allowed | items
    # Always permitted, whatever the filter says (systemd.exec(5)).
    allowed |= syscall_group("@default")
    fams = {_FAMILIES[f] for f in u["RestrictAddressFamilies"][-1].split()}
    return allowed, fams, u["MemoryDenyWriteExecute"][-1] == "yes"


def seccomp_filters(allowed, families, mdwe):
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]

    def rule(ctx, action, name, *conds):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:  # another architecture's name
            return
        arr = (_ArgCmp * len(conds))(*[_ArgCmp(*c) for c in conds]) if conds else None
        assert lib.seccomp_rule_add_array(ctx, action, nr, len(conds), arr) == 0, name

    filters = []
    if mdwe:  # as systemd: no W+X mapping, no mprotect/shmat to executable
        f = lib.seccomp_init(_ALLOW)
        prot_w, prot_x = 0x2, 0x4
        rule(f, _KILL_PROCESS, "mmap", (2, _CMP_MASKED_EQ, prot_w | prot_x, prot_w | prot_x))
        rule(f, _KILL_PROCESS, "mprotect", (2, _CMP_MASKED_EQ, prot_x, prot_x))
        rule(f, _KILL_PROCESS, "pkey_mprotect", (2, _CMP_MASKED_EQ, prot_x, prot_x))
        rule(f, _KILL_PROCESS, "shmat", (2, _CMP_MASKED_EQ, 0o100000, 0o100000))
        filters.append(f)
    f = lib.seccomp_init(_ALLOW)  # RestrictAddressFamilies=: socket() refused
    for fam in range(64):
        if fam not in families:
            rule(f, _errno_action(errno.EAFNOSUPPORT), "socket", (0, _CMP_EQ, fam, 0))
    rule(f, _errno_action(errno.EAFNOSUPPORT), "socket", (0, _CMP_GT, 63, 0))
    filters.append(f)
    # SystemCallFilter=, loaded last (it does not allow seccomp() itself).
    # Stricter than the unit: a call outside the list kills kanon instead of
    # failing with EPERM, so a call kanon would silently lose is seen here.
    f = lib.seccomp_init(_KILL_PROCESS)
    for name in sorted(allowed):
        rule(f, _ALLOW, name)
    filters.append(f)
    return lib, filters


def is_asan(binary):
    return "libasan" in run("ldd", binary).stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run kanon as another uid")
def test_kanon_runs_in_the_units_sandbox(broker):
    """kanon@.service's ExecStart, as an unprivileged uid, reading its key
    from a credential directory laid out as systemd 252 lays it out (ramfs:
    the file chowned to the service's uid, 0400), under the unit's seccomp
    filters: it consumes every record and stops cleanly on SIGTERM within
    TimeoutStopSec."""
    need("systemd-analyze")
    u = unit_directives(UNIT)
    allowed, families, mdwe = unit_seccomp(u)
    assert "bpf" not in allowed and "ptrace" not in allowed and "mount" not in allowed
    lib, filters = seccomp_filters(allowed, families, mdwe)
    uid = 61234
    top = tempfile.mkdtemp(prefix="kanon-unit-")
    try:
        os.chmod(top, 0o755)
        env = Env(top, "unit")
        count, malformed = 500, 6
        env.kanon("gen", "-c", env.config, "--count", str(count), "--malformed", str(malformed))
        total = 3 * (count + malformed)
        # $CREDENTIALS_DIRECTORY, as systemd leaves it for DynamicUser.
        cred_id, cred_src = u["LoadCredential"][0].split(":", 1)
        creds = os.path.join(top, "credentials", "kanon@test.service")
        os.makedirs(creds)
        shutil.copy(env.key, os.path.join(creds, cred_id))
        os.chown(os.path.join(creds, cred_id), uid, uid)
        os.chmod(os.path.join(creds, cred_id), 0o400)
        os.chown(creds, uid, uid)
        os.chmod(creds, 0o500)
        port = free_port()
        argv = []
        for a in shlex.split(u["ExecStart"][0]):
            a = (a.replace("/etc/kanon/%i.yaml", env.config).replace("/usr/local/bin/kanon", KANON)
                 .replace("%i", "test").replace("%H", socket.gethostname()).replace("%d", creds)
                 .replace("${KANON_METRICS_ADDR}", "127.0.0.1:%d" % port))
            argv.append(a)
        assert "%" not in " ".join(argv) and "$" not in " ".join(argv), argv
        penv = dict(env.env)
        if is_asan(KANON):
            penv["ASAN_OPTIONS"] = "detect_leaks=0"  # LeakSanitizer needs ptrace

        def sandbox():
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for f in filters:
                if lib.seccomp_load(f) != 0:
                    os._exit(121)

        out = open(os.path.join(top, "kanon.err"), "wb")
        # close_fds=False: closing them would happen after the filters are
        # loaded, with close_range(), which the unit does not allow; systemd
        # closes them before.
        p = subprocess.Popen(argv, env=penv, stdout=out, stderr=out, preexec_fn=sandbox, close_fds=False)
        try:
            base = "http://127.0.0.1:%d" % port
            deadline = time.monotonic() + 60
            while True:
                code, text = scrape(base + "/metrics")
                if code == 200 and metric(text, "kanon_records_consumed_total") == total:
                    break
                assert p.poll() is None, "kanon died in the sandbox (%s): %s" % (
                    p.returncode, open(out.name, "rb").read().decode()[-3000:])
                assert time.monotonic() < deadline, text
                time.sleep(0.2)
            with open("/proc/%d/status" % p.pid) as f:
                status = f.read()
            assert re.search(r"^Uid:\s+%d\b" % uid, status, re.M)
            assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
            assert re.search(r"^Seccomp:\s+2$", status, re.M)
            assert re.search(r"^Seccomp_filters:\s+%d$" % len(filters), status, re.M)
            assert metric(text, "kanon_records_produced_total") > 0
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            stop = int(u["TimeoutStopSec"][-1].rstrip("s"))
            p.wait(timeout=stop)
            assert time.monotonic() - t0 < stop
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            out.close()
        log = open(out.name, "rb").read().decode()
        assert p.returncode == 0, log[-3000:]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def lat_available():
    if os.geteuid() != 0:
        return "needs root"
    r = run(KANON, "lat", "--help")
    if "without eBPF" in r.stdout + r.stderr:
        return "kanon was built without eBPF"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "no kernel BTF"
    return None


@pytest.mark.skipif(lat_available() is not None, reason=str(lat_available()))
def test_lat_unit_grants_what_kanon_lat_needs_and_no_more(broker, tmp_path):
    """kanon lat attaches to a running (non-dumpable) kanon with exactly
    kanon-lat@.service's bounding set, and fails without any one of its
    capabilities."""
    need("setpriv")
    caps = unit_directives(LAT_UNIT)["CapabilityBoundingSet"][-1].split()
    assert caps, "kanon-lat@.service grants no capability"
    env = Env(tmp_path, "latunit")
    p = env.popen("run", "-c", env.config)
    try:
        def lat(capset):
            names = ",".join("+" + c[4:].lower() for c in capset)
            r = run("setpriv", "--bounding-set", "-all" + ("," + names if names else ""),
                    KANON, "lat", "--pid", str(p.pid), "--interval", "1", "--count", "1", timeout=60)
            return r.returncode, r.stderr

        deadline = time.monotonic() + 30
        while True:  # all of root's capabilities: the environment can trace at all
            rc, err = lat(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_BPF", "CAP_PERFMON", "CAP_DAC_OVERRIDE",
                           "CAP_DAC_READ_SEARCH", "CAP_SYS_RESOURCE"])
            if rc == 0:
                break
            assert p.poll() is None, p.stderr.read().decode()
            if time.monotonic() > deadline:
                pytest.skip("kanon lat cannot attach here even as root: %s" % err.strip())
            time.sleep(0.5)
        rc, err = lat(caps)
        assert rc == 0 and "attached to pid %d" % p.pid in err, err
        for c in caps:
            rc, err = lat([x for x in caps if x != c])
            assert rc == 1, "kanon lat worked without %s: the unit grants more than it needs" % c
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


# ---------------------------------------------------------------- Kubernetes

def k8s_docs():
    out = {}
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml"):
            with open(os.path.join(K8S, name)) as f:
                out[name] = [d for d in yaml.safe_load_all(f) if d]
    return out


def k8s_objects():
    docs = k8s_docs()
    kust = docs["kustomization.yaml"][0]
    objs = []
    for res in kust["resources"]:
        objs += docs[res]
    return kust, objs


def by_kind(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def cli_options():
    r = run(KANON, "--help")
    return set(re.findall(r"(--[a-z][a-z-]*)", r.stdout)) | {"-c", "-s", "-l", "-h"}


def pod_spec(ss):
    return ss["spec"]["template"]["spec"]


def container(ss, name="kanon"):
    return [c for c in pod_spec(ss)["containers"] if c["name"] == name][0]


def arg(args, opt):
    return args[args.index(opt) + 1]


def test_k8s_manifests_parse_and_are_all_applied():
    docs = k8s_docs()
    kust, objs = k8s_objects()
    assert kust["kind"] == "Kustomization"
    listed = set(kust["resources"])
    # Every manifest is applied, except the two that must not be (the key
    # placeholder; the CRD-dependent PodMonitor): kustomization.yaml says why.
    assert set(docs) - listed == {"kustomization.yaml", "secret.example.yaml", "podmonitor.yaml"}
    kinds = sorted(o["kind"] for o in objs)
    assert kinds.count("StatefulSet") == 3 and kinds.count("PodDisruptionBudget") == 3
    assert "ConfigMap" in kinds and "Namespace" in kinds
    ns = by_kind(objs, "Namespace")[kust["namespace"]]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    kubectl = shutil.which("kubectl")
    if kubectl:  # the real kustomize, where there is one
        r = run(kubectl, "kustomize", K8S)
        assert r.returncode == 0, r.stderr
        rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
        assert sorted(o["kind"] for o in rendered) == kinds
        assert all(o["metadata"].get("namespace") == kust["namespace"]
                   for o in rendered if o["kind"] != "Namespace")


def test_every_role_has_statefulset_pdb_and_service_selecting_its_pods():
    _, objs = k8s_objects()
    sts, pdbs, svcs = by_kind(objs, "StatefulSet"), by_kind(objs, "PodDisruptionBudget"), by_kind(objs, "Service")
    for role in ROLES:
        ss = [s for s in sts.values() if role in container(s)["args"]]
        assert len(ss) == 1, role
        ss = ss[0]
        labels = ss["spec"]["template"]["metadata"]["labels"]
        sel = ss["spec"]["selector"]["matchLabels"]
        assert sel.items() <= labels.items()
        assert arg(container(ss)["args"], "--role") == role
        assert labels["app.kubernetes.io/component"] == role
        # Exactly one PDB and one Service select this role's pods, and no
        # other role's.
        for kind, objs_of in (("PDB", pdbs), ("Service", svcs)):
            mine = [o for o in objs_of.values()
                    if (o["spec"]["selector"].get("matchLabels") or o["spec"]["selector"]).items()
                    <= labels.items()]
            assert len(mine) == 1, (role, kind)
            other = [s for s in sts.values() if s is not ss]
            selector = mine[0]["spec"]["selector"].get("matchLabels") or mine[0]["spec"]["selector"]
            assert not any(selector.items() <= s["spec"]["template"]["metadata"]["labels"].items()
                           for s in other), (role, kind)
        assert ss["spec"]["serviceName"] in svcs
        assert svcs[ss["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
        pdb = [o for o in pdbs.values() if o["spec"]["selector"]["matchLabels"].items() <= labels.items()][0]
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) < ss["spec"]["replicas"]


def extract_config(dest):
    _, objs = k8s_objects()
    cms = by_kind(objs, "ConfigMap")
    assert len(cms) == 1
    cm = list(cms.values())[0]
    os.makedirs(dest, exist_ok=True)
    for k, v in cm["data"].items():
        with open(os.path.join(dest, k), "w") as f:
            f.write(v)
    return cm, yaml.safe_load(cm["data"]["kanon.yaml"])


def env_references(node):
    """The ${VAR} a parsed config reads (comments are not config)."""
    if isinstance(node, dict):
        return [v for x in node.values() for v in env_references(x)]
    if isinstance(node, list):
        return [v for x in node for v in env_references(x)]
    return re.findall(r"\$\{(\w+)", node) if isinstance(node, str) else []


def test_configmap_config_passes_kanon_check_with_each_roles_arguments(tmp_path):
    cm, cfg = extract_config(str(tmp_path / "etc"))
    key = str(tmp_path / "master.key")
    run(KANON, "keygen", key, check=True)
    _, objs = k8s_objects()
    options = cli_options()
    for name, ss in by_kind(objs, "StatefulSet").items():
        c = container(ss)
        args = list(c["args"])
        assert args[0] == "run"
        for a in args:
            if a.startswith("-"):
                assert a in options, "%s: kanon has no option %s" % (name, a)
        envs = {e["name"]: e for e in c.get("env", [])}
        # $(VAR) references are Kubernetes' own expansion: each must be set.
        values = {"POD_NAME": "%s-0" % name}
        for ref in re.findall(r"\$\((\w+)\)", " ".join(args)):
            assert ref in envs, (name, ref)
            if "value" in envs[ref]:
                values[ref] = envs[ref]["value"]
            else:
                assert envs[ref]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in args]
        # The config file is the ConfigMap's, mounted where -c says.
        conf = arg(args, "-c")
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod_spec(ss)["volumes"]}
        cfg_mount = [m for m in mounts.values() if vols[m["name"]].get("configMap")]
        assert len(cfg_mount) == 1 and cfg_mount[0]["readOnly"]
        assert vols[cfg_mount[0]["name"]]["configMap"]["name"] == cm["metadata"]["name"]
        assert os.path.dirname(conf) == cfg_mount[0]["mountPath"]
        assert os.path.basename(conf) in cm["data"]
        args[args.index("-c") + 1] = str(tmp_path / "etc" / os.path.basename(conf))
        # The brokers come from the environment: every ${VAR} the config
        # reads must be set by the container.
        cenv = {"PATH": os.environ.get("PATH", "")}
        for var in env_references(cfg):
            assert var in envs and "value" in envs[var], (name, var)
            cenv[var] = envs[var]["value"]
        # keys.file points into the pod (checked against the mounts by the
        # next test); here, a key of the test's own.
        r = run(KANON, "check", *args[1:], "--set", "keys.file=" + key, env=cenv)
        assert r.returncode == 0, "%s: %s" % (name, r.stderr)
        assert "is valid" in r.stderr
        eff = yaml.safe_load(r.stdout)  # the effective config, as kanon reads it
        assert eff["run"]["role"] == arg(args, "--role")
        assert eff["run"]["instance"] == "%s-0" % name
        assert eff["keys"]["file"] == key


def test_configmap_schemas_are_the_repositorys():
    cm, cfg = extract_config(tempfile.mkdtemp())
    for s in cfg["schemas"]:
        assert s["file"] in cm["data"], s["file"]
        with open(os.path.join(SRC, "schemas", s["file"])) as f:
            assert json.loads(cm["data"][s["file"]]) == json.load(f), s["file"]


def test_probes_scrape_and_key_mounts_agree_with_the_config():
    _, cfg = extract_config(tempfile.mkdtemp())
    keys_file = cfg["keys"]["file"]
    _, objs = k8s_objects()
    secrets = [d for d in k8s_docs()["secret.example.yaml"] if d["kind"] == "Secret"]
    assert len(secrets) == 1
    secret = secrets[0]
    for name, ss in by_kind(objs, "StatefulSet").items():
        spec = pod_spec(ss)
        c = container(ss)
        addr = arg(c["args"], "--metrics-addr")
        host, port = addr.rsplit(":", 1)
        assert host == "0.0.0.0", "probes and Prometheus come from outside the pod"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("readinessProbe", "/healthz"), ("livenessProbe", None)):
            get = c[probe]["httpGet"]
            if path:
                assert get["path"] == path
            assert ports.get(get["port"], get["port"]) == int(port), (name, probe)
        ann = ss["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"]) == int(port)
        # The key: Secret -> (init container, install -m 0400) -> in-memory
        # emptyDir -> kanon, read-only, at keys.file.
        vols = {v["name"]: v for v in spec["volumes"]}
        kmount = [m for m in c["volumeMounts"] if m["mountPath"] == os.path.dirname(keys_file)]
        assert len(kmount) == 1 and kmount[0]["readOnly"], name
        kvol = vols[kmount[0]["name"]]
        assert kvol["emptyDir"]["medium"] == "Memory"
        inits = spec["initContainers"]
        assert len(inits) == 1
        init = inits[0]
        cmd = init["command"]
        assert cmd[:3] == ["install", "-m", "0400"] and cmd[-1] == keys_file, cmd
        imounts = {m["mountPath"]: m for m in init["volumeMounts"]}
        assert imounts[os.path.dirname(keys_file)]["name"] == kmount[0]["name"]
        src_dir, src_name = os.path.split(cmd[-2])
        svol = vols[imounts[src_dir]["name"]]
        assert imounts[src_dir].get("readOnly")
        assert svol["secret"]["secretName"] == secret["metadata"]["name"]
        items = {i["path"]: i["key"] for i in svol["secret"].get("items", [])} or \
            {k: k for k in secret["stringData"]}
        assert items[src_name] in secret["stringData"]
        assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"]
        # SIGTERM: kanon is done within 10 s; the grace period must cover it.
        assert spec["terminationGracePeriodSeconds"] >= 12
        assert spec["automountServiceAccountToken"] is False


def test_pods_meet_the_restricted_pod_security_standard():
    _, objs = k8s_objects()
    for name, ss in by_kind(objs, "StatefulSet").items():
        spec = pod_spec(ss)
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
            assert "memory" in c["resources"]["limits"] and "cpu" in c["resources"]["requests"]
            assert not c.get("securityContext", {}).get("privileged")
        assert not any(v.get("hostPath") for v in spec["volumes"])


def test_replicas_fit_the_partitions_they_share():
    _, cfg = extract_config(tempfile.mkdtemp())
    _, objs = k8s_objects()
    reps = {arg(container(s)["args"], "--role"): s["spec"]["replicas"] for s in by_kind(objs, "StatefulSet").values()}
    agg = cfg["aggregate"]
    assert 1 <= reps["bound"] <= agg.get("contrib_partitions", 8)
    assert 1 <= reps["release"] <= agg.get("partials_partitions", 4)
    assert reps["deid"] >= 1
    for name, ss in by_kind(objs, "StatefulSet").items():
        # Instance names: the pod names, which kanon accepts as --instance.
        for i in range(ss["spec"]["replicas"]):
            assert re.fullmatch(r"[A-Za-z0-9._-]+", "%s-%d" % (name, i))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to lay out files as the kubelet does")
def test_key_secret_reaches_kanon_through_the_init_container():
    """The kubelet mounts a Secret root-owned (mode 0440 and group fsGroup
    with fsGroup set), which kanon refuses; the init container's own command,
    run as the pod's uid, makes the copy kanon accepts."""
    need("setpriv")
    # Not pytest's tmp_path: its parents are private to root.
    top = tempfile.mkdtemp(prefix="kanon-pod-")
    try:
        _key_through_init_container(__import__("pathlib").Path(top))
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _key_through_init_container(tmp_path):
    _, objs = k8s_objects()
    ss = by_kind(objs, "StatefulSet")["kanon-deid"]
    spec = pod_spec(ss)
    uid, gid = spec["securityContext"]["runAsUser"], spec["securityContext"]["fsGroup"]
    init = spec["initContainers"][0]
    _, cfg = extract_config(str(tmp_path / "etc"))
    root = tmp_path / "pod"
    os.chmod(str(tmp_path), 0o755)
    key = str(tmp_path / "orig.key")
    run(KANON, "keygen", key, check=True)
    src_dir, src_name = os.path.split(init["command"][-2])
    # The Secret as the kubelet writes it: ..data -> timestamped dir, the
    # name a symlink into ..data, files root:fsGroup 0440.
    sdir = str(root) + src_dir
    ts = os.path.join(sdir, "..2026_11_30_00_00_00.000000001")
    os.makedirs(ts)
    shutil.copy(key, os.path.join(ts, src_name))
    os.symlink(os.path.basename(ts), os.path.join(sdir, "..data"))
    os.symlink(os.path.join("..data", src_name), os.path.join(sdir, src_name))
    os.chown(os.path.join(ts, src_name), 0, gid)
    os.chmod(os.path.join(ts, src_name), 0o440)
    for d in (str(root), str(root) + "/var", str(root) + "/var/run", os.path.dirname(sdir), sdir, ts):
        os.chmod(d, 0o755)
    # The emptyDir: 0777 + setgid to fsGroup.
    kdir = str(root) + os.path.dirname(cfg["keys"]["file"])
    os.makedirs(kdir)
    os.chown(kdir, 0, gid)
    os.chmod(kdir, 0o2777)
    for d in (os.path.dirname(kdir),):
        os.chmod(d, 0o755)
    os.chmod(str(tmp_path / "etc"), 0o755)
    for f in os.listdir(str(tmp_path / "etc")):
        os.chmod(str(tmp_path / "etc" / f), 0o644)
    as_pod = ["setpriv", "--reuid", str(uid), "--regid", str(gid), "--groups", str(gid)]
    cenv = {"KANON_BROKERS": "127.0.0.1:9", "PATH": os.environ.get("PATH", "")}

    def check(keyfile):
        return run(*as_pod, KANON, "check", "-c", str(tmp_path / "etc" / "kanon.yaml"),
                   "--set", "keys.file=" + keyfile, env=cenv)

    r = check(str(root) + init["command"][-2])
    assert r.returncode == 2 and "owned by uid 0" in r.stderr, r.stderr
    cmd = [a if not a.startswith("/var/") else str(root) + a for a in init["command"]]
    r = run(*as_pod, *cmd)
    assert r.returncode == 0, r.stderr
    r = check(str(root) + cfg["keys"]["file"])
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- container

def dockerfile_stages():
    """[(name, base, [(instruction, argument)])], continuation lines joined,
    comments dropped."""
    with open(DOCKERFILE) as f:
        lines = [l for l in f.read().splitlines() if not l.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    stages = []
    for line in text.splitlines():
        if not line.strip():
            continue
        ins, _, rest = line.strip().partition(" ")
        ins = ins.upper()
        if ins == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.I)
            stages.append((m.group(2), m.group(1), []))
        else:
            stages[-1][2].append((ins, rest.strip()))
    return stages


def test_dockerfile_builds_with_setup_sh_and_runs_non_root_without_a_shell():
    stages = dockerfile_stages()
    assert len(stages) == 2
    (bname, bbase, build), (rname, rbase, runtime) = stages
    assert bbase.startswith("debian:12")
    runs = " ".join(a for i, a in build if i == "RUN")
    assert "deploy/setup.sh --build-only" in runs and "cmake --build" in runs
    # The binary: cmake puts it in the build directory (CMakeLists.txt:
    # RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}), and it is what is staged.
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        assert re.search(r"set_target_properties\(kanon PROPERTIES RUNTIME_OUTPUT_DIRECTORY \$\{CMAKE_BINARY_DIR\}\)",
                         f.read())
    bdir = re.search(r"cmake -S \S+ -B (\S+)", runs).group(1)
    m = re.search(r"cp %s/kanon (\S+)/usr/local/bin/kanon" % re.escape(bdir), runs)
    assert m, "the build stage does not stage %s/kanon" % bdir
    staged = m.group(1)
    assert "distroless" in rbase or rbase.startswith("debian:12-slim")
    copies = [a for i, a in runtime if i == "COPY"]
    assert any(re.match(r"--from=%s %s/? /$" % (bname, re.escape(staged)), a) for a in copies), copies
    entry = json.loads([a for i, a in runtime if i == "ENTRYPOINT"][-1])
    assert entry == ["/usr/local/bin/kanon"]
    user = [a for i, a in runtime if i == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric and non-root, for runAsNonRoot"
    for i, a in runtime:
        if i == "RUN":  # no shell in the runtime image: exec form only
            assert isinstance(json.loads(a), list), a
    # The port matches what the Kubernetes manifests scrape and probe.
    exposed = {int(p.split("/")[0]) for i, a in runtime if i == "EXPOSE" for p in a.split()}
    _, objs = k8s_objects()
    for ss in by_kind(objs, "StatefulSet").values():
        assert int(arg(container(ss)["args"], "--metrics-addr").rsplit(":", 1)[1]) in exposed
        assert pod_spec(ss)["securityContext"]["runAsUser"] == int(uid)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for chroot")
def test_dockerfile_staged_libraries_are_all_kanon_needs(tmp_path):
    """The build stage's staging steps, run on this build: kanon then runs in
    a root file system holding only what they staged plus glibc (what the
    distroless base provides), for --version, check, gen and process."""
    (bname, _, build), _ = dockerfile_stages()
    runs = [a for i, a in build if i == "RUN" and "/rootfs" in a]
    assert runs
    rootfs = str(tmp_path / "rootfs")
    for script in runs:
        script = (script.replace("/src/build/kanon", KANON).replace("/rootfs", rootfs)
                  .replace("/src/", SRC + "/"))
        r = run("bash", "-c", script)
        assert r.returncode == 0, script + "\n" + r.stderr
    # glibc, as the base image ships it: exactly what the staging left out.
    for line in run("ldd", KANON).stdout.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if not m:
            continue
        lib = m.group(1)
        real_dir = os.path.realpath(os.path.dirname(lib))
        dest = rootfs + real_dir + "/" + os.path.basename(lib)
        if not os.path.exists(dest):
            assert re.search(r"/(libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl)\.so|/ld-linux",
                             lib), "%s is neither staged nor glibc" % lib
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy(lib, dest)
            if lib.startswith("/lib64/"):
                os.makedirs(rootfs + "/lib64", exist_ok=True)
                shutil.copy(lib, rootfs + lib)
    if is_asan(KANON):
        pytest.skip("an ASan build needs its runtime's /proc access; the staging ran, the chroot run is for release builds")
    os.makedirs(rootfs + "/tmp/work")
    os.chmod(rootfs + "/tmp", 0o1777)

    def inside(*args):
        return run(shutil.which("chroot") or "/usr/sbin/chroot", rootfs, "/usr/local/bin/kanon", *args,
                   env={"KANON_KEY_FILE": "/tmp/work/master.key", "KANON_BROKERS": "127.0.0.1:9"})

    r = inside("--version")
    assert r.returncode == 0 and r.stdout.startswith("kanon "), r.stderr
    assert inside("keygen", "/tmp/work/master.key").returncode == 0
    example = "/usr/share/kanon/deploy/kanon.example.yaml"
    r = inside("check", "-c", example)
    assert r.returncode == 0, r.stderr
    r = inside("gen", "-c", example, "--count", "300", "--types", "search,access", "--out-dir", "/tmp/work")
    assert r.returncode == 0, r.stderr
    for t in ("search", "access"):
        r = inside("process", "-c", example, "--input", "/tmp/work/%s.avro" % t,
                   "--output", "/tmp/work/%s.out.avro" % t)
        assert r.returncode == 0, r.stderr
        assert re.search(r"read 300, wrote [1-9]\d*", r.stderr), r.stderr
