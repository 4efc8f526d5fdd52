"""The command line as a user meets it: help, check, keygen, errors."""
import os
import re
import stat
import subprocess
import time

from conftest import KANON, SRC, Env

EXAMPLE = os.path.join(SRC, "deploy", "kanon.example.yaml")


def run(*args, env=None):
    return subprocess.run([KANON, *args], capture_output=True, env=env, timeout=60)


def test_help_and_usage_errors():
    r = run("--help")
    assert r.returncode == 0
    for cmd in (b"run", b"process", b"gen", b"demo", b"check", b"keygen"):
        assert b"  " + cmd + b" " in r.stdout
    assert run().returncode == 2
    r = run("frobnicate")
    assert r.returncode == 2 and b"unknown command" in r.stderr
    assert run("run").returncode == 2  # no -c
    assert run("run", "-c", EXAMPLE, "--bogus").returncode == 2
    r = run("frobnicate", "--bogus")
    assert r.returncode == 2 and b"unknown command 'frobnicate'" in r.stderr, r.stderr
    # Options of other commands are refused, not ignored; so are stray arguments.
    for args, opt in ((("check", "-c", EXAMPLE, "--count", "5"), b"--count"),
                      (("demo", "-c", "/nonexistent.yaml"), b"--config"),
                      (("demo", "--set", "x=1"), b"--set"),
                      (("process", "-c", EXAMPLE, "--input", "a", "--output", "b", "--until-eof"), b"--until-eof")):
        r = run(*args)
        assert r.returncode == 2 and opt + b" does not apply to " + args[0].encode() in r.stderr, (args, r.stderr)
    r = run("keys", "status", "-c", EXAMPLE, "extra")
    assert r.returncode == 2 and b"unexpected argument 'extra'" in r.stderr
    # One line says what is wrong (getopt's own message is not printed besides).
    for args, says in ((("process", "--extra"), b"kanon: unknown option '--extra'\n"),
                       (("run", "-c", EXAMPLE, "--max-messages"), b"kanon: --max-messages needs a value\n"),
                       (("check", "-c", EXAMPLE, "--role", "foo"), b"kanon: config error: --role: 'foo'")):
        r = run(*args)
        assert r.returncode == 2 and r.stderr.startswith(says), (args, r.stderr)
    # A count of nothing is a usage error, not "no limit".
    for args in (("run", "-c", EXAMPLE, "--max-messages", "0"), ("gen", "-c", EXAMPLE, "--count", "0")):
        r = run(*args)
        assert r.returncode == 2 and b"invalid value '0'" in r.stderr, (args, r.stderr)
    # COMMAND --help is that command's entry of the usage text, and the
    # options every command shares.
    full = run("--help").stdout
    # It reads in an 80-column terminal.
    assert max(len(l) for l in full.decode().splitlines()) <= 80, full
    for cmd in ("run", "process", "gen", "demo", "check", "policy", "keys", "keygen"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and r.stdout.startswith(b"usage:\n  " + cmd.encode() + b" "), (cmd, r)
        assert b"common options:" in r.stdout and b"exit status:" in r.stdout
        body = r.stdout.split(b"\ncommon options:")[0].split(b"usage:\n")[1]
        assert body in full  # the same words as kanon --help
        others = {b"  " + c + b" " for c in (b"run", b"process", b"gen", b"demo", b"check", b"keygen")}
        assert {o for o in others if o in body} == {b"  " + cmd.encode() + b" "} - ({b"  keys "} | {b"  policy "})
    assert b"keys status" in run("keys", "--help").stdout
    # ...and lists only the common options the command reads.
    assert b"--config" not in run("keygen", "--help").stdout
    demo = run("demo", "--help").stdout
    assert b"--config" not in demo and b"--set" not in demo and b"--log-level" in demo
    assert b"--set KEY=VALUE" in run("run", "--help").stdout


def test_check_masks_secrets_and_validates(tmp_path):
    key = str(tmp_path / "k")
    assert run("keygen", key).returncode == 0
    env = dict(os.environ, KANON_KEY_FILE=key)
    r = run("check", "-c", EXAMPLE, "--set", "kafka.producer.sasl.password=hunter2", env=env)
    assert r.returncode == 0, r.stderr
    assert b"hunter2" not in r.stdout + r.stderr
    assert b'sasl.password: "********"' in r.stdout
    assert b"geohash_precision: 5" in r.stdout
    # The key itself never appears.
    text = open(key).read()
    for magic in ("kanon-chain-v1 0 ", "kanon-erase-v1 "):
        secret = text.split(magic)[1].split()[0].encode()
        assert len(secret) == 64 and secret not in r.stdout + r.stderr
    r = run("check", "-c", EXAMPLE, "--set", "generalize.geohash_precision=99", env=env)
    assert r.returncode == 2 and b"generalize.geohash_precision" in r.stderr
    assert run("check", "--describe").returncode == 0
    # --describe with a config checks it all the same: the exit says whether it is valid.
    r = run("check", "-c", EXAMPLE, "--describe", "--set", "generalize.geohash_precision=99", env=env)
    assert r.returncode == 2 and b"generalize.geohash_precision" in r.stderr and b"Options" in r.stdout
    assert run("check", "-c", "/nonexistent.yaml", "--describe").returncode == 2
    assert run("check", "-c", EXAMPLE, "--describe", env=env).returncode == 0
    # A librdkafka property that kanon's guarantee sets itself is refused, not
    # shown as in effect; the value kanon sets is accepted.
    for prop, ok in (("kafka.producer.enable.idempotence=false", False),
                     ("kafka.consumer.isolation.level=read_uncommitted", False),
                     ("kafka.consumer.enable.auto.commit=true", False),
                     ("kafka.producer.enable.idempotence=true", True),
                     # the input consumer's choice, though the erasure consumer reads from the earliest
                     ("kafka.consumer.auto.offset.reset=latest", True)):
        r = run("check", "-c", EXAMPLE, "--set", prop, env=env)
        assert (r.returncode == 0) == ok, (prop, r.stderr)
        assert ok or (prop.split("=")[0].encode() + b": kanon's") in r.stderr, r.stderr
    # A metrics port another process holds would fail `run`: check says so (1).
    import socket
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        r = run("check", "-c", EXAMPLE, "--metrics-addr", "127.0.0.1:%d" % held.getsockname()[1], env=env)
        assert r.returncode == 1 and b"Address already in use" in r.stderr and r.stdout == b"", r
    # A failed check prints no config: its stdout is never mistaken for a valid one.
    r = run("check", "-c", EXAMPLE, "--set", "kafka.consumer.nosuch=1", env=env)
    assert r.returncode == 2 and r.stdout == b"", r


def test_bad_config_names_line_and_key(tmp_path):
    text = open(EXAMPLE).read().replace("geohash_precision: 5", "geohash_precision: five")
    line = text[: text.index("geohash_precision: five")].count("\n") + 1
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    r = run("check", "-c", str(p))
    assert r.returncode == 2
    assert ("bad.yaml:%d: generalize.geohash_precision" % line).encode() in r.stderr, r.stderr


def test_keygen_mode_and_refusals(tmp_path):
    key = str(tmp_path / "mine.key")
    assert run("keygen", key).returncode == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    r = run("keygen", key)
    assert r.returncode == 1 and b"never overwrites" in r.stderr
    # Kafka-only options of gen are refused with --out-dir, not ignored.
    for opt in (("--rate", "10"), ("--malformed", "3"), ("--rate", "10", "--pool", "5")):
        r = run("gen", "-c", EXAMPLE, "--out-dir", str(tmp_path / "gen"), *opt)
        assert r.returncode == 2 and b"Kafka" in r.stderr, (opt, r.stderr)
    r = run("keygen", str(tmp_path / "not-made" / "k.key"))
    assert r.returncode == 1 and b"its directory does not exist" in r.stderr, r.stderr
    os.chmod(key, 0o644)
    env = dict(os.environ, KANON_KEY_FILE=key)
    r = run("check", "-c", EXAMPLE, env=env)
    assert r.returncode == 2 and b"chmod 600" in r.stderr
    # process refuses it too, before reading any input.
    e = Env(tmp_path, "cli")
    e.env["KANON_KEY_FILE"] = key
    r = e.kanon("process", "-c", e.config, "--input", "/nonexistent", "--output", str(tmp_path / "o"), check=False)
    assert r.returncode == 2 and b"group or others" in r.stderr


def test_policy_explain_for_the_example(tmp_path):
    import json
    r = run("policy", "explain", "-c", EXAMPLE)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    # Every field of every reference schema is accounted for.
    for name in ("DeviceLog", "AccessLog", "SearchLog"):
        with open(os.path.join(SRC, "schemas", name + ".avsc")) as f:
            for fld in json.load(f)["fields"]:
                if fld["name"] == "consent":
                    for sub in ("location", "ads_personalization", "analytics"):
                        assert "\n  consent.%s " % sub in text
                else:
                    assert "\n  %s " % fld["name"] in text, fld["name"]
    # What a privacy reviewer looks for.
    for line in ("DeidEvent.phone_pid: normalized, keyed siphash pseudonym (key kind phone), "
                 "keys rotating every 24 h; never a minor's",
                 "false or missing: the event is dropped from every output",
                 "false: no geo cell and no IP prefix in any output",
                 "DeidEvent.query: not emitted",
                 "'withheld' for sensitive text",
                 "makes the event a minor's: dropped from every output, never aggregated",
                 "no field is copied"):
        assert line in text, line
    assert text.count("role bytes\n        never emitted") == 1
    assert "per UTC day (at most 24 windows of 3600 s touch one" in text
    assert run("policy").returncode == 2
    # A window that does not divide the day: a day touches up to 6 of 5 h
    # (windows and days both start at the epoch), not 4.8.
    r = run("policy", "explain", "-c", EXAMPLE, "--set", "aggregate.window=5h", "--set", "keys.epoch=never")
    assert r.returncode == 0, r.stderr
    assert "at most 6 windows of 18000 s touch one, sequential composition): epsilon = 6," in r.stdout.decode()


def test_keys_retire_shreds_old_epochs(tmp_path):
    """Retiring an epoch: its pseudonyms can no longer be produced; later
    epochs' pseudonyms are unchanged; the key material never shows."""
    import fastavro
    e = Env(tmp_path, "retire")
    d = str(tmp_path)
    e.kanon("gen", "-c", e.config, "--count", "300", "--types", "device", "--out-dir", d,
            "--start", "2026-11-02", "--span", "12h")  # key epoch 20759
    inp, out = os.path.join(d, "device.avro"), os.path.join(d, "out.avro")

    def process():
        r = e.kanon("process", "-c", e.config, "--input", inp, "--output", out)
        with open(out, "rb") as f:
            return r, [x["user_pid"] for x in fastavro.reader(f)]
    _, first = process()
    assert first and all(x is None or len(x) == 32 for x in first)
    r = e.kanon("keys", "retire", "20758", "-c", e.config)
    assert b"first usable epoch 20759 (starts 2026-11-02T00:00:00Z)" in r.stdout
    _, second = process()
    assert second == first  # later epochs keep their pseudonyms
    e.kanon("keys", "retire", "20759", "-c", e.config)
    r, third = process()
    assert third == [] and b"wrote 0," in r.stderr and b"withheld by the policy 300" in r.stderr
    r = e.kanon("keys", "status", "-c", e.config)
    assert b"first usable epoch 20760" in r.stdout
    assert stat.S_IMODE(os.stat(e.key).st_mode) == 0o600
    assert e.kanon("keys", "retire", "-c", e.config, check=False).returncode == 2
    # Retiring what is retired changes nothing, and says so; an operator's
    # narrower 0400 survives the rewrite of a later retire.
    r = e.kanon("keys", "retire", "20700", "-c", e.config)
    assert b"epoch 20700 was already retired" in r.stderr and b"first usable epoch 20760" in r.stdout
    os.chmod(e.key, 0o400)
    r = e.kanon("keys", "retire", "20760", "-c", e.config)
    assert b"first usable epoch 20761" in r.stdout
    assert stat.S_IMODE(os.stat(e.key).st_mode) == 0o400


UNROUTABLE = "kafka.brokers=10.255.255.1:9"  # any attempt to connect would hang


def test_config_errors_exit_2_before_any_network_io(tmp_path):
    key = str(tmp_path / "k")
    assert run("keygen", key).returncode == 0
    env = dict(os.environ, KANON_KEY_FILE=key)
    cases = [
        (["--set", "kafka.consumer.not.a.prop=1"], b"not.a.prop"),
        (["--set", "kafka.producer.linger.ms=notanumber"], b"linger.ms"),
        (["--set", "kafka.consumer.group.id=x"], b"kafka.group_id"),
        (["--set", "kafka.producer.acks=0"], b"acks"),
        (["--set", "kafka.producer.message.timeout.ms=600000"], b"transaction.timeout.ms"),
        (["--metrics-addr", "notaport"], b"notaport"),
    ]
    for args, want in cases:
        for cmd in ("check", "run"):
            t0 = time.monotonic()
            r = run(cmd, "-c", EXAMPLE, "--set", UNROUTABLE, *args, env=env)
            assert r.returncode == 2, (cmd, args, r.stderr)
            assert want in r.stderr, r.stderr
            assert time.monotonic() - t0 < 5, (cmd, args)
    # A key given twice, in one mapping or as one dotted path spelled twice.
    text = open(EXAMPLE).read()
    for extra, want in (("\nkeys.prf: xxh3\n", b"keys.prf: given twice in the file"),
                        ("\ngeneralize:\n  ipv4_prefix: 16\n", b"given twice")):
        p = tmp_path / "dup.yaml"
        p.write_text(text + extra)
        r = run("check", "-c", str(p), env=env)
        assert r.returncode == 2 and want in r.stderr, r.stderr
    # An error quotes what it was given (here librdkafka quotes a property
    # name back): tamed, it can neither forge a line nor drive a terminal.
    for cmd in ("check", "run"):
        r = run(cmd, "-c", EXAMPLE, "--set", "kafka.consumer.x\x1b[2J\r\nkanon: forged\u009b=1", env=env)
        assert r.returncode == 2 and b"forged" in r.stderr, r.stderr
        assert not any(c < 0x20 and c != 0x0A for c in r.stderr), r.stderr
        assert b"\nkanon: forged" not in r.stderr and b"\xc2\x9b" not in r.stderr, r.stderr


def write_key(path, first_epoch="0", chains=1):
    """A key file of kanon's format with the given first epoch."""
    hexkey = "ab" * 32
    lines = ["kanon-chain-v1 %s %s" % (first_epoch, hexkey)] * chains + ["kanon-erase-v1 " + hexkey]
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.write(fd, ("\n".join(lines) + "\n").encode())
    os.close(fd)


def test_key_file_numbers_and_kinds(tmp_path):
    key = str(tmp_path / "k")
    env = dict(os.environ, KANON_KEY_FILE=key)
    current = int(time.time()) // 86400  # keys.epoch is 1d in the example
    # Numbers out of range, epochs in the future, two chains: refused (exit 2).
    for first, chains, want in (("99999999999999999999999", 1, b"out of range"),
                                (str(current + 10), 1, b"in the future"),
                                ("0", 2, b"more than one")):
        write_key(key, first, chains)
        for args in (["check"], ["keys", "status"],
                     ["process", "--input", "/nonexistent", "--output", str(tmp_path / "o")]):
            r = run(*args, "-c", EXAMPLE, env=env)
            assert r.returncode == 2 and want in r.stderr, (args, r.stderr)
    # Retiring is bounded by the current epoch, refused at once.
    write_key(key, "0")
    t0 = time.monotonic()
    r = run("keys", "retire", "999999999999", "-c", EXAMPLE, env=env)
    assert r.returncode == 2 and b"current epoch is %d" % current in r.stderr, r.stderr
    assert time.monotonic() - t0 < 5
    r = run("keys", "status", "-c", EXAMPLE, env=env)
    assert r.returncode == 0 and b"first usable epoch 0 " in r.stdout, r.stdout
    # A Kubernetes Secret volume: key -> ..data/key, ..data -> ..<timestamp>.
    sec = tmp_path / "secret"
    (sec / "..2026_11_29").mkdir(parents=True)
    assert run("keygen", str(sec / "..2026_11_29" / "key")).returncode == 0
    os.symlink("..2026_11_29", str(sec / "..data"))
    os.symlink("..data/key", str(sec / "key"))
    r = run("check", "-c", EXAMPLE, env=dict(env, KANON_KEY_FILE=str(sec / "key")))
    assert r.returncode == 0, r.stderr
    # A FIFO is refused at once rather than read (which would block).
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo, 0o600)
    r = run("check", "-c", EXAMPLE, env=dict(env, KANON_KEY_FILE=fifo))
    assert r.returncode == 2 and b"FIFO" in r.stderr and b"keygen" not in r.stderr


WEAK = {"keys.prf=xxh3": b"keys.prf is xxh3", "keys.epoch=never": b"keys.epoch is never",
        "keys.link_kinds=true": b"keys.link_kinds", "policy.emit_scrubbed_query=true":
        b"policy.emit_scrubbed_query", "dead_letter.include_payload=true":
        b"dead_letter.include_payload", "policy.minors_in_deid=true": b"policy.minors_in_deid",
        "security.allow_core_dumps=true": b"security.allow_core_dumps",
        "aggregate.privacy.mode=k-anonymity": b"aggregate.privacy.mode is k-anonymity"}


def test_check_refuses_invalid_budget_and_warns_on_weak_one(tmp_path):
    key = str(tmp_path / "k")
    assert run("keygen", key).returncode == 0
    env = dict(os.environ, KANON_KEY_FILE=key)
    r = run("check", "-c", EXAMPLE, env=env)
    assert r.returncode == 0 and b"weakened" not in r.stderr, r.stderr
    r = run("check", "-c", EXAMPLE, "--set", "aggregate.privacy.epsilon=3", "--set",
            "aggregate.privacy.delta=1e-4", env=env)
    assert r.returncode == 0, r.stderr
    assert b"weakened: aggregate.privacy.epsilon" in r.stderr, r.stderr
    assert b"weakened: aggregate.privacy.delta" in r.stderr, r.stderr
    for bad in ("aggregate.privacy.epsilon=0", "aggregate.privacy.delta=1", "aggregate.privacy.mode=none"):
        r = run("check", "-c", EXAMPLE, "--set", bad, env=env)
        assert r.returncode == 2 and bad.split("=")[0].encode() in r.stderr, (bad, r.stderr)


def test_weak_settings_warned_once_each(tmp_path):
    key = str(tmp_path / "k")
    assert run("keygen", key).returncode == 0
    env = dict(os.environ, KANON_KEY_FILE=key)
    inp, out = str(tmp_path / "in.avro"), str(tmp_path / "out.avro")
    assert run("gen", "-c", EXAMPLE, "--count", "5", "--types", "device", "--out-dir",
               str(tmp_path), env=env).returncode == 0
    os.rename(str(tmp_path / "device.avro"), inp)
    r = run("process", "-c", EXAMPLE, "--input", inp, "--output", out, env=env)
    assert r.returncode == 0 and b"weakened" not in r.stderr, r.stderr
    sets = [a for s in WEAK for a in ("--set", s)]
    r = run("process", "-c", EXAMPLE, "--input", inp, "--output", out, *sets, env=env)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if b"weakened" in l]
    # File mode's dead letters are JSON lines that never carry the record:
    # dead_letter.include_payload weakens nothing there, and is not said.
    file_weak = {k: v for k, v in WEAK.items() if not k.startswith("dead_letter.")}
    assert len(lines) == len(file_weak), r.stderr
    for want in file_weak.values():
        assert sum(want in l for l in lines) == 1, (want, r.stderr)
    # check (for run) says every one.
    r = run("check", "-c", EXAMPLE, *sets, env=env)
    lines = [l for l in r.stderr.splitlines() if b"weakened" in l]
    assert r.returncode == 0 and len(lines) == len(WEAK), r.stderr


def _env_core_dumps_kept(key):
    """The environment of the process under test; under AddressSanitizer
    (the ASan build of the suite) the sanitizer's own disable_coredump=1
    would zero RLIMIT_CORE before kanon runs: it is turned off, so the limit
    seen is kanon's doing."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    return dict(os.environ, KANON_KEY_FILE=key,
                ASAN_OPTIONS=(asan + ":" if asan else "") + "disable_coredump=0")


def _blocked_on_fifo(tmp, extra_args, as_user):
    """Starts `kanon process` reading a FIFO (as uid 65534 when as_user) and
    returns (proc, write end) once it has opened the FIFO: it then waits in
    read, past config loading and hardening, for as long as the test wants."""
    import shutil
    fifo = os.path.join(tmp, "in.fifo")
    os.mkfifo(fifo, 0o666)
    key = os.path.join(tmp, "k")
    assert run("keygen", key).returncode == 0
    conf = os.path.join(tmp, "conf")
    os.mkdir(conf)
    shutil.copy(EXAMPLE, conf)
    shutil.copytree(os.path.join(SRC, "schemas"), os.path.join(tmp, "schemas"))
    shutil.copytree(os.path.join(SRC, "deploy", "policy"), os.path.join(conf, "policy"))
    binary = os.path.join(tmp, "kanon")
    shutil.copy(KANON, binary)
    preexec = None
    if as_user:
        for root, dirs, files in os.walk(tmp):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), 65534, 65534)
        os.chown(tmp, 65534, 65534)
        os.chmod(tmp, 0o755)

        def preexec():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
    p = subprocess.Popen([binary, "process", "-c", os.path.join(conf, "kanon.example.yaml"),
                          "--input", fifo, "--output", os.path.join(tmp, "out.avro"), *extra_args],
                         env=_env_core_dumps_kept(key), stderr=subprocess.PIPE,
                         preexec_fn=preexec)
    deadline = time.monotonic() + 30
    while True:  # a non-blocking writer succeeds once a reader has the FIFO open
        try:
            return p, os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert p.poll() is None, p.stderr.read()
            assert time.monotonic() < deadline, "kanon never opened its input"
            time.sleep(0.02)


def _core_soft_limit(pid):
    for l in open("/proc/%d/limits" % pid):
        if l.startswith("Max core file size"):
            return l.split()[4]
    raise AssertionError("no core limit in /proc/%d/limits" % pid)


def test_no_core_dumps_unless_allowed():
    """A core dump of a running kanon would hold raw records: RLIMIT_CORE is 0
    and the process is not dumpable (its /proc files then belong to root,
    whoever runs it), unless security.allow_core_dumps says otherwise."""
    import resource
    import tempfile
    as_user = os.geteuid() == 0
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))  # what kanon inherits
    try:
        for extra, dumps in (([], False), (["--set", "security.allow_core_dumps=true"], True)):
            with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
                p, w = _blocked_on_fifo(tmp, extra, as_user)
                try:
                    limit = _core_soft_limit(p.pid)
                    owner = os.stat("/proc/%d/environ" % p.pid).st_uid
                finally:
                    os.close(w)  # end of input: kanon refuses the empty file and exits
                    err = p.communicate(timeout=30)[1]
                assert p.returncode != 0 and b"Traceback" not in err
                want = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
                assert limit == (want if dumps else "0"), (extra, limit)
                if as_user:
                    assert owner == (65534 if dumps else 0), (extra, owner)
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def test_demo_runs_end_to_end():
    """The README's first command (deploy/demo.sh ends in it): `kanon demo`,
    on the embedded config and librdkafka's mock cluster, accounts for every
    input, fills the topics it says it fills, and shows no identifier it was
    given in what it shows as output."""
    r = subprocess.run([KANON, "demo"], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.decode()
    assert "every input accounted for: yes" in out, out
    for what in ("de-identified", "dead-lettered"):
        m = re.search(what + r"\s+(\d+) \(topic \S+ holds (\d+)\)", out)
        assert m and int(m.group(1)) > 0 and m.group(1) == m.group(2), (what, out)
    m = re.search(r"aggregate rows released: (\d+) .* window summaries: (\d+)", out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, out
    shown = [l.split(None, 2) for l in out.splitlines() if l.startswith("  in  ")]
    raw = {(field, v.strip()) for _, field, v in shown
           if field in ("user_id", "device_id", "phone", "email", "cookie_id", "ip") and len(v.strip()) > 4}
    assert len(raw) >= 4, shown  # each log shows a record that reached the output
    outs = "\n".join(l for l in out.splitlines() if l.startswith("  out "))
    assert outs.count("time_bucket=") == 3, out
    for field, v in raw:  # as given, and as the normalizer would write it
        forms = {v, v.lower()}
        if field == "phone":
            forms.add(re.sub(r"\D", "", v)[-8:])
        for form in forms:
            assert form not in outs, (field, v, form)
