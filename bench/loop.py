"""Benchmark: the desk loop, stage by stage (export, desk import, desk return, purge).

Stores N small reports the way the source interface does (sealed to the
team's key on the browser path, each with its own receipt: a random lookup
digest and reply key, written through ``portal.storage.store`` into a fresh
SQLite database upgraded with the project's migrations), then runs the loop
with the real code paths, each stage in a fresh interpreter so that its peak
RSS is its own:

1. export: ``portal.export.export_to`` to a file (then ``mark_exported``,
   as the staff download does);
2. desk import: ``portal-desk import --store DIR --secret-key K
   --passphrase-file P BUNDLE`` (the command's ``main``, with that argv);
3. desk return: ``portal-desk return --store DIR --sign-key FILE -o FILE`` (signed);
4. purge: ``portal.returnbundle.parse`` and ``portal.purge.apply``, what the
   staff upload calls.

Beside them, in the same run, on the same files: a plain ``tarfile`` of the
envelopes (for the export), ``envelope.open_bytes`` on each envelope file
(for the import: the ratio is the case store's overhead), and unlinking a
copy of the envelope files (for the purge). At the end it checks that the
envelope directory is empty and the submissions table has no rows.

    .venv/bin/python bench/loop.py                  # 10,000 reports
    .venv/bin/python bench/loop.py --reports 20     # smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from portal import envelope, keyfile, migrate, receipt, report, storage
from portal.db import Database
from portal.models import SealedBy, Submission, Thread

PASSPHRASE = "benchmark passphrase, not a secret"
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
CHILD = r"""
import datetime as dt, json, os, shutil, sys, tarfile, time
from pathlib import Path
stage, args = sys.argv[1], sys.argv[2:]
extra = {}
if stage in ("export", "purge"):
    from portal import export, purge, returnbundle
    from portal.db import Database
    db = Database(args[0])
    data_dir = Path(args[1])
elif stage in ("import", "return"):
    from portal.desk import cli
elif stage == "open":
    from portal import envelope, keyfile
start = time.perf_counter()
if stage == "export":
    day = dt.datetime.now(dt.UTC).date()
    with open(args[2], "wb") as out:
        items = export.export_to(db, data_dir, out, day)
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
elif stage == "purge":
    returned = returnbundle.parse(Path(args[2]).read_bytes(), [bytes.fromhex(args[3])])
    applied = purge.apply(db, data_dir, returned)
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
    digest_key = receipt.server_digest_key(SERVER_SECRET)
    day = dt.datetime.now(dt.UTC).date()
    for i in range(count):
        code = receipt.generate()
        reply_key = receipt.reply_public_key(code)
        fields = {**FIELDS, "account": f"Report {i}: after the session in Geneva."}
        plaintext = json.dumps(report.document(fields, reply_key, "browser")).encode()
        sealed = envelope.seal(plaintext, [public_key], envelope.SealPath.BROWSER)
        digest = receipt.lookup_digest(digest_key, receipt.lookup_token(code))
        incoming = storage.Incoming(
            sealed, envelope.parse_header(sealed), digest, reply_key, SealedBy.BROWSER
        )
        storage.store(db, data_dir, incoming, day)


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        submissions = session.scalar(select(func.count()).select_from(Submission)) or 0
        threads = session.scalar(select(func.count()).select_from(Thread)) or 0
    return submissions, threads


def row(name: str, r: dict[str, float], count: int, unit: str) -> str:
    sec = r["seconds"]
    return (
        f"  {name:34} {sec:8.2f} {count / sec:10.0f} {unit:9} {r['wall']:7.2f} {r['rss_mib']:9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10000)
    args = parser.parse_args()
    n = args.reports
    with tempfile.TemporaryDirectory(prefix="bench-loop-", dir=os.environ.get("BENCH_TMP")) as d:
        work = Path(d)
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
        manifest = {"version": 1, "recipients": [recipient.to_json()]}
        (work / "manifest.json").write_text(json.dumps(manifest))
        db = Database(url)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, SQLite, {n} reports")
        start = time.perf_counter()
        store_reports(db, data_dir, recipient.public_key, n)
        setup = time.perf_counter() - start
        sizes = {p.stat().st_size for p in envelopes.iterdir()}
        total = sum(p.stat().st_size for p in envelopes.iterdir())
        print(
            f"setup: stored {n} reports through portal.storage.store in {setup:.1f} s"
            f" ({n / setup:.0f}/s; each fsynced), envelope sizes {sorted(sizes)} bytes,"
            f" {total / 1e6:.1f} MB in all"
        )
        print(
            "attachments: the issue's 20 attachments of 50 MiB are not measured; attachments"
            " do not exist yet, so that part waits for the attachments issue (#4)"
        )

        # The baselines copy the envelope files first, so the loop's stages see the real ones.
        copies = work / "copies"
        shutil.copytree(envelopes, copies)

        bundle, store_dir, ret = work / "export.tar", work / "desk", work / "return.tar"
        stages = {
            "1 export (export_to + mark)": run_child("export", url, str(data_dir), str(bundle)),
            "2 portal-desk import": run_child(
                "import", "--store", str(store_dir), "--secret-key", str(key_file),
                "--passphrase-file", str(pass_file), str(bundle),
            ),
            "3 portal-desk return": run_child(
                "return", "--store", str(store_dir), "--sign-key", str(sign_file),
                "--passphrase-file", str(pass_file), "-o", str(ret),
            ),
            "4 purge (parse + purge.apply)": run_child(
                "purge", url, str(data_dir), str(ret), signer.public_key.hex()
            ),
        }  # fmt: skip
        bases = {
            "tarfile of the same files": run_child("tar", str(copies), str(work / "plain.tar")),
            "envelope.open_bytes each file": run_child(
                "open", str(key_file), str(pass_file), str(copies)
            ),
            "unlink the same files": run_child("unlink", str(copies)),
        }
        if stages["1 export (export_to + mark)"]["items"] != n:
            raise SystemExit("the export bundle does not hold every report")
        purged = stages["4 purge (parse + purge.apply)"]
        if purged["deleted"] != n or purged["kept"]:
            raise SystemExit(f"purge deleted {purged['deleted']} and kept {purged['kept']}")

        print(
            f"\nexport bundle {bundle.stat().st_size / 1e6:.1f} MB, return bundle"
            f" {ret.stat().st_size / 1e6:.2f} MB; seconds are measured inside each child"
        )
        print(f"  {'stage':34} {'seconds':>8} {'rate':>10} {'':9} {'wall s':>7} {'peak MiB':>9}")
        for name, r in stages.items():
            print(row(name, r, n, "items/s"))
        print("  same files, same run:")
        for name, r in bases.items():
            print(row(name, r, n, "files/s"))
        unlock = bases["envelope.open_bytes each file"]["unlock_seconds"]
        print(f"  (Argon2id unlock of the key file, in import and in open_bytes: {unlock:.2f} s)")
        total_loop = sum(r["seconds"] for r in stages.values())
        print(f"  whole loop: {total_loop:.2f} s for {n} reports")

        def ratio(stage: str, base: str) -> float:
            return stages[stage]["seconds"] / bases[base]["seconds"]

        print("\ncomparisons (same run, same files):")
        export_ratio = ratio("1 export (export_to + mark)", "tarfile of the same files")
        import_ratio = ratio("2 portal-desk import", "envelope.open_bytes each file")
        purge_ratio = ratio("4 purge (parse + purge.apply)", "unlink the same files")
        print(f"  export takes {export_ratio:.2f}x the time of a plain tarfile of the envelopes")
        print(
            f"  import takes {import_ratio:.2f}x the time of envelope.open_bytes on each file"
            " (the case store's overhead)"
        )
        print(f"  purge takes {purge_ratio:.2f}x the time of unlinking the same files")

        submissions, threads = counts(db)
        left = list(envelopes.iterdir())
        db.dispose()
        print(
            f"\nafter the loop: {len(left)} files in the envelope directory,"
            f" {submissions} rows in submissions ({threads} thread rows kept by design)"
        )
        if left or submissions:
            raise SystemExit("the purge left envelopes or submission rows behind")


if __name__ == "__main__":
    main()
