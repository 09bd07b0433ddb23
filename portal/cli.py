"""`portal`: the server side's command line (keys, demo key, serve)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from portal import config as config_mod
from portal import demo
from portal.keys import KeyManifestError, Manifest, load_manifest

PROG = "portal"
USAGE = """\
usage: portal keys [--manifest FILE]
       portal demo-key --dir DIR
       portal serve

  keys      validate the recipients' key manifest and print its fingerprints
  demo-key  create a clearly labelled DEMO key pair and manifest in DIR
            (for trying the portal out; never for real reports)
  serve     check the configuration and serve the portal

Settings come from the environment: PORTAL_KEYS_MANIFEST (default
keys/manifest.json), PORTAL_DATA_DIR (default instance/data).

Example:
  $ portal demo-key --dir instance/demo-keys
  $ PORTAL_KEYS_MANIFEST=instance/demo-keys/manifest.json portal keys
"""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, usage=USAGE, add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    keys = sub.add_parser("keys", add_help=False)
    keys.add_argument("--manifest", type=Path)
    demo = sub.add_parser("demo-key", add_help=False)
    demo.add_argument("--dir", type=Path, required=True)
    sub.add_parser("serve", add_help=False)
    return parser


def describe(manifest: Manifest, source: Path) -> str:
    """A human summary of the keys the portal would seal to."""
    lines = [f"key manifest: {source}"]
    for key in manifest.recipients:
        flag = "  DEMO KEY, NOT FOR REAL REPORTS" if key.demo else ""
        lines.append(f"  [{key.status}] {key.label}{flag}")
        lines.append(f"      fingerprint {key.fingerprint}")
    return "\n".join(lines)


def cmd_keys(manifest_path: Path) -> int:
    manifest = load_manifest(manifest_path)
    print(describe(manifest, manifest_path))
    manifest.require_active()
    return 0


def cmd_serve(cfg: config_mod.Config) -> int:
    manifest = load_manifest(cfg.keys_manifest)
    manifest.require_active()
    print(describe(manifest, cfg.keys_manifest))
    print(f"data directory: {cfg.data_dir}")
    print(
        "The source interface is not built yet, so nothing is served. When it is,"
        " `make run` serves it here with the keys above."
    )
    return 0


def cmd_demo_key(directory: Path) -> int:
    manifest_path = demo.ensure_demo_key(directory)
    print(describe(load_manifest(manifest_path), manifest_path))
    return 0


def _fail(message: str, hint: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    print(f"{PROG}: hint: {hint}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except UsageError as err:
        print(USAGE, file=sys.stderr)
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    if args.help or not args.command:
        print(USAGE, file=sys.stdout if args.help else sys.stderr)
        return 0 if args.help else 2
    cfg = config_mod.from_env()
    try:
        if args.command == "keys":
            return cmd_keys(args.manifest or cfg.keys_manifest)
        if args.command == "demo-key":
            return cmd_demo_key(args.dir)
        return cmd_serve(cfg)
    except KeyManifestError as err:
        return _fail(str(err), err.hint)
