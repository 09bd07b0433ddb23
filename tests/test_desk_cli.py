"""``portal-desk``: keygen, seal, decrypt and inspect, in-process and as the real console script.

Real crypto throughout (keys come from the session fixture in conftest.py).
Plaintext is compared by digest so that a failing test does not print it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from portal import envelope, keyfile
from portal.desk import output, passphrase, streams
from portal.desk.cli import main
from portal.keys import parse_entry

if TYPE_CHECKING:
    from conftest import DeskKey

PORTAL_DESK = str(Path(sys.executable).with_name("portal-desk"))
WEB_STACK = {"flask", "werkzeug", "sqlalchemy", "jinja2", "flask_wtf", "alembic"}
BIG = 200_000  # four 64 KiB chunks


@dataclass
class Result:
    code: int
    out: bytes
    err: str


Desk = Callable[..., Result]


@pytest.fixture()
def desk(capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> Desk:
    """Run ``main()`` in-process; ``stdin=`` feeds bytes as a non-seekable-looking stream."""

    def run(*argv: object, stdin: bytes | None = None) -> Result:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main([str(a) for a in argv])
        out, err = capsysbinary.readouterr()
        return Result(code, out, err.decode())

    return run


def run_desk(*argv: object, stdin: Any = subprocess.DEVNULL, **kwargs: Any) -> Result:
    """Run the installed ``portal-desk`` console script."""
    feed = stdin if isinstance(stdin, bytes) else None
    proc = subprocess.run(
        [PORTAL_DESK, *map(str, argv)],
        input=feed,
        stdin=None if feed is not None else stdin,
        stdout=kwargs.pop("stdout", subprocess.PIPE),
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
        **kwargs,
    )
    return Result(proc.returncode, proc.stdout or b"", proc.stderr.decode())


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_error(result: Result, *fragments: str, code: int = 1) -> None:
    """Exit status, no traceback, and every error line followed by a non-empty hint line."""
    assert result.code == code, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("portal-desk: error: ")]
    assert errors, result.err
    for i in errors:
        assert lines[i + 1].startswith("portal-desk: hint: "), result.err
        assert len(lines[i + 1]) > len("portal-desk: hint: ") + 5
    for fragment in fragments:
        assert fragment in result.err


def keygen_args(label: str, key: Path, passphrase_file: Path) -> list[object]:
    return ["keygen", "--label", label, "--secret-key", key, "--passphrase-file", passphrase_file]


def decrypt_args(key: DeskKey) -> list[object]:
    return ["decrypt", "--secret-key", key.secret_file, "--passphrase-file", key.passphrase_file]


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture()
def sealed(tmp_path: Path, desk_keys: tuple[DeskKey, ...]) -> tuple[Path, bytes]:
    """An envelope of BIG random bytes sealed to Desk A, alone in its directory."""
    data = os.urandom(BIG)
    path = tmp_path / "report.sealed"
    public_key = desk_keys[0].recipient.public_key
    path.write_bytes(envelope.seal(data, [public_key], envelope.SealPath.DESK))
    return path, data


# --- keygen ---------------------------------------------------------------------------


def test_keygen_writes_a_0600_key_file_and_prints_its_entry(desk: Desk, tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("a long enough passphrase\n", encoding="utf-8")
    key = tmp_path / "desk.key"
    result = desk(*keygen_args("Desk 2026", key, tmp_path / "pass"))
    assert result.code == 0, result.err
    entry = parse_entry(json.loads(result.out))
    assert entry.label == "Desk 2026"
    assert entry.status == "active" and not entry.demo
    assert entry.created == dt.date.today()
    assert entry.fingerprint in result.err
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    unlocked = keyfile.load(key, "a long enough passphrase")
    assert bytes(unlocked.public_key) == entry.public_key
    assert listing(tmp_path) == ["desk.key", "pass"]


def test_keygen_refuses_an_existing_file(desk: Desk, desk_keys: tuple[DeskKey, ...]) -> None:
    key = desk_keys[0]
    before = key.secret_file.read_bytes()
    result = desk(*keygen_args("X", key.secret_file, key.passphrase_file))
    assert_error(result, "already exists")
    assert result.out == b""
    assert key.secret_file.read_bytes() == before


@pytest.mark.parametrize("label", ["", " padded ", "new\nline"])
def test_keygen_refuses_a_bad_label(desk: Desk, tmp_path: Path, label: str) -> None:
    (tmp_path / "pass").write_text("a long enough passphrase\n", encoding="utf-8")
    result = desk(*keygen_args(label, tmp_path / "k", tmp_path / "pass"))
    assert_error(result, "label")
    assert listing(tmp_path) == ["pass"]


def test_keygen_refuses_a_short_passphrase(desk: Desk, tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("too short\nsecond line is ignored\n", encoding="utf-8")
    result = desk(*keygen_args("X", tmp_path / "k", tmp_path / "pass"))
    assert_error(result, "at least 12 characters")
    assert listing(tmp_path) == ["pass"]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (["twelve chars ok", "twelve chars ok"], None),
        (["twelve chars ok", "twelve chars OK"], "the two passphrases differ"),
        (["short", "short"], "at least 12 characters"),
    ],
)
def test_keygen_prompts_twice(
    desk: Desk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    typed: list[str],
    message: str | None,
) -> None:
    prompts: list[str] = []

    def fake_ask(prompt: str) -> str:
        prompts.append(prompt)
        return typed[len(prompts) - 1]

    monkeypatch.setattr(passphrase, "ask", fake_ask)
    result = desk("keygen", "--label", "Prompted", "--secret-key", tmp_path / "k")
    if message is None:
        assert result.code == 0, result.err
        assert len(prompts) == 2 and "12 characters" in prompts[0]
        assert keyfile.load(tmp_path / "k", typed[0]).label == "Prompted"
    else:
        assert_error(result, message)
        assert listing(tmp_path) == []


@contextlib.contextmanager
def _controlling_tty() -> Iterator[tuple[int, Callable[[], None]]]:
    """A pty master, and a preexec hook that makes its slave the child's controlling terminal."""
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    try:
        yield master, lambda: os.close(os.open(name, os.O_RDWR))
    finally:
        os.close(slave)
        os.close(master)


def _expect(master: int, text: bytes, timeout: float = 20) -> None:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {text!r} on the terminal (saw {seen[-200:]!r})"
        seen += os.read(master, 4096)


def test_keygen_and_decrypt_ask_on_the_terminal_not_on_stdin(
    tmp_path: Path, desk_keys: tuple[DeskKey, ...]
) -> None:
    """Passphrases are typed on /dev/tty, even when standard input carries the envelope."""
    key, typed = tmp_path / "tty.key", b"typed on the terminal\n"
    with _controlling_tty() as (master, hook):
        child = subprocess.Popen(
            [PORTAL_DESK, "keygen", "--label", "Typed", "--secret-key", str(key)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=hook,
        )
        _expect(master, b"New passphrase")
        os.write(master, typed)
        _expect(master, b"same passphrase again")
        os.write(master, typed)
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    entry = parse_entry(json.loads(out))
    sealed = envelope.seal(b"opened", [entry.public_key], envelope.SealPath.DESK)
    (tmp_path / "msg.sealed").write_bytes(sealed)
    with _controlling_tty() as (master, hook), (tmp_path / "msg.sealed").open("rb") as stdin:
        child = subprocess.Popen(
            [PORTAL_DESK, "decrypt", "--secret-key", str(key), "-o", str(tmp_path / "msg")],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=hook,
        )
        _expect(master, b"Passphrase for 'Typed'")
        os.write(master, typed)
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert (tmp_path / "msg").read_bytes() == b"opened"


def test_without_a_terminal_a_passphrase_file_is_required(
    tmp_path: Path, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...]
) -> None:
    result = run_desk(
        "keygen", "--label", "X", "--secret-key", tmp_path / "k", start_new_session=True
    )
    assert_error(result, "no terminal", "--passphrase-file")
    result = run_desk(
        "decrypt",
        "--secret-key",
        desk_keys[0].secret_file,
        "-o",
        tmp_path / "out",
        sealed[0],
        start_new_session=True,
    )
    assert_error(result, "no terminal")
    assert listing(tmp_path) == ["report.sealed"]


# --- seal and decrypt round trips -----------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 65528, 65529, BIG])
def test_round_trip_through_files(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...], size: int
) -> None:
    data = os.urandom(size)
    (tmp_path / "plain").write_bytes(data)
    key = desk_keys[0]
    result = desk("seal", "--to", key.public_file, "-o", tmp_path / "env", tmp_path / "plain")
    assert result.code == 0 and result.out == b"", result.err
    assert stat.S_IMODE((tmp_path / "env").stat().st_mode) == 0o600
    header = envelope.inspect(io.BytesIO((tmp_path / "env").read_bytes()))
    assert header.path is envelope.SealPath.DESK
    assert header.padded_size == envelope.padded_size(size)
    result = desk(*decrypt_args(key), "-o", tmp_path / "out", tmp_path / "env")
    assert result.code == 0 and result.out == b"" and result.err == "", result.err
    assert digest((tmp_path / "out").read_bytes()) == digest(data)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o600
    assert listing(tmp_path) == ["env", "out", "plain"]


def test_round_trip_through_stdin_and_stdout_in_process(
    desk: Desk, desk_keys: tuple[DeskKey, ...]
) -> None:
    data = os.urandom(BIG)
    sealed = desk("seal", "--to", desk_keys[1].public_file, stdin=data)
    assert sealed.code == 0, sealed.err
    opened = desk(*decrypt_args(desk_keys[1]), stdin=sealed.out)
    assert opened.code == 0, opened.err
    assert digest(opened.out) == digest(data)


def test_round_trip_through_pipes_with_the_console_script(
    tmp_path: Path, desk_keys: tuple[DeskKey, ...]
) -> None:
    data = os.urandom(BIG)
    key = desk_keys[2]
    sealed = run_desk("seal", "--to", key.public_file, "-", stdin=data)
    assert sealed.code == 0, sealed.err
    assert envelope.inspect(io.BytesIO(sealed.out)).padded_size == envelope.padded_size(BIG)
    opened = run_desk(*decrypt_args(key), "-", stdin=sealed.out)  # a pipe: buffered, two passes
    assert opened.code == 0, opened.err
    assert digest(opened.out) == digest(data)
    (tmp_path / "env").write_bytes(sealed.out)
    with (tmp_path / "env").open("rb") as redirected:  # a regular file on stdin: seeks
        opened = run_desk(*decrypt_args(key), stdin=redirected)
    assert digest(opened.out) == digest(data)
    piped_to_file = run_desk(*decrypt_args(key), "-o", tmp_path / "out", stdin=sealed.out)
    assert piped_to_file.code == 0, piped_to_file.err
    assert digest((tmp_path / "out").read_bytes()) == digest(data)


def test_python_dash_m_runs_the_same_tool(desk_keys: tuple[DeskKey, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "portal.desk", "--help"], capture_output=True, check=False
    )
    assert proc.returncode == 0 and b"Example:" in proc.stdout


def test_three_recipients_each_decrypt(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...], desk_manifest: Path
) -> None:
    data = os.urandom(5000)
    (tmp_path / "plain").write_bytes(data)
    to = [arg for key in desk_keys for arg in ("--to", key.public_file)]
    assert desk("seal", *to, "-o", tmp_path / "env", tmp_path / "plain").code == 0
    for key in desk_keys:
        opened = desk(*decrypt_args(key), tmp_path / "env")
        assert opened.code == 0, opened.err
        assert digest(opened.out) == digest(data)
    report = json.loads(
        desk("inspect", "--json", "--manifest", desk_manifest, tmp_path / "env").out
    )
    assert [r["label"] for r in report["recipients"]] == ["Desk A", "Desk B", "Desk C"]


def test_to_a_manifest_seals_to_its_active_keys_once_each(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...], desk_manifest: Path
) -> None:
    (tmp_path / "plain").write_bytes(b"x" * 100)
    a = desk_keys[0].public_file
    result = desk(
        "seal",
        "--to",
        a,
        "--to",
        desk_manifest,
        "--to",
        a,
        "-o",
        tmp_path / "env",
        tmp_path / "plain",
    )
    assert result.code == 0, result.err
    header = envelope.inspect(io.BytesIO((tmp_path / "env").read_bytes()))
    assert set(header.key_ids) == {k.recipient.key_id for k in desk_keys}
    assert len(header.key_ids) == 3


def test_retired_keys_are_not_sealed_to(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...]
) -> None:
    entries = [k.recipient.to_json() for k in desk_keys]
    entries[1]["status"] = "retired"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "recipients": entries}), encoding="utf-8")
    (tmp_path / "plain").write_bytes(b"x")
    assert desk("seal", "--to", manifest, "-o", tmp_path / "env", tmp_path / "plain").code == 0
    assert_error(desk(*decrypt_args(desk_keys[1]), tmp_path / "env"), "not sealed to")
    text = desk("inspect", "--manifest", manifest, tmp_path / "env").out.decode()
    assert "recipients:   2" in text and "Desk B" not in text
    (tmp_path / "b.pub").write_text(json.dumps(entries[1]), encoding="utf-8")
    assert_error(desk("seal", "--to", tmp_path / "b.pub", tmp_path / "plain"), "retired")


def test_demo_and_real_keys_are_never_mixed(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...]
) -> None:
    demo = {**desk_keys[1].recipient.to_json(), "demo": True}
    (tmp_path / "demo.pub").write_text(json.dumps(demo), encoding="utf-8")
    (tmp_path / "plain").write_bytes(b"x")
    result = desk(
        "seal",
        "--to",
        tmp_path / "demo.pub",
        "--to",
        desk_keys[0].public_file,
        "-o",
        tmp_path / "env",
        tmp_path / "plain",
    )
    assert_error(result, "mix demo keys and real keys")
    assert listing(tmp_path) == ["demo.pub", "plain"]
    result = desk("seal", "--to", tmp_path / "demo.pub", "-o", tmp_path / "env", tmp_path / "plain")
    assert result.code == 0 and "demo key" in result.err


def test_several_secret_keys_unlock_only_the_matching_one(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...]
) -> None:
    a, c = desk_keys[0], desk_keys[2]
    (tmp_path / "env").write_bytes(envelope.seal(b"for C", [c.recipient.public_key], 3))
    result = desk(
        "decrypt",
        "--secret-key",
        a.secret_file,
        "--secret-key",
        c.secret_file,
        "--passphrase-file",
        c.passphrase_file,
        tmp_path / "env",
    )
    assert result.code == 0, result.err
    assert result.out == b"for C"


# --- decrypt failures: exit 1, a hint, and never any plaintext -----------------------


def test_wrong_key_needs_no_passphrase_and_writes_nothing(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...]
) -> None:
    path, _ = sealed
    result = desk(
        "decrypt", "--secret-key", desk_keys[1].secret_file, "-o", path.with_name("out"), path
    )
    assert_error(result, "was not sealed to the secret key given", envelope.NoMatchingKey.hint)
    assert result.out == b""
    assert listing(path.parent) == ["report.sealed"]


def test_wrong_passphrase(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...]
) -> None:
    path, _ = sealed
    result = desk(
        "decrypt",
        "--secret-key",
        desk_keys[0].secret_file,
        "--passphrase-file",
        desk_keys[1].passphrase_file,
        "-o",
        path.with_name("out"),
        path,
    )
    assert_error(result, "wrong passphrase, or the key file was altered")
    assert listing(path.parent) == ["report.sealed"]


def _flip_last_chunk(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[-5] ^= 0x01
    return bytes(damaged)


DAMAGES: dict[str, tuple[Callable[[bytes], bytes], str, str]] = {
    "tampered": (
        _flip_last_chunk,
        "chunk 4 of 4 failed authentication",
        envelope.AuthenticationFailed.hint,
    ),
    "truncated": (lambda d: d[:-100], "cut short", envelope.TruncatedEnvelope.hint),
    "extended": (lambda d: d + b"\0", "extra bytes", envelope.MalformedEnvelope.hint),
    "empty": (lambda d: b"", "the input is empty", envelope.NotAnEnvelope.hint),
    "version 2": (
        lambda d: b"\x02" + d[1:],
        "version 2 is not supported",
        envelope.UnsupportedVersion.hint,
    ),
    "not an envelope": (
        lambda d: b"Dear OHCHR, " * 20,
        "not a portal envelope",
        envelope.NotAnEnvelope.hint,
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_envelopes_write_no_file_and_no_temp_file(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...], damage: str
) -> None:
    path, _ = sealed
    change, message, hint = DAMAGES[damage]
    path.write_bytes(change(path.read_bytes()))
    result = desk(*decrypt_args(desk_keys[0]), "-o", path.with_name("out"), path)
    assert_error(result, message, hint)
    assert result.out == b""
    assert listing(path.parent) == ["report.sealed"]
    if damage != "tampered":  # inspect needs no key, so it cannot see a flipped bit
        assert_error(desk("inspect", path), hint)


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_damaged_envelopes_put_nothing_on_stdout(
    sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...], damage: str
) -> None:
    """Earlier chunks authenticate, yet not one byte of them reaches standard output."""
    path, _ = sealed
    change, message, hint = DAMAGES[damage]
    damaged = change(path.read_bytes())
    path.write_bytes(damaged)
    from_file = run_desk(*decrypt_args(desk_keys[0]), path)
    from_pipe = run_desk(*decrypt_args(desk_keys[0]), stdin=damaged)
    for result in (from_file, from_pipe):
        assert_error(result, message, hint)
        assert result.out == b""


def test_interrupted_decrypt_cleans_up_in_process(
    desk: Desk,
    sealed: tuple[Path, bytes],
    desk_keys: tuple[DeskKey, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C after plaintext reached the temporary file: exit 130, nothing left behind."""
    path, _ = sealed
    real_open_stream = envelope.open_stream
    written: list[int] = []

    class Interrupting(io.RawIOBase):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def write(self, data: Any) -> int:
            written.append(self.inner.write(data))
            raise KeyboardInterrupt

    def open_then_interrupt(src: Any, dst: Any, identities: Any, **kw: Any) -> envelope.Header:
        return real_open_stream(src, Interrupting(dst), identities, **kw)

    monkeypatch.setattr(envelope, "open_stream", open_then_interrupt)
    result = desk(*decrypt_args(desk_keys[0]), "-o", path.with_name("out"), path)
    assert_error(result, "interrupted", code=130)
    assert written and written[0] > 0
    assert listing(path.parent) == ["report.sealed"]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_decrypt_removes_the_partial_output(
    tmp_path: Path, desk_keys: tuple[DeskKey, ...], signum: int, code: int
) -> None:
    key = desk_keys[0]
    # Three MiB: the decrypter works in batches of up to 1 MiB, so half of this
    # is enough for plaintext to reach the temporary file before the stall.
    content = os.urandom(3 << 20)
    data = envelope.seal(content, [key.recipient.public_key], envelope.SealPath.DESK)
    child = subprocess.Popen(
        [PORTAL_DESK, *map(str, decrypt_args(key)), "-o", str(tmp_path / "out")],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stdin is not None and child.stderr is not None
    child.stdin.write(data[: len(data) // 2])  # then stall, like a slow USB stick
    child.stdin.flush()
    deadline = time.monotonic() + 20
    while not any(p.stat().st_size for p in tmp_path.glob(".portal-desk-*")):
        assert time.monotonic() < deadline and child.poll() is None, "no partial output appeared"
        time.sleep(0.02)
    child.send_signal(signum)
    assert child.wait(timeout=20) == code
    err = child.stderr.read().decode()
    child.stdin.close()
    child.stderr.close()
    assert_error(Result(code, b"", err), "interrupted", code=code)
    assert listing(tmp_path) == []


# --- never overwrite the input, a key, or an existing file ----------------------------


@pytest.mark.parametrize("alias", ["same path", "hard link", "symlink"])
@pytest.mark.parametrize("command", ["seal", "decrypt"])
def test_output_may_not_be_the_input(
    desk: Desk,
    sealed: tuple[Path, bytes],
    desk_keys: tuple[DeskKey, ...],
    alias: str,
    command: str,
) -> None:
    path, _ = sealed
    before = path.read_bytes()
    target = path
    if alias == "hard link":
        target = path.with_name("hard")
        os.link(path, target)
    elif alias == "symlink":
        target = path.with_name("soft")
        target.symlink_to(path.name)
    first = (
        ["seal", "--to", desk_keys[0].public_file]
        if command == "seal"
        else decrypt_args(desk_keys[0])
    )
    result = desk(*first, "--force", "-o", target, path)
    assert_error(result, "refusing to overwrite the input")
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(path.parent) if p.startswith(".portal-desk-")]


def test_decrypt_never_overwrites_a_key_or_passphrase_file(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...]
) -> None:
    path, _ = sealed
    key = desk_keys[0]
    for protected in (key.secret_file, key.passphrase_file):
        before = protected.read_bytes()
        result = desk(*decrypt_args(key), "--force", "-o", protected, path)
        assert_error(result, "refusing to overwrite the")
        assert protected.read_bytes() == before


def test_existing_output_needs_force(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...]
) -> None:
    path, data = sealed
    out = path.with_name("out")
    out.write_bytes(b"keep me")
    assert_error(desk(*decrypt_args(desk_keys[0]), "-o", out, path), "already exists", "--force")
    assert out.read_bytes() == b"keep me"
    assert desk(*decrypt_args(desk_keys[0]), "--force", "-o", out, path).code == 0
    assert digest(out.read_bytes()) == digest(data)
    assert listing(path.parent) == ["out", "report.sealed"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "No such file or directory"),
        ("directory", "Is a directory"),
    ],
)
def test_unusable_input_files(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...], make: str, message: str
) -> None:
    target = tmp_path / "in"
    if make == "directory":
        target.mkdir()
    out = ["-o", tmp_path / "o"]
    assert_error(desk(*decrypt_args(desk_keys[0]), *out, target), message)
    assert_error(desk("seal", "--to", desk_keys[0].public_file, *out, target), message)
    assert_error(desk("inspect", target), message)
    assert_error(desk("decrypt", "--secret-key", target, *out, target), message)
    assert_error(desk("seal", "--to", target, *out, target), message)


def test_unusable_outputs(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...]
) -> None:
    path, _ = sealed
    args = decrypt_args(desk_keys[0])
    assert_error(desk(*args, "-o", path.parent / "no" / "such" / "dir", path), "No such file")
    assert_error(desk(*args, "--force", "-o", path.parent, path), "is a directory")
    assert listing(path.parent) == ["report.sealed"]


def test_key_files_given_the_wrong_way_round(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    path, _ = sealed
    key = desk_keys[0]
    assert_error(
        desk("decrypt", "--secret-key", key.public_file, path),
        "not a reprisals-portal secret key file",
    )
    assert_error(
        desk("seal", "--to", key.secret_file, "-o", tmp_path / "x", path),
        "is a secret key file, not a public key",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[" * 200_000 + "]" * 200_000, "JSON"),
        ('{"version": ' + "9" * 5000 + "}", "JSON"),
        ('{"version": 1, "recipients": [], "version": 1}', "repeats a field"),
        ("[]", "not a JSON object"),
        ("x" * (1 << 20) + "x", "larger than 1 MiB"),
    ],
)
def test_hostile_public_key_files(
    desk: Desk, sealed: tuple[Path, bytes], tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "hostile.pub").write_text(text, encoding="utf-8")
    assert_error(desk("seal", "--to", tmp_path / "hostile.pub", sealed[0]), message)
    assert_error(desk("inspect", "--manifest", tmp_path / "hostile.pub", sealed[0]), message)


def test_a_hostile_key_file_fails_fast(
    desk: Desk, sealed: tuple[Path, bytes], desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    """A crafted memory cost is refused before Argon2 could allocate it."""
    doc = json.loads(desk_keys[0].secret_file.read_text(encoding="utf-8"))
    doc["kdf"]["memory_cost_kib"] = 1 << 32
    hostile = tmp_path / "hostile.key"
    hostile.write_text(json.dumps(doc), encoding="utf-8")
    started = time.monotonic()
    result = desk(
        "decrypt",
        "--secret-key",
        hostile,
        "--passphrase-file",
        desk_keys[0].passphrase_file,
        sealed[0],
    )
    assert time.monotonic() - started < 2
    assert_error(result, "memory_cost_kib must be an integer from 65536 to 1048576")


def test_piped_input_over_the_memory_cap_is_refused(
    desk: Desk, desk_keys: tuple[DeskKey, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "MEMORY_CAP", 1000)
    result = desk("seal", "--to", desk_keys[0].public_file, stdin=b"x" * 1001)
    assert_error(result, "standard input holds more than 1000 bytes", "file's name")
    assert result.out == b""
    sealed = envelope.seal(b"x" * 2000, [desk_keys[0].recipient.public_key], 3)
    result = desk(*decrypt_args(desk_keys[0]), stdin=sealed)
    assert_error(result, "standard input holds more than 1000 bytes", "-o FILE")
    assert result.out == b""


# --- terminals --------------------------------------------------------------------------


def _run_on_pty(*argv: object) -> tuple[Result, bytes]:
    """Run the console script with a pty as standard output; returns what reached it."""
    master, slave = pty.openpty()
    try:
        result = run_desk(*argv, stdout=slave)
    finally:
        os.close(slave)
    shown = b""
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return result, shown


def test_plaintext_goes_to_a_terminal_only_with_the_terminal_flag(
    tmp_path: Path, desk_keys: tuple[DeskKey, ...]
) -> None:
    key = desk_keys[0]
    env = tmp_path / "env"
    env.write_bytes(envelope.seal(b"shown-on-screen", [key.recipient.public_key], 3))
    refused, shown = _run_on_pty(*decrypt_args(key), env)
    assert_error(refused, "refusing to write the decrypted plaintext to the terminal", "--terminal")
    assert shown == b""
    allowed, shown = _run_on_pty(*decrypt_args(key), "--terminal", env)
    assert allowed.code == 0, allowed.err
    assert shown == b"shown-on-screen"


def test_seal_never_writes_binary_to_a_terminal(
    tmp_path: Path, desk_keys: tuple[DeskKey, ...]
) -> None:
    (tmp_path / "plain").write_bytes(b"x")
    refused, shown = _run_on_pty("seal", "--to", desk_keys[0].public_file, tmp_path / "plain")
    assert_error(refused, "refusing to write an envelope (binary data) to the terminal")
    assert shown == b""


# --- inspect ----------------------------------------------------------------------------


def test_inspect_text_json_and_manifest(
    desk: Desk, tmp_path: Path, desk_keys: tuple[DeskKey, ...], desk_manifest: Path
) -> None:
    a, b = desk_keys[0].recipient, desk_keys[1].recipient
    env = tmp_path / "env"
    env.write_bytes(envelope.seal(os.urandom(BIG), [a.public_key, b.public_key], 3))
    total = env.stat().st_size
    plain = desk("inspect", env)
    assert plain.code == 0, plain.err
    text = plain.out.decode()
    for fragment in (
        "version 1",
        "sealed by:    desk",
        "padded size:  200704 bytes",
        "chunks:       4",
        f"total size:   {total} bytes",
        "recipients:   2",
        a.key_id.hex(),
        b.key_id.hex(),
    ):
        assert fragment in text
    assert "Desk A" not in text
    report = json.loads(desk("inspect", "--json", env).out)
    assert report == {
        "version": 1,
        "sealed_by": "desk",
        "padded_size": 200704,
        "chunk_count": 4,
        "total_size": total,
        "recipients": [
            {"key_id": a.key_id.hex(), "label": None, "fingerprint": None},
            {"key_id": b.key_id.hex(), "label": None, "fingerprint": None},
        ],
    }
    named = desk("inspect", "--manifest", desk_manifest, env).out.decode()
    assert f"Desk A  (fingerprint {a.fingerprint})" in named
    assert f"Desk B  (fingerprint {b.fingerprint})" in named
    one = json.loads(desk("inspect", "--json", "--manifest", desk_keys[1].public_file, env).out)
    assert [r["label"] for r in one["recipients"]] == [None, "Desk B"]
    piped = run_desk("inspect", "--json", stdin=env.read_bytes())
    assert json.loads(piped.out) == report


# --- usage ------------------------------------------------------------------------------


def test_help_lists_the_commands_with_a_worked_example(desk: Desk) -> None:
    result = desk("--help")
    assert result.code == 0 and result.err == ""
    text = result.out.decode()
    for command in ("keygen", "seal", "decrypt", "inspect"):
        assert f"portal-desk {command} " in text
    example = text[text.index("Example:") :]
    for step in ("portal-desk keygen", "portal-desk seal", "portal-desk decrypt"):
        assert step in example
    assert desk("decrypt", "-h").out.decode() == text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no command given"),
        (["frobnicate"], "invalid choice"),
        (["seal"], "--to"),
        (["decrypt", "x"], "--secret-key"),
        (["seal", "--to"], "expected one argument"),
        (["inspect", "a", "b"], "unrecognized arguments"),
        (["decrypt", "--secret", "k"], "--secret-key"),  # no abbreviations
    ],
)
def test_usage_errors_exit_2_with_the_usage_text(desk: Desk, argv: list[str], message: str) -> None:
    result = desk(*argv)
    assert_error(result, message, "portal-desk --help", code=2)
    assert "Example:" in result.err
    assert result.out == b""


def test_the_desk_imports_no_web_stack(tmp_path: Path, desk_keys: tuple[DeskKey, ...]) -> None:
    """Run every command in a fresh interpreter and list the modules it loaded."""
    key = desk_keys[0]
    (tmp_path / "plain").write_bytes(b"report")
    script = f"""
import sys
from portal.desk.cli import main
d = {str(tmp_path)!r}
assert main(["keygen", "--label", "L", "--secret-key", d + "/k", "--passphrase-file",
             {str(key.passphrase_file)!r}]) == 0
assert main(["seal", "--to", {str(key.public_file)!r}, "-o", d + "/e", d + "/plain"]) == 0
assert main(["inspect", "--manifest", {str(key.public_file)!r}, d + "/e"]) == 0
assert main(["decrypt", "--secret-key", {str(key.secret_file)!r}, "--passphrase-file",
             {str(key.passphrase_file)!r}, "-o", d + "/o", d + "/e"]) == 0
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}})), file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    loaded = set(proc.stderr.decode().strip().splitlines()[-1].split(","))
    assert "portal" in loaded and "nacl" in loaded
    assert not loaded & WEB_STACK


# --- atomic output ----------------------------------------------------------------------


def test_without_hard_links_output_is_still_exclusive_and_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT and exFAT (USB sticks) have no hard links: a placeholder reserves the name."""

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(output.os, "link", no_links)
    with output.AtomicOutput(tmp_path / "new") as fh:
        fh.write(b"whole")
    assert (tmp_path / "new").read_bytes() == b"whole"
    with pytest.raises(FileExistsError), output.AtomicOutput(tmp_path / "new") as fh:
        fh.write(b"second")
    assert (tmp_path / "new").read_bytes() == b"whole"
    assert listing(tmp_path) == ["new"]


def test_a_failure_inside_the_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), output.AtomicOutput(tmp_path / "out") as fh:
        fh.write(b"partial")
        raise RuntimeError("disk pulled out")
    assert listing(tmp_path) == []
