"""The server-side `portal` command: keys, demo-key, serve; and the config it reads.

`portal db upgrade` is tested in test_migrations.py, the configuration in test_config.py.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from portal import cli, config, envelope, keyfile
from portal.keys import load_manifest

SHIPPED = config.PROJECT_ROOT / "keys" / "manifest.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def restore_logging():
    """`portal serve` configures the process's logging; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo") / "keys"
    assert cli.main(["demo-key", "--dir", str(directory)]) == 0
    return directory


def test_shipped_manifest_has_no_key_so_the_portal_fails_closed(capsys):
    code, _, err = run(capsys, "keys", "--manifest", str(SHIPPED))
    assert code == 1
    assert "portal: error: the key manifest has no active recipient key" in err
    assert "portal: hint:" in err


def test_serve_needs_an_interface(capsys):
    code, _, err = run(capsys, "serve")
    assert code == 2 and "portal: error:" in err and "serve source" in err


def test_serve_refuses_to_start_without_a_secret(capsys, monkeypatch, demo_dir):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    monkeypatch.setenv("PORTAL_KEYS", str(demo_dir))
    code, out, err = run(capsys, "serve", "source", "--port", "1")
    assert code == 1
    assert out == ""
    assert "portal: error: PORTAL_SECRET_KEY is not set" in err
    assert "portal: hint: Generate one with" in err


def test_serve_refuses_a_weak_secret(capsys, monkeypatch):
    monkeypatch.setenv("PORTAL_SECRET_KEY", "changeme")
    code, _, err = run(capsys, "serve", "source")
    assert code == 1 and "PORTAL_SECRET_KEY is too short" in err


def test_keys_reads_portal_keys_and_refuses_a_missing_manifest(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PORTAL_KEYS", str(tmp_path / "absent.json"))
    code, _, err = run(capsys, "keys")
    assert code == 1
    assert "cannot read the key manifest" in err
    assert "PORTAL_KEYS" in err


def test_keys_accepts_the_manifest_directory(capsys, monkeypatch, demo_dir):
    monkeypatch.setenv("PORTAL_KEYS", str(demo_dir))
    code, out, _ = run(capsys, "keys")
    assert code == 0
    assert "DEMO" in out and "fingerprint" in out


def test_demo_key_is_private_labelled_and_idempotent(capsys, demo_dir):
    assert stat.S_IMODE(demo_dir.stat().st_mode) == 0o700
    for name in ("manifest.json", "demo-secret.key", "demo-passphrase.txt"):
        assert stat.S_IMODE((demo_dir / name).stat().st_mode) == 0o600
    manifest = load_manifest(demo_dir / "manifest.json")
    (key,) = manifest.active
    assert key.demo and key.label.startswith("DEMO")
    before = (demo_dir / "demo-secret.key").read_bytes()
    code, out, _ = run(capsys, "demo-key", "--dir", str(demo_dir))
    assert code == 0
    assert (demo_dir / "demo-secret.key").read_bytes() == before
    assert key.fingerprint in out and "NOT FOR REAL REPORTS" in out


def test_demo_secret_key_opens_what_is_sealed_to_the_demo_manifest(demo_dir):
    (key,) = load_manifest(demo_dir / "manifest.json").require_active()
    sealed = envelope.seal(b"demo report", [key.public_key], envelope.SealPath.SERVER)
    passphrase = (demo_dir / "demo-passphrase.txt").read_text().strip()
    secret = keyfile.load(demo_dir / "demo-secret.key", passphrase)
    assert envelope.open_bytes(sealed, [secret.private_key]) == b"demo report"


def test_demo_key_never_takes_over_a_real_manifest(capsys, tmp_path, demo_dir):
    real = json.loads((demo_dir / "manifest.json").read_text())
    del real["recipients"][0]["demo"]
    del real["signing_keys"][0]["demo"]
    (tmp_path / "manifest.json").write_text(json.dumps(real))
    code, _, err = run(capsys, "demo-key", "--dir", str(tmp_path))
    assert code == 1
    assert "is not a demo manifest" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "a manifest is a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"version": 2, "recipients": []}', "version 2 is not supported"),
    ],
)
def test_bad_manifests_get_an_error_and_a_hint(capsys, tmp_path, content, message):
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    code, _, err = run(capsys, "keys", "--manifest", str(path))
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("portal: error:") and message in lines[0]
    assert lines[1].startswith("portal: hint:")
    assert "Traceback" not in err


def test_usage(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Example:" in out
    for command in ("keys", "demo-key", "db", "serve"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "Example:" in out
    code, _, err = run(capsys)
    assert code == 2 and "usage: portal" in err
    code, _, err = run(capsys, "launch")
    assert code == 2 and "portal: error:" in err
    code, _, err = run(capsys, "demo-key")
    assert code == 2 and "--dir" in err


def test_config_defaults_and_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = config.from_env({})
    assert default.keys_manifest == SHIPPED
    assert default.data_dir == config.PROJECT_ROOT / "instance" / "data"
    custom = config.from_env({"PORTAL_KEYS": "k.json", "PORTAL_DATA_DIR": " /srv/d "})
    assert custom.keys_manifest == tmp_path / "k.json"
    assert custom.data_dir == Path("/srv/d")
    with pytest.raises(AttributeError):
        custom.data_dir = tmp_path  # type: ignore[misc]
