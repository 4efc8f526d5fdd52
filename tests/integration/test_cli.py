"""The command line as a user meets it: help, check, keygen, errors."""
import os
import stat
import subprocess

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
    os.chmod(key, 0o644)
    env = dict(os.environ, KANON_KEY_FILE=key)
    r = run("check", "-c", EXAMPLE, env=env)
    assert r.returncode == 2 and b"chmod 600" in r.stderr
    # process refuses it too, before reading any input.
    e = Env(tmp_path, "cli")
    e.env["KANON_KEY_FILE"] = key
    r = e.kanon("process", "-c", e.config, "--input", "/nonexistent", "--output", str(tmp_path / "o"), check=False)
    assert r.returncode == 1 and b"group or others" in r.stderr


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
                 "keys rotating every 24 h; removed (not pseudonymized) for minors",
                 "false or missing: the event is dropped from every output",
                 "false: no geo cell and no IP prefix in any output",
                 "DeidEvent.query: not emitted",
                 "'withheld' for sensitive text",
                 "makes the event a minor's: identifiers removed, never aggregated",
                 "no field is copied"):
        assert line in text, line
    assert text.count("role bytes\n        never emitted") == 1
    assert run("policy").returncode == 2


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
