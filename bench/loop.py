"""Benchmark: the desk loop, stage by stage (export, desk import, desk return, purge).

Two loops in one run, each on a fresh data directory and SQLite database
upgraded with the project's migrations:

- **reports**: N small reports stored the way the source interface does
  (sealed to the team's key on the browser path, each with its own receipt:
  a random lookup digest and reply key, through ``portal.storage.store``);
- **attachments**: A files of M MiB of random bytes, sealed on the browser
  path as attachment content (``portal.attachment.Encoder`` streaming into
  ``envelope.seal_stream``, never the whole file in memory), five to a
  report that lists them, stored with it in one transaction
  (``portal.storage.store(..., attachments=...)``, as ``/report/sealed``
  with ``X-Attachments`` does).

Each loop runs the real code paths, each stage in a fresh interpreter so that
its peak RSS is its own:

1. export: ``portal.export.export_to`` to a file (then ``mark_exported``,
   as the staff download does);
2. desk import: ``portal-desk import --store DIR --secret-key K
   --passphrase-file P BUNDLE`` (the command's ``main``, with that argv);
3. desk return: ``portal-desk return --store DIR --sign-key FILE -o FILE`` (signed);
4. purge: ``portal.returnbundle.parse`` and ``portal.purge.apply``, what the
   staff upload calls.

Beside them, in the same run, on the same files: a plain ``tarfile`` of the
envelopes (for the export), ``envelope.open_bytes`` on each envelope file
(reports) or ``envelope.open_stream`` of each into a file on disk
(attachments) for the import (the ratio is the case store's overhead), and
unlinking a copy of the envelope files (for the purge). At the end of each
loop it checks that the envelope directory is empty and the submissions
table has no rows, and the attachments loop checks that the desk wrote every
file with the right SHA-256.

    .venv/bin/python bench/loop.py                  # 10,000 reports, 20 attachments of 50 MiB
    .venv/bin/python bench/loop.py --reports 20 --attachments 3 --attachment-mib 1  # smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from portal import attachment, envelope, keyfile, migrate, receipt, replykey, report, storage
from portal.db import Database
from portal.models import SealedBy, Submission, Thread

PASSPHRASE = "benchmark passphrase, not a secret"
PER_REPORT = 5
Figures = dict[str, dict[str, float]]
SERVER_SECRET = b"benchmark server secret, not a secret"
# A complete form (the desk flags a report that lacks a required answer).
FIELDS = {
    "target_kind": "group",
    "acts": ["detention", "torture"],
    "country": "Ruritania",
    "consent_informed": "yes",
    "consent_publication": "no",
    "consent_raise_with_state": "yes",
    "consent_reply": "yes",
    "urgent": True,
}

# Each stage runs in a fresh interpreter and prints its own time and peak RSS.
# VmHWM is read from /proc because ru_maxrss of a forked child counts the
# parent's pages at fork time. Seconds are measured inside the child, so
# interpreter start-up and imports are not counted (the wall time is shown).
CHILD = (
    f"SERVER_SECRET = {SERVER_SECRET!r}\n"
    + r"""
import datetime as dt, json, os, shutil, sys, tarfile, time
from pathlib import Path
stage, args = sys.argv[1], sys.argv[2:]
extra = {}
if stage in ("export", "purge"):
    from portal import export, purge, replykey, returnbundle
    from portal.db import Database
    db = Database(args[0])
    data_dir = Path(args[1])
    MASK_KEY = replykey.mask_key(SERVER_SECRET)
elif stage in ("import", "return"):
    from portal.desk import cli
elif stage in ("open", "stream"):
    from portal import envelope, keyfile
start = time.perf_counter()
if stage == "export":
    day = dt.datetime.now(dt.UTC).date()
    with open(args[2], "wb") as out:
        items = export.export_to(db, data_dir, out, day, mask_key=MASK_KEY)
        out.flush()
        os.fsync(out.fileno())
    export.mark_exported(db, items, day)
    extra["items"] = len(items)
elif stage == "tar":
    with tarfile.open(args[1], "w") as tar:
        for name in sorted(os.listdir(args[0])):
            tar.add(os.path.join(args[0], name), arcname=name)
        tar.fileobj.flush()
        os.fsync(tar.fileobj.fileno())
elif stage in ("import", "return"):
    code = cli.main([stage, *args])
    if code:
        sys.exit(code)
elif stage == "open":
    key_file, pass_file, folder = args
    unlock = time.perf_counter()
    identity = keyfile.load(key_file, Path(pass_file).read_text().splitlines()[0])
    extra["unlock_seconds"] = time.perf_counter() - unlock
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh:
            envelope.open_bytes(fh.read(), [identity])
elif stage == "stream":
    key_file, pass_file, folder, scratch = args
    identity = keyfile.load(key_file, Path(pass_file).read_text().splitlines()[0])
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh, open(scratch, "wb") as out:
            envelope.open_stream(fh, out, [identity])
            out.flush()
            os.fsync(out.fileno())
        os.unlink(scratch)
elif stage == "purge":
    returned = returnbundle.parse(Path(args[2]).read_bytes(), [bytes.fromhex(args[3])])
    applied = purge.apply(db, data_dir, returned, mask_key=MASK_KEY)
    extra["deleted"], extra["kept"] = len(applied.deleted), len(applied.kept)
elif stage == "unlink":
    for name in os.listdir(args[0]):
        os.unlink(os.path.join(args[0], name))
    fd = os.open(args[0], os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
seconds = time.perf_counter() - start
with open("/proc/self/status") as fh:
    hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "rss_mib": hwm / 1024, **extra}))
"""
)


def run_child(stage: str, *args: str) -> dict[str, float]:
    """Run one stage in a fresh interpreter; returns its seconds, wall seconds and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, stage, *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark stage {stage} failed:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    result["wall"] = wall
    return result


def store_reports(db: Database, data_dir: Path, public_key: bytes, count: int) -> None:
    """Store ``count`` small reports as the source interface does, each with its own receipt."""
    for i in range(count):
        store_report(db, data_dir, public_key, f"Report {i}: after the session in Geneva.", [])


def store_report(
    db: Database,
    data_dir: Path,
    public_key: bytes,
    account: str,
    files: list[tuple[Path, attachment.Metadata]],
) -> None:
    """One report with its own receipt, listing and storing ``files`` (sealed envelopes)."""
    code = receipt.generate()
    reply_key = receipt.reply_public_key(code)
    metas = [meta for _, meta in files]
    document = report.document({**FIELDS, "account": account}, reply_key, "browser", metas)
    sealed = envelope.seal(json.dumps(document).encode(), [public_key], envelope.SealPath.BROWSER)
    digest = receipt.lookup_digest(
        receipt.server_digest_key(SERVER_SECRET), receipt.lookup_token(code)
    )
    masked = replykey.mask(replykey.mask_key(SERVER_SECRET), digest, reply_key)
    incoming = storage.Incoming(
        sealed, envelope.parse_header(sealed), digest, masked, SealedBy.BROWSER
    )
    staged = [storage.Staged(path, read_header(path), SealedBy.BROWSER) for path, _ in files]
    storage.store(db, data_dir, incoming, dt.datetime.now(dt.UTC).date(), staged)


def read_header(path: Path) -> envelope.Header:
    with path.open("rb") as fh:
        return envelope.read_header(fh)[0]


def random_blocks(size: int) -> Iterator[bytes]:
    while size:
        block = os.urandom(min(size, 1 << 20))
        size -= len(block)
        yield block


def seal_file(public_key: bytes, size: int, path: Path, n: int) -> attachment.Metadata:
    """Seal ``size`` random bytes as an attachment into ``path``, streaming, and fsync it."""
    encoder = attachment.Encoder(
        random_blocks(size), size, name=f"evidence-{n}.mp4", media_type="video/mp4"
    )
    with path.open("wb") as out:
        envelope.seal_stream(encoder, out, [public_key], encoder.length, envelope.SealPath.BROWSER)
        out.flush()
        os.fsync(out.fileno())
    return encoder.metadata


def store_attachments(
    db: Database, data_dir: Path, public_key: bytes, count: int, size: int
) -> list[attachment.Metadata]:
    """``count`` attachments of ``size`` bytes, five to a report, stored with their reports."""
    staging = data_dir / "staging"
    staging.mkdir(mode=0o700)
    metas = []
    for first in range(0, count, PER_REPORT):
        files = []
        for n in range(first, min(first + PER_REPORT, count)):
            path = staging / f"{n}.env"
            files.append((path, seal_file(public_key, size, path, n)))
        store_report(db, data_dir, public_key, "Recordings of the threats attached.", files)
        metas += [meta for _, meta in files]
    staging.rmdir()
    return metas


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        submissions = session.scalar(select(func.count()).select_from(Submission)) or 0
        threads = session.scalar(select(func.count()).select_from(Thread)) or 0
    return submissions, threads


def row(name: str, r: dict[str, float], count: float, unit: str) -> str:
    sec = r["seconds"]
    return (
        f"  {name:34} {sec:8.2f} {count / sec:10.0f} {unit:9} {r['wall']:7.2f} {r['rss_mib']:9.1f}"
    )


@dataclass
class Setup:
    """A fresh data directory, database and team key for one loop."""

    work: Path
    data_dir: Path
    envelopes: Path
    url: str
    db: Database
    key_file: Path
    pass_file: Path
    public_key: bytes
    sign_file: Path
    signing_public_key: bytes

    @classmethod
    def make(cls, work: Path) -> Setup:
        work.mkdir()
        data_dir = work / "data"
        envelopes = storage.prepare(data_dir)
        url = f"sqlite:///{data_dir / 'portal.sqlite3'}"
        migrate.upgrade(url)
        pass_file = work / "pass"
        pass_file.write_text(PASSPHRASE + "\n")
        key_file = work / "team.key"
        recipient = keyfile.write_new(key_file, "benchmark key", PASSPHRASE)
        sign_file = work / "signing.key"
        signer = keyfile.write_new_signing(sign_file, "benchmark signing key", PASSPHRASE)
        db = Database(url)
        return cls(
            work, data_dir, envelopes, url, db, key_file, pass_file, recipient.public_key,
            sign_file, signer.public_key,
        )  # fmt: skip


STAGES = (
    "1 export (export_to + mark)",
    "2 portal-desk import",
    "3 portal-desk return",
    "4 purge (parse + purge.apply)",
)


def run_loop(setup: Setup, items: int, streamed: bool) -> tuple[Figures, Figures]:
    """The four stages and their baselines on copies of the same envelope files."""
    work, data_dir, url = setup.work, setup.data_dir, setup.url
    copies = work / "copies"
    shutil.copytree(setup.envelopes, copies)
    bundle, store_dir, ret = work / "export.tar", work / "desk", work / "return.tar"
    keys = ["--secret-key", str(setup.key_file), "--passphrase-file", str(setup.pass_file)]
    stages = dict(zip(STAGES, (
        run_child("export", url, str(data_dir), str(bundle)),
        run_child("import", "--store", str(store_dir), *keys, str(bundle)),
        run_child(
            "return", "--store", str(store_dir), "--sign-key", str(setup.sign_file),
            "--passphrase-file", str(setup.pass_file), "-o", str(ret),
        ),
        run_child("purge", url, str(data_dir), str(ret), setup.signing_public_key.hex()),
    ), strict=True))  # fmt: skip
    key, phrase = str(setup.key_file), str(setup.pass_file)
    opening = (
        ("envelope.open_stream each to disk", ("stream", key, phrase, str(copies), str(work / "o")))
        if streamed
        else ("envelope.open_bytes each file", ("open", key, phrase, str(copies)))
    )
    bases = {
        "tarfile of the same files": run_child("tar", str(copies), str(work / "plain.tar")),
        opening[0]: run_child(*opening[1]),
        "unlink the same files": run_child("unlink", str(copies)),
    }
    if stages[STAGES[0]]["items"] != items:
        raise SystemExit("the export bundle does not hold every item")
    purged = stages[STAGES[3]]
    if purged["deleted"] != items or purged["kept"]:
        raise SystemExit(f"purge deleted {purged['deleted']} and kept {purged['kept']}")
    print(
        f"export bundle {bundle.stat().st_size / 1e6:.1f} MB, return bundle"
        f" {ret.stat().st_size / 1e6:.2f} MB; seconds are measured inside each child"
    )
    return stages, bases


def show(stages: Figures, bases: Figures, count: float, unit: str) -> None:
    print(f"  {'stage':34} {'seconds':>8} {'rate':>10} {'':9} {'wall s':>7} {'peak MiB':>9}")
    for name, r in stages.items():
        print(row(name, r, count, unit))
    print("  same files, same run:")
    for name, r in bases.items():
        print(row(name, r, count, unit.replace("items", "files")))
    print(f"  whole loop: {sum(r['seconds'] for r in stages.values()):.2f} s")
    print("comparisons (same run, same files):")
    opening = next(name for name in bases if name.startswith("envelope."))
    ratios = (
        (STAGES[0], "tarfile of the same files", "export", "a plain tarfile of the envelopes"),
        (STAGES[1], opening, "import", f"{opening.split(' each')[0]} on each file"
         " (the desk's overhead)"),
        (STAGES[3], "unlink the same files", "purge", "unlinking the same files"),
    )  # fmt: skip
    for stage, base, what, against in ratios:
        ratio = stages[stage]["seconds"] / bases[base]["seconds"]
        print(f"  {what} takes {ratio:.2f}x the time of {against}")


def finish(setup: Setup) -> None:
    submissions, threads = counts(setup.db)
    left = list(setup.envelopes.iterdir())
    setup.db.dispose()
    print(
        f"after the loop: {len(left)} files in the envelope directory,"
        f" {submissions} rows in submissions ({threads} thread rows kept by design)"
    )
    if left or submissions:
        raise SystemExit("the purge left envelopes or submission rows behind")


def reports_loop(work: Path, n: int) -> Figures:
    setup = Setup.make(work / "reports")
    start = time.perf_counter()
    store_reports(setup.db, setup.data_dir, setup.public_key, n)
    took = time.perf_counter() - start
    sizes = {p.stat().st_size for p in setup.envelopes.iterdir()}
    total = sum(p.stat().st_size for p in setup.envelopes.iterdir())
    print(
        f"\n== {n} reports ==\nsetup: stored {n} reports through portal.storage.store in"
        f" {took:.1f} s ({n / took:.0f}/s; each fsynced), envelope sizes {sorted(sizes)} bytes,"
        f" {total / 1e6:.1f} MB in all"
    )
    stages, bases = run_loop(setup, n, streamed=False)
    show(stages, bases, n, "items/s")
    unlock = bases["envelope.open_bytes each file"]["unlock_seconds"]
    print(f"  (Argon2id unlock of the key file, in import and in open_bytes: {unlock:.2f} s)")
    finish(setup)
    return stages


def attachments_loop(work: Path, count: int, mib: int) -> Figures:
    setup = Setup.make(work / "attachments")
    start = time.perf_counter()
    metas = store_attachments(setup.db, setup.data_dir, setup.public_key, count, mib << 20)
    took = time.perf_counter() - start
    total = sum(p.stat().st_size for p in setup.envelopes.iterdir())
    reports = -(-count // PER_REPORT)
    print(
        f"\n== {count} attachments of {mib} MiB ==\nsetup: sealed {count} files of {mib} MiB"
        f" (random bytes, streaming, browser path) and stored them with {reports} reports"
        f" listing them ({PER_REPORT} per report) in {took:.1f} s; {total / 1e6:.1f} MB of"
        " envelopes"
    )
    stages, bases = run_loop(setup, count + reports, streamed=True)
    show(stages, bases, total / 1e6, "MB/s")
    written = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (setup.work / "desk").glob("*/attachment-*")
    }
    expected = {attachment.file_name(m): m.sha256 for m in metas}
    if written != expected:
        raise SystemExit("the desk did not write every attachment with its SHA-256")
    print(f"the desk wrote all {count} files, each with the SHA-256 its report lists")
    finish(setup)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10000)
    parser.add_argument("--attachments", type=int, default=20)
    parser.add_argument("--attachment-mib", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-loop-", dir=os.environ.get("BENCH_TMP")) as d:
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, SQLite; {args.reports}"
            f" reports, then {args.attachments} attachments of {args.attachment_mib} MiB"
        )
        small = reports_loop(Path(d), args.reports)
        large = attachments_loop(Path(d), args.attachments, args.attachment_mib)
        print("\npeak memory per stage, same run (MiB): small reports vs attachments")
        for name in STAGES:
            a, b = small[name]["rss_mib"], large[name]["rss_mib"]
            print(f"  {name:34} {a:7.1f} {b:9.1f}   ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
