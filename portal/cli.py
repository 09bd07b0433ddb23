"""`portal`: the server side's command line (keys, demo key, database, staff, serve)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from portal import (
    backup,
    demo,
    doctor,
    jobs,
    migrate,
    onionauth,
    restore,
    staffauth,
    storage,
    terminalqr,
)
from portal import config as config_mod
from portal.db import Database
from portal.db import describe as describe_database
from portal.keys import KeyManifestError, Manifest, load_manifest

PROG = "portal"
USAGE = (
    """\
usage: portal keys [--manifest FILE]
       portal demo-key --dir DIR
       portal db upgrade
       portal staff add NAME [--qr] | remove NAME | reset-totp NAME [--qr]
       portal replies expire
       portal serve source|staff [--host HOST] [--port PORT]
       portal doctor
       portal backup -o FILE | restore FILE
       portal jobs run [--only NAME]
       portal onion-auth NAME [--onion ADDRESS]

  keys          validate the recipients' key manifest and print its fingerprints
  demo-key      create a clearly labelled DEMO key pair and manifest in DIR
                (for trying the portal out; never for real reports)
  db upgrade    create or upgrade the database tables (run before serving)
  staff add     make a staff account; prints its one-time enrolment secret and
                its TOTP secret, to give to that person in person, and the TOTP
                secret as a QR code when printing to a terminal (or with --qr)
  staff remove  delete a staff account
  staff reset-totp
                give an account a new TOTP secret and unlock it
  replies expire
                delete every reply that arrived PORTAL_REPLY_RETENTION_DAYS
                (default 30) or more days ago, read or not (run it daily)
  serve source  serve the source interface with the development server
                (default 127.0.0.1:8080, no access log; production uses gunicorn)
  serve staff   serve the staff interface likewise (default 127.0.0.1:8081)
  doctor        check the settings, keys, data directory, database, disk,
                clock and Tor; says how to fix each problem (deploy/README.md)
  backup        write the database rows and the ciphertext store to FILE
  restore       verify FILE whole, then restore it into an empty portal
  onion-auth    make a Tor client authorisation key for a staff member, for
                the staff onion service (deploy/README.md)
  jobs run      run the periodic jobs, or only NAME (deploy/README.md):
                """
    + "\n                ".join(jobs.names())
    + """

Settings come from the environment: PORTAL_SECRET_KEY (required to serve; no
default), PORTAL_KEYS (the key manifest or its directory; default keys/),
PORTAL_DATA_DIR (default instance/data), DATABASE_URL (default SQLite in the
data directory), PORTAL_HTTPS (1 to mark cookies Secure),
PORTAL_REPLY_RETENTION_DAYS (default 30); the operators' settings are in
deploy/portal.env.example.

Example:
  $ portal demo-key --dir instance/demo-keys
  $ export PORTAL_KEYS=instance/demo-keys
  $ export PORTAL_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  $ portal db upgrade && portal serve source --port 8080
  $ portal staff add amina && portal serve staff --port 8081
"""
)


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, usage=USAGE, add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    keys = sub.add_parser("keys", add_help=False)
    keys.add_argument("--manifest", type=Path)
    demo = sub.add_parser("demo-key", add_help=False)
    demo.add_argument("--dir", type=Path, required=True)
    db = sub.add_parser("db", add_help=False)
    db.add_argument("action", choices=["upgrade"])
    staff = sub.add_parser("staff", add_help=False)
    staff.add_argument("action", choices=["add", "remove", "reset-totp"])
    staff.add_argument("name")
    staff.add_argument("--qr", action="store_true")
    replies = sub.add_parser("replies", add_help=False)
    replies.add_argument("action", choices=["expire"])
    serve = sub.add_parser("serve", add_help=False)
    serve.add_argument("interface", choices=["source", "staff"])
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int)
    sub.add_parser("doctor", add_help=False)
    save = sub.add_parser("backup", add_help=False)
    save.add_argument("-o", dest="output", type=Path, required=True)
    load = sub.add_parser("restore", add_help=False)
    load.add_argument("file", type=Path)
    run = sub.add_parser("jobs", add_help=False)
    run.add_argument("action", choices=["run"])
    run.add_argument("--only", choices=jobs.names())
    onion = sub.add_parser("onion-auth", add_help=False)
    onion.add_argument("name")
    onion.add_argument("--onion")
    return parser


def describe(manifest: Manifest, source: Path) -> str:
    """A human summary of the keys the portal would seal to."""
    lines = [f"key manifest: {source}"]
    for key in manifest.recipients:
        flag = "  DEMO KEY, NOT FOR REAL REPORTS" if key.demo else ""
        lines.append(f"  [{key.status}] {key.label}{flag}")
        lines.append(f"      fingerprint {key.fingerprint}")
    for signer in manifest.signing_keys:
        flag = "  DEMO SIGNING KEY, NOT FOR REAL REPLIES" if signer.demo else ""
        lines.append(f"  [signing] {signer.label}{flag}")
        lines.append(f"      signing key fingerprint {signer.fingerprint}")
    if not manifest.signing_keys:
        lines.append("  no signing key: the staff interface refuses return bundles")
    return "\n".join(lines)


def cmd_keys(manifest_path: Path) -> int:
    manifest = load_manifest(manifest_path)
    print(describe(manifest, manifest_path))
    manifest.require_active()
    return 0


def cmd_demo_key(directory: Path) -> int:
    manifest_path = demo.ensure_demo_key(directory)
    print(describe(load_manifest(manifest_path), manifest_path))
    return 0


def cmd_db_upgrade(cfg: config_mod.Config) -> int:
    storage.prepare(cfg.data_dir)
    try:
        migrate.upgrade(cfg.database_url)
    except SQLAlchemyError as err:
        cause = str(getattr(err, "orig", None) or type(err).__name__).splitlines()[0]
        return _fail(f"cannot upgrade the database: {cause}", "Check DATABASE_URL.")
    print(f"database {describe_database(cfg.database_url)} is at revision {migrate.head()}")
    return 0


def describe_provisioning(made: staffauth.Provisioning) -> str:
    """What the operator hands to the account's owner, in person."""
    lines = []
    if made.enrolment_secret is not None:
        lines += [
            f"one-time enrolment secret for {made.name} (shown only now):",
            f"  {made.enrolment_secret}",
        ]
    lines += [
        f"TOTP secret for {made.name} (shown only now); add it to an authenticator app",
        "as this provisioning URI, or type in the secret (SHA-1, 6 digits, 30 seconds):",
        f"  {made.uri}",
        f"  {made.secret_base32}",
    ]
    if made.enrolment_secret is not None:
        lines.append(
            f"{made.name} then enrols on the staff interface's /enrol page with the enrolment"
            " secret, a new password and a code."
        )
    return "\n".join(lines)


def describe_qr(made: staffauth.Provisioning) -> str:
    """The provisioning URI as a terminal QR code, with the warning it needs."""
    return "\n".join(
        [
            "The same TOTP secret as a QR code, for the authenticator app's camera only.",
            "It is a secret: do not photograph it with anything else, share it, or leave it on",
            "the screen; clear the terminal once the app has read it.",
            *terminalqr.lines(made.uri),
        ]
    )


def cmd_staff(cfg: config_mod.Config, action: str, name: str, qr: bool = False) -> int:
    db = Database(cfg.database_url)
    try:
        if action == "remove":
            staffauth.remove(db, name)
            print(f"staff account {name} removed")
            return 0
        secret = cfg.require_secret()
        if action == "add":
            made = staffauth.add(db, secret, name)
            print(f"staff account {name} created; it is not active until enrolled")
        else:
            made = staffauth.reset_totp(db, secret, name)
            print(f"staff account {name} has a new TOTP secret and is unlocked")
        print(describe_provisioning(made))
        if qr or sys.stdout.isatty():
            print(describe_qr(made))
        return 0
    except SQLAlchemyError as err:
        return _fail(
            f"cannot use the database {describe_database(cfg.database_url)} ({type(err).__name__})",
            "Check DATABASE_URL and run `portal db upgrade`.",
        )
    finally:
        db.dispose()


def cmd_replies_expire(cfg: config_mod.Config) -> int:
    from portal import purge

    db = Database(cfg.database_url)
    today = dt.datetime.now(dt.UTC).date()
    try:
        gone = purge.expire_replies(db, cfg.data_dir, today, cfg.reply_retention_days)
    except SQLAlchemyError as err:
        return _fail(
            f"cannot use the database {describe_database(cfg.database_url)} ({type(err).__name__})",
            "Check DATABASE_URL and run `portal db upgrade`.",
        )
    finally:
        db.dispose()
    print(f"{len(gone)} replies older than {cfg.reply_retention_days} days deleted")
    return 0


def cmd_serve(cfg: config_mod.Config, interface: str, host: str, port: int | None) -> int:
    from portal.source import devserver, logs

    logs.configure()
    if interface == "staff":
        from portal.staff import create_app as create_staff_app

        app, port = create_staff_app(cfg), port or 8081
    else:
        from portal.source import create_app

        app, port = create_app(cfg), port or 8080
        with contextlib.suppress(KeyManifestError):
            print(describe(load_manifest(cfg.keys_manifest), cfg.keys_manifest))
    # No address in the output: the tests assert that no log names 127.0.0.1.
    shown = "localhost" if host in {"127.0.0.1", "::1", "localhost"} else host
    print(f"{PROG}: serving the {interface} interface at http://{shown}:{port}/", flush=True)
    print(f"{PROG}: development server, access log off; Ctrl+C stops it", flush=True)
    try:
        devserver.serve(app, host, port)
    except OSError as err:
        return _fail(f"cannot listen on port {port}: {err.strerror}", "Choose another --port.")
    return 0


def cmd_doctor() -> int:
    problems = 0
    for finding in doctor.examine(os.environ):
        if finding.ok:
            print(f"{PROG} doctor: ok: {finding.message}")
        else:
            problems += 1
            print(f"{PROG} doctor: error: {finding.message}", file=sys.stderr)
            print(f"{PROG} doctor: hint: {finding.hint}", file=sys.stderr)
    print(f"{PROG} doctor: {problems or 'no'} problem(s) found")
    return 1 if problems else 0


def cmd_onion_auth(name: str, onion: str | None) -> int:
    try:
        key = onionauth.new_client_key(name, onion)
    except ValueError as err:
        return _fail(str(err), "Example: portal onion-auth amina")
    print(onionauth.describe(key))
    return 0


def cmd_backup(cfg: config_mod.Config, output: Path) -> int:
    made = backup.create(cfg, output)
    print(f"backup written to {output}: {made[0]} row(s), {made[1]} file(s)")
    return 0


def cmd_restore(cfg: config_mod.Config, source: Path) -> int:
    made = restore.restore(cfg, source)
    print(f"restored {made[0]} row(s) and {made[1]} file(s) from {source}")
    return 0


def cmd_jobs(cfg: config_mod.Config, only: str | None) -> int:
    ok = jobs.run(
        cfg, only, dt.datetime.now(dt.UTC).date(), lambda line: print(f"{PROG} jobs: {line}")
    )
    return 0 if ok else 1


def _fail(message: str, hint: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    print(f"{PROG}: hint: {hint}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo-key":
        return cmd_demo_key(args.dir)
    if args.command == "doctor":
        return cmd_doctor()
    if args.command == "onion-auth":
        return cmd_onion_auth(args.name, args.onion)
    if args.command == "keys" and args.manifest:
        return cmd_keys(args.manifest)
    cfg = config_mod.from_env()
    if args.command == "keys":
        return cmd_keys(cfg.keys_manifest)
    if args.command == "db":
        return cmd_db_upgrade(cfg)
    if args.command == "staff":
        return cmd_staff(cfg, args.action, args.name, args.qr)
    if args.command == "replies":
        return cmd_replies_expire(cfg)
    if args.command == "backup":
        return cmd_backup(cfg, args.output)
    if args.command == "restore":
        return cmd_restore(cfg, args.file)
    if args.command == "jobs":
        return cmd_jobs(cfg, args.only)
    return cmd_serve(cfg, args.interface, args.host, args.port)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):  # one usage text, whichever command it follows
        print(USAGE)
        return 0
    try:
        args = _parser().parse_args(argv)
    except UsageError as err:
        print(USAGE, file=sys.stderr)
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    if not args.command:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return _run(args)
    except (KeyManifestError, config_mod.ConfigError, staffauth.AccountError,
            backup.BackupError) as err:  # fmt: skip
        return _fail(str(err), err.hint)
    except OSError as err:
        return _fail(f"{err.filename or 'a file'}: {err.strerror}", "Check the paths and rights.")
