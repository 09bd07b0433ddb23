"""Attachments on the desk: ``portal-desk decrypt``, ``import``, ``cases``, ``show`` and ``return``.

Real envelopes sealed to the session's desk keys, real export bundles written
by ``portal.bundle.write_export`` (the server's writer) and read back by the
real ``portal-desk``: good files, hostile metadata, tampered, truncated and
replayed items, a report listing a missing file. Plaintext is compared by
digest; every failure must leave no file and no temporary file behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from nacl.public import PrivateKey
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from portal import attachment, bundle, envelope, replykey, report, returnbundle, storage
from portal.attachment import Encoder, Metadata
from portal.desk.casestore import STORE_FILE, Attachment, Item
from portal.desk.cli import main
from portal.desk.contents import Content, TooLarge
from portal.envelope import SealPath
from portal.export import export_to
from portal.models import SealedBy

if TYPE_CHECKING:
    from conftest import DeskKey, SignerKey

DAY = dt.date(2026, 11, 23)
FIELDS = {
    "country": "Ruritania",
    "acts": ["threats"],
    "consent_informed": "yes",
    "consent_publication": "no",
    "consent_raise_with_state": "yes",
    "consent_reply": "yes",
    "account": "Photos of the summons attached.",
}


@dataclass
class Result:
    code: int
    out: bytes
    err: str


Desk = Callable[..., Result]


@pytest.fixture()
def desk(capsysbinary: pytest.CaptureFixture[bytes]) -> Desk:
    def run(*argv: object) -> Result:
        code = main([str(a) for a in argv])
        out, err = capsysbinary.readouterr()
        return Result(code, out, err.decode())

    return run


def assert_error(result: Result, *fragments: str) -> None:
    """Exit 1, no traceback, every error line followed by a hint line."""
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("portal-desk: error: ")]
    assert errors, result.err
    for i in errors:
        assert lines[i + 1].startswith("portal-desk: hint: "), result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


def key_args(desk_keys: tuple[DeskKey, ...], which: int = 0) -> list[object]:
    key = desk_keys[which]
    return ["--secret-key", key.secret_file, "--passphrase-file", key.passphrase_file]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def team(desk_keys: tuple[DeskKey, ...]) -> list[bytes]:
    return [desk_keys[0].recipient.public_key]


# --- sealing --------------------------------------------------------------------------


def seal_file(
    keys: list[bytes],
    data: bytes,
    name: str = "photo.JPG",
    media_type: str = "image/jpeg",
    path: SealPath = SealPath.BROWSER,
) -> tuple[bytes, Metadata]:
    """An attachment envelope exactly as a sealer makes it, and its metadata."""
    encoder = Encoder(io.BytesIO(data), len(data), name=name, media_type=media_type)
    out = io.BytesIO()
    envelope.seal_stream(encoder, out, keys, encoder.length, path)
    return out.getvalue(), encoder.metadata


def seal_content(keys: list[bytes], data: bytes, meta: dict[str, Any]) -> bytes:
    """An attachment envelope whose metadata is whatever the test says (a hostile sealer)."""
    raw = json.dumps(meta, ensure_ascii=False).encode()
    content = attachment.MAGIC + len(data).to_bytes(8, "big") + data + raw
    return envelope.seal(content, keys, SealPath.BROWSER)


def good_meta(data: bytes, **changes: Any) -> dict[str, Any]:
    meta = Metadata("ab" * 16, "image/png", "x.png", digest(data), len(data)).to_json()
    meta.update(changes)
    return meta


@dataclass(frozen=True)
class Thread:
    thread_id: str
    reply: bytes

    @classmethod
    def new(cls) -> Thread:
        return cls(os.urandom(16).hex(), bytes(PrivateKey.generate().public_key))

    def report(self, keys: list[bytes], metas: list[Metadata], **fields: Any) -> bytes:
        document = report.document({**FIELDS, **fields}, self.reply, "browser", metas)
        return envelope.seal(json.dumps(document).encode(), keys, SealPath.BROWSER)


Listed = list[tuple[str, Thread, bytes]]


def write_bundle(path: Path, items: Listed, *, reply: bytes | None = None) -> Path:
    """An export bundle of ``(item id, thread, envelope)``, written by the server's writer."""
    entries, blobs = [], {}
    for item_id, thread, data in items:
        header = envelope.parse_header(data)
        entries.append(
            bundle.Entry(
                id=item_id,
                thread_id=thread.thread_id,
                received_on=DAY,
                sealed_by=header.path.name.lower(),
                padded_size=header.padded_size,
                envelope_size=len(data),
                recipient_key_ids=header.key_ids,
                reply_public_key=reply or thread.reply,
            )
        )
        blobs[item_id] = data
    with path.open("wb") as out:
        bundle.write_export(entries, lambda i: io.BytesIO(blobs[i]), out, DAY)
    return path


def new_id() -> str:
    return os.urandom(16).hex()


@dataclass
class Case:
    """A report with two attachments, and its bundle (attachments first, as ids may sort)."""

    thread: Thread
    files: dict[str, bytes]
    metas: list[Metadata]
    report_id: str
    file_ids: list[str]
    envelopes: dict[str, bytes]

    def items(self) -> Listed:
        ids = [*self.file_ids, self.report_id]
        return [(i, self.thread, self.envelopes[i]) for i in ids]


def make_case(keys: list[bytes], sizes: tuple[int, ...] = (5000, 300_000)) -> Case:
    thread = Thread.new()
    files, metas, envelopes, ids = {}, [], {}, []
    names = ("photo.JPG", "../../etc/passwd\x1b[2J.sh")
    for size, name in zip(sizes, names, strict=False):
        data = os.urandom(size)
        sealed, meta = seal_file(keys, data, name=name)
        item_id = new_id()
        files[meta.id], envelopes[item_id] = data, sealed
        metas.append(meta)
        ids.append(item_id)
    report_id = new_id()
    envelopes[report_id] = thread.report(keys, metas)
    return Case(thread, files, metas, report_id, ids, envelopes)


def import_(desk: Desk, store: Path, path: Path, desk_keys: tuple[DeskKey, ...]) -> Result:
    return desk("import", "--store", store, *key_args(desk_keys), path)


def everything(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` except the case store itself, by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != STORE_FILE
    }


def stored(store: Path) -> tuple[dict[str, Item], dict[str, Attachment]]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with Session(engine) as db:
            items = {i.id: i for i in db.scalars(select(Item))}
            files = {a.item_id: a for a in db.scalars(select(Attachment))}
            return items, files
    finally:
        engine.dispose()


# --- decrypt --------------------------------------------------------------------------


def decrypt(desk: Desk, key: DeskKey, *argv: object) -> Result:
    return desk(
        "decrypt", "--secret-key", key.secret_file, "--passphrase-file", key.passphrase_file, *argv
    )


def test_decrypt_writes_the_file_alone_to_a_named_output(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    data = os.urandom(200_000)
    sealed, meta = seal_file(team(desk_keys), data, name="Фото\x1b[31m.JPG")
    (tmp_path / "a.env").write_bytes(sealed)
    result = decrypt(desk, desk_keys[0], "-o", tmp_path / "out.jpg", tmp_path / "a.env")
    assert result.code == 0, result.err
    assert digest((tmp_path / "out.jpg").read_bytes()) == digest(data)
    assert stat.S_IMODE((tmp_path / "out.jpg").stat().st_mode) == 0o600
    assert f"attachment {meta.id}" in result.err and "SHA-256 verified" in result.err
    assert "\x1b" not in result.err and "\\u001b[31m" in result.err


def test_decrypt_into_a_directory_chooses_its_own_name(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    data = os.urandom(70_000)
    sealed, meta = seal_file(team(desk_keys), data, name="../../../home/user/.bashrc")
    (tmp_path / "a.env").write_bytes(sealed)
    folder = tmp_path / "out"
    folder.mkdir()
    result = decrypt(desk, desk_keys[0], "-o", folder, tmp_path / "a.env")
    assert result.code == 0, result.err
    assert os.listdir(folder) == [f"attachment-{meta.id}.bashrc"]
    assert digest((folder / f"attachment-{meta.id}.bashrc").read_bytes()) == digest(data)
    assert sorted(os.listdir(tmp_path)) == ["a.env", "out"]  # nothing climbed out
    again = decrypt(desk, desk_keys[0], "-o", folder, tmp_path / "a.env")
    assert_error(again, "already exists", "--force")
    forced = decrypt(desk, desk_keys[0], "--force", "-o", folder, tmp_path / "a.env")
    assert forced.code == 0, forced.err
    assert len(os.listdir(folder)) == 1


def test_decrypt_to_standard_output_gives_the_verified_file(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    sealed, _ = seal_file(team(desk_keys), data, path=SealPath.SERVER)
    (tmp_path / "a.env").write_bytes(sealed)
    result = decrypt(desk, desk_keys[0], tmp_path / "a.env")
    assert result.code == 0, result.err
    assert digest(result.out) == digest(data)


def test_a_report_is_not_written_into_a_directory(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    (tmp_path / "r.env").write_bytes(Thread.new().report(team(desk_keys), []))
    folder = tmp_path / "out"
    folder.mkdir()
    result = decrypt(desk, desk_keys[0], "-o", folder, tmp_path / "r.env")
    assert_error(result, "is a directory and the envelope is not an attachment")
    assert os.listdir(folder) == []
    plain = decrypt(desk, desk_keys[0], "-o", tmp_path / "r.json", tmp_path / "r.env")
    assert plain.code == 0 and json.loads((tmp_path / "r.json").read_bytes())["fields"]


def test_desk_sealed_envelopes_are_always_raw(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    content = attachment.MAGIC + b"anything at all, not an attachment"
    (tmp_path / "d.env").write_bytes(envelope.seal(content, team(desk_keys), SealPath.DESK))
    result = decrypt(desk, desk_keys[0], tmp_path / "d.env")
    assert result.code == 0, result.err
    assert result.out == content


HOSTILE = {
    "sha256 mismatch": (good_meta(b"x" * 9000, sha256=digest(b"y")), "HashMismatch", "SHA-256"),
    "size mismatch": (good_meta(b"x" * 9000, size=8999), "", "size of 8999 bytes"),
    "name of 5000": (good_meta(b"x" * 9000, name="n" * 5000), "", "name is 5000 characters"),
    "extra member": (good_meta(b"x" * 9000, path="/etc"), "", "unexpected 'path'"),
    "missing member": ({"id": "ab" * 16}, "", "missing media_type"),
    "version as string": (good_meta(b"x" * 9000, version="1"), "", "version '1'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("output", ["file", "folder", "stdout"])
def test_hostile_attachments_leave_no_plaintext_anywhere(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path, case: str, output: str
) -> None:
    meta, _, fragment = HOSTILE[case]
    (tmp_path / "a.env").write_bytes(seal_content(team(desk_keys), b"x" * 9000, meta))
    folder = tmp_path / "out"
    folder.mkdir()
    target = {"file": ["-o", folder / "f.bin"], "folder": ["-o", folder], "stdout": []}[output]
    result = decrypt(desk, desk_keys[0], *target, tmp_path / "a.env")
    assert_error(result, fragment)
    assert result.out == b""
    assert os.listdir(folder) == []


def test_a_tampered_attachment_envelope_writes_nothing(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    sealed, _ = seal_file(team(desk_keys), os.urandom(300_000))
    tampered = bytearray(sealed)
    tampered[-20] ^= 1
    (tmp_path / "t.env").write_bytes(bytes(tampered))
    (tmp_path / "c.env").write_bytes(sealed[:-70_000])
    folder = tmp_path / "out"
    folder.mkdir()
    assert_error(decrypt(desk, desk_keys[0], "-o", folder, tmp_path / "t.env"), "authentication")
    assert_error(decrypt(desk, desk_keys[0], "-o", folder, tmp_path / "c.env"), "cut short")
    assert os.listdir(folder) == []


# --- import ---------------------------------------------------------------------------


def test_import_writes_each_file_into_its_case_folder_under_safe_names(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    path = write_bundle(tmp_path / "b.tar", case.items())
    store = tmp_path / "store"
    result = import_(desk, store, path, desk_keys)
    assert result.code == 0, result.err
    assert "3 items imported (1 new cases), 0 already in the store, 0 failed" in result.err
    folder = store / case.thread.thread_id
    photo, hostile = case.metas
    expected = {
        f"{case.thread.thread_id}/attachment-{photo.id}.jpg": case.files[photo.id],
        f"{case.thread.thread_id}/attachment-{hostile.id}.sh": case.files[hostile.id],
    }
    found = everything(store)
    assert {k: digest(v) for k, v in found.items()} == {k: digest(v) for k, v in expected.items()}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    items, files = stored(store)
    assert {i.status for i in items.values()} == {"opened"}
    assert sorted(f.attachment_id for f in files.values()) == sorted(m.id for m in case.metas)
    row = next(f for f in files.values() if f.attachment_id == hostile.id)
    assert row.name == "../../etc/passwd\x1b[2J.sh" and row.sha256.hex() == hostile.sha256


def test_cases_and_show_list_the_files_with_their_paths(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    store = tmp_path / "store"
    assert import_(desk, store, write_bundle(tmp_path / "b.tar", case.items()), desk_keys).code == 0
    listing = desk("cases", "--store", store)
    assert listing.code == 0, listing.err
    head, line = listing.out.decode().splitlines()
    assert head.split()[-4:] == ["items", "files", "missing", "acts"]
    assert line.split()[-4:] == ["3", "2", "0", "threats"]
    shown = desk("show", "--store", store, case.thread.thread_id[:8])
    assert shown.code == 0, shown.err
    text_out = shown.out.decode()
    folder = store / case.thread.thread_id
    for meta in case.metas:
        assert f"Attachment {meta.id}" in text_out
        assert os.fspath(folder / attachment.file_name(meta)) in text_out
        assert f"SHA-256 {meta.sha256} (verified)" in text_out
    assert "Attachments listed (2)" in text_out and "MISSING" not in text_out
    assert "\x1b" not in text_out and "\\u001b[2J" in text_out
    assert "Photos of the summons attached." in text_out


def test_importing_twice_changes_nothing(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    path = write_bundle(tmp_path / "b.tar", case.items())
    store = tmp_path / "store"
    assert import_(desk, store, path, desk_keys).code == 0
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.rglob("*") if p.is_file()}
    rows = stored(store)
    again = import_(desk, store, path, desk_keys)
    assert again.code == 0, again.err
    assert "nothing changed: all 3 items were already in the case store" in again.err
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.rglob("*") if p.is_file()}
    assert {p: v for p, v in after.items() if p.name != STORE_FILE} == {
        p: v for p, v in before.items() if p.name != STORE_FILE
    }
    assert {k: v.document for k, v in stored(store)[0].items()} == {
        k: v.document for k, v in rows[0].items()
    }


def test_a_report_listing_a_missing_attachment_is_reported(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    lost = case.file_ids[1]
    items = [i for i in case.items() if i[0] != lost]
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", items), desk_keys)
    missing = case.metas[1]
    assert_error(result, f"attachment {missing.id}", "is missing", "send it again")
    assert "\x1b" not in result.err
    line = desk("cases", "--store", store).out.decode().splitlines()[1]
    assert line.split()[-4:-1] == ["2", "1", "1"]
    shown = desk("show", "--store", store, case.thread.thread_id).out.decode()
    assert "1 listed but missing" in shown and "MISSING: not imported" in shown
    # The lost file arrives in a later export: the case is whole.
    later = write_bundle(tmp_path / "c.tar", [(lost, case.thread, case.envelopes[lost])])
    assert import_(desk, store, later, desk_keys).code == 0
    assert "MISSING" not in desk("show", "--store", store, case.thread.thread_id).out.decode()


def test_an_attachment_whose_sha256_mismatches_is_refused_and_not_acknowledged(
    desk: Desk, desk_keys: tuple[DeskKey, ...], desk_signer: SignerKey, tmp_path: Path
) -> None:
    keys = team(desk_keys)
    thread = Thread.new()
    data = os.urandom(150_000)
    claimed = Metadata("cd" * 16, "image/png", "x.png", digest(b"other"), len(data))
    bad = seal_content(keys, data, claimed.to_json())
    bad_id, report_id = new_id(), new_id()
    items = [(bad_id, thread, bad), (report_id, thread, thread.report(keys, [claimed]))]
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", items), desk_keys)
    assert_error(result, f"item {bad_id}", "SHA-256", f"attachment {claimed.id}", "is missing")
    assert everything(store) == {}  # no file, no temporary file
    items_, files = stored(store)
    assert items_[bad_id].status == "failed" and items_[bad_id].error == "HashMismatch"
    assert files == {}
    out = tmp_path / "return.tar"
    assert desk("return", "--store", store, *desk_signer.return_args(), "-o", out).code == 0
    acks = returnbundle.parse(out.read_bytes(), [desk_signer.entry.public_key]).acknowledgements
    assert [a.id for a in acks] == [report_id]


@pytest.mark.parametrize(
    ("mutate", "fragment", "error"),
    [
        (
            lambda env: env[:-1] + bytes([env[-1] ^ 1]),
            "failed authentication",
            "AuthenticationFailed",
        ),
        (lambda env: env[:100] + bytes([env[100] ^ 1]) + env[101:], "", "AuthenticationFailed"),
    ],
)
def test_a_tampered_attachment_in_a_bundle_fails_alone(
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
    mutate: Callable[[bytes], bytes],
    fragment: str,
    error: str,
) -> None:
    case = make_case(team(desk_keys))
    bad = case.file_ids[1]
    case.envelopes[bad] = mutate(case.envelopes[bad])
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", case.items()), desk_keys)
    assert_error(result, f"item {bad}", fragment, "is missing")
    items, _ = stored(store)
    assert items[bad].error == error
    assert set(everything(store)) == {
        f"{case.thread.thread_id}/{attachment.file_name(case.metas[0])}"
    }


def test_a_flipped_byte_in_the_bundle_refuses_that_attachment_only(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    path = write_bundle(tmp_path / "b.tar", case.items())
    data = bytearray(path.read_bytes())
    big = case.envelopes[case.file_ids[1]]
    at = bytes(data).index(big[:4096]) + len(big) - 10  # inside its last chunk's tag
    data[at] ^= 1
    path.write_bytes(bytes(data))
    store = tmp_path / "store"
    result = import_(desk, store, path, desk_keys)
    assert_error(result, f"item {case.file_ids[1]}")
    items, _ = stored(store)
    assert items[case.file_ids[1]].status == "failed"
    assert len(everything(store)) == 1


def test_a_truncated_bundle_writes_nothing(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    path = write_bundle(tmp_path / "b.tar", case.items())
    path.write_bytes(path.read_bytes()[:-5000])
    store = tmp_path / "store"
    assert_error(import_(desk, store, path, desk_keys), "cut short")
    assert not store.exists()


def test_a_replayed_attachment_under_another_id_is_refused(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    replay, original = new_id(), case.file_ids[0]
    items = [*case.items(), (replay, case.thread, case.envelopes[original])]
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", items), desk_keys)
    assert_error(result, f"attachment {case.metas[0].id} is already in case")
    items_, files = stored(store)
    # Whichever of the two came second is refused, and is not acknowledged.
    errors = sorted((items_[i].status, items_[i].error or "") for i in (replay, original))
    assert errors == [("failed", "DuplicateAttachment"), ("opened", "")]
    assert len(files) == 2 and len(everything(store)) == 2


def test_an_unexpected_attachment_is_reported(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    keys = team(desk_keys)
    case = make_case(keys)
    planted, meta = seal_file(keys, b"planted", name="invoice.pdf")
    planted_id = new_id()
    items = [*case.items(), (planted_id, case.thread, planted)]
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", items), desk_keys)
    assert_error(result, f"attachment {meta.id} ('invoice.pdf') is listed by no report")
    shown = desk("show", "--store", store, case.thread.thread_id).out.decode()
    assert "NOT LISTED by any report of this case" in shown


def test_a_file_other_than_the_one_listed_is_reported(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    keys = team(desk_keys)
    thread = Thread.new()
    data = os.urandom(1000)
    sealed, meta = seal_file(keys, data)
    listed = Metadata(meta.id, meta.media_type, meta.name, digest(b"what was chosen"), 1000)
    items = [(new_id(), thread, sealed), (new_id(), thread, thread.report(keys, [listed]))]
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", items), desk_keys)
    assert_error(result, f"attachment {meta.id}", "is not the file its report lists")
    shown = desk("show", "--store", store, thread.thread_id).out.decode()
    assert "DIFFERENT" in shown


def test_an_attachment_without_its_report_waits_for_it(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys))
    first = [i for i in case.items() if i[0] != case.report_id]
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", first), desk_keys)
    assert_error(result, "is an attachment, but no report of its case", "not acknowledged")
    assert everything(store) == {}
    items, _ = stored(store)
    assert {i.error for i in items.values()} == {"NoReport"}
    whole = import_(desk, store, write_bundle(tmp_path / "c.tar", case.items()), desk_keys)
    assert whole.code == 0, whole.err
    assert len(everything(store)) == 2


def test_a_swapped_reply_key_on_an_attachment_is_refused(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys), sizes=(100,))
    store = tmp_path / "store"
    report_only = [(case.report_id, case.thread, case.envelopes[case.report_id])]
    first = import_(desk, store, write_bundle(tmp_path / "r.tar", report_only), desk_keys)
    assert_error(first, "is missing")
    file_id = case.file_ids[0]
    swapped = write_bundle(
        tmp_path / "s.tar",
        [(file_id, case.thread, case.envelopes[file_id])],
        reply=bytes(PrivateKey.generate().public_key),
    )
    result = import_(desk, store, swapped, desk_keys)
    assert_error(result, "ANOTHER REPLY KEY", "Do not reply")
    assert stored(store)[0][file_id].error == "ReplyKeySwapped"
    assert everything(store) == {}


def test_an_attachment_sealed_to_another_key_is_retried_with_it(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    thread = Thread.new()
    other = [desk_keys[2].recipient.public_key]
    sealed, meta = seal_file(other, os.urandom(2000))
    file_id, report_id = new_id(), new_id()
    items = [(file_id, thread, sealed), (report_id, thread, thread.report(team(desk_keys), [meta]))]
    path = write_bundle(tmp_path / "b.tar", items)
    store = tmp_path / "store"
    assert_error(import_(desk, store, path, desk_keys), "not sealed to any secret key given")
    both = desk("import", "--store", store, *key_args(desk_keys), *key_args(desk_keys, 2), path)
    assert both.code == 0, both.err
    assert stored(store)[0][file_id].status == "opened"


def test_large_attachments_stream_into_the_store(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys), sizes=(3 << 20,))
    store = tmp_path / "store"
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", case.items()), desk_keys)
    assert result.code == 0, result.err
    (content,) = everything(store).values()
    assert digest(content) == case.metas[0].sha256


def test_a_file_left_by_an_interrupted_import_is_replaced(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    case = make_case(team(desk_keys), sizes=(1000,))
    store = tmp_path / "store"
    folder = store / case.thread.thread_id
    folder.mkdir(parents=True)
    leftover = folder / attachment.file_name(case.metas[0])
    leftover.write_bytes(b"half")  # published, but its rows were never committed
    result = import_(desk, store, write_bundle(tmp_path / "b.tar", case.items()), desk_keys)
    assert result.code == 0, result.err
    assert digest(leftover.read_bytes()) == case.metas[0].sha256


def test_an_older_store_gains_the_attachments_table(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    keys = team(desk_keys)
    store = tmp_path / "store"
    thread = Thread.new()
    first = write_bundle(tmp_path / "a.tar", [(new_id(), thread, thread.report(keys, []))])
    assert import_(desk, store, first, desk_keys).code == 0
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE attachments"))
    engine.dispose()
    assert desk("cases", "--store", store).code == 0
    case = make_case(keys, sizes=(10,))
    assert import_(desk, store, write_bundle(tmp_path / "b.tar", case.items()), desk_keys).code == 0
    assert len(stored(store)[1]) == 1


def test_a_report_with_a_malformed_attachment_list_is_flagged(
    desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    thread = Thread.new()
    document = report.document(FIELDS, thread.reply, "browser")
    document["attachments"] = [{"id": "../x", "name": 7}]
    sealed = envelope.seal(json.dumps(document).encode(), team(desk_keys), SealPath.BROWSER)
    store = tmp_path / "store"
    path = write_bundle(tmp_path / "b.tar", [(new_id(), thread, sealed)])
    result = import_(desk, store, path, desk_keys)
    assert_error(result, "its list of attachments is not usable")
    shown = desk("show", "--store", store, thread.thread_id).out.decode()
    assert "WARNING" in shown


# --- from the server's storage to the desk --------------------------------------------


def test_attachments_stored_by_the_server_reach_the_desk_whole(
    app: Flask, desk: Desk, desk_keys: tuple[DeskKey, ...], desk_signer: SignerKey, tmp_path: Path
) -> None:
    """``storage.store`` with staged attachments, ``export_to``, then the real import and return,
    on SQLite and on PostgreSQL."""
    state = app.extensions["portal.source"]
    keys = [k.recipient.public_key for k in desk_keys[:2]]
    staging = tmp_path / "staging"
    staging.mkdir()
    files, staged, metas = {}, [], []
    for n, size in enumerate((0, 65_536 - 16, 400_001)):
        data = os.urandom(size)
        sealed, meta = seal_file(keys, data, name=f"file {n}.BIN", path=SealPath.BROWSER)
        (staging / f"{n}.env").write_bytes(sealed)
        header = envelope.parse_header(sealed)
        staged.append(storage.Staged(staging / f"{n}.env", header, SealedBy.BROWSER))
        files[meta.id] = data
        metas.append(meta)
    thread = Thread.new()
    document = report.document(FIELDS, thread.reply, "browser", metas)
    sealed = envelope.seal(json.dumps(document).encode(), keys, SealPath.BROWSER)
    lookup = os.urandom(32)
    stored = replykey.mask(state.mask_key, lookup, thread.reply)
    incoming = storage.Incoming(
        sealed, envelope.parse_header(sealed), lookup, stored, SealedBy.BROWSER
    )
    storage.store(state.db, state.config.data_dir, incoming, DAY, staged)
    path = tmp_path / "export.tar"
    with path.open("wb") as out:
        exported = export_to(state.db, state.config.data_dir, out, DAY, mask_key=state.mask_key)
    assert len(exported) == 4
    store = tmp_path / "store"
    result = import_(desk, store, path, desk_keys)
    assert result.code == 0, result.err
    written = {p.name: digest(p.read_bytes()) for p in store.glob("*/attachment-*")}
    assert written == {f"attachment-{m.id}.bin": digest(files[m.id]) for m in metas}
    returned = tmp_path / "r.tar"
    assert desk("return", "--store", store, *desk_signer.return_args(), "-o", returned).code == 0
    signers = [desk_signer.entry.public_key]
    acks = returnbundle.parse(returned.read_bytes(), signers).acknowledgements
    assert sorted((a.id, a.sha256) for a in acks) == sorted((i.id, i.sha256) for i in exported)


# --- telling a report from an attachment ----------------------------------------------


def header_for(path: SealPath) -> envelope.Header:
    return envelope.Header(1, path, 65536, (bytes(16),), 160)


@pytest.mark.parametrize("step", [1, 3, 7, 8, 100_000])
def test_the_kind_is_decided_on_the_first_eight_bytes_however_they_arrive(step: int) -> None:
    data = os.urandom(5000)
    encoder = Encoder(io.BytesIO(data), len(data), name="a", media_type="")
    content_bytes = b"".join(encoder)
    report_out, file_out = io.BytesIO(), io.BytesIO()
    sink = Content.for_header(header_for(SealPath.SERVER), lambda: report_out, lambda: file_out)
    for at in range(0, len(content_bytes), step):
        sink.write(memoryview(content_bytes)[at : at + step])
    assert sink.finish() == encoder.metadata
    assert file_out.getvalue() == data and report_out.getvalue() == b""


@pytest.mark.parametrize("data", [b"", b"{", b"UNRPFIL", b'{"type":"reprisal-report"}'])
def test_short_or_other_contents_are_reports(data: bytes) -> None:
    out = io.BytesIO()
    sink = Content.for_header(header_for(SealPath.BROWSER), lambda: out, lambda: None)
    sink.write(data)
    assert sink.finish() is None and out.getvalue() == data


def test_desk_sealed_contents_and_long_reports() -> None:
    out = io.BytesIO()
    raw = attachment.MAGIC + b"\x00" * 20
    sink = Content.for_header(header_for(SealPath.DESK), lambda: out, lambda: None)
    sink.write(raw)
    assert sink.finish() is None and out.getvalue() == raw
    capped = Content(lambda: io.BytesIO(), lambda: None, report_limit=10)
    capped.write(b"{" * 10)
    with pytest.raises(TooLarge):
        capped.write(b"x")
