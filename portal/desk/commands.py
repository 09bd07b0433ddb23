"""The four ``portal-desk`` commands; each takes the parsed arguments and returns 0.

Every failure is raised as a typed exception carrying a hint (DeskError,
EnvelopeError, KeyFileError, KeyManifestError); ``cli.main`` prints it.
"""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from nacl.public import PrivateKey

from portal import attachment, envelope, keyfile
from portal.attachment import Metadata
from portal.desk import passphrase
from portal.desk.contents import Content, one_line
from portal.desk.errors import DeskError
from portal.desk.output import AtomicOutput
from portal.desk.streams import (
    Source,
    check_target,
    check_terminal,
    open_source,
    output_name,
    protect,
    read_text,
    rewindable,
    sized,
)
from portal.keys import (
    KeyManifestError,
    RecipientKey,
    load_manifest,
    parse_entry,
    parse_recipients,
)

Protected = list[tuple[str, os.stat_result] | None]


def keygen(args: Namespace) -> int:
    """Write a new encrypted secret key file and print its public manifest entry.

    With ``--signing`` the key is the desk's Ed25519 signing key, and the entry
    printed is one for the manifest's ``signing_keys``.
    """
    path: str = args.secret_key
    if os.path.lexists(path):
        hint = "Choose a new file name: an existing key file is never overwritten."
        raise DeskError(f"{path} already exists", hint)
    if not os.path.isdir(os.path.dirname(path) or "."):
        hint = "Create the directory first, or choose another path."
        raise DeskError(f"the directory for {path} does not exist", hint)
    keyfile.check_label(args.label)
    if args.passphrase_file:
        secret = passphrase.from_file(args.passphrase_file)
        keyfile.check_passphrase(secret)
    else:
        secret = passphrase.ask_new()
    made = (
        keyfile.write_new_signing(path, args.label, secret)
        if args.signing
        else keyfile.write_new(path, args.label, secret)
    )
    emit(json.dumps(made.to_json(), indent=2, ensure_ascii=False) + "\n")
    if args.signing:
        note(f"wrote the encrypted signing key to {path}; keep a backup on the desk only")
        note('add the entry printed to "signing_keys" in the manifest (see keys/README.md)')
        note(f"signing key fingerprint of {made.label!r}: {made.fingerprint}")
        return 0
    note(f"wrote the encrypted secret key to {path}; keep a backup and remember the passphrase")
    note(f"fingerprint of {made.label!r}: {made.fingerprint}")
    return 0


def seal(args: Namespace) -> int:
    """Encrypt the input to the public keys given with --to."""
    keys = [k.public_key for k in _recipients(args.to)]
    out = output_name(args.output)
    protected: Protected = [protect(p, f"the public key file {p}") for p in args.to]
    source = open_source(args.input, terminal_ok=True)
    try:
        _check_output(out, source, protected, args.force, plaintext=False, terminal=False)
        stream, size = sized(source)
        if out is None:
            _seal(stream, sys.stdout.buffer, keys, size)
            sys.stdout.buffer.flush()
            return 0
        with AtomicOutput(out, args.force) as fh:
            _seal(stream, fh, keys, size)
    finally:
        source.close()
    return 0


def decrypt(args: Namespace) -> int:
    """Decrypt the input; nothing is written unless all of it authenticates."""
    locked = [keyfile.read(p) for p in args.secret_key]
    given = passphrase.from_file(args.passphrase_file) if args.passphrase_file else None
    out = output_name(args.output)
    protected: Protected = [protect(p, f"the secret key file {p}") for p in args.secret_key]
    if args.passphrase_file:
        protected.append(protect(args.passphrase_file, "the passphrase file"))
    source = open_source(args.input, terminal_ok=False)
    folder = out if out is not None and os.path.isdir(out) else None
    try:
        if folder is None:
            _check_output(out, source, protected, args.force, True, args.terminal)
        stream = source.stream if out is not None else rewindable(source)
        start = stream.tell() if out is None else 0
        header, raw = envelope.read_header(stream)
        identity = _unlock(header, locked, given)
        if out is None:
            meta = _verify_then_write(stream, start, identity)
            where = "standard output"
        elif folder is not None:
            meta, where = _into_folder(stream, (header, raw), identity, folder, args.force)
        else:
            with AtomicOutput(out, args.force) as fh:
                content = Content.for_header(header, lambda: fh, lambda: fh)
                envelope.open_stream(stream, content.stream, [identity], header=(header, raw))
                meta, where = content.finish(), out
    finally:
        source.close()
    if meta is not None:
        note(f"{_described(meta)}; SHA-256 verified; the file was written to {where}")
    return 0


def _into_folder(
    stream: BinaryIO,
    header: tuple[envelope.Header, bytes],
    identity: PrivateKey,
    folder: str,
    force: bool,
) -> tuple[Metadata, str]:
    """An attachment into ``folder`` under the desk's own name for it (never the sender's)."""

    def refuse() -> NoReturn:
        hint = "Give -o the name of a file to create: this envelope holds a report."
        raise DeskError(f"{folder} is a directory and the envelope is not an attachment", hint)

    output = AtomicOutput(os.path.join(folder, "attachment"), force)
    try:
        with output as fh:
            content = Content.for_header(header[0], refuse, lambda: fh)
            envelope.open_stream(stream, content.stream, [identity], header=header)
            meta = content.finish()
            if meta is None:
                refuse()
            output.path = os.path.join(folder, attachment.file_name(meta))
    except FileExistsError:
        hint = "Add --force to replace it, or give another -o directory."
        raise DeskError(f"{output.path} already exists", hint) from None
    return meta, output.path


def _described(meta: Metadata) -> str:
    kind = one_line(meta.media_type) or "no type given"
    return f"attachment {meta.id}: {one_line(meta.name)!r} ({kind}, {meta.size} bytes)"


def inspect(args: Namespace) -> int:
    """Describe an envelope from its header and check its framing, without any key."""
    known = {k.key_id: k for k in _named_keys(args.manifest)} if args.manifest else {}
    source = open_source(args.input, terminal_ok=False)
    try:
        header = envelope.inspect(source.stream)
    finally:
        source.close()
    report = describe(header, known)
    text = json.dumps(report, indent=2, ensure_ascii=False) if args.json else _text(report)
    emit(text + "\n")
    return 0


def describe(header: envelope.Header, known: Mapping[bytes, RecipientKey]) -> dict[str, Any]:
    """What ``inspect --json`` prints: the header, and each recipient matched to the manifest."""
    recipients = []
    for kid in header.key_ids:
        key = known.get(kid)
        label, fingerprint = (key.label, key.fingerprint) if key else (None, None)
        recipients.append({"key_id": kid.hex(), "label": label, "fingerprint": fingerprint})
    return {
        "version": header.version,
        "sealed_by": header.path.name.lower(),
        "padded_size": header.padded_size,
        "chunk_count": header.chunk_count,
        "total_size": header.total_size,
        "recipients": recipients,
    }


def _text(report: dict[str, Any]) -> str:
    lines = [
        f"portal envelope, version {report['version']}",
        f"sealed by:    {report['sealed_by']}",
        f"padded size:  {report['padded_size']} bytes",
        f"chunks:       {report['chunk_count']} of 64 KiB",
        f"total size:   {report['total_size']} bytes",
        f"recipients:   {len(report['recipients'])}",
    ]
    for n, r in enumerate(report["recipients"], 1):
        who = f"  {r['label']}  (fingerprint {r['fingerprint']})" if r["label"] else ""
        lines.append(f"  {n}. key id {r['key_id']}{who}")
    return "\n".join(lines)


def _check_output(
    out: str | None,
    source: Source,
    protected: Protected,
    force: bool,
    plaintext: bool,
    terminal: bool,
) -> None:
    if source.stat is not None:
        protected.append((f"the input {source.name}", source.stat))
    check_target(out, protected, force)
    if out is None:
        check_terminal(plaintext, terminal)


def _seal(src: BinaryIO, dst: BinaryIO, keys: list[bytes], size: int) -> None:
    if envelope.padded_size(size) > envelope.MAX_PADDED_SIZE:
        limit = envelope.MAX_PADDED_SIZE >> 30
        hint = "Split the input into several files and seal each one."
        raise DeskError(f"the input is larger than one envelope holds (about {limit} GiB)", hint)
    envelope.seal_stream(src, dst, keys, size, envelope.SealPath.DESK)


def _unlock(
    header: envelope.Header, locked: list[keyfile.LockedKey], given: str | None
) -> PrivateKey:
    for key in locked:
        if key.recipient.key_id in header.key_ids:
            label, fingerprint = key.recipient.label, key.recipient.fingerprint
            phrase = given
            if phrase is None:
                phrase = passphrase.ask(f"Passphrase for {label!r} ({fingerprint}): ")
            return key.unlock(phrase)
    count = "the secret key" if len(locked) == 1 else f"any of the {len(locked)} secret keys"
    raise envelope.NoMatchingKey(f"this envelope was not sealed to {count} given")


def _verify_then_write(stream: BinaryIO, start: int, identity: PrivateKey) -> Metadata | None:
    """Two passes, so standard output gets no plaintext unless all of it authenticates
    (and, for an attachment, unless the file's size and SHA-256 are right)."""
    metas = []
    for target in (None, sys.stdout.buffer):
        stream.seek(start)
        header, raw = envelope.read_header(stream)
        content = Content.for_header(header, _to(target), _to(target))
        envelope.open_stream(stream, content.stream, [identity], header=(header, raw))
        metas.append(content.finish())
    sys.stdout.buffer.flush()
    return metas[0]


def _to(target: BinaryIO | None) -> Callable[[], BinaryIO | None]:
    return lambda: target


def _recipients(paths: list[str]) -> list[RecipientKey]:
    """The active keys of every --to file, each key once."""
    merged: dict[bytes, RecipientKey] = {}
    for path in paths:
        for key in _public_keys(path, parse_recipients):
            merged.setdefault(key.public_key, key)
    if len(merged) > envelope.MAX_RECIPIENTS:
        hint = "Give fewer --to files, or retire old keys in the manifest."
        raise DeskError(f"{len(merged)} recipients; at most {envelope.MAX_RECIPIENTS}", hint)
    if len({key.demo for key in merged.values()}) > 1:
        # A demo secret key is not protected: real reports must never be sealed to one.
        hint = "Seal either to demo keys (for a trial) or to real keys, never to both."
        raise DeskError("the --to files mix demo keys and real keys", hint)
    for key in merged.values():
        if key.demo:
            note(f"warning: {key.label!r} is a demo key, not the team's real key")
    return list(merged.values())


def _named_keys(path: str) -> tuple[RecipientKey, ...]:
    """Every key (retired ones too) in a printed entry or a manifest, to name key ids."""

    def parse(text: str) -> tuple[RecipientKey, ...]:
        obj = json.loads(text)
        if isinstance(obj, Mapping) and "recipients" in obj:
            return load_manifest(Path(path)).recipients  # its checks, repeated fields included
        return (parse_entry(obj),)  # a retired key may still name an older envelope

    return _public_keys(path, parse)


def _public_keys(
    path: str, parse: Callable[[str], tuple[RecipientKey, ...]]
) -> tuple[RecipientKey, ...]:
    text = read_text(path, "the public key file")
    try:
        return parse(text)
    except json.JSONDecodeError as err:
        hint = "Give the JSON entry printed by keygen, or the manifest (keys/manifest.json)."
        raise DeskError(f"{path} is not valid JSON (line {err.lineno}): {err.msg}", hint) from None
    except (ValueError, RecursionError):  # integers over 4300 digits, deep nesting
        hint = "Give the JSON entry printed by keygen, or the manifest (keys/manifest.json)."
        raise DeskError(f"{path} is not a usable JSON key entry or manifest", hint) from None
    except KeyManifestError as err:
        if keyfile.FILE_TYPE in text:
            hint = "Give the public entry that keygen printed, never the secret key file."
            raise DeskError(f"{path} is a secret key file, not a public key", hint) from None
        raise DeskError(f"{path}: {err}", err.hint) from None


def emit(text: str) -> None:
    """Text for standard output, always UTF-8."""
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def note(text: str) -> None:
    """A human line on standard error."""
    print(f"portal-desk: {text}", file=sys.stderr, flush=True)
